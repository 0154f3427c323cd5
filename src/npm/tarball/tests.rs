use super::*;
use std::io::Write;

/// One raw tar entry: type byte, path (written into the header as is) and data.
struct E<'a>(u8, &'a str, &'a [u8]);

fn header(kind: u8, path: &[u8], size: u64) -> [u8; 512] {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::new(kind));
    let name = &mut h.as_old_mut().name;
    name[..path.len()].copy_from_slice(path);
    h.set_cksum();
    let mut out = [0u8; 512];
    out.copy_from_slice(h.as_bytes());
    out
}

/// A tar stream of `entries`, with or without the end-of-archive blocks.
fn tar_bytes(entries: &[E<'_>], end: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for E(kind, path, data) in entries {
        out.extend_from_slice(&header(*kind, path.as_bytes(), data.len() as u64));
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    if end {
        out.resize(out.len() + 1024, 0);
    }
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn tgz(entries: &[E<'_>]) -> Vec<u8> {
    gzip(&tar_bytes(entries, true))
}

const MANIFEST: &[u8] = br#"{"name":"x","version":"1.0.0"}"#;

fn small_limits() -> Limits {
    Limits {
        max_unpacked_bytes: 1024 * 1024,
        max_entries: 100,
        max_path_bytes: 200,
    }
}

fn refused_with(result: Result<TarballFacts, TarballError>, needle: &str) {
    match result {
        Err(TarballError::Refused(why)) => assert!(why.contains(needle), "{why}"),
        other => panic!("expected a refusal about {needle:?}, got {other:?}"),
    }
}

#[test]
fn reads_an_npm_tarball() {
    let facts = inspect(
        &tgz(&[
            E(b'0', "package/package.json", MANIFEST),
            E(b'0', "package/index.js", b"module.exports = 1;\n"),
            E(b'0', "package/binding.gyp", b"{}"),
            E(b'0', "package/npm-shrinkwrap.json", b"{}"),
            E(b'5', "package/lib/", b""),
            E(b'0', "package/lib/a.js", b"1"),
        ]),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(facts.manifest["name"], "x");
    assert_eq!(facts.file_count, 5);
    assert_eq!(facts.unpacked_size, MANIFEST.len() as u64 + 20 + 2 + 2 + 1);
    assert!(facts.has_binding_gyp && facts.has_gyp_file && facts.has_shrinkwrap);
}

#[test]
fn the_first_component_is_dropped_whatever_its_name() {
    let facts = inspect(
        &tgz(&[
            E(b'0', "node-x/package.json", MANIFEST),
            E(b'0', "./lib/addon.gyp", b""),
        ]),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(facts.manifest["version"], "1.0.0");
    assert!(!facts.has_gyp_file, "lib/addon.gyp is not at the root");
    let facts = inspect(
        &tgz(&[
            E(b'0', "package/./package.json", MANIFEST),
            E(b'0', "p//addon.gyp", b""),
        ]),
        &Limits::default(),
    )
    .unwrap();
    assert!(facts.has_gyp_file && !facts.has_binding_gyp);
    // A nested package.json is not the manifest.
    assert_eq!(
        inspect(
            &tgz(&[E(b'0', "package/sub/package.json", MANIFEST)]),
            &Limits::default()
        )
        .unwrap_err(),
        TarballError::NoManifest
    );
}

#[test]
fn declared_sizes_are_checked_before_reading() {
    // A header claiming 10 GiB followed by nothing: refused on the header alone.
    let mut h = tar::Header::new_gnu();
    h.set_path("package/big").unwrap();
    h.set_size(10 * 1024 * 1024 * 1024);
    h.set_cksum();
    let raw = h.as_bytes().to_vec();
    assert_eq!(
        inspect(&gzip(&raw), &Limits::default()).unwrap_err(),
        TarballError::UnpackedTooLarge {
            limit: DEFAULT_MAX_UNPACKED_BYTES
        }
    );
}

#[test]
fn a_gzip_bomb_stops_at_the_cap() {
    let zeros = vec![0u8; 8 * 1024 * 1024];
    let bomb = tgz(&[
        E(b'0', "package/package.json", MANIFEST),
        E(b'0', "package/zeros", &zeros),
    ]);
    assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
    let err = inspect(&bomb, &small_limits()).unwrap_err();
    assert!(err.is_too_large(), "{err}");
    // Zeros after the archive count too.
    let mut trailing = tar_bytes(&[E(b'0', "package/package.json", MANIFEST)], true);
    trailing.extend_from_slice(&zeros);
    assert!(
        inspect(&gzip(&trailing), &small_limits())
            .unwrap_err()
            .is_too_large()
    );
    // Under a generous cap the same archive is fine.
    assert!(inspect(&bomb, &Limits::default()).is_ok());
}

#[test]
fn entry_and_path_caps() {
    let names: Vec<String> = (0..101).map(|i| format!("package/f{i}")).collect();
    let mut entries: Vec<E<'_>> = names.iter().map(|n| E(b'0', n, b"")).collect();
    entries.push(E(b'0', "package/package.json", MANIFEST));
    assert_eq!(
        inspect(&tgz(&entries), &small_limits()).unwrap_err(),
        TarballError::TooManyEntries { limit: 100 }
    );
    let long = format!("package/{}", "d/".repeat(150));
    let long_name = E(b'L', "././@LongLink", long.as_bytes());
    assert_eq!(
        inspect(
            &tgz(&[
                long_name,
                E(b'0', "x", b""),
                E(b'0', "package/package.json", MANIFEST)
            ]),
            &small_limits()
        )
        .unwrap_err(),
        TarballError::PathTooLong { limit: 200 }
    );
}

#[test]
fn long_names_and_pax_paths_name_the_next_entry() {
    let long = format!("package/{}/package.json", "d".repeat(120));
    let facts = inspect(
        &tgz(&[
            E(b'L', "././@LongLink", format!("{long}\0").as_bytes()),
            E(b'0', "package/placeholder", b"{}"),
            E(b'0', "package/package.json", MANIFEST),
        ]),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(facts.file_count, 2);
    let record = "29 path=package/package.json\n";
    assert_eq!(record.len(), 29);
    let facts = inspect(
        &tgz(&[
            E(b'x', "PaxHeader", record.as_bytes()),
            E(b'0', "package/other", MANIFEST),
        ]),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(
        facts.manifest["name"], "x",
        "the PAX path names the manifest"
    );
}

#[test]
fn ambiguous_archives_are_refused() {
    let good = E(b'0', "package/package.json", MANIFEST);
    let evil: &[u8] = br#"{"name":"x","version":"1.0.0","scripts":{"install":"curl evil"}}"#;
    // node-tar reads on after one zero block; the tar crate would stop.
    let mut hidden = tar_bytes(&[E(b'0', "package/package.json", MANIFEST)], false);
    hidden.extend_from_slice(&[0; 512]);
    hidden.extend_from_slice(&tar_bytes(&[E(b'0', "package/package.json", evil)], true));
    refused_with(
        inspect(&gzip(&hidden), &Limits::default()),
        "end-of-archive",
    );
    refused_with(
        inspect(
            &tgz(&[
                E(b'0', "package/package.json", MANIFEST),
                E(b'0', "package/package.json", evil),
            ]),
            &Limits::default(),
        ),
        "twice",
    );
    refused_with(
        inspect(
            &tgz(&[
                E(b'0', "package/package.json", MANIFEST),
                E(b'0', "other/package.json", evil),
            ]),
            &Limits::default(),
        ),
        "twice",
    );
    for spelling in [
        "package/PACKAGE.JSON",
        "package/Package.json",
        "package/pac\u{212a}age.json",
        "package/package.j\u{17f}on",
    ] {
        refused_with(
            inspect(
                &tgz(&[
                    E(b'0', "package/package.json", MANIFEST),
                    E(b'0', spelling, evil),
                ]),
                &Limits::default(),
            ),
            "case-insensitive",
        );
    }
    let pax_size = "12 size=999\n";
    refused_with(
        inspect(
            &tgz(&[E(b'x', "PaxHeader", pax_size.as_bytes()), good]),
            &Limits::default(),
        ),
        "size",
    );
    refused_with(
        inspect(
            &tgz(&[
                E(b'2', "package/package.json", b""),
                E(b'0', "package/real.json", MANIFEST),
            ]),
            &Limits::default(),
        ),
        "not a regular file",
    );
    refused_with(
        inspect(
            &tgz(&[E(b'0', "package/../package.json", MANIFEST)]),
            &Limits::default(),
        ),
        "..",
    );
    refused_with(
        inspect(
            &tgz(&[E(b'0', "package\\package.json", MANIFEST)]),
            &Limits::default(),
        ),
        "\\",
    );
    refused_with(
        inspect(
            &tgz(&[
                E(b'X', "package/x", b"path=package/package.json"),
                E(b'0', "package/package.json", MANIFEST),
            ]),
            &Limits::default(),
        ),
        "unsupported type",
    );
    refused_with(
        inspect(&tgz(&[E(b'S', "package/sparse", b"")]), &Limits::default()),
        "sparse",
    );
    refused_with(
        inspect(
            &tgz(&[
                E(b'5', "package/dir", b"data"),
                E(b'0', "package/package.json", MANIFEST),
            ]),
            &Limits::default(),
        ),
        "carries data",
    );
    refused_with(
        inspect(
            &tgz(&[
                E(b'0', "package/package.json", MANIFEST),
                E(b'x', "PaxHeader", b"23 path=package/x.json\n"),
            ]),
            &Limits::default(),
        ),
        "describes no entry",
    );
}

#[test]
fn gzip_members_are_all_read() {
    // node's zlib reads every member; so does the inspection.
    let mut two = gzip(&tar_bytes(&[E(b'0', "package/index.js", b"1")], false));
    two.extend_from_slice(&gzip(&tar_bytes(
        &[E(b'0', "package/package.json", MANIFEST)],
        true,
    )));
    let facts = inspect(&two, &Limits::default()).unwrap();
    assert_eq!(facts.file_count, 2);
}

#[test]
fn manifests() {
    let mut bom = b"\xef\xbb\xbf".to_vec();
    bom.extend_from_slice(MANIFEST);
    assert!(
        inspect(
            &tgz(&[E(b'0', "package/package.json", &bom)]),
            &Limits::default()
        )
        .is_ok()
    );
    for bad in [&b"[1]"[..], b"{nope", b""] {
        assert!(matches!(
            inspect(
                &tgz(&[E(b'0', "package/package.json", bad)]),
                &Limits::default()
            ),
            Err(TarballError::BadManifest(_))
        ));
    }
    assert_eq!(
        inspect(b"not gzip", &Limits::default()).unwrap_err(),
        TarballError::NotGzip
    );
    let good = tgz(&[E(b'0', "package/package.json", MANIFEST)]);
    assert!(matches!(
        inspect(&good[..good.len() / 2], &Limits::default()),
        Err(TarballError::Corrupt(_))
    ));
}

#[test]
fn no_input_panics() {
    // A cheap stand-in for fuzzing: flip bytes of a valid tarball, compressed and not.
    let plain = tar_bytes(
        &[
            E(b'L', "././@LongLink", b"package/package.json\0"),
            E(b'0', "x", MANIFEST),
            E(b'x', "PaxHeader", b"23 path=package/y.json\n"),
            E(b'0', "package/z", b"zzz"),
        ],
        true,
    );
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for round in 0..400 {
        let mut bytes = plain.clone();
        for _ in 0..(1 + round % 8) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let at = (seed % bytes.len() as u64) as usize;
            bytes[at] = (seed >> 32) as u8;
        }
        let _ = inspect(&gzip(&bytes), &small_limits());
        let compressed = gzip(&plain);
        let mut mangled = compressed.clone();
        let at = 10 + (seed % (compressed.len() as u64 - 10)) as usize;
        mangled[at] ^= (seed >> 40) as u8 | 1;
        let _ = inspect(&mangled, &small_limits());
    }
}
