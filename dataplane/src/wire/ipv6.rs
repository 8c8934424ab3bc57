//! IPv6 fixed headers (RFC 8200).
//!
//! Extension headers are not walked: a packet whose next header is one
//! ([`is_extension_header`]) goes to the slow path, and
//! [`Ipv6Packet::payload`] is simply everything after the fixed header.

use std::net::Ipv6Addr;

use super::ip::IpProtocol;
use super::{read_array, read_u16, read_u32, write_bytes, write_u16, write_u32, Error, Result};

mod field {
    /// Version (4 bits), traffic class (8 bits), flow label (20 bits).
    pub const VERSION_TC_FLOW: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: usize = 8;
    pub const DST_ADDR: usize = 24;
    pub const PAYLOAD: usize = 40;

    pub const FLOW_LABEL_MASK: u32 = 0x000F_FFFF;
    pub const TRAFFIC_CLASS_SHIFT: u32 = 20;
    pub const VERSION_SHIFT: u32 = 28;
}

/// True if `next_header` names an IPv6 extension header (IANA "IPv6
/// Extension Header Types"), which the fast path does not parse.
#[inline]
pub fn is_extension_header(next_header: u8) -> bool {
    matches!(
        next_header,
        IpProtocol::HOP_BY_HOP
            | IpProtocol::IPV6_ROUTE
            | IpProtocol::IPV6_FRAG
            | IpProtocol::ESP
            | IpProtocol::AH
            | IpProtocol::IPV6_DEST_OPTS
            | 135 // Mobility
            | 139 // Host Identity Protocol
            | 140 // Shim6
            | 253 // experimentation and testing
            | 254 // experimentation and testing
    )
}

/// A view of an IPv6 packet: the 40-byte fixed header and its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Length of the fixed header.
    pub const HEADER_LEN: usize = field::PAYLOAD;

    /// Wraps `buffer` without any check.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wraps `buffer` after checking it holds a complete IPv6 packet:
    /// at least 40 bytes ([`Error::Truncated`]), version 6
    /// ([`Error::BadVersion`]), and 40 + payload length within the buffer
    /// ([`Error::Truncated`]). Bytes after that (Ethernet padding) are
    /// allowed and excluded from the payload.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let data = buffer.as_ref();
        if data.len() < field::PAYLOAD {
            return Err(Error::Truncated);
        }
        let packet = Ipv6Packet::new_unchecked(data);
        if packet.version() != 6 {
            return Err(Error::BadVersion);
        }
        if field::PAYLOAD + usize::from(packet.payload_len()) > data.len() {
            return Err(Error::Truncated);
        }
        Ok(Ipv6Packet { buffer })
    }

    /// Gives the buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn data(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    #[inline]
    fn version_tc_flow(&self) -> u32 {
        read_u32(self.data(), field::VERSION_TC_FLOW)
    }

    #[inline]
    pub fn version(&self) -> u8 {
        (self.version_tc_flow() >> field::VERSION_SHIFT) as u8
    }

    /// DSCP (high 6 bits) and ECN (low 2 bits).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (self.version_tc_flow() >> field::TRAFFIC_CLASS_SHIFT) as u8
    }

    /// The 20-bit flow label.
    #[inline]
    pub fn flow_label(&self) -> u32 {
        self.version_tc_flow() & field::FLOW_LABEL_MASK
    }

    /// Length of everything after the fixed header, extension headers
    /// included.
    #[inline]
    pub fn payload_len(&self) -> u16 {
        read_u16(self.data(), field::PAYLOAD_LEN)
    }

    /// The first header after the fixed one: an upper-layer protocol or an
    /// extension header (see [`is_extension_header`]).
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.data()[field::NEXT_HEADER]
    }

    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.data()[field::HOP_LIMIT]
    }

    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(read_array::<16>(self.data(), field::SRC_ADDR))
    }

    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(read_array::<16>(self.data(), field::DST_ADDR))
    }

    /// The `payload_len` bytes after the fixed header; empty if the length
    /// field was made inconsistent after the check.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let end = field::PAYLOAD + usize::from(self.payload_len());
        self.data().get(field::PAYLOAD..end).unwrap_or_default()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    #[inline]
    fn set_version_tc_flow_bits(&mut self, mask: u32, bits: u32) {
        let word = read_u32(self.data(), field::VERSION_TC_FLOW);
        write_u32(self.data_mut(), field::VERSION_TC_FLOW, (word & !mask) | (bits & mask));
    }

    #[inline]
    pub fn set_version(&mut self, version: u8) {
        self.set_version_tc_flow_bits(0xF000_0000, u32::from(version) << field::VERSION_SHIFT);
    }

    #[inline]
    pub fn set_traffic_class(&mut self, traffic_class: u8) {
        self.set_version_tc_flow_bits(0x0FF0_0000, u32::from(traffic_class) << field::TRAFFIC_CLASS_SHIFT);
    }

    /// Sets the flow label; bits above the low 20 are ignored.
    #[inline]
    pub fn set_flow_label(&mut self, flow_label: u32) {
        self.set_version_tc_flow_bits(field::FLOW_LABEL_MASK, flow_label);
    }

    #[inline]
    pub fn set_payload_len(&mut self, len: u16) {
        write_u16(self.data_mut(), field::PAYLOAD_LEN, len);
    }

    #[inline]
    pub fn set_next_header(&mut self, next_header: u8) {
        self.data_mut()[field::NEXT_HEADER] = next_header;
    }

    #[inline]
    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        self.data_mut()[field::HOP_LIMIT] = hop_limit;
    }

    /// Sets the source address. IPv6 has no header checksum, but the L4
    /// checksum covers the address: update it with the L4 view's
    /// `adjust_checksum_for_v6_addr(old, new)`.
    #[inline]
    pub fn set_src_addr(&mut self, addr: Ipv6Addr) {
        write_bytes(self.data_mut(), field::SRC_ADDR, &addr.octets());
    }

    /// Sets the destination address (see [`set_src_addr`](Self::set_src_addr)).
    #[inline]
    pub fn set_dst_addr(&mut self, addr: Ipv6Addr) {
        write_bytes(self.data_mut(), field::DST_ADDR, &addr.octets());
    }

    /// Mutable [`payload`](Self::payload).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = field::PAYLOAD + usize::from(self.payload_len());
        self.data_mut().get_mut(field::PAYLOAD..end).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ICMPv6 echo request 2001:db8::1 -> 2001:db8::2 with traffic class
    /// 0xb8 and flow label 0x12345, 8 bytes of payload, 2 bytes of trailing
    /// padding.
    const PACKET: [u8; 50] = [
        0x6b, 0x81, 0x23, 0x45, // version 6, TC 0xb8, flow 0x12345
        0x00, 0x08, 0x3a, 0x40, // payload len 8, ICMPv6, hop limit 64
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // src
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, // dst
        0x80, 0x00, 0x00, 0x00, 0x12, 0x34, 0x00, 0x01, // echo request
        0xee, 0xee, // padding
    ];

    #[test]
    fn getters() {
        let ip = Ipv6Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(ip.version(), 6);
        assert_eq!(ip.traffic_class(), 0xb8);
        assert_eq!(ip.flow_label(), 0x12345);
        assert_eq!(ip.payload_len(), 8);
        assert_eq!(ip.next_header(), IpProtocol::ICMPV6);
        assert_eq!(ip.hop_limit(), 64);
        assert_eq!(ip.src_addr(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(ip.dst_addr(), "2001:db8::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(ip.payload(), &PACKET[40..48]);
    }

    #[test]
    fn setters_round_trip() {
        let mut bytes = [0u8; 44];
        let mut ip = Ipv6Packet::new_unchecked(&mut bytes[..]);
        ip.set_version(6);
        ip.set_traffic_class(0xb8);
        ip.set_flow_label(0x12345);
        ip.set_payload_len(4);
        ip.set_next_header(IpProtocol::UDP);
        ip.set_hop_limit(1);
        ip.set_src_addr("fd00::10".parse().unwrap());
        ip.set_dst_addr("fd00::20".parse().unwrap());
        ip.payload_mut().copy_from_slice(&[9, 8, 7, 6]);
        // Rewriting one sub-field leaves its neighbours alone.
        ip.set_traffic_class(0x01);
        ip.set_flow_label(0xFFF_FFFFF);

        let ip = Ipv6Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(ip.version(), 6);
        assert_eq!(ip.traffic_class(), 0x01);
        assert_eq!(ip.flow_label(), 0xFFFFF);
        assert_eq!(ip.payload_len(), 4);
        assert_eq!(ip.next_header(), IpProtocol::UDP);
        assert_eq!(ip.hop_limit(), 1);
        assert_eq!(ip.src_addr(), "fd00::10".parse::<Ipv6Addr>().unwrap());
        assert_eq!(ip.dst_addr(), "fd00::20".parse::<Ipv6Addr>().unwrap());
        assert_eq!(ip.payload(), &[9, 8, 7, 6]);
    }

    #[test]
    fn rejects_bad_packets() {
        assert_eq!(Ipv6Packet::new_checked(&PACKET[..39]), Err(Error::Truncated));
        let mut v4 = PACKET;
        v4[0] = 0x4b;
        assert_eq!(Ipv6Packet::new_checked(&v4[..]), Err(Error::BadVersion));
        assert_eq!(Ipv6Packet::new_checked(&PACKET[..47]), Err(Error::Truncated));
        assert!(Ipv6Packet::new_checked(&PACKET[..48]).is_ok());
    }

    #[test]
    fn payload_never_panics_after_bad_setters() {
        let mut bytes = PACKET;
        let mut ip = Ipv6Packet::new_checked(&mut bytes[..]).unwrap();
        ip.set_payload_len(0xFFFF);
        assert!(ip.payload().is_empty());
        assert!(ip.payload_mut().is_empty());
    }

    #[test]
    fn extension_headers() {
        for nh in [0, 43, 44, 50, 51, 60, 135, 139, 140, 253, 254] {
            assert!(is_extension_header(nh), "{nh}");
        }
        for nh in [IpProtocol::TCP, IpProtocol::UDP, IpProtocol::ICMPV6, IpProtocol::SCTP, IpProtocol::IPV6_NO_NEXT] {
            assert!(!is_extension_header(nh), "{nh}");
        }
    }
}
