//! ICMP for IPv6 (RFC 4443).
//!
//! The header layout matches ICMPv4, but the checksum also covers an IPv6
//! pseudo-header (source, destination, length, next header 58), so
//! verifying and filling it needs the addresses, and an address rewrite
//! must adjust it. Neighbour Discovery options are not parsed.

use std::net::Ipv6Addr;

use super::checksum;
use super::ip::IpProtocol;
use super::{read_u16, read_u32, write_u16, write_u32, Error, Result};

mod field {
    pub const MSG_TYPE: usize = 0;
    pub const MSG_CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    /// Echo request/reply: identifier.
    pub const ECHO_IDENT: usize = 4;
    /// Echo request/reply: sequence number.
    pub const ECHO_SEQ_NO: usize = 6;
    /// Packet too big: MTU of the next hop (32 bits).
    pub const MTU: usize = 4;
    pub const PAYLOAD: usize = 8;
}

/// Names for ICMPv6 message types (the field stays a plain `u8`).
pub enum Icmpv6Type {}

impl Icmpv6Type {
    pub const DEST_UNREACHABLE: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAMETER_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    pub const ROUTER_SOLICIT: u8 = 133;
    pub const ROUTER_ADVERT: u8 = 134;
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    pub const NEIGHBOR_ADVERT: u8 = 136;
    pub const REDIRECT: u8 = 137;

    /// True for error messages (types below 128), whose payload embeds the
    /// offending packet.
    #[inline]
    pub fn is_error(msg_type: u8) -> bool {
        msg_type < 128
    }
}

/// Codes of "destination unreachable" messages.
pub enum Icmpv6Unreachable {}

impl Icmpv6Unreachable {
    pub const NO_ROUTE: u8 = 0;
    pub const ADMIN_PROHIBITED: u8 = 1;
    pub const BEYOND_SCOPE: u8 = 2;
    pub const ADDR_UNREACHABLE: u8 = 3;
    /// What a proxy sends for a service port with no endpoints.
    pub const PORT_UNREACHABLE: u8 = 4;
    pub const FAILED_POLICY: u8 = 5;
    pub const REJECT_ROUTE: u8 = 6;
}

/// A view of an ICMPv6 message. The buffer must be exactly the message (the
/// IP view's `payload()`): the checksum covers all of it and its length
/// enters the pseudo-header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Length of the header.
    pub const HEADER_LEN: usize = field::PAYLOAD;

    /// Wraps `buffer` without any check.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv6Packet { buffer }
    }

    /// Wraps `buffer` after checking it holds the 8-byte header
    /// ([`Error::Truncated`]).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < field::PAYLOAD {
            return Err(Error::Truncated);
        }
        Ok(Icmpv6Packet { buffer })
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

    /// The message type; compare with [`Icmpv6Type`] constants.
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.data()[field::MSG_TYPE]
    }

    #[inline]
    pub fn msg_code(&self) -> u8 {
        self.data()[field::MSG_CODE]
    }

    /// The checksum field (see [`checksum`] for the convention).
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.data(), field::CHECKSUM)
    }

    /// Identifier of an echo request or reply.
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.data(), field::ECHO_IDENT)
    }

    /// Sequence number of an echo request or reply.
    #[inline]
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(self.data(), field::ECHO_SEQ_NO)
    }

    /// MTU of a "packet too big" message.
    #[inline]
    pub fn mtu(&self) -> u32 {
        read_u32(self.data(), field::MTU)
    }

    /// The bytes after the 8-byte header: echo data, the body of an NDP
    /// message, or for error messages the embedded original packet.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.data().get(field::PAYLOAD..).unwrap_or_default()
    }

    #[inline]
    fn pseudo_header(&self, src: Ipv6Addr, dst: Ipv6Addr) -> u16 {
        checksum::pseudo_header_v6(src, dst, IpProtocol::ICMPV6, self.data().len() as u32)
    }

    /// True when the checksum is correct for a message from `src` to `dst`.
    #[inline]
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        checksum::add(self.pseudo_header(src, dst), checksum::sum(self.data())) == 0xFFFF
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    #[inline]
    pub fn set_msg_type(&mut self, msg_type: u8) {
        self.data_mut()[field::MSG_TYPE] = msg_type;
    }

    #[inline]
    pub fn set_msg_code(&mut self, code: u8) {
        self.data_mut()[field::MSG_CODE] = code;
    }

    #[inline]
    pub fn set_checksum(&mut self, check: u16) {
        write_u16(self.data_mut(), field::CHECKSUM, check);
    }

    #[inline]
    pub fn set_echo_ident(&mut self, ident: u16) {
        write_u16(self.data_mut(), field::ECHO_IDENT, ident);
    }

    #[inline]
    pub fn set_echo_seq_no(&mut self, seq_no: u16) {
        write_u16(self.data_mut(), field::ECHO_SEQ_NO, seq_no);
    }

    #[inline]
    pub fn set_mtu(&mut self, mtu: u32) {
        write_u32(self.data_mut(), field::MTU, mtu);
    }

    /// Mutable [`payload`](Self::payload).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.data_mut().get_mut(field::PAYLOAD..).unwrap_or_default()
    }

    /// Computes the checksum from scratch for a message from `src` to
    /// `dst`.
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let total = checksum::add(self.pseudo_header(src, dst), checksum::sum(self.data()));
        self.set_checksum(!total);
    }

    /// Sets the echo identifier and incrementally updates the checksum.
    #[inline]
    pub fn set_echo_ident_adjust_checksum(&mut self, ident: u16) {
        let check = checksum::update_u16(self.checksum(), self.echo_ident(), ident);
        self.set_echo_ident(ident);
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

    /// Echo request fe80::1 -> fe80::2, ident 0x1234, seq 1, data "ping";
    /// checksum 0x91ae computed independently of this crate.
    const ECHO: [u8; 12] = [0x80, 0x00, 0x91, 0xae, 0x12, 0x34, 0x00, 0x01, b'p', b'i', b'n', b'g'];

    fn addrs() -> (Ipv6Addr, Ipv6Addr) {
        ("fe80::1".parse().unwrap(), "fe80::2".parse().unwrap())
    }

    #[test]
    fn known_echo_request() {
        let (src, dst) = addrs();
        let icmp = Icmpv6Packet::new_checked(&ECHO[..]).unwrap();
        assert_eq!(icmp.msg_type(), Icmpv6Type::ECHO_REQUEST);
        assert_eq!(icmp.msg_code(), 0);
        assert_eq!(icmp.checksum(), 0x91ae);
        assert_eq!(icmp.echo_ident(), 0x1234);
        assert_eq!(icmp.echo_seq_no(), 1);
        assert_eq!(icmp.payload(), b"ping");
        assert!(icmp.verify_checksum(src, dst));
        assert!(!icmp.verify_checksum(dst, src.octets().map(|b| b ^ 1).into()));
        assert!(!Icmpv6Type::is_error(icmp.msg_type()));

        let mut copy = ECHO;
        let mut icmp = Icmpv6Packet::new_checked(&mut copy[..]).unwrap();
        icmp.fill_checksum(src, dst);
        assert_eq!(icmp.checksum(), 0x91ae);
    }

    #[test]
    fn rewrites_keep_checksum_valid() {
        let (src, dst) = addrs();
        let new_dst: Ipv6Addr = "2001:db8::77".parse().unwrap();
        let mut bytes = ECHO;
        let mut icmp = Icmpv6Packet::new_checked(&mut bytes[..]).unwrap();
        icmp.set_echo_ident_adjust_checksum(0x4321);
        icmp.adjust_checksum_for_v6_addr(dst, new_dst);
        assert!(icmp.verify_checksum(src, new_dst));
        let incremental = icmp.checksum();
        icmp.fill_checksum(src, new_dst);
        assert_eq!(icmp.checksum(), incremental);
    }

    #[test]
    fn packet_too_big_and_unreachable() {
        let (src, dst) = addrs();
        let mut bytes = [0u8; 48];
        let mut icmp = Icmpv6Packet::new_unchecked(&mut bytes[..]);
        icmp.set_msg_type(Icmpv6Type::PACKET_TOO_BIG);
        icmp.set_msg_code(0);
        icmp.set_mtu(1280);
        icmp.payload_mut()[0] = 0x60;
        icmp.fill_checksum(src, dst);
        let icmp = Icmpv6Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(icmp.mtu(), 1280);
        assert!(Icmpv6Type::is_error(icmp.msg_type()));
        assert_eq!(icmp.payload().len(), 40);
        assert!(icmp.verify_checksum(src, dst));

        let mut bytes = [0u8; 8];
        let mut icmp = Icmpv6Packet::new_checked(&mut bytes[..]).unwrap();
        icmp.set_msg_type(Icmpv6Type::DEST_UNREACHABLE);
        icmp.set_msg_code(Icmpv6Unreachable::PORT_UNREACHABLE);
        icmp.set_echo_ident(1);
        icmp.set_echo_seq_no(2);
        assert_eq!((icmp.msg_type(), icmp.msg_code()), (1, 4));
        assert_eq!((icmp.echo_ident(), icmp.echo_seq_no()), (1, 2));
        assert_eq!(Icmpv6Type::NEIGHBOR_SOLICIT, 135);
        assert_eq!(Icmpv6Type::NEIGHBOR_ADVERT, 136);
    }

    #[test]
    fn rejects_truncated() {
        assert_eq!(Icmpv6Packet::new_checked(&ECHO[..7]), Err(Error::Truncated));
        assert!(Icmpv6Packet::new_checked(&ECHO[..8]).is_ok());
    }
}
