//! File-system helpers shared by the blob folder and the embedded database: telling
//! "out of space" apart from other I/O failures, and probing a folder for free space.
//! Depends on nothing else in the crate.

use std::path::Path;

/// Bytes the readiness probe writes: a folder that cannot take this much is full for
/// any practical write (a tarball, a WAL frame).
const PROBE_BYTES: usize = 16 * 1024;

/// ENOSPC or EDQUOT.
pub fn is_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// Whether `dir`'s file system is out of space: writes a small probe file named
/// `name` into `dir` and removes it. Failures other than "full" count as not full
/// (readiness reports those through its own checks).
pub fn probe_full(dir: &Path, name: &str) -> bool {
    use std::io::Write;
    let path = dir.join(name);
    // No fsync: file systems reserve space when a write is accepted (tmpfs, and
    // ext4/XFS delayed allocation), so a full one refuses the write itself.
    let result = std::fs::File::create(&path).and_then(|mut f| f.write_all(&[0u8; PROBE_BYTES]));
    let _ = std::fs::remove_file(&path);
    matches!(result, Err(e) if is_full(&e))
}
