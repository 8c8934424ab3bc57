//! A Service port as the cores see it: one (VIP, port, protocol) key, its
//! backends, and the Maglev ring that picks among them.

use std::fmt;

use super::addr::Addr;
use super::maglev::{MaglevBackend, MaglevRing, MAX_BACKENDS};

/// IP protocol numbers the Service tables key on.
pub mod proto {
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const SCTP: u8 = 132;

    pub fn name(p: u8) -> &'static str {
        match p {
            TCP => "TCP",
            UDP => "UDP",
            SCTP => "SCTP",
            _ => "?",
        }
    }
}

/// What a packet is matched on to find its Service: where it was sent.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct ServiceKey {
    pub vip: Addr,
    pub port: u16,
    pub proto: u8,
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.vip.is_v4() {
            write!(f, "{}:{}/{}", self.vip, self.port, proto::name(self.proto))
        } else {
            write!(f, "[{}]:{}/{}", self.vip, self.port, proto::name(self.proto))
        }
    }
}

/// An endpoint's condition, as in EndpointSlice `conditions`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BackendState {
    /// Ready: takes new flows.
    Ready,
    /// Terminating but still serving: keeps its existing flows, takes new
    /// ones only when no backend is Ready (as kube-proxy does).
    Terminating,
    /// Not ready: keeps nothing new; existing flows continue until they end.
    NotReady,
}

impl BackendState {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendState::Ready => "ready",
            BackendState::Terminating => "terminating",
            BackendState::NotReady => "not-ready",
        }
    }
}

/// One backend (endpoint address and target port) of a Service port.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Backend {
    pub addr: Addr,
    pub port: u16,
    pub weight: u16,
    pub state: BackendState,
}

/// What the compiler hands over to build a [`Service`].
#[derive(Clone, Debug)]
pub struct ServiceSpec {
    /// `namespace/name:port-name`, for the CLI and metrics.
    pub name: String,
    pub key: ServiceKey,
    pub backends: Vec<Backend>,
    /// sessionAffinity ClientIP timeout in seconds; 0 means no affinity.
    pub affinity_timeout_s: u32,
}

/// A compiled Service port. Immutable once built; shared between snapshots
/// while it does not change.
#[derive(Debug)]
pub struct Service {
    pub name: String,
    pub key: ServiceKey,
    pub backends: Box<[Backend]>,
    pub affinity_timeout_s: u32,
    ring: MaglevRing,
}

impl Service {
    /// Builds the ring. New flows go to Ready backends; when there are none,
    /// to Terminating ones (kube-proxy's fallback); when there are none of
    /// those either, the Service has no endpoint and new flows are rejected.
    pub fn build(spec: ServiceSpec, max_ring_size: usize) -> Service {
        let mut backends = spec.backends;
        backends.truncate(MAX_BACKENDS);
        let any_ready = backends.iter().any(|b| b.state == BackendState::Ready && b.weight > 0);
        let wanted = if any_ready { BackendState::Ready } else { BackendState::Terminating };
        let ids: Vec<String> = backends.iter().map(|b| format!("{}#{}", b.addr, b.port)).collect();
        let ring_input: Vec<MaglevBackend<'_>> = backends
            .iter()
            .zip(&ids)
            .map(|(b, id)| MaglevBackend {
                id: id.as_bytes(),
                weight: if b.state == wanted { u32::from(b.weight) } else { 0 },
            })
            .collect();
        let ring = MaglevRing::build(&ring_input, max_ring_size);
        Service {
            name: spec.name,
            key: spec.key,
            backends: backends.into_boxed_slice(),
            affinity_timeout_s: spec.affinity_timeout_s,
            ring,
        }
    }

    /// The backend for a new flow with this hash, if any takes new flows.
    #[inline]
    pub fn choose(&self, flow_hash: u64) -> Option<&Backend> {
        self.ring.lookup(flow_hash).and_then(|i| self.backends.get(i))
    }

    pub fn ring(&self) -> &MaglevRing {
        &self.ring
    }

    pub fn heap_bytes(&self) -> usize {
        self.ring.heap_bytes() + self.backends.len() * std::mem::size_of::<Backend>() + self.name.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn backend(last: u8, state: BackendState) -> Backend {
        Backend { addr: Ipv4Addr::new(10, 0, 0, last).into(), port: 8080, weight: 1, state }
    }

    fn spec(backends: Vec<Backend>) -> ServiceSpec {
        ServiceSpec {
            name: "default/web:http".into(),
            key: ServiceKey { vip: Ipv4Addr::new(10, 96, 0, 1).into(), port: 80, proto: proto::TCP },
            backends,
            affinity_timeout_s: 0,
        }
    }

    #[test]
    fn new_flows_avoid_terminating_backends_while_any_is_ready() {
        let svc =
            Service::build(spec(vec![backend(1, BackendState::Ready), backend(2, BackendState::Terminating)]), 1 << 17);
        for h in 0..1000 {
            assert_eq!(svc.choose(h).map(|b| b.addr), Some(Ipv4Addr::new(10, 0, 0, 1).into()));
        }
    }

    #[test]
    fn terminating_backends_serve_when_none_is_ready() {
        let svc = Service::build(
            spec(vec![backend(1, BackendState::NotReady), backend(2, BackendState::Terminating)]),
            1 << 17,
        );
        assert_eq!(svc.choose(7).map(|b| b.addr), Some(Ipv4Addr::new(10, 0, 0, 2).into()));
        let empty = Service::build(spec(vec![backend(1, BackendState::NotReady)]), 1 << 17);
        assert!(empty.choose(7).is_none());
    }

    #[test]
    fn key_displays_like_a_socket_address() {
        let k = spec(vec![]).key;
        assert_eq!(k.to_string(), "10.96.0.1:80/TCP");
    }
}
