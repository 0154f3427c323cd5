//! Reads what the registry needs from a package tarball: `package/package.json`
//! and whether it ships `npm-shrinkwrap.json` or `binding.gyp`.

use std::io::Read;

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
        let size = entry.header().size().unwrap_or(0);
        facts.file_count += 1;
        facts.unpacked_size += size;
        // npm strips the first path component, whatever it is called.
        let inner: std::path::PathBuf = path.components().skip(1).collect();
        let inner = inner.to_string_lossy();
        match inner.as_ref() {
            "package.json" if size < 16 * 1024 * 1024 => {
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
