//! Networks of trusted proxies, as configured; plain `std::net`, so the configuration can
//! name them without the extractors.

use std::net::IpAddr;

/// An address or network a trusted reverse proxy connects from: `10.0.0.0/8`, `fd00::/8`,
/// or a single address such as `192.0.2.7`. IPv4-mapped IPv6 forms count as IPv4.
///
/// Written here rather than taken from a crate: parsing and matching a prefix is forty lines
/// over `std::net`, fully tested with the extractors, and no crate would save more than it
/// costs to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether an address lies inside the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical_ip(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask_v4(u32::from(ip), self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask_v6(u128::from(ip), self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let ip: IpAddr = addr.parse().map_err(|_| {
            format!("{s:?} is not an IP address or network (expected e.g. 10.0.0.0/8, fd00::/8 or 192.0.2.7)")
        })?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| {
                format!("{s:?}: the prefix length must be a number from 0 to {max}")
            })?,
        };
        Ok(Cidr::new(ip, prefix))
    }
}

impl Cidr {
    fn new(ip: IpAddr, prefix: u8) -> Cidr {
        match ip {
            IpAddr::V4(v4) => Cidr {
                network: IpAddr::V4(mask_v4(u32::from(v4), prefix).into()),
                prefix,
            },
            // `::ffff:10.0.0.0/104` is the IPv4 network 10.0.0.0/8.
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) if prefix >= 96 => Cidr::new(IpAddr::V4(v4), prefix - 96),
                _ => Cidr {
                    network: IpAddr::V6(mask_v6(u128::from(v6), prefix).into()),
                    prefix,
                },
            },
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn mask_v4(bits: u32, prefix: u8) -> u32 {
    bits & u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask_v6(bits: u128, prefix: u8) -> u128 {
    bits & u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

/// IPv4-mapped IPv6 addresses (`::ffff:192.0.2.7`, what a dual-stack socket reports for an
/// IPv4 peer) as plain IPv4, so one client has one address in audit rows and rate limits.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}
