//! The flow key: the 5-tuple as seen on the wire, one fixed layout for both
//! address families.

use crate::hash::fold_mul;
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
    ///
    /// Two independent folded multiplies, one per address, each seeing the
    /// ports too, combined by xor (one half rotated, so that the bucket
    /// index in the low bits and the tag in the high bits each see both
    /// products' well-mixed halves): two multiplies in parallel per packet,
    /// where a chain of mixers per 8-byte word cost four times as much.
    #[inline]
    pub fn hash(&self) -> u64 {
        let halves = |a: &Addr| {
            let v = u128::from_le_bytes(a.0);
            (v as u64, (v >> 64) as u64)
        };
        let (src_lo, src_hi) = halves(&self.src);
        let (dst_lo, dst_hi) = halves(&self.dst);
        let ports = u64::from(self.src_port) | u64::from(self.dst_port) << 16 | u64::from(self.proto) << 32;
        let a = fold_mul(src_hi ^ 0x243f_6a88_85a3_08d3, src_lo ^ ports ^ 0x1319_8a2e_0370_7344);
        let b = fold_mul(dst_hi ^ 0xa409_3822_299f_31d0, dst_lo ^ ports.rotate_left(29) ^ 0x082e_fa98_ec4e_6c89);
        a ^ b.rotate_left(32)
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

    #[test]
    fn sequential_ports_and_addresses_spread_over_buckets() {
        // The usual worst case for a weak hash: one client's ephemeral ports,
        // and a /16 of clients, to one VIP.
        let vip: Addr = Ipv4Addr::new(10, 96, 0, 1).into();
        let one_client = (0..65_536u32).map(|p| FlowKey {
            src: Ipv4Addr::new(192, 168, 1, 2).into(),
            dst: vip,
            src_port: p as u16,
            dst_port: 80,
            proto: 6,
        });
        let many_clients = (0..65_536u32).map(|i| FlowKey {
            src: Ipv4Addr::from(0xc0a8_0000 + i).into(),
            dst: vip,
            src_port: 40_000,
            dst_port: 80,
            proto: 6,
        });
        for (name, keys) in [("ports", one_client.collect::<Vec<_>>()), ("clients", many_clients.collect())] {
            let mut buckets = vec![0u32; 4096];
            let mut tags = std::collections::HashSet::new();
            for k in &keys {
                let h = k.hash();
                buckets[(h as usize) & 4095] += 1;
                tags.insert(h >> 32);
            }
            // 16 per bucket on average; a uniform hash stays well under 40.
            let max = buckets.iter().copied().max().unwrap_or(0);
            assert!(max < 40, "{name}: fullest bucket {max}");
            assert!(tags.len() > keys.len() * 99 / 100, "{name}: {} distinct tags", tags.len());
        }
    }
}
