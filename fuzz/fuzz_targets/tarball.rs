//! `tarball::inspect` on what a publish carries. Input that starts with the gzip
//! magic is inspected as it is (real `.tgz` seeds); anything else is gzipped first,
//! so the fuzzer reaches the tar reader without having to forge gzip checksums
//! (raw `.tar` seeds).
#![no_main]

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use libfuzzer_sys::fuzz_target;
use std::io::{Read, Write};
use tessera::npm::tarball::{Limits, inspect};

fuzz_target!(|data: &[u8]| {
    let (tgz, tar_len) = if data.starts_with(&[0x1f, 0x8b]) {
        // At most 64 MiB: libFuzzer's inputs are small, but a gzip bomb is not.
        let mut tar = Vec::new();
        let read = GzDecoder::new(data).take(64 << 20).read_to_end(&mut tar);
        (data.to_vec(), read.ok().map(|_| tar.len() as u64))
    } else {
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(data).unwrap();
        (gz.finish().unwrap(), Some(data.len() as u64))
    };
    if let Ok(facts) = inspect(&tgz, &Limits::default()) {
        // An accepted tarball has its package.json, which is a counted file.
        assert!(facts.file_count >= 1);
        // Every counted byte is in the archive: headers cannot claim sizes (sparse
        // holes, pax records) that the unpacked size would then report.
        if let Some(tar_len) = tar_len {
            assert!(
                facts.unpacked_size <= tar_len,
                "{facts:?} from {tar_len} bytes"
            );
        }
    }
});
