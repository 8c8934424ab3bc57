//! Parsing a frame once, at the edge: where its headers are and its flow
//! key ([`Headers`]). Two parsers that must agree: the general one (VLAN
//! tags, IPv6, IP options, SCTP, checked views) and a fixed-offset one for
//! the common frame (untagged Ethernet, IPv4 without options, TCP or UDP)
//! that the established-flow path reads ([`PlainIpv4`]). A test holds them
//! to the same answers on mangled frames.

use crate::flow::key::Ipv4FlowKey;
use crate::flow::FlowKey;
use crate::stats::DropReason;
use crate::tables::Addr;
use crate::wire::{
    parse_l2, EtherType, IpProtocol, Ipv4Packet, Ipv6Packet, SctpPacket, TcpFlags, TcpPacket, UdpPacket,
};

/// Where the headers of a parsed packet are, and its flow key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Headers {
    pub(super) l3: usize,
    pub(super) v4: bool,
    /// IPv4 TTL or IPv6 hop limit.
    pub(super) ttl: u8,
    pub(super) key: FlowKey,
    pub(super) tcp_flags: u8,
    /// The common frame the compiled rewrite is for: untagged Ethernet,
    /// IPv4 without options, a whole TCP or UDP header (see
    /// [`parse_plain_ipv4`]), in the form the established-flow path reads.
    pub(super) plain: Option<PlainIpv4>,
}

/// What the established-flow path reads of a common frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct PlainIpv4 {
    pub(super) key: Ipv4FlowKey,
    pub(super) ttl: u8,
    pub(super) tcp_flags: u8,
}

impl PlainIpv4 {
    /// Whether the packet changes its flow's state (SYN, FIN or RST): the
    /// established-flow path leaves these to the general one.
    #[inline(always)]
    pub(super) fn changes_state(&self) -> bool {
        self.tcp_flags & (TCP_SYN | TCP_FIN | TCP_RST) != 0
    }

    /// The general form, for the rest of the pipeline.
    pub(super) fn headers(self) -> Headers {
        Headers {
            l3: 14,
            v4: true,
            ttl: self.ttl,
            key: self.key.to_flow_key(),
            tcp_flags: self.tcp_flags,
            plain: Some(self),
        }
    }
}

pub(super) const TCP_FIN: u8 = TcpFlags::FIN;
pub(super) const TCP_SYN: u8 = TcpFlags::SYN;
pub(super) const TCP_RST: u8 = TcpFlags::RST;
pub(super) const TCP_ACK: u8 = TcpFlags::ACK;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Parsed {
    SlowPath,
    Drop(DropReason),
}

impl From<crate::wire::Error> for Parsed {
    fn from(e: crate::wire::Error) -> Parsed {
        Parsed::Drop(e.into())
    }
}

/// Finds the headers and the flow key; anything that is not TCP or UDP over
/// IP goes to the slow path or is dropped with its reason.
#[inline]
pub(super) fn parse(frame: &[u8]) -> Result<Headers, Parsed> {
    match parse_plain_ipv4(frame) {
        Some(plain) => Ok(plain.headers()),
        None => parse_general(frame),
    }
}

/// Every case [`parse`] handles, one header at a time.
#[inline]
pub(super) fn parse_general(frame: &[u8]) -> Result<Headers, Parsed> {
    let l2 = parse_l2(frame)?;
    let l3 = l2.l3_offset;
    let ip = frame.get(l3..).ok_or(Parsed::Drop(DropReason::Truncated))?;
    let (v4, src, dst, protocol, ttl, l4) = match l2.ethertype {
        EtherType::IPV4 => {
            let ip = Ipv4Packet::new_checked(ip)?;
            if ip.is_fragment() {
                return Err(Parsed::Drop(DropReason::Fragment));
            }
            let l4 = (l3 + ip.header_len(), l3 + usize::from(ip.total_len()));
            (true, Addr::from(ip.src_addr()), Addr::from(ip.dst_addr()), ip.protocol(), ip.ttl(), l4)
        }
        EtherType::IPV6 => {
            let ip = Ipv6Packet::new_checked(ip)?;
            let next = ip.next_header();
            if next == IpProtocol::ICMPV6 {
                // Neighbour discovery and pings: the slow path's business.
                return Err(Parsed::SlowPath);
            }
            if crate::wire::is_extension_header(next) {
                return Err(Parsed::Drop(DropReason::Ipv6Extension));
            }
            let l4 = (l3 + 40, l3 + 40 + usize::from(ip.payload_len()));
            (false, Addr::from(ip.src_addr()), Addr::from(ip.dst_addr()), next, ip.hop_limit(), l4)
        }
        EtherType::ARP => return Err(Parsed::SlowPath),
        _ => return Err(Parsed::Drop(DropReason::Unsupported)),
    };
    let transport = frame.get(l4.0..l4.1).ok_or(Parsed::Drop(DropReason::BadLength))?;
    let (src_port, dst_port, tcp_flags) = match protocol {
        IpProtocol::TCP => {
            let tcp = TcpPacket::new_checked(transport)?;
            (tcp.src_port(), tcp.dst_port(), tcp.flags())
        }
        IpProtocol::UDP => {
            let udp = UdpPacket::new_checked(transport)?;
            (udp.src_port(), udp.dst_port(), 0)
        }
        IpProtocol::SCTP => {
            let sctp = SctpPacket::new_checked(transport)?;
            (sctp.src_port(), sctp.dst_port(), 0)
        }
        IpProtocol::ICMP => return Err(Parsed::SlowPath),
        _ => return Err(Parsed::Drop(DropReason::Unsupported)),
    };
    let key = FlowKey { src, dst, src_port, dst_port, proto: protocol };
    Ok(Headers { l3, v4, ttl, key, tcp_flags, plain: None })
}

/// The common case at fixed offsets: an untagged Ethernet frame with an
/// IPv4 header without options, not a fragment, carrying TCP or UDP. It
/// accepts only what the general path of [`parse`] accepts, with the same
/// result; anything else (VLAN tags, options, IPv6, errors of any kind)
/// gets `None` and goes the general way, which also says why it drops.
#[inline(always)]
pub(super) fn parse_plain_ipv4(frame: &[u8]) -> Option<PlainIpv4> {
    // Ethernet (14) + IPv4 (20) + the first 8 bytes of TCP or UDP.
    let h: &[u8; 42] = frame.first_chunk()?;
    if h[12..14] != [0x08, 0x00] || h[14] != 0x45 {
        return None;
    }
    let total_len = usize::from(u16::from_be_bytes([h[16], h[17]]));
    let fragment = u16::from_be_bytes([h[20], h[21]]) & 0x3fff != 0;
    if fragment || total_len < 20 || 14 + total_len > frame.len() {
        return None;
    }
    let transport_len = total_len - 20;
    match h[23] {
        IpProtocol::TCP => {
            let data_offset = *frame.get(46)?;
            let header_len = usize::from(data_offset >> 4) * 4;
            if transport_len < 20 || header_len < 20 || header_len > transport_len {
                return None;
            }
        }
        IpProtocol::UDP => {
            let length = usize::from(u16::from_be_bytes([h[38], h[39]]));
            if length < 8 || length > transport_len {
                return None;
            }
        }
        _ => return None,
    }
    read_plain_ipv4(frame)
}

/// What the established path reads of a frame [`parse_plain_ipv4`] has
/// accepted, read without checking again. On other bytes it reads garbage,
/// or gives `None` if the frame is too short; it never panics.
#[inline(always)]
pub(super) fn read_plain_ipv4(frame: &[u8]) -> Option<PlainIpv4> {
    let h: &[u8; 42] = frame.first_chunk()?;
    let protocol = h[23];
    let tcp_flags = if protocol == IpProtocol::TCP { *frame.get(47)? } else { 0 };
    let addresses = h[26..34].try_into().ok()?;
    let ports = h[34..38].try_into().ok()?;
    Some(PlainIpv4 { key: Ipv4FlowKey::from_wire(addresses, ports, protocol), ttl: h[22], tcp_flags })
}

/// The source MAC of a frame (the client's or its router's).
#[inline]
pub(super) fn client_mac(frame: &[u8]) -> crate::wire::MacAddr {
    let mut mac = [0u8; 6];
    if let Some(src) = frame.get(6..12) {
        mac.copy_from_slice(src);
    }
    crate::wire::MacAddr(mac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::build::{FrameSpec, Transport};
    use std::net::IpAddr;
    use std::net::Ipv4Addr;

    fn frames() -> Vec<Vec<u8>> {
        let tcp = Transport::Tcp { src_port: 40_000, dst_port: 80, flags: TcpFlags::ACK, seq: 1, ack: 1 };
        let udp = Transport::Udp { src_port: 5353, dst_port: 53 };
        [tcp, udp]
            .into_iter()
            .filter_map(|transport| {
                FrameSpec {
                    src_mac: crate::wire::MacAddr([2, 0, 0, 0, 0, 1]),
                    dst_mac: crate::wire::MacAddr([2, 0, 0, 0, 0, 2]),
                    src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 50)),
                    dst: IpAddr::V4(Ipv4Addr::new(10, 96, 0, 10)),
                    ttl: 64,
                    transport,
                    payload: b"0123456789",
                }
                .build()
            })
            .collect()
    }

    #[test]
    fn the_fast_path_agrees_with_the_general_one_on_mangled_frames() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x = crate::hash::mix64(x);
            x
        };
        let (mut fast, mut total) = (0, 0);
        for template in frames() {
            assert!(parse_plain_ipv4(&template).is_some(), "a plain frame takes the fast path");
            for _ in 0..20_000 {
                let mut f = template.clone();
                // Mangle a few header bytes, sometimes cut the frame short.
                for _ in 0..1 + next() % 3 {
                    let at = (next() % 48) as usize;
                    f[at] = next() as u8;
                }
                if next() % 4 == 0 {
                    f.truncate((next() % f.len() as u64) as usize);
                }
                total += 1;
                if let Some(plain) = parse_plain_ipv4(&f) {
                    fast += 1;
                    let h = plain.headers();
                    assert_eq!(Ok(Headers { plain: None, ..h }), parse_general(&f), "frame {f:02x?}");
                }
            }
        }
        // Most single-byte changes hit addresses, ports and payload-ish
        // fields the fast path accepts; the rest fall back.
        assert!(fast > total / 4 && fast < total, "{fast} of {total} on the fast path");
    }
}
