//! Compiles the configuration's ports, routes, neighbours and Services into
//! a dataplane snapshot.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::{Context, Result};
use dataplane::tables::{
    Addr, Backend, BackendState, NextHop, PortInfo, Route, Service, ServiceKey, ServiceSpec, Snapshot,
};
use dataplane::wire::MacAddr;

use crate::config::{parse_mac, parse_prefix, parse_protocol, Config};

/// Builds the snapshot for `config`; `device_macs` are the ports' own MACs
/// in port order (used unless the config overrides them).
pub fn snapshot_from_config(config: &Config, device_macs: &[MacAddr]) -> Result<Snapshot> {
    let mut snap = Snapshot::default();
    for (i, p) in config.ports.iter().enumerate() {
        let mac = match &p.mac {
            Some(m) => parse_mac(m)?,
            None => device_macs.get(i).copied().unwrap_or(MacAddr::ZERO),
        };
        snap.ports.push(PortInfo { mac, ipv4: p.ipv4, ipv6: p.ipv6, masquerade: p.masquerade });
    }
    for r in &config.routes {
        let (prefix, len) = parse_prefix(&r.prefix)?;
        let via = NextHop { port: config.port_index(&r.port)?, mac: parse_mac(&r.gateway_mac)? };
        snap.routes.push(Route { prefix: prefix.into(), len, via });
    }
    snap.sort_routes();
    for n in &config.neighbours {
        let hop = NextHop { port: config.port_index(&n.port)?, mac: parse_mac(&n.mac)? };
        snap.neighbours.insert(n.address.into(), hop);
    }
    for s in &config.services {
        let key = ServiceKey { vip: s.vip.into(), port: s.port, proto: parse_protocol(&s.protocol)? };
        let backends = s
            .backends
            .iter()
            .map(|b| {
                let addr = SocketAddr::from_str(b).with_context(|| format!("service {:?}: backend {b:?}", s.name))?;
                Ok(Backend { addr: Addr::from(addr.ip()), port: addr.port(), weight: 1, state: BackendState::Ready })
            })
            .collect::<Result<Vec<_>>>()?;
        let spec = ServiceSpec { name: s.name.clone(), key, backends, affinity_timeout_s: s.affinity_timeout_seconds };
        let max_ring = config.dataplane.as_ref().map_or(dataplane::tables::DEFAULT_MAX_RING_SIZE, |d| d.max_ring_size);
        snap.services.insert(key, Arc::new(Service::build(spec, max_ring)));
    }
    Ok(snap)
}
