//! Allowed-address lists for tokens and trusted proxies.
//!
//! Accepts IPv4 and IPv6 ranges in CIDR notation (host bits may be set, as npm
//! allows). An IPv4-mapped IPv6 client address matches IPv4 ranges.

use ipnet::IpNet;
use std::net::IpAddr;

/// A validated, non-empty list of CIDR ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrList(Vec<IpNet>);

/// The first entry that is not a CIDR range, with npm's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CIDR whitelist contains invalid CIDR entry: {0}")]
pub struct InvalidCidr(pub String);

impl CidrList {
    /// Parses entries that may each hold a comma-separated list (`--cidr=a,b` or
    /// repeated flags). Returns `Ok(None)` when there are no entries at all.
    pub fn parse_entries<S: AsRef<str>>(entries: &[S]) -> Result<Option<Self>, InvalidCidr> {
        let mut nets = Vec::new();
        for entry in entries {
            for part in entry.as_ref().split(',') {
                let trimmed = part.trim();
                nets.push(parse_one(trimmed).ok_or_else(|| InvalidCidr(trimmed.to_owned()))?);
            }
        }
        Ok(if nets.is_empty() {
            None
        } else {
            Some(CidrList(nets))
        })
    }

    /// Whether `addr` lies inside one of the ranges.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        self.0.iter().any(|net| net.contains(&addr))
    }

    /// The ranges as text, for storage and listings.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

/// Maps an IPv4-mapped IPv6 address back to IPv4.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(addr),
        v4 => v4,
    }
}

fn parse_one(text: &str) -> Option<IpNet> {
    let (addr, len) = text.split_once('/')?;
    if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) || len.len() > 3 {
        return None;
    }
    let addr: IpAddr = addr.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    IpNet::new(addr, len).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_invalid(input: &str, bad: &str) {
        assert_eq!(
            CidrList::parse_entries(&[input]).unwrap_err(),
            InvalidCidr(bad.into())
        );
    }

    #[test]
    fn parses_v4_v6_and_lists() {
        let list = CidrList::parse_entries(&["192.0.2.0/24, 10.0.0.1/8", "2001:db8::/32"])
            .unwrap()
            .unwrap();
        assert_eq!(
            list.to_strings(),
            ["192.0.2.0/24", "10.0.0.1/8", "2001:db8::/32"]
        );
        assert!(list.contains("192.0.2.77".parse().unwrap()));
        assert!(list.contains("10.200.0.1".parse().unwrap()));
        assert!(list.contains("2001:db8::1".parse().unwrap()));
        assert!(!list.contains("192.0.3.1".parse().unwrap()));
        assert!(list.contains("::ffff:192.0.2.5".parse().unwrap()));
        assert_eq!(CidrList::parse_entries::<&str>(&[]).unwrap(), None);
    }

    #[test]
    fn rejects_bad_entries_with_npm_message() {
        check_invalid("X.X.X.X./YY", "X.X.X.X./YY");
        check_invalid("10.0.0.1", "10.0.0.1");
        check_invalid("10.0.0.0/33", "10.0.0.0/33");
        check_invalid("10.0.0.0/8,", "");
        check_invalid("10.0.0.0/+8", "10.0.0.0/+8");
        let err = CidrList::parse_entries(&["1.2.3.4/40"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "CIDR whitelist contains invalid CIDR entry: 1.2.3.4/40"
        );
    }
}
