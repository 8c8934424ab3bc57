//! The pod manager: merges the pod sources (static manifests; the API server
//! later) into one desired set, runs one worker per pod, and removes what
//! the runtime has of pods nobody wants any more (also after a restart of
//! the agent: what it finds and still wants, its workers adopt).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::cri::{CriClient, CriError};
use super::endpoint_sync::EndpointSync;
use super::pod::DesiredPod;
use super::runtime_spec::{labels, NodeContext};
use super::worker::{self, PodStore, WorkerMessage, WorkerSettings};

struct WorkerHandle {
    pod: DesiredPod,
    inbox: mpsc::UnboundedSender<WorkerMessage>,
    task: JoinHandle<()>,
}

pub struct PodManager {
    cri: CriClient,
    node: Arc<NodeContext>,
    settings: WorkerSettings,
    store: PodStore,
    endpoint_sync: Arc<EndpointSync>,
    /// Desired pods by source name, then UID.
    sources: BTreeMap<&'static str, BTreeMap<String, DesiredPod>>,
    workers: HashMap<String, WorkerHandle>,
    /// Workers tearing their pod down.
    terminating: HashMap<String, JoinHandle<()>>,
    /// The state of every managed container at the last relist, by
    /// container id: (pod UID, CRI container state).
    relisted: HashMap<String, (String, i32)>,
}

impl PodManager {
    pub fn new(
        cri: CriClient,
        node: Arc<NodeContext>,
        settings: WorkerSettings,
        store: PodStore,
        endpoint_sync: Arc<EndpointSync>,
    ) -> PodManager {
        PodManager {
            cri,
            node,
            settings,
            store,
            endpoint_sync,
            sources: BTreeMap::new(),
            workers: HashMap::new(),
            terminating: HashMap::new(),
            relisted: HashMap::new(),
        }
    }

    /// One look at every managed container (a single ListContainers call,
    /// as kubelet's PLEG relists): the worker of each pod whose containers
    /// started, exited or went away syncs at once instead of at its next
    /// period, so a dead container leaves the Service's endpoints within a
    /// relist period plus one sync.
    pub async fn relist(&mut self) -> Result<(), CriError> {
        let managed = HashMap::from([(labels::MANAGED.to_string(), "true".to_string())]);
        let now: HashMap<String, (String, i32)> = self
            .cri
            .list_containers(managed)
            .await?
            .into_iter()
            .map(|c| {
                let uid = c.labels.get(labels::POD_UID).cloned().unwrap_or_default();
                (c.id, (uid, c.state))
            })
            .collect();
        // The first relist finds every container new and wakes every
        // worker once: harmless, and no special case (an empty last list
        // is also what a node without pods has).
        let mut changed: HashSet<&String> = HashSet::new();
        for (id, (uid, state)) in &now {
            if self.relisted.get(id).is_none_or(|(_, before)| before != state) {
                changed.insert(uid);
            }
        }
        for (id, (uid, _)) in &self.relisted {
            if !now.contains_key(id) {
                changed.insert(uid);
            }
        }
        for uid in changed {
            if let Some(w) = self.workers.get(uid) {
                let _ = w.inbox.send(WorkerMessage::Wake);
            }
        }
        self.relisted = now;
        Ok(())
    }

    /// Replaces everything `source` wants with `pods`.
    pub fn set_source(&mut self, source: &'static str, pods: Vec<DesiredPod>) {
        self.sources.insert(source, pods.into_iter().map(|p| (p.uid.clone(), p)).collect());
        self.reconcile();
    }

    fn reconcile(&mut self) {
        let mut desired: BTreeMap<String, DesiredPod> = BTreeMap::new();
        for pods in self.sources.values() {
            for (uid, pod) in pods {
                desired.entry(uid.clone()).or_insert_with(|| pod.clone());
            }
        }
        let gone: Vec<String> = self.workers.keys().filter(|uid| !desired.contains_key(*uid)).cloned().collect();
        for uid in gone {
            if let Some(w) = self.workers.remove(&uid) {
                info!(pod = %w.pod.full_name(), "pod no longer wanted: terminating");
                let _ = w.inbox.send(WorkerMessage::Terminate);
                self.terminating.insert(uid, w.task);
            }
        }
        for (uid, pod) in desired {
            match self.workers.get_mut(&uid) {
                Some(w) if w.pod.pod != pod.pod => {
                    let _ = w.inbox.send(WorkerMessage::Update(Box::new(pod.clone())));
                    w.pod = pod;
                }
                Some(_) => {}
                None => {
                    // A pod re-added while its old worker still tears down
                    // waits for the next reconcile.
                    if self.terminating.get(&uid).is_some_and(|t| !t.is_finished()) {
                        continue;
                    }
                    self.terminating.remove(&uid);
                    let (inbox, task) = worker::spawn(
                        pod.clone(),
                        self.cri.clone(),
                        self.node.clone(),
                        self.settings.clone(),
                        self.store.clone(),
                        self.endpoint_sync.clone(),
                    );
                    self.workers.insert(uid, WorkerHandle { pod, inbox, task });
                }
            }
        }
    }

    /// Housekeeping, every few seconds: forget finished teardowns, start
    /// pods that waited for them, and remove sandboxes of pods nobody wants.
    pub async fn tick(&mut self) -> Result<(), CriError> {
        self.terminating.retain(|_, t| !t.is_finished());
        self.reconcile();
        let managed = HashMap::from([(labels::MANAGED.to_string(), "true".to_string())]);
        let known: HashSet<&String> = self.workers.keys().chain(self.terminating.keys()).collect();
        for s in self.cri.list_pod_sandboxes(managed).await? {
            let uid = s.labels.get(labels::POD_UID).cloned().unwrap_or_default();
            if known.contains(&uid) {
                continue;
            }
            let name = s.metadata.as_ref().map(|m| format!("{}/{}", m.namespace, m.name)).unwrap_or_default();
            info!(pod = %name, uid = %uid, sandbox = %s.id, "removing a sandbox no pod wants");
            let containers =
                self.cri.list_containers(HashMap::from([(labels::POD_UID.to_string(), uid.clone())])).await?;
            for c in containers.iter().filter(|c| c.pod_sandbox_id == s.id) {
                if let Err(e) = self.cri.stop_container(&c.id, std::time::Duration::from_secs(10)).await {
                    warn!("stopping container {}: {e}", c.id);
                }
            }
            self.cri.stop_pod_sandbox(&s.id).await?;
            self.cri.remove_pod_sandbox(&s.id).await?;
        }
        Ok(())
    }
}
