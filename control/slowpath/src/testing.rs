//! Test fixtures: a port with both families, Services without endpoints,
//! frames built with smoltcp and `dataplane::wire::build`, and checksums
//! verified from scratch (a plain ones'-complement sum, not smoltcp's).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use dataplane::tables::{proto, Addr, Backend, BackendState, PortInfo, Service, ServiceKey, ServiceSpec, Snapshot};
use dataplane::wire::build::{FrameSpec, Transport};
pub(super) use dataplane::wire::MacAddr;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, Icmpv4Packet,
    Icmpv4Repr, Icmpv6Repr, IpProtocol, Ipv4Packet, Ipv4Repr, NdiscNeighborFlags, NdiscRepr, RawHardwareAddress,
};

use super::SlowPath;

pub(super) const OUR_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
pub(super) const CLIENT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xc0]);
pub(super) const PORT_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub(super) const PORT_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
pub(super) const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0xc0);
pub(super) const VIP_V4: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
pub(super) const VIP_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x96, 0, 0, 0, 0, 0, 0x10);
pub(super) const POD_V4: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 5);
pub(super) const POD_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x10, 0x244, 1, 0, 0, 0, 5);

/// One port (0) with an address of each family; with `empty_services`,
/// TCP port 80 and UDP port 53 on both VIPs, all without endpoints.
pub(super) fn snapshot(empty_services: bool) -> Snapshot {
    let mut snap = Snapshot::default();
    snap.ports.push(PortInfo { mac: OUR_MAC, ipv4: Some(PORT_V4), ipv6: Some(PORT_V6), masquerade: true });
    if empty_services {
        for vip in [IpAddr::V4(VIP_V4), IpAddr::V6(VIP_V6)] {
            add_service(&mut snap, vip, 80, proto::TCP, vec![]);
            add_service(&mut snap, vip, 53, proto::UDP, vec![]);
        }
    }
    snap
}

pub(super) fn add_service(snap: &mut Snapshot, vip: IpAddr, port: u16, protocol: u8, backends: Vec<IpAddr>) {
    let key = ServiceKey { vip: vip.into(), port, proto: protocol };
    let backends = backends
        .into_iter()
        .map(|ip| Backend { addr: Addr::from(ip), port: 8080, weight: 1, state: BackendState::Ready })
        .collect();
    let spec = ServiceSpec { name: format!("default/svc-{port}"), key, backends, affinity_timeout_s: 0 };
    snap.services.insert(key, Arc::new(Service::build(spec, 1 << 10)));
}

/// A slow path over [`snapshot`]`(true)`.
pub(super) fn slow_path() -> SlowPath {
    let mut s = SlowPath::new();
    s.update_tables(&snapshot(true));
    s
}

fn ethernet(
    src: MacAddr,
    dst: [u8; 6],
    ethertype: EthernetProtocol,
    len: usize,
    fill: impl FnOnce(&mut [u8]),
) -> Vec<u8> {
    let eth = EthernetRepr { src_addr: EthernetAddress(src.0), dst_addr: EthernetAddress(dst), ethertype };
    let mut buf = vec![0u8; eth.buffer_len() + len];
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut frame);
    fill(frame.payload_mut());
    buf
}

fn arp(src_mac: MacAddr, dst_mac: [u8; 6], repr: ArpRepr) -> Vec<u8> {
    ethernet(src_mac, dst_mac, EthernetProtocol::Arp, repr.buffer_len(), |p| {
        repr.emit(&mut ArpPacket::new_unchecked(p))
    })
}

pub(super) fn arp_request(src_mac: MacAddr, sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let repr = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(src_mac.0),
        source_protocol_addr: sender,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: target,
    };
    arp(src_mac, [0xff; 6], repr)
}

pub(super) fn arp_reply(src_mac: MacAddr, sender: Ipv4Addr, target_mac: MacAddr, target: Ipv4Addr) -> Vec<u8> {
    let repr = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Reply,
        source_hardware_addr: EthernetAddress(src_mac.0),
        source_protocol_addr: sender,
        target_hardware_addr: EthernetAddress(target_mac.0),
        target_protocol_addr: target,
    };
    arp(src_mac, target_mac.0, repr)
}

/// An ICMPv6 message from `src_mac` to `dst_mac`, checksummed by smoltcp
/// (the slow path's own emitter: what is tested is how it reads them).
pub(super) fn icmpv6(
    src_mac: MacAddr,
    dst_mac: [u8; 6],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    icmp: &Icmpv6Repr,
) -> Vec<u8> {
    super::emit::icmpv6(src_mac, EthernetAddress(dst_mac), src, dst, hop_limit, icmp)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn neighbor_solicit(
    src_mac: MacAddr,
    dst_mac: [u8; 6],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    target: Ipv6Addr,
    lladdr: Option<MacAddr>,
    hop_limit: u8,
) -> Vec<u8> {
    let lladdr = lladdr.map(|m| RawHardwareAddress::from(EthernetAddress(m.0)));
    let ns = NdiscRepr::NeighborSolicit { target_addr: target, lladdr };
    icmpv6(src_mac, dst_mac, src, dst, hop_limit, &Icmpv6Repr::Ndisc(ns))
}

/// A Neighbor Advertisement; `flags` is the flags octet (R 0x80, S 0x40,
/// O 0x20).
#[allow(clippy::too_many_arguments)]
pub(super) fn advertisement(
    src_mac: MacAddr,
    dst_mac: [u8; 6],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    target: Ipv6Addr,
    lladdr: Option<MacAddr>,
    flags: u8,
    hop_limit: u8,
) -> Vec<u8> {
    let na = NdiscRepr::NeighborAdvert {
        flags: NdiscNeighborFlags::from_bits_truncate(flags),
        target_addr: target,
        lladdr: lladdr.map(|m| RawHardwareAddress::from(EthernetAddress(m.0))),
    };
    icmpv6(src_mac, dst_mac, src, dst, hop_limit, &Icmpv6Repr::Ndisc(na))
}

/// An echo request from [`CLIENT_MAC`] to [`OUR_MAC`].
pub(super) fn echo_request_v6(src: Ipv6Addr, dst: Ipv6Addr, ident: u16, seq_no: u16, data: &[u8]) -> Vec<u8> {
    icmpv6(CLIENT_MAC, OUR_MAC.0, src, dst, 64, &Icmpv6Repr::EchoRequest { ident, seq_no, data })
}

pub(super) fn echo_request_v4(src: Ipv4Addr, dst: Ipv4Addr, ident: u16, seq_no: u16, data: &[u8]) -> Vec<u8> {
    let caps = ChecksumCapabilities::default();
    let echo = Icmpv4Repr::EchoRequest { ident, seq_no, data };
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Icmp,
        payload_len: echo.buffer_len(),
        hop_limit: 64,
    };
    ethernet(CLIENT_MAC, OUR_MAC.0, EthernetProtocol::Ipv4, ip.buffer_len() + ip.payload_len, |l3| {
        let mut packet = Ipv4Packet::new_unchecked(l3);
        ip.emit(&mut packet, &caps);
        echo.emit(&mut Icmpv4Packet::new_unchecked(packet.payload_mut()), &caps);
    })
}

fn frame(src: IpAddr, dst: IpAddr, transport: Transport, payload: &[u8]) -> Vec<u8> {
    let spec = FrameSpec { src_mac: CLIENT_MAC, dst_mac: OUR_MAC, src, dst, ttl: 64, transport, payload };
    spec.build().expect("a frame of one family")
}

/// A TCP or UDP frame from [`CLIENT_MAC`] to [`OUR_MAC`].
pub(super) fn frame_v4(src: Ipv4Addr, dst: Ipv4Addr, transport: Transport, payload: &[u8]) -> Vec<u8> {
    frame(src.into(), dst.into(), transport, payload)
}

pub(super) fn frame_v6(src: Ipv6Addr, dst: Ipv6Addr, transport: Transport, payload: &[u8]) -> Vec<u8> {
    frame(src.into(), dst.into(), transport, payload)
}

/// The ones'-complement checksum of the chunks laid end to end: 0 over a
/// header or message whose checksum field is right.
pub(super) fn internet_checksum(chunks: &[&[u8]]) -> u16 {
    let bytes: Vec<u8> = chunks.concat();
    let mut sum: u32 = 0;
    for pair in bytes.chunks(2) {
        let word = u16::from_be_bytes([pair[0], pair.get(1).copied().unwrap_or(0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The pseudo-header of `src`, `dst`, `protocol` and `len` (RFC 768 for
/// IPv4, RFC 8200 §8.1 for IPv6).
fn pseudo_header(src: IpAddr, dst: IpAddr, protocol: u8, len: usize) -> Vec<u8> {
    let mut pseudo = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&[0, protocol]);
            pseudo.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            let octets = |ip: IpAddr| match ip {
                IpAddr::V6(v6) => v6.octets(),
                IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            };
            pseudo.extend_from_slice(&octets(src));
            pseudo.extend_from_slice(&octets(dst));
            pseudo.extend_from_slice(&(len as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, protocol]);
        }
    }
    pseudo
}

pub(super) fn tcp_checksum_ok(src: IpAddr, dst: IpAddr, segment: &[u8]) -> bool {
    internet_checksum(&[&pseudo_header(src, dst, 6, segment.len()), segment]) == 0
}

/// Whether the ICMPv6 message of an Ethernet + IPv6 frame has a right
/// checksum over its pseudo-header.
pub(super) fn icmpv6_checksum_ok(frame: &[u8]) -> bool {
    let ip = &frame[14..54];
    let len = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    let message = &frame[54..54 + len];
    let pseudo = pseudo_header(ipv6_at(ip, 8).into(), ipv6_at(ip, 24).into(), 58, len);
    ip[6] == 58 && internet_checksum(&[&pseudo, message]) == 0
}

/// The IPv6 address at `at` in `bytes`.
pub(super) fn ipv6_at(bytes: &[u8], at: usize) -> Ipv6Addr {
    let mut octets = [0u8; 16];
    octets.copy_from_slice(&bytes[at..at + 16]);
    Ipv6Addr::from(octets)
}

/// Checks a Neighbor Solicitation sent by `(our_mac, our_ip)` field by
/// field from its bytes; returns its target.
pub(super) fn check_solicitation(frame: &[u8], our_mac: MacAddr, our_ip: Ipv6Addr) -> Ipv6Addr {
    assert_eq!(frame.len(), 14 + 40 + 32, "NS with one option");
    let ip = &frame[14..54];
    let icmp = &frame[54..];
    let target = ipv6_at(icmp, 8);
    let t = target.octets();
    let group = Ipv6Addr::from([0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, t[13], t[14], t[15]]);
    assert_eq!(&frame[0..6], &[0x33, 0x33, 0xff, t[13], t[14], t[15]], "to the solicited-node group's MAC");
    assert_eq!(&frame[6..12], &our_mac.0);
    assert_eq!(&frame[12..14], &[0x86, 0xdd], "IPv6");
    assert_eq!(&ip[0..4], &[0x60, 0, 0, 0], "version 6, no traffic class, no flow label");
    assert_eq!(&ip[4..6], &32u16.to_be_bytes(), "payload length");
    assert_eq!((ip[6], ip[7]), (58, 255), "ICMPv6, hop limit 255");
    assert_eq!((ipv6_at(ip, 8), ipv6_at(ip, 24)), (our_ip, group));
    assert_eq!((icmp[0], icmp[1]), (135, 0), "Neighbor Solicitation, code 0");
    assert!(icmpv6_checksum_ok(frame), "ICMPv6 checksum");
    assert_eq!(&icmp[4..8], &[0; 4], "reserved");
    assert_eq!((icmp[24], icmp[25]), (1, 1), "source link-layer address option, 8 bytes");
    assert_eq!(&icmp[26..32], &our_mac.0);
    target
}

#[test]
fn the_checksum_helpers_check_something() {
    // An IPv4 header with a right checksum (0xb861), then a wrong one.
    let mut header = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
        0x00, 0xc7,
    ];
    assert_eq!(internet_checksum(&[&header]), 0);
    header[11] ^= 1;
    assert_ne!(internet_checksum(&[&header]), 0);
    let mut ping = echo_request_v6(CLIENT_V6, PORT_V6, 1, 1, b"odd");
    assert!(icmpv6_checksum_ok(&ping));
    ping[14 + 8] ^= 1; // the source address, which the pseudo-header covers
    assert!(!icmpv6_checksum_ok(&ping));
}
