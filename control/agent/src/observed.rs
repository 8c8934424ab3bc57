//! What the runtime says about one pod: its sandbox and every instance of
//! every container, gathered once per sync.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_cri::v1 as cri;

/// The pod's live sandbox.
#[derive(Clone, Debug)]
pub struct Sandbox {
    pub id: String,
    pub attempt: u32,
    pub ip: Option<String>,
    pub created_at: SystemTime,
}

/// One container instance (one attempt), with the runtime's status.
#[derive(Clone, Debug)]
pub struct Instance {
    pub id: String,
    pub attempt: u32,
    pub status: cri::ContainerStatus,
}

impl Instance {
    pub fn state(&self) -> cri::ContainerState {
        cri::ContainerState::try_from(self.status.state).unwrap_or(cri::ContainerState::ContainerUnknown)
    }

    pub fn is_running(&self) -> bool {
        self.state() == cri::ContainerState::ContainerRunning
    }

    pub fn is_exited(&self) -> bool {
        self.state() == cri::ContainerState::ContainerExited
    }

    pub fn exit_code(&self) -> i32 {
        self.status.exit_code
    }

    pub fn started_at(&self) -> Option<SystemTime> {
        nanos(self.status.started_at)
    }

    pub fn finished_at(&self) -> Option<SystemTime> {
        nanos(self.status.finished_at)
    }

    /// How long the last run lasted (zero if unknown).
    pub fn run_time(&self) -> Duration {
        match (self.started_at(), self.finished_at()) {
            (Some(s), Some(f)) => f.duration_since(s).unwrap_or_default(),
            _ => Duration::ZERO,
        }
    }
}

/// CRI timestamps are nanoseconds since the epoch; 0 means unset.
pub fn nanos(ns: i64) -> Option<SystemTime> {
    (ns > 0).then(|| UNIX_EPOCH + Duration::from_nanos(ns as u64))
}

/// Instances by container name, newest attempt first.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub sandbox: Option<Sandbox>,
    pub containers: HashMap<String, Vec<Instance>>,
}

impl Observed {
    pub fn latest(&self, name: &str) -> Option<&Instance> {
        self.containers.get(name).and_then(|v| v.first())
    }

    pub fn previous(&self, name: &str) -> Option<&Instance> {
        self.containers.get(name).and_then(|v| v.get(1))
    }
}
