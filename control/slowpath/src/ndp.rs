//! IPv6 Neighbour Discovery (RFC 4861), the IPv6 side of what [`super::arp`]
//! does for IPv4: answers Neighbor Solicitations for the port's addresses
//! (its configured one and its link-local one) and for every IPv6 VIP,
//! learns neighbours from the solicitations and advertisements it hears,
//! and builds the solicitations that resolve backends.
//!
//! Messages are checked as §7.1 asks before anything is learned from them:
//! hop limit 255 (so they cannot come from off the link), a valid checksum
//! and code 0 (smoltcp's parser checks both), a unicast target, and the
//! rules for duplicate address detection's unspecified source.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Instant;

use dataplane::tables::PortId;
use dataplane::wire::MacAddr;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, Icmpv6Repr, Ipv6Repr, NdiscNeighborFlags, NdiscRepr, RawHardwareAddress,
};

use super::{emit, Out, SlowPath};

/// NDP messages are sent with, and only accepted with, this hop limit.
const NDP_HOP_LIMIT: u8 = 255;

/// The all-nodes group, where answers to duplicate address detection go.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The port's link-local address, fe80::/64 with the modified EUI-64
/// interface identifier of its MAC (RFC 4291 appendix A): what a host
/// would configure on that link.
pub(super) fn link_local(mac: MacAddr) -> Ipv6Addr {
    let m = mac.0;
    Ipv6Addr::from([0xfe, 0x80, 0, 0, 0, 0, 0, 0, m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]])
}

/// The solicited-node multicast group of `ip` (RFC 4291 §2.7.1):
/// ff02::1:ff00:0/104 with the address's low 24 bits.
pub(super) fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::from([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, o[13], o[14], o[15]])
}

/// The Ethernet group address of an IPv6 multicast group (RFC 2464 §7):
/// 33:33 and the group's low 32 bits.
pub(super) fn multicast_mac(group: Ipv6Addr) -> EthernetAddress {
    let o = group.octets();
    EthernetAddress([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// A link-layer address option's MAC, if it is an Ethernet one.
fn mac_of(lladdr: RawHardwareAddress) -> Option<MacAddr> {
    <[u8; 6]>::try_from(lladdr.as_bytes()).ok().map(MacAddr)
}

/// A Neighbor Solicitation for `target` from `(our_mac, our_ip)`, to the
/// target's solicited-node group, carrying our link-layer address so that
/// the target can answer without asking back.
pub(super) fn solicitation(our_mac: MacAddr, our_ip: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let group = solicited_node(target);
    let ns = NdiscRepr::NeighborSolicit {
        target_addr: target,
        lladdr: Some(RawHardwareAddress::from(EthernetAddress(our_mac.0))),
    };
    emit::icmpv6(our_mac, multicast_mac(group), our_ip, group, NDP_HOP_LIMIT, &Icmpv6Repr::Ndisc(ns))
}

impl SlowPath {
    /// A Neighbor Solicitation: learns the asker, and answers if the target
    /// is ours.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn neighbor_solicit(
        &mut self,
        port: PortId,
        eth: &EthernetFrame<&[u8]>,
        ip: &Ipv6Repr,
        target: Ipv6Addr,
        lladdr: Option<RawHardwareAddress>,
        now: Instant,
        out: &mut Out,
    ) {
        let asker_mac = lladdr.and_then(mac_of);
        let detecting_duplicates = ip.src_addr.is_unspecified();
        let valid = ip.hop_limit == NDP_HOP_LIMIT
            && !target.is_multicast()
            && (!detecting_duplicates || (ip.dst_addr == solicited_node(target) && lladdr.is_none()));
        if !valid {
            self.counters.malformed += 1;
            return;
        }
        // The option is the asker's own word for its MAC; a unicast
        // solicitation may leave it out, and then there is nothing to learn.
        if let (false, Some(mac)) = (detecting_duplicates, asker_mac) {
            self.learn(IpAddr::V6(ip.src_addr), port, mac, now);
        }
        if !self.owns_v6(port, target) {
            return;
        }
        let Some(our_mac) = self.port_mac(port) else { return };
        // §7.2.4: to the asker, solicited; a node still detecting duplicates
        // has no address yet, so to all nodes, unsolicited. Override: the
        // appliance is the only owner of its addresses and VIPs.
        let (dst, dst_mac, flags) = if detecting_duplicates {
            (ALL_NODES, multicast_mac(ALL_NODES), NdiscNeighborFlags::OVERRIDE)
        } else {
            let mac = asker_mac.map_or(eth.src_addr(), |m| EthernetAddress(m.0));
            (ip.src_addr, mac, NdiscNeighborFlags::SOLICITED | NdiscNeighborFlags::OVERRIDE)
        };
        let na = NdiscRepr::NeighborAdvert {
            flags,
            target_addr: target,
            lladdr: Some(RawHardwareAddress::from(EthernetAddress(our_mac.0))),
        };
        self.counters.nd_advertisements += 1;
        out.push((port, emit::icmpv6(our_mac, dst_mac, target, dst, NDP_HOP_LIMIT, &Icmpv6Repr::Ndisc(na))));
    }

    /// A Neighbor Advertisement: an answer to our solicitation or news from
    /// a neighbour that changed; learned either way, as ARP replies are.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn neighbor_advert(
        &mut self,
        port: PortId,
        eth: &EthernetFrame<&[u8]>,
        ip: &Ipv6Repr,
        flags: NdiscNeighborFlags,
        target: Ipv6Addr,
        lladdr: Option<RawHardwareAddress>,
        now: Instant,
    ) {
        let valid = ip.hop_limit == NDP_HOP_LIMIT
            && !target.is_multicast()
            && !(ip.dst_addr.is_multicast() && flags.contains(NdiscNeighborFlags::SOLICITED));
        if !valid {
            self.counters.malformed += 1;
            return;
        }
        // An answer to a unicast solicitation may leave its link-layer
        // address out; then it is the frame's sender.
        let mac = lladdr.and_then(mac_of).unwrap_or(MacAddr(eth.src_addr().0));
        self.learn(IpAddr::V6(target), port, mac, now);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use dataplane::tables::{Addr, NextHop};

    const ASKER: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x50);

    /// Checks an advertisement field by field from its bytes; returns the
    /// IPv6 destination, the flags octet and the target.
    fn check_advertisement(frame: &[u8], dst_mac: [u8; 6], src: Ipv6Addr) -> (Ipv6Addr, u8, Ipv6Addr) {
        assert_eq!(frame.len(), 14 + 40 + 32, "NA with one option");
        assert_eq!(&frame[0..6], &dst_mac);
        assert_eq!(&frame[6..12], &OUR_MAC.0);
        assert_eq!(&frame[12..14], &[0x86, 0xdd], "IPv6");
        let ip = &frame[14..54];
        assert_eq!(&ip[0..4], &[0x60, 0, 0, 0], "version 6, no traffic class, no flow label");
        assert_eq!(&ip[4..6], &32u16.to_be_bytes(), "payload length");
        assert_eq!((ip[6], ip[7]), (58, 255), "ICMPv6, hop limit 255");
        assert_eq!(ipv6_at(ip, 8), src);
        let icmp = &frame[54..];
        assert_eq!((icmp[0], icmp[1]), (136, 0), "Neighbor Advertisement, code 0");
        assert!(icmpv6_checksum_ok(frame), "ICMPv6 checksum");
        assert_eq!(icmp[4] & 0x1f, 0);
        assert_eq!(&icmp[5..8], &[0, 0, 0], "reserved");
        assert_eq!((icmp[24], icmp[25]), (2, 1), "target link-layer address option, 8 bytes");
        assert_eq!(&icmp[26..32], &OUR_MAC.0);
        (ipv6_at(ip, 24), icmp[4], ipv6_at(icmp, 8))
    }

    #[test]
    fn answers_multicast_solicitations_for_its_addresses_and_vips() {
        let mut s = slow_path();
        let mut out = Vec::new();
        let ours = [PORT_V6, link_local(OUR_MAC), VIP_V6];
        for target in ours {
            let group = solicited_node(target);
            let ns = neighbor_solicit(CLIENT_MAC, multicast_mac(group).0, ASKER, group, target, Some(CLIENT_MAC), 255);
            s.handle(0, &ns, Instant::now(), &mut out);
        }
        assert_eq!(out.len(), 3);
        for ((port, frame), target) in out.iter().zip(ours) {
            assert_eq!(*port, 0);
            let (dst, flags, advertised) = check_advertisement(frame, CLIENT_MAC.0, target);
            assert_eq!((dst, flags, advertised), (ASKER, 0x60, target), "solicited and override, to the asker");
        }
        assert_eq!(s.counters.nd_advertisements, 3);
        let learned = s.take_changes().expect("the asker was learned");
        assert_eq!(learned[&Addr::from(ASKER)], NextHop { port: 0, mac: CLIENT_MAC });
    }

    #[test]
    fn answers_a_unicast_solicitation_without_an_option_to_its_sender() {
        let mut s = slow_path();
        let mut out = Vec::new();
        let ns = neighbor_solicit(CLIENT_MAC, OUR_MAC.0, ASKER, VIP_V6, VIP_V6, None, 255);
        s.handle(0, &ns, Instant::now(), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(check_advertisement(&out[0].1, CLIENT_MAC.0, VIP_V6), (ASKER, 0x60, VIP_V6));
        assert!(s.take_changes().is_none(), "no option: nothing learned");
    }

    #[test]
    fn defends_its_address_against_duplicate_detection_to_all_nodes() {
        let mut s = slow_path();
        let mut out = Vec::new();
        let group = solicited_node(PORT_V6);
        let dad =
            neighbor_solicit(CLIENT_MAC, multicast_mac(group).0, Ipv6Addr::UNSPECIFIED, group, PORT_V6, None, 255);
        s.handle(0, &dad, Instant::now(), &mut out);
        assert_eq!(out.len(), 1);
        let (dst, flags, target) = check_advertisement(&out[0].1, [0x33, 0x33, 0, 0, 0, 1], PORT_V6);
        assert_eq!((dst, flags, target), (ALL_NODES, 0x20, PORT_V6), "override only, to all nodes");
        assert!(s.take_changes().is_none());
    }

    #[test]
    fn learns_from_but_does_not_answer_solicitations_for_others() {
        let mut s = slow_path();
        let mut out = Vec::new();
        let other = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x99);
        let group = solicited_node(other);
        let ns = neighbor_solicit(CLIENT_MAC, multicast_mac(group).0, ASKER, group, other, Some(CLIENT_MAC), 255);
        s.handle(0, &ns, Instant::now(), &mut out);
        assert!(out.is_empty());
        assert!(s.take_changes().is_some_and(|n| n.contains_key(&Addr::from(ASKER))));
    }

    #[test]
    fn ignores_solicitations_that_break_the_rules() {
        let mut s = slow_path();
        let mut out = Vec::new();
        let group = solicited_node(PORT_V6);
        let to_group = multicast_mac(group).0;
        let routed = neighbor_solicit(CLIENT_MAC, to_group, ASKER, group, PORT_V6, Some(CLIENT_MAC), 254);
        let mut bad_checksum = neighbor_solicit(CLIENT_MAC, to_group, ASKER, group, PORT_V6, Some(CLIENT_MAC), 255);
        bad_checksum[14 + 40 + 2] ^= 0x55;
        let dad_with_option =
            neighbor_solicit(CLIENT_MAC, to_group, Ipv6Addr::UNSPECIFIED, group, PORT_V6, Some(CLIENT_MAC), 255);
        let dad_unicast = neighbor_solicit(CLIENT_MAC, OUR_MAC.0, Ipv6Addr::UNSPECIFIED, PORT_V6, PORT_V6, None, 255);
        let multicast_target = neighbor_solicit(CLIENT_MAC, to_group, ASKER, group, group, Some(CLIENT_MAC), 255);
        for frame in [routed, bad_checksum, dad_with_option, dad_unicast, multicast_target] {
            s.handle(0, &frame, Instant::now(), &mut out);
        }
        assert!(out.is_empty(), "no answer");
        assert_eq!(s.counters.malformed, 5);
        assert!(s.take_changes().is_none(), "nothing learned");
    }

    #[test]
    fn learns_from_advertisements_with_or_without_the_option() {
        let mut s = slow_path();
        let mut out = Vec::new();
        let now = Instant::now();
        let pod_mac = MacAddr([2, 0, 0, 0, 0, 5]);
        let other_mac = MacAddr([2, 0, 0, 0, 0, 6]);
        let other = Ipv6Addr::new(0xfd00, 0x10, 0x244, 1, 0, 0, 0, 6);
        s.handle(
            0,
            &advertisement(other_mac, OUR_MAC.0, POD_V6, PORT_V6, POD_V6, Some(pod_mac), 0x60, 255),
            now,
            &mut out,
        );
        s.handle(1, &advertisement(other_mac, OUR_MAC.0, other, PORT_V6, other, None, 0x60, 255), now, &mut out);
        assert!(out.is_empty(), "advertisements are not answered");
        let learned = s.take_changes().expect("learned");
        assert_eq!(learned[&Addr::from(POD_V6)], NextHop { port: 0, mac: pod_mac }, "the option's MAC");
        assert_eq!(learned[&Addr::from(other)], NextHop { port: 1, mac: other_mac }, "the sender's MAC");

        // Solicited to a group, or from off the link: not believed.
        let to_all =
            advertisement(pod_mac, [0x33, 0x33, 0, 0, 0, 1], POD_V6, ALL_NODES, POD_V6, Some(other_mac), 0x60, 255);
        let routed = advertisement(pod_mac, OUR_MAC.0, POD_V6, PORT_V6, POD_V6, Some(other_mac), 0x20, 64);
        let claiming_ours = advertisement(pod_mac, OUR_MAC.0, VIP_V6, PORT_V6, VIP_V6, Some(pod_mac), 0x20, 255);
        for frame in [to_all, routed, claiming_ours] {
            s.handle(0, &frame, now, &mut out);
        }
        assert_eq!(s.counters.malformed, 2);
        assert!(s.take_changes().is_none(), "nothing changed");
    }

    #[test]
    fn a_solicitation_goes_to_the_solicited_node_group() {
        let target = Ipv6Addr::new(0xfd00, 0x10, 0x244, 1, 0, 0, 0xab, 0xcdef);
        assert_eq!(solicited_node(target), "ff02::1:ffab:cdef".parse::<Ipv6Addr>().expect("an IPv6 address"));
        let frame = solicitation(OUR_MAC, PORT_V6, target);
        assert_eq!(&frame[0..6], &[0x33, 0x33, 0xff, 0xab, 0xcd, 0xef]);
        assert_eq!(check_solicitation(&frame, OUR_MAC, PORT_V6), target);
    }

    #[test]
    fn the_link_local_address_is_the_modified_eui64_of_the_mac() {
        let mac = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        assert_eq!(link_local(mac), "fe80::5054:ff:fe12:3456".parse::<Ipv6Addr>().expect("an IPv6 address"));
    }
}
