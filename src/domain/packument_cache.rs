//! Rendered packuments, kept per package and validated by the package's `rev` on
//! every request (one indexed read), so a write through any instance is seen at once.

use bytes::Bytes;
use std::sync::Arc;

/// Both renderings of one revision of a packument, each also gzip-compressed once
/// here so a request never compresses a packument.
#[derive(Debug)]
pub struct CachedDoc {
    pub rev: i64,
    pub modified_ms: i64,
    /// `modified_ms` as an HTTP date (`Last-Modified`), formatted once.
    pub modified_http: String,
    pub full: Rendition,
    pub abbreviated: Rendition,
}

/// One rendering of a packument with its gzip encoding and both strong ETags (a
/// strong validator is per encoding).
#[derive(Debug)]
pub struct Rendition {
    pub body: Bytes,
    pub gzip: Bytes,
    pub etag: String,
    pub etag_gzip: String,
}

impl Rendition {
    pub fn new(body: Bytes) -> Rendition {
        let etag = etag_of(&body);
        Rendition {
            gzip: gzip(&body),
            etag_gzip: format!("{}-gzip\"", etag.trim_end_matches('"')),
            etag,
            body,
        }
    }
}

/// An HTTP date (RFC 7231 IMF-fixdate) of unix milliseconds.
pub fn http_date(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.format(&f).unwrap_or_default()
}

/// Name → latest rendered revision, bounded by the bytes it holds (quick_cache:
/// when full, the least useful documents go, not everything at once).
#[derive(Debug)]
pub struct PackumentCache {
    docs: quick_cache::sync::Cache<String, Arc<CachedDoc>, DocWeight>,
    /// Serialises `put`'s compare-and-insert, so an older revision never replaces a
    /// newer one.
    put: std::sync::Mutex<()>,
}

/// Bytes held by the cached renderings.
const CAPACITY_BYTES: u64 = 256 << 20;

impl Default for PackumentCache {
    fn default() -> Self {
        PackumentCache {
            docs: quick_cache::sync::Cache::with_weighter(4096, CAPACITY_BYTES, DocWeight),
            put: std::sync::Mutex::default(),
        }
    }
}

/// A document weighs its four bodies plus its name and headers.
#[derive(Debug, Clone, Copy)]
struct DocWeight;

impl quick_cache::Weighter<String, Arc<CachedDoc>> for DocWeight {
    fn weight(&self, name: &String, d: &Arc<CachedDoc>) -> u64 {
        (name.len()
            + d.full.body.len()
            + d.full.gzip.len()
            + d.abbreviated.body.len()
            + d.abbreviated.gzip.len()
            + 512) as u64
    }
}

impl PackumentCache {
    /// The cached document if it is exactly revision `rev`.
    pub fn get(&self, name: &str, rev: i64) -> Option<Arc<CachedDoc>> {
        self.docs.get(name).filter(|d| d.rev == rev)
    }

    pub fn put(&self, name: &str, doc: Arc<CachedDoc>) {
        let _one = self.put.lock().unwrap_or_else(|p| p.into_inner());
        match self.docs.get(name) {
            Some(existing) if existing.rev > doc.rev => {}
            _ => self.docs.insert(name.to_owned(), doc),
        }
    }
}

/// The gzip encoding of a rendered document (compressed once per revision).
pub fn gzip(body: &[u8]) -> Bytes {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4 + 64),
        flate2::Compression::default(),
    );
    encoder
        .write_all(body)
        .expect("writing to a Vec cannot fail");
    Bytes::from(encoder.finish().expect("writing to a Vec cannot fail"))
}

/// A strong ETag over the body.
pub fn etag_of(body: &[u8]) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(body);
    format!("\"{}\"", hex::encode(&h[..12]))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_gzip_etag_is_distinct_and_strong() {
        let r = super::Rendition::new(bytes::Bytes::from_static(b"{}"));
        assert!(r.etag.starts_with('"') && r.etag.ends_with('"'));
        assert_eq!(
            r.etag_gzip,
            format!("{}-gzip\"", &r.etag[..r.etag.len() - 1])
        );
    }

    #[test]
    fn http_dates_are_imf_fixdates() {
        assert_eq!(
            super::http_date(784_111_777_000),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
    }

    #[test]
    fn gzip_round_trips() {
        use std::io::Read;
        let body = br#"{"name":"x","versions":{}}"#.repeat(50);
        let packed = super::gzip(&body);
        assert!(packed.len() < body.len());
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&packed[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body);
    }
}
