//! TCP segments (RFC 9293).
//!
//! The buffer must be exactly the segment (the IP view's `payload()`), since
//! the checksum covers all of it and its length enters the pseudo-header.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::checksum;
use super::ip::IpProtocol;
use super::{read_u16, read_u32, write_u16, write_u32, Error, Result};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ_NUMBER: usize = 4;
    pub const ACK_NUMBER: usize = 8;
    /// Data offset (high nibble, in 32-bit words); the low bits are reserved
    /// (and the old NS flag).
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT_PTR: usize = 18;
    /// End of the fixed header; options, if any, follow.
    pub const OPTIONS: usize = 20;
}

/// Bits of the TCP flags byte, as returned by [`TcpPacket::flags`].
pub enum TcpFlags {}

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// A view of a TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Length of a header without options.
    pub const MIN_HEADER_LEN: usize = field::OPTIONS;

    /// Wraps `buffer` without any check.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps `buffer` after checking: at least 20 bytes
    /// ([`Error::Truncated`]); data offset ≥ 5 words and the header within
    /// the buffer ([`Error::BadHeaderLength`]).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let data = buffer.as_ref();
        if data.len() < field::OPTIONS {
            return Err(Error::Truncated);
        }
        let header_len = TcpPacket::new_unchecked(data).header_len();
        if header_len < field::OPTIONS || header_len > data.len() {
            return Err(Error::BadHeaderLength);
        }
        Ok(TcpPacket { buffer })
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

    #[inline]
    pub fn seq_number(&self) -> u32 {
        read_u32(self.data(), field::SEQ_NUMBER)
    }

    #[inline]
    pub fn ack_number(&self) -> u32 {
        read_u32(self.data(), field::ACK_NUMBER)
    }

    /// Header length in bytes, options included (data offset × 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.data()[field::DATA_OFFSET] >> 4) * 4
    }

    /// The flags byte; test bits with the [`TcpFlags`] constants.
    #[inline]
    pub fn flags(&self) -> u8 {
        self.data()[field::FLAGS]
    }

    #[inline]
    pub fn fin(&self) -> bool {
        self.flags() & TcpFlags::FIN != 0
    }

    #[inline]
    pub fn syn(&self) -> bool {
        self.flags() & TcpFlags::SYN != 0
    }

    #[inline]
    pub fn rst(&self) -> bool {
        self.flags() & TcpFlags::RST != 0
    }

    #[inline]
    pub fn psh(&self) -> bool {
        self.flags() & TcpFlags::PSH != 0
    }

    /// The ACK flag (the acknowledgement number is [`ack_number`](Self::ack_number)).
    #[inline]
    pub fn ack(&self) -> bool {
        self.flags() & TcpFlags::ACK != 0
    }

    #[inline]
    pub fn urg(&self) -> bool {
        self.flags() & TcpFlags::URG != 0
    }

    #[inline]
    pub fn ece(&self) -> bool {
        self.flags() & TcpFlags::ECE != 0
    }

    #[inline]
    pub fn cwr(&self) -> bool {
        self.flags() & TcpFlags::CWR != 0
    }

    #[inline]
    pub fn window(&self) -> u16 {
        read_u16(self.data(), field::WINDOW)
    }

    /// The checksum field (see [`checksum`] for the convention).
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.data(), field::CHECKSUM)
    }

    #[inline]
    pub fn urgent_ptr(&self) -> u16 {
        read_u16(self.data(), field::URGENT_PTR)
    }

    /// Options bytes between the fixed header and the payload.
    #[inline]
    pub fn options(&self) -> &[u8] {
        self.data().get(field::OPTIONS..self.header_len()).unwrap_or_default()
    }

    /// The data after the header; empty if the data offset was made invalid
    /// after the check.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.data().get(self.header_len()..).unwrap_or_default()
    }

    /// Sum of the IPv4 pseudo-header for this segment. Segments over IPv4
    /// are shorter than 64 KiB, so the length fits the 16-bit field.
    #[inline]
    fn pseudo_header_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u16 {
        checksum::pseudo_header_v4(src, dst, IpProtocol::TCP, self.data().len() as u16)
    }

    #[inline]
    fn pseudo_header_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> u16 {
        checksum::pseudo_header_v6(src, dst, IpProtocol::TCP, self.data().len() as u32)
    }

    /// True when the checksum is correct for a segment from `src` to `dst`
    /// over IPv4.
    #[inline]
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        checksum::add(self.pseudo_header_v4(src, dst), checksum::sum(self.data())) == 0xFFFF
    }

    /// True when the checksum is correct for a segment from `src` to `dst`
    /// over IPv6.
    #[inline]
    pub fn verify_checksum_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        checksum::add(self.pseudo_header_v6(src, dst), checksum::sum(self.data())) == 0xFFFF
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
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
    pub fn set_seq_number(&mut self, seq: u32) {
        write_u32(self.data_mut(), field::SEQ_NUMBER, seq);
    }

    #[inline]
    pub fn set_ack_number(&mut self, ack: u32) {
        write_u32(self.data_mut(), field::ACK_NUMBER, ack);
    }

    /// Sets the header length in bytes; it must be a multiple of 4 between
    /// 20 and 60 (the low two bits are dropped). The reserved bits are kept.
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        let byte = &mut self.data_mut()[field::DATA_OFFSET];
        *byte = (*byte & 0x0F) | (((len / 4) as u8) << 4);
    }

    /// Sets the whole flags byte (combine [`TcpFlags`] constants).
    #[inline]
    pub fn set_flags(&mut self, flags: u8) {
        self.data_mut()[field::FLAGS] = flags;
    }

    #[inline]
    pub fn set_window(&mut self, window: u16) {
        write_u16(self.data_mut(), field::WINDOW, window);
    }

    #[inline]
    pub fn set_checksum(&mut self, check: u16) {
        write_u16(self.data_mut(), field::CHECKSUM, check);
    }

    #[inline]
    pub fn set_urgent_ptr(&mut self, ptr: u16) {
        write_u16(self.data_mut(), field::URGENT_PTR, ptr);
    }

    /// Mutable [`payload`](Self::payload).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let header_len = self.header_len();
        self.data_mut().get_mut(header_len..).unwrap_or_default()
    }

    /// Computes the checksum from scratch for a segment from `src` to `dst`
    /// over IPv4.
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let total = checksum::add(self.pseudo_header_v4(src, dst), checksum::sum(self.data()));
        self.set_checksum(!total);
    }

    /// Computes the checksum from scratch for a segment from `src` to `dst`
    /// over IPv6.
    pub fn fill_checksum_v6(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let total = checksum::add(self.pseudo_header_v6(src, dst), checksum::sum(self.data()));
        self.set_checksum(!total);
    }

    /// Sets the source port and incrementally updates the checksum.
    #[inline]
    pub fn set_src_port_adjust_checksum(&mut self, port: u16) {
        let check = checksum::update_u16(self.checksum(), self.src_port(), port);
        self.set_src_port(port);
        self.set_checksum(check);
    }

    /// Sets the destination port and incrementally updates the checksum.
    #[inline]
    pub fn set_dst_port_adjust_checksum(&mut self, port: u16) {
        let check = checksum::update_u16(self.checksum(), self.dst_port(), port);
        self.set_dst_port(port);
        self.set_checksum(check);
    }

    /// Updates the checksum after the IPv4 header's source or destination
    /// address changed from `old` to `new` (the pseudo-header covers it).
    #[inline]
    pub fn adjust_checksum_for_v4_addr(&mut self, old: Ipv4Addr, new: Ipv4Addr) {
        let check = checksum::update_4(self.checksum(), old.octets(), new.octets());
        self.set_checksum(check);
    }

    /// Updates the checksum after the IPv6 header's source or destination
    /// address changed from `old` to `new`.
    #[inline]
    pub fn adjust_checksum_for_v6_addr(&mut self, old: Ipv6Addr, new: Ipv6Addr) {
        let check = checksum::update_16(self.checksum(), &old.octets(), &new.octets());
        self.set_checksum(check);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Linux-style SYN from 192.168.1.10:51000 to 93.184.216.34:80 with
    /// MSS, SACK-permitted, timestamp and window-scale options. The checksum
    /// 0x9fe0 was computed independently of this crate.
    const SYN: [u8; 40] = [
        0xc7, 0x38, 0x00, 0x50, // ports
        0x9a, 0x1b, 0x2c, 0x3d, // seq
        0x00, 0x00, 0x00, 0x00, // ack
        0xa0, 0x02, 0xfa, 0xf0, // offset 10, SYN, window 64240
        0x9f, 0xe0, 0x00, 0x00, // checksum, urgent
        0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x9c, 0x27, 0x24, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03,
        0x03, 0x07,
    ];
    const SRC: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
    const DST: Ipv4Addr = Ipv4Addr::new(93, 184, 216, 34);

    #[test]
    fn known_syn() {
        let tcp = TcpPacket::new_checked(&SYN[..]).unwrap();
        assert_eq!(tcp.src_port(), 51000);
        assert_eq!(tcp.dst_port(), 80);
        assert_eq!(tcp.seq_number(), 0x9a1b_2c3d);
        assert_eq!(tcp.ack_number(), 0);
        assert_eq!(tcp.header_len(), 40);
        assert_eq!(tcp.flags(), TcpFlags::SYN);
        assert!(tcp.syn());
        assert!(!(tcp.fin() || tcp.rst() || tcp.psh() || tcp.ack() || tcp.urg()));
        assert!(!(tcp.ece() || tcp.cwr()));
        assert_eq!(tcp.window(), 64240);
        assert_eq!(tcp.checksum(), 0x9fe0);
        assert_eq!(tcp.urgent_ptr(), 0);
        assert_eq!(tcp.options().len(), 20);
        assert!(tcp.payload().is_empty());
        assert!(tcp.verify_checksum_v4(SRC, DST));
        assert!(!tcp.verify_checksum_v4(SRC, Ipv4Addr::new(93, 184, 216, 35)));

        let mut copy = SYN;
        let mut tcp = TcpPacket::new_checked(&mut copy[..]).unwrap();
        tcp.fill_checksum_v4(SRC, DST);
        assert_eq!(tcp.checksum(), 0x9fe0);
    }

    #[test]
    fn setters_round_trip() {
        let mut bytes = [0u8; 28];
        let mut tcp = TcpPacket::new_unchecked(&mut bytes[..]);
        tcp.set_src_port(1);
        tcp.set_dst_port(65535);
        tcp.set_seq_number(0xdead_beef);
        tcp.set_ack_number(0x0102_0304);
        tcp.set_header_len(24);
        tcp.set_flags(TcpFlags::ACK | TcpFlags::PSH | TcpFlags::FIN);
        tcp.set_window(512);
        tcp.set_urgent_ptr(7);
        tcp.payload_mut().copy_from_slice(b"data");
        let src: Ipv6Addr = "2001:db8::a".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8::b".parse().unwrap();
        tcp.fill_checksum_v6(src, dst);

        let tcp = TcpPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!((tcp.src_port(), tcp.dst_port()), (1, 65535));
        assert_eq!(tcp.seq_number(), 0xdead_beef);
        assert_eq!(tcp.ack_number(), 0x0102_0304);
        assert_eq!(tcp.header_len(), 24);
        assert!(tcp.ack() && tcp.psh() && tcp.fin() && !tcp.syn());
        assert_eq!(tcp.window(), 512);
        assert_eq!(tcp.urgent_ptr(), 7);
        assert_eq!(tcp.payload(), b"data");
        assert!(tcp.verify_checksum_v6(src, dst));
        assert!(!tcp.verify_checksum_v6(dst, "2001:db8::c".parse().unwrap()));
    }

    #[test]
    fn incremental_rewrites_match_recomputation() {
        let new_src = Ipv4Addr::new(10, 244, 1, 7);
        let mut bytes = SYN;
        let mut tcp = TcpPacket::new_checked(&mut bytes[..]).unwrap();
        tcp.set_dst_port_adjust_checksum(8080);
        tcp.set_src_port_adjust_checksum(40000);
        tcp.adjust_checksum_for_v4_addr(SRC, new_src);
        assert!(tcp.verify_checksum_v4(new_src, DST));
        let incremental = tcp.checksum();
        tcp.fill_checksum_v4(new_src, DST);
        assert_eq!(tcp.checksum(), incremental);

        let (a, b, c): (Ipv6Addr, Ipv6Addr, Ipv6Addr) =
            ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap(), "fd00:1234::99".parse().unwrap());
        tcp.fill_checksum_v6(a, b);
        tcp.adjust_checksum_for_v6_addr(b, c);
        assert!(tcp.verify_checksum_v6(a, c));
    }

    #[test]
    fn rejects_bad_segments() {
        assert_eq!(TcpPacket::new_checked(&SYN[..19]), Err(Error::Truncated));
        let mut small_offset = SYN;
        small_offset[12] = 0x40;
        assert_eq!(TcpPacket::new_checked(&small_offset[..]), Err(Error::BadHeaderLength));
        // Data offset 10 words = 40 bytes, beyond a 39-byte buffer.
        assert_eq!(TcpPacket::new_checked(&SYN[..39]), Err(Error::BadHeaderLength));
    }

    #[test]
    fn payload_never_panics_after_bad_setters() {
        let mut bytes = [0u8; 20];
        let mut tcp = TcpPacket::new_unchecked(&mut bytes[..]);
        tcp.set_header_len(60);
        assert!(tcp.payload().is_empty());
        assert!(tcp.options().is_empty());
        assert!(tcp.payload_mut().is_empty());
    }
}
