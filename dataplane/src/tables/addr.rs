//! One address type for both families, so that flow keys and table keys have
//! one fixed layout. IPv4 addresses are held IPv4-mapped (`::ffff:a.b.c.d`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(transparent)]
pub struct Addr(pub [u8; 16]);

impl Addr {
    pub const UNSPECIFIED: Addr = Addr([0; 16]);

    /// `::ffff:a.b.c.d`. Built as one 128-bit value rather than byte by
    /// byte: the flow key is read back in 8-byte words right after, and byte
    /// stores would stall that read (store forwarding).
    #[inline]
    pub const fn from_v4_octets(o: [u8; 4]) -> Addr {
        let mapped = (0xffff_u128 << 32) | u32::from_be_bytes(o) as u128;
        Addr(mapped.to_be_bytes())
    }

    #[inline]
    pub fn is_v4(&self) -> bool {
        self.0[..12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]
    }

    /// The IPv4 octets; meaningful only when [`Addr::is_v4`].
    #[inline]
    pub fn v4_octets(&self) -> [u8; 4] {
        [self.0[12], self.0[13], self.0[14], self.0[15]]
    }

    /// The IPv4 address as a number; meaningful only when [`Addr::is_v4`].
    #[inline]
    pub fn v4(&self) -> u32 {
        u32::from_be_bytes(self.v4_octets())
    }

    pub fn to_ip(self) -> IpAddr {
        if self.is_v4() {
            IpAddr::V4(Ipv4Addr::from(self.v4_octets()))
        } else {
            IpAddr::V6(Ipv6Addr::from(self.0))
        }
    }

    /// Whether `self` lies in `prefix/len` (len counts bits of the family's
    /// own address, so an IPv4 /24 is written as 24).
    pub fn in_prefix(&self, prefix: &Addr, len: u8) -> bool {
        if self.is_v4() != prefix.is_v4() {
            return false;
        }
        let bits = if self.is_v4() { 96 + u32::from(len.min(32)) } else { u32::from(len.min(128)) };
        let a = u128::from_be_bytes(self.0);
        let b = u128::from_be_bytes(prefix.0);
        let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
        a & mask == b & mask
    }
}

impl From<Ipv4Addr> for Addr {
    #[inline]
    fn from(a: Ipv4Addr) -> Addr {
        Addr::from_v4_octets(a.octets())
    }
}

impl From<Ipv6Addr> for Addr {
    #[inline]
    fn from(a: Ipv6Addr) -> Addr {
        Addr(a.octets())
    }
}

impl From<IpAddr> for Addr {
    fn from(a: IpAddr) -> Addr {
        match a {
            IpAddr::V4(a) => a.into(),
            IpAddr::V6(a) => a.into(),
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_ip().fmt(f)
    }
}

impl fmt::Debug for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_round_trips_and_prefixes() {
        let a: Addr = Ipv4Addr::new(10, 1, 2, 3).into();
        assert!(a.is_v4());
        assert_eq!(a.to_ip(), IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)));
        let net: Addr = Ipv4Addr::new(10, 1, 2, 0).into();
        assert!(a.in_prefix(&net, 24));
        assert!(!a.in_prefix(&net, 32));
        assert!(a.in_prefix(&Addr::from(Ipv4Addr::UNSPECIFIED), 0));
        let v6: Addr = "fd00::1".parse::<Ipv6Addr>().unwrap().into();
        assert!(!v6.is_v4());
        assert!(!v6.in_prefix(&net, 0));
        assert!(v6.in_prefix(&"fd00::".parse::<Ipv6Addr>().unwrap().into(), 64));
    }
}
