//! The DPDK engine of `switchyard run`: the EAL, the ports, one pinned
//! worker thread per configured CPU, and the handles the control thread
//! keeps (snapshot publisher, counters, the slow-path and inject rings).
//!
//! It owns everything that knows DPDK types outside the packet path's own
//! `dpdk` module, so the control crates never import them. It must not read
//! the control side's config file, Kubernetes objects or admin state: the
//! binary hands it a [`DataplaneConfig`], the ports and the first tables.

#![deny(unsafe_code)]

mod config;
mod exported;

pub use config::{DataplaneConfig, PortSpec, TimeoutsConfig};
pub use exported::{describe, summary_json};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use crossbeam::queue::ArrayQueue;

use dataplane::dpdk::{self, Eal, Mbuf, Mempool, Port};
use dataplane::flow::Placement;
use dataplane::lcore::{handoff_rings, HandoffRings, InjectRing, SlowPacket, SlowPathRing, Worker};
use dataplane::pipeline::PipelineConfig;
use dataplane::port::{BufPool, PacketBuf};
use dataplane::stats::CoreStats;
use dataplane::tables::{Addr, NextHop};
use dataplane::tables::{Snapshot, SnapshotPublisher};
use dataplane::wire::MacAddr;
use tracing::{error, info, warn};

use slowpath::SlowPath;

/// Slots in the ring from the cores to the slow path.
const SLOW_PATH_RING: usize = 4096;
/// Slots in each core's inbound handoff ring.
const HANDOFF_RING: usize = 4096;
/// Slots in the ring from the slow path back to the cores.
const INJECT_RING: usize = 1024;
/// `SOCKET_ID_ANY`: let DPDK place the pool.
const ANY_SOCKET: i32 = -1;

/// A running dataplane: the EAL, the ports and the pinned workers.
pub struct Engine {
    // Dropped last: the EAL outlives the ports and the workers.
    eal: Option<Eal>,
    ports: Vec<Port>,
    pub macs: Vec<MacAddr>,
    pub publisher: SnapshotPublisher,
    pub stats: CoreStats,
    pool: Mempool,
    slow_path: SlowPathRing<Mbuf>,
    handoff: HandoffRings<Mbuf>,
    inject: InjectRing<Mbuf>,
    responder: SlowPath,
    /// Neighbours the slow path learned, for the next snapshot.
    pub learned: HashMap<Addr, NextHop>,
    last_resolve: Instant,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

impl Engine {
    /// Starts DPDK, opens `ports` (in port-id order) and starts the workers
    /// on the tables `tables` builds from the ports' MACs.
    pub fn start(
        d: &DataplaneConfig,
        ports: &[PortSpec],
        tables: impl FnOnce(&[MacAddr]) -> Result<Snapshot>,
    ) -> Result<Engine> {
        let cpus: Vec<usize> = core_affinity::get_core_ids().unwrap_or_default().iter().map(|c| c.id).collect();
        for cpu in &d.workers {
            if !cpus.contains(cpu) {
                bail!("dataplane.workers names CPU {cpu}, but this process may run on CPUs {cpus:?}");
            }
        }
        let eal = Eal::init(&d.eal_args).context("starting DPDK's EAL (see dataplane.eal_args)")?;
        let workers = d.workers.len();
        let pool = Mempool::new("switchyard_rx", d.mbufs, ANY_SOCKET).context("creating the packet pool")?;
        let specs = ports;
        let mut ports = Vec::new();
        for p in specs {
            let port =
                Port::open(&p.name, workers as u16, &pool).with_context(|| format!("opening port {:?}", p.name))?;
            info!(port = %p.name, id = port.id, mac = %port.mac, queues = workers, "port started");
            ports.push(port);
        }
        let macs: Vec<MacAddr> = ports.iter().map(|p| p.mac).collect();
        let snapshot = tables(&macs)?;
        info!(services = snapshot.services.len(), "tables compiled");
        let (publisher, readers) = SnapshotPublisher::new(snapshot, workers);
        let stats = CoreStats::new(workers);
        let slow_path: SlowPathRing<Mbuf> = Arc::new(ArrayQueue::new(SLOW_PATH_RING));
        let handoff: HandoffRings<Mbuf> = handoff_rings(workers, HANDOFF_RING);
        let inject: InjectRing<Mbuf> = Arc::new(ArrayQueue::new(INJECT_RING));
        let mut responder = SlowPath::new();
        responder.update_tables(&publisher.current());
        let on_link =
            specs.iter().enumerate().filter_map(|(i, p)| p.ipv4_subnet.map(|(net, len)| (i as u16, net, len)));
        responder.set_on_link(on_link.collect());
        let on_link_v6 =
            specs.iter().enumerate().filter_map(|(i, p)| p.ipv6_subnet.map(|(net, len)| (i as u16, net, len)));
        responder.set_on_link_v6(on_link_v6.collect());
        let stop = Arc::new(AtomicBool::new(false));

        let mut handles = Vec::new();
        for (core, reader) in readers.into_iter().enumerate() {
            let mut pipeline = PipelineConfig {
                core,
                cores: workers,
                flow_capacity: d.flow_capacity,
                flow_memory: Placement::Heap,
                source_ports: (d.source_ports[0], d.source_ports[1]),
                clock_epoch: 0,
                timeouts: d.timeouts.resolve(),
            };
            let queues: Vec<_> = ports.iter().map(|p| p.queue(core as u16)).collect();
            let (stats, slow_path, handoff, stop) = (stats.clone(), slow_path.clone(), handoff.clone(), stop.clone());
            let inject = inject.clone();
            let cpu = d.workers[core];
            let handle = thread::Builder::new().name(format!("worker-{core}")).spawn(move || {
                if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
                    error!(core, cpu, "could not pin the worker; it runs unpinned");
                }
                if let Err(e) = dpdk::register_thread() {
                    warn!(core, "not registered with the EAL ({e}); mbuf allocation runs without a per-core cache");
                }
                // The flow table in DPDK's memory (hugepages, unless the EAL
                // runs with --no-huge), on this core's socket, touched first
                // by this core.
                pipeline.flow_memory = Placement::Dpdk { socket: dpdk::current_socket() };
                // The worker's clock starts now (Worker::new).
                pipeline.clock_epoch =
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
                let worker = Worker::new(&pipeline, queues, reader, stats, slow_path, handoff, inject);
                info!(core, cpu, flow_table = worker.pipeline().flows().placement(), "worker polling");
                worker.run(&stop);
                dpdk::unregister_thread();
            })?;
            handles.push(handle);
        }
        Ok(Engine {
            eal: Some(eal),
            ports,
            macs,
            publisher,
            stats,
            pool,
            slow_path,
            handoff,
            inject,
            responder,
            learned: HashMap::new(),
            last_resolve: Instant::now(),
            stop,
            workers: handles,
        })
    }

    /// The control loop's periodic work: free old snapshots, export counters.
    pub fn tick(&mut self) {
        self.publisher.reclaim();
        self.responder.expire(Instant::now());
        exported::slow_path(&self.responder.counters, self.learned.len());
        exported::cores(&self.stats);
        metrics::gauge!("switchyard_published_generation").set(self.publisher.current().generation as f64);
    }

    pub fn publish(&mut self, snapshot: Snapshot) -> u64 {
        self.responder.update_tables(&snapshot);
        // What the cores now forward, whatever the source of the Services
        // (the config file, the API, the manifests directory).
        let backends: usize = snapshot.services.values().map(|s| s.backends.len()).sum();
        metrics::gauge!("switchyard_service_keys").set(snapshot.services.len() as f64);
        metrics::gauge!("switchyard_service_backends").set(backends as f64);
        self.publisher.publish(snapshot)
    }

    /// Serves what the cores handed to the slow path: answers go back
    /// through the inject ring. Returns whether the learned neighbours
    /// changed (the caller publishes them).
    pub fn slow_path_round(&mut self) -> bool {
        let now = Instant::now();
        let mut replies = Vec::new();
        for _ in 0..256 {
            let Some(p) = self.slow_path.pop() else { break };
            self.responder.handle(p.port, p.buf.data(), now, &mut replies);
        }
        if now.duration_since(self.last_resolve) >= Duration::from_millis(250) {
            self.responder.resolve(now, &mut replies);
            self.last_resolve = now;
        }
        for (port, frame) in replies {
            // A full ring or an empty pool drops the reply; the asker retries.
            if let Some(buf) = self.pool.alloc_from(&frame) {
                let _ = self.inject.push(SlowPacket { port, buf });
            }
        }
        match self.responder.take_changes() {
            Some(learned) => {
                self.learned = learned;
                true
            }
            None => false,
        }
    }

    /// Stops the workers and the ports; returns the final counters as JSON.
    pub fn stop(mut self) -> serde_json::Value {
        self.stop.store(true, Ordering::SeqCst);
        for h in self.workers.drain(..) {
            if h.join().is_err() {
                error!("a worker thread panicked");
            }
        }
        while self.slow_path.pop().is_some() {}
        while self.inject.pop().is_some() {}
        for ring in self.handoff.iter() {
            while ring.pop().is_some() {}
        }
        for p in &self.ports {
            let s = p.stats();
            info!(port = %p.name, rx = s.rx_packets, tx = s.tx_packets, missed = s.rx_missed, no_mbuf = s.rx_no_mbuf, "port stopped");
            p.close();
        }
        let summary = summary_json(&self.stats.total(), self.publisher.current().generation);
        drop(self.eal.take());
        summary
    }
}
