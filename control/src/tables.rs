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
        snap.services.insert(key, Arc::new(Service::build(spec, config.dataplane.max_ring_size)));
    }
    Ok(snap)
}

/// The Service table as `ipvsadm -Ln` would show it: one block per VIP,
/// one line per backend.
pub fn render_services(snap: &Snapshot) -> String {
    use std::fmt::Write;
    let mut services: Vec<_> = snap.services.values().collect();
    services.sort_by_key(|s| s.key);
    let mut out = String::new();
    let _ = writeln!(out, "{:<28} {:<32} {:>8} {:>10}", "SERVICE", "VIP", "AFFINITY", "RING");
    for s in services {
        let affinity = if s.affinity_timeout_s > 0 { format!("{}s", s.affinity_timeout_s) } else { "-".into() };
        let _ = writeln!(out, "{:<28} {:<32} {:>8} {:>10}", s.name, s.key.to_string(), affinity, s.ring().len());
        let shares = s.ring().shares(s.backends.len());
        for (b, share) in s.backends.iter().zip(shares) {
            let addr =
                if b.addr.is_v4() { format!("{}:{}", b.addr, b.port) } else { format!("[{}]:{}", b.addr, b.port) };
            let pct = 100.0 * share as f64 / s.ring().len().max(1) as f64;
            let _ = writeln!(out, "  -> {:<40} {:<12} weight {:<3} {:>5.1}%", addr, b.state.as_str(), b.weight, pct);
        }
    }
    out
}
