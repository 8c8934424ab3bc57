//! Typed, zero-copy views over packet bytes.
//!
//! Every protocol lives in its own file and follows the same pattern:
//!
//! * A view such as [`Ipv4Packet<T>`] wraps a buffer `T: AsRef<[u8]>` (a
//!   `&[u8]`, a `&mut [u8]`, a `Vec<u8>`, an mbuf slice...). Nothing is
//!   copied and nothing is allocated: getters read straight from the bytes,
//!   setters write straight into them.
//! * `new_checked(buffer)` validates, once, everything the getters later rely
//!   on (minimum length, version, header-length and length fields). On a
//!   checked view no getter and no `payload()` can panic, whatever the bytes
//!   were, so a forwarding core can never be brought down by a packet.
//! * `new_unchecked(buffer)` skips validation, for buffers the caller has
//!   just built or already validated. On a buffer shorter than the fixed
//!   header its getters panic like slice indexing does.
//! * `into_inner()` gives the buffer back.
//! * Getters need `T: AsRef<[u8]>`; setters need `T: AsRef<[u8]> + AsMut<[u8]>`.
//! * `payload()` / `payload_mut()` return the bytes after the header, bounded by
//!   the length field where the protocol has one (so Ethernet padding after an
//!   IPv4 packet is excluded). They never panic: if a setter later made the
//!   length fields inconsistent they return an empty slice.
//!
//! Field offsets are named constants in a private `field` module per file.
//! Multi-byte fields are big-endian on the wire and host-order integers in the
//! API. Checksums follow the convention documented in [`checksum`]: a
//! checksum is the host-order `u16` whose big-endian bytes are the field.
//!
//! A typical receive path:
//!
//! ```
//! use dataplane::wire::{parse_l2, EtherType, IpProtocol, Ipv4Packet, TcpPacket};
//!
//! fn classify(frame: &[u8]) -> dataplane::wire::Result<u16> {
//!     let l2 = parse_l2(frame)?;
//!     if l2.ethertype != EtherType::IPV4 {
//!         return Ok(0);
//!     }
//!     let ip = Ipv4Packet::new_checked(&frame[l2.l3_offset..])?;
//!     if ip.protocol() != IpProtocol::TCP || ip.is_fragment() {
//!         return Ok(0);
//!     }
//!     let tcp = TcpPacket::new_checked(ip.payload())?;
//!     Ok(tcp.dst_port())
//! }
//! # assert!(classify(&[0u8; 4]).is_err());
//! ```
//!
//! Each [`Error`] variant is a reason to drop a packet that a pipeline can
//! count; [`Error::label`] gives a stable name for metrics.

use core::fmt;

pub mod arp;
pub mod build;
pub mod checksum;
pub mod ethernet;
pub mod icmpv4;
pub mod icmpv6;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod sctp;
pub mod tcp;
pub mod udp;

pub use arp::{ArpOperation, ArpPacket};
pub use ethernet::{parse_l2, EtherType, EthernetFrame, L2Header, MacAddr};
pub use icmpv4::{Icmpv4Packet, Icmpv4Type, Icmpv4Unreachable};
pub use icmpv6::{Icmpv6Packet, Icmpv6Type, Icmpv6Unreachable};
pub use ip::IpProtocol;
pub use ipv4::Ipv4Packet;
pub use ipv6::{is_extension_header, Ipv6Packet};
pub use sctp::SctpPacket;
pub use tcp::{TcpFlags, TcpPacket};
pub use udp::UdpPacket;

/// Why a buffer could not be viewed as a packet of some protocol.
///
/// Every variant is a drop reason the pipeline can count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than the fixed header, or than a length field
    /// claims.
    Truncated,
    /// The IP version nibble is not the one the view expects.
    BadVersion,
    /// A header-length field is too small (IPv4 IHL < 5, TCP data offset < 5)
    /// or points beyond the buffer.
    BadHeaderLength,
    /// Length fields are inconsistent with each other (IPv4 total length
    /// smaller than its header, UDP length smaller than 8).
    BadLength,
    /// Well-formed, but a variant we do not handle (ARP that is not
    /// Ethernet/IPv4, more VLAN tags than we skip).
    Unsupported,
}

impl Error {
    /// Every variant, for pre-registering per-reason drop counters.
    pub const ALL: [Error; 5] =
        [Error::Truncated, Error::BadVersion, Error::BadHeaderLength, Error::BadLength, Error::Unsupported];

    /// A short, stable, snake_case name suitable as a metrics label.
    pub const fn label(self) -> &'static str {
        match self {
            Error::Truncated => "truncated",
            Error::BadVersion => "bad_version",
            Error::BadHeaderLength => "bad_header_length",
            Error::BadLength => "bad_length",
            Error::Unsupported => "unsupported",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Error::Truncated => "packet truncated",
            Error::BadVersion => "wrong IP version",
            Error::BadHeaderLength => "bad header length field",
            Error::BadLength => "inconsistent length fields",
            Error::Unsupported => "unsupported packet variant",
        };
        f.write_str(text)
    }
}

impl std::error::Error for Error {}

/// Result of building a checked view.
pub type Result<T> = core::result::Result<T, Error>;

// Big-endian field access shared by all views. Slicing first gives the
// optimiser a slice of known length, so a checked view pays for exactly one
// bounds check per field (and on a checked view it always passes).

#[inline]
fn read_u16(data: &[u8], at: usize) -> u16 {
    let bytes = &data[at..at + 2];
    u16::from_be_bytes([bytes[0], bytes[1]])
}

#[inline]
fn read_u32(data: &[u8], at: usize) -> u32 {
    let bytes = &data[at..at + 4];
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

#[inline]
fn read_array<const N: usize>(data: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&data[at..at + N]);
    out
}

#[inline]
fn write_u16(data: &mut [u8], at: usize, value: u16) {
    data[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

#[inline]
fn write_u32(data: &mut [u8], at: usize, value: u32) {
    data[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

#[inline]
fn write_bytes(data: &mut [u8], at: usize, value: &[u8]) {
    data[at..at + value.len()].copy_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct() {
        for (i, a) in Error::ALL.iter().enumerate() {
            for b in &Error::ALL[i + 1..] {
                assert_ne!(a.label(), b.label());
            }
            assert!(!a.to_string().is_empty());
        }
    }

    #[test]
    fn big_endian_helpers_round_trip() {
        let mut buf = [0u8; 8];
        write_u16(&mut buf, 1, 0xABCD);
        write_u32(&mut buf, 3, 0x0102_0304);
        assert_eq!(buf, [0, 0xAB, 0xCD, 1, 2, 3, 4, 0]);
        assert_eq!(read_u16(&buf, 1), 0xABCD);
        assert_eq!(read_u32(&buf, 3), 0x0102_0304);
        assert_eq!(read_array::<3>(&buf, 4), [2, 3, 4]);
        write_bytes(&mut buf, 6, &[9, 9]);
        assert_eq!(&buf[5..], &[3, 9, 9]);
    }
}
