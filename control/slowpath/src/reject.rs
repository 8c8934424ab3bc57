//! Rejects: a connection to a VIP whose Service has no endpoint is refused
//! as kube-proxy's reject rules do, so that clients fail at once instead of
//! timing out. TCP gets a RST; UDP and SCTP an ICMP (or ICMPv6) port
//! unreachable.

use std::net::{IpAddr, Ipv6Addr};

use dataplane::tables::{proto, Addr, PortId, ServiceKey};
use dataplane::wire::MacAddr;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetFrame, Icmpv4DstUnreachable, Icmpv4Packet, Icmpv4Repr, Icmpv6DstUnreachable, Icmpv6Message, Icmpv6Packet,
    IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
};

use super::echo::HOP_LIMIT;
use super::{emit, Out, SlowPath};

/// An ICMPv6 error quotes as much of the packet that caused it as fits in
/// IPv6's minimum MTU (RFC 4443 §2.4 (c)): 1280 less its own IPv6 header
/// and its 8-byte ICMPv6 header.
const ICMPV6_MAX_QUOTE: usize = 1280 - 40 - 8;

/// How a refused connection is answered.
enum Refusal {
    Reset(TcpRepr<'static>),
    PortUnreachable,
}

impl SlowPath {
    /// Whether `l4` (a TCP, UDP or SCTP header: ports first) is for a
    /// Service key without endpoints, and if so how to refuse it. `None`
    /// when there is nothing to answer (counted).
    fn refusal(&mut self, vip: IpAddr, protocol: IpProtocol, l4: &[u8]) -> Option<Refusal> {
        let Some(ports) = l4.get(0..4) else {
            self.counters.malformed += 1;
            return None;
        };
        let key = ServiceKey {
            vip: Addr::from(vip),
            port: u16::from_be_bytes([ports[2], ports[3]]),
            proto: u8::from(protocol),
        };
        if !self.no_endpoints.contains(&key) {
            self.counters.unhandled += 1;
            return None;
        }
        if key.proto != proto::TCP {
            return Some(Refusal::PortUnreachable);
        }
        let Ok(segment) = TcpPacket::new_checked(l4) else {
            self.counters.malformed += 1;
            return None;
        };
        // A reset is never answered, lest two ends reset each other forever.
        reset_for(&segment).map(Refusal::Reset)
    }

    pub(super) fn reject_v4(
        &mut self,
        port: PortId,
        eth: &EthernetFrame<&[u8]>,
        ip: &Ipv4Packet<&[u8]>,
        ip_repr: &Ipv4Repr,
        out: &mut Out,
    ) {
        let Some(our_mac) = self.port_mac(port) else { return };
        let l4 = ip.payload();
        let Some(refusal) = self.refusal(IpAddr::V4(ip_repr.dst_addr), ip_repr.next_header, l4) else { return };
        let caps = ChecksumCapabilities::default();
        let (src, dst) = (ip_repr.dst_addr, ip_repr.src_addr);
        let frame = match refusal {
            Refusal::Reset(rst) => {
                let ip_reply = Ipv4Repr {
                    src_addr: src,
                    dst_addr: dst,
                    next_header: IpProtocol::Tcp,
                    payload_len: rst.buffer_len(),
                    hop_limit: HOP_LIMIT,
                };
                emit::ipv4(our_mac, eth.src_addr(), &ip_reply, |payload| {
                    let mut tcp = TcpPacket::new_unchecked(payload);
                    rst.emit(&mut tcp, &IpAddress::Ipv4(src), &IpAddress::Ipv4(dst), &caps)
                })
            }
            Refusal::PortUnreachable => {
                // The original header and the first 8 bytes of its payload
                // (RFC 792), which name the connection.
                let unreachable = Icmpv4Repr::DstUnreachable {
                    reason: Icmpv4DstUnreachable::PortUnreachable,
                    header: *ip_repr,
                    data: &l4[..l4.len().min(8)],
                };
                let ip_reply = Ipv4Repr {
                    src_addr: src,
                    dst_addr: dst,
                    next_header: IpProtocol::Icmp,
                    payload_len: unreachable.buffer_len(),
                    hop_limit: HOP_LIMIT,
                };
                emit::ipv4(our_mac, eth.src_addr(), &ip_reply, |payload| {
                    unreachable.emit(&mut Icmpv4Packet::new_unchecked(payload), &caps)
                })
            }
        };
        self.counters.rejects += 1;
        out.push((port, frame));
    }

    pub(super) fn reject_v6(
        &mut self,
        port: PortId,
        eth: &EthernetFrame<&[u8]>,
        ip: &Ipv6Packet<&[u8]>,
        ip_repr: &Ipv6Repr,
        out: &mut Out,
    ) {
        // Nothing is sent back to a group or to nobody (RFC 4443 §2.4 (e)).
        if ip_repr.src_addr.is_multicast() || ip_repr.src_addr.is_unspecified() {
            self.counters.unhandled += 1;
            return;
        }
        let Some(our_mac) = self.port_mac(port) else { return };
        let l4 = ip.payload();
        let Some(refusal) = self.refusal(IpAddr::V6(ip_repr.dst_addr), ip_repr.next_header, l4) else { return };
        let (src, dst) = (ip_repr.dst_addr, ip_repr.src_addr);
        let frame = match refusal {
            Refusal::Reset(rst) => {
                let ip_reply = Ipv6Repr {
                    src_addr: src,
                    dst_addr: dst,
                    next_header: IpProtocol::Tcp,
                    payload_len: rst.buffer_len(),
                    hop_limit: HOP_LIMIT,
                };
                emit::ipv6(our_mac, eth.src_addr(), &ip_reply, |payload| {
                    let mut tcp = TcpPacket::new_unchecked(payload);
                    let caps = ChecksumCapabilities::default();
                    rst.emit(&mut tcp, &IpAddress::Ipv6(src), &IpAddress::Ipv6(dst), &caps)
                })
            }
            Refusal::PortUnreachable => {
                // The whole invoking packet, its own header included, as far
                // as it fits (its length was checked by the parser).
                let invoking = &ip.as_ref()[..ip_repr.buffer_len() + ip_repr.payload_len];
                port_unreachable_v6(our_mac, eth, src, dst, &invoking[..invoking.len().min(ICMPV6_MAX_QUOTE)])
            }
        };
        self.counters.rejects += 1;
        out.push((port, frame));
    }
}

/// An ICMPv6 destination unreachable, port unreachable, quoting `quoted`
/// byte for byte.
fn port_unreachable_v6(
    our_mac: MacAddr,
    eth: &EthernetFrame<&[u8]>,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    quoted: &[u8],
) -> Vec<u8> {
    // smoltcp's representation re-emits the quoted header (losing its
    // traffic class and flow label), so the message is written by hand.
    const HEADER: usize = 8;
    let ip_reply = Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Icmpv6,
        payload_len: HEADER + quoted.len(),
        hop_limit: HOP_LIMIT,
    };
    emit::ipv6(our_mac, eth.src_addr(), &ip_reply, |payload| {
        payload[HEADER..].copy_from_slice(quoted);
        let mut icmp = Icmpv6Packet::new_unchecked(payload);
        icmp.set_msg_type(Icmpv6Message::DstUnreachable);
        icmp.set_msg_code(u8::from(Icmpv6DstUnreachable::PortUnreachable));
        // The four unused bytes stay zero.
        icmp.fill_checksum(&src, &dst);
    })
}

/// The RST that answers `segment` (RFC 9293 §3.10.7.1): an ACK with its
/// acknowledged number; anything else with RST,ACK acknowledging what it
/// sent. None for a RST.
fn reset_for(segment: &TcpPacket<&[u8]>) -> Option<TcpRepr<'static>> {
    if segment.rst() {
        return None;
    }
    let (seq_number, ack_number) = if segment.ack() {
        (segment.ack_number(), None)
    } else {
        (TcpSeqNumber(0), Some(segment.seq_number() + segment.segment_len()))
    };
    Some(TcpRepr {
        src_port: segment.dst_port(),
        dst_port: segment.src_port(),
        control: TcpControl::Rst,
        seq_number,
        ack_number,
        window_len: 0,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use dataplane::wire::build::Transport;
    use std::net::Ipv4Addr;
    use std::time::Instant;

    const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 50);
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    const RST: u8 = 0x04;

    fn tcp(seq: u32, ack: u32, flags: u8) -> Transport {
        Transport::Tcp { src_port: 40000, dst_port: 80, flags, seq, ack }
    }

    /// Runs one frame through a fresh slow path; its answers.
    fn answers(frame: &[u8]) -> Vec<Vec<u8>> {
        let mut s = slow_path();
        let mut out = Vec::new();
        s.handle(0, frame, Instant::now(), &mut out);
        assert_eq!(s.counters.rejects, out.len() as u64);
        out.into_iter()
            .map(|(port, frame)| {
                assert_eq!(port, 0);
                frame
            })
            .collect()
    }

    /// The TCP header of a RST, checked: (seq, ack, flags).
    fn check_reset(tcp: &[u8]) -> (u32, u32, u8) {
        assert_eq!(tcp.len(), 20, "no options, no payload");
        assert_eq!((&tcp[0..2], &tcp[2..4]), (&80u16.to_be_bytes()[..], &40000u16.to_be_bytes()[..]), "ports swapped");
        assert_eq!(tcp[12] >> 4, 5, "data offset");
        assert_eq!(&tcp[14..16], &[0, 0], "window");
        assert_eq!(&tcp[18..20], &[0, 0], "urgent pointer");
        let word = |at: usize| u32::from_be_bytes([tcp[at], tcp[at + 1], tcp[at + 2], tcp[at + 3]]);
        (word(4), word(8), tcp[13])
    }

    #[test]
    fn resets_tcp_to_an_ipv4_vip_without_endpoints() {
        let syn = frame_v4(CLIENT_V4, VIP_V4, tcp(1000, 0, SYN), b"");
        let out = answers(&syn);
        assert_eq!(out.len(), 1);
        let frame = &out[0];
        assert_eq!((&frame[0..6], &frame[6..12], &frame[12..14]), (&CLIENT_MAC.0[..], &OUR_MAC.0[..], &[8, 0][..]));
        let ip = &frame[14..34];
        assert_eq!((ip[0], ip[8], ip[9]), (0x45, HOP_LIMIT, 6));
        assert_eq!(&ip[2..4], &40u16.to_be_bytes());
        assert_eq!(internet_checksum(&[ip]), 0, "IPv4 header checksum");
        assert_eq!((&ip[12..16], &ip[16..20]), (&VIP_V4.octets()[..], &CLIENT_V4.octets()[..]));
        let tcp = &frame[34..];
        assert_eq!(check_reset(tcp), (0, 1001, RST | ACK), "acknowledges the SYN");
        assert!(tcp_checksum_ok(IpAddr::V4(VIP_V4), IpAddr::V4(CLIENT_V4), tcp));
    }

    #[test]
    fn refuses_udp_to_an_ipv4_vip_without_endpoints_with_port_unreachable() {
        let udp = frame_v4(CLIENT_V4, VIP_V4, Transport::Udp { src_port: 40000, dst_port: 53 }, b"query");
        let out = answers(&udp);
        assert_eq!(out.len(), 1);
        let ip = &out[0][14..34];
        assert_eq!((ip[9], internet_checksum(&[ip])), (1, 0), "ICMP, header checksum");
        let icmp = &out[0][34..];
        assert_eq!((icmp[0], icmp[1]), (3, 3), "destination unreachable, port unreachable");
        assert_eq!(internet_checksum(&[icmp]), 0, "ICMP checksum");
        assert_eq!(&icmp[4..8], &[0; 4]);
        assert_eq!(&icmp[8 + 12..8 + 20], &udp[14 + 12..14 + 20], "quotes the addresses");
        assert_eq!(&icmp[28..36], &udp[34..42], "quotes the UDP header");
    }

    #[test]
    fn resets_tcp_to_an_ipv6_vip_without_endpoints() {
        // A SYN is answered RST,ACK; a segment with ACK gets a bare RST
        // with its acknowledged number.
        for (flags, payload, expected) in [
            (SYN, &b""[..], (0, 1001, RST | ACK)),
            (ACK, &b"data"[..], (777, 0, RST)),
            (0, &b"abc"[..], (0, 1003, RST | ACK)),
        ] {
            let segment = frame_v6(CLIENT_V6, VIP_V6, tcp(1000, 777, flags), payload);
            let out = answers(&segment);
            assert_eq!(out.len(), 1, "flags {flags:#x}");
            let frame = &out[0];
            assert_eq!(
                (&frame[0..6], &frame[6..12], &frame[12..14]),
                (&CLIENT_MAC.0[..], &OUR_MAC.0[..], &[0x86, 0xdd][..])
            );
            let ip = &frame[14..54];
            assert_eq!(&ip[0..4], &[0x60, 0, 0, 0]);
            assert_eq!(&ip[4..6], &20u16.to_be_bytes(), "payload length");
            assert_eq!((ip[6], ip[7]), (6, HOP_LIMIT), "TCP");
            assert_eq!((ipv6_at(ip, 8), ipv6_at(ip, 24)), (VIP_V6, CLIENT_V6));
            let tcp = &frame[54..];
            assert_eq!(check_reset(tcp), expected, "flags {flags:#x}");
            assert!(tcp_checksum_ok(IpAddr::V6(VIP_V6), IpAddr::V6(CLIENT_V6), tcp), "TCP checksum");
        }
    }

    #[test]
    fn refuses_udp_to_an_ipv6_vip_without_endpoints_with_port_unreachable() {
        let mut udp = frame_v6(CLIENT_V6, VIP_V6, Transport::Udp { src_port: 40000, dst_port: 53 }, b"query");
        udp[14 + 1] = 0x0a; // a flow label, which the quote must keep
        let out = answers(&udp);
        assert_eq!(out.len(), 1);
        let frame = &out[0];
        assert_eq!((&frame[0..6], &frame[12..14]), (&CLIENT_MAC.0[..], &[0x86, 0xdd][..]));
        let ip = &frame[14..54];
        let invoking = &udp[14..];
        assert_eq!(&ip[4..6], &(8 + invoking.len() as u16).to_be_bytes(), "payload length");
        assert_eq!((ip[6], ip[7]), (58, HOP_LIMIT), "ICMPv6");
        assert_eq!((ipv6_at(ip, 8), ipv6_at(ip, 24)), (VIP_V6, CLIENT_V6));
        let icmp = &frame[54..];
        assert_eq!((icmp[0], icmp[1]), (1, 4), "destination unreachable, port unreachable");
        assert!(icmpv6_checksum_ok(frame), "ICMPv6 checksum");
        assert_eq!(&icmp[4..8], &[0; 4], "unused");
        assert_eq!(&icmp[8..], invoking, "the whole invoking packet, byte for byte");
    }

    #[test]
    fn quotes_at_most_what_fits_the_minimum_mtu() {
        let big = vec![0x5a; 1400];
        let udp = frame_v6(CLIENT_V6, VIP_V6, Transport::Udp { src_port: 40000, dst_port: 53 }, &big);
        let out = answers(&udp);
        assert_eq!(out[0].len() - 14, 1280, "the error fills the minimum MTU");
        assert!(icmpv6_checksum_ok(&out[0]));
        assert_eq!(&out[0][54 + 8..], &udp[14..14 + ICMPV6_MAX_QUOTE]);
    }

    #[test]
    fn leaves_alone_what_is_not_for_a_service_without_endpoints() {
        let mut s = slow_path();
        let mut out = Vec::new();
        let now = Instant::now();
        let served =
            frame_v6(CLIENT_V6, VIP_V6, Transport::Tcp { src_port: 1, dst_port: 443, flags: SYN, seq: 0, ack: 0 }, b"");
        let reset = frame_v6(CLIENT_V6, VIP_V6, tcp(5, 0, RST), b"");
        let from_group = frame_v6("ff02::1".parse().expect("an IPv6 address"), VIP_V6, tcp(5, 0, SYN), b"");
        let short_udp = {
            let mut f = frame_v6(CLIENT_V6, VIP_V6, Transport::Udp { src_port: 40000, dst_port: 53 }, b"");
            f[14 + 5] = 2; // payload length 2: less than the ports
            f
        };
        for frame in [served, reset, from_group, short_udp] {
            s.handle(0, &frame, now, &mut out);
        }
        assert!(out.is_empty());
        assert_eq!(s.counters.rejects, 0);
    }
}
