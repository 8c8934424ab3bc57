//! Forwarding one parsed packet: the flow lookup, and on a miss the VIP
//! lookup, the backend choice (Maglev, session affinity), the source port
//! and the flow pair's insert; then the TCP state and the verdict. The
//! established-flow path's inline variant is here too, next to the general
//! one it must agree with.

use crate::flow::{FlowKey, FlowState, NatAction};
use crate::stats::DropReason;
use crate::tables::{proto, Addr, PortId, Service, Snapshot};

use super::nat::rewrite;
use super::parse::{client_mac, Headers, PlainIpv4, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};
use super::{Pipeline, Verdict};

/// How many source ports to try before a new flow is dropped.
const SOURCE_PORT_TRIES: u32 = 16;

impl Pipeline {
    /// See [`Pipeline::forward_established`].
    #[inline(always)]
    pub(super) fn established(&mut self, frame: &mut [u8], plain: &PlainIpv4, hash: u64, now: u32) -> Option<PortId> {
        if plain.changes_state() || plain.ttl <= 1 {
            return None;
        }
        let (slot, entry, rewrite) = self.flows.lookup_ipv4(&plain.key, hash, now)?;
        if entry.state != FlowState::Open {
            return None;
        }
        let tx_port = entry.tx_port;
        let expires = now.saturating_add(self.timeout(FlowState::Open, plain.key.proto));
        // Another packet in the same second, the common case, leaves the
        // entry as it is.
        let already_fresh = entry.expires() == expires;
        // `apply` changes nothing when it refuses.
        if !rewrite.apply(frame, plain.key.proto) {
            return None;
        }
        if !already_fresh {
            // The entry and its peer.
            self.flows.touch(slot, FlowState::Open, expires);
        }
        Some(tx_port)
    }

    /// The verdict for a parsed frame, and its rewrite.
    #[inline(always)]
    pub(super) fn forward(
        &mut self,
        snap: &Snapshot,
        ingress: PortId,
        frame: &mut [u8],
        headers: &Headers,
        hash: u64,
        now: u32,
    ) -> Verdict {
        // A router may not forward a packet whose TTL would reach 0; what is
        // addressed to the appliance itself (and is no NAT reply) is
        // delivered, not forwarded.
        if headers.ttl <= 1 {
            if snap.is_local(&headers.key.dst) && self.flows.lookup(&headers.key, hash, now).is_none() {
                return Verdict::SlowPath;
            }
            return self.drop(DropReason::TtlExpired);
        }

        if let Some(plain) = &headers.plain {
            if let Some(tx_port) = self.established(frame, plain, hash, now) {
                return Verdict::Forward(tx_port);
            }
        }
        // An established flow whose state changes, or in a less common
        // frame: refresh it and rewrite from its entry in place.
        if let Some(slot) = self.flows.lookup(&headers.key, hash, now) {
            let entry = self.flows.entry(slot);
            if reopens(entry, headers) {
                // A new connection on the 5-tuple of one that has closed:
                // a new flow, with a backend chosen now, as conntrack does
                // for a SYN that finds its entry in TIME_WAIT. Keeping the
                // old backend would send it to a pod that may be gone.
                self.flows.remove(slot);
                return self.new_connection(snap, ingress, frame, headers, hash, now);
            }
            let state = next_state(entry.state, entry.is_reply(), headers.tcp_flags, headers.key.proto);
            let expires = now.saturating_add(self.timeout(state, headers.key.proto));
            self.flows.touch(slot, state, expires);
            let action = self.flows.action(slot);
            let tx_port = action.tx_port;
            if !rewrite(frame, headers, action) {
                return self.drop(DropReason::BadLength);
            }
            return Verdict::Forward(tx_port);
        }

        self.new_connection(snap, ingress, frame, headers, hash, now)
    }

    /// A packet that starts a flow: its Service, a backend, the NAT, both
    /// flow entries, and the rewrite.
    fn new_connection(
        &mut self,
        snap: &Snapshot,
        ingress: PortId,
        frame: &mut [u8],
        headers: &Headers,
        hash: u64,
        now: u32,
    ) -> Verdict {
        // A Service first: NodePorts listen on the appliance's
        // own addresses. (Masquerade source ports stay out of the NodePort
        // range by default, so a reply is never one.)
        let service_key =
            crate::tables::ServiceKey { vip: headers.key.dst, port: headers.key.dst_port, proto: headers.key.proto };
        let Some(service) = snap.service(&service_key) else {
            if snap.is_local(&headers.key.dst) {
                return match self.source_ports.owner(headers.key.dst_port) {
                    Some(owner) if owner != self.core => Verdict::Handoff(owner),
                    _ => Verdict::SlowPath,
                };
            }
            return self.drop(DropReason::NoService);
        };
        let action = match self.new_flow(snap, service, ingress, frame, headers, hash, now) {
            Ok(action) => action,
            // A Service without endpoints refuses the connection
            // (kube-proxy's reject): the slow path answers.
            Err(NewFlowError::NoEndpoint) => return Verdict::SlowPath,
            Err(NewFlowError::Drop(reason)) => return self.drop(reason),
        };
        if !rewrite(frame, headers, &action) {
            return self.drop(DropReason::BadLength);
        }
        Verdict::Forward(action.tx_port)
    }

    #[inline]
    fn timeout(&self, state: FlowState, protocol: u8) -> u32 {
        if protocol != proto::TCP {
            return self.timeouts.udp;
        }
        match state {
            FlowState::New => self.timeouts.tcp_new,
            FlowState::Open => self.timeouts.tcp_open,
            FlowState::Closing => self.timeouts.tcp_closing,
        }
    }

    /// Picks a backend for a new flow, sets up its NAT and inserts both
    /// directions into the flow table.
    #[allow(clippy::too_many_arguments)]
    fn new_flow(
        &mut self,
        snap: &Snapshot,
        service: &Service,
        ingress: PortId,
        frame: &[u8],
        h: &Headers,
        hash: u64,
        now: u32,
    ) -> Result<NatAction, NewFlowError> {
        let key = h.key;
        let (backend_addr, backend_port) = self.choose_backend(service, &key, hash, now)?;

        let hop = snap.next_hop(&backend_addr).ok_or(DropReason::NoRoute)?;
        let egress = snap.ports.get(usize::from(hop.port)).ok_or(DropReason::NoRoute)?;
        let ingress_info = snap.ports.get(usize::from(ingress)).ok_or(DropReason::NoRoute)?;

        // Masquerade: the backend sees the appliance's address and one of
        // this core's source ports, so its reply comes back here.
        let (src, src_port) = if egress.masquerade {
            let src = egress.addr_for(&backend_addr).ok_or(DropReason::NoSourceAddress)?;
            let flows = &self.flows;
            let port = self
                .source_ports
                .allocate(&backend_addr, backend_port, now, SOURCE_PORT_TRIES, |p| {
                    let reply =
                        FlowKey { src: backend_addr, dst: src, src_port: backend_port, dst_port: p, proto: key.proto };
                    flows.lookup(&reply, reply.hash(), now).is_none()
                })
                .ok_or(DropReason::NoSourcePort)?;
            (src, port)
        } else {
            (key.src, key.src_port)
        };

        let client_mac = client_mac(frame);
        let forward = NatAction {
            src,
            dst: backend_addr,
            src_port,
            dst_port: backend_port,
            tx_port: hop.port,
            src_mac: egress.mac,
            dst_mac: hop.mac,
        };
        let reply_key =
            FlowKey { src: backend_addr, dst: src, src_port: backend_port, dst_port: src_port, proto: key.proto };
        let reply = NatAction {
            src: key.dst,
            dst: key.src,
            src_port: key.dst_port,
            dst_port: key.src_port,
            tx_port: ingress,
            src_mac: ingress_info.mac,
            dst_mac: client_mac,
        };
        let state = next_state(FlowState::New, false, h.tcp_flags, key.proto);
        let expires = now.saturating_add(self.timeout(state, key.proto));
        let (_, outcome) =
            self.flows.insert_pair((key, hash, forward), (reply_key, reply_key.hash(), reply), state, expires, now);
        self.counters.flows_created += 1;
        self.counters.flow_evictions += u64::from(outcome.evicted);
        Ok(forward)
    }

    /// The backend for a new flow: by the flow's hash, or with ClientIP
    /// affinity by the client's address, remembered for the affinity
    /// timeout so that endpoint changes do not move the client.
    fn choose_backend(
        &mut self,
        service: &Service,
        key: &FlowKey,
        hash: u64,
        now: u32,
    ) -> Result<(Addr, u16), NewFlowError> {
        if service.affinity_timeout_s == 0 {
            let b = service.choose(hash).ok_or(NewFlowError::NoEndpoint)?;
            return Ok((b.addr, b.port));
        }
        let affinity = FlowKey::affinity(key.src, key.dst, key.dst_port, key.proto);
        let affinity_hash = affinity.hash();
        let expires = now.saturating_add(service.affinity_timeout_s);
        if let Some(slot) = self.flows.lookup(&affinity, affinity_hash, now) {
            if let Some(remembered) = self.flows.get_action(slot).map(|a| (a.dst, a.dst_port)) {
                // Keep the client where it was while that backend still takes
                // new flows.
                let still_serving = service.backends.iter().any(|b| {
                    (b.addr, b.port) == remembered && b.state != crate::tables::BackendState::NotReady && b.weight > 0
                });
                if still_serving {
                    self.flows.touch(slot, FlowState::Open, expires);
                    return Ok(remembered);
                }
                self.flows.remove(slot);
            }
        }
        let client_hash = crate::hash::mix64(affinity_hash ^ 0x636c_6965_6e74);
        let b = service.choose(client_hash).ok_or(NewFlowError::NoEndpoint)?;
        let record = NatAction {
            src: key.src,
            dst: b.addr,
            src_port: 0,
            dst_port: b.port,
            tx_port: 0,
            src_mac: crate::wire::MacAddr::ZERO,
            dst_mac: crate::wire::MacAddr::ZERO,
        };
        let (_, outcome) = self.flows.insert(affinity, affinity_hash, record, expires, now);
        self.counters.flow_evictions += u64::from(outcome.evicted);
        Ok((b.addr, b.port))
    }
}

/// Why a new flow was not set up.
enum NewFlowError {
    /// The Service has no endpoint: the connection is refused.
    NoEndpoint,
    Drop(DropReason),
}

impl From<DropReason> for NewFlowError {
    fn from(reason: DropReason) -> NewFlowError {
        NewFlowError::Drop(reason)
    }
}

/// Whether a packet opens a new connection on the 5-tuple of a closed one:
/// a client SYN (no ACK) on a forward entry in `Closing`.
#[inline]
fn reopens(entry: &crate::flow::FlowEntry, h: &Headers) -> bool {
    h.key.proto == proto::TCP
        && entry.state == FlowState::Closing
        && !entry.is_reply()
        && h.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN
}

/// The TCP state after a packet with `flags`; other protocols are Open.
#[inline]
fn next_state(current: FlowState, is_reply: bool, flags: u8, protocol: u8) -> FlowState {
    if protocol != proto::TCP {
        return FlowState::Open;
    }
    if flags & (TCP_FIN | TCP_RST) != 0 {
        return FlowState::Closing;
    }
    match current {
        FlowState::New if is_reply => FlowState::Open,
        // A flow picked up mid-stream (after a restart or an eviction).
        FlowState::New if flags & TCP_SYN == 0 => FlowState::Open,
        other => other,
    }
}
