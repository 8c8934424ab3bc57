//! The appliance's configuration file (TOML), read once at start.
//!
//! Every field is checked here, before anything starts, so that a mistake is
//! reported with the field's name and the file rather than as a failure
//! somewhere in DPDK.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use dataplane::tables::{proto, DEFAULT_MAX_RING_SIZE};
use dataplane::wire::MacAddr;
use serde::Deserialize;

use crate::agent::AgentConfig;
use crate::cluster::ClusterConfig;
use crate::node::NodeResources;

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Where the admin API (for the CLI) listens; empty to disable.
    #[serde(default = "default_admin_listen")]
    pub listen: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig { listen: default_admin_listen() }
    }
}

/// The admin API's address, shared with the CLI's default.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9477";

fn default_admin_listen() -> String {
    DEFAULT_ADMIN_LISTEN.into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataplaneConfig {
    /// EAL arguments, as for any DPDK application (`--in-memory`, `--vdev`, `-a`).
    #[serde(default)]
    pub eal_args: Vec<String>,
    /// CPU cores to pin the worker cores to; one rx/tx queue pair each per port.
    #[serde(default = "default_workers")]
    pub workers: Vec<usize>,
    /// Flow table entries per worker (two per NAT flow).
    #[serde(default = "default_flow_capacity")]
    pub flow_capacity: usize,
    /// Source ports for masqueraded flows: `[first, last]`.
    #[serde(default = "default_source_ports")]
    pub source_ports: [u16; 2],
    /// Largest Maglev ring (slots); rounded down to the ring-size ladder.
    #[serde(default = "default_max_ring")]
    pub max_ring_size: usize,
    /// Mbufs in the packet pool (per NUMA socket).
    #[serde(default = "default_mbufs")]
    pub mbufs: u32,
    #[serde(default)]
    pub timeouts: TimeoutsConfig,
    /// Stop after this many seconds (tests and benches); 0 runs until a signal.
    #[serde(default)]
    pub run_seconds: u64,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsConfig {
    pub tcp_new: Option<u32>,
    pub tcp_open: Option<u32>,
    pub tcp_closing: Option<u32>,
    pub udp: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    /// The DPDK device name: a vdev name (`net_pcap0`) or a PCI address.
    pub name: String,
    /// Use this MAC instead of the device's own.
    pub mac: Option<String>,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    /// Source-NAT flows that leave through this port (see the README).
    #[serde(default)]
    pub masquerade: bool,
    /// The on-link IPv4 subnet (`10.244.1.0/24`): backends in it are
    /// resolved with ARP on this port.
    pub ipv4_subnet: Option<String>,
    /// The on-link IPv6 subnet (`fd00:10:244:1::/64`): backends in it are
    /// resolved with Neighbor Solicitations on this port (sent from `ipv6`,
    /// or from the port's link-local address without one).
    pub ipv6_subnet: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// `a.b.c.d/len` or `x::/len`.
    pub prefix: String,
    /// Name of the port the route leaves through.
    pub port: String,
    /// MAC of the next hop on that port.
    pub gateway_mac: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighbourConfig {
    pub address: IpAddr,
    pub port: String,
    pub mac: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// `namespace/name:port` as shown by the CLI.
    pub name: String,
    pub vip: IpAddr,
    pub port: u16,
    #[serde(default = "default_protocol")]
    pub protocol: String,
    #[serde(default)]
    pub affinity_timeout_seconds: u32,
    /// `address:port` of each backend (`[v6]:port` for IPv6).
    #[serde(default)]
    pub backends: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where the Prometheus endpoint listens; empty to disable.
    #[serde(default = "default_metrics_listen")]
    pub listen: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { listen: default_metrics_listen() }
    }
}

fn default_workers() -> Vec<usize> {
    vec![1]
}
fn default_flow_capacity() -> usize {
    1 << 18
}
/// Above the NodePort range (30000–32767), so that a reply to a
/// masqueraded flow is never taken for NodePort traffic.
fn default_source_ports() -> [u16; 2] {
    [32768, 65535]
}
fn default_max_ring() -> usize {
    DEFAULT_MAX_RING_SIZE
}
fn default_mbufs() -> u32 {
    16_383
}
fn default_protocol() -> String {
    "TCP".into()
}
fn default_metrics_listen() -> String {
    "127.0.0.1:9476".into()
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Result<MacAddr> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        bail!("{s:?} is not a MAC address (want six hex octets separated by ':')");
    }
    let mut mac = [0u8; 6];
    for (octet, part) in mac.iter_mut().zip(parts) {
        *octet = u8::from_str_radix(part, 16).with_context(|| format!("{s:?} is not a MAC address"))?;
    }
    Ok(MacAddr(mac))
}

/// Parses `address/len`.
pub fn parse_prefix(s: &str) -> Result<(IpAddr, u8)> {
    let (addr, len) = s.split_once('/').with_context(|| format!("{s:?} is not a prefix (want address/len)"))?;
    let addr = IpAddr::from_str(addr).with_context(|| format!("{s:?}: bad address"))?;
    let len: u8 = len.parse().with_context(|| format!("{s:?}: bad prefix length"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if len > max {
        bail!("{s:?}: prefix length {len} is longer than {max}");
    }
    Ok((addr, len))
}

/// Parses a protocol name as Kubernetes writes it.
pub fn parse_protocol(s: &str) -> Result<u8> {
    match s.to_ascii_uppercase().as_str() {
        "TCP" => Ok(proto::TCP),
        "UDP" => Ok(proto::UDP),
        "SCTP" => Ok(proto::SCTP),
        other => bail!("unknown protocol {other:?} (want TCP, UDP or SCTP)"),
    }
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
            if let Some(mac) = &p.mac {
                parse_mac(mac).with_context(|| format!("port {:?}: mac", p.name))?;
            }
            if let Some(subnet) = &p.ipv4_subnet {
                match parse_prefix(subnet).with_context(|| format!("port {:?}: ipv4_subnet", p.name))? {
                    (IpAddr::V4(_), _) => {}
                    _ => bail!("port {:?}: ipv4_subnet {subnet:?} is not an IPv4 prefix", p.name),
                }
            }
            if let Some(subnet) = &p.ipv6_subnet {
                match parse_prefix(subnet).with_context(|| format!("port {:?}: ipv6_subnet", p.name))? {
                    (IpAddr::V6(_), _) => {}
                    _ => bail!("port {:?}: ipv6_subnet {subnet:?} is not an IPv6 prefix", p.name),
                }
            }
            if p.masquerade && p.ipv4.is_none() && p.ipv6.is_none() {
                bail!("port {:?} masquerades but has no ipv4 or ipv6 address to masquerade to", p.name);
            }
        }
        for r in &self.routes {
            parse_prefix(&r.prefix).context("[[route]] prefix")?;
            self.port_index(&r.port).context("[[route]] port")?;
            parse_mac(&r.gateway_mac).context("[[route]] gateway_mac")?;
        }
        for n in &self.neighbours {
            self.port_index(&n.port).with_context(|| format!("[[neighbour]] {}", n.address))?;
            parse_mac(&n.mac).with_context(|| format!("[[neighbour]] {}", n.address))?;
        }
        for s in &self.services {
            parse_protocol(&s.protocol).with_context(|| format!("service {:?}", s.name))?;
            for b in &s.backends {
                let addr = SocketAddr::from_str(b)
                    .with_context(|| format!("service {:?}: backend {b:?} is not address:port", s.name))?;
                if addr.is_ipv4() != s.vip.is_ipv4() {
                    bail!("service {:?}: backend {b} is not of the VIP's address family", s.name);
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
        assert_eq!(c.services[0].protocol, "TCP");
        assert_eq!(c.metrics.listen, "127.0.0.1:9476");
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
        assert!(parse_mac("02:00:00:00:00").is_err());
        assert_eq!(parse_mac("02:00:00:00:00:0a").unwrap(), MacAddr([2, 0, 0, 0, 0, 10]));
        assert!(parse_prefix("10.0.0.0/33").is_err());
    }

    #[test]
    fn on_link_subnets_are_checked_by_family() {
        let with = |field: &str| MINIMAL.replace("masquerade = true", &format!("masquerade = true\n{field}"));
        let port = Config::parse(&with("ipv6_subnet = \"fd00:10:244:1::/64\"")).expect("an IPv6 subnet parses");
        assert_eq!(port.ports[0].ipv6_subnet.as_deref(), Some("fd00:10:244:1::/64"));
        let err = |text: &str| format!("{:#}", Config::parse(text).unwrap_err());
        assert!(err(&with("ipv6_subnet = \"10.244.1.0/24\""))
            .contains("ipv6_subnet \"10.244.1.0/24\" is not an IPv6 prefix"));
        assert!(err(&with("ipv6_subnet = \"fd00::/129\"")).contains("port \"net_null0\": ipv6_subnet"));
        assert!(err(&with("ipv6_subnet = \"fd00::\"")).contains("not a prefix"));
        assert!(err(&with("ipv6_subnet = \"fd00::zz/64\"")).contains("bad address"));
        assert!(err(&with("ipv4_subnet = \"fd00::/64\"")).contains("is not an IPv4 prefix"));
    }
}
