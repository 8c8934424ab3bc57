//! One packet through the forwarding path, top to bottom:
//!
//! parse → flow lookup → (miss) VIP lookup → backend choice → flow insert →
//! NAT rewrite with incremental checksums → verdict (which port, or the slow
//! path, or a counted drop).
//!
//! The pipeline owns the core's flow table and source ports; it reads the
//! snapshot it is given and never blocks, allocates, or calls the system.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::flow::key::Ipv4FlowKey;
use crate::flow::{FlowKey, FlowState, FlowTable, NatAction, Placement, SourcePortAllocator};
use crate::stats::{Counters, DropReason};
use crate::tables::{proto, Addr, PortId, Service, Snapshot};
use crate::wire::checksum::{update_udp, Delta};
use crate::wire::{
    parse_l2, EtherType, IpProtocol, Ipv4Packet, Ipv6Packet, SctpPacket, TcpFlags, TcpPacket, UdpPacket,
};

/// What to do with a packet after [`Pipeline::process`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Rewritten; send it out of this port.
    Forward(PortId),
    /// For the appliance itself (ARP, ICMP, its own addresses): hand it to
    /// the slow path unchanged.
    SlowPath,
    /// A reply to a masqueraded flow of another core (RSS put it here): hand
    /// it unchanged to that core.
    Handoff(usize),
    /// Dropped; already counted under the reason.
    Drop(DropReason),
}

/// Idle timeouts, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP before the backend has answered.
    pub tcp_new: u32,
    /// TCP with both directions seen.
    pub tcp_open: u32,
    /// TCP after FIN or RST.
    pub tcp_closing: u32,
    pub udp: u32,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        // kube-proxy sets conntrack's established timeout to a day; a closing
        // flow only needs to outlive the last retransmitted FIN/ACK.
        Timeouts { tcp_new: 30, tcp_open: 86_400, tcp_closing: 30, udp: 30 }
    }
}

/// A core's pipeline settings.
#[derive(Clone, Copy, Debug)]
pub struct PipelineConfig {
    /// This core's index and the number of worker cores (for source ports).
    pub core: usize,
    pub cores: usize,
    /// Flow table entries (two per NAT flow).
    pub flow_capacity: usize,
    /// Where the flow table lives (DPDK's hugepages on a real node).
    pub flow_memory: Placement,
    /// Range of source ports for masqueraded flows, shared out among cores.
    pub source_ports: (u16, u16),
    /// Unix time (seconds) of the pipeline's second 0: source ports follow
    /// the wall clock so that a restart does not reuse recent ones (see
    /// `flow::ports`).
    pub clock_epoch: u64,
    pub timeouts: Timeouts,
}

impl Default for PipelineConfig {
    fn default() -> PipelineConfig {
        PipelineConfig {
            core: 0,
            cores: 1,
            flow_capacity: 1 << 18,
            flow_memory: Placement::Heap,
            source_ports: (32768, 65535),
            clock_epoch: 0,
            timeouts: Timeouts::default(),
        }
    }
}

/// A frame after [`Pipeline::prepare`]: whether it is the common frame
/// ([`parse_plain_ipv4`] accepted it), and then its flow hash and whether
/// it changes its flow's state.
///
/// Only these two words are kept between the passes. The headers are read
/// again from the frame (in L1 by then) when it is finished: a whole
/// parse result, stored field by field and copied, cost more in stalled
/// wide loads than reading a dozen bytes twice.
#[derive(Clone, Copy, Debug, Default)]
pub struct Prepared {
    hash: u64,
    plain: bool,
    changes_state: bool,
}

/// Where the headers of a parsed packet are, and its flow key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Headers {
    l3: usize,
    v4: bool,
    /// IPv4 TTL or IPv6 hop limit.
    ttl: u8,
    key: FlowKey,
    tcp_flags: u8,
    /// The common frame the compiled rewrite is for: untagged Ethernet,
    /// IPv4 without options, a whole TCP or UDP header (see
    /// [`parse_plain_ipv4`]), in the form the established-flow path reads.
    plain: Option<PlainIpv4>,
}

/// What the established-flow path reads of a common frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PlainIpv4 {
    key: Ipv4FlowKey,
    ttl: u8,
    tcp_flags: u8,
}

impl PlainIpv4 {
    /// Whether the packet changes its flow's state (SYN, FIN or RST): the
    /// established-flow path leaves these to the general one.
    #[inline(always)]
    fn changes_state(&self) -> bool {
        self.tcp_flags & (TCP_SYN | TCP_FIN | TCP_RST) != 0
    }

    /// The general form, for the rest of the pipeline.
    fn headers(self) -> Headers {
        Headers {
            l3: 14,
            v4: true,
            ttl: self.ttl,
            key: self.key.to_flow_key(),
            tcp_flags: self.tcp_flags,
            plain: Some(self),
        }
    }
}

const TCP_FIN: u8 = TcpFlags::FIN;
const TCP_SYN: u8 = TcpFlags::SYN;
const TCP_RST: u8 = TcpFlags::RST;
const TCP_ACK: u8 = TcpFlags::ACK;

/// How many source ports to try before a new flow is dropped.
const SOURCE_PORT_TRIES: u32 = 16;

pub struct Pipeline {
    core: usize,
    flows: FlowTable,
    source_ports: SourcePortAllocator,
    timeouts: Timeouts,
    pub counters: Counters,
}

impl Pipeline {
    pub fn new(config: &PipelineConfig) -> Pipeline {
        let (flows, fallback) = FlowTable::new_in(config.flow_capacity, config.flow_memory);
        if let Some(why) = fallback {
            tracing::warn!(core = config.core, %why, "flow table on the heap, not in DPDK memory: lookups will miss the TLB more");
        }
        Pipeline {
            core: config.core,
            flows,
            source_ports: SourcePortAllocator::new(
                config.source_ports.0,
                config.source_ports.1,
                config.core,
                config.cores,
                config.clock_epoch,
            ),
            timeouts: config.timeouts,
            counters: Counters::default(),
        }
    }

    pub fn flows(&self) -> &FlowTable {
        &self.flows
    }

    #[inline]
    fn drop(&mut self, reason: DropReason) -> Verdict {
        self.counters.drop(reason);
        Verdict::Drop(reason)
    }

    /// Processes one frame received on `ingress` at second `now`, for
    /// callers with a single packet (and the frames [`Pipeline::prepare`]
    /// left to the general parser): the same verdict and rewrite as the
    /// burst's passes, without the prefetches.
    #[inline]
    pub fn process(&mut self, snap: &Snapshot, ingress: PortId, frame: &mut [u8], now: u32) -> Verdict {
        match parse(frame) {
            Ok(headers) => {
                let hash = headers.key.hash();
                self.forward(snap, ingress, frame, &headers, hash, now)
            }
            Err(Parsed::SlowPath) => Verdict::SlowPath,
            Err(Parsed::Drop(reason)) => self.drop(reason),
        }
    }

    /// First stage, run over a whole burst before the next: parse the
    /// headers and hash the flow key. The flow table is far larger than the
    /// caches, so each packet's lookup is a cache miss; the second stage
    /// ([`Pipeline::prefetch`]) starts them all, so that they overlap
    /// instead of queuing one behind the other.
    ///
    /// Only the common frame is prepared; the others are parsed in full
    /// when they are finished.
    #[inline]
    pub fn prepare(&self, frame: &[u8]) -> Prepared {
        match parse_plain_ipv4(frame) {
            Some(plain) => Prepared { hash: plain.key.hash(), plain: true, changes_state: plain.changes_state() },
            None => Prepared::default(),
        }
    }

    /// Second stage, over the whole burst again: start loading the flow
    /// table line each prepared packet's lookup reads first, its entry on
    /// the established-flow path, its bucket's metadata for a SYN, FIN or
    /// RST. Kept apart from the parsing, in a loop of a few instructions
    /// per packet, so that all the burst's loads are in flight at once:
    /// within the first stage, the parsing between two prefetches held the
    /// core's window to a handful of them.
    #[inline(always)]
    pub fn prefetch(&self, prepared: &Prepared) {
        if prepared.plain {
            if prepared.changes_state {
                self.flows.prefetch_bucket(prepared.hash);
            } else {
                self.flows.prefetch_entry(prepared.hash);
            }
        }
    }

    /// Last stage: the verdict for a frame [`Pipeline::prepare`] saw, and
    /// its rewrite. `frame` must be the same, unchanged bytes.
    #[inline]
    pub fn finish(
        &mut self,
        snap: &Snapshot,
        ingress: PortId,
        frame: &mut [u8],
        prepared: &Prepared,
        now: u32,
    ) -> Verdict {
        if !prepared.plain {
            return self.process(snap, ingress, frame, now);
        }
        match read_plain_ipv4(frame) {
            Some(plain) => self.forward(snap, ingress, frame, &plain.headers(), prepared.hash, now),
            // Not the frame that was prepared (a caller's mistake): parsed
            // in full, nothing is assumed.
            None => self.process(snap, ingress, frame, now),
        }
    }

    /// The path of most packets, taken before [`Pipeline::finish`]: a
    /// prepared common frame of an open flow that changes no state (no SYN,
    /// FIN or RST). Rewrites it with the flow's compiled rewrite, refreshes
    /// the flow and returns the egress port. Any other frame gets `None`
    /// with nothing changed, and goes through [`Pipeline::finish`].
    #[inline(always)]
    pub fn forward_established(&mut self, frame: &mut [u8], prepared: &Prepared, now: u32) -> Option<PortId> {
        if !prepared.plain {
            return None;
        }
        let plain = read_plain_ipv4(frame)?;
        self.established(frame, &plain, prepared.hash, now)
    }

    /// See [`Pipeline::forward_established`].
    #[inline(always)]
    fn established(&mut self, frame: &mut [u8], plain: &PlainIpv4, hash: u64, now: u32) -> Option<PortId> {
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
    fn forward(
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Parsed {
    SlowPath,
    Drop(DropReason),
}

impl From<crate::wire::Error> for Parsed {
    fn from(e: crate::wire::Error) -> Parsed {
        Parsed::Drop(e.into())
    }
}

/// Finds the headers and the flow key; anything that is not TCP or UDP over
/// IP goes to the slow path or is dropped with its reason.
#[inline]
fn parse(frame: &[u8]) -> Result<Headers, Parsed> {
    match parse_plain_ipv4(frame) {
        Some(plain) => Ok(plain.headers()),
        None => parse_general(frame),
    }
}

/// Every case [`parse`] handles, one header at a time.
#[inline]
fn parse_general(frame: &[u8]) -> Result<Headers, Parsed> {
    let l2 = parse_l2(frame)?;
    let l3 = l2.l3_offset;
    let ip = frame.get(l3..).ok_or(Parsed::Drop(DropReason::Truncated))?;
    let (v4, src, dst, protocol, ttl, l4) = match l2.ethertype {
        EtherType::IPV4 => {
            let ip = Ipv4Packet::new_checked(ip)?;
            if ip.is_fragment() {
                return Err(Parsed::Drop(DropReason::Fragment));
            }
            let l4 = (l3 + ip.header_len(), l3 + usize::from(ip.total_len()));
            (true, Addr::from(ip.src_addr()), Addr::from(ip.dst_addr()), ip.protocol(), ip.ttl(), l4)
        }
        EtherType::IPV6 => {
            let ip = Ipv6Packet::new_checked(ip)?;
            let next = ip.next_header();
            if next == IpProtocol::ICMPV6 {
                // Neighbour discovery and pings: the slow path's business.
                return Err(Parsed::SlowPath);
            }
            if crate::wire::is_extension_header(next) {
                return Err(Parsed::Drop(DropReason::Ipv6Extension));
            }
            let l4 = (l3 + 40, l3 + 40 + usize::from(ip.payload_len()));
            (false, Addr::from(ip.src_addr()), Addr::from(ip.dst_addr()), next, ip.hop_limit(), l4)
        }
        EtherType::ARP => return Err(Parsed::SlowPath),
        _ => return Err(Parsed::Drop(DropReason::Unsupported)),
    };
    let transport = frame.get(l4.0..l4.1).ok_or(Parsed::Drop(DropReason::BadLength))?;
    let (src_port, dst_port, tcp_flags) = match protocol {
        IpProtocol::TCP => {
            let tcp = TcpPacket::new_checked(transport)?;
            (tcp.src_port(), tcp.dst_port(), tcp.flags())
        }
        IpProtocol::UDP => {
            let udp = UdpPacket::new_checked(transport)?;
            (udp.src_port(), udp.dst_port(), 0)
        }
        IpProtocol::SCTP => {
            let sctp = SctpPacket::new_checked(transport)?;
            (sctp.src_port(), sctp.dst_port(), 0)
        }
        IpProtocol::ICMP => return Err(Parsed::SlowPath),
        _ => return Err(Parsed::Drop(DropReason::Unsupported)),
    };
    let key = FlowKey { src, dst, src_port, dst_port, proto: protocol };
    Ok(Headers { l3, v4, ttl, key, tcp_flags, plain: None })
}

/// The common case at fixed offsets: an untagged Ethernet frame with an
/// IPv4 header without options, not a fragment, carrying TCP or UDP. It
/// accepts only what the general path of [`parse`] accepts, with the same
/// result; anything else (VLAN tags, options, IPv6, errors of any kind)
/// gets `None` and goes the general way, which also says why it drops.
#[inline(always)]
fn parse_plain_ipv4(frame: &[u8]) -> Option<PlainIpv4> {
    // Ethernet (14) + IPv4 (20) + the first 8 bytes of TCP or UDP.
    let h: &[u8; 42] = frame.first_chunk()?;
    if h[12..14] != [0x08, 0x00] || h[14] != 0x45 {
        return None;
    }
    let total_len = usize::from(u16::from_be_bytes([h[16], h[17]]));
    let fragment = u16::from_be_bytes([h[20], h[21]]) & 0x3fff != 0;
    if fragment || total_len < 20 || 14 + total_len > frame.len() {
        return None;
    }
    let transport_len = total_len - 20;
    match h[23] {
        IpProtocol::TCP => {
            let data_offset = *frame.get(46)?;
            let header_len = usize::from(data_offset >> 4) * 4;
            if transport_len < 20 || header_len < 20 || header_len > transport_len {
                return None;
            }
        }
        IpProtocol::UDP => {
            let length = usize::from(u16::from_be_bytes([h[38], h[39]]));
            if length < 8 || length > transport_len {
                return None;
            }
        }
        _ => return None,
    }
    read_plain_ipv4(frame)
}

/// What the established path reads of a frame [`parse_plain_ipv4`] has
/// accepted, read without checking again. On other bytes it reads garbage,
/// or gives `None` if the frame is too short; it never panics.
#[inline(always)]
fn read_plain_ipv4(frame: &[u8]) -> Option<PlainIpv4> {
    let h: &[u8; 42] = frame.first_chunk()?;
    let protocol = h[23];
    let tcp_flags = if protocol == IpProtocol::TCP { *frame.get(47)? } else { 0 };
    let addresses = h[26..34].try_into().ok()?;
    let ports = h[34..38].try_into().ok()?;
    Some(PlainIpv4 { key: Ipv4FlowKey::from_wire(addresses, ports, protocol), ttl: h[22], tcp_flags })
}

/// The source MAC of a frame (the client's or its router's).
#[inline]
fn client_mac(frame: &[u8]) -> crate::wire::MacAddr {
    let mut mac = [0u8; 6];
    if let Some(src) = frame.get(6..12) {
        mac.copy_from_slice(src);
    }
    crate::wire::MacAddr(mac)
}

/// Writes the action's addresses, ports and MACs into the frame, with
/// incremental checksum updates, and decrements the TTL / hop limit as a
/// router does (the caller has checked it is above 1). The headers were
/// validated by [`parse`], so the views are built unchecked; returns false
/// only if the transport header is not where they said.
///
/// The address change is summed once ([`Delta`]) and applied to both the
/// IPv4 header checksum and the TCP/UDP one, whose pseudo-header covers the
/// same addresses.
#[inline]
fn rewrite(frame: &mut [u8], h: &Headers, a: &NatAction) -> bool {
    // The views below are built over fixed-size arrays: once inlined, every
    // field offset is checked against a constant length at compile time,
    // and one length check per header is left at run time.
    let (l2, rest) = frame.split_at_mut(h.l3);
    let Some(macs) = l2.first_chunk_mut::<12>() else { return false };
    macs[0..6].copy_from_slice(&a.dst_mac.0);
    macs[6..12].copy_from_slice(&a.src_mac.0);

    let key = &h.key;
    let (addresses, transport) = if h.v4 {
        let (old_src, new_src) = (key.src.v4(), a.src.v4());
        let (old_dst, new_dst) = (key.dst.v4(), a.dst.v4());
        let addresses = Delta::default().u32(old_src, new_src).u32(old_dst, new_dst);
        let Some(header) = rest.first_chunk_mut::<20>() else { return false };
        let mut ip = Ipv4Packet::new_unchecked(&mut header[..]);
        let ttl = ip.ttl();
        let protocol = ip.protocol();
        let l4_range = (ip.header_len(), usize::from(ip.total_len()));
        let check = addresses
            .u16(u16::from_be_bytes([ttl, protocol]), u16::from_be_bytes([ttl.wrapping_sub(1), protocol]))
            .apply(ip.checksum());
        ip.set_ttl(ttl.wrapping_sub(1));
        ip.set_src_addr(Ipv4Addr::from(new_src));
        ip.set_dst_addr(Ipv4Addr::from(new_dst));
        ip.set_checksum(check);
        (addresses, l4_range)
    } else {
        let addresses = Delta::default().bytes16(&key.src.0, &a.src.0).bytes16(&key.dst.0, &a.dst.0);
        let Some(header) = rest.first_chunk_mut::<40>() else { return false };
        let mut ip = Ipv6Packet::new_unchecked(&mut header[..]);
        ip.set_hop_limit(ip.hop_limit().wrapping_sub(1));
        ip.set_src_addr(Ipv6Addr::from(a.src.0));
        ip.set_dst_addr(Ipv6Addr::from(a.dst.0));
        (addresses, (40, 40 + usize::from(ip.payload_len())))
    };
    // TCP, UDP and SCTP all start with the two ports: one 32-bit field.
    let ports = |src: u16, dst: u16| u32::from(src) << 16 | u32::from(dst);
    let l4_delta = addresses.u32(ports(key.src_port, key.dst_port), ports(a.src_port, a.dst_port));
    let Some(l4) = rest.get_mut(transport.0..transport.1) else { return false };
    match key.proto {
        IpProtocol::TCP => {
            let Some(header) = l4.first_chunk_mut::<20>() else { return false };
            let mut tcp = TcpPacket::new_unchecked(&mut header[..]);
            let check = l4_delta.apply(tcp.checksum());
            tcp.set_src_port(a.src_port);
            tcp.set_dst_port(a.dst_port);
            tcp.set_checksum(check);
        }
        IpProtocol::UDP => {
            let Some(header) = l4.first_chunk_mut::<8>() else { return false };
            let mut udp = UdpPacket::new_unchecked(&mut header[..]);
            let check = update_udp(udp.checksum(), |c| l4_delta.apply(c));
            udp.set_src_port(a.src_port);
            udp.set_dst_port(a.dst_port);
            udp.set_checksum(check);
        }
        IpProtocol::SCTP => {
            // SCTP's CRC32c covers no addresses, only the packet: recomputed
            // when the ports change.
            let mut sctp = SctpPacket::new_unchecked(l4);
            sctp.set_src_port(a.src_port);
            sctp.set_dst_port(a.dst_port);
            sctp.fill_checksum();
        }
        _ => {}
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::build::{FrameSpec, Transport};
    use std::net::IpAddr;

    fn frames() -> Vec<Vec<u8>> {
        let tcp = Transport::Tcp { src_port: 40_000, dst_port: 80, flags: TcpFlags::ACK, seq: 1, ack: 1 };
        let udp = Transport::Udp { src_port: 5353, dst_port: 53 };
        [tcp, udp]
            .into_iter()
            .filter_map(|transport| {
                FrameSpec {
                    src_mac: crate::wire::MacAddr([2, 0, 0, 0, 0, 1]),
                    dst_mac: crate::wire::MacAddr([2, 0, 0, 0, 0, 2]),
                    src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 50)),
                    dst: IpAddr::V4(Ipv4Addr::new(10, 96, 0, 10)),
                    ttl: 64,
                    transport,
                    payload: b"0123456789",
                }
                .build()
            })
            .collect()
    }

    #[test]
    fn the_fast_path_agrees_with_the_general_one_on_mangled_frames() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x = crate::hash::mix64(x);
            x
        };
        let (mut fast, mut total) = (0, 0);
        for template in frames() {
            assert!(parse_plain_ipv4(&template).is_some(), "a plain frame takes the fast path");
            for _ in 0..20_000 {
                let mut f = template.clone();
                // Mangle a few header bytes, sometimes cut the frame short.
                for _ in 0..1 + next() % 3 {
                    let at = (next() % 48) as usize;
                    f[at] = next() as u8;
                }
                if next() % 4 == 0 {
                    f.truncate((next() % f.len() as u64) as usize);
                }
                total += 1;
                if let Some(plain) = parse_plain_ipv4(&f) {
                    fast += 1;
                    let h = plain.headers();
                    assert_eq!(Ok(Headers { plain: None, ..h }), parse_general(&f), "frame {f:02x?}");
                }
            }
        }
        // Most single-byte changes hit addresses, ports and payload-ish
        // fields the fast path accepts; the rest fall back.
        assert!(fast > total / 4 && fast < total, "{fast} of {total} on the fast path");
    }
}
