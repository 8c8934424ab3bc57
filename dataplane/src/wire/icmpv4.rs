//! ICMP for IPv4 (RFC 792).
//!
//! Every message has an 8-byte header: type, code, checksum, and four bytes
//! whose meaning depends on the type (identifier and sequence number for
//! echo, next-hop MTU for "fragmentation needed", unused otherwise). For
//! error messages the payload is the start of the packet that caused the
//! error (its IP header and at least 8 bytes of its payload), which a NAT
//! must translate too.

use super::checksum;
use super::{read_u16, write_u16, Error, Result};

mod field {
    pub const MSG_TYPE: usize = 0;
    pub const MSG_CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    /// Echo request/reply: identifier.
    pub const ECHO_IDENT: usize = 4;
    /// Echo request/reply: sequence number.
    pub const ECHO_SEQ_NO: usize = 6;
    /// Destination unreachable, code "fragmentation needed": next-hop MTU
    /// (RFC 1191).
    pub const NEXT_HOP_MTU: usize = 6;
    pub const PAYLOAD: usize = 8;
}

/// Names for ICMPv4 message types (the field stays a plain `u8`).
pub enum Icmpv4Type {}

impl Icmpv4Type {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACHABLE: u8 = 3;
    pub const REDIRECT: u8 = 5;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAMETER_PROBLEM: u8 = 12;

    /// True for error messages, whose payload embeds the offending packet.
    #[inline]
    pub fn is_error(msg_type: u8) -> bool {
        matches!(
            msg_type,
            Self::DEST_UNREACHABLE
                | 4 // source quench (deprecated)
                | Self::REDIRECT
                | Self::TIME_EXCEEDED
                | Self::PARAMETER_PROBLEM
        )
    }
}

/// Codes of "destination unreachable" messages.
pub enum Icmpv4Unreachable {}

impl Icmpv4Unreachable {
    pub const NET: u8 = 0;
    pub const HOST: u8 = 1;
    pub const PROTOCOL: u8 = 2;
    /// What a proxy sends for a service port with no endpoints.
    pub const PORT: u8 = 3;
    /// Fragmentation needed and DF set; carries the next-hop MTU.
    pub const FRAG_NEEDED: u8 = 4;
    pub const SOURCE_ROUTE_FAILED: u8 = 5;
    pub const NET_UNKNOWN: u8 = 6;
    pub const HOST_UNKNOWN: u8 = 7;
    pub const NET_PROHIBITED: u8 = 9;
    pub const HOST_PROHIBITED: u8 = 10;
    /// Communication administratively prohibited (RFC 1812).
    pub const ADMIN_PROHIBITED: u8 = 13;
}

/// A view of an ICMPv4 message. The buffer must be exactly the message (the
/// IP view's `payload()`): the checksum covers all of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Length of the header.
    pub const HEADER_LEN: usize = field::PAYLOAD;

    /// Wraps `buffer` without any check.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv4Packet { buffer }
    }

    /// Wraps `buffer` after checking it holds the 8-byte header
    /// ([`Error::Truncated`]).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < field::PAYLOAD {
            return Err(Error::Truncated);
        }
        Ok(Icmpv4Packet { buffer })
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

    /// The message type; compare with [`Icmpv4Type`] constants.
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

    /// Next-hop MTU of a "fragmentation needed" message.
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        read_u16(self.data(), field::NEXT_HOP_MTU)
    }

    /// The bytes after the 8-byte header: echo data, or for error messages
    /// the embedded original packet (parse it with `Ipv4Packet`, which will
    /// usually be cut short, so read its header fields only).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.data().get(field::PAYLOAD..).unwrap_or_default()
    }

    /// True when the checksum over the whole message is correct.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::sum(self.data()) == 0xFFFF
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
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
    pub fn set_next_hop_mtu(&mut self, mtu: u16) {
        write_u16(self.data_mut(), field::NEXT_HOP_MTU, mtu);
    }

    /// Mutable [`payload`](Self::payload).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.data_mut().get_mut(field::PAYLOAD..).unwrap_or_default()
    }

    /// Computes the checksum over the whole message from scratch.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let check = checksum::checksum(self.data());
        self.set_checksum(check);
    }

    /// Sets the echo identifier and incrementally updates the checksum, for
    /// NAT of echo flows where the identifier plays the role of a port.
    #[inline]
    pub fn set_echo_ident_adjust_checksum(&mut self, ident: u16) {
        let check = checksum::update_u16(self.checksum(), self.echo_ident(), ident);
        self.set_echo_ident(ident);
        self.set_checksum(check);
    }

    /// Turns an echo request into its reply in place: only the type
    /// changes, so the checksum is updated incrementally. The IP addresses
    /// must be swapped by the caller.
    #[inline]
    pub fn make_echo_reply(&mut self) {
        // Type and code share the first 16-bit word.
        let code = u16::from(self.msg_code());
        let old_word = (u16::from(self.msg_type()) << 8) | code;
        let new_word = (u16::from(Icmpv4Type::ECHO_REPLY) << 8) | code;
        let check = checksum::update_u16(self.checksum(), old_word, new_word);
        self.set_msg_type(Icmpv4Type::ECHO_REPLY);
        self.set_checksum(check);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Linux `ping` echo request (ident 0x1f2e, seq 1) with 8 bytes of
    /// data; checksum 0x473b computed independently of this crate.
    const ECHO: [u8; 16] = [
        0x08, 0x00, 0x47, 0x3b, 0x1f, 0x2e, 0x00, 0x01, // header
        0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, // "abcdefgh"
    ];

    #[test]
    fn known_echo_request() {
        let icmp = Icmpv4Packet::new_checked(&ECHO[..]).unwrap();
        assert_eq!(icmp.msg_type(), Icmpv4Type::ECHO_REQUEST);
        assert_eq!(icmp.msg_code(), 0);
        assert_eq!(icmp.checksum(), 0x473b);
        assert_eq!(icmp.echo_ident(), 0x1f2e);
        assert_eq!(icmp.echo_seq_no(), 1);
        assert_eq!(icmp.payload(), b"abcdefgh");
        assert!(icmp.verify_checksum());
        assert!(!Icmpv4Type::is_error(icmp.msg_type()));

        let mut copy = ECHO;
        let mut icmp = Icmpv4Packet::new_checked(&mut copy[..]).unwrap();
        icmp.fill_checksum();
        assert_eq!(icmp.checksum(), 0x473b);
    }

    #[test]
    fn echo_reply_and_ident_rewrite_keep_checksum_valid() {
        let mut bytes = ECHO;
        let mut icmp = Icmpv4Packet::new_checked(&mut bytes[..]).unwrap();
        icmp.make_echo_reply();
        assert_eq!(icmp.msg_type(), Icmpv4Type::ECHO_REPLY);
        assert!(icmp.verify_checksum());
        icmp.set_echo_ident_adjust_checksum(0xabcd);
        assert_eq!(icmp.echo_ident(), 0xabcd);
        assert!(icmp.verify_checksum());
        let incremental = icmp.checksum();
        icmp.fill_checksum();
        assert_eq!(icmp.checksum(), incremental);
    }

    #[test]
    fn port_unreachable_embeds_original() {
        let original = [0x45u8, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        let mut bytes = [0u8; 8 + 20];
        let mut icmp = Icmpv4Packet::new_unchecked(&mut bytes[..]);
        icmp.set_msg_type(Icmpv4Type::DEST_UNREACHABLE);
        icmp.set_msg_code(Icmpv4Unreachable::PORT);
        icmp.payload_mut().copy_from_slice(&original);
        icmp.fill_checksum();

        let icmp = Icmpv4Packet::new_checked(&bytes[..]).unwrap();
        assert!(Icmpv4Type::is_error(icmp.msg_type()));
        assert_eq!(icmp.msg_code(), 3);
        assert_eq!(icmp.payload(), &original);
        assert!(icmp.verify_checksum());
    }

    #[test]
    fn frag_needed_mtu() {
        let mut bytes = [0u8; 8];
        let mut icmp = Icmpv4Packet::new_checked(&mut bytes[..]).unwrap();
        icmp.set_msg_type(Icmpv4Type::DEST_UNREACHABLE);
        icmp.set_msg_code(Icmpv4Unreachable::FRAG_NEEDED);
        icmp.set_next_hop_mtu(1400);
        icmp.set_echo_seq_no(1400);
        assert_eq!(icmp.next_hop_mtu(), 1400);
        assert!(icmp.payload().is_empty());
    }

    #[test]
    fn rejects_truncated() {
        assert_eq!(Icmpv4Packet::new_checked(&ECHO[..7]), Err(Error::Truncated));
        assert!(Icmpv4Packet::new_checked(&ECHO[..8]).is_ok());
    }
}
