//! Standalone mode's Service source: no API server. Services come from the
//! manifests directory (next to the static pods) and their endpoints from the
//! pods the agent runs, as the EndpointSlice controller would compute them;
//! the services crate compiles them like the API's.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use tokio::sync::{mpsc, watch};
use tracing::{error, info};

use agent::AgentState;
use services::standalone::{endpoint_slices, read_services_dir, LocalPod};
use services::sync::CatalogEvent;

/// How often the directory and the pods are looked at when nothing says a
/// pod changed (the agent's workers do say so: then at once).
const PERIOD: Duration = Duration::from_millis(250);

pub async fn run(
    dir: PathBuf,
    agent: Arc<AgentState>,
    events: mpsc::UnboundedSender<CatalogEvent>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last: Option<(Vec<Service>, Vec<EndpointSlice>)> = None;
    let mut reported: BTreeSet<String> = BTreeSet::new();
    let mut tick = tokio::time::interval(PERIOD);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {}
            _ = agent.endpoint_sync.pods_change() => {}
        }
        let (services, errors) = read_services_dir(&dir);
        let now: BTreeSet<String> = errors.iter().map(|(f, why)| format!("{}: {why}", f.display())).collect();
        for e in now.difference(&reported) {
            error!("standalone Service manifest {e}");
        }
        reported = now;
        let pods: Vec<LocalPod> = agent
            .pods
            .read()
            .map(|p| p.values().filter_map(|r| LocalPod::from_pod(&r.pod.pod, &r.status, r.terminating)).collect())
            .unwrap_or_default();
        let slices: Vec<EndpointSlice> = services.iter().flat_map(|s| endpoint_slices(s, &pods)).collect();
        if last.as_ref().is_none_or(|(s, e)| *s != services || *e != slices) {
            if last.as_ref().is_none_or(|(s, _)| s.len() != services.len()) {
                info!(services = services.len(), "standalone Services");
            }
            let sent = events.send(CatalogEvent::ServicesListed(services.clone()));
            let sent = sent.and_then(|_| events.send(CatalogEvent::SlicesListed(slices.clone())));
            if sent.is_err() {
                return;
            }
            last = Some((services, slices));
        }
        // Terminating pods wait for this before their containers are
        // stopped (agent::endpoint_sync).
        agent.endpoint_sync.round_done();
    }
}
