//! What the cores forward, and the one place it is composed from.
//!
//! Every snapshot the control loop publishes is built here from three
//! inputs: the config this holds (the one read at start, replaced only by a
//! SIGHUP whose file is valid), the Services last compiled from the API or
//! the manifests, and the neighbours the slow path learned. Whichever of
//! them changes, the other two are taken as they stand, so no publication
//! can undo another's change.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Result};
use dataplane::tables::{Addr, NextHop, Snapshot};
use dataplane::wire::MacAddr;
use engine::Engine;
use services::sync::CompiledTables;
use tracing::{debug, error, info, warn};

use crate::config::Config;

pub struct Forwarding {
    /// The config last accepted.
    config: Config,
    /// The Services last compiled, if a source has compiled any.
    services: Option<Arc<CompiledTables>>,
}

impl Forwarding {
    pub fn new(config: Config) -> Forwarding {
        Forwarding { config, services: None }
    }

    /// The snapshot of the current inputs: the config's own tables (ports,
    /// routes, neighbours, `[[service]]`), the compiled Services under them,
    /// and the learned neighbours where the config names none.
    pub fn compose(&self, macs: &[MacAddr], learned: &HashMap<Addr, NextHop>) -> Result<Snapshot> {
        let mut snap = self.config.snapshot(macs)?;
        for (addr, hop) in learned {
            snap.neighbours.entry(*addr).or_insert(*hop);
        }
        if let Some(tables) = &self.services {
            // Start from a clone of the compiled map (cheap: the Services are
            // shared) and lay the config's own few entries over it.
            let mut map = tables.services.clone();
            map.extend(snap.services.drain());
            snap.services = map;
        }
        Ok(snap)
    }

    /// Publishes newly compiled Services, and records how long they took from
    /// the first event to the cores.
    pub fn publish_services(&mut self, engine: &mut Engine, tables: Arc<CompiledTables>) {
        self.services = Some(tables);
        let Some(generation) = self.publish(engine) else { return };
        if let Some(tables) = &self.services {
            let took = tables.since.elapsed();
            metrics::histogram!("switchyard_table_sync_seconds").record(took.as_secs_f64());
            metrics::gauge!("switchyard_table_sync_last_seconds").set(took.as_secs_f64());
            metrics::gauge!("switchyard_services").set(tables.stats.services as f64);
            metrics::gauge!("switchyard_table_bytes").set(tables.stats.heap_bytes as f64);
            debug!(generation, keys = tables.stats.keys, took_ms = took.as_secs_f64() * 1000.0, "services published");
        }
    }

    /// Publishes the tables again (the learned neighbours changed).
    pub fn republish(&mut self, engine: &mut Engine) {
        self.publish(engine);
    }

    /// SIGHUP: reads the config file again; a valid one replaces the config
    /// held and is published, a bad one changes nothing.
    pub fn reload(&mut self, path: &Path, engine: &mut Engine) {
        let next = Config::load(path).and_then(|next| {
            check_reloadable(&self.config, &next)?;
            let candidate = Forwarding { config: next, services: self.services.clone() };
            // Composed before it is accepted: a config whose tables do not
            // build keeps the current one.
            let snapshot = candidate.compose(&engine.macs, &engine.learned)?;
            Ok((candidate.config, snapshot))
        });
        match next {
            Ok((config, snapshot)) => {
                self.config = config;
                let generation = engine.publish(snapshot);
                info!(generation, services = self.config.services.len(), "config reloaded");
            }
            Err(e) => error!("reload failed, keeping the current config and tables: {e:#}"),
        }
    }

    fn publish(&self, engine: &mut Engine) -> Option<u64> {
        match self.compose(&engine.macs, &engine.learned) {
            Ok(snap) => Some(engine.publish(snap)),
            Err(e) => {
                error!("composing the tables failed, keeping the current ones: {e:#}");
                None
            }
        }
    }
}

/// What a SIGHUP can change: the tables (ports' addresses and MACs, routes,
/// neighbours, `[[service]]`). Ports are opened at start, so their names
/// and order must stay; the other sections take effect at the next start.
fn check_reloadable(current: &Config, next: &Config) -> Result<()> {
    let names = |c: &Config| c.ports.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
    if names(current) != names(next) {
        bail!("the [[port]] list changed ({:?} → {:?}); ports change only at a restart", names(current), names(next));
    }
    if next.dataplane.is_none() {
        bail!("the new config has no [dataplane] section");
    }
    if current.agent.is_some() != next.agent.is_some() || current.cluster.is_some() != next.cluster.is_some() {
        warn!("[agent] and [cluster] changes take effect at the next start");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::tables::ServiceKey;
    use std::net::Ipv4Addr;

    const BEFORE: &str = r#"
        [dataplane]
        [[port]]
        name = "net_null0"
        ipv4 = "192.0.2.1"
        masquerade = true
        [[route]]
        prefix = "10.244.0.0/16"
        port = "net_null0"
        gateway_mac = "02:00:00:00:00:b0"
    "#;

    fn key(vip: [u8; 4], port: u16) -> ServiceKey {
        ServiceKey { vip: Addr::from(Ipv4Addr::from(vip)), port, proto: dataplane::tables::proto::TCP }
    }

    fn route_mac(snap: &Snapshot) -> MacAddr {
        snap.routes.first().map(|r| r.via.mac).unwrap_or(MacAddr::ZERO)
    }

    #[test]
    fn reloaded_tables_survive_later_publications() {
        let after = BEFORE.replace("02:00:00:00:00:b0", "02:00:00:00:00:b1")
            + r#"
        [[service]]
        name = "default/added:http"
        vip = "10.96.0.20"
        port = 80
        backends = ["10.244.0.9:8080"]
        "#;
        let mut forwarding = Forwarding::new(Config::parse(BEFORE).expect("the first config parses"));
        let next = Config::parse(&after).expect("the reloaded config parses");
        check_reloadable(&forwarding.config, &next).expect("only tables changed");
        forwarding.config = next;

        // A neighbour is learned: the publication keeps the reloaded tables.
        let learned = HashMap::from([(
            Addr::from(Ipv4Addr::new(10, 244, 0, 7)),
            NextHop { port: 0, mac: MacAddr([2, 0, 0, 0, 0, 7]) },
        )]);
        let snap = forwarding.compose(&[MacAddr::ZERO], &learned).expect("composes");
        assert!(snap.services.contains_key(&key([10, 96, 0, 20], 80)));
        assert_eq!(route_mac(&snap), MacAddr([2, 0, 0, 0, 0, 0xb1]));
        assert_eq!(snap.neighbours.len(), 1);

        // Compiled Services arrive: still the reloaded tables, under them.
        let compiled = CompiledTables {
            services: Default::default(),
            stats: Default::default(),
            since: tokio::time::Instant::now(),
        };
        forwarding.services = Some(Arc::new(compiled));
        let snap = forwarding.compose(&[MacAddr::ZERO], &learned).expect("composes");
        assert!(snap.services.contains_key(&key([10, 96, 0, 20], 80)));
        assert_eq!(route_mac(&snap), MacAddr([2, 0, 0, 0, 0, 0xb1]));
    }

    #[test]
    fn a_reload_may_not_change_the_ports() {
        let current = Config::parse(BEFORE).expect("parses");
        let renamed = Config::parse(&BEFORE.replace("net_null0", "net_null1")).expect("parses");
        let err = check_reloadable(&current, &renamed).expect_err("ports are fixed at start");
        assert!(err.to_string().contains("ports change only at a restart"), "{err}");
    }
}
