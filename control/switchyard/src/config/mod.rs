//! The appliance's configuration file (TOML), read and checked once.
//!
//! Every field is parsed into its type here ([`fields`]), before anything
//! starts, so that a mistake is reported with the file, the line and the
//! field rather than as a failure somewhere in DPDK; nothing downstream
//! parses a string of the file again. The control loop keeps the config it
//! last accepted and builds every publication from it ([`snapshot`]).

mod fields;
mod snapshot;

pub use fields::{BackendAddr, Ipv4Prefix, Ipv6Prefix, Listen, Mac, Prefix, Protocol};

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use agent::AgentConfig;
use anyhow::{bail, Context, Result};
use cluster::ClusterConfig;
use engine::{DataplaneConfig, PortSpec};
use node::NodeResources;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The forwarding side; absent, the process runs the node agent only.
    pub dataplane: Option<DataplaneConfig>,
    /// The node agent (kubelet duties); absent, the process only forwards.
    pub agent: Option<AgentConfig>,
    /// The Kubernetes API server; absent, the appliance runs standalone.
    pub cluster: Option<ClusterConfig>,
    /// The node's resources: reservations and eviction thresholds.
    #[serde(default)]
    pub node: NodeResources,
    #[serde(default, rename = "port")]
    pub ports: Vec<PortConfig>,
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
    #[serde(default, rename = "neighbour")]
    pub neighbours: Vec<NeighbourConfig>,
    /// Services given in the file itself (tests, fixed appliances).
    #[serde(default, rename = "service")]
    pub services: Vec<ServiceConfig>,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub admin: AdminConfig,
}

/// The admin API's address, shared with the CLI's default.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9477";
/// The Prometheus endpoint's default address.
const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9476";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Where the admin API (for the CLI) listens; `""` disables it.
    #[serde(default = "default_admin_listen")]
    pub listen: Listen,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig { listen: default_admin_listen() }
    }
}

fn default_admin_listen() -> Listen {
    Listen(DEFAULT_ADMIN_LISTEN.parse().ok())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where the Prometheus endpoint listens; `""` disables it.
    #[serde(default = "default_metrics_listen")]
    pub listen: Listen,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { listen: default_metrics_listen() }
    }
}

fn default_metrics_listen() -> Listen {
    Listen(DEFAULT_METRICS_LISTEN.parse().ok())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    /// The DPDK device name: a vdev name (`net_pcap0`) or a PCI address.
    pub name: String,
    /// Use this MAC instead of the device's own.
    pub mac: Option<Mac>,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    /// Source-NAT flows that leave through this port (see docs/dataplane.md).
    #[serde(default)]
    pub masquerade: bool,
    /// The on-link IPv4 subnet (`10.244.1.0/24`): backends in it are
    /// resolved with ARP on this port.
    pub ipv4_subnet: Option<Ipv4Prefix>,
    /// The on-link IPv6 subnet (`fd00:10:244:1::/64`): backends in it are
    /// resolved with Neighbor Solicitations on this port (sent from `ipv6`,
    /// or from the port's link-local address without one).
    pub ipv6_subnet: Option<Ipv6Prefix>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// `a.b.c.d/len` or `x::/len`.
    pub prefix: Prefix,
    /// Name of the port the route leaves through.
    pub port: String,
    /// MAC of the next hop on that port.
    pub gateway_mac: Mac,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighbourConfig {
    pub address: IpAddr,
    pub port: String,
    pub mac: Mac,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// `namespace/name:port` as shown by the CLI.
    pub name: String,
    pub vip: IpAddr,
    pub port: u16,
    #[serde(default)]
    pub protocol: Protocol,
    #[serde(default)]
    pub affinity_timeout_seconds: u32,
    /// `address:port` of each backend (`[v6]:port` for IPv6).
    #[serde(default)]
    pub backends: Vec<BackendAddr>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
        Config::parse(&text).with_context(|| format!("in config {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Config> {
        let config: Config = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// The index of the port called `name`.
    pub fn port_index(&self, name: &str) -> Result<u16> {
        self.ports
            .iter()
            .position(|p| p.name == name)
            .map(|i| i as u16)
            .with_context(|| format!("no [[port]] is named {name:?}"))
    }

    /// The ports as the engine opens them, in port-id order.
    pub fn port_specs(&self) -> Vec<PortSpec> {
        self.ports
            .iter()
            .map(|p| PortSpec {
                name: p.name.clone(),
                ipv4_subnet: p.ipv4_subnet.map(|s| (s.addr, s.len)),
                ipv6_subnet: p.ipv6_subnet.map(|s| (s.addr, s.len)),
            })
            .collect()
    }

    /// Checks what no single field can: references between sections and
    /// combinations of settings.
    fn validate(&self) -> Result<()> {
        if let Some(agent) = &self.agent {
            agent.validate()?;
        }
        let Some(d) = &self.dataplane else {
            if self.agent.is_none() && self.cluster.is_none() {
                bail!("nothing to run: the config has neither a [dataplane] nor an [agent] section");
            }
            if !self.ports.is_empty() || !self.services.is_empty() {
                bail!("[[port]] and [[service]] entries need a [dataplane] section");
            }
            return Ok(());
        };
        if self.ports.is_empty() {
            bail!("no [[port]] configured: the dataplane needs at least one");
        }
        if d.workers.is_empty() {
            bail!("dataplane.workers is empty: at least one worker core is needed");
        }
        let mut seen = HashSet::new();
        for w in &d.workers {
            if !seen.insert(w) {
                bail!("dataplane.workers lists core {w} twice");
            }
        }
        if d.workers.len() > 1 && self.ports.iter().any(|p| !p.masquerade) {
            // Replies to non-masqueraded flows carry nothing that names the
            // core holding the flow; see `flow::ports`.
            bail!(
                "dataplane.workers has {} cores, but a port without masquerade needs a single worker core \
                 (replies to its flows cannot be steered to the core that owns them)",
                d.workers.len()
            );
        }
        if d.flow_capacity < 16 {
            bail!("dataplane.flow_capacity {} is too small (at least 16)", d.flow_capacity);
        }
        let [first, last] = d.source_ports;
        if first == 0 || first > last {
            bail!("dataplane.source_ports [{first}, {last}] is not a range of non-zero ports");
        }
        let mut names = HashSet::new();
        for p in &self.ports {
            if !names.insert(&p.name) {
                bail!("two [[port]] entries are named {:?}", p.name);
            }
            if p.masquerade && p.ipv4.is_none() && p.ipv6.is_none() {
                bail!("port {:?} masquerades but has no ipv4 or ipv6 address to masquerade to", p.name);
            }
        }
        for r in &self.routes {
            self.port_index(&r.port).with_context(|| format!("[[route]] {}", r.prefix))?;
        }
        for n in &self.neighbours {
            self.port_index(&n.port).with_context(|| format!("[[neighbour]] {}", n.address))?;
        }
        for s in &self.services {
            for b in &s.backends {
                if b.0.is_ipv4() != s.vip.is_ipv4() {
                    bail!("service {:?}: backend {} is not of the VIP's address family", s.name, b.0);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [dataplane]
        eal_args = ["--in-memory", "--no-pci"]
        [[port]]
        name = "net_null0"
        ipv4 = "192.0.2.1"
        masquerade = true
        [[service]]
        name = "default/web:http"
        vip = "10.96.0.10"
        port = 80
        backends = ["10.244.0.2:8080", "10.244.0.3:8080"]
    "#;

    #[test]
    fn minimal_config_parses_with_defaults() {
        let c = Config::parse(MINIMAL).unwrap();
        assert_eq!(c.dataplane.as_ref().unwrap().workers, vec![1]);
        assert_eq!(c.services[0].protocol, Protocol(dataplane::tables::proto::TCP));
        assert_eq!(c.metrics.listen, Listen(Some("127.0.0.1:9476".parse().unwrap())));
    }

    #[test]
    fn mistakes_are_named() {
        let err = |text: &str| format!("{:#}", Config::parse(text).unwrap_err());
        assert!(err(&MINIMAL.replace("10.244.0.3:8080", "10.244.0.3")).contains("is not address:port"));
        assert!(err(&MINIMAL.replace("\"TCP\"", "\"ICMP\"").replace("port = 80", "port = 80\nprotocol = \"ICMP\""))
            .contains("unknown protocol"));
        assert!(err(&MINIMAL.replace("masquerade = true", "masquerade = true\nbogus = 1")).contains("unknown field"));
        assert!(err(&MINIMAL.replace("ipv4 = \"192.0.2.1\"", "")).contains("no ipv4 or ipv6"));
        assert!(err(&MINIMAL
            .replace("[dataplane]", "[dataplane]\nworkers = [1, 2]\n")
            .replace("masquerade = true", "masquerade = false"))
        .contains("single worker core"));
        assert!(err("[agent]\nbackoff_initial_seconds = 0\n").contains("backoff"));
        assert!(err("[metrics]\nlisten = \"\"\n").contains("nothing to run"));
    }

    #[test]
    fn on_link_subnets_are_checked_by_family() {
        let with = |field: &str| MINIMAL.replace("masquerade = true", &format!("masquerade = true\n{field}"));
        let port = Config::parse(&with("ipv6_subnet = \"fd00:10:244:1::/64\"")).expect("an IPv6 subnet parses");
        let subnet = port.ports[0].ipv6_subnet.expect("the subnet is kept");
        assert_eq!((subnet.addr.to_string(), subnet.len), ("fd00:10:244:1::".to_string(), 64));
        let err = |text: &str| format!("{:#}", Config::parse(text).unwrap_err());
        assert!(err(&with("ipv6_subnet = \"10.244.1.0/24\"")).contains("\"10.244.1.0/24\" is not an IPv6 prefix"));
        assert!(err(&with("ipv6_subnet = \"fd00::/129\"")).contains("longer than 128"));
        assert!(err(&with("ipv6_subnet = \"fd00::\"")).contains("not a prefix"));
        assert!(err(&with("ipv6_subnet = \"fd00::zz/64\"")).contains("bad address"));
        assert!(err(&with("ipv4_subnet = \"fd00::/64\"")).contains("is not an IPv4 prefix"));
    }

    #[test]
    fn a_bad_field_names_its_line_and_field() {
        let text = MINIMAL.to_string()
            + r#"
        [[route]]
        prefix = "10.244.0.0/16"
        port = "net_null0"
        gateway_mac = "02:00:00:00:b0"
        "#;
        let err = format!("{:#}", Config::parse(&text).unwrap_err());
        assert!(err.contains("line 17"), "{err}");
        assert!(err.contains("gateway_mac"), "{err}");
        assert!(err.contains("is not a MAC address"), "{err}");
    }

    /// The configs the repository ships (the demo's, the pcap demo's, the
    /// DaemonSet's) are valid.
    #[test]
    fn shipped_configs_parse() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs");
        for file in ["demo/switchyard.toml", "demo-pcap.toml"] {
            let text = std::fs::read_to_string(format!("{root}/{file}")).expect("the config is there");
            // The demos fill these in.
            let text = text
                .replace("@WORKER@", "1")
                .replace("@PMD@", "af_packet")
                .replace("@CONTAINERD@", "unix:///run/c.sock");
            if let Err(e) = Config::parse(&text) {
                panic!("configs/{file}: {e:#}");
            }
        }
        let daemonset = std::fs::read_to_string(format!("{root}/kubernetes/daemonset.yaml")).expect("there");
        let embedded = daemonset
            .split("switchyard.toml: |\n")
            .nth(1)
            .and_then(|rest| rest.split("\n---").next())
            .expect("the DaemonSet's ConfigMap holds switchyard.toml");
        let toml: String = embedded.lines().map(|l| l.strip_prefix("    ").unwrap_or(l)).collect::<Vec<_>>().join("\n");
        if let Err(e) = Config::parse(&toml) {
            panic!("configs/kubernetes/daemonset.yaml: {e:#}");
        }
    }
}
