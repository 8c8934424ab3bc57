//! The pod worker: one task per pod, driving what the runtime has towards
//! what the pod asks for, and reporting the pod's status.
//!
//! Every sync starts from what the runtime says (containers are found by
//! their labels, so a restarted agent adopts what it made) and acts on the
//! difference: a sandbox, init containers in order, then the containers,
//! restarted under the pod's restartPolicy with CrashLoopBackOff. All state
//! the decisions need (attempt numbers, exit times) lives in the runtime; the
//! worker's own memory is only the probes and the last errors.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Container, PodStatus};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::backoff::BackoffPolicy;
use super::cri::{CriClient, CriError};
use super::endpoint_sync::EndpointSync;
use super::events::{AgentEvent, EventSink, EventType, InvolvedObject};
use super::observed::{nanos, Instance, Observed, Sandbox};
use super::pod::{DesiredPod, PodSource, RestartPolicy};
use super::probe::{self, ProbeState, ProbeTarget};
use super::runtime_spec::{container_config, labels, pod_field, sandbox_config, NodeContext};
use super::status::{pod_status, StatusInputs, Waiting};
use super::volumes::atomic;
use super::volumes::is_projected;
use super::volumes::projection::{project, resolve_env, TokenCache};
use super::volumes::ClusterObjects;

/// What the agent knows of a pod, for the CLI and the API.
#[derive(Clone, Debug)]
pub struct PodReport {
    pub uid: String,
    pub name: String,
    pub namespace: String,
    pub source: PodSource,
    pub status: PodStatus,
    pub sandbox_id: Option<String>,
    /// The last sync's error, if it failed.
    pub error: Option<String>,
    pub terminating: bool,
    /// The pod as desired: its labels and ports give Service endpoints, its
    /// spec the mirror pod.
    pub pod: DesiredPod,
}

impl PodReport {
    /// The pod's status in one word, as kubectl's STATUS column shows it: a
    /// container's waiting reason says more than "Running" or "Pending".
    pub fn display_status(&self) -> String {
        if self.terminating {
            return "Terminating".into();
        }
        let statuses = self.status.container_statuses.iter().flatten();
        let waiting_reason = statuses.filter_map(|s| s.state.as_ref()?.waiting.as_ref()?.reason.clone()).next();
        waiting_reason.unwrap_or_else(|| self.status.phase.clone().unwrap_or_else(|| "Pending".into()))
    }

    /// Restarts summed over the pod's containers.
    pub fn restarts(&self) -> i32 {
        self.status.container_statuses.iter().flatten().map(|s| s.restart_count).sum()
    }
}

/// Every pod's latest report, by UID.
pub type PodStore = Arc<RwLock<BTreeMap<String, PodReport>>>;

#[derive(Clone)]
pub struct WorkerSettings {
    pub sync_period: Duration,
    pub backoff: BackoffPolicy,
    /// ConfigMaps, Secrets and tokens for volumes and env.
    pub objects: Arc<dyn ClusterObjects>,
    /// Where the pod's Events go.
    pub events: Arc<dyn EventSink>,
}

/// How often a running pod's configMap, secret and downwardAPI volumes are
/// read again (a token is renewed at 80% of its lifetime, if sooner).
const VOLUME_REFRESH: Duration = Duration::from_secs(10);

/// The longest wait between syncs while they fail.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(10);

/// The longest a terminating pod waits for its endpoints to be withdrawn
/// before its containers are stopped (never longer than its grace period).
const MAX_WITHDRAW_WAIT: Duration = Duration::from_secs(2);

pub enum WorkerMessage {
    /// The pod changed (labels, or its spec).
    Update(Box<DesiredPod>),
    /// Remove the pod: stop its containers with the grace period, then its
    /// sandbox.
    Terminate,
    /// The runtime says one of the pod's containers changed state (the
    /// manager's relist): look now rather than at the next sync period.
    Wake,
}

/// A running container's probe task.
struct Probes {
    container_id: String,
    state: watch::Receiver<ProbeState>,
    task: Option<JoinHandle<()>>,
}

impl Drop for Probes {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

pub struct PodWorker {
    pod: DesiredPod,
    cri: CriClient,
    node: Arc<NodeContext>,
    settings: WorkerSettings,
    store: PodStore,
    endpoint_sync: Arc<EndpointSync>,
    probes: HashMap<String, Probes>,
    waiting: HashMap<String, Waiting>,
    /// Image pull failures per image, for back-off between tries.
    pull_failures: HashMap<String, (u32, SystemTime)>,
    init_failed: bool,
    /// Whether the volumes the agent fills have been written once.
    volumes_mounted: bool,
    /// When they are due to be written (again); None: now.
    volumes_due: Option<SystemTime>,
    /// Failed attempts in a row, for the back-off between them.
    mount_failures: u32,
    /// The last reason they could not be, logged once.
    mount_error: Option<String>,
    /// ServiceAccount tokens of its projected volumes, until their renewal.
    tokens: TokenCache,
}

/// Starts a worker task for `pod`.
pub fn spawn(
    pod: DesiredPod,
    cri: CriClient,
    node: Arc<NodeContext>,
    settings: WorkerSettings,
    store: PodStore,
    endpoint_sync: Arc<EndpointSync>,
) -> (mpsc::UnboundedSender<WorkerMessage>, JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let worker = PodWorker {
        pod,
        cri,
        node,
        settings,
        store,
        endpoint_sync,
        probes: HashMap::new(),
        waiting: HashMap::new(),
        pull_failures: HashMap::new(),
        init_failed: false,
        volumes_mounted: false,
        volumes_due: None,
        mount_failures: 0,
        mount_error: None,
        tokens: TokenCache::default(),
    };
    (tx, tokio::spawn(worker.run(rx)))
}

impl PodWorker {
    async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<WorkerMessage>) {
        info!(pod = %self.pod.full_name(), uid = %self.pod.uid, "pod worker started");
        let mut delay = Duration::ZERO;
        let mut failures = 0u32;
        loop {
            tokio::select! {
                message = inbox.recv() => match message {
                    Some(WorkerMessage::Update(pod)) => {
                        if !self.pod.same_spec(&pod) {
                            info!(pod = %self.pod.full_name(), "spec changed: restarting the pod");
                            if let Err(e) = self.teardown(false).await {
                                warn!(pod = %self.pod.full_name(), "teardown for the new spec: {e}");
                            }
                        }
                        self.pod = *pod;
                    }
                    Some(WorkerMessage::Wake) => {}
                    Some(WorkerMessage::Terminate) | None => break,
                },
                _ = tokio::time::sleep(delay) => {}
            }
            delay = match self.sync().await {
                Ok(acted) => {
                    failures = 0;
                    self.note_error(None);
                    // After acting, look again at once: the next step (the
                    // containers after the sandbox) and the report wait on it.
                    if acted {
                        Duration::from_millis(10)
                    } else {
                        self.settings.sync_period
                    }
                }
                Err(e) => {
                    // Back off while the runtime is away (sync period, doubled
                    // per failure up to 10 s), so a dead containerd is not
                    // hammered; the first success resets it.
                    failures += 1;
                    let wait = self.settings.sync_period.saturating_mul(1 << failures.min(5)).min(MAX_RETRY_WAIT);
                    warn!(pod = %self.pod.full_name(), retry_in = ?wait, "sync failed: {e}");
                    self.note_error(Some(e.to_string()));
                    wait
                }
            };
        }
        if self.mark_terminating() {
            // No new connections for it before it is told to stop (see
            // endpoint_sync).
            self.endpoint_sync.withdrawn(self.pod.grace_period().min(MAX_WITHDRAW_WAIT)).await;
        }
        let mut tries = 0;
        while let Err(e) = self.teardown(true).await {
            tries += 1;
            warn!(pod = %self.pod.full_name(), "removing the pod failed ({e}); retrying");
            if tries >= 30 {
                warn!(pod = %self.pod.full_name(), "giving up; the garbage collector will remove what is left");
                break;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        self.remove_report();
        info!(pod = %self.pod.full_name(), "pod removed");
    }

    fn pod_labels(&self) -> HashMap<String, String> {
        HashMap::from([(labels::POD_UID.to_string(), self.pod.uid.clone()), (labels::MANAGED.into(), "true".into())])
    }

    /// What the runtime has for this pod now.
    async fn observe(&self) -> Result<(Observed, Vec<cri::PodSandbox>), CriError> {
        let sandboxes = self.cri.list_pod_sandboxes(self.pod_labels()).await?;
        let ready = sandboxes
            .iter()
            .filter(|s| s.state == cri::PodSandboxState::SandboxReady as i32)
            .max_by_key(|s| s.metadata.as_ref().map_or(0, |m| m.attempt));
        let mut observed = Observed::default();
        if let Some(s) = ready {
            let status = self.cri.pod_sandbox_status(&s.id).await?;
            observed.sandbox = Some(Sandbox {
                id: s.id.clone(),
                attempt: s.metadata.as_ref().map_or(0, |m| m.attempt),
                ip: status.network.map(|n| n.ip).filter(|ip| !ip.is_empty()),
                created_at: nanos(s.created_at).unwrap_or(SystemTime::UNIX_EPOCH),
            });
            for c in self.cri.list_containers(self.pod_labels()).await? {
                if c.pod_sandbox_id != s.id {
                    continue;
                }
                let name = c.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default();
                let attempt = c.metadata.as_ref().map_or(0, |m| m.attempt);
                let status = match self.cri.container_status(&c.id).await {
                    Ok(s) => s,
                    Err(e) if e.is_not_found() => continue,
                    Err(e) => return Err(e),
                };
                observed.containers.entry(name).or_default().push(Instance { id: c.id, attempt, status });
            }
            for list in observed.containers.values_mut() {
                list.sort_by_key(|i| std::cmp::Reverse(i.attempt));
            }
        }
        Ok((observed, sandboxes))
    }

    /// One round: observe, act, report. Returns whether it acted.
    async fn sync(&mut self) -> Result<bool, CriError> {
        let (mut observed, sandboxes) = self.observe().await?;
        // Report what was seen before acting on it: a container that died
        // makes its pod not ready now, not after its restart (Service
        // endpoints follow readiness).
        self.report(&observed);
        let mut acted = false;

        // Sandboxes that are not the live one (dead attempts) go.
        let live = observed.sandbox.as_ref().map(|s| s.id.clone());
        for s in sandboxes.iter().filter(|s| Some(&s.id) != live.as_ref()) {
            self.cri.stop_pod_sandbox(&s.id).await?;
            self.cri.remove_pod_sandbox(&s.id).await?;
            acted = true;
        }
        // Older instances than the last dead one are of no more use.
        for list in observed.containers.values_mut() {
            for old in list.iter().skip(2) {
                self.cri.remove_container(&old.id).await?;
            }
            list.truncate(2);
        }

        let finished = matches!(self.current_phase().as_deref(), Some("Succeeded") | Some("Failed"));
        if !finished {
            if self.volumes_due.is_none_or(|due| SystemTime::now() >= due) {
                // A failure after a first mount leaves the containers what
                // they have; it is logged, and tried again later.
                let _ = self.mount_volumes().await;
            }
            if !self.volumes_mounted {
                // Never mounted: the pod waits in ContainerCreating, as the
                // kubelet's does, until a later attempt succeeds.
                let why = self.mount_error.clone().unwrap_or_default();
                for c in self.pod.spec().containers.clone() {
                    self.wait(&c, "ContainerCreating", &why);
                }
                self.report(&observed);
                return Ok(acted);
            }
        }
        if observed.sandbox.is_none() && !finished {
            let attempt =
                sandboxes.iter().filter_map(|s| s.metadata.as_ref()).map(|m| m.attempt + 1).max().unwrap_or(0);
            self.start_sandbox(attempt).await?;
            self.report(&observed);
            return Ok(true);
        }
        let Some(sandbox) = observed.sandbox.clone() else {
            self.report(&observed);
            return Ok(acted);
        };

        // Init containers, in order, each to a clean exit.
        let mut init_done = true;
        for c in self.pod.spec().init_containers.clone().unwrap_or_default() {
            match observed.latest(&c.name) {
                Some(i) if i.is_exited() && i.exit_code() == 0 => continue,
                Some(i) if i.is_exited() => {
                    if self.pod.restart_policy == RestartPolicy::Never {
                        self.init_failed = true;
                    } else {
                        acted |= self.restart_if_due(&c, i, &sandbox, true).await?;
                    }
                }
                Some(i) if i.is_running() => {}
                Some(i) => {
                    self.cri.start_container(&i.id).await?;
                    acted = true;
                }
                None => acted |= self.create_and_start(&c, 0, &sandbox, true).await?,
            }
            init_done = false;
            break;
        }

        if init_done {
            for c in self.pod.spec().containers.clone() {
                let latest = observed.latest(&c.name).cloned();
                match latest {
                    None => acted |= self.create_and_start(&c, 0, &sandbox, false).await?,
                    Some(i) if i.is_running() => {
                        self.waiting.remove(&c.name);
                        acted |= self.check_probes(&c, &i, &sandbox).await?;
                    }
                    Some(i) if i.is_exited() => {
                        self.probes.remove(&c.name);
                        let restart = match self.pod.restart_policy {
                            RestartPolicy::Always => true,
                            RestartPolicy::OnFailure => i.exit_code() != 0,
                            RestartPolicy::Never => false,
                        };
                        if restart {
                            acted |= self.restart_if_due(&c, &i, &sandbox, false).await?;
                        } else {
                            self.waiting.remove(&c.name);
                        }
                    }
                    Some(i) => {
                        // Created but not started (a start that failed).
                        self.cri.start_container(&i.id).await?;
                        acted = true;
                    }
                }
            }
        }
        self.report(&observed);
        Ok(acted)
    }

    /// Writes the volumes the agent fills (configMap, secret, downwardAPI,
    /// projected) into their directories, atomically; says why one cannot
    /// be, naming the volume.
    async fn mount_volumes(&mut self) -> Result<(), String> {
        let mut due = SystemTime::now() + VOLUME_REFRESH;
        for v in self.pod.spec().volumes.clone().unwrap_or_default() {
            if !is_projected(&v) {
                continue;
            }
            let result = match project(&v, &self.pod, self.settings.objects.as_ref(), &mut self.tokens).await {
                Ok(p) => {
                    due = p.refresh_by.map_or(due, |r| r.min(due));
                    let dir = self.node.volume_dir(&self.pod, &v.name);
                    atomic::write(&dir, &p.files).map(|_| ()).map_err(|e| format!("writing {}: {e}", dir.display()))
                }
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                let why = format!("MountVolume.SetUp failed for volume {:?}: {e}", v.name);
                self.event(EventType::Warning, "FailedMount", why.clone());
                if self.mount_error.as_ref() != Some(&why) {
                    warn!(pod = %self.pod.full_name(), "{why}");
                    self.mount_error = Some(why.clone());
                }
                // Not at every sync while the API server is away: 0.5 s,
                // doubling, up to the refresh period.
                self.mount_failures += 1;
                let wait = Duration::from_millis(500).saturating_mul(1 << self.mount_failures.min(6)) / 2;
                self.volumes_due = Some(SystemTime::now() + wait.min(VOLUME_REFRESH));
                return Err(why);
            }
        }
        if self.mount_error.take().is_some() {
            info!(pod = %self.pod.full_name(), "volumes mounted");
        }
        self.volumes_mounted = true;
        self.mount_failures = 0;
        self.volumes_due = Some(due);
        Ok(())
    }

    async fn start_sandbox(&mut self, attempt: u32) -> Result<(), CriError> {
        self.probes.clear();
        self.init_failed = false;
        let _ = std::fs::create_dir_all(self.node.log_dir(&self.pod));
        for v in self.pod.spec().volumes.iter().flatten() {
            let dir = match &v.host_path {
                Some(h) if h.type_.as_deref() == Some("DirectoryOrCreate") => std::path::PathBuf::from(&h.path),
                Some(_) => continue,
                None => self.node.volume_dir(&self.pod, &v.name),
            };
            if let Err(e) = std::fs::create_dir_all(&dir) {
                warn!(pod = %self.pod.full_name(), "volume {}: cannot create {}: {e}", v.name, dir.display());
            }
        }
        let config = sandbox_config(&self.pod, attempt, &self.node);
        let id = self.cri.run_pod_sandbox(config).await?;
        info!(pod = %self.pod.full_name(), sandbox = %short(&id), attempt, "sandbox running");
        Ok(())
    }

    /// Makes sure the image is there, honouring imagePullPolicy; records
    /// ErrImagePull / ImagePullBackOff as the container's waiting reason.
    async fn ensure_image(&mut self, c: &Container) -> Result<bool, CriError> {
        let image = c.image.clone().unwrap_or_default();
        let policy = c.image_pull_policy.clone().unwrap_or_else(|| {
            let tag = image.rsplit('/').next().and_then(|last| last.split_once(':')).map(|(_, t)| t);
            if tag.is_none() || tag == Some("latest") {
                "Always".into()
            } else {
                "IfNotPresent".into()
            }
        });
        let present = self.cri.image_id(&image).await?.is_some();
        if present && policy != "Always" {
            self.event(EventType::Normal, "Pulled", format!("Container image {image:?} already present on machine"));
            return Ok(true);
        }
        if policy == "Never" {
            let why = format!("image {image} is not present and imagePullPolicy is Never");
            self.event(EventType::Warning, "ErrImageNeverPull", why.clone());
            self.wait(c, "ErrImageNeverPull", &why);
            return Ok(false);
        }
        if let Some((failures, at)) = self.pull_failures.get(&image) {
            let wait = self.settings.backoff.delay(*failures, Duration::ZERO);
            if SystemTime::now() < *at + wait {
                self.event(EventType::Normal, "BackOff", format!("Back-off pulling image {image:?}"));
                self.wait(c, "ImagePullBackOff", &format!("back-off pulling image {image}"));
                return Ok(false);
            }
        }
        self.event(EventType::Normal, "Pulling", format!("Pulling image {image:?}"));
        match self.cri.pull_image(&image).await {
            Ok(_) => {
                self.pull_failures.remove(&image);
                self.event(EventType::Normal, "Pulled", format!("Successfully pulled image {image:?}"));
                Ok(true)
            }
            Err(CriError::Call { message, .. }) => {
                let failures = self.pull_failures.get(&image).map_or(1, |(n, _)| n + 1);
                self.pull_failures.insert(image.clone(), (failures, SystemTime::now()));
                self.event(EventType::Warning, "Failed", format!("Failed to pull image {image:?}: {message}"));
                self.event(EventType::Warning, "Failed", "Error: ErrImagePull".into());
                self.wait(c, "ErrImagePull", &message);
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Reports an Event about this pod.
    fn event(&self, type_: EventType, reason: &'static str, message: String) {
        let object = InvolvedObject {
            kind: "Pod",
            namespace: self.pod.namespace.clone(),
            name: self.pod.name.clone(),
            uid: self.pod.uid.clone(),
        };
        self.settings.events.emit(AgentEvent { object, type_, reason, message });
    }

    fn wait(&mut self, c: &Container, reason: &str, message: &str) {
        self.waiting.insert(c.name.clone(), Waiting { reason: reason.into(), message: message.into() });
    }

    async fn create_and_start(
        &mut self,
        c: &Container,
        attempt: u32,
        sandbox: &Sandbox,
        init: bool,
    ) -> Result<bool, CriError> {
        if !self.ensure_image(c).await? {
            return Ok(false);
        }
        let pod_ip = sandbox.ip.clone().unwrap_or_default();
        let field = |path: &str| pod_field(path, &self.pod, &pod_ip, &self.node);
        let env = match resolve_env(&self.pod, c, &field, self.settings.objects.as_ref()).await {
            Ok(env) => env,
            Err(why) => {
                // As the kubelet: the container waits, the next sync retries.
                self.event(EventType::Warning, "Failed", format!("Error: {why}"));
                self.wait(c, "CreateContainerConfigError", &why);
                return Ok(false);
            }
        };
        let config = container_config(&self.pod, c, attempt, init, env, &self.node);
        let sandbox_config = sandbox_config(&self.pod, sandbox.attempt, &self.node);
        let id = match self.cri.create_container(&sandbox.id, config, sandbox_config).await {
            Ok(id) => id,
            Err(CriError::Call { message, .. }) => {
                self.event(EventType::Warning, "Failed", format!("Error: {message}"));
                self.wait(c, "CreateContainerError", &message);
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        self.event(EventType::Normal, "Created", format!("Created container {}", c.name));
        if let Err(e) = self.cri.start_container(&id).await {
            // Left in Created; the next sync retries the start.
            self.event(EventType::Warning, "Failed", format!("Error: {e}"));
            self.wait(c, "RunContainerError", &e.to_string());
            return Err(e);
        }
        self.waiting.remove(&c.name);
        self.event(EventType::Normal, "Started", format!("Started container {}", c.name));
        info!(pod = %self.pod.full_name(), container = %c.name, id = %short(&id), attempt, "container started");
        Ok(true)
    }

    /// Restarts an exited container once its back-off has passed.
    async fn restart_if_due(
        &mut self,
        c: &Container,
        i: &Instance,
        sandbox: &Sandbox,
        init: bool,
    ) -> Result<bool, CriError> {
        let delay = self.settings.backoff.delay(i.attempt, i.run_time());
        let due = i.finished_at().unwrap_or(SystemTime::UNIX_EPOCH) + delay;
        if SystemTime::now() < due {
            let message = format!(
                "back-off {}s restarting failed container={} pod={}",
                delay.as_secs(),
                c.name,
                self.pod.full_name()
            );
            self.event(EventType::Warning, "BackOff", "Back-off restarting failed container".into());
            self.wait(c, "CrashLoopBackOff", &message);
            return Ok(false);
        }
        self.create_and_start(c, i.attempt + 1, sandbox, init).await
    }

    /// Starts probes for a new instance; kills one whose liveness failed.
    async fn check_probes(&mut self, c: &Container, i: &Instance, sandbox: &Sandbox) -> Result<bool, CriError> {
        let fresh = self.probes.get(&c.name).is_none_or(|p| p.container_id != i.id);
        if fresh {
            let target = ProbeTarget {
                container_id: i.id.clone(),
                pod_ip: if self.pod.host_network() {
                    self.node.node_ip.as_deref().and_then(|ip| ip.parse().ok())
                } else {
                    sandbox.ip.as_deref().and_then(|ip| ip.parse().ok())
                },
            };
            let (state, task) = probe::start(self.cri.clone(), c, target);
            self.probes.insert(c.name.clone(), Probes { container_id: i.id.clone(), state, task });
        }
        let failed = self.probes.get(&c.name).and_then(|p| p.state.borrow().failed.clone());
        if let Some(why) = failed {
            info!(pod = %self.pod.full_name(), container = %c.name, "{why}: killing the container");
            self.event(EventType::Warning, "Unhealthy", why.clone());
            self.event(EventType::Normal, "Killing", format!("Container {} {why}, will be restarted", c.name));
            self.probes.remove(&c.name);
            self.cri.stop_container(&i.id, self.pod.grace_period()).await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Stops and removes everything of the pod. `final_` also removes its
    /// directory (emptyDir volumes, logs).
    async fn teardown(&mut self, final_: bool) -> Result<(), CriError> {
        self.probes.clear();
        let grace = self.pod.grace_period();
        let containers = self.cri.list_containers(self.pod_labels()).await?;
        let running: Vec<_> =
            containers.iter().filter(|c| c.state == cri::ContainerState::ContainerRunning as i32).collect();
        for c in &running {
            let name = c.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default();
            self.event(EventType::Normal, "Killing", format!("Stopping container {name}"));
        }
        let stops = running.iter().map(|c| self.cri.stop_container(&c.id, grace));
        // Stopped together: one after another would add the grace periods up.
        for r in futures::future::join_all(stops).await {
            r?;
        }
        for s in self.cri.list_pod_sandboxes(self.pod_labels()).await? {
            self.cri.stop_pod_sandbox(&s.id).await?;
            self.cri.remove_pod_sandbox(&s.id).await?;
        }
        if final_ {
            let _ = std::fs::remove_dir_all(self.node.pod_dir(&self.pod));
        }
        Ok(())
    }

    fn current_phase(&self) -> Option<String> {
        let store = self.store.read().ok()?;
        store.get(&self.pod.uid).and_then(|r| r.status.phase.clone())
    }

    fn report(&self, observed: &Observed) {
        let probes: HashMap<String, ProbeState> =
            self.probes.iter().map(|(name, p)| (name.clone(), p.state.borrow().clone())).collect();
        let Ok(mut store) = self.store.write() else { return };
        let previous = store.get(&self.pod.uid).map(|r| r.status.clone());
        let status = pod_status(&StatusInputs {
            pod: &self.pod,
            observed,
            node_ip: self.node.node_ip.as_deref(),
            probes: &probes,
            waiting: &self.waiting,
            init_failed: self.init_failed,
            previous: previous.as_ref(),
            now: SystemTime::now(),
        });
        let error = store.get(&self.pod.uid).and_then(|r| r.error.clone());
        let changed = previous.as_ref() != Some(&status);
        store.insert(
            self.pod.uid.clone(),
            PodReport {
                uid: self.pod.uid.clone(),
                name: self.pod.name.clone(),
                namespace: self.pod.namespace.clone(),
                source: self.pod.source.clone(),
                status,
                sandbox_id: observed.sandbox.as_ref().map(|s| s.id.clone()),
                error,
                terminating: false,
                pod: self.pod.clone(),
            },
        );
        drop(store);
        if changed {
            self.endpoint_sync.pods_changed();
        }
    }

    fn note_error(&self, error: Option<String>) {
        if let Ok(mut store) = self.store.write() {
            if let Some(r) = store.get_mut(&self.pod.uid) {
                r.error = error;
            }
        }
    }

    /// Reports the pod terminating. Returns whether it may be a Service
    /// endpoint (it has an address).
    fn mark_terminating(&self) -> bool {
        let Ok(mut store) = self.store.write() else { return false };
        let Some(r) = store.get_mut(&self.pod.uid) else { return false };
        r.terminating = true;
        let endpoint = r.status.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty());
        drop(store);
        self.endpoint_sync.pods_changed();
        endpoint
    }

    fn remove_report(&self) {
        if let Ok(mut store) = self.store.write() {
            store.remove(&self.pod.uid);
        }
        self.endpoint_sync.pods_changed();
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(13)]
}
