//! ARP (RFC 826) for IPv4 over Ethernet, the only combination a proxy
//! answering for its service addresses needs.

use std::net::Ipv4Addr;

use super::ethernet::{EtherType, MacAddr};
use super::{read_array, read_u16, write_bytes, write_u16, Error, Result};

/// The ARP operation field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    Request,
    Reply,
    /// Any other opcode (RARP and friends), kept so it can be counted.
    Other(u16),
}

impl ArpOperation {
    const REQUEST: u16 = 1;
    const REPLY: u16 = 2;
}

impl From<u16> for ArpOperation {
    #[inline]
    fn from(value: u16) -> Self {
        match value {
            ArpOperation::REQUEST => ArpOperation::Request,
            ArpOperation::REPLY => ArpOperation::Reply,
            other => ArpOperation::Other(other),
        }
    }
}

impl From<ArpOperation> for u16 {
    #[inline]
    fn from(op: ArpOperation) -> u16 {
        match op {
            ArpOperation::Request => ArpOperation::REQUEST,
            ArpOperation::Reply => ArpOperation::REPLY,
            ArpOperation::Other(other) => other,
        }
    }
}

mod field {
    pub const HARDWARE_TYPE: usize = 0;
    pub const PROTOCOL_TYPE: usize = 2;
    pub const HARDWARE_LEN: usize = 4;
    pub const PROTOCOL_LEN: usize = 5;
    pub const OPERATION: usize = 6;
    // The address fields below assume 6-byte hardware and 4-byte protocol
    // addresses, which `new_checked` verifies.
    pub const SENDER_HARDWARE_ADDR: usize = 8;
    pub const SENDER_PROTOCOL_ADDR: usize = 14;
    pub const TARGET_HARDWARE_ADDR: usize = 18;
    pub const TARGET_PROTOCOL_ADDR: usize = 24;
    pub const END: usize = 28;

    /// Hardware type for Ethernet.
    pub const HARDWARE_ETHERNET: u16 = 1;
}

/// A view of an Ethernet/IPv4 ARP packet (28 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Length of an Ethernet/IPv4 ARP packet.
    pub const LEN: usize = field::END;

    /// Wraps `buffer` without any check.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Wraps `buffer` after checking it is a complete Ethernet/IPv4 ARP
    /// packet: [`Error::Truncated`] below 28 bytes, [`Error::Unsupported`]
    /// for any other hardware/protocol type or address length.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let data = buffer.as_ref();
        if data.len() < field::END {
            return Err(Error::Truncated);
        }
        let ethernet_ipv4 = read_u16(data, field::HARDWARE_TYPE) == field::HARDWARE_ETHERNET
            && read_u16(data, field::PROTOCOL_TYPE) == EtherType::IPV4
            && data[field::HARDWARE_LEN] == 6
            && data[field::PROTOCOL_LEN] == 4;
        if !ethernet_ipv4 {
            return Err(Error::Unsupported);
        }
        Ok(ArpPacket { buffer })
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
    pub fn hardware_type(&self) -> u16 {
        read_u16(self.data(), field::HARDWARE_TYPE)
    }

    #[inline]
    pub fn protocol_type(&self) -> u16 {
        read_u16(self.data(), field::PROTOCOL_TYPE)
    }

    #[inline]
    pub fn operation(&self) -> ArpOperation {
        ArpOperation::from(read_u16(self.data(), field::OPERATION))
    }

    #[inline]
    pub fn sender_hardware_addr(&self) -> MacAddr {
        MacAddr(read_array(self.data(), field::SENDER_HARDWARE_ADDR))
    }

    #[inline]
    pub fn sender_protocol_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(read_array::<4>(self.data(), field::SENDER_PROTOCOL_ADDR))
    }

    #[inline]
    pub fn target_hardware_addr(&self) -> MacAddr {
        MacAddr(read_array(self.data(), field::TARGET_HARDWARE_ADDR))
    }

    #[inline]
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(read_array::<4>(self.data(), field::TARGET_PROTOCOL_ADDR))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Writes the fixed Ethernet/IPv4 preamble (hardware and protocol types
    /// and lengths), for building a packet from scratch.
    #[inline]
    pub fn set_ethernet_ipv4(&mut self) {
        let data = self.buffer.as_mut();
        write_u16(data, field::HARDWARE_TYPE, field::HARDWARE_ETHERNET);
        write_u16(data, field::PROTOCOL_TYPE, EtherType::IPV4);
        data[field::HARDWARE_LEN] = 6;
        data[field::PROTOCOL_LEN] = 4;
    }

    #[inline]
    pub fn set_operation(&mut self, op: ArpOperation) {
        write_u16(self.buffer.as_mut(), field::OPERATION, op.into());
    }

    #[inline]
    pub fn set_sender_hardware_addr(&mut self, addr: MacAddr) {
        write_bytes(self.buffer.as_mut(), field::SENDER_HARDWARE_ADDR, &addr.0);
    }

    #[inline]
    pub fn set_sender_protocol_addr(&mut self, addr: Ipv4Addr) {
        write_bytes(self.buffer.as_mut(), field::SENDER_PROTOCOL_ADDR, &addr.octets());
    }

    #[inline]
    pub fn set_target_hardware_addr(&mut self, addr: MacAddr) {
        write_bytes(self.buffer.as_mut(), field::TARGET_HARDWARE_ADDR, &addr.0);
    }

    #[inline]
    pub fn set_target_protocol_addr(&mut self, addr: Ipv4Addr) {
        write_bytes(self.buffer.as_mut(), field::TARGET_PROTOCOL_ADDR, &addr.octets());
    }

    /// Turns a request into the reply announcing that its target protocol
    /// address is at `our_mac`: the requester becomes the target, and we
    /// become the sender with the address that was asked for.
    ///
    /// It does not check the operation or whether the asked-for address is
    /// ours; the caller decides whether to answer. The Ethernet header
    /// around it must be rewritten separately (destination = the
    /// requester's MAC, source = `our_mac`).
    pub fn make_reply(&mut self, our_mac: MacAddr) {
        let requester_mac = self.sender_hardware_addr();
        let requester_ip = self.sender_protocol_addr();
        let asked_ip = self.target_protocol_addr();
        self.set_operation(ArpOperation::Reply);
        self.set_target_hardware_addr(requester_mac);
        self.set_target_protocol_addr(requester_ip);
        self.set_sender_hardware_addr(our_mac);
        self.set_sender_protocol_addr(asked_ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// "Who has 10.0.0.1? Tell 10.0.0.2", as captured after the Ethernet
    /// header.
    const REQUEST: [u8; 28] = [
        0x00, 0x01, // Ethernet
        0x08, 0x00, // IPv4
        0x06, 0x04, // lengths
        0x00, 0x01, // request
        0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc, // sender MAC
        10, 0, 0, 2, // sender IP
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // target MAC (unknown)
        10, 0, 0, 1, // target IP
    ];

    #[test]
    fn parse_request() {
        let arp = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(arp.hardware_type(), 1);
        assert_eq!(arp.protocol_type(), EtherType::IPV4);
        assert_eq!(arp.operation(), ArpOperation::Request);
        assert_eq!(arp.sender_hardware_addr(), MacAddr([0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc]));
        assert_eq!(arp.sender_protocol_addr(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(arp.target_hardware_addr(), MacAddr::ZERO);
        assert_eq!(arp.target_protocol_addr(), Ipv4Addr::new(10, 0, 0, 1));
    }

    #[test]
    fn request_becomes_reply() {
        let ours = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
        let mut bytes = REQUEST;
        let mut arp = ArpPacket::new_checked(&mut bytes[..]).unwrap();
        arp.make_reply(ours);
        assert_eq!(arp.operation(), ArpOperation::Reply);
        assert_eq!(arp.sender_hardware_addr(), ours);
        assert_eq!(arp.sender_protocol_addr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(arp.target_hardware_addr(), MacAddr([0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc]));
        assert_eq!(arp.target_protocol_addr(), Ipv4Addr::new(10, 0, 0, 2));
        // The preamble is untouched.
        assert_eq!(&bytes[..6], &REQUEST[..6]);
    }

    #[test]
    fn build_from_scratch() {
        let mut bytes = [0u8; 28];
        let mut arp = ArpPacket::new_unchecked(&mut bytes[..]);
        arp.set_ethernet_ipv4();
        arp.set_operation(ArpOperation::Request);
        arp.set_sender_hardware_addr(MacAddr([0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc]));
        arp.set_sender_protocol_addr(Ipv4Addr::new(10, 0, 0, 2));
        arp.set_target_hardware_addr(MacAddr::ZERO);
        arp.set_target_protocol_addr(Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(bytes, REQUEST);
    }

    #[test]
    fn operations_round_trip() {
        for raw in [1u16, 2, 3, 0xFFFF] {
            assert_eq!(u16::from(ArpOperation::from(raw)), raw);
        }
        assert_eq!(ArpOperation::from(3), ArpOperation::Other(3));
    }

    #[test]
    fn rejects_truncated_and_other_kinds() {
        assert_eq!(ArpPacket::new_checked(&REQUEST[..27]), Err(Error::Truncated));
        for (at, value) in [(1, 6u8), (3, 0xdd), (4, 8), (5, 16)] {
            let mut bytes = REQUEST;
            bytes[at] = value;
            assert_eq!(ArpPacket::new_checked(&bytes[..]), Err(Error::Unsupported));
        }
        // Ethernet padding after the 28 bytes is fine.
        let mut padded = [0u8; 46];
        padded[..28].copy_from_slice(&REQUEST);
        assert!(ArpPacket::new_checked(&padded[..]).is_ok());
    }
}
