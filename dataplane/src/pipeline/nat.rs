//! The NAT rewrite of the general path: addresses, ports, MACs and TTL,
//! with the checksums updated incrementally (RFC 1624). Established IPv4
//! flows take the rewrite compiled with the flow instead
//! (`flow::rewrite`).

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::flow::NatAction;
use crate::wire::checksum::{update_udp, Delta};
use crate::wire::{IpProtocol, Ipv4Packet, Ipv6Packet, SctpPacket, TcpPacket, UdpPacket};

use super::parse::Headers;

/// Writes the action's addresses, ports and MACs into the frame, with
/// incremental checksum updates, and decrements the TTL / hop limit as a
/// router does (the caller has checked it is above 1). The headers were
/// validated by [`parse`], so the views are built unchecked; returns false
/// only if the transport header is not where they said.
///
/// The address change is summed once ([`Delta`]) and applied to both the
/// IPv4 header checksum and the TCP/UDP one, whose pseudo-header covers the
/// same addresses.
#[inline]
pub(super) fn rewrite(frame: &mut [u8], h: &Headers, a: &NatAction) -> bool {
    // The views below are built over fixed-size arrays: once inlined, every
    // field offset is checked against a constant length at compile time,
    // and one length check per header is left at run time.
    let (l2, rest) = frame.split_at_mut(h.l3);
    let Some(macs) = l2.first_chunk_mut::<12>() else { return false };
    macs[0..6].copy_from_slice(&a.dst_mac.0);
    macs[6..12].copy_from_slice(&a.src_mac.0);

    let key = &h.key;
    let (addresses, transport) = if h.v4 {
        let (old_src, new_src) = (key.src.v4(), a.src.v4());
        let (old_dst, new_dst) = (key.dst.v4(), a.dst.v4());
        let addresses = Delta::default().u32(old_src, new_src).u32(old_dst, new_dst);
        let Some(header) = rest.first_chunk_mut::<20>() else { return false };
        let mut ip = Ipv4Packet::new_unchecked(&mut header[..]);
        let ttl = ip.ttl();
        let protocol = ip.protocol();
        let l4_range = (ip.header_len(), usize::from(ip.total_len()));
        let check = addresses
            .u16(u16::from_be_bytes([ttl, protocol]), u16::from_be_bytes([ttl.wrapping_sub(1), protocol]))
            .apply(ip.checksum());
        ip.set_ttl(ttl.wrapping_sub(1));
        ip.set_src_addr(Ipv4Addr::from(new_src));
        ip.set_dst_addr(Ipv4Addr::from(new_dst));
        ip.set_checksum(check);
        (addresses, l4_range)
    } else {
        let addresses = Delta::default().bytes16(&key.src.0, &a.src.0).bytes16(&key.dst.0, &a.dst.0);
        let Some(header) = rest.first_chunk_mut::<40>() else { return false };
        let mut ip = Ipv6Packet::new_unchecked(&mut header[..]);
        ip.set_hop_limit(ip.hop_limit().wrapping_sub(1));
        ip.set_src_addr(Ipv6Addr::from(a.src.0));
        ip.set_dst_addr(Ipv6Addr::from(a.dst.0));
        (addresses, (40, 40 + usize::from(ip.payload_len())))
    };
    // TCP, UDP and SCTP all start with the two ports: one 32-bit field.
    let ports = |src: u16, dst: u16| u32::from(src) << 16 | u32::from(dst);
    let l4_delta = addresses.u32(ports(key.src_port, key.dst_port), ports(a.src_port, a.dst_port));
    let Some(l4) = rest.get_mut(transport.0..transport.1) else { return false };
    match key.proto {
        IpProtocol::TCP => {
            let Some(header) = l4.first_chunk_mut::<20>() else { return false };
            let mut tcp = TcpPacket::new_unchecked(&mut header[..]);
            let check = l4_delta.apply(tcp.checksum());
            tcp.set_src_port(a.src_port);
            tcp.set_dst_port(a.dst_port);
            tcp.set_checksum(check);
        }
        IpProtocol::UDP => {
            let Some(header) = l4.first_chunk_mut::<8>() else { return false };
            let mut udp = UdpPacket::new_unchecked(&mut header[..]);
            let check = update_udp(udp.checksum(), |c| l4_delta.apply(c));
            udp.set_src_port(a.src_port);
            udp.set_dst_port(a.dst_port);
            udp.set_checksum(check);
        }
        IpProtocol::SCTP => {
            // SCTP's CRC32c covers no addresses, only the packet: recomputed
            // when the ports change.
            let mut sctp = SctpPacket::new_unchecked(l4);
            sctp.set_src_port(a.src_port);
            sctp.set_dst_port(a.dst_port);
            sctp.fill_checksum();
        }
        _ => {}
    }
    true
}
