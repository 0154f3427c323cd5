//! Reads what the registry needs from a package tarball (`package/package.json`, the
//! root files that change how npm installs it, the file count and unpacked size) and
//! refuses tarballs that are too big to unpack or that npm could read differently.
//!
//! The work is bounded before it is done: the sum of the entries' declared sizes is
//! checked against `max_unpacked_bytes` before their data is read, the decompressed
//! stream itself is capped, and entry count and path length are limited. Nothing is
//! kept in memory but `package.json` (at most `MAX_MANIFEST_BYTES`) and one hash per
//! file path.
//!
//! npm installs a tarball with node-tar, which reads some archives differently from
//! the `tar` crate; a difference would let a `package.json` hide behind another one
//! (manifest confusion). Such archives are refused rather than guessed at:
//! - an entry after a zero block (node-tar reads on after a single zero block, the
//!   `tar` crate stops) and a gzip stream of several members (read whole: node's zlib
//!   reads them all);
//! - PAX `size` overrides, GNU sparse files, unknown entry types (node-tar treats some
//!   of them, such as the old `X` header, as metadata), and links or directories
//!   carrying data;
//! - the same file path twice (node-tar writes both, the last one wins), `..` and `\`
//!   in paths (a `\` is a separator when installing on Windows), a non-regular
//!   `package.json`, and a second root file that a case-insensitive file system
//!   (macOS, Windows) would write over `package.json`.
//!
//! Like npm (`strip: 1`), the first path component is dropped whatever it is called.
//! Pure: no I/O; any input gives `Ok` or `Err`, never a panic.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::io::Read;

use serde_json::Value;

use super::publish_body::{MAX_METADATA_ITEMS, items_upper_bound};
use crate::crypto::token_format::{PlainToken, TokenScanner};

/// Most distinct access tokens one tarball's scan reports.
pub const MAX_FOUND_TOKENS: usize = 32;
/// Bytes read at a time while scanning a file for tokens.
const SCAN_CHUNK: usize = 64 * 1024;

/// A well-formed Tessera access token found in a file of the tarball.
#[derive(Debug, Clone)]
pub struct FoundToken {
    /// The file, relative to the package folder.
    pub path: String,
    pub token: PlainToken,
}

/// Largest `package.json` read from a tarball.
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;
/// Default cap on the unpacked size (`max_unpacked_bytes`).
pub const DEFAULT_MAX_UNPACKED_BYTES: u64 = 1024 * 1024 * 1024;
/// Default cap on entries: well above the largest real packages (tens of thousands).
pub const DEFAULT_MAX_ENTRIES: u64 = 200_000;
/// Longest entry path (Linux's `PATH_MAX`).
pub const DEFAULT_MAX_PATH_BYTES: usize = 4096;
/// Largest PAX extended header read.
const MAX_PAX_HEADER_BYTES: u64 = 64 * 1024;
const BLOCK: u64 = 512;

/// Caps on the work one tarball may cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Sum of the entries' sizes.
    pub max_unpacked_bytes: u64,
    pub max_entries: u64,
    pub max_path_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_unpacked_bytes: DEFAULT_MAX_UNPACKED_BYTES,
            max_entries: DEFAULT_MAX_ENTRIES,
            max_path_bytes: DEFAULT_MAX_PATH_BYTES,
        }
    }
}

/// Facts read from inside a `.tgz`.
#[derive(Debug, Clone)]
pub struct TarballFacts {
    /// The root `package.json` (an object).
    pub manifest: serde_json::Map<String, Value>,
    /// A root `npm-shrinkwrap.json`.
    pub has_shrinkwrap: bool,
    /// A root `binding.gyp` (also in another letter case): npm runs `node-gyp rebuild`
    /// on install unless the package has its own install script.
    pub has_binding_gyp: bool,
    /// A root `*.gyp` file: what `npm publish` looks for to add that install script.
    pub has_gyp_file: bool,
    /// Regular files.
    pub file_count: u64,
    /// Sum of the regular files' sizes.
    pub unpacked_size: u64,
    /// Well-formed Tessera tokens in any file (at most `MAX_FOUND_TOKENS`, each once).
    pub tokens: Vec<FoundToken>,
}

/// Why a tarball is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TarballError {
    #[error("the attachment is not a gzipped tarball")]
    NotGzip,
    #[error("corrupt tarball: {0}")]
    Corrupt(String),
    #[error("the tarball unpacks to more than {limit} bytes (the registry's max_unpacked_bytes)")]
    UnpackedTooLarge { limit: u64 },
    #[error("the tarball has more than {limit} entries")]
    TooManyEntries { limit: u64 },
    #[error("the tarball has a path longer than {limit} bytes")]
    PathTooLong { limit: usize },
    #[error("the tarball is refused: {0}")]
    Refused(String),
    #[error("the tarball has no package/package.json")]
    NoManifest,
    #[error("the tarball's package.json is unusable: {0}")]
    BadManifest(String),
}

impl TarballError {
    /// Whether the tarball was refused for its size rather than its content.
    pub fn is_too_large(&self) -> bool {
        matches!(
            self,
            TarballError::UnpackedTooLarge { .. } | TarballError::TooManyEntries { .. }
        )
    }
}

fn refused(why: impl Into<String>) -> TarballError {
    TarballError::Refused(why.into())
}

/// Counts decompressed bytes and fails past `cap`.
struct Capped<R> {
    inner: R,
    read: u64,
    cap: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read = self.read.saturating_add(n as u64);
        if self.read > self.cap {
            return Err(std::io::Error::other(CAP_REACHED));
        }
        Ok(n)
    }
}

const CAP_REACHED: &str = "decompressed size cap reached";

/// What kind of entry a header describes, by its type byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Directory,
    Link,
    LongName,
    LongLink,
    Pax,
    PaxGlobal,
}

fn kind(byte: u8) -> Result<Kind, TarballError> {
    Ok(match byte {
        b'0' | b'\0' | b'7' => Kind::File,
        b'5' => Kind::Directory,
        b'1' | b'2' => Kind::Link,
        b'L' => Kind::LongName,
        b'K' => Kind::LongLink,
        b'x' => Kind::Pax,
        b'g' => Kind::PaxGlobal,
        b'S' => return Err(refused("it contains a sparse file")),
        other => {
            return Err(refused(format!(
                "it contains an entry of unsupported type {:?}",
                char::from(other)
            )));
        }
    })
}

/// Extension headers waiting for the entry they describe.
#[derive(Default)]
struct Pending {
    long_name: Option<Vec<u8>>,
    pax_path: Option<Vec<u8>>,
    long_link: bool,
    pax: bool,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.long_name.is_none() && self.pax_path.is_none() && !self.long_link && !self.pax
    }
}

/// Inspects a gzipped tar within `limits`.
pub fn inspect(bytes: &[u8], limits: &Limits) -> Result<TarballFacts, TarballError> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Err(TarballError::NotGzip);
    }
    // Headers and padding come on top of the data: at most two blocks per entry, plus
    // the end-of-archive blocks and record padding.
    let cap = limits.max_unpacked_bytes.saturating_add(
        limits
            .max_entries
            .saturating_add(64)
            .saturating_mul(2 * BLOCK),
    );
    let reader = Capped {
        inner: flate2::read::MultiGzDecoder::new(bytes),
        read: 0,
        cap,
    };
    let mut archive = tar::Archive::new(reader);
    // Read past zero blocks so an entry hidden behind one is seen (and refused).
    archive.set_ignore_zeros(true);
    let mut walk = Walk {
        limits,
        paths: HashSet::new(),
        hasher: RandomState::new(),
        pending: Pending::default(),
        next_header: 0,
        entries: 0,
        declared: 0,
        manifest: None,
        has_shrinkwrap: false,
        has_binding_gyp: false,
        has_gyp_file: false,
        file_count: 0,
        unpacked_size: 0,
        tokens: Vec::new(),
        scanner: TokenScanner::default(),
        chunk: Vec::new(),
    };
    let result = walk.run(&mut archive);
    let stream_cap_reached = archive.into_inner().read > cap;
    match result {
        Err(_) if stream_cap_reached => Err(TarballError::UnpackedTooLarge {
            limit: limits.max_unpacked_bytes,
        }),
        Err(e) => Err(e),
        Ok(()) => walk.facts(),
    }
}

/// The regular files of a tarball that already passed `inspect`, with their sizes,
/// paths without the leading `package/`, at most `max` of them (for review pages).
pub fn list_files(bytes: &[u8], max: usize) -> Result<Vec<(String, u64)>, TarballError> {
    let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(bytes));
    let mut out = Vec::new();
    for entry in archive.entries().map_err(corrupt)? {
        let entry = entry.map_err(corrupt)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry
            .path()
            .map_err(corrupt)?
            .to_string_lossy()
            .into_owned();
        let path = path
            .split_once('/')
            .map_or(path.as_str(), |(_, rest)| rest)
            .to_owned();
        out.push((path, entry.size()));
        if out.len() >= max {
            break;
        }
    }
    out.sort();
    Ok(out)
}

struct Walk<'l> {
    limits: &'l Limits,
    paths: HashSet<u64>,
    hasher: RandomState,
    pending: Pending,
    next_header: u64,
    entries: u64,
    declared: u64,
    manifest: Option<serde_json::Map<String, Value>>,
    has_shrinkwrap: bool,
    has_binding_gyp: bool,
    has_gyp_file: bool,
    file_count: u64,
    unpacked_size: u64,
    tokens: Vec<FoundToken>,
    scanner: TokenScanner,
    /// One read buffer for every file's scan.
    chunk: Vec<u8>,
}

fn corrupt(e: std::io::Error) -> TarballError {
    TarballError::Corrupt(e.to_string())
}

impl Walk<'_> {
    fn run<R: Read>(&mut self, archive: &mut tar::Archive<R>) -> Result<(), TarballError> {
        let entries = archive.entries().map_err(corrupt)?.raw(true);
        for entry in entries {
            let mut entry = entry.map_err(corrupt)?;
            self.entry(&mut entry)?;
        }
        if !self.pending.is_empty() {
            return Err(refused(
                "it ends with an extended header that describes no entry",
            ));
        }
        Ok(())
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), TarballError> {
        if entry.raw_header_position() != self.next_header {
            return Err(refused("it has entries after an end-of-archive block"));
        }
        let size = entry.size();
        let padded = size
            .checked_add(BLOCK - 1)
            .map(|s| s & !(BLOCK - 1))
            .ok_or_else(|| TarballError::Corrupt("entry size overflows".into()))?;
        self.next_header = entry
            .raw_file_position()
            .checked_add(padded)
            .ok_or_else(|| TarballError::Corrupt("entry size overflows".into()))?;
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(TarballError::TooManyEntries {
                limit: self.limits.max_entries,
            });
        }
        self.declared = self.declared.saturating_add(size);
        if self.declared > self.limits.max_unpacked_bytes {
            return Err(TarballError::UnpackedTooLarge {
                limit: self.limits.max_unpacked_bytes,
            });
        }
        let kind = kind(entry.header().entry_type().as_byte())?;
        match kind {
            Kind::LongName => {
                if self.pending.long_name.is_some() {
                    return Err(refused("two long names describe one entry"));
                }
                let mut name = self.read_small(entry, self.max_path_plus_nul())?;
                while name.last() == Some(&0) {
                    name.pop();
                }
                self.pending.long_name = Some(name);
            }
            Kind::LongLink => {
                if self.pending.long_link {
                    return Err(refused("two long link names describe one entry"));
                }
                self.read_small(entry, self.max_path_plus_nul())?;
                self.pending.long_link = true;
            }
            Kind::Pax | Kind::PaxGlobal => {
                let global = kind == Kind::PaxGlobal;
                if !global && self.pending.pax {
                    return Err(refused("two extended headers describe one entry"));
                }
                let data = self.read_small(entry, MAX_PAX_HEADER_BYTES)?;
                let path = pax_path(&data)?;
                if !global {
                    self.pending.pax = true;
                    self.pending.pax_path = path;
                }
            }
            Kind::File | Kind::Directory | Kind::Link => {
                let pending = std::mem::take(&mut self.pending);
                let raw = match (pending.pax_path, pending.long_name) {
                    (Some(_), Some(_)) => {
                        return Err(refused("an entry has both a PAX path and a long name"));
                    }
                    (Some(p), None) | (None, Some(p)) => p,
                    (None, None) => entry.header().path_bytes().into_owned(),
                };
                let path = self.effective_path(&raw)?;
                if kind != Kind::File && size != 0 {
                    return Err(refused("a link or directory entry carries data"));
                }
                self.member(kind, &path, size, entry)?;
            }
        }
        Ok(())
    }

    fn max_path_plus_nul(&self) -> u64 {
        self.limits.max_path_bytes as u64 + 1
    }

    /// Reads a small entry whole, refusing it past `max`.
    fn read_small<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        max: u64,
    ) -> Result<Vec<u8>, TarballError> {
        if entry.size() > max {
            return Err(if max == MAX_PAX_HEADER_BYTES {
                refused("it has an oversized extended header")
            } else {
                TarballError::PathTooLong {
                    limit: self.limits.max_path_bytes,
                }
            });
        }
        let mut data = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut data).map_err(corrupt)?;
        Ok(data)
    }

    /// The path npm extracts an entry to, relative to the package folder: the first
    /// component dropped, empty and `.` components ignored. `None` for the top folder.
    fn effective_path(&self, raw: &[u8]) -> Result<Option<String>, TarballError> {
        if raw.len() > self.limits.max_path_bytes {
            return Err(TarballError::PathTooLong {
                limit: self.limits.max_path_bytes,
            });
        }
        let text =
            std::str::from_utf8(raw).map_err(|_| refused("it has a path that is not UTF-8"))?;
        if text.contains('\\') || text.contains('\0') {
            return Err(refused(format!("the path {text:?} contains `\\` or NUL")));
        }
        let mut parts = text.split('/');
        parts.next();
        let mut kept = Vec::new();
        for part in parts {
            match part {
                "" | "." => {}
                ".." => return Err(refused(format!("the path {text:?} contains `..`"))),
                other => kept.push(other),
            }
        }
        Ok((!kept.is_empty()).then(|| kept.join("/")))
    }

    fn member<R: Read>(
        &mut self,
        kind: Kind,
        path: &Option<String>,
        size: u64,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<(), TarballError> {
        let Some(path) = path else {
            return Ok(());
        };
        let at_root = !path.contains('/');
        let folded = at_root.then(|| fold_case(path));
        let is_manifest = path == "package.json";
        if at_root && !is_manifest && folded.as_deref() == Some("package.json") {
            return Err(refused(format!(
                "{path:?} would replace package.json on a case-insensitive file system"
            )));
        }
        if kind != Kind::File {
            if is_manifest {
                return Err(refused("package.json is not a regular file"));
            }
            return Ok(());
        }
        if !self.paths.insert(self.hasher.hash_one(path)) {
            return Err(refused(format!("it contains {path:?} twice")));
        }
        self.file_count += 1;
        self.unpacked_size = self.unpacked_size.saturating_add(size);
        if let Some(name) = folded.as_deref() {
            match name {
                "npm-shrinkwrap.json" => self.has_shrinkwrap = true,
                "binding.gyp" => self.has_binding_gyp = true,
                _ => {}
            }
            if path.ends_with(".gyp") && !path.starts_with('.') {
                self.has_gyp_file = true;
            }
        }
        if is_manifest {
            let (manifest, text) = read_manifest(entry, size)?;
            self.scan(path, &text);
            self.manifest = Some(manifest);
        } else {
            self.scan_entry(path, entry)?;
        }
        Ok(())
    }

    /// Scans one whole file already in memory for tokens.
    fn scan(&mut self, path: &str, data: &[u8]) {
        let found = &mut self.tokens;
        self.scanner.reset();
        self.scanner
            .feed(data, &mut |token| remember(found, path, token));
    }

    /// Scans a file's data for tokens as it streams by, one chunk in memory at a time.
    fn scan_entry<R: Read>(
        &mut self,
        path: &str,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<(), TarballError> {
        self.scanner.reset();
        self.chunk.resize(SCAN_CHUNK, 0);
        loop {
            let n = entry.read(&mut self.chunk).map_err(corrupt)?;
            if n == 0 {
                return Ok(());
            }
            let found = &mut self.tokens;
            self.scanner
                .feed(&self.chunk[..n], &mut |token| remember(found, path, token));
        }
    }

    fn facts(self) -> Result<TarballFacts, TarballError> {
        Ok(TarballFacts {
            manifest: self.manifest.ok_or(TarballError::NoManifest)?,
            has_shrinkwrap: self.has_shrinkwrap,
            has_binding_gyp: self.has_binding_gyp,
            has_gyp_file: self.has_gyp_file,
            file_count: self.file_count,
            unpacked_size: self.unpacked_size,
            tokens: self.tokens,
        })
    }
}

/// Keeps a found token once, up to `MAX_FOUND_TOKENS`.
fn remember(found: &mut Vec<FoundToken>, path: &str, token: PlainToken) {
    if found.len() < MAX_FOUND_TOKENS && !found.iter().any(|f| f.token.expose() == token.expose()) {
        found.push(FoundToken {
            path: path.to_owned(),
            token,
        });
    }
}

/// The manifest, and its bytes (scanned for tokens like every file).
fn read_manifest<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    size: u64,
) -> Result<(serde_json::Map<String, Value>, Vec<u8>), TarballError> {
    if size > MAX_MANIFEST_BYTES {
        return Err(TarballError::BadManifest(format!(
            "it is larger than {MAX_MANIFEST_BYTES} bytes"
        )));
    }
    let mut raw = Vec::with_capacity(size as usize);
    entry.read_to_end(&mut raw).map_err(corrupt)?;
    // npm reads package.json with a byte-order mark as if it had none.
    let text = raw.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&raw);
    if items_upper_bound(text) > MAX_METADATA_ITEMS {
        return Err(TarballError::BadManifest(format!(
            "it holds more than {MAX_METADATA_ITEMS} JSON values"
        )));
    }
    match serde_json::from_slice::<Value>(text) {
        Ok(Value::Object(map)) => Ok((map, raw)),
        Ok(_) => Err(TarballError::BadManifest("it is not a JSON object".into())),
        Err(e) => Err(TarballError::BadManifest(format!("invalid JSON: {e}"))),
    }
}

/// The `path` of a PAX header; refuses the records node-tar and the `tar` crate
/// would apply differently.
fn pax_path(data: &[u8]) -> Result<Option<Vec<u8>>, TarballError> {
    let bad = || refused("it has a malformed extended header");
    let mut path = None;
    let mut rest = data;
    while !rest.is_empty() {
        // "<length> <key>=<value>\n", the length counting the whole record.
        let space = rest.iter().position(|&b| b == b' ').ok_or_else(bad)?;
        let length: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|&n| n > space + 1 && n <= rest.len())
            .ok_or_else(bad)?;
        let record = &rest[space + 1..length];
        rest = &rest[length..];
        let record = record.strip_suffix(b"\n").ok_or_else(bad)?;
        let eq = record.iter().position(|&b| b == b'=').ok_or_else(bad)?;
        let (key, value) = (&record[..eq], &record[eq + 1..]);
        if key == b"size" || key.starts_with(b"GNU.sparse") {
            return Err(refused(
                "it has an extended header that changes an entry's size",
            ));
        }
        if key == b"path" {
            path = Some(value.to_vec());
        }
    }
    Ok(path)
}

/// A root file name as a case-insensitive file system compares it: lower case, with
/// the letters that fold onto `s` and `k` (`ſ`, the Kelvin sign) folded.
fn fold_case(name: &str) -> String {
    name.chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'ſ' => 's',
            '\u{212a}' => 'k',
            other => other,
        })
        .collect()
}

#[cfg(test)]
mod tests;
