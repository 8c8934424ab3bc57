//! The flow key: the 5-tuple as seen on the wire, one fixed layout for both
//! address families.

use crate::hash::mix64;
use crate::tables::Addr;

/// `proto` value of the affinity entries that share the flow table:
/// (client address, VIP, service port) → backend, for sessionAffinity
/// ClientIP. No IP protocol uses 0 as a transport (it is the IPv6 Hop-by-Hop
/// option, which never reaches the flow table).
pub const AFFINITY_PROTO: u8 = 0;

#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct FlowKey {
    pub src: Addr,
    pub dst: Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub proto: u8,
}

impl FlowKey {
    /// A hash of the whole key; the flow table and Maglev both use it.
    #[inline]
    pub fn hash(&self) -> u64 {
        let word = |a: &Addr, half: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&a.0[half * 8..half * 8 + 8]);
            u64::from_le_bytes(w)
        };
        let ports = u64::from(self.src_port) | u64::from(self.dst_port) << 16 | u64::from(self.proto) << 32;
        let mut h = mix64(word(&self.src, 0) ^ 0x5157_4954_4348_5944);
        h = mix64(h ^ word(&self.src, 1));
        h = mix64(h ^ word(&self.dst, 0));
        h = mix64(h ^ word(&self.dst, 1));
        mix64(h ^ ports)
    }

    /// The key of the affinity entry for a client and a Service.
    #[inline]
    pub fn affinity(client: Addr, vip: Addr, service_port: u16, proto: u8) -> FlowKey {
        // The protocol goes in the source port so TCP and UDP services on one
        // VIP:port keep separate affinity.
        FlowKey { src: client, dst: vip, src_port: u16::from(proto), dst_port: service_port, proto: AFFINITY_PROTO }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn hash_depends_on_every_field() {
        let base = FlowKey {
            src: Ipv4Addr::new(192, 168, 1, 2).into(),
            dst: Ipv4Addr::new(10, 96, 0, 1).into(),
            src_port: 40000,
            dst_port: 80,
            proto: 6,
        };
        let variants = [
            FlowKey { src: Ipv4Addr::new(192, 168, 1, 3).into(), ..base },
            FlowKey { dst: Ipv4Addr::new(10, 96, 0, 2).into(), ..base },
            FlowKey { src_port: 40001, ..base },
            FlowKey { dst_port: 81, ..base },
            FlowKey { proto: 17, ..base },
        ];
        for v in variants {
            assert_ne!(v.hash(), base.hash());
        }
    }
}
