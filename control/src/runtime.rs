//! `switchyard run`: start what the config asks for — the dataplane (DPDK
//! ports and pinned workers) and/or the node agent — and run the control
//! loop on this thread until a signal (or `run_seconds`) says stop.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::admin::{self, pod_views::NodeView, AdminState};
use crate::agent::{self, AgentState};
use crate::cluster;
use crate::config::Config;
use crate::dataplane_runtime::RunningDataplane;
use crate::metrics_export;
use crate::node::{NodeStatusSource, ReadyInputs};
use crate::tables::snapshot_from_config;

pub fn run(path: &Path) -> Result<()> {
    let config = Config::load(path)?;
    let mut dataplane = match &config.dataplane {
        Some(d) => Some(RunningDataplane::start(&config, d)?),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let result = runtime.block_on(control_loop(path, &config, dataplane.as_mut()));
    if let Some(d) = dataplane {
        println!("{}", d.stop());
    }
    result
}

/// How often the node's status is recomputed (kubelet: 10 s).
const NODE_STATUS_PERIOD: Duration = Duration::from_secs(10);

async fn control_loop(path: &Path, config: &Config, mut dataplane: Option<&mut RunningDataplane>) -> Result<()> {
    if !config.metrics.listen.is_empty() {
        metrics_export::install(&config.metrics.listen)?;
        info!(listen = %config.metrics.listen, "metrics endpoint up");
    }
    let agent_state = config.agent.as_ref().map(|_| Arc::new(AgentState::default()));
    let admin = Arc::new(AdminState {
        agent: agent_state.clone(),
        stats: dataplane.as_ref().map(|d| d.stats.clone()),
        ..AdminState::default()
    });
    if !config.admin.listen.is_empty() {
        admin::serve(&config.admin.listen, admin.clone()).await?;
    }

    let (shutdown, shutdown_rx) = watch::channel(false);
    let (pod_sources, pod_updates) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    if let Some(cluster_config) = &config.cluster {
        let client = cluster::client(cluster_config).await?;
        info!("Kubernetes API client ready");
        if let (Some(a), Some(state)) = (&config.agent, &agent_state) {
            let node_name = a.node_name();
            let sync = cluster::node::NodeSync::new(
                client.clone(),
                &node_name,
                a.node_ip.map(|ip| ip.to_string()),
                cluster_config.node_labels.clone(),
            );
            tasks.push(tokio::spawn(cluster::node::run(sync, admin.clone(), shutdown_rx.clone())));
            tasks.push(tokio::spawn(cluster::lease::run(client.clone(), node_name.clone(), shutdown_rx.clone())));
            tasks.push(tokio::spawn(cluster::pods::run(
                client.clone(),
                node_name,
                state.clone(),
                pod_sources.clone(),
                shutdown_rx.clone(),
            )));
        }
    }
    let api_sources = usize::from(config.cluster.is_some());
    let agent_task = match (&config.agent, &agent_state) {
        (Some(a), Some(state)) => {
            Some(tokio::spawn(agent::run(a.clone(), state.clone(), pod_updates, api_sources, shutdown_rx.clone())))
        }
        _ => None,
    };
    let mut node_status = config.agent.as_ref().map(|a| {
        let nodefs = if a.root.exists() { a.root.clone() } else { "/".into() };
        (a.node_name(), NodeStatusSource::new(config.node.clone(), nodefs, ""))
    });

    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    // The first node status waits a moment for the agent's first look at
    // the runtime, so that Ready starts out right.
    let mut node_tick =
        tokio::time::interval_at(tokio::time::Instant::now() + Duration::from_millis(500), NODE_STATUS_PERIOD);
    let run_seconds = config.dataplane.as_ref().map_or(0, |d| d.run_seconds);
    let until_deadline = async {
        match run_seconds {
            0 => std::future::pending().await,
            s => tokio::time::sleep(Duration::from_secs(s)).await,
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
            _ = hangup.recv() => {
                if let Some(d) = dataplane.as_deref_mut() {
                    reload(path, d);
                }
            }
            _ = tick.tick() => {
                if let Some(d) = dataplane.as_deref_mut() {
                    d.tick();
                    if let Ok(mut s) = admin.snapshot.write() {
                        *s = Some(d.publisher.current());
                    }
                }
            }
            _ = node_tick.tick() => {
                if let (Some((name, source)), Some(state)) = (node_status.as_mut(), &agent_state) {
                    update_node_view(name, source, state, &admin, dataplane.is_some());
                }
            }
        }
    }
    let _ = shutdown.send(true);
    for task in tasks {
        let _ = task.await;
    }
    if let Some(task) = agent_task {
        match task.await {
            Ok(Err(e)) => error!("node agent: {e:#}"),
            Err(e) => error!("node agent task: {e}"),
            Ok(Ok(())) => {}
        }
    }
    Ok(())
}

/// Recomputes the node's status for the CLI (and, later, the API server).
fn update_node_view(
    name: &str,
    source: &mut NodeStatusSource,
    agent: &AgentState,
    admin: &AdminState,
    dataplane: bool,
) {
    let runtime = agent.runtime.read().map(|r| r.clone()).unwrap_or_default();
    let health = runtime.health.clone().unwrap_or_default();
    let inputs = ReadyInputs {
        runtime_ready: health.runtime_ready,
        runtime_message: runtime.error.clone().unwrap_or_else(|| health.message.clone()),
        network_ready: health.network_ready,
        network_message: health.message.clone(),
        // The dataplane runs in this process: if the control loop runs, so do
        // the workers (a panicked worker takes the process down).
        dataplane_healthy: true,
        dataplane_message: if dataplane { String::new() } else { "no dataplane configured".into() },
    };
    let report = source.report(&inputs, crate::node::now());
    let manifest_errors =
        agent.manifest_errors.read().map(|e| e.iter().map(|e| e.to_string()).collect()).unwrap_or_default();
    let view = NodeView {
        name: name.to_string(),
        status: match report {
            Ok(r) => Some(r.to_k8s_node_status()),
            Err(e) => {
                warn!("node status: {e}");
                None
            }
        },
        runtime_version: runtime.version,
        runtime_error: runtime.error,
        manifest_errors,
    };
    let pods: Vec<_> = agent
        .pods
        .read()
        .map(|p| p.values().map(crate::admin::pod_views::pod_view).collect())
        .unwrap_or_default();
    metrics_export::export_node(&view, &pods);
    if let Ok(mut n) = admin.node.write() {
        *n = view;
    }
}

/// SIGHUP: re-read the config's tables and publish them; a bad file keeps
/// the last good tables.
fn reload(path: &Path, dataplane: &mut RunningDataplane) {
    let next = Config::load(path).and_then(|c| snapshot_from_config(&c, &dataplane.macs));
    match next {
        Ok(snap) => {
            let services = snap.services.len();
            let generation = dataplane.publish(snap);
            info!(generation, services, "tables reloaded");
        }
        Err(e) => error!("reload failed, keeping the current tables: {e:#}"),
    }
}
