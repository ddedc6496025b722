//! Address lists for IP allowlists: IPv4 and IPv6 CIDR prefixes.
//!
//! A list is written as entries separated by spaces, commas or line breaks: `203.0.113.0/24`,
//! `2001:db8::/32`, or a bare address (a /32 or /128). Host bits below the prefix are cleared
//! (`10.1.2.3/8` is `10.0.0.0/8`). IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`), as clients
//! or as entries, are treated as the IPv4 address they carry.

use std::fmt;
use std::net::IpAddr;

/// At most this many entries in one list.
pub const MAX_ENTRIES: usize = 500;

/// One prefix: a network address with its host bits cleared, and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    /// Parses `addr/prefix` or a bare address.
    pub fn parse(entry: &str) -> Option<Net> {
        let (addr, prefix) = match entry.split_once('/') {
            Some((a, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => (a, Some(p.parse::<u8>().ok()?)),
            Some(_) => return None,
            None => (entry, None),
        };
        let addr: IpAddr = addr.parse().ok()?;
        let max = max_prefix(addr);
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return None;
        }
        Some(Net::canonical(addr, prefix))
    }

    /// Folds IPv4-mapped IPv6 prefixes into IPv4 and clears host bits.
    fn canonical(addr: IpAddr, prefix: u8) -> Net {
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), prefix - 96),
                None => (addr, prefix),
            },
            _ => (addr, prefix),
        };
        let addr = match addr {
            IpAddr::V4(a) => IpAddr::V4((u32::from(a) & mask32(prefix)).into()),
            IpAddr::V6(a) => IpAddr::V6((u128::from(a) & mask128(prefix)).into()),
        };
        Net { addr, prefix }
    }

    /// Whether `ip` is inside this prefix.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(a)) => u32::from(a) & mask32(self.prefix) == u32::from(net),
            (IpAddr::V6(net), IpAddr::V6(a)) => u128::from(a) & mask128(self.prefix) == u128::from(net),
            _ => false,
        }
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl fmt::Display for Net {
    /// Full-length prefixes are shown as bare addresses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix == max_prefix(self.addr) {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

/// A list of prefixes. Empty means "anywhere" for an allowlist: see [`NetList::permits`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetList(Vec<Net>);

impl NetList {
    /// Parses entries separated by whitespace or commas; duplicates are dropped. The error
    /// names the first bad entry, in Japanese and English.
    pub fn parse(text: &str) -> Result<NetList, String> {
        let mut nets: Vec<Net> = Vec::new();
        for entry in text.split(|c: char| c.is_whitespace() || c == ',').filter(|e| !e.is_empty()) {
            let net = Net::parse(entry).ok_or_else(|| format!("IPアドレス範囲が不正です: {} (invalid address range)", shorten(entry)))?;
            if !nets.contains(&net) {
                nets.push(net);
            }
        }
        if nets.len() > MAX_ENTRIES {
            return Err(format!("IPアドレス範囲は{MAX_ENTRIES}件までです (at most {MAX_ENTRIES} address ranges)"));
        }
        Ok(NetList(nets))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn nets(&self) -> &[Net] {
        &self.0
    }

    /// Whether some entry contains `ip`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }

    /// The allowlist rule: an empty list admits anyone (even an unknown address); otherwise
    /// the address must be known and listed.
    pub fn permits(&self, ip: Option<IpAddr>) -> bool {
        self.is_empty() || ip.is_some_and(|ip| self.contains(ip))
    }
}

/// A bad entry as shown back in an error: at most 60 characters.
fn shorten(entry: &str) -> String {
    match entry.char_indices().nth(60) {
        Some((i, _)) => format!("{}…", &entry[..i]),
        None => entry.to_string(),
    }
}

impl fmt::Display for NetList {
    /// Entries separated by single spaces; [`NetList::parse`] reads it back unchanged.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, n) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{n}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for NetList {
    type Err = String;
    fn from_str(s: &str) -> Result<NetList, String> {
        NetList::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_prefixes_and_bare_addresses() {
        let l = NetList::parse("203.0.113.0/24 192.0.2.7").unwrap();
        assert!(l.contains(ip("203.0.113.0")));
        assert!(l.contains(ip("203.0.113.255")));
        assert!(!l.contains(ip("203.0.114.1")));
        assert!(l.contains(ip("192.0.2.7")));
        assert!(!l.contains(ip("192.0.2.8")));
        assert!(!l.contains(ip("2001:db8::1")));
    }

    #[test]
    fn ipv6_prefixes() {
        let l = NetList::parse("2001:db8::/32\n::1").unwrap();
        assert!(l.contains(ip("2001:db8:ffff::1")));
        assert!(!l.contains(ip("2001:db9::1")));
        assert!(l.contains(ip("::1")));
        assert!(!l.contains(ip("::2")));
        assert!(!l.contains(ip("127.0.0.1")));
    }

    #[test]
    fn mapped_clients_match_ipv4_entries() {
        let l = NetList::parse("10.0.0.0/8").unwrap();
        assert!(l.contains(ip("::ffff:10.0.0.1")));
        assert!(!l.contains(ip("::ffff:11.0.0.1")));
        // A mapped entry is its IPv4 prefix.
        let m = NetList::parse("::ffff:192.0.2.0/120").unwrap();
        assert_eq!(m.to_string(), "192.0.2.0/24");
        assert!(m.contains(ip("192.0.2.9")));
    }

    #[test]
    fn edges() {
        let all = NetList::parse("0.0.0.0/0, ::/0").unwrap();
        assert!(all.contains(ip("8.8.8.8")));
        assert!(all.contains(ip("2001:db8::1")));
        let host = NetList::parse("10.1.2.3/8").unwrap();
        assert_eq!(host.to_string(), "10.0.0.0/8");
        assert!(host.contains(ip("10.200.0.1")));
    }

    #[test]
    fn bad_entries_are_named() {
        for bad in ["10.0.0.300/8", "10.0.0.0/33", "2001:db8::/129", "10.0.0.0/", "10.0.0.0/+8", "10.0.0.0/8/8", "example.com", "10.0.0.0/ 8x"] {
            let e = NetList::parse(bad).unwrap_err();
            assert!(e.starts_with("IPアドレス範囲が不正です: "), "{bad}: {e}");
            assert!(e.ends_with("(invalid address range)"), "{bad}: {e}");
        }
        let e = NetList::parse("192.0.2.0/24 10.0.0.300/8").unwrap_err();
        assert_eq!(e, "IPアドレス範囲が不正です: 10.0.0.300/8 (invalid address range)");
        let long = "x".repeat(200);
        assert!(NetList::parse(&long).unwrap_err().chars().count() < 110);
        let many: Vec<String> = (0..=MAX_ENTRIES).map(|i| format!("10.{}.{}.0/24", i / 256, i % 256)).collect();
        assert!(NetList::parse(&many.join(" ")).is_err());
    }

    #[test]
    fn display_round_trips() {
        let text = "203.0.113.0/24,2001:DB8::/32\n\n 192.0.2.1 203.0.113.0/24 ::ffff:10.0.0.1";
        let l = NetList::parse(text).unwrap();
        assert_eq!(l.to_string(), "203.0.113.0/24 2001:db8::/32 192.0.2.1 10.0.0.1");
        assert_eq!(NetList::parse(&l.to_string()).unwrap(), l);
        assert_eq!(NetList::parse(" \n").unwrap().to_string(), "");
    }

    #[test]
    fn empty_permits_anyone() {
        let empty = NetList::parse("").unwrap();
        assert!(empty.is_empty());
        assert!(empty.permits(None));
        assert!(empty.permits(Some(ip("203.0.113.9"))));
        let l = NetList::parse("198.51.100.0/24").unwrap();
        assert!(!l.permits(None));
        assert!(!l.permits(Some(ip("203.0.113.9"))));
        assert!(l.permits(Some(ip("198.51.100.7"))));
    }
}
