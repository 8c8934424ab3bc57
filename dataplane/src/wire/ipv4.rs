//! IPv4 headers (RFC 791).

use std::net::Ipv4Addr;

use super::checksum;
use super::{read_array, read_u16, write_bytes, write_u16, Error, Result};

mod field {
    /// Version (high nibble) and IHL, the header length in 32-bit words.
    pub const VERSION_IHL: usize = 0;
    /// DSCP (high 6 bits) and ECN (low 2 bits).
    pub const DSCP_ECN: usize = 1;
    pub const TOTAL_LEN: usize = 2;
    pub const IDENT: usize = 4;
    /// Flags (high 3 bits) and fragment offset in 8-byte units (low 13).
    pub const FLAGS_FRAG_OFFSET: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC_ADDR: usize = 12;
    pub const DST_ADDR: usize = 16;
    /// End of the fixed header; options, if any, follow.
    pub const OPTIONS: usize = 20;

    pub const FLAG_DONT_FRAG: u16 = 0x4000;
    pub const FLAG_MORE_FRAGS: u16 = 0x2000;
    pub const FRAG_OFFSET_MASK: u16 = 0x1FFF;
}

/// A view of an IPv4 packet: header, options and payload.
///
/// The buffer may extend past the packet (Ethernet pads short frames to 60
/// bytes); [`total_len`](Self::total_len) says where the packet ends, and
/// [`payload`](Self::payload) stops there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Length of a header without options.
    pub const MIN_HEADER_LEN: usize = field::OPTIONS;

    /// Wraps `buffer` without any check.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps `buffer` after checking it holds a complete IPv4 packet:
    ///
    /// * at least 20 bytes, else [`Error::Truncated`];
    /// * version 4, else [`Error::BadVersion`];
    /// * IHL ≥ 5 and the header within the buffer, else
    ///   [`Error::BadHeaderLength`];
    /// * total length ≥ header length, else [`Error::BadLength`];
    /// * total length ≤ buffer length, else [`Error::Truncated`].
    pub fn new_checked(buffer: T) -> Result<Self> {
        let data = buffer.as_ref();
        if data.len() < field::OPTIONS {
            return Err(Error::Truncated);
        }
        let packet = Ipv4Packet::new_unchecked(data);
        if packet.version() != 4 {
            return Err(Error::BadVersion);
        }
        let header_len = packet.header_len();
        if header_len < field::OPTIONS || header_len > data.len() {
            return Err(Error::BadHeaderLength);
        }
        let total_len = usize::from(packet.total_len());
        if total_len < header_len {
            return Err(Error::BadLength);
        }
        if total_len > data.len() {
            return Err(Error::Truncated);
        }
        Ok(Ipv4Packet { buffer })
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
    pub fn version(&self) -> u8 {
        self.data()[field::VERSION_IHL] >> 4
    }

    /// Header length in bytes, options included (IHL × 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.data()[field::VERSION_IHL] & 0x0F) * 4
    }

    /// True when the header carries options (IHL > 5). The fast path usually
    /// hands such packets to the slow path.
    #[inline]
    pub fn has_options(&self) -> bool {
        self.header_len() > field::OPTIONS
    }

    /// The whole second byte: DSCP (high 6 bits) and ECN (low 2 bits).
    #[inline]
    pub fn dscp_ecn(&self) -> u8 {
        self.data()[field::DSCP_ECN]
    }

    #[inline]
    pub fn dscp(&self) -> u8 {
        self.dscp_ecn() >> 2
    }

    #[inline]
    pub fn ecn(&self) -> u8 {
        self.dscp_ecn() & 0x03
    }

    /// Length of the packet, header included, in bytes.
    #[inline]
    pub fn total_len(&self) -> u16 {
        read_u16(self.data(), field::TOTAL_LEN)
    }

    #[inline]
    pub fn ident(&self) -> u16 {
        read_u16(self.data(), field::IDENT)
    }

    #[inline]
    pub fn dont_frag(&self) -> bool {
        read_u16(self.data(), field::FLAGS_FRAG_OFFSET) & field::FLAG_DONT_FRAG != 0
    }

    #[inline]
    pub fn more_frags(&self) -> bool {
        read_u16(self.data(), field::FLAGS_FRAG_OFFSET) & field::FLAG_MORE_FRAGS != 0
    }

    /// Fragment offset in bytes (the field counts 8-byte units).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (read_u16(self.data(), field::FLAGS_FRAG_OFFSET) & field::FRAG_OFFSET_MASK) * 8
    }

    /// True for any fragment, first or later: more-fragments set or a
    /// non-zero offset. Only the first fragment carries the L4 ports.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        let flags_offset = read_u16(self.data(), field::FLAGS_FRAG_OFFSET);
        flags_offset & (field::FLAG_MORE_FRAGS | field::FRAG_OFFSET_MASK) != 0
    }

    #[inline]
    pub fn ttl(&self) -> u8 {
        self.data()[field::TTL]
    }

    /// The payload's protocol; compare with [`IpProtocol`](super::IpProtocol)
    /// constants.
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.data()[field::PROTOCOL]
    }

    /// The header checksum (see [`checksum`] for the convention).
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.data(), field::CHECKSUM)
    }

    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(read_array::<4>(self.data(), field::SRC_ADDR))
    }

    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(read_array::<4>(self.data(), field::DST_ADDR))
    }

    /// The header bytes, options included; empty if the IHL is invalid.
    #[inline]
    pub fn header(&self) -> &[u8] {
        self.data().get(..self.header_len()).unwrap_or_default()
    }

    /// True when the header checksum is correct.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        let header = self.header();
        !header.is_empty() && checksum::sum(header) == 0xFFFF
    }

    /// The bytes between the header and `total_len`: Ethernet padding after
    /// the packet is excluded. Empty if the length fields were made
    /// inconsistent after the check.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let range = self.header_len()..usize::from(self.total_len());
        self.data().get(range).unwrap_or_default()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    #[inline]
    pub fn set_version(&mut self, version: u8) {
        let byte = &mut self.data_mut()[field::VERSION_IHL];
        *byte = (*byte & 0x0F) | (version << 4);
    }

    /// Sets the header length in bytes; it must be a multiple of 4 between
    /// 20 and 60 (the low two bits are dropped).
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        let byte = &mut self.data_mut()[field::VERSION_IHL];
        *byte = (*byte & 0xF0) | ((len / 4) as u8 & 0x0F);
    }

    #[inline]
    pub fn set_dscp_ecn(&mut self, value: u8) {
        self.data_mut()[field::DSCP_ECN] = value;
    }

    #[inline]
    pub fn set_total_len(&mut self, len: u16) {
        write_u16(self.data_mut(), field::TOTAL_LEN, len);
    }

    #[inline]
    pub fn set_ident(&mut self, ident: u16) {
        write_u16(self.data_mut(), field::IDENT, ident);
    }

    #[inline]
    fn set_flags_frag_offset_bits(&mut self, mask: u16, bits: u16) {
        let data = self.data_mut();
        let word = read_u16(data, field::FLAGS_FRAG_OFFSET);
        write_u16(data, field::FLAGS_FRAG_OFFSET, (word & !mask) | (bits & mask));
    }

    #[inline]
    pub fn set_dont_frag(&mut self, value: bool) {
        let bits = if value { field::FLAG_DONT_FRAG } else { 0 };
        self.set_flags_frag_offset_bits(field::FLAG_DONT_FRAG, bits);
    }

    #[inline]
    pub fn set_more_frags(&mut self, value: bool) {
        let bits = if value { field::FLAG_MORE_FRAGS } else { 0 };
        self.set_flags_frag_offset_bits(field::FLAG_MORE_FRAGS, bits);
    }

    /// Sets the fragment offset in bytes (a multiple of 8; the low three
    /// bits are dropped).
    #[inline]
    pub fn set_frag_offset(&mut self, offset: u16) {
        self.set_flags_frag_offset_bits(field::FRAG_OFFSET_MASK, offset / 8);
    }

    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.data_mut()[field::TTL] = ttl;
    }

    #[inline]
    pub fn set_protocol(&mut self, protocol: u8) {
        self.data_mut()[field::PROTOCOL] = protocol;
    }

    #[inline]
    pub fn set_checksum(&mut self, check: u16) {
        write_u16(self.data_mut(), field::CHECKSUM, check);
    }

    #[inline]
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        write_bytes(self.data_mut(), field::SRC_ADDR, &addr.octets());
    }

    #[inline]
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        write_bytes(self.data_mut(), field::DST_ADDR, &addr.octets());
    }

    /// Recomputes the header checksum from scratch (options included).
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let check = checksum::checksum(self.header());
        self.set_checksum(check);
    }

    /// Sets the source address and incrementally updates the header
    /// checksum. The TCP/UDP/ICMPv6 checksum covers the address too (through
    /// the pseudo-header): update it with the L4 view's
    /// `adjust_checksum_for_v4_addr(old, new)`.
    #[inline]
    pub fn set_src_addr_adjust_checksum(&mut self, addr: Ipv4Addr) {
        let old = self.src_addr();
        let check = checksum::update_4(self.checksum(), old.octets(), addr.octets());
        self.set_src_addr(addr);
        self.set_checksum(check);
    }

    /// Sets the destination address and incrementally updates the header
    /// checksum (see [`set_src_addr_adjust_checksum`](Self::set_src_addr_adjust_checksum)).
    #[inline]
    pub fn set_dst_addr_adjust_checksum(&mut self, addr: Ipv4Addr) {
        let old = self.dst_addr();
        let check = checksum::update_4(self.checksum(), old.octets(), addr.octets());
        self.set_dst_addr(addr);
        self.set_checksum(check);
    }

    /// Sets the TTL and incrementally updates the header checksum.
    #[inline]
    pub fn set_ttl_adjust_checksum(&mut self, ttl: u8) {
        // TTL shares its 16-bit checksum word with the protocol byte.
        let protocol = u16::from(self.protocol());
        let old_word = (u16::from(self.ttl()) << 8) | protocol;
        let new_word = (u16::from(ttl) << 8) | protocol;
        let check = checksum::update_u16(self.checksum(), old_word, new_word);
        self.set_ttl(ttl);
        self.set_checksum(check);
    }

    /// The header bytes, options included; empty if the IHL is invalid.
    #[inline]
    pub fn header_mut(&mut self) -> &mut [u8] {
        let header_len = self.header_len();
        self.data_mut().get_mut(..header_len).unwrap_or_default()
    }

    /// Mutable [`payload`](Self::payload).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        self.data_mut().get_mut(range).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::IpProtocol;
    use super::*;

    /// A Linux-style TCP SYN (MSS, SACK-permitted, timestamps, window
    /// scale), 192.168.1.10:51000 -> 93.184.216.34:80, checksums zeroed,
    /// followed by Ethernet padding bytes in the buffer.
    const SYN: [u8; 66] = [
        0x45, 0x00, 0x00, 0x3c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, // ..csum
        0xc0, 0xa8, 0x01, 0x0a, 0x5d, 0xb8, 0xd8, 0x22, // addresses
        // TCP
        0xc7, 0x38, 0x00, 0x50, 0x9a, 0x1b, 0x2c, 0x3d, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa, 0xf0, 0x00, 0x00,
        0x00, 0x00, // window, csum, urg
        0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x9c, 0x27, 0x24, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03,
        0x03, 0x07, // options
        0xee, 0xee, 0xee, 0xee, 0xee, 0xee, // padding
    ];

    fn syn() -> [u8; 66] {
        // The checksum bytes are computed by hand below (rather than
        // captured) so the test also pins the checksum routine.
        let mut bytes = SYN;
        bytes[10] = 0x26;
        bytes[11] = 0xe9;
        bytes
    }

    #[test]
    fn known_checksum() {
        // Header sum without the checksum field:
        // 4500+003c+1c46+4000+4006+c0a8+010a+5db8+d822 = 0x2d914
        // -> folded 0xd916, complemented 0x26e9.
        let packet = Ipv4Packet::new_checked(&SYN[..]).unwrap();
        assert!(!packet.verify_checksum());
        assert_eq!(checksum::checksum(packet.header()), 0x26e9);
        let bytes = syn();
        assert!(Ipv4Packet::new_checked(&bytes[..]).unwrap().verify_checksum());

        // The textbook header 192.168.0.1 -> 192.168.0.199, UDP, whose
        // checksum is 0xb861.
        let textbook: [u8; 20] = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        let header = Ipv4Packet::new_unchecked(&textbook[..]);
        assert!(header.verify_checksum());
        let mut copy = textbook;
        let mut rebuilt = Ipv4Packet::new_unchecked(&mut copy[..]);
        rebuilt.fill_checksum();
        assert_eq!(rebuilt.checksum(), 0xb861);
    }

    #[test]
    fn getters() {
        let bytes = syn();
        let ip = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(ip.version(), 4);
        assert_eq!(ip.header_len(), 20);
        assert!(!ip.has_options());
        assert_eq!(ip.dscp_ecn(), 0);
        assert_eq!(ip.total_len(), 60);
        assert_eq!(ip.ident(), 0x1c46);
        assert!(ip.dont_frag());
        assert!(!ip.more_frags());
        assert_eq!(ip.frag_offset(), 0);
        assert!(!ip.is_fragment());
        assert_eq!(ip.ttl(), 64);
        assert_eq!(ip.protocol(), IpProtocol::TCP);
        assert_eq!(ip.checksum(), 0x26e9);
        assert_eq!(ip.src_addr(), Ipv4Addr::new(192, 168, 1, 10));
        assert_eq!(ip.dst_addr(), Ipv4Addr::new(93, 184, 216, 34));
        // Payload stops at total_len, before the padding.
        assert_eq!(ip.payload().len(), 40);
        assert_eq!(ip.payload()[..2], [0xc7, 0x38]);
    }

    #[test]
    fn setters_round_trip() {
        let mut bytes = [0u8; 32];
        let mut ip = Ipv4Packet::new_unchecked(&mut bytes[..]);
        ip.set_version(4);
        ip.set_header_len(24);
        ip.set_dscp_ecn(0xb9);
        ip.set_total_len(30);
        ip.set_ident(0xbeef);
        ip.set_dont_frag(false);
        ip.set_more_frags(true);
        ip.set_frag_offset(1480);
        ip.set_ttl(3);
        ip.set_protocol(IpProtocol::UDP);
        ip.set_src_addr(Ipv4Addr::new(10, 1, 2, 3));
        ip.set_dst_addr(Ipv4Addr::new(10, 4, 5, 6));
        ip.fill_checksum();
        ip.payload_mut().copy_from_slice(&[1, 2, 3, 4, 5, 6]);

        let ip = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(ip.version(), 4);
        assert_eq!(ip.header_len(), 24);
        assert!(ip.has_options());
        assert_eq!((ip.dscp(), ip.ecn()), (0xb9 >> 2, 1));
        assert_eq!(ip.total_len(), 30);
        assert_eq!(ip.ident(), 0xbeef);
        assert!(!ip.dont_frag());
        assert!(ip.more_frags());
        assert_eq!(ip.frag_offset(), 1480);
        assert!(ip.is_fragment());
        assert_eq!(ip.ttl(), 3);
        assert_eq!(ip.protocol(), IpProtocol::UDP);
        assert_eq!(ip.src_addr(), Ipv4Addr::new(10, 1, 2, 3));
        assert_eq!(ip.dst_addr(), Ipv4Addr::new(10, 4, 5, 6));
        assert!(ip.verify_checksum());
        assert_eq!(ip.payload(), &[1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn later_fragment_is_a_fragment() {
        let mut bytes = syn();
        let mut ip = Ipv4Packet::new_checked(&mut bytes[..]).unwrap();
        ip.set_frag_offset(8);
        assert!(ip.is_fragment());
        assert!(!ip.more_frags());
        assert!(ip.dont_frag(), "other flag bits untouched");
    }

    #[test]
    fn incremental_setters_keep_checksum_valid() {
        let mut bytes = syn();
        let mut ip = Ipv4Packet::new_checked(&mut bytes[..]).unwrap();
        ip.set_src_addr_adjust_checksum(Ipv4Addr::new(10, 96, 0, 10));
        assert!(ip.verify_checksum());
        ip.set_dst_addr_adjust_checksum(Ipv4Addr::new(172, 17, 3, 4));
        assert!(ip.verify_checksum());
        ip.set_ttl_adjust_checksum(63);
        assert!(ip.verify_checksum());
        let incremental = ip.checksum();
        ip.fill_checksum();
        assert_eq!(ip.checksum(), incremental);
        assert_eq!(ip.ttl(), 63);
        assert_eq!(ip.protocol(), IpProtocol::TCP);
    }

    #[test]
    fn rejects_bad_packets() {
        let good = syn();
        assert_eq!(Ipv4Packet::new_checked(&good[..19]), Err(Error::Truncated));

        let mut v6 = good;
        v6[0] = 0x65;
        assert_eq!(Ipv4Packet::new_checked(&v6[..]), Err(Error::BadVersion));

        let mut short_ihl = good;
        short_ihl[0] = 0x44;
        assert_eq!(Ipv4Packet::new_checked(&short_ihl[..]), Err(Error::BadHeaderLength));

        // IHL 15 = 60 bytes, but only 40 in the buffer.
        let mut long_ihl = good;
        long_ihl[0] = 0x4f;
        assert_eq!(Ipv4Packet::new_checked(&long_ihl[..40]), Err(Error::BadHeaderLength));

        let mut tiny_total = good;
        tiny_total[3] = 19;
        assert_eq!(Ipv4Packet::new_checked(&tiny_total[..]), Err(Error::BadLength));

        // total_len 60 but the buffer ends early.
        assert_eq!(Ipv4Packet::new_checked(&good[..59]), Err(Error::Truncated));
        assert!(Ipv4Packet::new_checked(&good[..60]).is_ok());
    }

    #[test]
    fn payload_never_panics_after_bad_setters() {
        let mut bytes = syn();
        let mut ip = Ipv4Packet::new_checked(&mut bytes[..]).unwrap();
        ip.set_total_len(0xFFFF);
        assert!(ip.payload().is_empty());
        assert!(ip.payload_mut().is_empty());
        ip.set_total_len(60);
        ip.set_header_len(60);
        assert_eq!(ip.payload().len(), 0);
        ip.set_total_len(10);
        assert!(ip.payload().is_empty());
        let unchecked = Ipv4Packet::new_unchecked(&bytes[..20]);
        assert!(unchecked.payload().is_empty());
        assert!(!unchecked.verify_checksum());
    }
}
