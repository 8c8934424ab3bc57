//! The node agent's view of its own machine: what the kubelet publishes in `Node.status`.
//!
//! Switchyard's control thread does the kubelet's node duties, so it reports the node the way the
//! kubelet does:
//!
//! - [`host`]: reads `/proc`, `/sys` and `statvfs` into a [`HostSample`] (CPUs, memory, huge pages, the
//!   node filesystem, PIDs).
//! - [`allocatable`]: the kubelet's knobs ([`NodeResources`]: system/kube reserved, hard eviction
//!   thresholds, max pods) and the capacity/allocatable arithmetic.
//! - [`conditions`]: `MemoryPressure`, `DiskPressure`, `PIDPressure` and `Ready`, tracked between
//!   updates so that transition times only move when a status changes.
//! - [`NodeStatusSource`] (here): samples the host on every call and puts all of it, plus the node's
//!   system info, into a [`NodeStatusReport`], which converts to a Kubernetes [`NodeStatus`].
//!
//! - [`quantity`]: Kubernetes resource quantities, exact, formatted canonically as the API server
//!   would.
//!
//! It owns what the host is and what the node may offer; it must not talk to the API server, the
//! container runtime or DPDK (the agent and the cluster crate report what it computes).

#![deny(unsafe_code)]

pub mod allocatable;
pub mod conditions;
pub mod host;
pub mod quantity;

#[cfg(test)]
mod fixtures;

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{NodeStatus, NodeSystemInfo};
use k8s_openapi::chrono::{DateTime, Utc};

pub use allocatable::{
    hugepage_resource_name, EvictionHard, NodeAllocation, NodeConfigError, NodeResources, Reserved, ResourceAmounts,
    Threshold, ThresholdError, DEFAULT_MAX_PODS,
};
pub use conditions::{
    Condition, ConditionStatus, ConditionType, NodeConditions, ReadyInputs, DEFAULT_PRESSURE_TRANSITION_PERIOD,
};
pub use host::{FsStats, HostError, HostPaths, HostSample, MemInfo, PidStats};

/// The current time as Kubernetes timestamps want it (k8s-openapi's chrono has no clock of its own).
pub fn now() -> DateTime<Utc> {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    DateTime::from_timestamp(since_epoch.as_secs() as i64, since_epoch.subsec_nanos()).unwrap_or_default()
}

/// The node's system info (`Node.status.nodeInfo`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// `/proc/sys/kernel/osrelease`.
    pub kernel_version: String,
    /// `PRETTY_NAME` from `/etc/os-release` (or `/usr/lib/os-release`).
    pub os_image: String,
    /// Always `linux`.
    pub operating_system: String,
    /// In Go's spelling, as Kubernetes uses it: `amd64`, `arm64`.
    pub architecture: String,
    /// `/etc/machine-id`, empty when absent.
    pub machine_id: String,
    /// `/proc/sys/kernel/random/boot_id`, empty when absent.
    pub boot_id: String,
    /// `/sys/class/dmi/id/product_uuid`, empty when absent or unreadable.
    pub system_uuid: String,
    /// Supplied by the caller, e.g. `containerd://1.7.20`.
    pub container_runtime_version: String,
    /// Supplied by the caller; empty unless set. Also reported as
    /// `kubeProxyVersion`: the same process does the kube-proxy's work.
    pub kubelet_version: String,
}

/// The `nodeInfo.kubeletVersion` (and `kubeProxyVersion`) switchyard
/// reports: the Kubernetes release whose kubelet and kube-proxy behaviour
/// it follows, with switchyard's own version as semver build metadata, so
/// that tools comparing versions see a Kubernetes version and people see
/// what runs.
pub const KUBELET_VERSION: &str = concat!("v1.20.2+switchyard-", env!("CARGO_PKG_VERSION"));

impl NodeInfo {
    /// Reads the host's identity; missing files give empty strings, never errors.
    pub fn read(paths: &HostPaths, container_runtime_version: &str, kubelet_version: &str) -> NodeInfo {
        let text = |path: PathBuf| std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_default();
        NodeInfo {
            kernel_version: text(paths.proc.join("sys/kernel/osrelease")),
            os_image: read_os_image(&paths.etc),
            operating_system: "linux".to_string(),
            architecture: go_arch(std::env::consts::ARCH).to_string(),
            machine_id: text(paths.etc.join("machine-id")),
            boot_id: text(paths.proc.join("sys/kernel/random/boot_id")),
            system_uuid: text(paths.sys.join("class/dmi/id/product_uuid")),
            container_runtime_version: container_runtime_version.to_string(),
            kubelet_version: kubelet_version.to_string(),
        }
    }

    pub fn to_k8s(&self) -> NodeSystemInfo {
        NodeSystemInfo {
            architecture: self.architecture.clone(),
            boot_id: self.boot_id.clone(),
            container_runtime_version: self.container_runtime_version.clone(),
            kernel_version: self.kernel_version.clone(),
            kubelet_version: self.kubelet_version.clone(),
            kube_proxy_version: self.kubelet_version.clone(),
            machine_id: self.machine_id.clone(),
            operating_system: self.operating_system.clone(),
            os_image: self.os_image.clone(),
            system_uuid: self.system_uuid.clone(),
            ..Default::default()
        }
    }
}

/// `PRETTY_NAME` from `etc/os-release`, else `etc/../usr/lib/os-release`, else `Linux`.
fn read_os_image(etc: &Path) -> String {
    [etc.join("os-release"), etc.join("../usr/lib/os-release")]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .find_map(|text| os_release_field(&text, "PRETTY_NAME"))
        .unwrap_or_else(|| "Linux".to_string())
}

/// A field of an os-release file, unquoted (`PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"`).
fn os_release_field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let value = line.trim().strip_prefix(key)?.strip_prefix('=')?;
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        let value = value.replace("\\\"", "\"").replace("\\$", "$").replace("\\`", "`").replace("\\\\", "\\");
        (!value.is_empty()).then_some(value)
    })
}

/// Rust's architecture names in Go's spelling (`GOARCH`), which Kubernetes uses.
pub fn go_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// Everything the node status needs, from one sample of the host.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeStatusReport {
    pub capacity: ResourceAmounts,
    pub allocatable: ResourceAmounts,
    pub conditions: Vec<Condition>,
    /// True when a condition's status changed: write the status now rather than at the next heartbeat.
    pub conditions_changed: bool,
    pub node_info: NodeInfo,
    /// This call's sample; `None` when the host could not be read, in which case capacity and
    /// allocatable are the last good ones, the pressure conditions are `Unknown` and `sample_error`
    /// says why.
    pub sample: Option<HostSample>,
    pub sample_error: Option<String>,
}

impl NodeStatusReport {
    /// The `Node.status` to write (capacity, allocatable, conditions, node info).
    pub fn to_k8s_node_status(&self) -> NodeStatus {
        NodeStatus {
            capacity: Some(self.capacity.to_k8s()),
            allocatable: Some(self.allocatable.to_k8s()),
            conditions: Some(self.conditions.iter().map(Condition::to_k8s).collect()),
            node_info: Some(self.node_info.to_k8s()),
            ..Default::default()
        }
    }
}

/// Samples the host on every call and reports the node's status; keeps the conditions (and the last
/// good capacity) between calls.
#[derive(Debug)]
pub struct NodeStatusSource {
    resources: NodeResources,
    paths: HostPaths,
    nodefs: PathBuf,
    container_runtime_version: String,
    kubelet_version: String,
    conditions: NodeConditions,
    last: Option<NodeAllocation>,
}

impl NodeStatusSource {
    /// `nodefs` is a path on the node filesystem (the state directory, e.g. `/var/lib/kubelet`);
    /// `container_runtime_version` is reported as is (`containerd://1.7.20`).
    pub fn new(
        resources: NodeResources,
        nodefs: impl Into<PathBuf>,
        container_runtime_version: impl Into<String>,
    ) -> Self {
        NodeStatusSource {
            conditions: NodeConditions::new(resources.eviction_hard.clone()),
            resources,
            paths: HostPaths::default(),
            nodefs: nodefs.into(),
            container_runtime_version: container_runtime_version.into(),
            kubelet_version: String::new(),
            last: None,
        }
    }

    /// Reads another `/proc`, `/sys` and `/etc` (tests).
    pub fn with_paths(mut self, paths: HostPaths) -> Self {
        self.paths = paths;
        self
    }

    /// The runtime's version as the CRI reports it (`containerd://1.6.20`),
    /// once the agent has asked.
    pub fn set_container_runtime_version(&mut self, version: &str) {
        if self.container_runtime_version != version {
            self.container_runtime_version = version.to_string();
        }
    }

    /// The `nodeInfo.kubeletVersion` to report (empty by default).
    pub fn with_kubelet_version(mut self, version: impl Into<String>) -> Self {
        self.kubelet_version = version.into();
        self
    }

    /// See [`NodeConditions::with_pressure_transition_period`].
    pub fn with_pressure_transition_period(mut self, period: Duration) -> Self {
        self.conditions = self.conditions.with_pressure_transition_period(period);
        self
    }

    pub fn resources(&self) -> &NodeResources {
        &self.resources
    }

    /// Samples the host and reports. Fails only when the host cannot be read and never could be;
    /// after one good sample, a failed one is reported with the last good capacity and `Unknown`
    /// pressure conditions (see [`NodeStatusReport::sample_error`]).
    pub fn report(&mut self, inputs: &ReadyInputs, now: DateTime<Utc>) -> Result<NodeStatusReport, HostError> {
        let node_info = NodeInfo::read(&self.paths, &self.container_runtime_version, &self.kubelet_version);
        let (allocation, conditions_changed, sample, sample_error) = match HostSample::read(&self.paths, &self.nodefs) {
            Ok(sample) => {
                let allocation = self.resources.compute(&sample);
                let changed = self.conditions.update(&sample, inputs, now);
                self.last = Some(allocation.clone());
                (allocation, changed, Some(sample), None)
            }
            Err(error) => {
                let Some(last) = self.last.clone() else { return Err(error) };
                let message = error.to_string();
                let changed = self.conditions.update_unsampled(&message, inputs, now);
                (last, changed, None, Some(message))
            }
        };
        Ok(NodeStatusReport {
            capacity: allocation.capacity,
            allocatable: allocation.allocatable,
            conditions: self.conditions.conditions().to_vec(),
            conditions_changed,
            node_info,
            sample,
            sample_error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fixtures::Fixture;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn os_release() {
        let text = "NAME=\"Ubuntu\"\nPRETTY_NAME=\"Ubuntu 22.04.4 LTS\"\nID=ubuntu\n";
        assert_eq!(os_release_field(text, "PRETTY_NAME").as_deref(), Some("Ubuntu 22.04.4 LTS"));
        assert_eq!(
            os_release_field("PRETTY_NAME='Alpine Linux v3.20'", "PRETTY_NAME").as_deref(),
            Some("Alpine Linux v3.20")
        );
        assert_eq!(os_release_field("PRETTY_NAME=Plain", "PRETTY_NAME").as_deref(), Some("Plain"));
        assert_eq!(os_release_field("PRETTY_NAMEX=no\nNAME=x", "PRETTY_NAME"), None);
        assert_eq!(os_release_field("PRETTY_NAME=\"\"", "PRETTY_NAME"), None);
        assert_eq!(go_arch("x86_64"), "amd64");
        assert_eq!(go_arch("aarch64"), "arm64");
        assert_eq!(go_arch("s390x"), "s390x");
    }

    #[test]
    fn report_from_a_fixture_host() {
        let f = Fixture::new();
        f.meminfo(16 << 30, 8 << 30, Some((512, 2 << 20)));
        f.write("proc/sys/kernel/osrelease", "6.8.0-45-generic\n");
        f.write("proc/sys/kernel/random/boot_id", "b0a1c2d3-0000-4000-8000-000000000001\n");
        f.write("etc/os-release", "NAME=Debian\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n");
        f.write("etc/machine-id", "0123456789abcdef0123456789abcdef\n");
        let resources = NodeResources {
            system_reserved: Reserved { cpu: Some("500m".parse().unwrap()), ..Reserved::default() },
            ..NodeResources::default()
        };
        let mut source = NodeStatusSource::new(resources, f.dir(), "containerd://1.7.20")
            .with_paths(f.paths.clone())
            .with_kubelet_version("v1.34.0");
        let report = source.report(&ReadyInputs::ready(), at(0)).unwrap();
        assert!(report.conditions_changed);
        assert!(report.sample_error.is_none());
        assert_eq!(report.capacity.cpu_milli, 4000);
        assert_eq!(report.allocatable.cpu_milli, 3500);
        // 16Gi − 100Mi − 1Gi of huge pages.
        assert_eq!(report.allocatable.memory_bytes, (15 << 30) - (100 << 20));

        let status = report.to_k8s_node_status();
        let capacity = status.capacity.as_ref().unwrap();
        assert_eq!(capacity["cpu"].0, "4");
        assert_eq!(capacity["memory"].0, "16Gi");
        assert_eq!(capacity["hugepages-2Mi"].0, "1Gi");
        assert_eq!(capacity["pods"].0, "110");
        assert!(capacity.contains_key("ephemeral-storage"));
        let allocatable = status.allocatable.as_ref().unwrap();
        assert_eq!(allocatable["cpu"].0, "3500m");
        assert_eq!(allocatable["memory"].0, "15260Mi");
        let info = status.node_info.as_ref().unwrap();
        assert_eq!(info.kernel_version, "6.8.0-45-generic");
        assert_eq!(info.os_image, "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(info.machine_id, "0123456789abcdef0123456789abcdef");
        assert_eq!(info.boot_id, "b0a1c2d3-0000-4000-8000-000000000001");
        assert_eq!(info.system_uuid, "");
        assert_eq!(info.operating_system, "linux");
        assert_eq!(info.container_runtime_version, "containerd://1.7.20");
        assert_eq!(info.kubelet_version, "v1.34.0");
        let conditions = status.conditions.as_ref().unwrap();
        assert_eq!(conditions.len(), 4);
        assert_eq!((conditions[3].type_.as_str(), conditions[3].status.as_str()), ("Ready", "True"));

        // The status serializes as the API expects.
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["allocatable"]["cpu"], "3500m");
        assert_eq!(json["nodeInfo"]["osImage"], "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(json["conditions"][0]["type"], "MemoryPressure");

        // A heartbeat with nothing changed.
        let report = source.report(&ReadyInputs::ready(), at(10)).unwrap();
        assert!(!report.conditions_changed);

        // Memory pressure appears.
        f.meminfo(16 << 30, 50 << 20, Some((512, 2 << 20)));
        let report = source.report(&ReadyInputs::ready(), at(20)).unwrap();
        assert!(report.conditions_changed);
        assert_eq!(report.conditions[0].status, ConditionStatus::True);
        assert_eq!(report.conditions[0].last_transition_time, at(20));
    }

    #[test]
    fn report_survives_a_failed_sample() {
        let f = Fixture::new();
        f.remove("proc/meminfo");
        let mut source = NodeStatusSource::new(NodeResources::default(), f.dir(), "").with_paths(f.paths.clone());
        let err = source.report(&ReadyInputs::ready(), at(0)).unwrap_err().to_string();
        assert!(err.contains("meminfo"), "{err}");

        f.meminfo(16 << 30, 8 << 30, None);
        let good = source.report(&ReadyInputs::ready(), at(10)).unwrap();
        f.remove("proc/meminfo");
        let report = source.report(&ReadyInputs::ready(), at(20)).unwrap();
        assert!(report.conditions_changed);
        assert!(report.sample.is_none());
        assert!(report.sample_error.as_deref().unwrap().contains("meminfo"));
        assert_eq!(report.capacity, good.capacity);
        assert_eq!(report.conditions[0].status, ConditionStatus::Unknown);
        assert_eq!(report.conditions[3].status, ConditionStatus::True);
        // No os-release under the fixture: the fallback name.
        assert_eq!(report.node_info.os_image, "Linux");
    }

    /// This machine is Linux: report it for real.
    #[test]
    fn reports_the_real_host() {
        let mut source = NodeStatusSource::new(NodeResources::default(), "/", "test://0");
        let report = source.report(&ReadyInputs::ready(), now()).expect("reporting this host");
        assert!(report.capacity.cpu_milli >= 1000);
        assert!(report.capacity.memory_bytes > 0);
        assert!(report.capacity.ephemeral_storage_bytes > 0);
        assert!(report.allocatable.memory_bytes <= report.capacity.memory_bytes);
        assert!(!report.node_info.kernel_version.is_empty());
        assert!(!report.node_info.architecture.is_empty());
        let status = report.to_k8s_node_status();
        assert!(status.capacity.unwrap()["memory"].0.parse::<crate::quantity::Quantity>().is_ok());
        assert_eq!(status.conditions.unwrap().len(), 4);
    }
}
