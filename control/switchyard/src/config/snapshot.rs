//! The config file's own tables: its ports, routes, neighbours and
//! `[[service]]` entries as a dataplane snapshot, onto which the control
//! loop lays the Services it compiles and the neighbours it learns.

use std::sync::Arc;

use anyhow::Result;
use dataplane::tables::{
    Addr, Backend, BackendState, NextHop, PortInfo, Route, Service, ServiceKey, ServiceSpec, Snapshot,
};
use dataplane::wire::MacAddr;

use super::Config;

impl Config {
    /// The snapshot of this config's tables; `device_macs` are the ports'
    /// own MACs in port order (used unless the config overrides them).
    pub fn snapshot(&self, device_macs: &[MacAddr]) -> Result<Snapshot> {
        let mut snap = Snapshot::default();
        for (i, p) in self.ports.iter().enumerate() {
            let mac = match p.mac {
                Some(m) => m.0,
                None => device_macs.get(i).copied().unwrap_or(MacAddr::ZERO),
            };
            snap.ports.push(PortInfo { mac, ipv4: p.ipv4, ipv6: p.ipv6, masquerade: p.masquerade });
        }
        for r in &self.routes {
            let via = NextHop { port: self.port_index(&r.port)?, mac: r.gateway_mac.0 };
            snap.routes.push(Route { prefix: r.prefix.addr.into(), len: r.prefix.len, via });
        }
        snap.sort_routes();
        for n in &self.neighbours {
            let hop = NextHop { port: self.port_index(&n.port)?, mac: n.mac.0 };
            snap.neighbours.insert(n.address.into(), hop);
        }
        let max_ring = self.dataplane.as_ref().map_or(dataplane::tables::DEFAULT_MAX_RING_SIZE, |d| d.max_ring_size);
        for s in &self.services {
            let key = ServiceKey { vip: s.vip.into(), port: s.port, proto: s.protocol.0 };
            let backends = s
                .backends
                .iter()
                .map(|b| Backend {
                    addr: Addr::from(b.0.ip()),
                    port: b.0.port(),
                    weight: 1,
                    state: BackendState::Ready,
                })
                .collect();
            let spec =
                ServiceSpec { name: s.name.clone(), key, backends, affinity_timeout_s: s.affinity_timeout_seconds };
            snap.services.insert(key, Arc::new(Service::build(spec, max_ring)));
        }
        Ok(snap)
    }
}
