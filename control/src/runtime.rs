//! `switchyard run`: start the EAL and the ports, pin one worker per
//! configured core, and run the control loop on this thread until a signal
//! (or `run_seconds`) says stop.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use crossbeam::queue::ArrayQueue;
use dataplane::lcore::{handoff_rings, HandoffRings, SlowPathRing, Worker};
use dataplane::pipeline::{PipelineConfig, Timeouts};
use dataplane::port::dpdk::{self, Eal, Mbuf, Mempool, Port};
use dataplane::stats::CoreStats;
use dataplane::tables::SnapshotPublisher;
use dataplane::wire::MacAddr;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

use crate::config::Config;
use crate::metrics_export;
use crate::tables::snapshot_from_config;

/// Slots in the ring from the cores to the slow path.
const SLOW_PATH_RING: usize = 4096;
/// Slots in each core's inbound handoff ring.
const HANDOFF_RING: usize = 4096;
/// `SOCKET_ID_ANY`: let DPDK place the pool.
const ANY_SOCKET: i32 = -1;

pub fn run(path: &Path) -> Result<()> {
    let config = Config::load(path)?;
    let d = &config.dataplane;
    let cpus: Vec<usize> = core_affinity::get_core_ids().unwrap_or_default().iter().map(|c| c.id).collect();
    for cpu in &d.workers {
        if !cpus.contains(cpu) {
            bail!("dataplane.workers names CPU {cpu}, but this process may run on CPUs {cpus:?}");
        }
    }

    let eal = Eal::init(&d.eal_args).context("starting DPDK's EAL (see dataplane.eal_args)")?;
    let workers = d.workers.len();
    let pool = Mempool::new("switchyard_rx", d.mbufs, ANY_SOCKET).context("creating the packet pool")?;
    let mut ports = Vec::new();
    for p in &config.ports {
        let port = Port::open(&p.name, workers as u16, &pool).with_context(|| format!("opening port {:?}", p.name))?;
        info!(port = %p.name, id = port.id, mac = %port.mac, queues = workers, "port started");
        ports.push(port);
    }
    let macs: Vec<MacAddr> = ports.iter().map(|p| p.mac).collect();
    let snapshot = snapshot_from_config(&config, &macs)?;
    info!(services = snapshot.services.len(), "tables compiled");
    let (mut publisher, readers) = SnapshotPublisher::new(snapshot, workers);
    let stats = CoreStats::new(workers);
    let slow_path: SlowPathRing<Mbuf> = Arc::new(ArrayQueue::new(SLOW_PATH_RING));
    let handoff: HandoffRings<Mbuf> = handoff_rings(workers, HANDOFF_RING);
    let stop = Arc::new(AtomicBool::new(false));

    let timeouts = Timeouts {
        tcp_new: d.timeouts.tcp_new.unwrap_or(Timeouts::default().tcp_new),
        tcp_open: d.timeouts.tcp_open.unwrap_or(Timeouts::default().tcp_open),
        tcp_closing: d.timeouts.tcp_closing.unwrap_or(Timeouts::default().tcp_closing),
        udp: d.timeouts.udp.unwrap_or(Timeouts::default().udp),
    };
    let mut handles = Vec::new();
    for (core, reader) in readers.into_iter().enumerate() {
        let pipeline = PipelineConfig {
            core,
            cores: workers,
            flow_capacity: d.flow_capacity,
            source_ports: (d.source_ports[0], d.source_ports[1]),
            timeouts,
        };
        let queues: Vec<_> = ports.iter().map(|p| p.queue(core as u16)).collect();
        let (stats, slow_path, handoff, stop) = (stats.clone(), slow_path.clone(), handoff.clone(), stop.clone());
        let cpu = d.workers[core];
        let handle = thread::Builder::new().name(format!("worker-{core}")).spawn(move || {
            if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
                error!(core, cpu, "could not pin the worker; it runs unpinned");
            }
            if let Err(e) = dpdk::register_thread() {
                warn!(core, "not registered with the EAL ({e}); mbuf allocation runs without a per-core cache");
            }
            info!(core, cpu, "worker polling");
            Worker::new(&pipeline, queues, reader, stats, slow_path, handoff).run(&stop);
            dpdk::unregister_thread();
        })?;
        handles.push(handle);
    }

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let result = runtime.block_on(control_loop(path, &config, &macs, &mut publisher, &stats, &slow_path));

    stop.store(true, Ordering::SeqCst);
    for h in handles {
        if h.join().is_err() {
            error!("a worker thread panicked");
        }
    }
    while slow_path.pop().is_some() {}
    for ring in handoff.iter() {
        while ring.pop().is_some() {}
    }
    for p in &ports {
        let s = p.stats();
        info!(port = %p.name, rx = s.rx_packets, tx = s.tx_packets, missed = s.rx_missed, no_mbuf = s.rx_no_mbuf, "port stopped");
        p.close();
    }
    let summary = metrics_export::summary_json(&stats.total(), publisher.current().generation);
    println!("{summary}");
    drop(publisher);
    drop(eal);
    result
}

/// The control thread's loop: metrics, reclamation, the slow path, reloads
/// and signals.
async fn control_loop(
    path: &Path,
    config: &Config,
    macs: &[MacAddr],
    publisher: &mut SnapshotPublisher,
    stats: &CoreStats,
    slow_path: &SlowPathRing<Mbuf>,
) -> Result<()> {
    if !config.metrics.listen.is_empty() {
        metrics_export::install(&config.metrics.listen)?;
        info!(listen = %config.metrics.listen, "metrics endpoint up");
    }
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let deadline = match config.dataplane.run_seconds {
        0 => None,
        s => Some(tokio::time::Instant::now() + Duration::from_secs(s)),
    };
    let until_deadline = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(until_deadline);
    // Tests wait for this line before they send signals.
    info!("control loop running");

    loop {
        tokio::select! {
            _ = interrupt.recv() => { info!("SIGINT: stopping"); break; }
            _ = terminate.recv() => { info!("SIGTERM: stopping"); break; }
            _ = &mut until_deadline => { info!("run_seconds elapsed: stopping"); break; }
            _ = hangup.recv() => reload(path, macs, publisher),
            _ = tick.tick() => {
                publisher.reclaim();
                // The slow path (ARP, ICMP, the appliance's own addresses)
                // is not served yet: count and free what the cores hand over.
                while slow_path.pop().is_some() {}
                metrics_export::export(stats);
                metrics::gauge!("switchyard_published_generation").set(publisher.current().generation as f64);
            }
        }
    }
    Ok(())
}

/// SIGHUP: re-read the config's tables and publish them; a bad file keeps
/// the last good tables.
fn reload(path: &Path, macs: &[MacAddr], publisher: &mut SnapshotPublisher) {
    let next = Config::load(path).and_then(|c| snapshot_from_config(&c, macs));
    match next {
        Ok(snap) => {
            let services = snap.services.len();
            let generation = publisher.publish(snap);
            info!(generation, services, "tables reloaded");
        }
        Err(e) => error!("reload failed, keeping the current tables: {e:#}"),
    }
}
