//! From Service and EndpointSlice events to published tables: one task owns
//! the Service catalog, applies events as they come, coalesces bursts (a
//! re-list, a rollout) into one recompile, and hands the compiled map to the
//! control loop, which publishes it as a new snapshot.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::catalog::{CatalogStats, ServiceCatalog, ServicesMap};
use crate::compile::{name_of, namespace_of};
use crate::selection::ServiceSelection;

/// A change from a Service source (the API watchers or the standalone
/// manifests).
#[derive(Debug)]
pub enum CatalogEvent {
    ServiceApplied(Box<Service>),
    ServiceDeleted {
        namespace: String,
        name: String,
    },
    SliceApplied(Box<EndpointSlice>),
    SliceDeleted {
        namespace: String,
        name: String,
    },
    /// The complete set of Services (after a (re-)list): others are gone.
    ServicesListed(Vec<Service>),
    /// The complete set of EndpointSlices.
    SlicesListed(Vec<EndpointSlice>),
}

/// A compiled map, ready to publish.
pub struct CompiledTables {
    pub services: ServicesMap,
    pub stats: CatalogStats,
    /// When the first event that went into it arrived.
    pub since: Instant,
}

/// After the first event, wait this long for more before compiling.
const COALESCE: Duration = Duration::from_millis(1);
/// But never hold a burst back longer than this.
const MAX_DELAY: Duration = Duration::from_millis(50);

type Key = (String, String);

struct CatalogTask {
    catalog: ServiceCatalog,
    selection: ServiceSelection,
    services: HashSet<Key>,
    slices: HashSet<Key>,
}

impl CatalogTask {
    fn apply(&mut self, event: CatalogEvent) {
        match event {
            CatalogEvent::ServiceApplied(s) if !self.selection.selects(&s) => {
                // Not ours (any more): as if it were deleted.
                let (namespace, name) = (namespace_of(&s.metadata).to_string(), name_of(&s.metadata).to_string());
                self.catalog.delete_service(&namespace, &name);
                self.services.remove(&(namespace, name));
            }
            CatalogEvent::ServiceApplied(s) => {
                self.services.insert((namespace_of(&s.metadata).into(), name_of(&s.metadata).into()));
                self.catalog.upsert_service(*s);
            }
            CatalogEvent::ServiceDeleted { namespace, name } => {
                self.catalog.delete_service(&namespace, &name);
                self.services.remove(&(namespace, name));
            }
            CatalogEvent::SliceApplied(s) => {
                self.slices.insert((namespace_of(&s.metadata).into(), name_of(&s.metadata).into()));
                self.catalog.upsert_slice(*s);
            }
            CatalogEvent::SliceDeleted { namespace, name } => {
                self.catalog.delete_slice(&namespace, &name);
                self.slices.remove(&(namespace, name));
            }
            CatalogEvent::ServicesListed(mut list) => {
                list.retain(|s| self.selection.selects(s));
                let keep: HashSet<Key> =
                    list.iter().map(|s| (namespace_of(&s.metadata).into(), name_of(&s.metadata).into())).collect();
                for (ns, name) in self.services.difference(&keep) {
                    self.catalog.delete_service(ns, name);
                }
                self.services = keep;
                for s in list {
                    self.catalog.upsert_service(s);
                }
            }
            CatalogEvent::SlicesListed(list) => {
                let keep: HashSet<Key> =
                    list.iter().map(|s| (namespace_of(&s.metadata).into(), name_of(&s.metadata).into())).collect();
                for (ns, name) in self.slices.difference(&keep) {
                    self.catalog.delete_slice(ns, name);
                }
                self.slices = keep;
                for s in list {
                    self.catalog.upsert_slice(s);
                }
            }
        }
    }
}

/// Runs until every event sender is gone; programs the Services
/// `selection` selects.
pub async fn run(
    catalog: ServiceCatalog,
    selection: ServiceSelection,
    mut events: mpsc::UnboundedReceiver<CatalogEvent>,
    out: watch::Sender<Option<Arc<CompiledTables>>>,
) {
    let mut sync = CatalogTask { catalog, selection, services: HashSet::new(), slices: HashSet::new() };
    while let Some(first) = events.recv().await {
        let since = Instant::now();
        sync.apply(first);
        let deadline = since + MAX_DELAY;
        loop {
            let wait = COALESCE.min(deadline.saturating_duration_since(Instant::now()));
            match tokio::time::timeout(wait, events.recv()).await {
                Ok(Some(event)) => sync.apply(event),
                Ok(None) | Err(_) => break,
            }
        }
        if sync.catalog.recompile_dirty() == 0 && out.borrow().is_some() {
            continue;
        }
        let compiled = CompiledTables { services: sync.catalog.services_map(), stats: sync.catalog.stats(), since };
        if out.send(Some(Arc::new(compiled))).is_err() {
            return;
        }
    }
}
