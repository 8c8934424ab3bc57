//! The neighbour table the slow path learns from ARP and NDP: address →
//! (port, MAC), with the time each was last heard from. The control loop
//! copies it into the next snapshot whenever it changes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use dataplane::tables::{Addr, NextHop};

/// A learned neighbour is forgotten after this long without news.
pub const NEIGHBOUR_TTL: Duration = Duration::from_secs(300);

struct Neighbour {
    hop: NextHop,
    seen: Instant,
}

#[derive(Default)]
pub(super) struct Neighbours {
    table: HashMap<IpAddr, Neighbour>,
    /// The table changed since the last `take_changes`.
    changed: bool,
}

impl Neighbours {
    /// Records that `ip` was heard from at `hop`; returns whether that is
    /// news (a new neighbour, or one that moved). Addresses that cannot be
    /// a next hop are ignored: unspecified and multicast ones, and IPv6
    /// link-local ones (they are per-link, while the snapshot's table is
    /// one for all ports, and no Service or route points at them).
    pub(super) fn learn(&mut self, ip: IpAddr, hop: NextHop, now: Instant) -> bool {
        let usable = match ip {
            IpAddr::V4(v4) => !v4.is_unspecified() && !v4.is_multicast() && !v4.is_broadcast(),
            IpAddr::V6(v6) => !v6.is_unspecified() && !v6.is_multicast() && !v6.is_unicast_link_local(),
        };
        if !usable || hop.mac.is_multicast() {
            return false;
        }
        match self.table.insert(ip, Neighbour { hop, seen: now }) {
            Some(old) if old.hop == hop => false,
            _ => {
                self.changed = true;
                true
            }
        }
    }

    /// Whether `ip` was heard from in the first half of its lifetime: a
    /// neighbour past that is asked for again before it expires.
    pub(super) fn is_fresh(&self, ip: &IpAddr, now: Instant) -> bool {
        self.table.get(ip).is_some_and(|n| now.duration_since(n.seen) < NEIGHBOUR_TTL / 2)
    }

    /// Forgets neighbours not heard from within [`NEIGHBOUR_TTL`].
    pub(super) fn expire(&mut self, now: Instant) {
        let before = self.table.len();
        self.table.retain(|_, n| now.duration_since(n.seen) < NEIGHBOUR_TTL);
        self.changed |= self.table.len() != before;
    }

    /// The whole table if it changed since the last call.
    pub(super) fn take_changes(&mut self) -> Option<HashMap<Addr, NextHop>> {
        if !std::mem::take(&mut self.changed) {
            return None;
        }
        Some(self.table.iter().map(|(ip, n)| (Addr::from(*ip), n.hop)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::wire::MacAddr;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const HOP: NextHop = NextHop { port: 1, mac: MacAddr([2, 0, 0, 0, 0, 7]) };

    #[test]
    fn learns_moves_refreshes_and_expires() {
        let mut n = Neighbours::default();
        let t0 = Instant::now();
        let pod: IpAddr = "fd00:10:244:1::5".parse().expect("an IPv6 address");
        assert!(n.learn(pod, HOP, t0), "new");
        assert!(!n.learn(pod, HOP, t0 + Duration::from_secs(1)), "heard again: no news");
        let moved = NextHop { port: 0, ..HOP };
        assert!(n.learn(pod, moved, t0 + Duration::from_secs(2)), "moved");
        assert_eq!(n.take_changes().expect("changed")[&Addr::from(pod)], moved);
        assert!(n.take_changes().is_none());

        assert!(n.is_fresh(&pod, t0 + NEIGHBOUR_TTL / 2));
        assert!(!n.is_fresh(&pod, t0 + NEIGHBOUR_TTL / 2 + Duration::from_secs(3)));
        n.expire(t0 + NEIGHBOUR_TTL);
        assert!(n.take_changes().is_none(), "still within its lifetime (heard at t0+2s)");
        n.expire(t0 + NEIGHBOUR_TTL + Duration::from_secs(2));
        assert!(n.take_changes().is_some_and(|t| t.is_empty()));
    }

    #[test]
    fn ignores_addresses_that_are_no_next_hop() {
        let mut n = Neighbours::default();
        let now = Instant::now();
        let unusable: [IpAddr; 6] = [
            Ipv4Addr::UNSPECIFIED.into(),
            Ipv4Addr::BROADCAST.into(),
            Ipv4Addr::new(224, 0, 0, 1).into(),
            Ipv6Addr::UNSPECIFIED.into(),
            "ff02::1:ff00:5".parse::<Ipv6Addr>().expect("an IPv6 address").into(),
            "fe80::1".parse::<Ipv6Addr>().expect("an IPv6 address").into(),
        ];
        for ip in unusable {
            assert!(!n.learn(ip, HOP, now), "{ip} learned");
        }
        let multicast_mac = NextHop { port: 0, mac: MacAddr([0x33, 0x33, 0, 0, 0, 1]) };
        assert!(!n.learn(Ipv4Addr::new(192, 0, 2, 7).into(), multicast_mac, now));
        assert!(n.take_changes().is_none());
    }
}
