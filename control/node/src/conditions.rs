//! Node conditions, as the kubelet reports them: `MemoryPressure`, `DiskPressure`, `PIDPressure` and
//! `Ready`, with the kubelet's reasons (tools match on them).
//!
//! - `MemoryPressure`: `MemAvailable` below the `memory.available` hard eviction threshold.
//! - `DiskPressure`: the node filesystem's available bytes below `nodefs.available`, or its free inodes
//!   below `nodefs.inodesFree`.
//! - `PIDPressure`: task limit − tasks below `pid.available`.
//! - `Ready`: the container runtime, its network and the dataplane are all healthy.
//!
//! Like the kubelet, a pressure condition stays `True` for the pressure transition period (5 minutes by
//! default) after the pressure was last seen, so that a node hovering at a threshold does not flap.
//!
//! [`NodeConditions`] keeps the conditions between updates: every update is a heartbeat, while a
//! condition's `lastTransitionTime` only moves when its status changes.

use std::time::Duration;

use k8s_openapi::api::core::v1::NodeCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::chrono::{DateTime, TimeDelta, Utc};

use super::allocatable::EvictionHard;
use super::host::HostSample;
use crate::quantity::format_bytes;

/// The kubelet's `--eviction-pressure-transition-period` default.
pub const DEFAULT_PRESSURE_TRANSITION_PERIOD: Duration = Duration::from_secs(5 * 60);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConditionType {
    MemoryPressure,
    DiskPressure,
    PidPressure,
    Ready,
}

impl ConditionType {
    /// In the order the kubelet lists them.
    pub const ALL: [ConditionType; 4] =
        [ConditionType::MemoryPressure, ConditionType::DiskPressure, ConditionType::PidPressure, ConditionType::Ready];

    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::MemoryPressure => "MemoryPressure",
            ConditionType::DiskPressure => "DiskPressure",
            ConditionType::PidPressure => "PIDPressure",
            ConditionType::Ready => "Ready",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

/// One node condition as last computed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    pub type_: ConditionType,
    pub status: ConditionStatus,
    pub reason: String,
    pub message: String,
    pub last_heartbeat_time: DateTime<Utc>,
    pub last_transition_time: DateTime<Utc>,
}

impl Condition {
    pub fn to_k8s(&self) -> NodeCondition {
        NodeCondition {
            type_: self.type_.as_str().to_string(),
            status: self.status.as_str().to_string(),
            reason: Some(self.reason.clone()),
            message: Some(self.message.clone()),
            last_heartbeat_time: Some(Time(self.last_heartbeat_time)),
            last_transition_time: Some(Time(self.last_transition_time)),
        }
    }
}

/// What decides `Ready`, each with a message saying what is wrong (used only when it is).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadyInputs {
    pub runtime_ready: bool,
    pub runtime_message: String,
    pub network_ready: bool,
    pub network_message: String,
    pub dataplane_healthy: bool,
    pub dataplane_message: String,
}

impl ReadyInputs {
    /// Everything healthy.
    pub fn ready() -> Self {
        ReadyInputs { runtime_ready: true, network_ready: true, dataplane_healthy: true, ..Default::default() }
    }

    /// Why the node is not ready, or `None` when it is.
    fn problems(&self) -> Option<String> {
        let mut problems = Vec::new();
        let mut note = |ok: bool, what: &str, message: &str| {
            if !ok {
                problems.push(if message.is_empty() { what.to_string() } else { format!("{what}: {message}") });
            }
        };
        note(self.runtime_ready, "container runtime is down", &self.runtime_message);
        note(self.network_ready, "container runtime network not ready", &self.network_message);
        note(self.dataplane_healthy, "dataplane is not healthy", &self.dataplane_message);
        (!problems.is_empty()).then(|| problems.join("; "))
    }
}

/// The node's conditions, kept between updates.
#[derive(Clone, Debug)]
pub struct NodeConditions {
    thresholds: EvictionHard,
    transition_period: TimeDelta,
    /// Indexed like [`ConditionType::ALL`]; empty until the first update.
    conditions: Vec<Condition>,
    /// When each pressure (memory, disk, PID) was last seen.
    last_pressure: [Option<DateTime<Utc>>; 3],
}

/// A condition's newly computed state.
struct Observed {
    status: ConditionStatus,
    reason: &'static str,
    message: String,
}

impl NodeConditions {
    /// Conditions judged against `thresholds`, with the kubelet's 5-minute pressure transition period.
    pub fn new(thresholds: EvictionHard) -> Self {
        NodeConditions {
            thresholds,
            transition_period: TimeDelta::from_std(DEFAULT_PRESSURE_TRANSITION_PERIOD).unwrap_or(TimeDelta::zero()),
            conditions: Vec::new(),
            last_pressure: [None; 3],
        }
    }

    /// How long a pressure condition stays `True` after the pressure was last seen (zero: not at all).
    pub fn with_pressure_transition_period(mut self, period: Duration) -> Self {
        self.transition_period = TimeDelta::from_std(period).unwrap_or(TimeDelta::MAX);
        self
    }

    /// Recomputes every condition from a host sample; true when any condition's status changed (or on
    /// the first update), so that the caller writes the Node status at once rather than at the next
    /// heartbeat.
    pub fn update(&mut self, sample: &HostSample, inputs: &ReadyInputs, now: DateTime<Utc>) -> bool {
        let t = &self.thresholds;

        let memory_threshold = t.memory_available_bytes(sample);
        let memory = (t.memory_available.is_some() && sample.memory.available_bytes < memory_threshold).then(|| {
            format!(
                "{} bytes ({}) available, below the memory.available threshold of {}",
                sample.memory.available_bytes,
                format_bytes(sample.memory.available_bytes),
                format_bytes(memory_threshold)
            )
        });

        let mut disk = Vec::new();
        let bytes_threshold = t.nodefs_available_bytes(sample);
        if t.nodefs_available.is_some() && sample.nodefs.available_bytes < bytes_threshold {
            disk.push(format!(
                "{} available on the node filesystem, below the nodefs.available threshold of {}",
                format_bytes(sample.nodefs.available_bytes),
                format_bytes(bytes_threshold)
            ));
        }
        let inodes_threshold = t.nodefs_inodes_free(sample);
        if t.nodefs_inodes_free.is_some() && sample.nodefs.free_inodes < inodes_threshold {
            disk.push(format!(
                "{} inodes free on the node filesystem, below the nodefs.inodesFree threshold of {inodes_threshold}",
                sample.nodefs.free_inodes
            ));
        }
        let disk = (!disk.is_empty()).then(|| disk.join("; "));

        let pid_threshold = t.pid_available(sample);
        let pids = (t.pid_available.is_some() && sample.pids.available() < pid_threshold).then(|| {
            format!(
                "{} of {} PIDs available, below the pid.available threshold of {pid_threshold}",
                sample.pids.available(),
                sample.pids.limit()
            )
        });

        let observed = [
            self.pressure(0, memory, now, PRESSURE_TEXT[0]),
            self.pressure(1, disk, now, PRESSURE_TEXT[1]),
            self.pressure(2, pids, now, PRESSURE_TEXT[2]),
            ready(inputs),
        ];
        self.apply(observed, now)
    }

    /// Records that the host could not be read: the pressure conditions become `Unknown` (the last
    /// sample no longer says anything), `Ready` is judged as usual. True when any status changed.
    pub fn update_unsampled(&mut self, error: &str, inputs: &ReadyInputs, now: DateTime<Utc>) -> bool {
        let unknown = || Observed {
            status: ConditionStatus::Unknown,
            reason: "NodeStatusUnknown",
            message: format!("cannot read the host: {error}"),
        };
        self.apply([unknown(), unknown(), unknown(), ready(inputs)], now)
    }

    /// The conditions, in the kubelet's order; empty before the first update.
    pub fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    pub fn get(&self, type_: ConditionType) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    pub fn to_k8s(&self) -> Vec<NodeCondition> {
        self.conditions.iter().map(Condition::to_k8s).collect()
    }

    /// A pressure condition: `True` while `problem` is seen and for the transition period after.
    fn pressure(&mut self, index: usize, problem: Option<String>, now: DateTime<Utc>, text: PressureText) -> Observed {
        if problem.is_some() {
            self.last_pressure[index] = Some(now);
        }
        let held =
            self.last_pressure[index].is_some_and(|seen| now.signed_duration_since(seen) < self.transition_period);
        match problem {
            Some(detail) => Observed {
                status: ConditionStatus::True,
                reason: text.pressure_reason,
                message: format!("{}: {detail}", text.pressure_message),
            },
            None if held => Observed {
                status: ConditionStatus::True,
                reason: text.pressure_reason,
                message: format!("{} (recently; within the pressure transition period)", text.pressure_message),
            },
            None => {
                Observed { status: ConditionStatus::False, reason: text.ok_reason, message: text.ok_message.into() }
            }
        }
    }

    fn apply(&mut self, observed: [Observed; 4], now: DateTime<Utc>) -> bool {
        if self.conditions.is_empty() {
            self.conditions = ConditionType::ALL
                .iter()
                .zip(observed)
                .map(|(&type_, o)| Condition {
                    type_,
                    status: o.status,
                    reason: o.reason.to_string(),
                    message: o.message,
                    last_heartbeat_time: now,
                    last_transition_time: now,
                })
                .collect();
            return true;
        }
        let mut changed = false;
        for (condition, o) in self.conditions.iter_mut().zip(observed) {
            if condition.status != o.status {
                condition.status = o.status;
                condition.last_transition_time = now;
                changed = true;
            }
            condition.reason = o.reason.to_string();
            condition.message = o.message;
            condition.last_heartbeat_time = now;
        }
        changed
    }
}

#[derive(Clone, Copy)]
struct PressureText {
    ok_reason: &'static str,
    ok_message: &'static str,
    pressure_reason: &'static str,
    pressure_message: &'static str,
}

const PRESSURE_TEXT: [PressureText; 3] = [
    PressureText {
        ok_reason: "KubeletHasSufficientMemory",
        ok_message: "kubelet has sufficient memory available",
        pressure_reason: "KubeletHasInsufficientMemory",
        pressure_message: "kubelet has insufficient memory available",
    },
    PressureText {
        ok_reason: "KubeletHasNoDiskPressure",
        ok_message: "kubelet has no disk pressure",
        pressure_reason: "KubeletHasDiskPressure",
        pressure_message: "kubelet has disk pressure",
    },
    PressureText {
        ok_reason: "KubeletHasSufficientPID",
        ok_message: "kubelet has sufficient PID available",
        pressure_reason: "KubeletHasInsufficientPID",
        pressure_message: "kubelet has insufficient PID available",
    },
];

fn ready(inputs: &ReadyInputs) -> Observed {
    match inputs.problems() {
        None => Observed {
            status: ConditionStatus::True,
            reason: "KubeletReady",
            message: "kubelet is posting ready status".to_string(),
        },
        Some(problems) => Observed { status: ConditionStatus::False, reason: "KubeletNotReady", message: problems },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::allocatable::Threshold;
    use crate::host::{FsStats, MemInfo, PidStats};

    const GI: u64 = 1 << 30;
    const MI: u64 = 1 << 20;

    fn healthy() -> HostSample {
        HostSample {
            cpus: 4,
            memory: MemInfo {
                total_bytes: 16 * GI,
                available_bytes: 8 * GI,
                hugepages_total: None,
                hugepage_size_bytes: None,
            },
            hugepages: BTreeMap::new(),
            nodefs: FsStats {
                total_bytes: 100 * GI,
                available_bytes: 50 * GI,
                total_inodes: 1_000_000,
                free_inodes: 900_000,
            },
            pids: PidStats { pid_max: 100_000, threads_max: None, running: 1_000 },
        }
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    fn tracker() -> NodeConditions {
        NodeConditions::new(EvictionHard::default()).with_pressure_transition_period(Duration::ZERO)
    }

    fn status(c: &NodeConditions, t: ConditionType) -> (ConditionStatus, String) {
        let c = c.get(t).unwrap();
        (c.status, c.reason.clone())
    }

    #[test]
    fn healthy_node() {
        let mut c = tracker();
        assert!(c.conditions().is_empty());
        assert!(c.update(&healthy(), &ReadyInputs::ready(), at(0)));
        let k = c.to_k8s();
        let summary: Vec<(&str, &str, &str)> =
            k.iter().map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_deref().unwrap())).collect();
        assert_eq!(
            summary,
            [
                ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                ("PIDPressure", "False", "KubeletHasSufficientPID"),
                ("Ready", "True", "KubeletReady"),
            ]
        );
        assert_eq!(k[3].message.as_deref(), Some("kubelet is posting ready status"));
        assert_eq!(k[0].last_transition_time, Some(Time(at(0))));
        assert_eq!(k[0].last_heartbeat_time, Some(Time(at(0))));
        let json = serde_json::to_value(&k[0]).unwrap();
        assert_eq!(json["lastHeartbeatTime"], "2023-11-14T22:13:20Z");
        assert_eq!(json["type"], "MemoryPressure");
    }

    #[test]
    fn memory_pressure() {
        let mut c = tracker();
        let mut s = healthy();
        s.memory.available_bytes = 99 * MI; // below 100Mi
        c.update(&s, &ReadyInputs::ready(), at(0));
        assert_eq!(
            status(&c, ConditionType::MemoryPressure),
            (ConditionStatus::True, "KubeletHasInsufficientMemory".into())
        );
        let message = &c.get(ConditionType::MemoryPressure).unwrap().message;
        assert!(
            message.starts_with("kubelet has insufficient memory available: ") && message.contains("99Mi"),
            "{message}"
        );

        s.memory.available_bytes = 100 * MI; // at the threshold is not below it
        assert!(c.update(&s, &ReadyInputs::ready(), at(10)));
        assert_eq!(
            status(&c, ConditionType::MemoryPressure),
            (ConditionStatus::False, "KubeletHasSufficientMemory".into())
        );

        // A percentage threshold is a share of MemTotal.
        let mut c = NodeConditions::new(EvictionHard {
            memory_available: Some(Threshold::percent(10)),
            ..EvictionHard::none()
        });
        s.memory.available_bytes = GI; // 1Gi < 1.6Gi
        c.update(&s, &ReadyInputs::ready(), at(0));
        assert_eq!(c.get(ConditionType::MemoryPressure).unwrap().status, ConditionStatus::True);
    }

    #[test]
    fn disk_pressure_from_bytes_or_inodes() {
        let mut c = tracker();
        let mut s = healthy();
        s.nodefs.available_bytes = 9 * GI; // below 10% of 100Gi
        c.update(&s, &ReadyInputs::ready(), at(0));
        let d = c.get(ConditionType::DiskPressure).unwrap();
        assert_eq!((d.status, d.reason.as_str()), (ConditionStatus::True, "KubeletHasDiskPressure"));
        assert!(d.message.contains("nodefs.available"), "{}", d.message);

        let mut s = healthy();
        s.nodefs.free_inodes = 49_999; // below 5% of 1M
        assert!(!c.update(&s, &ReadyInputs::ready(), at(10)));
        let d = c.get(ConditionType::DiskPressure).unwrap();
        assert_eq!(d.status, ConditionStatus::True);
        assert!(d.message.contains("nodefs.inodesFree") && !d.message.contains("nodefs.available"), "{}", d.message);

        assert!(c.update(&healthy(), &ReadyInputs::ready(), at(20)));
        assert_eq!(
            status(&c, ConditionType::DiskPressure),
            (ConditionStatus::False, "KubeletHasNoDiskPressure".into())
        );
    }

    #[test]
    fn pid_pressure() {
        let mut c = tracker();
        let mut s = healthy();
        s.pids.running = 91_000; // 9_000 available < 10% of 100_000
        c.update(&s, &ReadyInputs::ready(), at(0));
        assert_eq!(status(&c, ConditionType::PidPressure), (ConditionStatus::True, "KubeletHasInsufficientPID".into()));
        // threads-max lowers the limit.
        let mut s = healthy();
        s.pids.threads_max = Some(1_050);
        c.update(&s, &ReadyInputs::ready(), at(10));
        assert_eq!(c.get(ConditionType::PidPressure).unwrap().status, ConditionStatus::True);
        c.update(&healthy(), &ReadyInputs::ready(), at(20));
        assert_eq!(status(&c, ConditionType::PidPressure), (ConditionStatus::False, "KubeletHasSufficientPID".into()));
    }

    #[test]
    fn no_thresholds_no_pressure() {
        let mut c = NodeConditions::new(EvictionHard::none());
        let mut s = healthy();
        s.memory.available_bytes = 0;
        s.nodefs.available_bytes = 0;
        s.nodefs.free_inodes = 0;
        s.pids.running = s.pids.pid_max;
        c.update(&s, &ReadyInputs::ready(), at(0));
        assert!(c.conditions()[..3].iter().all(|c| c.status == ConditionStatus::False));
    }

    #[test]
    fn ready_inputs() {
        let mut c = tracker();
        let inputs = ReadyInputs {
            runtime_ready: true,
            network_ready: false,
            network_message: "no CNI config".into(),
            dataplane_healthy: false,
            dataplane_message: String::new(),
            ..Default::default()
        };
        c.update(&healthy(), &inputs, at(0));
        let r = c.get(ConditionType::Ready).unwrap();
        assert_eq!((r.status, r.reason.as_str()), (ConditionStatus::False, "KubeletNotReady"));
        assert_eq!(r.message, "container runtime network not ready: no CNI config; dataplane is not healthy");

        let inputs = ReadyInputs { runtime_message: "socket closed".into(), ..ReadyInputs::ready() };
        assert!(c.update(&healthy(), &inputs, at(1)));
        let r = c.get(ConditionType::Ready).unwrap();
        assert_eq!((r.status, r.message.as_str()), (ConditionStatus::True, "kubelet is posting ready status"));

        let inputs =
            ReadyInputs { runtime_ready: false, runtime_message: "socket closed".into(), ..ReadyInputs::ready() };
        assert!(c.update(&healthy(), &inputs, at(2)));
        assert_eq!(c.get(ConditionType::Ready).unwrap().message, "container runtime is down: socket closed");
    }

    #[test]
    fn transition_time_moves_only_on_status_change() {
        let mut c = tracker();
        let mut s = healthy();
        assert!(c.update(&s, &ReadyInputs::ready(), at(0)));

        // Same statuses: a heartbeat only.
        assert!(!c.update(&s, &ReadyInputs::ready(), at(10)));
        for condition in c.conditions() {
            assert_eq!(condition.last_heartbeat_time, at(10));
            assert_eq!(condition.last_transition_time, at(0));
        }

        // Memory pressure: only MemoryPressure transitions.
        s.memory.available_bytes = MI;
        assert!(c.update(&s, &ReadyInputs::ready(), at(20)));
        let m = c.get(ConditionType::MemoryPressure).unwrap();
        assert_eq!((m.last_transition_time, m.last_heartbeat_time), (at(20), at(20)));
        let d = c.get(ConditionType::DiskPressure).unwrap();
        assert_eq!((d.last_transition_time, d.last_heartbeat_time), (at(0), at(20)));

        // Still under pressure, with a different amount: message changes, transition time does not.
        s.memory.available_bytes = 2 * MI;
        let before = c.get(ConditionType::MemoryPressure).unwrap().message.clone();
        assert!(!c.update(&s, &ReadyInputs::ready(), at(30)));
        let m = c.get(ConditionType::MemoryPressure).unwrap();
        assert_eq!((m.last_transition_time, m.last_heartbeat_time), (at(20), at(30)));
        assert_ne!(m.message, before);

        // Recovered.
        assert!(c.update(&healthy(), &ReadyInputs::ready(), at(40)));
        let m = c.get(ConditionType::MemoryPressure).unwrap();
        assert_eq!((m.status, m.last_transition_time), (ConditionStatus::False, at(40)));
    }

    #[test]
    fn pressure_is_held_for_the_transition_period() {
        let mut c = NodeConditions::new(EvictionHard::default()); // 5 minutes
        let mut s = healthy();
        s.memory.available_bytes = MI;
        c.update(&s, &ReadyInputs::ready(), at(0));
        assert!(!c.update(&healthy(), &ReadyInputs::ready(), at(60)));
        let m = c.get(ConditionType::MemoryPressure).unwrap();
        assert_eq!((m.status, m.reason.as_str()), (ConditionStatus::True, "KubeletHasInsufficientMemory"));
        assert!(!c.update(&healthy(), &ReadyInputs::ready(), at(299)));
        assert!(c.update(&healthy(), &ReadyInputs::ready(), at(300)));
        let m = c.get(ConditionType::MemoryPressure).unwrap();
        assert_eq!((m.status, m.last_transition_time), (ConditionStatus::False, at(300)));
    }

    #[test]
    fn unsampled_host_is_unknown() {
        let mut c = tracker();
        c.update(&healthy(), &ReadyInputs::ready(), at(0));
        assert!(c.update_unsampled("cannot read /proc/meminfo: gone", &ReadyInputs::ready(), at(10)));
        for condition in &c.conditions()[..3] {
            assert_eq!((condition.status, condition.reason.as_str()), (ConditionStatus::Unknown, "NodeStatusUnknown"));
            assert!(condition.message.contains("/proc/meminfo"));
            assert_eq!(condition.last_transition_time, at(10));
        }
        let r = c.get(ConditionType::Ready).unwrap();
        assert_eq!((r.status, r.last_transition_time), (ConditionStatus::True, at(0)));
        assert!(c.update(&healthy(), &ReadyInputs::ready(), at(20)));
    }
}
