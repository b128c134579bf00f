//! The client's address: the TCP peer, or, when the peer is a trusted proxy (a load
//! balancer listed in `listen.trusted_proxies`), the right-most `X-Forwarded-For` entry
//! that is not itself a trusted proxy. Entries to the left of that one were written by
//! the client and prove nothing. Throttles, audit lines and the `X-Forwarded-For`
//! guestgate sends upstream all use this one address.

use std::net::IpAddr;
use std::str::FromStr;

/// An address written out without allocating: every forwarded guest request carries
/// one in `X-Forwarded-For` and every audit line one in `client_ip`, and IPv4's
/// `Display` through the formatting machinery cost more than the rest of either.
#[derive(Clone, Copy)]
pub struct IpText {
    buf: [u8; 45],
    len: u8,
}

impl IpText {
    /// The address in its usual text form (`192.0.2.1`, `2001:db8::1`).
    pub fn new(ip: IpAddr) -> Self {
        let mut t = Self {
            buf: [0; 45],
            len: 0,
        };
        match ip {
            IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        t.push(b'.');
                    }
                    if octet >= 100 {
                        t.push(b'0' + octet / 100);
                    }
                    if octet >= 10 {
                        t.push(b'0' + octet / 10 % 10);
                    }
                    t.push(b'0' + octet % 10);
                }
            }
            IpAddr::V6(v6) => {
                use std::io::Write as _;
                let mut cursor = std::io::Cursor::new(&mut t.buf[..]);
                // An IPv6 address is at most 45 characters (with an embedded IPv4).
                if write!(cursor, "{v6}").is_ok() {
                    t.len = u8::try_from(cursor.position()).unwrap_or(0);
                }
            }
        }
        t
    }

    fn push(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(usize::from(self.len)) {
            *slot = b;
            self.len += 1;
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl std::fmt::Debug for IpText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for IpText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// An address block, `10.0.0.0/8` or `2001:db8::/32`; a bare address is a block of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{s}` is not an address block like 10.0.0.0/8 or fd00::/8"))?;
        let net = net.to_canonical();
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("`{s}`: the prefix length must be 0 to {max}")),
            },
        };
        Ok(Self { net, prefix })
    }
}

impl Cidr {
    /// Whether `ip` is inside the block (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let (whole, rest) = (usize::from(bits / 8), bits % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    rest == 0 || (a[whole] ^ b[whole]) >> (8 - rest) == 0
}

/// The proxies whose `X-Forwarded-For` guestgate believes (none by default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(pub Vec<Cidr>);

impl TrustedProxies {
    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The client behind `peer`, reading the `X-Forwarded-For` values (every field line,
    /// in order) right to left past the trusted proxies. An entry that is not an address
    /// stops the walk at the nearest trusted hop: it cannot be placed, so it is not
    /// believed.
    pub fn client<'a>(&self, peer: IpAddr, xff: impl Iterator<Item = &'a [u8]>) -> IpAddr {
        let peer = peer.to_canonical();
        if self.0.is_empty() || !self.trusts(peer) {
            return peer;
        }
        let entries: Vec<&[u8]> = xff.flat_map(|v| v.split(|&b| b == b',')).collect();
        let mut nearest = peer;
        for entry in entries.iter().rev() {
            match parse_entry(entry) {
                Some(ip) if self.trusts(ip) => nearest = ip,
                Some(ip) => return ip,
                None => return nearest,
            }
        }
        nearest
    }
}

/// An `X-Forwarded-For` entry: an address, optionally with a port (`1.2.3.4:80`,
/// `[2001:db8::1]:80`) as some proxies write it.
fn parse_entry(raw: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(raw).ok()?.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    s.parse::<std::net::SocketAddr>()
        .ok()
        .map(|a| a.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The allocation-free text is exactly what `Display` writes, for every address.
        #[test]
        fn ip_text_matches_display(v4 in proptest::prelude::any::<u32>(), v6 in proptest::prelude::any::<u128>()) {
            for ip in [IpAddr::from(std::net::Ipv4Addr::from(v4)), IpAddr::from(std::net::Ipv6Addr::from(v6))] {
                let text = IpText::new(ip);
                proptest::prop_assert_eq!(text.as_str(), ip.to_string());
            }
            let mapped = IpAddr::from(std::net::Ipv4Addr::from(v4).to_ipv6_mapped());
            let text = IpText::new(mapped);
            proptest::prop_assert_eq!(text.as_str(), mapped.to_string());
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn trusted(list: &[&str]) -> TrustedProxies {
        TrustedProxies(list.iter().map(|c| c.parse().unwrap()).collect())
    }

    #[test]
    fn blocks_parse_and_contain() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains(ip("10.200.1.1")) && !c.contains(ip("11.0.0.1")));
        assert!(c.contains(ip("::ffff:10.0.0.1")));
        let c: Cidr = "192.168.1.0/25".parse().unwrap();
        assert!(c.contains(ip("192.168.1.127")) && !c.contains(ip("192.168.1.128")));
        let c: Cidr = "fd00::/8".parse().unwrap();
        assert!(
            c.contains(ip("fd12::1")) && !c.contains(ip("fe80::1")) && !c.contains(ip("10.0.0.1"))
        );
        let c: Cidr = "127.0.0.1".parse().unwrap();
        assert!(c.contains(ip("127.0.0.1")) && !c.contains(ip("127.0.0.2")));
        let c: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(c.contains(ip("8.8.8.8")));
        for bad in [
            "10.0.0.0/33",
            "fd00::/129",
            "x/8",
            "10.0.0/8",
            "",
            "10.0.0.0/-1",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_right_most_untrusted_entry_is_the_client() {
        let lb = trusted(&["10.0.0.0/8"]);
        let client = |peer: &str, xff: &[&str]| {
            lb.client(ip(peer), xff.iter().map(|v| v.as_bytes()))
                .to_string()
        };
        // No trusted proxies configured, or an untrusted peer: the peer, whatever XFF says.
        assert_eq!(
            TrustedProxies::default()
                .client(ip("10.0.0.1"), [b"1.2.3.4".as_slice()].into_iter())
                .to_string(),
            "10.0.0.1"
        );
        assert_eq!(client("203.0.113.9", &["1.2.3.4"]), "203.0.113.9");
        // Behind the balancer.
        assert_eq!(client("10.0.0.1", &["198.51.100.7"]), "198.51.100.7");
        // A forged entry on the left does not win; the balancer's append does.
        assert_eq!(
            client("10.0.0.1", &["1.1.1.1, 198.51.100.7"]),
            "198.51.100.7"
        );
        // Several trusted hops, over several field lines.
        assert_eq!(
            client("10.0.0.1", &["198.51.100.7, 10.1.1.1", "10.2.2.2"]),
            "198.51.100.7"
        );
        // Ports and brackets as some proxies write them.
        assert_eq!(client("10.0.0.1", &["198.51.100.7:4321"]), "198.51.100.7");
        assert_eq!(client("10.0.0.1", &["[2001:db8::5]:443"]), "2001:db8::5");
        // Garbage stops the walk at the nearest trusted hop.
        assert_eq!(client("10.0.0.1", &["evil, 10.9.9.9"]), "10.9.9.9");
        assert_eq!(client("10.0.0.1", &["unknown"]), "10.0.0.1");
        // Only trusted entries, or none: the left-most trusted hop, or the peer.
        assert_eq!(client("10.0.0.1", &["10.3.3.3, 10.4.4.4"]), "10.3.3.3");
        assert_eq!(client("10.0.0.1", &[]), "10.0.0.1");
    }
}
