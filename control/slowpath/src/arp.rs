//! ARP: answers requests for the appliance's IPv4 addresses and IPv4 VIPs,
//! learns the sender of every request and reply, and builds the requests
//! that resolve backends.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use dataplane::tables::PortId;
use dataplane::wire::MacAddr;
use smoltcp::wire::{ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol};

use super::{emit, Out, SlowPath};

impl SlowPath {
    pub(super) fn arp(&mut self, port: PortId, eth: &EthernetFrame<&[u8]>, now: Instant, out: &mut Out) {
        let repr = ArpPacket::new_checked(eth.payload()).and_then(|p| ArpRepr::parse(&p));
        let Ok(ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr,
            source_protocol_addr,
            target_protocol_addr,
            ..
        }) = repr
        else {
            self.counters.malformed += 1;
            return;
        };
        self.learn(IpAddr::V4(source_protocol_addr), port, MacAddr(source_hardware_addr.0), now);
        if operation != ArpOperation::Request || !self.owns_v4(port, target_protocol_addr) {
            return;
        }
        let Some(our_mac) = self.port_mac(port) else { return };
        let reply = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr: EthernetAddress(our_mac.0),
            source_protocol_addr: target_protocol_addr,
            target_hardware_addr: source_hardware_addr,
            target_protocol_addr: source_protocol_addr,
        };
        self.counters.arp_replies += 1;
        out.push((port, frame(our_mac, source_hardware_addr, &reply)));
    }
}

/// A broadcast request for `target` from `(our_mac, our_ip)`.
pub(super) fn request(our_mac: MacAddr, our_ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let request = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(our_mac.0),
        source_protocol_addr: our_ip,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: target,
    };
    frame(our_mac, EthernetAddress::BROADCAST, &request)
}

fn frame(src: MacAddr, dst: EthernetAddress, arp: &ArpRepr) -> Vec<u8> {
    emit::ethernet(src, dst, EthernetProtocol::Arp, arp.buffer_len(), |payload| {
        arp.emit(&mut ArpPacket::new_unchecked(payload))
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use dataplane::tables::Addr;

    #[test]
    fn answers_arp_for_its_address_and_vips_and_learns_the_asker() {
        let mut s = slow_path();
        let mut out = Vec::new();
        let asker = Ipv4Addr::new(192, 0, 2, 50);
        for target in [PORT_V4, VIP_V4, Ipv4Addr::new(192, 0, 2, 9)] {
            s.handle(0, &arp_request(CLIENT_MAC, asker, target), Instant::now(), &mut out);
        }
        assert_eq!(out.len(), 2, "no answer for an address that is not ours");
        for ((port, frame), target) in out.iter().zip([PORT_V4, VIP_V4]) {
            assert_eq!(*port, 0);
            // Field by field, from the bytes.
            assert_eq!(frame.len(), 14 + 28);
            assert_eq!(&frame[0..6], &CLIENT_MAC.0, "to the asker");
            assert_eq!(&frame[6..12], &OUR_MAC.0);
            assert_eq!(&frame[12..14], &[0x08, 0x06], "ARP");
            assert_eq!(&frame[14..22], &[0, 1, 0x08, 0, 6, 4, 0, 2], "Ethernet/IPv4 reply");
            assert_eq!(&frame[22..28], &OUR_MAC.0, "sender hardware address");
            assert_eq!(&frame[28..32], &target.octets(), "sender protocol address");
            assert_eq!(&frame[32..38], &CLIENT_MAC.0, "target hardware address");
            assert_eq!(&frame[38..42], &asker.octets(), "target protocol address");
        }
        assert_eq!(s.counters.arp_replies, 2);
        let learned = s.take_changes().expect("a neighbour was learned");
        assert_eq!(learned[&Addr::from(asker)].mac, CLIENT_MAC);
        assert!(s.take_changes().is_none());
        s.expire(Instant::now() + super::super::NEIGHBOUR_TTL);
        assert!(s.take_changes().is_some_and(|n| n.is_empty()));
    }

    #[test]
    fn never_learns_its_own_address_from_someone_else() {
        let mut s = slow_path();
        let mut out = Vec::new();
        s.handle(0, &arp_reply(CLIENT_MAC, VIP_V4, OUR_MAC, PORT_V4), Instant::now(), &mut out);
        assert!(out.is_empty());
        assert!(s.take_changes().is_none());
    }

    #[test]
    fn a_request_is_a_broadcast_for_the_target() {
        let frame = request(OUR_MAC, PORT_V4, POD_V4);
        assert_eq!(&frame[0..6], &[0xff; 6]);
        assert_eq!(&frame[6..12], &OUR_MAC.0);
        assert_eq!(&frame[12..14], &[0x08, 0x06]);
        assert_eq!(&frame[14..22], &[0, 1, 0x08, 0, 6, 4, 0, 1], "Ethernet/IPv4 request");
        assert_eq!(&frame[22..28], &OUR_MAC.0);
        assert_eq!(&frame[28..32], &PORT_V4.octets());
        assert_eq!(&frame[32..38], &[0; 6]);
        assert_eq!(&frame[38..42], &POD_V4.octets());
    }
}
