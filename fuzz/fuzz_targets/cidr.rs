//! CIDR lists (token ranges, trusted proxies) and `X-Forwarded-For` entries. Each
//! input line is one entry as `--cidr` or the token API receives it, and also one
//! forwarded entry as a proxy writes it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;
use tessera::cidr::{CidrList, ClientAddr, canonical};

/// The only characters a forwarded address can be written with (`ip`, `ip:port`,
/// `[v6]`, `[v6]:port`), plus the optional whitespace HTTP allows around it.
fn forwarded_char(c: char) -> bool {
    c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']' | ' ' | '\t')
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let entries: Vec<&str> = text.split('\n').collect();

    let mut addresses: Vec<IpAddr> = Vec::new();
    for entry in &entries {
        if let Some(ip) = CidrList::parse_forwarded(entry) {
            assert!(entry.chars().all(forwarded_char), "{entry:?} gave {ip}");
            assert_eq!(canonical(ip), ip, "a mapped address is read as IPv4");
            addresses.push(ip);
        }
    }

    match CidrList::parse_entries(&entries) {
        Ok(None) => unreachable!("a non-empty entry list always has a part"),
        Ok(Some(list)) => {
            let shown = list.to_strings();
            assert!(!shown.is_empty());
            for net in &shown {
                // Stored as the range it means: never as an IPv4-mapped IPv6 range.
                let (addr, len) = net.split_once('/').expect("a range has a prefix length");
                let addr: IpAddr = addr.parse().expect("a printed range has an address");
                assert_eq!(canonical(addr), addr, "{net} is a mapped range");
                assert!(len == "0" || !len.starts_with('0'));
            }
            let again = CidrList::parse_entries(&shown)
                .expect("printed ranges re-parse")
                .expect("and are not empty");
            assert_eq!(again, list);
            assert_eq!(again.to_strings(), shown);
            // A stored list joined with commas (one `--cidr=a,b` flag) means the same.
            assert_eq!(
                CidrList::parse_entries(&[shown.join(",")]).unwrap(),
                Some(list.clone())
            );
            assert!(!list.permits(ClientAddr::Unknown));
            for ip in addresses {
                let inside = list.contains(ip);
                assert_eq!(list.permits(ClientAddr::from(ip)), inside);
                if let IpAddr::V4(v4) = ip {
                    // The mapped form of an IPv4 client matches exactly the same ranges.
                    assert_eq!(list.contains(IpAddr::V6(v4.to_ipv6_mapped())), inside);
                }
            }
        }
        Err(err) => {
            assert!(
                text.contains(err.0.as_str()),
                "the refused entry {:?} comes from the input",
                err.0
            );
            assert_eq!(err.0.trim(), err.0);
        }
    }
});
