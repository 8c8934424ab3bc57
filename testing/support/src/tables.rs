//! Snapshots for the dataplane's tests and benches, built the one way they
//! all need: two ports (0 faces the clients, 1 the pods), the pod network
//! routed through a gateway on port 1, and Services on top.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use dataplane::tables::{
    Addr, Backend, BackendState, NextHop, PortInfo, Route, Service, ServiceKey, ServiceSpec, Snapshot,
    DEFAULT_MAX_RING_SIZE,
};
use dataplane::wire::MacAddr;

/// The pod network routed through port 1: 10.244.0.0/16, and
/// fd00:244::/32 when the pod port has an IPv6 address.
pub const POD_NET_V4: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 244, 0, 0), 16);
pub const POD_NET_V6: (Ipv6Addr, u8) = (Ipv6Addr::new(0xfd00, 0x244, 0, 0, 0, 0, 0, 0), 32);

/// The two ports' addresses and MACs, and the pod gateway's MAC.
#[derive(Clone, Copy, Debug)]
pub struct TwoPorts {
    pub client_mac: MacAddr,
    pub client_ipv4: Ipv4Addr,
    pub pod_mac: MacAddr,
    pub pod_ipv4: Ipv4Addr,
    pub pod_ipv6: Option<Ipv6Addr>,
    /// Source-NAT flows that leave through the pod port.
    pub masquerade: bool,
    pub gateway_mac: MacAddr,
}

impl TwoPorts {
    /// The ports and the pod network's routes, with no Service yet.
    pub fn snapshot(&self) -> Snapshot {
        let mut snap = Snapshot::default();
        snap.ports.push(PortInfo { mac: self.client_mac, ipv4: Some(self.client_ipv4), ipv6: None, masquerade: false });
        snap.ports.push(PortInfo {
            mac: self.pod_mac,
            ipv4: Some(self.pod_ipv4),
            ipv6: self.pod_ipv6,
            masquerade: self.masquerade,
        });
        let via = NextHop { port: 1, mac: self.gateway_mac };
        snap.routes.push(Route { prefix: POD_NET_V4.0.into(), len: POD_NET_V4.1, via });
        if self.pod_ipv6.is_some() {
            snap.routes.push(Route { prefix: POD_NET_V6.0.into(), len: POD_NET_V6.1, via });
        }
        snap.sort_routes();
        snap
    }
}

/// A ready backend of weight 1.
pub fn backend(addr: impl Into<Addr>, port: u16) -> Backend {
    Backend { addr: addr.into(), port, weight: 1, state: BackendState::Ready }
}

/// Adds the Service `name` on `vip:port`/`protocol` to `snap`, with a
/// Maglev ring of the default largest size; `affinity_s` > 0 is
/// sessionAffinity ClientIP.
pub fn add_service(
    snap: &mut Snapshot,
    name: &str,
    (vip, port, protocol): (IpAddr, u16, u8),
    backends: Vec<Backend>,
    affinity_s: u32,
) -> ServiceKey {
    let key = ServiceKey { vip: vip.into(), port, proto: protocol };
    let spec = ServiceSpec { name: name.into(), key, backends, affinity_timeout_s: affinity_s };
    snap.services.insert(key, Arc::new(Service::build(spec, DEFAULT_MAX_RING_SIZE)));
    key
}
