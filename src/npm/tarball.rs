//! Reads what the registry needs from a package tarball: `package/package.json`
//! and whether it ships `npm-shrinkwrap.json` or `binding.gyp`.

use std::io::Read;

/// A package.json larger than this is not read (npm's own are a few KiB).
const MAX_MANIFEST_BYTES: u64 = 16 * 1024 * 1024;

/// Facts read from inside a `.tgz`.
#[derive(Debug, Default)]
pub struct TarballFacts {
    pub manifest: Option<serde_json::Value>,
    pub has_shrinkwrap: bool,
    pub has_binding_gyp: bool,
    pub file_count: u64,
    pub unpacked_size: u64,
}

/// Inspects a gzipped tar. Stops reading large files early; errors mean "not a tarball".
pub fn inspect(bytes: &[u8]) -> Result<TarballFacts, String> {
    let gz = flate2::read::GzDecoder::new(bytes);
    let mut archive = tar::Archive::new(gz);
    let mut facts = TarballFacts::default();
    let entries = archive
        .entries()
        .map_err(|e| format!("not a gzipped tarball: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("corrupt tarball: {e}"))?;
        let path = entry
            .path()
            .map_err(|e| format!("corrupt tarball: {e}"))?
            .into_owned();
        // A GNU sparse file declares holes it does not store (up to 2^64 bytes), and
        // npm's tar skips such entries: `npm pack` never writes one.
        if entry.header().entry_type().is_gnu_sparse() {
            return Err(format!(
                "the tarball holds a sparse file ({}), which npm cannot unpack",
                path.display()
            ));
        }
        // The bytes the entry holds: a pax `size` record wins over the header's field,
        // and the reader has checked them by the next entry, so the total never
        // exceeds the archive.
        let size = entry.size();
        facts.file_count += 1;
        facts.unpacked_size = facts.unpacked_size.saturating_add(size);
        // npm strips the first path component, whatever it is called.
        let inner: std::path::PathBuf = path.components().skip(1).collect();
        let inner = inner.to_string_lossy();
        match inner.as_ref() {
            "package.json" if size <= MAX_MANIFEST_BYTES => {
                let mut text = String::new();
                entry
                    .read_to_string(&mut text)
                    .map_err(|e| format!("bad package.json: {e}"))?;
                facts.manifest = serde_json::from_str(&text).ok();
            }
            "npm-shrinkwrap.json" => facts.has_shrinkwrap = true,
            "binding.gyp" => facts.has_binding_gyp = true,
            _ => {}
        }
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gzip(tar: Vec<u8>) -> Vec<u8> {
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(&tar).unwrap();
        gz.finish().unwrap()
    }

    fn file(builder: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, path, data).unwrap();
    }

    #[test]
    fn reads_the_manifest_and_the_special_files() {
        let mut b = tar::Builder::new(Vec::new());
        file(
            &mut b,
            "package/package.json",
            br#"{"name":"x","version":"1.0.0"}"#,
        );
        file(&mut b, "package/npm-shrinkwrap.json", b"{}");
        file(&mut b, "package/binding.gyp", b"{}");
        let facts = inspect(&gzip(b.into_inner().unwrap())).unwrap();
        assert_eq!(facts.manifest.unwrap()["name"], "x");
        assert!(facts.has_shrinkwrap && facts.has_binding_gyp);
        assert_eq!(facts.file_count, 3);
        assert_eq!(facts.unpacked_size, 30 + 2 + 2);
        assert!(inspect(b"not a tarball").is_err());
    }

    /// A GNU sparse entry declaring a 2^63-byte hole counted 2^63 bytes into
    /// `unpackedSize` (found by `fuzz/fuzz_targets/tarball.rs` from the seed
    /// `gnu-sparse-size-overflow.tar`), and two of them overflowed the total (a panic
    /// with overflow checks, a wrapped size without).
    #[test]
    fn sparse_files_are_refused() {
        for holes in [1, 2] {
            let mut b = tar::Builder::new(Vec::new());
            for i in 0..holes {
                let mut header = tar::Header::new_gnu();
                header.set_entry_type(tar::EntryType::GNUSparse);
                header.set_size(0);
                let gnu = header.as_gnu_mut().unwrap();
                gnu.set_real_size(1 << 63);
                gnu.sparse[0].set_offset(1 << 63);
                gnu.sparse[0].set_length(0);
                header.set_path(format!("package/hole{i}")).unwrap();
                header.set_cksum();
                b.append(&header, std::io::empty()).unwrap();
            }
            file(
                &mut b,
                "package/package.json",
                br#"{"name":"x","version":"1.0.0"}"#,
            );
            let err = inspect(&gzip(b.into_inner().unwrap())).unwrap_err();
            assert!(err.contains("sparse file (package/hole0)"), "{err}");
        }
    }

    /// A pax `size` record overrides the header's size field. The manifest limit was
    /// checked against the header, so a package.json of any size (a gzip bomb) was
    /// read into memory when its header said it was small. Seed
    /// `fuzz/corpus/tarball/pax-size-overrides-header.tar`.
    #[test]
    fn the_manifest_limit_counts_the_pax_size() {
        let mut text = b"{}".to_vec();
        text.resize(MAX_MANIFEST_BYTES as usize + 1, b' ');
        let mut b = tar::Builder::new(Vec::new());
        let size = text.len().to_string();
        b.append_pax_extensions([("size", size.as_bytes())])
            .unwrap();
        let mut header = tar::Header::new_ustar();
        header.set_path("package/package.json").unwrap();
        header.set_size(2);
        header.set_mode(0o644);
        header.set_cksum();
        b.append(&header, &text[..]).unwrap();
        let facts = inspect(&gzip(b.into_inner().unwrap())).unwrap();
        assert!(
            facts.manifest.is_none(),
            "an oversized package.json was read"
        );
        assert_eq!(facts.unpacked_size, text.len() as u64);
    }
}
