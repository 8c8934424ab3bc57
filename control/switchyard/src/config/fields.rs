//! Field types of the config file that are parsed once, when the file is
//! read: MAC addresses, prefixes and protocols. Each deserializes from the
//! string an operator writes, so a mistake is reported by the TOML reader
//! with the file's line and column and the field's name.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use dataplane::tables::proto;
use dataplane::wire::MacAddr;
use serde::de::{self, Deserializer};
use serde::Deserialize;

/// Deserializes any `FromStr` type from a string, keeping its error text.
fn from_str<'de, T, D>(d: D) -> Result<T, D::Error>
where
    T: FromStr<Err = String>,
    D: Deserializer<'de>,
{
    let text = String::deserialize(d)?;
    text.parse().map_err(de::Error::custom)
}

/// `aa:bb:cc:dd:ee:ff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mac(pub MacAddr);

impl FromStr for Mac {
    type Err = String;

    fn from_str(s: &str) -> Result<Mac, String> {
        let not_mac = || format!("{s:?} is not a MAC address (want six hex octets separated by ':')");
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 6 {
            return Err(not_mac());
        }
        let mut mac = [0u8; 6];
        for (octet, part) in mac.iter_mut().zip(parts) {
            if part.is_empty() || part.len() > 2 {
                return Err(not_mac());
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| not_mac())?;
        }
        Ok(Mac(MacAddr(mac)))
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Mac, D::Error> {
        from_str(d)
    }
}

/// `address/len`, with the length checked against the family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl FromStr for Prefix {
    type Err = String;

    fn from_str(s: &str) -> Result<Prefix, String> {
        let (addr, len) = s.split_once('/').ok_or_else(|| format!("{s:?} is not a prefix (want address/len)"))?;
        let addr = IpAddr::from_str(addr).map_err(|_| format!("{s:?}: bad address"))?;
        let len: u8 = len.parse().map_err(|_| format!("{s:?}: bad prefix length"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > max {
            return Err(format!("{s:?}: prefix length {len} is longer than {max}"));
        }
        Ok(Prefix { addr, len })
    }
}

impl<'de> Deserialize<'de> for Prefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Prefix, D::Error> {
        from_str(d)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// An IPv4 prefix (`10.244.1.0/24`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Prefix {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl<'de> Deserialize<'de> for Ipv4Prefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Ipv4Prefix, D::Error> {
        match Prefix::deserialize(d)? {
            Prefix { addr: IpAddr::V4(addr), len } => Ok(Ipv4Prefix { addr, len }),
            p => Err(de::Error::custom(format!("\"{p}\" is not an IPv4 prefix"))),
        }
    }
}

/// An IPv6 prefix (`fd00:10:244:1::/64`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Prefix {
    pub addr: Ipv6Addr,
    pub len: u8,
}

impl<'de> Deserialize<'de> for Ipv6Prefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Ipv6Prefix, D::Error> {
        match Prefix::deserialize(d)? {
            Prefix { addr: IpAddr::V6(addr), len } => Ok(Ipv6Prefix { addr, len }),
            p => Err(de::Error::custom(format!("\"{p}\" is not an IPv6 prefix"))),
        }
    }
}

/// A protocol as Kubernetes writes it: TCP, UDP or SCTP (any case).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Protocol(pub u8);

impl Default for Protocol {
    fn default() -> Protocol {
        Protocol(proto::TCP)
    }
}

impl FromStr for Protocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Protocol, String> {
        match s.to_ascii_uppercase().as_str() {
            "TCP" => Ok(Protocol(proto::TCP)),
            "UDP" => Ok(Protocol(proto::UDP)),
            "SCTP" => Ok(Protocol(proto::SCTP)),
            other => Err(format!("unknown protocol {other:?} (want TCP, UDP or SCTP)")),
        }
    }
}

impl<'de> Deserialize<'de> for Protocol {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Protocol, D::Error> {
        from_str(d)
    }
}

/// A backend's `address:port` (`[v6]:port` for IPv6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendAddr(pub SocketAddr);

impl FromStr for BackendAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<BackendAddr, String> {
        SocketAddr::from_str(s)
            .map(BackendAddr)
            .map_err(|_| format!("backend {s:?} is not address:port ([address]:port for IPv6)"))
    }
}

impl<'de> Deserialize<'de> for BackendAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<BackendAddr, D::Error> {
        from_str(d)
    }
}

/// A listening address (`127.0.0.1:9476`), or nothing (`""`: disabled).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listen(pub Option<SocketAddr>);

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Listen, D::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Ok(Listen(None));
        }
        text.parse()
            .map(|a| Listen(Some(a)))
            .map_err(|_| de::Error::custom(format!("{text:?} is not address:port (or \"\" to disable)")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_prefixes_and_protocols_parse_or_say_why() {
        assert_eq!("02:00:00:00:00:0a".parse::<Mac>(), Ok(Mac(MacAddr([2, 0, 0, 0, 0, 10]))));
        assert!("02:00:00:00:00".parse::<Mac>().unwrap_err().contains("not a MAC address"));
        assert!("02:00:00:00:00:100".parse::<Mac>().is_err());
        assert_eq!("10.0.0.0/8".parse::<Prefix>().map(|p| p.len), Ok(8));
        assert!("10.0.0.0/33".parse::<Prefix>().unwrap_err().contains("longer than 32"));
        assert!("fd00::".parse::<Prefix>().unwrap_err().contains("not a prefix"));
        assert!("fd00::zz/64".parse::<Prefix>().unwrap_err().contains("bad address"));
        assert_eq!("sctp".parse::<Protocol>(), Ok(Protocol(proto::SCTP)));
        assert!("ICMP".parse::<Protocol>().unwrap_err().contains("unknown protocol"));
        assert!("10.0.0.1".parse::<BackendAddr>().unwrap_err().contains("not address:port"));
    }
}
