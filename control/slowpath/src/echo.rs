//! Echo: the appliance answers pings (ICMP and ICMPv6) to its own
//! addresses and to the VIPs, so that a VIP can be checked from a client as
//! any address can.

use dataplane::tables::PortId;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{EthernetFrame, Icmpv4Packet, Icmpv4Repr, Icmpv6Repr, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Repr};

use super::{emit, Out, SlowPath};

/// The hop limit of what the appliance originates.
pub(super) const HOP_LIMIT: u8 = 64;

impl SlowPath {
    pub(super) fn echo_v4(
        &mut self,
        port: PortId,
        eth: &EthernetFrame<&[u8]>,
        ip: &Ipv4Packet<&[u8]>,
        ip_repr: &Ipv4Repr,
        out: &mut Out,
    ) {
        if !self.owns_v4(port, ip_repr.dst_addr) {
            self.counters.unhandled += 1;
            return;
        }
        let caps = ChecksumCapabilities::default();
        let request = Icmpv4Packet::new_checked(ip.payload()).and_then(|p| Icmpv4Repr::parse(&p, &caps));
        let Ok(Icmpv4Repr::EchoRequest { ident, seq_no, data }) = request else {
            self.counters.unhandled += 1;
            return;
        };
        let Some(our_mac) = self.port_mac(port) else { return };
        let reply = Icmpv4Repr::EchoReply { ident, seq_no, data };
        let ip_reply = Ipv4Repr {
            src_addr: ip_repr.dst_addr,
            dst_addr: ip_repr.src_addr,
            next_header: IpProtocol::Icmp,
            payload_len: reply.buffer_len(),
            hop_limit: HOP_LIMIT,
        };
        self.counters.echo_replies += 1;
        out.push((
            port,
            emit::ipv4(our_mac, eth.src_addr(), &ip_reply, |payload| {
                reply.emit(&mut Icmpv4Packet::new_unchecked(payload), &caps)
            }),
        ));
    }

    /// An ICMPv6 echo request (already parsed, checksum verified).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn echo_v6(
        &mut self,
        port: PortId,
        eth: &EthernetFrame<&[u8]>,
        ip: &Ipv6Repr,
        ident: u16,
        seq_no: u16,
        data: &[u8],
        out: &mut Out,
    ) {
        // Pings to a group (all nodes) are not answered, and a reply needs
        // somewhere to go.
        let answerable = !ip.src_addr.is_unspecified() && !ip.src_addr.is_multicast();
        if !answerable || !self.owns_v6(port, ip.dst_addr) {
            self.counters.unhandled += 1;
            return;
        }
        let Some(our_mac) = self.port_mac(port) else { return };
        let reply = Icmpv6Repr::EchoReply { ident, seq_no, data };
        self.counters.echo_replies += 1;
        out.push((port, emit::icmpv6(our_mac, eth.src_addr(), ip.dst_addr, ip.src_addr, HOP_LIMIT, &reply)));
    }
}

#[cfg(test)]
mod tests {
    use super::super::ndp;
    use super::super::testing::*;
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::time::Instant;

    #[test]
    fn answers_ping_for_its_address_and_vips() {
        let mut s = slow_path();
        let mut out = Vec::new();
        let client = Ipv4Addr::new(192, 0, 2, 50);
        for dst in [PORT_V4, VIP_V4, Ipv4Addr::new(192, 0, 2, 9)] {
            s.handle(0, &echo_request_v4(client, dst, 7, 3, b"ping!"), Instant::now(), &mut out);
        }
        assert_eq!(out.len(), 2, "no answer for an address that is not ours");
        for ((_, frame), dst) in out.iter().zip([PORT_V4, VIP_V4]) {
            assert_eq!(frame.len(), 14 + 20 + 8 + 5);
            assert_eq!(&frame[0..6], &CLIENT_MAC.0);
            assert_eq!(&frame[6..12], &OUR_MAC.0);
            assert_eq!(&frame[12..14], &[0x08, 0x00]);
            let ip = &frame[14..34];
            assert_eq!((ip[0], ip[8], ip[9]), (0x45, HOP_LIMIT, 1), "IPv4, 20 bytes, TTL, ICMP");
            assert_eq!(&ip[2..4], &33u16.to_be_bytes(), "total length");
            assert_eq!(internet_checksum(&[ip]), 0, "IPv4 header checksum");
            assert_eq!((&ip[12..16], &ip[16..20]), (&dst.octets()[..], &client.octets()[..]));
            let icmp = &frame[34..];
            assert_eq!((icmp[0], icmp[1]), (0, 0), "echo reply");
            assert_eq!(internet_checksum(&[icmp]), 0, "ICMP checksum");
            assert_eq!((&icmp[4..6], &icmp[6..8], &icmp[8..]), (&[0, 7][..], &[0, 3][..], &b"ping!"[..]));
        }
        assert_eq!(s.counters.echo_replies, 2);
    }

    #[test]
    fn answers_icmpv6_ping_for_its_addresses_and_vips() {
        let mut s = slow_path();
        let mut out = Vec::new();
        let ours = [PORT_V6, ndp::link_local(OUR_MAC), VIP_V6];
        for dst in ours.into_iter().chain([Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 9)]) {
            s.handle(0, &echo_request_v6(CLIENT_V6, dst, 0x1234, 9, b"ping6!"), Instant::now(), &mut out);
        }
        assert_eq!(out.len(), 3, "no answer for an address that is not ours");
        for ((port, frame), dst) in out.iter().zip(ours) {
            assert_eq!(*port, 0);
            assert_eq!(frame.len(), 14 + 40 + 8 + 6);
            assert_eq!(&frame[0..6], &CLIENT_MAC.0);
            assert_eq!(&frame[6..12], &OUR_MAC.0);
            assert_eq!(&frame[12..14], &[0x86, 0xdd]);
            let ip = &frame[14..54];
            assert_eq!(&ip[0..4], &[0x60, 0, 0, 0]);
            assert_eq!(&ip[4..6], &14u16.to_be_bytes(), "payload length");
            assert_eq!((ip[6], ip[7]), (58, HOP_LIMIT), "ICMPv6");
            assert_eq!((ipv6_at(ip, 8), ipv6_at(ip, 24)), (dst, CLIENT_V6), "from the address pinged");
            let icmp = &frame[54..];
            assert_eq!((icmp[0], icmp[1]), (129, 0), "echo reply");
            assert!(icmpv6_checksum_ok(frame));
            assert_eq!((&icmp[4..6], &icmp[6..8], &icmp[8..]), (&[0x12, 0x34][..], &[0, 9][..], &b"ping6!"[..]));
        }
        assert_eq!(s.counters.echo_replies, 3);
    }

    #[test]
    fn does_not_answer_pings_from_a_group_or_with_a_bad_checksum() {
        let mut s = slow_path();
        let mut out = Vec::new();
        let from_group = echo_request_v6("ff02::1".parse().expect("an IPv6 address"), PORT_V6, 1, 1, b"");
        let mut bad = echo_request_v6(CLIENT_V6, PORT_V6, 1, 1, b"x");
        bad[14 + 40 + 8] ^= 1;
        let to_group = echo_request_v6(CLIENT_V6, "ff02::1".parse().expect("an IPv6 address"), 1, 1, b"");
        for frame in [from_group, bad, to_group] {
            s.handle(0, &frame, Instant::now(), &mut out);
        }
        assert!(out.is_empty());
        assert_eq!((s.counters.unhandled, s.counters.malformed), (2, 1));
    }
}
