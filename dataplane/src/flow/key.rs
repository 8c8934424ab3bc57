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
    /// An IPv4 key hashes as its [`Ipv4FlowKey`] does, so that the
    /// established-flow path, which reads only that, finds what the general
    /// path inserted.
    ///
    /// IPv6 keys: two independent folded multiplies, one per address, each
    /// seeing the ports too, combined by xor (one half rotated, so that the
    /// bucket index in the low bits and the tag in the high bits each see
    /// both products' well-mixed halves).
    #[inline]
    pub fn hash(&self) -> u64 {
        if let Some(v4) = self.to_ipv4() {
            return v4.hash();
        }
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

    /// The same key in IPv4 form, if both addresses are IPv4.
    #[inline]
    pub fn to_ipv4(&self) -> Option<Ipv4FlowKey> {
        if !self.src.is_v4() || !self.dst.is_v4() {
            return None;
        }
        let (src, dst) = (self.src.v4_octets(), self.dst.v4_octets());
        let (sp, dp) = (self.src_port.to_be_bytes(), self.dst_port.to_be_bytes());
        Some(Ipv4FlowKey::from_wire(
            [src[0], src[1], src[2], src[3], dst[0], dst[1], dst[2], dst[3]],
            [sp[0], sp[1], dp[0], dp[1]],
            self.proto,
        ))
    }

    /// The key of the affinity entry for a client and a Service.
    #[inline]
    pub fn affinity(client: Addr, vip: Addr, service_port: u16, proto: u8) -> FlowKey {
        // The protocol goes in the source port so TCP and UDP services on one
        // VIP:port keep separate affinity.
        FlowKey { src: client, dst: vip, src_port: u16::from(proto), dst_port: service_port, proto: AFFINITY_PROTO }
    }
}

/// An IPv4 flow key as the common frame carries it: both addresses and
/// both ports in wire order, read with two loads and compared in three.
/// The established-flow path builds, hashes and compares only this; the
/// general path's [`FlowKey`] converts to it ([`FlowKey::to_ipv4`]) and
/// back ([`Ipv4FlowKey::to_flow_key`]) without loss.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Ipv4FlowKey {
    /// Source then destination address, as on the wire, read little-endian
    /// (so that the hash is the same on every machine).
    addresses: u64,
    /// Source then destination port, as on the wire, read little-endian.
    ports: u32,
    pub proto: u8,
}

impl Ipv4FlowKey {
    /// The key from the header bytes: the IPv4 source and destination
    /// addresses (8 bytes) and the TCP/UDP source and destination ports (4
    /// bytes), as on the wire.
    #[inline(always)]
    pub fn from_wire(addresses: [u8; 8], ports: [u8; 4], proto: u8) -> Ipv4FlowKey {
        Ipv4FlowKey { addresses: u64::from_le_bytes(addresses), ports: u32::from_le_bytes(ports), proto }
    }

    /// One folded multiply of the two words: the flow table's bucket index
    /// (low bits), preferred way (bits 29–31) and tag (high bits) all come
    /// from it.
    #[inline(always)]
    pub fn hash(&self) -> u64 {
        let rest = u64::from(self.ports) | u64::from(self.proto) << 32;
        fold_mul(self.addresses ^ 0x243f_6a88_85a3_08d3, rest ^ 0x1319_8a2e_0370_7344)
    }

    /// The general form of the same key.
    pub fn to_flow_key(&self) -> FlowKey {
        let a = self.addresses.to_le_bytes();
        let p = self.ports.to_le_bytes();
        FlowKey {
            src: Addr::from_v4_octets([a[0], a[1], a[2], a[3]]),
            dst: Addr::from_v4_octets([a[4], a[5], a[6], a[7]]),
            src_port: u16::from_be_bytes([p[0], p[1]]),
            dst_port: u16::from_be_bytes([p[2], p[3]]),
            proto: self.proto,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// 192.168.1.2:40000 → 10.96.0.1:80 over `proto`.
    fn client_to_vip(proto: u8) -> FlowKey {
        FlowKey {
            src: Ipv4Addr::new(192, 168, 1, 2).into(),
            dst: Ipv4Addr::new(10, 96, 0, 1).into(),
            src_port: 40000,
            dst_port: 80,
            proto,
        }
    }

    #[test]
    fn hash_depends_on_every_field() {
        let base = client_to_vip(6);
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
    fn an_ipv4_key_converts_both_ways_and_hashes_the_same() {
        let key = client_to_vip(17);
        let v4 = key.to_ipv4().expect("both addresses are IPv4");
        assert_eq!(v4.to_flow_key(), key);
        assert_eq!(v4.hash(), key.hash());
        let wire = Ipv4FlowKey::from_wire([192, 168, 1, 2, 10, 96, 0, 1], [0x9c, 0x40, 0, 80], 17);
        assert_eq!(wire, v4, "the wire bytes give the same key");

        let v6 = FlowKey { dst: std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1).into(), ..key };
        assert_eq!(v6.to_ipv4(), None);
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
            let mut ways = [0u32; crate::flow::table::WAYS];
            for k in &keys {
                let h = k.hash();
                buckets[(h as usize) & 4095] += 1;
                tags.insert(h >> 32);
                ways[crate::flow::table::preferred_way(h)] += 1;
            }
            // Each preferred way within 5% of its share.
            let share = keys.len() as u32 / ways.len() as u32;
            assert!(ways.iter().all(|&n| n.abs_diff(share) < share / 20), "{name}: preferred ways {ways:?}");
            // 16 per bucket on average; a uniform hash stays well under 40.
            let max = buckets.iter().copied().max().unwrap_or(0);
            assert!(max < 40, "{name}: fullest bucket {max}");
            assert!(tags.len() > keys.len() * 99 / 100, "{name}: {} distinct tags", tags.len());
        }
    }
}
