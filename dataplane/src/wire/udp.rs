//! UDP datagrams (RFC 768).
//!
//! Mind UDP's zero rule, described in [`checksum`]: over IPv4 a checksum
//! field of 0 means "none". The methods here honour it: such a datagram
//! verifies as correct and keeps 0 through incremental rewrites, and a
//! checksum that computes to 0 is written as `0xFFFF`.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::checksum;
use super::ip::IpProtocol;
use super::{read_u16, write_u16, Error, Result};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    /// Length of header and payload in bytes.
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
    pub const PAYLOAD: usize = 8;
}

/// A view of a UDP datagram. The buffer may extend past the datagram's
/// `length`; the payload and the checksum stop there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Length of the header.
    pub const HEADER_LEN: usize = field::PAYLOAD;

    /// Wraps `buffer` without any check.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wraps `buffer` after checking: at least 8 bytes
    /// ([`Error::Truncated`]), length field ≥ 8 ([`Error::BadLength`]) and
    /// within the buffer ([`Error::Truncated`]).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let data = buffer.as_ref();
        if data.len() < field::PAYLOAD {
            return Err(Error::Truncated);
        }
        let length = usize::from(read_u16(data, field::LENGTH));
        if length < field::PAYLOAD {
            return Err(Error::BadLength);
        }
        if length > data.len() {
            return Err(Error::Truncated);
        }
        Ok(UdpPacket { buffer })
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
    pub fn src_port(&self) -> u16 {
        read_u16(self.data(), field::SRC_PORT)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        read_u16(self.data(), field::DST_PORT)
    }

    /// The length field: header plus payload, in bytes.
    #[inline]
    pub fn length(&self) -> u16 {
        read_u16(self.data(), field::LENGTH)
    }

    /// The checksum field (see [`checksum`] for the convention); 0 means
    /// "none" over IPv4.
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.data(), field::CHECKSUM)
    }

    /// Header and payload, as delimited by the length field; empty if the
    /// length field was made inconsistent after the check.
    #[inline]
    fn datagram(&self) -> &[u8] {
        self.data().get(..usize::from(self.length())).unwrap_or_default()
    }

    /// The bytes after the header, up to `length`.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.data().get(field::PAYLOAD..usize::from(self.length())).unwrap_or_default()
    }

    /// Sum of the datagram, checksum field included, plus a pseudo-header.
    #[inline]
    fn sum_with(&self, pseudo_header: u16) -> u16 {
        checksum::add(pseudo_header, checksum::sum(self.datagram()))
    }

    /// True when the checksum is correct for a datagram from `src` to `dst`
    /// over IPv4, or absent (0).
    #[inline]
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let pseudo = checksum::pseudo_header_v4(src, dst, IpProtocol::UDP, self.length());
        self.sum_with(pseudo) == 0xFFFF
    }

    /// True when the checksum is correct for a datagram from `src` to `dst`
    /// over IPv6, where it is mandatory: 0 does not verify.
    #[inline]
    pub fn verify_checksum_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        if self.checksum() == 0 {
            return false;
        }
        let pseudo = checksum::pseudo_header_v6(src, dst, IpProtocol::UDP, u32::from(self.length()));
        self.sum_with(pseudo) == 0xFFFF
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    #[inline]
    pub fn set_src_port(&mut self, port: u16) {
        write_u16(self.data_mut(), field::SRC_PORT, port);
    }

    #[inline]
    pub fn set_dst_port(&mut self, port: u16) {
        write_u16(self.data_mut(), field::DST_PORT, port);
    }

    #[inline]
    pub fn set_length(&mut self, length: u16) {
        write_u16(self.data_mut(), field::LENGTH, length);
    }

    /// Writes the checksum field as given (0 declares "no checksum" over
    /// IPv4).
    #[inline]
    pub fn set_checksum(&mut self, check: u16) {
        write_u16(self.data_mut(), field::CHECKSUM, check);
    }

    /// Mutable [`payload`](Self::payload).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.length());
        self.data_mut().get_mut(field::PAYLOAD..end).unwrap_or_default()
    }

    #[inline]
    fn fill_with(&mut self, pseudo_header: u16) {
        self.set_checksum(0);
        let computed = !self.sum_with(pseudo_header);
        self.set_checksum(checksum::udp_on_wire(computed));
    }

    /// Computes the checksum from scratch for a datagram from `src` to
    /// `dst` over IPv4 (a computed 0 is written as `0xFFFF`). To send
    /// without a checksum, `set_checksum(0)` instead.
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let length = self.length();
        self.fill_with(checksum::pseudo_header_v4(src, dst, IpProtocol::UDP, length));
    }

    /// Computes the checksum from scratch for a datagram from `src` to
    /// `dst` over IPv6 (a computed 0 is written as `0xFFFF`).
    pub fn fill_checksum_v6(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        let length = u32::from(self.length());
        self.fill_with(checksum::pseudo_header_v6(src, dst, IpProtocol::UDP, length));
    }

    #[inline]
    fn adjust_checksum(&mut self, update: impl FnOnce(u16) -> u16) {
        let check = checksum::update_udp(self.checksum(), update);
        self.set_checksum(check);
    }

    /// Sets the source port and incrementally updates the checksum
    /// (a checksum of 0, "none", stays 0).
    #[inline]
    pub fn set_src_port_adjust_checksum(&mut self, port: u16) {
        let old = self.src_port();
        self.adjust_checksum(|check| checksum::update_u16(check, old, port));
        self.set_src_port(port);
    }

    /// Sets the destination port and incrementally updates the checksum
    /// (a checksum of 0, "none", stays 0).
    #[inline]
    pub fn set_dst_port_adjust_checksum(&mut self, port: u16) {
        let old = self.dst_port();
        self.adjust_checksum(|check| checksum::update_u16(check, old, port));
        self.set_dst_port(port);
    }

    /// Updates the checksum after the IPv4 header's source or destination
    /// address changed from `old` to `new` (a checksum of 0 stays 0).
    #[inline]
    pub fn adjust_checksum_for_v4_addr(&mut self, old: Ipv4Addr, new: Ipv4Addr) {
        self.adjust_checksum(|check| checksum::update_4(check, old.octets(), new.octets()));
    }

    /// Updates the checksum after the IPv6 header's source or destination
    /// address changed from `old` to `new`. An (invalid) zero checksum is
    /// left as it is, for the receiver to drop.
    #[inline]
    pub fn adjust_checksum_for_v6_addr(&mut self, old: Ipv6Addr, new: Ipv6Addr) {
        self.adjust_checksum(|check| checksum::update_16(check, &old.octets(), &new.octets()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DNS query for "example.com" A from 10.0.0.2:53124 to 10.96.0.10:53,
    /// followed by 4 bytes of padding. The checksum 0x39dd was computed
    /// independently of this crate.
    const QUERY: [u8; 41] = [
        0xcf, 0x84, 0x00, 0x35, 0x00, 0x25, 0x39, 0xdd, // header
        0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // DNS header
        0x07, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0x03, b'c', b'o', b'm', 0x00, // name
        0x00, 0x01, 0x00, 0x01, // A, IN
        0xee, 0xee, // padding
        0xee, 0xee, // padding
    ];
    const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

    #[test]
    fn known_datagram() {
        let udp = UdpPacket::new_checked(&QUERY[..]).unwrap();
        assert_eq!(udp.src_port(), 53124);
        assert_eq!(udp.dst_port(), 53);
        assert_eq!(udp.length(), 37);
        assert_eq!(udp.payload().len(), 29);
        assert_eq!(udp.payload()[..2], [0x12, 0x34]);
        assert!(udp.verify_checksum_v4(SRC, DST));
        assert!(!udp.verify_checksum_v4(Ipv4Addr::new(10, 0, 0, 3), DST));

        let mut copy = QUERY;
        let mut udp = UdpPacket::new_checked(&mut copy[..]).unwrap();
        udp.fill_checksum_v4(SRC, DST);
        assert_eq!(udp.checksum(), 0x39dd);
    }

    #[test]
    fn zero_checksum_means_none_over_ipv4_only() {
        let mut bytes = QUERY;
        let mut udp = UdpPacket::new_checked(&mut bytes[..]).unwrap();
        udp.set_checksum(0);
        assert!(udp.verify_checksum_v4(SRC, DST));
        let (a, b): (Ipv6Addr, Ipv6Addr) = ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap());
        assert!(!udp.verify_checksum_v6(a, b));

        // Rewrites keep "no checksum".
        udp.set_dst_port_adjust_checksum(5353);
        udp.set_src_port_adjust_checksum(1);
        udp.adjust_checksum_for_v4_addr(DST, Ipv4Addr::new(10, 244, 3, 3));
        assert_eq!(udp.checksum(), 0);
        assert_eq!((udp.src_port(), udp.dst_port()), (1, 5353));
    }

    /// Changes the first payload word so that the datagram's checksum
    /// computes to 0, then checks it is written and verified as 0xFFFF.
    #[test]
    fn computed_zero_is_sent_as_ffff() {
        let mut bytes = QUERY;
        let mut udp = UdpPacket::new_checked(&mut bytes[..37]).unwrap();
        let current = udp.checksum();
        // Adding the checksum into the data makes the total sum 0xFFFF
        // (the payload starts 16-bit aligned, at offset 8).
        let payload = udp.payload_mut();
        let word = u16::from_be_bytes([payload[0], payload[1]]);
        payload[..2].copy_from_slice(&checksum::add(word, current).to_be_bytes());
        udp.fill_checksum_v4(SRC, DST);
        assert_eq!(udp.checksum(), 0xFFFF);
        assert!(udp.verify_checksum_v4(SRC, DST));
    }

    #[test]
    fn incremental_update_to_zero_is_sent_as_ffff() {
        let mut bytes = QUERY;
        let mut udp = UdpPacket::new_checked(&mut bytes[..]).unwrap();
        // A new port that adds exactly the current checksum to the sum makes
        // the new checksum compute to 0.
        let port = checksum::add(udp.dst_port(), udp.checksum());
        udp.set_dst_port_adjust_checksum(port);
        assert_eq!(udp.checksum(), 0xFFFF);
        assert!(udp.verify_checksum_v4(SRC, DST));
        let incremental = udp.checksum();
        udp.fill_checksum_v4(SRC, DST);
        assert_eq!(udp.checksum(), incremental);
    }

    #[test]
    fn setters_round_trip_over_ipv6() {
        let (a, b): (Ipv6Addr, Ipv6Addr) = ("2001:db8::1".parse().unwrap(), "2001:db8::53".parse().unwrap());
        let mut bytes = [0u8; 13];
        let mut udp = UdpPacket::new_unchecked(&mut bytes[..]);
        udp.set_src_port(4000);
        udp.set_dst_port(53);
        udp.set_length(13);
        udp.payload_mut().copy_from_slice(b"hello");
        udp.fill_checksum_v6(a, b);
        assert!(udp.verify_checksum_v6(a, b));
        let c: Ipv6Addr = "2001:db8:ffff::99".parse().unwrap();
        udp.adjust_checksum_for_v6_addr(b, c);
        assert!(udp.verify_checksum_v6(a, c));
        assert!(!udp.verify_checksum_v6(a, b));

        let udp = UdpPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!((udp.src_port(), udp.dst_port(), udp.length()), (4000, 53, 13));
        assert_eq!(udp.payload(), b"hello");
    }

    #[test]
    fn rejects_bad_datagrams() {
        assert_eq!(UdpPacket::new_checked(&QUERY[..7]), Err(Error::Truncated));
        let mut short_len = QUERY;
        short_len[5] = 7;
        assert_eq!(UdpPacket::new_checked(&short_len[..]), Err(Error::BadLength));
        assert_eq!(UdpPacket::new_checked(&QUERY[..36]), Err(Error::Truncated));
        assert!(UdpPacket::new_checked(&QUERY[..37]).is_ok());
    }

    #[test]
    fn payload_never_panics_after_bad_setters() {
        let mut bytes = QUERY;
        let mut udp = UdpPacket::new_checked(&mut bytes[..]).unwrap();
        udp.set_length(3);
        assert!(udp.payload().is_empty());
        assert!(udp.payload_mut().is_empty());
        udp.set_length(0xFFFF);
        assert!(udp.payload().is_empty());
        assert!(!udp.verify_checksum_v4(SRC, DST));
    }
}
