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

    /// Whether `addr` lies inside one of the ranges; an unknown address lies in none.
    pub fn permits(&self, addr: ClientAddr) -> bool {
        match addr {
            ClientAddr::Ip(ip) => self.contains(ip),
            ClientAddr::Unknown => false,
        }
    }
}

/// Where a request came from, as far as it can be known: the TCP peer, or what a
/// trusted proxy reported. `Unknown` when a proxy's header could not be read; it
/// matches no range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientAddr {
    Ip(IpAddr),
    Unknown,
}

impl ClientAddr {
    pub fn ip(self) -> Option<IpAddr> {
        match self {
            ClientAddr::Ip(ip) => Some(ip),
            ClientAddr::Unknown => None,
        }
    }
}

impl From<IpAddr> for ClientAddr {
    fn from(ip: IpAddr) -> Self {
        ClientAddr::Ip(canonical(ip))
    }
}

impl std::fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientAddr::Ip(ip) => write!(f, "{ip}"),
            ClientAddr::Unknown => f.write_str("unknown"),
        }
    }
}

impl CidrList {
    /// Parses one address as a proxy writes it in `X-Forwarded-For`: `a.b.c.d`,
    /// `a.b.c.d:port`, a bare IPv6 address, `[v6]` or `[v6]:port`. Anything else
    /// (`unknown`, obfuscated names, garbage) is `None`. Only the whitespace HTTP
    /// allows around a list item (space, tab) is ignored.
    pub fn parse_forwarded(entry: &str) -> Option<IpAddr> {
        let entry = entry.trim_matches([' ', '\t']);
        if let Ok(ip) = entry.parse::<IpAddr>() {
            return Some(canonical(ip));
        }
        if let Some(rest) = entry.strip_prefix('[') {
            let (inside, after) = rest.split_once(']')?;
            if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
                return None;
            }
            return inside
                .parse::<std::net::Ipv6Addr>()
                .ok()
                .map(|v6| canonical(IpAddr::V6(v6)));
        }
        let (host, port) = entry.rsplit_once(':')?;
        if !is_port(port) {
            return None;
        }
        host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
    }
}

/// A port as proxies write it: decimal digits only (`u16::from_str` alone also takes
/// a leading `+`).
fn is_port(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && text.parse::<u16>().is_ok()
}

/// Maps an IPv4-mapped IPv6 address back to IPv4.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(addr),
        v4 => v4,
    }
}

/// One range. The prefix length is plain decimal (`/08` is refused: it reads as
/// something else to some tools). An IPv4-mapped IPv6 range (`::ffff:10.0.0.0/104`)
/// is stored as the IPv4 range it means, since client addresses are compared as IPv4.
fn parse_one(text: &str) -> Option<IpNet> {
    let (addr, len) = text.split_once('/')?;
    if len.is_empty()
        || !len.bytes().all(|b| b.is_ascii_digit())
        || len.len() > 3
        || (len.len() > 1 && len.starts_with('0'))
    {
        return None;
    }
    let addr: IpAddr = addr.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    if let IpAddr::V6(v6) = addr
        && let Some(v4) = v6.to_ipv4_mapped()
    {
        // Shorter than /96 would reach beyond the mapped space: refused.
        let v4_len = len.checked_sub(96)?;
        return IpNet::new(IpAddr::V4(v4), v4_len).ok();
    }
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
    fn mapped_ranges_become_ipv4() {
        let list = CidrList::parse_entries(&["::ffff:192.0.2.0/120"])
            .unwrap()
            .unwrap();
        assert_eq!(list.to_strings(), ["192.0.2.0/24"]);
        assert!(list.contains("192.0.2.9".parse().unwrap()));
        assert!(list.contains("::ffff:192.0.2.9".parse().unwrap()));
        assert!(!list.contains("192.0.3.9".parse().unwrap()));
        assert!(!list.permits(ClientAddr::Unknown));
    }

    #[test]
    fn forwarded_entries_in_the_forms_proxies_write() {
        let p = CidrList::parse_forwarded;
        assert_eq!(p("198.51.100.7"), Some("198.51.100.7".parse().unwrap()));
        assert_eq!(
            p(" 198.51.100.7:5555 "),
            Some("198.51.100.7".parse().unwrap())
        );
        assert_eq!(p("[2001:db8::1]"), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(p("[2001:db8::1]:443"), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(p("2001:db8::1"), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(p("[::ffff:10.1.2.3]:80"), Some("10.1.2.3".parse().unwrap()));
        for bad in [
            "unknown",
            "_hidden",
            "",
            "198.51.100.7:",
            "198.51.100.7:99999",
            "[2001:db8::1",
            "[2001:db8::1]x",
            "1.2.3",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }

    /// Found by `fuzz/fuzz_targets/cidr.rs`: a port was read with `u16::from_str`,
    /// which takes a leading `+`.
    #[test]
    fn forwarded_ports_are_digits_only() {
        let p = CidrList::parse_forwarded;
        assert_eq!(p("[::f9]:0"), Some("::f9".parse().unwrap()));
        assert_eq!(p("198.51.100.7:80"), Some("198.51.100.7".parse().unwrap()));
        for bad in [
            "[::f9]:+0",
            "198.51.100.7:+80",
            "198.51.100.7:-1",
            "[::1]: 80",
        ] {
            assert_eq!(p(bad), None, "{bad:?}");
        }
    }

    /// Found by `fuzz/fuzz_targets/cidr.rs`: `str::trim` also dropped vertical tabs,
    /// line breaks and Unicode spaces, so `"\u{b}2001:db8::1"` read as an address.
    #[test]
    fn forwarded_entries_ignore_only_http_whitespace() {
        let p = CidrList::parse_forwarded;
        assert_eq!(
            p("\t198.51.100.7 \t"),
            Some("198.51.100.7".parse().unwrap())
        );
        for bad in [
            "\u{b}2001:db8::1",
            "\u{c}198.51.100.7",
            "198.51.100.7\r\n",
            "\n[2001:db8::1]:443",
            "\u{3000}198.51.100.7",
            "\u{a0}198.51.100.7",
        ] {
            assert_eq!(p(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn rejects_bad_entries_with_npm_message() {
        check_invalid("X.X.X.X./YY", "X.X.X.X./YY");
        check_invalid("10.0.0.1", "10.0.0.1");
        check_invalid("10.0.0.0/33", "10.0.0.0/33");
        check_invalid("10.0.0.0/8,", "");
        check_invalid("10.0.0.0/+8", "10.0.0.0/+8");
        check_invalid("10.0.0.0/08", "10.0.0.0/08");
        check_invalid("10.0.0.0/008", "10.0.0.0/008");
        check_invalid("::ffff:10.0.0.0/95", "::ffff:10.0.0.0/95");
        check_invalid("010.0.0.0/8", "010.0.0.0/8");
        let err = CidrList::parse_entries(&["1.2.3.4/40"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "CIDR whitelist contains invalid CIDR entry: 1.2.3.4/40"
        );
    }
}
