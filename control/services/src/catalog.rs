//! The incremental Service catalog: the latest Services and EndpointSlices,
//! each Service's compiled table entries, and the merged key → table map
//! that goes into a snapshot.
//!
//! A change to a Service or to one of its slices marks that Service (only)
//! dirty; [`ServiceCatalog::recompile_dirty`] recompiles the dirty ones and
//! patches the merged map in place, so that a publish costs one clone of the
//! map ([`ServiceCatalog::services_map`]) whatever the number of Services.
//! Entries whose content did not change keep their `Arc` (pointer-equal), so
//! a recompile rebuilds only the rings that changed.
//!
//! Two Services claiming the same key: the older one (creationTimestamp,
//! then namespace/name; a Service without a timestamp counts as newest) owns
//! it, and the conflict is reported by [`ServiceCatalog::warnings`]. When the
//! owner lets go of the key, the next claimant takes it over.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use dataplane::hash::StableState;
use dataplane::tables::maglev::MAX_BACKENDS;
use dataplane::tables::{Service as Table, ServiceKey, ServiceSpec};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::compile::{compile_specs, name_of, namespace_of, slice_owner, CompiledSpecs, NodeIdentity};

/// The map a snapshot publishes.
pub type ServicesMap = HashMap<ServiceKey, Arc<Table>, StableState>;

/// A Service's compiled entries.
type Entries = Vec<(ServiceKey, Arc<Table>)>;

/// Below this many dirty Services, compiling on extra threads costs more
/// than it saves.
const PARALLEL_MIN: usize = 256;

/// Sizes of what the catalog publishes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CatalogStats {
    /// Services held (with a Service object; ExternalName and headless included).
    pub services: usize,
    /// Keys in the published map.
    pub keys: usize,
    /// Backends summed over the published keys.
    pub backends: usize,
    /// Keys claimed by more than one Service.
    pub conflicts: usize,
    /// Services waiting for [`ServiceCatalog::recompile_dirty`].
    pub dirty: usize,
    /// Approximate heap bytes of the published tables: the map, the `Arc`ed
    /// Services and their rings ([`Table::heap_bytes`]). The Kubernetes
    /// objects the catalog keeps are not counted.
    pub heap_bytes: usize,
}

/// One Service by (namespace, name), present or not: its slices can arrive
/// before it, and it stays until its compiled keys are gone.
#[derive(Clone, Debug)]
struct Entry {
    namespace: String,
    name: String,
    service: Option<Service>,
    /// This Service's EndpointSlices by slice name.
    slices: BTreeMap<String, EndpointSlice>,
    /// creationTimestamp as of the last compile: ranks claims.
    created: Option<Time>,
    compiled: Entries,
    warnings: Vec<String>,
    dirty: bool,
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct ServiceCatalog {
    node: NodeIdentity,
    max_ring: usize,
    compile_threads: usize,
    /// "namespace/name" → index into `entries`.
    index: HashMap<String, u32>,
    entries: Vec<Option<Entry>>,
    free: Vec<u32>,
    /// "namespace/slice-name" → the entry holding the slice.
    slice_owners: HashMap<String, u32>,
    dirty: Vec<u32>,
    /// The published map: each key's winning table.
    map: ServicesMap,
    /// Each key's winning entry.
    owner: HashMap<ServiceKey, u32, StableState>,
    /// The losing claimants of contested keys.
    contested: HashMap<ServiceKey, Vec<u32>, StableState>,
}

impl ServiceCatalog {
    /// An empty catalog compiling for `node`, with rings of at most
    /// `max_ring` slots.
    pub fn new(node: NodeIdentity, max_ring: usize) -> ServiceCatalog {
        ServiceCatalog {
            node,
            max_ring,
            compile_threads: 1,
            index: HashMap::new(),
            entries: Vec::new(),
            free: Vec::new(),
            slice_owners: HashMap::new(),
            dirty: Vec::new(),
            map: ServicesMap::default(),
            owner: HashMap::default(),
            contested: HashMap::default(),
        }
    }

    /// Lets [`recompile_dirty`](Self::recompile_dirty) compile large batches
    /// (a full sync) on up to `threads` threads. The default is 1: the
    /// control side should not compete with the forwarding cores unless the
    /// operator has set CPUs aside for it.
    pub fn set_compile_threads(&mut self, threads: usize) {
        self.compile_threads = threads.max(1);
    }

    pub fn node(&self) -> &NodeIdentity {
        &self.node
    }

    /// A new node identity (its addresses changed): every Service is
    /// recompiled, as NodePorts and Local policies depend on it.
    pub fn set_node(&mut self, node: NodeIdentity) {
        if node == self.node {
            return;
        }
        self.node = node;
        for id in 0..self.entries.len() as u32 {
            if self.entries[id as usize].as_ref().is_some_and(|e| e.service.is_some()) {
                self.mark_dirty(id);
            }
        }
    }

    /// Adds or replaces a Service. Returns whether it changed (an identical
    /// object, as on a watch resync, marks nothing dirty).
    pub fn upsert_service(&mut self, service: Service) -> bool {
        let name = name_of(&service.metadata);
        if name.is_empty() {
            return false;
        }
        let id = self.id_for(namespace_of(&service.metadata), name);
        let entry = self.entry_mut(id);
        if entry.service.as_ref() == Some(&service) {
            return false;
        }
        entry.service = Some(service);
        self.mark_dirty(id);
        true
    }

    /// Removes a Service (its keys go at the next recompile).
    pub fn delete_service(&mut self, namespace: &str, name: &str) -> bool {
        let Some(&id) = self.index.get(&full_name(namespace, name)) else { return false };
        if self.entry_mut(id).service.take().is_none() {
            return false;
        }
        self.mark_dirty(id);
        true
    }

    /// Adds or replaces an EndpointSlice; marks the Service it belongs to
    /// dirty (and the one it belonged to, if its label changed).
    pub fn upsert_slice(&mut self, slice: EndpointSlice) -> bool {
        let slice_name = name_of(&slice.metadata).to_string();
        if slice_name.is_empty() {
            return false;
        }
        let slice_key = full_name(namespace_of(&slice.metadata), &slice_name);
        let new_owner = slice_owner(&slice).map(|(ns, svc)| (ns.to_string(), svc.to_string()));
        let new_id = new_owner.map(|(ns, svc)| self.id_for(&ns, &svc));
        let old_id = self.slice_owners.get(&slice_key).copied();
        if let (Some(old), Some(new)) = (old_id, new_id) {
            if old == new && self.entry(old).slices.get(&slice_name) == Some(&slice) {
                return false;
            }
        }
        if let Some(old) = old_id.filter(|&o| Some(o) != new_id) {
            self.entry_mut(old).slices.remove(&slice_name);
            self.slice_owners.remove(&slice_key);
            self.mark_dirty(old);
        }
        match new_id {
            Some(new) => {
                self.entry_mut(new).slices.insert(slice_name, slice);
                self.slice_owners.insert(slice_key, new);
                self.mark_dirty(new);
                true
            }
            // Not labelled for a Service: nothing uses it.
            None => old_id.is_some(),
        }
    }

    /// Removes an EndpointSlice; marks its Service dirty.
    pub fn delete_slice(&mut self, namespace: &str, name: &str) -> bool {
        let Some(id) = self.slice_owners.remove(&full_name(namespace, name)) else { return false };
        self.entry_mut(id).slices.remove(name);
        self.mark_dirty(id);
        true
    }

    /// Services waiting to be recompiled.
    pub fn dirty_count(&self) -> usize {
        self.dirty.len()
    }

    /// Recompiles the dirty Services and patches the published map; returns
    /// how many were recompiled.
    pub fn recompile_dirty(&mut self) -> usize {
        let dirty = std::mem::take(&mut self.dirty);
        let threads = self.compile_threads.min(dirty.len() / PARALLEL_MIN).max(1);
        let results: Vec<(Entries, Vec<String>)> = if threads > 1 {
            let chunk = dirty.len().div_ceil(threads);
            let this = &*self;
            std::thread::scope(|scope| {
                let handles: Vec<_> = dirty
                    .chunks(chunk)
                    .map(|ids| scope.spawn(move || ids.iter().map(|&id| this.compile_entry(id)).collect::<Vec<_>>()))
                    .collect();
                handles.into_iter().flat_map(|h| h.join().expect("compile thread panicked")).collect()
            })
        } else {
            dirty.iter().map(|&id| self.compile_entry(id)).collect()
        };
        for (&id, (compiled, warnings)) in dirty.iter().zip(results) {
            self.apply(id, compiled, warnings);
        }
        dirty.len()
    }

    /// The map to publish: shares every `Arc` with the catalog. Reflects the
    /// last [`recompile_dirty`](Self::recompile_dirty).
    pub fn services_map(&self) -> ServicesMap {
        self.map.clone()
    }

    /// The published map, borrowed.
    pub fn map(&self) -> &ServicesMap {
        &self.map
    }

    /// A Service's compiled entries (including keys another Service owns).
    pub fn compiled(&self, namespace: &str, name: &str) -> Option<&[(ServiceKey, Arc<Table>)]> {
        let id = *self.index.get(&full_name(namespace, name))?;
        Some(&self.entry(id).compiled)
    }

    /// Everything wrong as of the last recompile: each Service's warnings
    /// and each contested key, sorted.
    pub fn warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = self.entries.iter().flatten().flat_map(|e| e.warnings.iter().cloned()).collect();
        for (key, losers) in &self.contested {
            let Some(&winner) = self.owner.get(key) else { continue };
            let mut names: Vec<String> =
                losers.iter().map(|&id| full_name(&self.entry(id).namespace, &self.entry(id).name)).collect();
            names.sort();
            let w = self.entry(winner);
            out.push(format!(
                "{key} is claimed by several Services: {} (the oldest) is used, not {}",
                full_name(&w.namespace, &w.name),
                names.join(", ")
            ));
        }
        out.sort();
        out
    }

    pub fn stats(&self) -> CatalogStats {
        let entry = std::mem::size_of::<(ServiceKey, Arc<Table>)>() + 8;
        let arc = std::mem::size_of::<Table>() + 2 * std::mem::size_of::<usize>();
        CatalogStats {
            services: self.entries.iter().flatten().filter(|e| e.service.is_some()).count(),
            keys: self.map.len(),
            backends: self.map.values().map(|t| t.backends.len()).sum(),
            conflicts: self.contested.len(),
            dirty: self.dirty.len(),
            heap_bytes: self.map.capacity() * entry + self.map.values().map(|t| arc + t.heap_bytes()).sum::<usize>(),
        }
    }

    fn id_for(&mut self, namespace: &str, name: &str) -> u32 {
        let key = full_name(namespace, name);
        if let Some(&id) = self.index.get(&key) {
            return id;
        }
        let entry = Entry {
            namespace: namespace.to_string(),
            name: name.to_string(),
            service: None,
            slices: BTreeMap::new(),
            created: None,
            compiled: Vec::new(),
            warnings: Vec::new(),
            dirty: false,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.entries[id as usize] = Some(entry);
                id
            }
            None => {
                self.entries.push(Some(entry));
                (self.entries.len() - 1) as u32
            }
        };
        self.index.insert(key, id);
        id
    }

    fn entry(&self, id: u32) -> &Entry {
        self.entries[id as usize].as_ref().expect("live catalog entry")
    }

    fn entry_mut(&mut self, id: u32) -> &mut Entry {
        self.entries[id as usize].as_mut().expect("live catalog entry")
    }

    fn mark_dirty(&mut self, id: u32) {
        let entry = self.entry_mut(id);
        if !entry.dirty {
            entry.dirty = true;
            self.dirty.push(id);
        }
    }

    /// Compiles one entry, reusing its current tables where nothing changed.
    fn compile_entry(&self, id: u32) -> (Entries, Vec<String>) {
        let entry = self.entry(id);
        let Some(service) = &entry.service else { return (Vec::new(), Vec::new()) };
        let slices: Vec<&EndpointSlice> = entry.slices.values().collect();
        let CompiledSpecs { specs, warnings } = compile_specs(service, &slices, &self.node);
        let old: HashMap<ServiceKey, &Arc<Table>> = if entry.compiled.len() > 8 {
            entry.compiled.iter().map(|(k, t)| (*k, t)).collect()
        } else {
            HashMap::new()
        };
        let find = |key: &ServiceKey| match old.is_empty() {
            true => entry.compiled.iter().find(|(k, _)| k == key).map(|(_, t)| t),
            false => old.get(key).copied(),
        };
        let compiled = specs
            .into_iter()
            .map(|spec| {
                let table = match find(&spec.key).filter(|t| same_table(t, &spec)) {
                    Some(t) => t.clone(),
                    None => Arc::new(Table::build(spec, self.max_ring)),
                };
                (table.key, table)
            })
            .collect();
        (compiled, warnings)
    }

    /// Replaces an entry's compiled tables and patches the map.
    fn apply(&mut self, id: u32, compiled: Entries, warnings: Vec<String>) {
        let old = std::mem::take(&mut self.entry_mut(id).compiled);
        for (key, _) in &old {
            self.unclaim(*key, id);
        }
        let entry = self.entry_mut(id);
        entry.created = entry.service.as_ref().and_then(|s| s.metadata.creation_timestamp.clone());
        for (key, table) in &compiled {
            self.claim(*key, id, table);
        }
        let entry = self.entry_mut(id);
        entry.compiled = compiled;
        entry.warnings = warnings;
        entry.dirty = false;
        if entry.service.is_none() && entry.slices.is_empty() {
            let key = full_name(&entry.namespace, &entry.name);
            self.index.remove(&key);
            self.entries[id as usize] = None;
            self.free.push(id);
        }
    }

    /// Which of two claimants wins: the older, then by name.
    fn better(&self, a: u32, b: u32) -> bool {
        let rank = |id: u32| {
            let e = self.entry(id);
            (e.created.is_none(), e.created.as_ref(), e.namespace.as_str(), e.name.as_str())
        };
        rank(a) < rank(b)
    }

    fn claim(&mut self, key: ServiceKey, id: u32, table: &Arc<Table>) {
        match self.owner.get(&key).copied() {
            None => {
                self.owner.insert(key, id);
                self.map.insert(key, table.clone());
            }
            Some(current) if self.better(id, current) => {
                self.contested.entry(key).or_default().push(current);
                self.owner.insert(key, id);
                self.map.insert(key, table.clone());
            }
            Some(_) => self.contested.entry(key).or_default().push(id),
        }
    }

    fn unclaim(&mut self, key: ServiceKey, id: u32) {
        match self.owner.get(&key).copied() {
            Some(current) if current == id => {
                let Some(mut losers) = self.contested.remove(&key) else {
                    self.owner.remove(&key);
                    self.map.remove(&key);
                    return;
                };
                let mut best = 0;
                for i in 1..losers.len() {
                    if self.better(losers[i], losers[best]) {
                        best = i;
                    }
                }
                let next = losers.swap_remove(best);
                if !losers.is_empty() {
                    self.contested.insert(key, losers);
                }
                let table = self.entry(next).compiled.iter().find(|(k, _)| *k == key).map(|(_, t)| t.clone());
                match table {
                    Some(table) => {
                        self.owner.insert(key, next);
                        self.map.insert(key, table);
                    }
                    None => {
                        // Cannot happen: a claimant holds the key's table.
                        self.owner.remove(&key);
                        self.map.remove(&key);
                    }
                }
            }
            Some(_) => {
                if let Some(losers) = self.contested.get_mut(&key) {
                    losers.retain(|&l| l != id);
                    if losers.is_empty() {
                        self.contested.remove(&key);
                    }
                }
            }
            None => {}
        }
    }
}

fn full_name(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// Whether `table` is what building `spec` would give (same ring input).
fn same_table(table: &Table, spec: &ServiceSpec) -> bool {
    let backends = &spec.backends[..spec.backends.len().min(MAX_BACKENDS)];
    table.key == spec.key
        && table.affinity_timeout_s == spec.affinity_timeout_s
        && table.name == spec.name
        && *table.backends == *backends
}
