//! Node capacity and allocatable, computed as the kubelet computes them.
//!
//! ```text
//! allocatable = capacity − system-reserved − kube-reserved − hard eviction threshold
//! ```
//!
//! - `cpu`: online CPUs; no eviction threshold.
//! - `memory`: `MemTotal`, less `memory.available`, and less all memory set aside as huge pages
//!   (pods get huge pages through the `hugepages-*` resources, not through `memory`).
//! - `ephemeral-storage`: the node filesystem's size, less `nodefs.available`.
//! - `hugepages-<size>`: the pages configured for each size.
//! - `pods`: `max_pods` (at most `pods_per_core` × CPUs when that is set).
//!
//! Nothing is ever below zero. PIDs are not published in the Node status; the typed result carries
//! them (limit − reserved) for whoever sizes the pods' PID cgroup.
//!
//! [`NodeResources`] is the configuration: it deserializes (e.g. from a `[node]` TOML table) with the
//! kubelet's defaults and is checked as it is read:
//!
//! ```toml
//! system_reserved = { cpu = "100m", memory = "256Mi" }
//! kube_reserved = { cpu = "100m", memory = "128Mi", ephemeral-storage = "1Gi", pid = 1000 }
//! eviction_hard = { "memory.available" = "100Mi", "nodefs.available" = "10%" }
//! max_pods = 110
//! ```
//!
//! As with the kubelet, giving `eviction_hard` at all replaces the defaults: a signal left out has no
//! threshold (so `eviction_hard = {}` turns hard eviction off).

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::host::HostSample;
use crate::quantity::{format_bytes, format_milli, Quantity, QuantityError};

/// The kubelet's default `maxPods`.
pub const DEFAULT_MAX_PODS: u32 = 110;

/// A configuration value that is well-formed but not acceptable, naming the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct NodeConfigError {
    pub field: String,
    pub reason: String,
}

/// Resources set aside for daemons (`system_reserved`, `kube_reserved`). Unset means none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Reserved {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
    #[serde(
        default,
        rename = "ephemeral-storage",
        alias = "ephemeral_storage",
        skip_serializing_if = "Option::is_none"
    )]
    pub ephemeral_storage: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<Quantity>,
}

impl Reserved {
    pub fn cpu_milli(&self) -> u64 {
        self.cpu.map_or(0, |q| clamp_u64(q.as_milli()))
    }

    pub fn memory_bytes(&self) -> u64 {
        self.memory.map_or(0, |q| clamp_u64(q.as_bytes()))
    }

    pub fn ephemeral_storage_bytes(&self) -> u64 {
        self.ephemeral_storage.map_or(0, |q| clamp_u64(q.as_bytes()))
    }

    pub fn pids(&self) -> u64 {
        self.pid.map_or(0, |q| clamp_u64(q.as_value()))
    }

    fn validate(&self, name: &str) -> Result<(), NodeConfigError> {
        let fields = [
            ("cpu", &self.cpu),
            ("memory", &self.memory),
            ("ephemeral-storage", &self.ephemeral_storage),
            ("pid", &self.pid),
        ];
        for (field, value) in fields {
            let Some(q) = value else { continue };
            let error = |reason: String| NodeConfigError { field: format!("{name}.{field}"), reason };
            if q.is_negative() {
                return Err(error(format!("must not be negative, got \"{q}\"")));
            }
            if field == "pid" && !q.is_whole() {
                return Err(error(format!("must be a whole number of PIDs, got \"{q}\"")));
            }
        }
        Ok(())
    }
}

/// An eviction threshold: an absolute amount (`100Mi`, `1000` inodes) or a share of the signal's
/// capacity (`10%`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threshold {
    Quantity(Quantity),
    /// Thousandths of a percent (`10%` is 10_000), from 0 to 100_000.
    Percentage {
        milli_percent: u32,
    },
}

/// Why a threshold cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ThresholdError {
    #[error("invalid eviction threshold {input:?}: {reason}")]
    Invalid { input: String, reason: String },
    #[error("invalid eviction threshold: {0}")]
    Quantity(#[from] QuantityError),
}

impl Threshold {
    /// `10%`, `7.5%`, `100Mi`, `1000`.
    pub fn parse(input: &str) -> Result<Threshold, ThresholdError> {
        let invalid = |reason: &str| ThresholdError::Invalid { input: input.to_string(), reason: reason.to_string() };
        if let Some(number) = input.strip_suffix('%') {
            if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                return Err(invalid("a percentage must be a plain number from 0 to 100 followed by %, such as 10%"));
            }
            let milli =
                Quantity::parse(number).map_err(|_| invalid("a percentage must be a plain number such as 10%"))?;
            if milli.as_milli() > 100_000 {
                return Err(invalid("a percentage must not exceed 100%"));
            }
            return Ok(Threshold::Percentage { milli_percent: milli.as_milli() as u32 });
        }
        let q = Quantity::parse(input)?;
        if q.is_negative() {
            return Err(invalid("must not be negative"));
        }
        Ok(Threshold::Quantity(q))
    }

    /// `percent`% (whole percents; use [`Threshold::parse`] for fractions).
    pub fn percent(percent: u32) -> Threshold {
        Threshold::Percentage { milli_percent: percent.min(100) * 1000 }
    }

    /// The threshold as an amount of a signal whose capacity is `capacity` (rounded down for
    /// percentages, as the kubelet truncates).
    pub fn resolve(&self, capacity: u64) -> u64 {
        match *self {
            Threshold::Quantity(q) => clamp_u64(q.as_value()),
            Threshold::Percentage { milli_percent } => {
                (u128::from(capacity) * u128::from(milli_percent) / 100_000) as u64
            }
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Threshold::Quantity(q) => write!(f, "{q}"),
            Threshold::Percentage { milli_percent } => {
                let (whole, frac) = (milli_percent / 1000, milli_percent % 1000);
                if frac == 0 {
                    write!(f, "{whole}%")
                } else {
                    write!(f, "{whole}.{}%", format!("{frac:03}").trim_end_matches('0'))
                }
            }
        }
    }
}

impl Serialize for Threshold {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A string (`"10%"`, `"100Mi"`) or an integer (a count of inodes or PIDs).
impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = Threshold;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an eviction threshold such as \"100Mi\" or \"10%\"")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Threshold, E> {
                Threshold::parse(v).map_err(E::custom)
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Threshold, E> {
                Threshold::parse(&v.to_string()).map_err(E::custom)
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Threshold, E> {
                Threshold::parse(&v.to_string()).map_err(E::custom)
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

/// Hard eviction thresholds, keyed by the kubelet's signal names. [`Default`] is the kubelet's
/// defaults plus `pid.available<10%`; a signal set to `None` has no threshold.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EvictionHard {
    #[serde(default, rename = "memory.available", skip_serializing_if = "Option::is_none")]
    pub memory_available: Option<Threshold>,
    #[serde(default, rename = "nodefs.available", skip_serializing_if = "Option::is_none")]
    pub nodefs_available: Option<Threshold>,
    #[serde(default, rename = "nodefs.inodesFree", skip_serializing_if = "Option::is_none")]
    pub nodefs_inodes_free: Option<Threshold>,
    #[serde(default, rename = "pid.available", skip_serializing_if = "Option::is_none")]
    pub pid_available: Option<Threshold>,
}

impl Default for EvictionHard {
    /// `memory.available<100Mi`, `nodefs.available<10%`, `nodefs.inodesFree<5%`, `pid.available<10%`.
    fn default() -> Self {
        EvictionHard {
            memory_available: Some(Threshold::Quantity(Quantity::from_value(
                100 << 20,
                crate::quantity::Format::BinarySi,
            ))),
            nodefs_available: Some(Threshold::percent(10)),
            nodefs_inodes_free: Some(Threshold::percent(5)),
            pid_available: Some(Threshold::percent(10)),
        }
    }
}

impl EvictionHard {
    /// No thresholds at all.
    pub fn none() -> Self {
        EvictionHard { memory_available: None, nodefs_available: None, nodefs_inodes_free: None, pid_available: None }
    }

    /// Bytes of memory that must stay available (0 when unset).
    pub fn memory_available_bytes(&self, sample: &HostSample) -> u64 {
        self.memory_available.map_or(0, |t| t.resolve(sample.memory.total_bytes))
    }

    /// Bytes of the node filesystem that must stay available (0 when unset).
    pub fn nodefs_available_bytes(&self, sample: &HostSample) -> u64 {
        self.nodefs_available.map_or(0, |t| t.resolve(sample.nodefs.total_bytes))
    }

    /// Inodes of the node filesystem that must stay free (0 when unset).
    pub fn nodefs_inodes_free(&self, sample: &HostSample) -> u64 {
        self.nodefs_inodes_free.map_or(0, |t| t.resolve(sample.nodefs.total_inodes))
    }

    /// PIDs that must stay available (0 when unset).
    pub fn pid_available(&self, sample: &HostSample) -> u64 {
        self.pid_available.map_or(0, |t| t.resolve(sample.pids.limit()))
    }
}

/// The kubelet's allocatable knobs. [`Default`] is the kubelet's defaults.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "RawNodeResources")]
pub struct NodeResources {
    pub system_reserved: Reserved,
    pub kube_reserved: Reserved,
    pub eviction_hard: EvictionHard,
    pub max_pods: u32,
    /// At most this many pods per CPU; 0 for no such limit.
    pub pods_per_core: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNodeResources {
    #[serde(default)]
    system_reserved: Reserved,
    #[serde(default)]
    kube_reserved: Reserved,
    #[serde(default)]
    eviction_hard: EvictionHard,
    #[serde(default = "default_max_pods")]
    max_pods: u32,
    #[serde(default)]
    pods_per_core: u32,
}

fn default_max_pods() -> u32 {
    DEFAULT_MAX_PODS
}

impl TryFrom<RawNodeResources> for NodeResources {
    type Error = NodeConfigError;

    fn try_from(raw: RawNodeResources) -> Result<Self, Self::Error> {
        let r = NodeResources {
            system_reserved: raw.system_reserved,
            kube_reserved: raw.kube_reserved,
            eviction_hard: raw.eviction_hard,
            max_pods: raw.max_pods,
            pods_per_core: raw.pods_per_core,
        };
        r.validate()?;
        Ok(r)
    }
}

impl Default for NodeResources {
    fn default() -> Self {
        NodeResources {
            system_reserved: Reserved::default(),
            kube_reserved: Reserved::default(),
            eviction_hard: EvictionHard::default(),
            max_pods: DEFAULT_MAX_PODS,
            pods_per_core: 0,
        }
    }
}

/// Amounts of each node resource, in plain units.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceAmounts {
    pub cpu_milli: u64,
    pub memory_bytes: u64,
    pub ephemeral_storage_bytes: u64,
    /// Huge page size in bytes → bytes of huge pages of that size.
    pub hugepages_bytes: BTreeMap<u64, u64>,
    pub pods: u64,
    /// Not published in the Node status.
    pub pids: u64,
}

impl ResourceAmounts {
    /// The Node status form: `cpu`, `memory`, `ephemeral-storage`, `hugepages-<size>`, `pods`.
    pub fn to_k8s(&self) -> BTreeMap<String, K8sQuantity> {
        let mut map = BTreeMap::new();
        map.insert("cpu".to_string(), K8sQuantity(format_milli(i64::try_from(self.cpu_milli).unwrap_or(i64::MAX))));
        map.insert("memory".to_string(), K8sQuantity(format_bytes(self.memory_bytes)));
        map.insert("ephemeral-storage".to_string(), K8sQuantity(format_bytes(self.ephemeral_storage_bytes)));
        for (&size, &bytes) in &self.hugepages_bytes {
            map.insert(hugepage_resource_name(size), K8sQuantity(format_bytes(bytes)));
        }
        map.insert("pods".to_string(), K8sQuantity(format_bytes_decimal(self.pods)));
        map
    }
}

fn format_bytes_decimal(n: u64) -> String {
    format_milli(i64::try_from(n).unwrap_or(i64::MAX / 1000).saturating_mul(1000))
}

/// The resource name of huge pages of a size: `hugepages-2Mi`, `hugepages-1Gi`.
pub fn hugepage_resource_name(page_size_bytes: u64) -> String {
    format!("hugepages-{}", format_bytes(page_size_bytes))
}

/// Capacity and allocatable together.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeAllocation {
    pub capacity: ResourceAmounts,
    pub allocatable: ResourceAmounts,
}

impl NodeResources {
    /// Checks what serde cannot: no negative reservations, whole PIDs.
    pub fn validate(&self) -> Result<(), NodeConfigError> {
        self.system_reserved.validate("system_reserved")?;
        self.kube_reserved.validate("kube_reserved")
    }

    /// Capacity from the host sample, and allocatable from that.
    pub fn compute(&self, sample: &HostSample) -> NodeAllocation {
        let (sys, kube, eviction) = (&self.system_reserved, &self.kube_reserved, &self.eviction_hard);
        let mut pods = u64::from(self.max_pods);
        if self.pods_per_core > 0 {
            pods = pods.min(u64::from(self.pods_per_core) * u64::from(sample.cpus));
        }
        let hugepages_bytes: BTreeMap<u64, u64> =
            sample.hugepages.iter().map(|(&size, &pages)| (size, size.saturating_mul(pages))).collect();

        let capacity = ResourceAmounts {
            cpu_milli: u64::from(sample.cpus) * 1000,
            memory_bytes: sample.memory.total_bytes,
            ephemeral_storage_bytes: sample.nodefs.total_bytes,
            hugepages_bytes: hugepages_bytes.clone(),
            pods,
            pids: sample.pids.limit(),
        };
        let allocatable = ResourceAmounts {
            cpu_milli: capacity.cpu_milli.saturating_sub(sys.cpu_milli()).saturating_sub(kube.cpu_milli()),
            memory_bytes: capacity
                .memory_bytes
                .saturating_sub(sys.memory_bytes())
                .saturating_sub(kube.memory_bytes())
                .saturating_sub(eviction.memory_available_bytes(sample))
                .saturating_sub(sample.hugepages_bytes()),
            ephemeral_storage_bytes: capacity
                .ephemeral_storage_bytes
                .saturating_sub(sys.ephemeral_storage_bytes())
                .saturating_sub(kube.ephemeral_storage_bytes())
                .saturating_sub(eviction.nodefs_available_bytes(sample)),
            hugepages_bytes,
            pods,
            pids: capacity.pids.saturating_sub(sys.pids()).saturating_sub(kube.pids()),
        };
        NodeAllocation { capacity, allocatable }
    }
}

fn clamp_u64(v: i128) -> u64 {
    v.clamp(0, i128::from(u64::MAX)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{FsStats, MemInfo, PidStats, HUGEPAGE_2MI};

    const GI: u64 = 1 << 30;
    const MI: u64 = 1 << 20;

    pub(crate) fn sample(cpus: u32, memory: u64, storage: u64) -> HostSample {
        HostSample {
            cpus,
            memory: MemInfo {
                total_bytes: memory,
                available_bytes: memory / 2,
                hugepages_total: None,
                hugepage_size_bytes: None,
            },
            hugepages: BTreeMap::new(),
            nodefs: FsStats {
                total_bytes: storage,
                available_bytes: storage / 2,
                total_inodes: 1_000_000,
                free_inodes: 500_000,
            },
            pids: PidStats { pid_max: 4_194_304, threads_max: Some(100_000), running: 500 },
        }
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        node: NodeResources,
    }

    fn from_toml(text: &str) -> Result<NodeResources, String> {
        toml::from_str::<File>(text).map(|f| f.node).map_err(|e| e.to_string())
    }

    #[test]
    fn thresholds_parse() {
        assert_eq!(Threshold::parse("10%"), Ok(Threshold::Percentage { milli_percent: 10_000 }));
        assert_eq!(Threshold::parse("7.5%"), Ok(Threshold::Percentage { milli_percent: 7_500 }));
        assert_eq!(Threshold::parse("0%"), Ok(Threshold::Percentage { milli_percent: 0 }));
        assert_eq!(Threshold::parse("100%"), Ok(Threshold::Percentage { milli_percent: 100_000 }));
        assert_eq!(Threshold::parse("100Mi"), Ok(Threshold::Quantity(Quantity::parse("100Mi").unwrap())));
        assert_eq!(Threshold::parse("1000").unwrap().resolve(0), 1000);
        assert_eq!(Threshold::parse("7.5%").unwrap().to_string(), "7.5%");
        assert_eq!(Threshold::parse("0.125%").unwrap().to_string(), "0.125%");
        assert_eq!(Threshold::parse("10%").unwrap().to_string(), "10%");
        assert_eq!(Threshold::parse("1.5Gi").unwrap().to_string(), "1536Mi");
    }

    #[test]
    fn threshold_errors_name_the_input() {
        for (bad, expect) in [
            ("101%", "must not exceed 100%"),
            ("-5%", "plain number"),
            ("%", "plain number"),
            ("1.2.3%", "plain number"),
            ("10Mi%", "plain number"),
            ("-100Mi", "must not be negative"),
            ("100MB", "unknown suffix"),
            ("", "empty"),
            ("10 %", "plain number"),
        ] {
            let err = Threshold::parse(bad).expect_err(bad).to_string();
            assert!(err.contains(expect), "{bad:?}: {err}");
            if !bad.is_empty() {
                assert!(err.contains(&format!("{bad:?}")) || err.contains(bad.trim_end_matches('%')), "{bad:?}: {err}");
            }
        }
    }

    #[test]
    fn thresholds_resolve() {
        assert_eq!(Threshold::percent(10).resolve(1000), 100);
        assert_eq!(Threshold::parse("7.5%").unwrap().resolve(1000), 75);
        assert_eq!(Threshold::percent(10).resolve(999), 99); // rounded down
        assert_eq!(Threshold::percent(100).resolve(u64::MAX), u64::MAX);
        assert_eq!(Threshold::parse("100Mi").unwrap().resolve(1), 100 * MI);
    }

    #[test]
    fn config_defaults() {
        let r = from_toml("[node]\n").unwrap();
        assert_eq!(r, NodeResources::default());
        assert_eq!(r.max_pods, 110);
        assert_eq!(r.eviction_hard.memory_available.unwrap().to_string(), "100Mi");
        assert_eq!(r.eviction_hard.nodefs_available, Some(Threshold::percent(10)));
        assert_eq!(r.eviction_hard.nodefs_inodes_free, Some(Threshold::percent(5)));
        assert_eq!(r.eviction_hard.pid_available, Some(Threshold::percent(10)));
        assert_eq!(r.system_reserved, Reserved::default());
    }

    #[test]
    fn config_from_toml() {
        let r = from_toml(
            r#"
            [node]
            system_reserved = { cpu = "100m", memory = "256Mi" }
            kube_reserved = { cpu = "0.1", memory = "128Mi", ephemeral-storage = "1Gi", pid = 1000 }
            eviction_hard = { "memory.available" = "200Mi", "nodefs.available" = "15%", "nodefs.inodesFree" = 5000 }
            max_pods = 50
            "#,
        )
        .unwrap();
        assert_eq!(r.system_reserved.cpu_milli(), 100);
        assert_eq!(r.system_reserved.memory_bytes(), 256 * MI);
        assert_eq!(r.kube_reserved.cpu_milli(), 100);
        assert_eq!(r.kube_reserved.ephemeral_storage_bytes(), GI);
        assert_eq!(r.kube_reserved.pids(), 1000);
        assert_eq!(r.max_pods, 50);
        assert_eq!(r.eviction_hard.memory_available.unwrap().resolve(0), 200 * MI);
        assert_eq!(r.eviction_hard.nodefs_available, Some(Threshold::percent(15)));
        assert_eq!(r.eviction_hard.nodefs_inodes_free.unwrap().resolve(0), 5000);
        // As with the kubelet: a signal left out of an explicit eviction_hard has no threshold.
        assert_eq!(r.eviction_hard.pid_available, None);

        let r = from_toml("[node]\neviction_hard = {}\n").unwrap();
        assert_eq!(r.eviction_hard, EvictionHard::none());
    }

    #[test]
    fn config_errors_are_clear() {
        for (text, expect) in [
            ("[node]\nsystem_reserved = { cpu = \"-100m\" }", "system_reserved.cpu: must not be negative"),
            ("[node]\nkube_reserved = { pid = \"1.5\" }", "kube_reserved.pid: must be a whole number"),
            ("[node]\nsystem_reserved = { gpu = \"1\" }", "unknown field `gpu`"),
            ("[node]\nsystem_reserved = { memory = \"12Qi\" }", "invalid quantity \"12Qi\""),
            ("[node]\nsystem_reserved = { memory = 1.5 }", "floating-point"),
            ("[node]\neviction_hard = { \"imagefs.available\" = \"15%\" }", "unknown field `imagefs.available`"),
            ("[node]\neviction_hard = { \"memory.available\" = \"110%\" }", "must not exceed 100%"),
            ("[node]\neviction_hard = { \"memory.available\" = \"-1Gi\" }", "must not be negative"),
            ("[node]\nmax_pods = -1", "max_pods"),
            ("[node]\nmaxPods = 10", "unknown field `maxPods`"),
        ] {
            let err = from_toml(text).expect_err(text);
            assert!(err.contains(expect), "{text}\n=> {err}");
        }
    }

    /// The worked example in the Kubernetes docs ("Reserve Compute Resources for System Daemons").
    #[test]
    fn allocatable_docs_example() {
        let r = NodeResources {
            kube_reserved: Reserved {
                cpu: Some("1".parse().unwrap()),
                memory: Some("2Gi".parse().unwrap()),
                ephemeral_storage: Some("1Gi".parse().unwrap()),
                pid: None,
            },
            system_reserved: Reserved {
                cpu: Some("500m".parse().unwrap()),
                memory: Some("1Gi".parse().unwrap()),
                ephemeral_storage: Some("1Gi".parse().unwrap()),
                pid: None,
            },
            eviction_hard: EvictionHard {
                memory_available: Some(Threshold::parse("500Mi").unwrap()),
                nodefs_available: Some(Threshold::percent(10)),
                ..EvictionHard::none()
            },
            ..NodeResources::default()
        };
        let a = r.compute(&sample(16, 32 * GI, 100 * GI));
        assert_eq!(a.allocatable.cpu_milli, 14_500);
        // The docs round 500Mi to half a Gi and say 28.5Gi; exactly, it is 32Gi − 3Gi − 500Mi.
        assert_eq!(a.allocatable.memory_bytes, 29 * GI - 500 * MI);
        assert_eq!(a.allocatable.ephemeral_storage_bytes, 88 * GI);
        assert_eq!(a.allocatable.pods, 110);

        let k = a.allocatable.to_k8s();
        assert_eq!(k["cpu"].0, "14500m");
        assert_eq!(k["memory"].0, "29196Mi");
        assert_eq!(k["ephemeral-storage"].0, "88Gi");
        assert_eq!(k["pods"].0, "110");
        let k = a.capacity.to_k8s();
        assert_eq!(k["cpu"].0, "16");
        assert_eq!(k["memory"].0, "32Gi");
        assert_eq!(k["ephemeral-storage"].0, "100Gi");
        assert_eq!(k.len(), 4);
    }

    #[test]
    fn allocatable_defaults_and_hugepages() {
        let mut s = sample(4, 16 * GI, 100 * GI);
        s.hugepages.insert(HUGEPAGE_2MI, 1024);
        s.hugepages.insert(GI, 2);
        let a = NodeResources::default().compute(&s);
        assert_eq!(a.capacity.cpu_milli, 4000);
        assert_eq!(a.allocatable.cpu_milli, 4000);
        // 16Gi − 100Mi (memory.available) − 2Gi (2Mi pages) − 2Gi (1Gi pages).
        assert_eq!(a.allocatable.memory_bytes, 12 * GI - 100 * MI);
        assert_eq!(a.allocatable.ephemeral_storage_bytes, 90 * GI);
        assert_eq!(a.capacity.pids, 100_000);
        assert_eq!(a.allocatable.pids, 100_000);

        let k = a.capacity.to_k8s();
        assert_eq!(k["hugepages-2Mi"].0, "2Gi");
        assert_eq!(k["hugepages-1Gi"].0, "2Gi");
        assert!(!k.contains_key("pids"));
        let k = a.allocatable.to_k8s();
        assert_eq!(k["memory"].0, "12188Mi");
        assert_eq!(k["hugepages-2Mi"].0, "2Gi");
    }

    #[test]
    fn allocatable_never_below_zero() {
        let r = NodeResources {
            system_reserved: Reserved {
                cpu: Some("8".parse().unwrap()),
                memory: Some("64Gi".parse().unwrap()),
                ephemeral_storage: Some("1Ti".parse().unwrap()),
                pid: Some("1000000".parse().unwrap()),
            },
            ..NodeResources::default()
        };
        let mut s = sample(4, 16 * GI, 100 * GI);
        s.hugepages.insert(HUGEPAGE_2MI, 100_000);
        let a = r.compute(&s);
        assert_eq!(a.allocatable.cpu_milli, 0);
        assert_eq!(a.allocatable.memory_bytes, 0);
        assert_eq!(a.allocatable.ephemeral_storage_bytes, 0);
        assert_eq!(a.allocatable.pids, 0);
        let k = a.allocatable.to_k8s();
        assert_eq!(k["cpu"].0, "0");
        assert_eq!(k["memory"].0, "0");

        // Huge pages alone larger than memory.
        let a = NodeResources { eviction_hard: EvictionHard::none(), ..NodeResources::default() }.compute(&s);
        assert_eq!(a.allocatable.memory_bytes, 0);
    }

    #[test]
    fn pods_per_core() {
        let r = NodeResources { pods_per_core: 10, ..NodeResources::default() };
        assert_eq!(r.compute(&sample(4, GI, GI)).capacity.pods, 40);
        assert_eq!(r.compute(&sample(64, GI, GI)).capacity.pods, 110);
        let r = NodeResources { max_pods: 0, ..NodeResources::default() };
        assert_eq!(r.compute(&sample(4, GI, GI)).allocatable.to_k8s()["pods"].0, "0");
    }
}
