//! The body of `PUT /<name>`, which carries three shapes (npm-protocol §6.1): a
//! publish (`_attachments` with the base64 tarball), a full-document update
//! (deprecate/undeprecate: the packument with `versions`) and a star/unstar (`users`).
//!
//! Built for bodies of up to the configured maximum (100 MiB by default) without
//! multiplying them in memory:
//! - `parse` reads the JSON once, borrowing from the request buffer. The attachment
//!   data (almost all of a publish body) is not copied: only its position is kept.
//! - Every other part that becomes owned values is bounded: metadata by its number of
//!   JSON values (a `[0,0,…]` array costs 16× its text as `serde_json::Value`), maps of
//!   attachments and of document versions by their number of entries.
//! - `decode_attachment` turns the base64 text into the tarball inside the same buffer
//!   (the decoded bytes are shorter than the text they come from).
//!
//! Pure: no I/O; any input gives `Ok` or `Err`, never a panic.

use std::fmt;
use std::marker::PhantomData;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Most JSON values (and keys) the metadata of a publish may hold. A real manifest
/// has hundreds to a few thousand; this bounds the owned copy to a few MiB.
pub const MAX_METADATA_ITEMS: usize = 100_000;
/// Most attachments in a publish (npm sends the tarball and, with provenance, a
/// sigstore bundle).
pub const MAX_ATTACHMENTS: usize = 8;
/// Most versions in a full-document update (only their `deprecated` is kept).
pub const MAX_DOCUMENT_VERSIONS: usize = 100_000;
/// Longest `_id`, `name` or `access` value kept.
const MAX_SMALL_FIELD: usize = 4096;

/// Why a body is refused; every message is fit for npm to print.
#[derive(Debug, thiserror::Error)]
pub enum PublishBodyError {
    #[error("malformed JSON body: {0}")]
    Json(String),
    #[error("{0} must be an object")]
    NotAnObject(&'static str),
    #[error("{field} holds more than {limit} JSON values")]
    TooManyItems { field: &'static str, limit: usize },
    #[error("{0} is too long")]
    FieldTooLarge(&'static str),
    #[error("attachment {0:?}: data must be a base64 string")]
    DataNotString(String),
    #[error("attachment {0:?}: length must be the tarball's size in bytes")]
    BadLength(String),
    #[error("attachment data is not valid base64")]
    BadBase64,
}

/// The position of an attachment's data (the text between the quotes) in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    start: usize,
    end: usize,
}

impl Span {
    /// Length of the encoded text.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// One entry of `_attachments`.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub file: String,
    /// `None` when the attachment has no `data`.
    pub data: Option<Span>,
    /// The declared byte length of the decoded data.
    pub length: Option<u64>,
    /// `content_type`, when a string of at most `MAX_SMALL_FIELD` bytes.
    pub content_type: Option<String>,
}

/// A publish body, with owned metadata and the attachments' positions.
#[derive(Debug, Clone)]
pub struct PublishBody {
    pub id: Option<Value>,
    pub name: Option<Value>,
    pub access: Option<Value>,
    pub dist_tags: Option<Map<String, Value>>,
    /// Every version sent (a valid publish sends exactly one).
    pub versions: Map<String, Value>,
    pub attachments: Vec<Attachment>,
}

/// What a `PUT /<name>` body is.
#[derive(Debug, Clone)]
pub enum PutBody {
    Publish(PublishBody),
    /// A full-document update or a star/unstar, reduced to what the registry reads:
    /// `_rev` (when a string) and `versions` with each version's `deprecated` only
    /// (`versions` is `null` when it
    /// was sent but is not an object). A `deprecated` that is neither a string nor
    /// null is kept as `false`, which the deprecate rule refuses. Of `users` only the
    /// caller's own entry is kept (`{"<caller>": true}` when it is `true`, else `{}`):
    /// a star changes nobody else's.
    Document(Value),
    /// No `_attachments`, `versions` or `users`.
    Unrecognised,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "_id", borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    access: Option<&'a RawValue>,
    #[serde(rename = "dist-tags", borrow, default)]
    dist_tags: Option<&'a RawValue>,
    #[serde(borrow, default)]
    versions: Option<&'a RawValue>,
    #[serde(rename = "_attachments", borrow, default)]
    attachments: Option<&'a RawValue>,
    #[serde(borrow, default)]
    users: Option<&'a RawValue>,
    #[serde(rename = "_rev", borrow, default)]
    rev: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct RawAttachment<'a> {
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    length: Option<&'a RawValue>,
    #[serde(borrow, default)]
    content_type: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct RawVersion<'a> {
    #[serde(borrow, default)]
    deprecated: Option<&'a RawValue>,
}

fn json_error(e: serde_json::Error) -> PublishBodyError {
    PublishBodyError::Json(e.to_string())
}

/// Parses a `PUT /<name>` body held in `buf`, sent by the user named `caller`.
pub fn parse(buf: &[u8], caller: &str) -> Result<PutBody, PublishBodyError> {
    // serde would also read a struct from an array, by position.
    if buf.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        serde_json::from_slice::<IgnoredAny>(buf).map_err(json_error)?;
        return Err(PublishBodyError::NotAnObject("the body"));
    }
    let envelope: Envelope<'_> = serde_json::from_slice(buf).map_err(json_error)?;
    let attachments = match envelope.attachments {
        Some(raw) if is_object(raw) => {
            parse_entries::<RawAttachment<'_>>(raw, MAX_ATTACHMENTS, "_attachments")?
        }
        _ => Vec::new(),
    };
    if attachments.is_empty() {
        return document(&envelope, caller);
    }
    let mut budget = MAX_METADATA_ITEMS;
    let versions = match envelope.versions {
        Some(raw) => owned_object(raw, "versions", &mut budget)?,
        None => Map::new(),
    };
    let dist_tags = envelope
        .dist_tags
        .filter(|raw| raw.get() != "null")
        .map(|raw| owned_object(raw, "dist-tags", &mut budget))
        .transpose()?;
    let attachments = attachments
        .into_iter()
        .map(|(file, a)| attachment(buf, file, a))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PutBody::Publish(PublishBody {
        id: small(envelope.id, "_id")?,
        name: small(envelope.name, "name")?,
        access: small(envelope.access, "access")?,
        dist_tags,
        versions,
        attachments,
    }))
}

fn document(envelope: &Envelope<'_>, caller: &str) -> Result<PutBody, PublishBodyError> {
    let users = match envelope.users {
        None => None,
        Some(raw) if is_object(raw) => {
            let mut own = Map::new();
            if own_star(raw, caller)? {
                own.insert(caller.to_owned(), Value::Bool(true));
            }
            Some(Value::Object(own))
        }
        Some(_) => return Err(PublishBodyError::NotAnObject("users")),
    };
    let Some(raw) = envelope.versions else {
        let Some(users) = users else {
            return Ok(PutBody::Unrecognised);
        };
        let mut doc = Map::new();
        doc.insert("users".into(), users);
        return Ok(PutBody::Document(Value::Object(doc)));
    };
    let versions = if is_object(raw) {
        let entries = parse_entries::<RawVersion<'_>>(raw, MAX_DOCUMENT_VERSIONS, "versions")?;
        let mut reduced = Map::new();
        for (version, sent) in entries {
            let mut slim = Map::new();
            if let Some(d) = sent.deprecated {
                let value = match serde_json::from_str::<Value>(d.get()) {
                    Ok(v @ (Value::String(_) | Value::Null)) => v,
                    _ => Value::Bool(false),
                };
                slim.insert("deprecated".into(), value);
            }
            reduced.insert(version, Value::Object(slim));
        }
        Value::Object(reduced)
    } else {
        Value::Null
    };
    let mut doc = Map::new();
    doc.insert("versions".into(), versions);
    if let Some(users) = users {
        doc.insert("users".into(), users);
    }
    // The revision the document was read at: a write against an older one is refused.
    if let Some(Value::String(rev)) = small(envelope.rev, "_rev")? {
        doc.insert("_rev".into(), Value::String(rev));
    }
    Ok(PutBody::Document(Value::Object(doc)))
}

/// Whether `users` (a JSON object) marks `caller` as starring: their entry is `true`.
/// Nobody else's entry is read beyond its key, so a long list costs no memory.
fn own_star(raw: &RawValue, caller: &str) -> Result<bool, PublishBodyError> {
    let mut de = serde_json::Deserializer::from_str(raw.get());
    let starred = OwnStar { caller }
        .deserialize(&mut de)
        .map_err(json_error)?;
    de.end().map_err(json_error)?;
    Ok(starred)
}

struct OwnStar<'c> {
    caller: &'c str,
}

impl<'de> DeserializeSeed<'de> for OwnStar<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for OwnStar<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("users as an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut own: Option<bool> = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key != self.caller {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            if own.is_some() {
                // Last-one-wins would let two parsers disagree about the body.
                return Err(de::Error::custom(format!(
                    "users has the key {key:?} twice"
                )));
            }
            own = Some(matches!(map.next_value::<Value>()?, Value::Bool(true)));
        }
        Ok(own.unwrap_or(false))
    }
}

fn is_object(raw: &RawValue) -> bool {
    raw.get().starts_with('{')
}

fn small(raw: Option<&RawValue>, field: &'static str) -> Result<Option<Value>, PublishBodyError> {
    match raw {
        None => Ok(None),
        Some(r) if r.get().len() > MAX_SMALL_FIELD => Err(PublishBodyError::FieldTooLarge(field)),
        Some(r) => serde_json::from_str(r.get()).map(Some).map_err(json_error),
    }
}

/// An owned object, charged against the metadata budget.
fn owned_object(
    raw: &RawValue,
    field: &'static str,
    budget: &mut usize,
) -> Result<Map<String, Value>, PublishBodyError> {
    if !is_object(raw) {
        return Err(PublishBodyError::NotAnObject(field));
    }
    let items = items_upper_bound(raw.get().as_bytes());
    if items > *budget {
        return Err(PublishBodyError::TooManyItems {
            field,
            limit: MAX_METADATA_ITEMS,
        });
    }
    *budget -= items;
    serde_json::from_str(raw.get()).map_err(json_error)
}

/// An upper bound of the values and keys a JSON text builds (its commas, colons and
/// opening brackets outside strings, plus one), found without allocating.
pub fn items_upper_bound(text: &[u8]) -> usize {
    let mut items = 1usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else {
            match b {
                b'"' => in_string = true,
                b',' | b':' | b'[' | b'{' => items = items.saturating_add(1),
                _ => {}
            }
        }
    }
    items
}

fn attachment(
    buf: &[u8],
    file: String,
    raw: RawAttachment<'_>,
) -> Result<Attachment, PublishBodyError> {
    let data = match raw.data {
        None => None,
        Some(d) if d.get() == "null" => None,
        Some(d) => {
            let text = d.get();
            if !(text.len() >= 2 && text.starts_with('"') && text.ends_with('"')) {
                return Err(PublishBodyError::DataNotString(file));
            }
            // `RawValue::get` borrows from `buf`, so its offset is the text's position.
            let start = (text.as_ptr() as usize)
                .checked_sub(buf.as_ptr() as usize)
                .filter(|s| s.saturating_add(text.len()) <= buf.len())
                .ok_or_else(|| PublishBodyError::DataNotString(file.clone()))?;
            Some(Span {
                start: start + 1,
                end: start + text.len() - 1,
            })
        }
    };
    let length = match raw.length {
        None => None,
        Some(l) if l.get() == "null" => None,
        Some(l) => Some(
            l.get()
                .parse::<u64>()
                .map_err(|_| PublishBodyError::BadLength(file.clone()))?,
        ),
    };
    let content_type = match raw.content_type {
        Some(c) if c.get().len() <= MAX_SMALL_FIELD => serde_json::from_str::<String>(c.get()).ok(),
        _ => None,
    };
    Ok(Attachment {
        file,
        data,
        length,
        content_type,
    })
}

/// Deserialises the entries of a JSON object into a list, refusing more than `cap`
/// before allocating them.
fn parse_entries<'a, V: Deserialize<'a>>(
    raw: &'a RawValue,
    cap: usize,
    field: &'static str,
) -> Result<Vec<(String, V)>, PublishBodyError> {
    let mut de = serde_json::Deserializer::from_str(raw.get());
    let entries = CappedEntries {
        cap,
        field,
        _value: PhantomData,
    }
    .deserialize(&mut de)
    .map_err(json_error)?;
    de.end().map_err(json_error)?;
    Ok(entries)
}

struct CappedEntries<V> {
    cap: usize,
    field: &'static str,
    _value: PhantomData<V>,
}

impl<'de, V: Deserialize<'de>> DeserializeSeed<'de> for CappedEntries<V> {
    type Value = Vec<(String, V)>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, V: Deserialize<'de>> Visitor<'de> for CappedEntries<V> {
    type Value = Vec<(String, V)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} as an object", self.field)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.len() == self.cap {
                return Err(de::Error::custom(format!(
                    "{} has more than {} entries",
                    self.field, self.cap
                )));
            }
            if out.iter().any(|(k, _): &(String, V)| *k == key) {
                // Last-one-wins would let two parsers disagree about the body.
                map.next_value::<IgnoredAny>()?;
                return Err(de::Error::custom(format!(
                    "{} has the key {key:?} twice",
                    self.field
                )));
            }
            // serde's derived structs also read an array by position; no client sends
            // one, and two parsers could read it differently, so only objects count.
            let raw = map.next_value::<&'de RawValue>()?;
            if !is_object(raw) {
                return Err(de::Error::custom(format!(
                    "{} entry {key:?} is not an object",
                    self.field
                )));
            }
            let value = serde_json::from_str::<V>(raw.get()).map_err(de::Error::custom)?;
            out.push((key, value));
        }
        Ok(out)
    }
}

/// Decodes the base64 text at `span` into the tarball, in place: afterwards `buf` holds
/// only the decoded bytes (everything else in it has been parsed already). JSON
/// escapes inside the text (`\/`, `\u0041`) are undone on the way.
pub fn decode_attachment(buf: &mut Vec<u8>, span: Span) -> Result<(), PublishBodyError> {
    // A multiple of 4, so every full chunk decodes on its own.
    const CHUNK: usize = 16 * 1024;
    if span.start > span.end || span.end > buf.len() {
        return Err(PublishBodyError::BadBase64);
    }
    let mut chunk = vec![0u8; CHUNK];
    let mut decoded = vec![0u8; CHUNK / 4 * 3];
    let mut staged = 0usize;
    let mut write = 0usize;
    let mut read = span.start;
    // Writing starts at 0 and advances 3 bytes for every 4 characters read, so it
    // never reaches text that is still to be read.
    let mut flush = |chunk: &[u8], buf: &mut Vec<u8>, write: &mut usize, last: bool| {
        if !last && chunk.contains(&b'=') {
            return Err(PublishBodyError::BadBase64);
        }
        let n = STANDARD
            .decode_slice(chunk, &mut decoded)
            .map_err(|_| PublishBodyError::BadBase64)?;
        buf[*write..*write + n].copy_from_slice(&decoded[..n]);
        *write += n;
        Ok(())
    };
    while read < span.end {
        if staged == CHUNK {
            flush(&chunk, buf, &mut write, false)?;
            staged = 0;
        }
        if buf[read] == b'\\' {
            let (byte, used) = unescape(&buf[read..span.end])?;
            chunk[staged] = byte;
            staged += 1;
            read += used;
            continue;
        }
        let room = CHUNK - staged;
        let limit = span.end.min(read + room);
        let run = buf[read..limit]
            .iter()
            .position(|&b| b == b'\\')
            .unwrap_or(limit - read);
        chunk[staged..staged + run].copy_from_slice(&buf[read..read + run]);
        staged += run;
        read += run;
    }
    if staged > 0 {
        flush(&chunk[..staged], buf, &mut write, true)?;
    }
    buf.truncate(write);
    Ok(())
}

/// The attachment data at `span` read as the JSON string it is (a provenance bundle
/// is sent as plain text, not base64); `None` when its text is longer than
/// `max_text` bytes or is not a valid JSON string.
pub fn string_attachment(buf: &[u8], span: Span, max_text: usize) -> Option<String> {
    if span.len() > max_text || span.start == 0 || span.end >= buf.len() {
        return None;
    }
    // The span lies between the quotes; the quotes are taken back in.
    serde_json::from_slice(buf.get(span.start - 1..span.end + 1)?).ok()
}

/// One JSON escape at the start of `text`: the ASCII byte it stands for and the bytes
/// it used. Only escapes of ASCII characters can be part of base64.
fn unescape(text: &[u8]) -> Result<(u8, usize), PublishBodyError> {
    match text.get(1) {
        Some(b'/') => Ok((b'/', 2)),
        Some(b'u') => {
            let hex = text.get(2..6).ok_or(PublishBodyError::BadBase64)?;
            let hex = std::str::from_utf8(hex).map_err(|_| PublishBodyError::BadBase64)?;
            let code = u16::from_str_radix(hex, 16).map_err(|_| PublishBodyError::BadBase64)?;
            u8::try_from(code)
                .ok()
                .filter(u8::is_ascii)
                .map(|b| (b, 6))
                .ok_or(PublishBodyError::BadBase64)
        }
        _ => Err(PublishBodyError::BadBase64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn publish(body: &Value) -> (Vec<u8>, PublishBody) {
        let buf = serde_json::to_vec(body).unwrap();
        match parse(&buf, "bob").unwrap() {
            PutBody::Publish(p) => (buf, p),
            other => panic!("not a publish: {other:?}"),
        }
    }

    #[test]
    fn decodes_the_tarball_in_place() {
        let tarball: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let body = json!({"_id": "x", "name": "x", "versions": {"1.0.0": {"name": "x"}},
            "_attachments": {"x-1.0.0.tgz": {"data": STANDARD.encode(&tarball), "length": tarball.len()}}});
        let (mut buf, p) = publish(&body);
        assert_eq!(p.versions.len(), 1);
        assert_eq!(p.attachments[0].file, "x-1.0.0.tgz");
        assert_eq!(p.attachments[0].length, Some(100_000));
        decode_attachment(&mut buf, p.attachments[0].data.unwrap()).unwrap();
        assert_eq!(buf, tarball);
    }

    #[test]
    fn json_escapes_in_the_data_are_undone() {
        let data = STANDARD.encode(b"\xff\xfe\xfd hello world ??? >>>");
        assert!(data.contains('/'));
        let escaped = data.replace('/', "\\/").replacen('A', "\\u0041", 1);
        let text =
            format!(r#"{{"versions":{{}},"_attachments":{{"a.tgz":{{"data":"{escaped}"}}}}}}"#);
        let mut buf = text.into_bytes();
        let PutBody::Publish(p) = parse(&buf, "bob").unwrap() else {
            panic!()
        };
        decode_attachment(&mut buf, p.attachments[0].data.unwrap()).unwrap();
        assert_eq!(buf, b"\xff\xfe\xfd hello world ??? >>>");
    }

    #[test]
    fn bad_base64_is_refused() {
        for data in ["!!!!", "QQ==QQ==", "QQ", "\\u00e9AAA", "\\nAAA"] {
            let text = format!(r#"{{"_attachments":{{"a":{{"data":"{data}"}}}}}}"#);
            let mut buf = text.into_bytes();
            let PutBody::Publish(p) = parse(&buf, "bob").unwrap() else {
                panic!()
            };
            assert!(
                decode_attachment(&mut buf, p.attachments[0].data.unwrap()).is_err(),
                "{data}"
            );
        }
        // Padding inside the text, at a chunk boundary.
        let mut data = "A".repeat(16 * 1024 - 2);
        data.push_str("==");
        data.push_str("AAAA");
        let text = format!(r#"{{"_attachments":{{"a":{{"data":"{data}"}}}}}}"#);
        let mut buf = text.into_bytes();
        let PutBody::Publish(p) = parse(&buf, "bob").unwrap() else {
            panic!()
        };
        assert!(decode_attachment(&mut buf, p.attachments[0].data.unwrap()).is_err());
    }

    #[test]
    fn shapes() {
        let doc = json!({"_id": "x", "_rev": "1-a", "versions": {"1.0.0": {"name": "x", "deprecated": "old",
            "dependencies": {"a": "1"}}, "1.0.1": {"deprecated": 5}, "1.0.2": {}}, "users": {}});
        let buf = serde_json::to_vec(&doc).unwrap();
        let PutBody::Document(d) = parse(&buf, "bob").unwrap() else {
            panic!()
        };
        assert_eq!(
            d,
            json!({"_rev": "1-a", "versions": {"1.0.0": {"deprecated": "old"}, "1.0.1": {"deprecated": false}, "1.0.2": {}}, "users": {}})
        );
        let star = serde_json::to_vec(&json!({"_id": "x", "_rev": "1-a", "users": {"alice": true, "bob": true, "carol": false}}))
            .unwrap();
        assert!(
            matches!(parse(&star, "bob").unwrap(), PutBody::Document(v) if v == json!({"users": {"bob": true}}))
        );
        // Only the caller's own entry counts, and only `true` stars.
        assert!(
            matches!(parse(&star, "carol").unwrap(), PutBody::Document(v) if v == json!({"users": {}}))
        );
        assert!(
            matches!(parse(&star, "dave").unwrap(), PutBody::Document(v) if v == json!({"users": {}}))
        );
        let twice = br#"{"users": {"bob": false, "bob": true}}"#;
        assert!(
            matches!(parse(twice, "bob"), Err(PublishBodyError::Json(m)) if m.contains("twice"))
        );
        let not_object = serde_json::to_vec(&json!({"users": ["bob"]})).unwrap();
        assert!(matches!(
            parse(&not_object, "bob"),
            Err(PublishBodyError::NotAnObject("users"))
        ));
        let by_position = serde_json::to_vec(&json!({"versions": {"1.0.0": ["old"]}})).unwrap();
        assert!(
            matches!(parse(&by_position, "bob"), Err(PublishBodyError::Json(m)) if m.contains("not an object"))
        );
        let odd = serde_json::to_vec(&json!({"versions": 3})).unwrap();
        assert!(
            matches!(parse(&odd, "bob").unwrap(), PutBody::Document(v) if v["versions"].is_null())
        );
        let empty = serde_json::to_vec(&json!({"_attachments": {}})).unwrap();
        assert!(matches!(
            parse(&empty, "bob").unwrap(),
            PutBody::Unrecognised
        ));
        assert!(matches!(
            parse(b" [1,2]", "bob"),
            Err(PublishBodyError::NotAnObject(_))
        ));
        assert!(matches!(
            parse(b"{not json", "bob"),
            Err(PublishBodyError::Json(_))
        ));
        assert!(matches!(
            parse(b"\"just a string\"", "bob"),
            Err(PublishBodyError::NotAnObject(_))
        ));
    }

    #[test]
    fn owned_parts_are_bounded() {
        let many = vec![0; MAX_METADATA_ITEMS + 1];
        let body = json!({"versions": {"1.0.0": {"files": many}}, "_attachments": {"a": {"data": "QQ=="}}});
        let buf = serde_json::to_vec(&body).unwrap();
        assert!(matches!(
            parse(&buf, "bob"),
            Err(PublishBodyError::TooManyItems { .. })
        ));
        let attachments: Map<String, Value> = (0..=MAX_ATTACHMENTS)
            .map(|i| (format!("a{i}"), json!({"data": "QQ=="})))
            .collect();
        let buf = serde_json::to_vec(&json!({"_attachments": attachments})).unwrap();
        assert!(
            matches!(parse(&buf, "bob"), Err(PublishBodyError::Json(m)) if m.contains("more than"))
        );
        let long_id = "x".repeat(MAX_SMALL_FIELD);
        let buf =
            serde_json::to_vec(&json!({"_id": long_id, "_attachments": {"a": {"data": "QQ=="}}}))
                .unwrap();
        assert!(matches!(
            parse(&buf, "bob"),
            Err(PublishBodyError::FieldTooLarge("_id"))
        ));
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let text = r#"{"_attachments":{"a":{"data":"QQ=="},"a":{"data":"Qg=="}}}"#;
        assert!(parse(text.as_bytes(), "bob").is_err());
        let text = r#"{"versions":{},"versions":{},"_attachments":{"a":{"data":"QQ=="}}}"#;
        assert!(parse(text.as_bytes(), "bob").is_err());
    }

    #[test]
    fn odd_attachments_are_refused() {
        for attachment in [
            json!({"data": 5}),
            json!({"data": "QQ==", "length": "1"}),
            json!({"data": "QQ==", "length": -1}),
            // By position, serde would read these as `data` and `length`.
            json!(["QQ==", 1]),
            json!(["QQ=="]),
            json!([]),
            json!("QQ=="),
        ] {
            let buf = serde_json::to_vec(&json!({"_attachments": {"a": attachment}})).unwrap();
            assert!(parse(&buf, "bob").is_err(), "{attachment}");
        }
    }

    #[test]
    fn items_are_counted_outside_strings() {
        assert_eq!(items_upper_bound(br#""a,b:c[{""#), 1);
        assert_eq!(items_upper_bound(br#"{"a":[1,2]}"#), 5);
        assert_eq!(items_upper_bound(br#""\",[""#), 1);
    }

    #[test]
    fn no_input_panics() {
        // A cheap stand-in for fuzzing: every prefix and some mutations of a body.
        let body = serde_json::to_vec(&json!({"_id": "x", "versions": {"1.0.0": {"a": [1, "\\u00"]}},
            "dist-tags": {"latest": "1.0.0"}, "_attachments": {"x.tgz": {"data": "QUJD\\/", "length": 3}}}))
        .unwrap();
        for cut in 0..body.len() {
            for mutation in [None, Some(b'"'), Some(b'\\'), Some(b'{'), Some(0xff)] {
                let mut input = body[..cut].to_vec();
                if let Some(m) = mutation {
                    input.push(m);
                    input.extend_from_slice(&body[cut..]);
                }
                if let Ok(PutBody::Publish(p)) = parse(&input, "bob") {
                    for a in &p.attachments {
                        if let Some(span) = a.data {
                            let _ = decode_attachment(&mut input.clone(), span);
                        }
                    }
                }
            }
        }
    }
}
