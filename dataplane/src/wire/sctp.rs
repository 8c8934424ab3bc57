//! SCTP common header (RFC 9260 §3.1): ports, verification tag, checksum.
//!
//! Unlike TCP and UDP, SCTP's checksum is a CRC32c over the whole packet and
//! covers no pseudo-header: a NAT that changes ports must recompute it
//! (there is no incremental update for a CRC), and changing addresses does
//! not touch it. The CRC is stored in little-endian byte order.

use super::{Error, Result};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const VERIFICATION_TAG: usize = 4;
    pub const CHECKSUM: usize = 8;
    pub const HEADER_LEN: usize = 12;
}

pub struct SctpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> SctpPacket<T> {
    pub const HEADER_LEN: usize = field::HEADER_LEN;

    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        SctpPacket { buffer }
    }

    /// A view of a whole SCTP packet (the IP payload).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < field::HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(SctpPacket { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn u16_at(&self, at: usize) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        self.u16_at(field::SRC_PORT)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        self.u16_at(field::DST_PORT)
    }

    pub fn verification_tag(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[4], b[5], b[6], b[7]])
    }

    /// The stored CRC32c.
    pub fn checksum(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_le_bytes([b[8], b[9], b[10], b[11]])
    }

    /// The CRC32c of the packet with the checksum field taken as zero.
    pub fn compute_checksum(&self) -> u32 {
        let b = self.buffer.as_ref();
        let crc = crc32c::crc32c(&b[..field::CHECKSUM]);
        let crc = crc32c::crc32c_append(crc, &[0; 4]);
        crc32c::crc32c_append(crc, &b[field::HEADER_LEN..])
    }

    pub fn verify_checksum(&self) -> bool {
        self.checksum() == self.compute_checksum()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> SctpPacket<T> {
    #[inline]
    pub fn set_src_port(&mut self, port: u16) {
        self.buffer.as_mut()[field::SRC_PORT..field::SRC_PORT + 2].copy_from_slice(&port.to_be_bytes());
    }

    #[inline]
    pub fn set_dst_port(&mut self, port: u16) {
        self.buffer.as_mut()[field::DST_PORT..field::DST_PORT + 2].copy_from_slice(&port.to_be_bytes());
    }

    pub fn set_verification_tag(&mut self, tag: u32) {
        self.buffer.as_mut()[field::VERIFICATION_TAG..field::CHECKSUM].copy_from_slice(&tag.to_be_bytes());
    }

    /// Recomputes and stores the CRC32c.
    pub fn fill_checksum(&mut self) {
        let crc = self.compute_checksum();
        self.buffer.as_mut()[field::CHECKSUM..field::HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_known_vector() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    }

    /// A DATA chunk packet as scapy builds it (an independent CRC32c).
    const SCAPY_PACKET: &str = "13888e3cdeadbeefbf8a2d0b0000001500000000000000000000000068656c6c6f000000";

    #[test]
    fn checksum_agrees_with_an_independent_implementation() {
        let bytes: Vec<u8> = (0..SCAPY_PACKET.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&SCAPY_PACKET[i..i + 2], 16).unwrap())
            .collect();
        let s = SctpPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!((s.src_port(), s.dst_port()), (5000, 36412));
        assert!(s.verify_checksum());
    }

    #[test]
    fn ports_and_checksum_round_trip() {
        let mut packet = [0u8; 12 + 16];
        packet[12..].copy_from_slice(b"INIT chunk bytes");
        let mut s = SctpPacket::new_checked(&mut packet[..]).unwrap();
        s.set_src_port(5000);
        s.set_dst_port(36412);
        s.set_verification_tag(0xdead_beef);
        s.fill_checksum();
        assert!(s.verify_checksum());
        assert_eq!((s.src_port(), s.dst_port(), s.verification_tag()), (5000, 36412, 0xdead_beef));
        s.set_dst_port(36413);
        assert!(!s.verify_checksum(), "a port change invalidates the CRC");
        assert!(SctpPacket::new_checked(&[0u8; 11][..]).is_err());
    }
}
