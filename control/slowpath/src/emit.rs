//! Assembling the frames the slow path sends: an Ethernet header, an IP
//! header from its smoltcp representation, and a payload the caller writes
//! into the space the IP header's length leaves for it.

use std::net::Ipv6Addr;

use dataplane::wire::MacAddr;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, Icmpv6Packet, Icmpv6Repr, IpProtocol, Ipv4Packet,
    Ipv4Repr, Ipv6Packet, Ipv6Repr,
};

/// An Ethernet frame of `payload_len` bytes of payload, written by `fill`.
pub(super) fn ethernet(
    src: MacAddr,
    dst: EthernetAddress,
    ethertype: EthernetProtocol,
    payload_len: usize,
    fill: impl FnOnce(&mut [u8]),
) -> Vec<u8> {
    let repr = EthernetRepr { src_addr: EthernetAddress(src.0), dst_addr: dst, ethertype };
    let mut buf = vec![0u8; repr.buffer_len() + payload_len];
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
    repr.emit(&mut frame);
    fill(frame.payload_mut());
    buf
}

/// An IPv4 packet in an Ethernet frame; `fill` writes its
/// `ip.payload_len` bytes of payload. The header checksum is computed.
pub(super) fn ipv4(src: MacAddr, dst: EthernetAddress, ip: &Ipv4Repr, fill: impl FnOnce(&mut [u8])) -> Vec<u8> {
    ethernet(src, dst, EthernetProtocol::Ipv4, ip.buffer_len() + ip.payload_len, |l3| {
        let mut packet = Ipv4Packet::new_unchecked(l3);
        ip.emit(&mut packet, &ChecksumCapabilities::default());
        fill(packet.payload_mut());
    })
}

/// An IPv6 packet in an Ethernet frame; `fill` writes its
/// `ip.payload_len` bytes of payload.
pub(super) fn ipv6(src: MacAddr, dst: EthernetAddress, ip: &Ipv6Repr, fill: impl FnOnce(&mut [u8])) -> Vec<u8> {
    ethernet(src, dst, EthernetProtocol::Ipv6, ip.buffer_len() + ip.payload_len, |l3| {
        let mut packet = Ipv6Packet::new_unchecked(l3);
        ip.emit(&mut packet);
        fill(packet.payload_mut());
    })
}

/// An ICMPv6 message in an IPv6 packet in an Ethernet frame, with its
/// checksum (which covers the IPv6 pseudo-header).
pub(super) fn icmpv6(
    src_mac: MacAddr,
    dst_mac: EthernetAddress,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    icmp: &Icmpv6Repr,
) -> Vec<u8> {
    let ip = Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Icmpv6,
        payload_len: icmp.buffer_len(),
        hop_limit,
    };
    ipv6(src_mac, dst_mac, &ip, |payload| {
        icmp.emit(&src, &dst, &mut Icmpv6Packet::new_unchecked(payload), &ChecksumCapabilities::default())
    })
}
