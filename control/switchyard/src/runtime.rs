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

use agent::events::{AgentEvent, EventSink, EventType, InvolvedObject, LogEvents};
use agent::AgentState;
use engine::Engine;
use k8s_openapi::api::core::v1::NodeStatus;
use node::{NodeStatusSource, ReadyInputs};
use services::catalog::ServiceCatalog;
use services::compile::NodeIdentity;
use services::sync::{self as table_sync, CompiledTables};
use services::ServiceSelection;

use crate::admin::{self, pod_views::NodeView, AdminState};
use crate::config::Config;
use crate::forwarding::Forwarding;
use crate::metrics_export;
use crate::standalone_source;

pub fn run(path: &Path) -> Result<()> {
    let config = Config::load(path)?;
    let mut dataplane = match &config.dataplane {
        Some(d) => Some(Engine::start(d, &config.port_specs(), |macs| config.snapshot(macs))?),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let result = runtime.block_on(control_loop(path, config, dataplane.as_mut()));
    if let Some(d) = dataplane {
        println!("{}", d.stop());
    }
    result
}

/// How often the node's status is recomputed (kubelet: 10 s).
const NODE_STATUS_PERIOD: Duration = Duration::from_secs(10);

async fn control_loop(path: &Path, config: Config, mut dataplane: Option<&mut Engine>) -> Result<()> {
    if let Some(listen) = config.metrics.listen.0 {
        metrics_export::install(listen)?;
        info!(%listen, "metrics endpoint up");
    }
    let agent_state = config.agent.as_ref().map(|_| Arc::new(AgentState::default()));
    let admin = Arc::new(AdminState {
        agent: agent_state.clone(),
        stats: dataplane.as_ref().map(|d| d.stats.clone()),
        ..AdminState::default()
    });
    if let Some(listen) = config.admin.listen.0 {
        admin::serve(listen, admin.clone()).await?;
    }

    let (shutdown, shutdown_rx) = watch::channel(false);
    // The node's status as the control loop last computed it, for the Node
    // writer.
    let (node_statuses, node_status_rx) = watch::channel::<Option<NodeStatus>>(None);
    let (pod_sources, pod_updates) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    let client = match &config.cluster {
        Some(c) => Some(cluster::client(c).await?),
        None => None,
    };
    if let (Some(cluster_config), Some(client)) = (&config.cluster, &client) {
        info!("Kubernetes API client ready");
        if let (Some(a), Some(state)) = (&config.agent, &agent_state) {
            let node_name = a.node_name();
            let sync = cluster::node::NodeSync::new(
                client.clone(),
                &node_name,
                a.node_ip.map(|ip| ip.to_string()),
                cluster_config.node_labels.clone(),
            );
            tasks.push(tokio::spawn(cluster::node::run(sync, node_status_rx.clone(), shutdown_rx.clone())));
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

    // Services from the API (or, standalone, from the manifests) compile into
    // tables in their own task; the loop below publishes what it hands over.
    let (catalog_events, catalog_rx) = tokio::sync::mpsc::unbounded_channel();
    let (compiled_tx, mut compiled) = watch::channel::<Option<Arc<CompiledTables>>>(None);
    let standalone_dir = config.agent.as_ref().and_then(|a| a.manifests.clone()).filter(|_| client.is_none());
    if let Some(d) = &config.dataplane {
        if client.is_some() || standalone_dir.is_some() {
            let catalog = ServiceCatalog::new(node_identity(&config), d.max_ring_size);
            let proxy_name = config.cluster.as_ref().and_then(|c| c.service_proxy_name.clone());
            let selection = ServiceSelection { proxy_name };
            tasks.push(tokio::spawn(table_sync::run(catalog, selection, catalog_rx, compiled_tx)));
        }
        if let Some(client) = &client {
            let watchers = cluster::services::run(client.clone(), catalog_events.clone(), shutdown_rx.clone());
            tasks.push(tokio::spawn(watchers));
        } else if let (Some(dir), Some(agent)) = (standalone_dir, &agent_state) {
            info!(dir = %dir.display(), "standalone mode: Services from the manifests, endpoints from local pods");
            let source = standalone_source::run(dir, agent.clone(), catalog_events.clone(), shutdown_rx.clone());
            tasks.push(tokio::spawn(source));
        }
    }
    drop(catalog_events);
    // The agent's Events: to the API server (aggregated, rate-limited), or
    // to the log in standalone mode.
    let events: Arc<dyn EventSink> = match (&client, &config.agent) {
        (Some(client), Some(a)) => {
            let (sink, writer) = cluster::events::channel(client.clone(), a.node_name(), shutdown_rx.clone());
            tasks.push(tokio::spawn(writer));
            Arc::new(sink)
        }
        _ => Arc::new(LogEvents),
    };
    let agent_task = match (&config.agent, &agent_state) {
        (Some(a), Some(state)) => {
            // ConfigMaps, Secrets and tokens for pod volumes and env: from
            // the API server (through a client of their own, so that pod
            // workers' reads and the watches do not share connections), or
            // none in standalone mode.
            let objects: Arc<dyn agent::volumes::ClusterObjects> = match &config.cluster {
                Some(c) if client.is_some() => Arc::new(cluster::objects::ApiObjects::new(cluster::client(c).await?)),
                _ => Arc::new(agent::volumes::NoCluster),
            };
            events.emit(node_event(&a.node_name(), EventType::Normal, "Starting", "Starting switchyard's node agent."));
            let agent = agent::run(
                a.clone(),
                state.clone(),
                objects,
                events.clone(),
                pod_updates,
                api_sources,
                shutdown_rx.clone(),
            );
            Some(tokio::spawn(agent))
        }
        _ => None,
    };
    let mut node_status = config.agent.as_ref().map(|a| {
        let nodefs = if a.root.exists() { a.root.clone() } else { "/".into() };
        let source = NodeStatusSource::new(config.node.clone(), nodefs, "").with_kubelet_version(node::KUBELET_VERSION);
        (a.node_name(), source)
    });

    let mut was_ready: Option<bool> = None;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    // The slow path answers ARP and pings: a few milliseconds, not a tick.
    let mut slow_tick = tokio::time::interval(Duration::from_millis(2));
    slow_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
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
    // From here on, what the cores forward is built from the config this
    // holds: the one read at start, or the last valid one a SIGHUP read.
    let mut forwarding = Forwarding::new(config);
    // Tests wait for this line before they send signals.
    info!("control loop running");

    loop {
        tokio::select! {
            _ = interrupt.recv() => { info!("SIGINT: stopping"); break; }
            _ = terminate.recv() => { info!("SIGTERM: stopping"); break; }
            _ = &mut until_deadline => { info!("run_seconds elapsed: stopping"); break; }
            _ = hangup.recv() => {
                if let Some(d) = dataplane.as_deref_mut() {
                    forwarding.reload(path, d);
                }
            }
            _ = slow_tick.tick(), if dataplane.is_some() => {
                if let Some(d) = dataplane.as_deref_mut() {
                    if d.slow_path_round() {
                        forwarding.republish(d);
                    }
                }
            }
            Ok(()) = compiled.changed() => {
                let tables = compiled.borrow_and_update().clone();
                if let (Some(tables), Some(d)) = (tables, dataplane.as_deref_mut()) {
                    forwarding.publish_services(d, tables);
                }
            }
            scheduled = tick.tick() => {
                // How late the control loop runs a tick it was due to run:
                // anything that blocks the thread shows here first.
                let lag = scheduled.elapsed().as_secs_f64();
                metrics::gauge!("switchyard_control_loop_lag_seconds").set(lag);
                metrics::histogram!("switchyard_control_loop_lag_seconds_hist").record(lag);
                if let Some(d) = dataplane.as_deref_mut() {
                    d.tick();
                    if let Ok(mut s) = admin.snapshot.write() {
                        *s = Some(d.publisher.current());
                    }
                }
            }
            _ = node_tick.tick() => {
                if let (Some((name, source)), Some(state)) = (node_status.as_mut(), &agent_state) {
                    let view = node_view(name, source, state, dataplane.is_some());
                    let ready = view.status.as_ref().and_then(|s| {
                        s.conditions.iter().flatten().find(|c| c.type_ == "Ready").map(|c| c.status == "True")
                    });
                    if ready.is_some() && ready != was_ready {
                        let (reason, message) = match ready {
                            Some(true) => ("NodeReady", format!("Node {name} status is now: NodeReady")),
                            _ => ("NodeNotReady", format!("Node {name} status is now: NodeNotReady")),
                        };
                        events.emit(node_event(name, EventType::Normal, reason, &message));
                        was_ready = ready;
                    }
                    node_statuses.send_replace(view.status.clone());
                    if let Ok(mut n) = admin.node.write() {
                        *n = view;
                    }
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

/// An event about the node (kind Node, named and identified by its name, as
/// the kubelet's).
fn node_event(name: &str, type_: EventType, reason: &'static str, message: &str) -> AgentEvent {
    let object = InvolvedObject { kind: "Node", namespace: String::new(), name: name.into(), uid: name.into() };
    AgentEvent { object, type_, reason, message: message.into() }
}

/// Recomputes the node's status (for the Node writer and the CLI) and
/// exports it as metrics.
fn node_view(name: &str, source: &mut NodeStatusSource, agent: &AgentState, dataplane: bool) -> NodeView {
    let runtime = agent.runtime.read().map(|r| r.clone()).unwrap_or_default();
    let health = runtime.health.clone().unwrap_or_default();
    if let Some(version) = &runtime.version {
        source.set_container_runtime_version(version);
    }
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
    let report = source.report(&inputs, node::now());
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
    if let Ok(pods) = agent.pods.read() {
        metrics_export::export_node(view.status.as_ref(), pods.values());
    }
    view
}

/// The node as the Service compiler sees it: its name and the addresses
/// NodePorts listen on (the dataplane ports' and the node's own).
fn node_identity(config: &Config) -> NodeIdentity {
    let mut addresses: Vec<std::net::IpAddr> = Vec::new();
    for p in &config.ports {
        addresses.extend(p.ipv4.map(std::net::IpAddr::V4));
        addresses.extend(p.ipv6.map(std::net::IpAddr::V6));
    }
    if let Some(ip) = config.agent.as_ref().and_then(|a| a.node_ip) {
        if !addresses.contains(&ip) {
            addresses.push(ip);
        }
    }
    let name = config.agent.as_ref().map(|a| a.node_name()).unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
    });
    NodeIdentity { name, addresses }
}
