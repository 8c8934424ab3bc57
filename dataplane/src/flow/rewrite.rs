//! An IPv4 flow's NAT rewrite, compiled when the flow is created: the bytes
//! to write and the checksum deltas, for the common frame (untagged
//! Ethernet, IPv4 without options, TCP or UDP) at fixed offsets.
//!
//! Every packet of a flow has the same old addresses and ports (they are
//! its key) and gets the same new ones, and a router's TTL decrement
//! changes the IPv4 checksum by the same amount every time, so both
//! checksum updates are one constant each per flow. Computed once here,
//! the established-flow path writes 29 bytes (MACs, TTL, addresses,
//! ports and the two checksums) and adds two constants
//! instead of summing the changes again for every packet. Anything else
//! (IPv6, VLAN tags, IP options, SCTP) takes the general rewrite.
//!
//! It is 28 bytes, so that with the IPv4 key it fits the flow entry's one
//! cache line: the protocol, the key's, is not repeated here. Both MACs
//! are, so that the established-flow path reads nothing but the entry.

use super::action::NatAction;
use super::key::FlowKey;
use crate::tables::proto;
use crate::wire::checksum::{apply_folded, update_udp, Delta};

/// Offsets in the common frame: Ethernet (14), IPv4 (20), then TCP/UDP.
const TTL: usize = 22;
const IP_CHECKSUM: usize = 24;
const ADDRESSES: usize = 26;
const PORTS: usize = 34;
const TCP_CHECKSUM: usize = 34 + 16;
const UDP_CHECKSUM: usize = 34 + 6;

/// See the module documentation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Ipv4Rewrite {
    /// Destination then source MAC, as on the wire.
    macs: [u8; 12],
    /// New source then destination address, as on the wire.
    addresses: [u8; 8],
    /// New source then destination port, as on the wire.
    ports: [u8; 4],
    /// The IPv4 header checksum's change (addresses and TTL) and the
    /// TCP/UDP checksum's (pseudo-header addresses and ports): folded
    /// one's-complement sums, in the byte order of a field read from memory
    /// as a native u16.
    ip_delta: u16,
    l4_delta: u16,
}

impl Ipv4Rewrite {
    /// The rewrite from `key` to `action`, if both are IPv4 and the
    /// protocol is TCP or UDP.
    pub fn compile(key: &FlowKey, action: &NatAction) -> Option<Ipv4Rewrite> {
        let all_v4 = [key.src, key.dst, action.src, action.dst].iter().all(|a| a.is_v4());
        if !all_v4 || (key.proto != proto::TCP && key.proto != proto::UDP) {
            return None;
        }
        let (old_src, old_dst, new_src, new_dst) = (key.src.v4(), key.dst.v4(), action.src.v4(), action.dst.v4());
        let ports = |src: u16, dst: u16| u32::from(src) << 16 | u32::from(dst);
        let addresses = Delta::default().u32(old_src, new_src).u32(old_dst, new_dst);
        // TTL and protocol share a 16-bit word: TTL − 1 lowers it by 0x100
        // (the caller has checked TTL > 1, so there is no borrow).
        let ip = addresses.u16(0x0100, 0x0000);
        let l4 = addresses.u32(ports(key.src_port, key.dst_port), ports(action.src_port, action.dst_port));
        let in_memory_order = |sum: u16| u16::from_ne_bytes(sum.to_be_bytes());

        let mut macs = [0u8; 12];
        macs[..6].copy_from_slice(&action.dst_mac.0);
        macs[6..].copy_from_slice(&action.src_mac.0);
        let mut addresses = [0u8; 8];
        addresses[..4].copy_from_slice(&new_src.to_be_bytes());
        addresses[4..].copy_from_slice(&new_dst.to_be_bytes());
        Some(Ipv4Rewrite {
            macs,
            addresses,
            ports: ports(action.src_port, action.dst_port).to_be_bytes(),
            ip_delta: in_memory_order(ip.folded()),
            l4_delta: in_memory_order(l4.folded()),
        })
    }

    /// Rewrites a common frame (see the module documentation) of this
    /// flow, whose protocol is `protocol`: the parser has checked its
    /// layout, its TTL is above 1, and it holds a whole TCP or UDP header.
    /// Returns false, changing nothing, if the frame is too short for that
    /// or the protocol is neither.
    #[inline(always)]
    pub fn apply(&self, frame: &mut [u8], protocol: u8) -> bool {
        match protocol {
            proto::TCP => {
                let Some(h) = frame.first_chunk_mut::<{ TCP_CHECKSUM + 2 }>() else { return false };
                self.apply_ip(h);
                update(h, TCP_CHECKSUM, self.l4_delta);
                true
            }
            proto::UDP => {
                let Some(h) = frame.first_chunk_mut::<{ UDP_CHECKSUM + 2 }>() else { return false };
                self.apply_ip(h);
                // UDP's zero rule; 0 and 0xFFFF read the same in memory
                // order as in network order.
                let field = u16::from_ne_bytes([h[UDP_CHECKSUM], h[UDP_CHECKSUM + 1]]);
                let check = update_udp(field, |c| apply_folded(c, self.l4_delta));
                h[UDP_CHECKSUM..UDP_CHECKSUM + 2].copy_from_slice(&check.to_ne_bytes());
                true
            }
            _ => false,
        }
    }

    /// MACs, TTL, addresses and ports, and the IPv4 header checksum.
    #[inline(always)]
    fn apply_ip<const N: usize>(&self, h: &mut [u8; N]) {
        h[..12].copy_from_slice(&self.macs);
        h[TTL] = h[TTL].wrapping_sub(1);
        update(h, IP_CHECKSUM, self.ip_delta);
        h[ADDRESSES..ADDRESSES + 8].copy_from_slice(&self.addresses);
        h[PORTS..PORTS + 4].copy_from_slice(&self.ports);
    }
}

/// Adds a folded delta to the checksum field at `at`, read and written in
/// memory order.
#[inline(always)]
fn update<const N: usize>(h: &mut [u8; N], at: usize, delta: u16) {
    let field = [h[at], h[at + 1]];
    let check = apply_folded(u16::from_ne_bytes(field), delta);
    h[at..at + 2].copy_from_slice(&check.to_ne_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::Addr;
    use crate::wire::build::{FrameSpec, Transport};
    use crate::wire::{Ipv4Packet, MacAddr, TcpFlags, TcpPacket, UdpPacket};
    use proptest::prelude::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn frame(transport: Transport, src: Ipv4Addr, dst: Ipv4Addr, ttl: u8) -> Vec<u8> {
        FrameSpec {
            src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            dst_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            src: IpAddr::V4(src),
            dst: IpAddr::V4(dst),
            ttl,
            transport,
            payload: b"payload!",
        }
        .build()
        .expect("a valid frame")
    }

    fn action(src: Ipv4Addr, dst: Ipv4Addr, src_port: u16, dst_port: u16) -> NatAction {
        NatAction {
            src: src.into(),
            dst: dst.into(),
            src_port,
            dst_port,
            tx_port: 1,
            src_mac: MacAddr([2, 0, 0, 0, 1, 1]),
            dst_mac: MacAddr([2, 0, 0, 0, 1, 0xfe]),
        }
    }

    /// Every field the rewrite writes, and both checksums against a
    /// computation from scratch.
    fn check_rewritten(f: &[u8], a: &NatAction, ttl: u8) {
        assert_eq!(&f[0..6], &a.dst_mac.0);
        assert_eq!(&f[6..12], &a.src_mac.0);
        let ip = Ipv4Packet::new_checked(&f[14..]).expect("ipv4");
        assert_eq!(ip.ttl(), ttl - 1);
        assert!(ip.verify_checksum(), "IPv4 header checksum");
        assert_eq!(Addr::from(ip.src_addr()), a.src);
        assert_eq!(Addr::from(ip.dst_addr()), a.dst);
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        match ip.protocol() {
            proto::TCP => {
                let tcp = TcpPacket::new_checked(ip.payload()).expect("tcp");
                assert_eq!((tcp.src_port(), tcp.dst_port()), (a.src_port, a.dst_port));
                assert!(tcp.verify_checksum_v4(src, dst), "TCP checksum");
            }
            _ => {
                let udp = UdpPacket::new_checked(ip.payload()).expect("udp");
                assert_eq!((udp.src_port(), udp.dst_port()), (a.src_port, a.dst_port));
                assert!(udp.checksum() == 0 || udp.verify_checksum_v4(src, dst), "UDP checksum");
            }
        }
    }

    proptest! {
        #[test]
        fn the_compiled_rewrite_leaves_valid_checksums(
            old in any::<[u32; 2]>(), new in any::<[u32; 2]>(),
            old_ports in any::<[u16; 2]>(), new_ports in any::<[u16; 2]>(),
            ttl in 2u8.., udp in any::<bool>(),
        ) {
            let (src, dst) = (Ipv4Addr::from(old[0]), Ipv4Addr::from(old[1]));
            let transport = if udp {
                Transport::Udp { src_port: old_ports[0], dst_port: old_ports[1] }
            } else {
                Transport::Tcp { src_port: old_ports[0], dst_port: old_ports[1], flags: TcpFlags::ACK, seq: 7, ack: 9 }
            };
            let mut f = frame(transport, src, dst, ttl);
            let key = FlowKey {
                src: src.into(), dst: dst.into(), src_port: old_ports[0], dst_port: old_ports[1],
                proto: if udp { proto::UDP } else { proto::TCP },
            };
            let a = action(Ipv4Addr::from(new[0]), Ipv4Addr::from(new[1]), new_ports[0], new_ports[1]);
            let rewrite = Ipv4Rewrite::compile(&key, &a).expect("compiled");
            prop_assert!(rewrite.apply(&mut f, key.proto));
            check_rewritten(&f, &a, ttl);
        }
    }

    #[test]
    fn udp_without_a_checksum_keeps_none() {
        let (src, dst) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(10, 96, 0, 1));
        let mut f = frame(Transport::Udp { src_port: 5000, dst_port: 53 }, src, dst, 64);
        f[UDP_CHECKSUM..UDP_CHECKSUM + 2].copy_from_slice(&[0, 0]);
        let key = FlowKey { src: src.into(), dst: dst.into(), src_port: 5000, dst_port: 53, proto: proto::UDP };
        let a = action(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 244, 0, 5), 40000, 5353);
        assert!(Ipv4Rewrite::compile(&key, &a).expect("compiled").apply(&mut f, proto::UDP));
        assert_eq!(&f[UDP_CHECKSUM..UDP_CHECKSUM + 2], &[0, 0]);
        check_rewritten(&f, &a, 64);
    }

    #[test]
    fn nothing_is_compiled_for_ipv6_or_sctp_and_short_frames_are_refused() {
        let v6 = FlowKey {
            src: "2001:db8::1".parse::<std::net::Ipv6Addr>().expect("v6").into(),
            dst: "2001:db8::2".parse::<std::net::Ipv6Addr>().expect("v6").into(),
            src_port: 1,
            dst_port: 2,
            proto: proto::TCP,
        };
        let a = action(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2), 3, 4);
        assert_eq!(Ipv4Rewrite::compile(&v6, &a), None);
        let sctp = FlowKey { src: a.src, dst: a.dst, src_port: 1, dst_port: 2, proto: proto::SCTP };
        assert_eq!(Ipv4Rewrite::compile(&sctp, &a), None);

        let tcp = FlowKey { src: a.src, dst: a.dst, src_port: 1, dst_port: 2, proto: proto::TCP };
        let rewrite = Ipv4Rewrite::compile(&tcp, &a).expect("compiled");
        let mut short = vec![0u8; TCP_CHECKSUM + 1];
        assert!(!rewrite.apply(&mut short, proto::TCP));
        assert!(short.iter().all(|&b| b == 0), "a refused frame is unchanged");
        let mut whole = vec![0u8; 80];
        assert!(!rewrite.apply(&mut whole, proto::SCTP), "neither TCP nor UDP");
    }
}
