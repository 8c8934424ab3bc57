use std::sync::Arc;

use super::*;
use crate::catalog::ServiceCatalog;

fn service(namespace: &str, name: &str, ip: &str, created: Option<&str>) -> Service {
    let created = created.map(|t| format!("\n  creationTimestamp: \"{t}\"")).unwrap_or_default();
    svc(&format!(
        r#"
apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: {namespace}{created}
spec:
  clusterIP: {ip}
  selector: {{app: {name}}}
  ports:
  - {{name: http, port: 80, targetPort: 8080}}
"#
    ))
}

fn endpoints(namespace: &str, service: &str, slice_name: &str, addrs: &[&str]) -> EndpointSlice {
    let eps: String = match addrs {
        [] => " []".into(),
        _ => addrs.iter().map(|a| format!("\n- addresses: [{a}]\n  nodeName: node-a")).collect(),
    };
    slice(&format!(
        r#"
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {slice_name}
  namespace: {namespace}
  labels: {{kubernetes.io/service-name: {service}}}
addressType: IPv4
ports:
- {{name: http, port: 8080, protocol: TCP}}
endpoints:{eps}
"#
    ))
}

/// svc-i: cluster IP 10.96.1.i, one endpoint 10.244.i.1 (for i < 256).
fn catalog_of(n: usize) -> ServiceCatalog {
    let mut c = ServiceCatalog::new(node(), RING);
    for i in 0..n {
        let name = format!("svc-{i}");
        let vip = format!("10.{}.1.{}", 96 + i / 256, i % 256);
        let endpoint = format!("10.{}.{}.1", 244 - i / 256, i % 256);
        c.upsert_service(service("default", &name, &vip, None));
        c.upsert_slice(endpoints("default", &name, &format!("{name}-1"), &[&endpoint]));
    }
    c
}

fn table<'a>(c: &'a ServiceCatalog, k: &ServiceKey) -> &'a Arc<Table> {
    c.map().get(k).unwrap_or_else(|| panic!("no {k}"))
}

/// The published map holds exactly what a catalog built from scratch from
/// the same objects would hold.
fn assert_same_as_fresh(c: &ServiceCatalog, services: &[Service], slices: &[EndpointSlice]) {
    let mut fresh = ServiceCatalog::new(c.node().clone(), RING);
    for s in services {
        fresh.upsert_service(s.clone());
    }
    for s in slices {
        fresh.upsert_slice(s.clone());
    }
    fresh.recompile_dirty();
    let summary = |m: &crate::ServicesMap| {
        let mut v: Vec<(String, String, Vec<String>)> =
            m.iter().map(|(k, t)| (k.to_string(), t.name.clone(), backends(t))).collect();
        v.sort();
        v
    };
    assert_eq!(summary(c.map()), summary(fresh.map()));
}

#[test]
fn a_slice_change_recompiles_only_its_service_and_keeps_the_others_arcs() {
    let mut c = catalog_of(3);
    assert_eq!(c.dirty_count(), 3);
    assert_eq!(c.recompile_dirty(), 3);
    assert_eq!(c.recompile_dirty(), 0);
    let before = c.services_map();
    assert_eq!(before.len(), 3);

    assert!(c.upsert_slice(endpoints("default", "svc-1", "svc-1-1", &["10.244.1.1", "10.244.1.2"])));
    assert_eq!(c.dirty_count(), 1);
    assert_eq!(c.recompile_dirty(), 1);
    let after = c.services_map();
    for i in [0, 2] {
        let k = tcp(&format!("10.96.1.{i}"), 80);
        assert!(Arc::ptr_eq(&before[&k], &after[&k]), "svc-{i} was rebuilt");
    }
    let k1 = tcp("10.96.1.1", 80);
    assert!(!Arc::ptr_eq(&before[&k1], &after[&k1]));
    assert_eq!(backends(&after[&k1]), ["10.244.1.1#8080 ready", "10.244.1.2#8080 ready"]);
    // The published map shares the catalog's tables.
    assert!(Arc::ptr_eq(&after[&k1], table(&c, &k1)));
}

#[test]
fn unchanged_objects_mark_nothing_and_unchanged_output_keeps_its_arc() {
    let mut c = catalog_of(2);
    c.recompile_dirty();
    let k = tcp("10.96.1.0", 80);
    let before = table(&c, &k).clone();
    // A resync delivers the same objects: nothing to do.
    assert!(!c.upsert_service(service("default", "svc-0", "10.96.1.0", None)));
    assert!(!c.upsert_slice(endpoints("default", "svc-0", "svc-0-1", &["10.244.0.1"])));
    assert_eq!(c.dirty_count(), 0);
    // A change that does not change the tables (a label): recompiled, same Arc.
    let mut labelled = service("default", "svc-0", "10.96.1.0", None);
    labelled.metadata.labels = Some([("team".to_string(), "a".to_string())].into());
    assert!(c.upsert_service(labelled));
    assert_eq!(c.recompile_dirty(), 1);
    assert!(Arc::ptr_eq(&before, table(&c, &k)));
}

#[test]
fn deletes_remove_keys_and_slices_may_come_first() {
    let mut c = ServiceCatalog::new(node(), RING);
    // The slice arrives before its Service: nothing to publish yet.
    c.upsert_slice(endpoints("default", "web", "web-1", &["10.244.0.1"]));
    c.recompile_dirty();
    assert!(c.map().is_empty());
    c.upsert_service(service("default", "web", "10.96.0.10", None));
    assert_eq!(c.recompile_dirty(), 1);
    let k = tcp("10.96.0.10", 80);
    assert_eq!(backends(table(&c, &k)), ["10.244.0.1#8080 ready"]);

    assert!(c.delete_slice("default", "web-1"));
    assert!(!c.delete_slice("default", "web-1"));
    assert_eq!(c.recompile_dirty(), 1);
    assert!(table(&c, &k).backends.is_empty(), "the key stays, without endpoints");

    assert!(c.delete_service("default", "web"));
    assert!(!c.delete_service("default", "web"));
    assert_eq!(c.recompile_dirty(), 1);
    assert!(c.map().is_empty());
    assert_eq!(c.stats().services, 0);
    assert!(c.compiled("default", "web").is_none(), "the entry is freed");
}

#[test]
fn a_relabelled_slice_moves_between_services() {
    let mut c = catalog_of(2);
    c.recompile_dirty();
    // svc-0's slice now says it belongs to svc-1.
    let moved = endpoints("default", "svc-1", "svc-0-1", &["10.244.0.1"]);
    assert!(c.upsert_slice(moved.clone()));
    assert_eq!(c.recompile_dirty(), 2);
    assert!(table(&c, &tcp("10.96.1.0", 80)).backends.is_empty());
    assert_eq!(backends(table(&c, &tcp("10.96.1.1", 80))), ["10.244.0.1#8080 ready", "10.244.1.1#8080 ready"]);
    // An unlabelled slice belongs to nobody.
    let mut unlabelled = moved;
    unlabelled.metadata.labels = None;
    assert!(c.upsert_slice(unlabelled));
    assert_eq!(c.recompile_dirty(), 1);
    assert_eq!(backends(table(&c, &tcp("10.96.1.1", 80))), ["10.244.1.1#8080 ready"]);
}

#[test]
fn the_older_service_owns_a_contested_key() {
    let mut c = ServiceCatalog::new(node(), RING);
    let old = service("b", "old", "10.96.0.10", Some("2024-01-01T00:00:00Z"));
    let new = service("a", "new", "10.96.0.10", Some("2024-06-01T00:00:00Z"));
    c.upsert_service(new.clone());
    c.upsert_slice(endpoints("a", "new", "new-1", &["10.244.0.2"]));
    c.upsert_service(old);
    c.upsert_slice(endpoints("b", "old", "old-1", &["10.244.0.1"]));
    c.recompile_dirty();
    let k = tcp("10.96.0.10", 80);
    assert_eq!(table(&c, &k).name, "b/old:http", "older wins although its name sorts later");
    assert_eq!(c.stats().conflicts, 1);
    let w = c.warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("10.96.0.10:80/TCP") && w[0].contains("b/old") && w[0].contains("a/new"), "{w:?}");

    // A change to the loser does not touch the winner's table.
    let winner = table(&c, &k).clone();
    c.upsert_slice(endpoints("a", "new", "new-1", &["10.244.0.3"]));
    c.recompile_dirty();
    assert!(Arc::ptr_eq(&winner, table(&c, &k)));

    // The owner goes: the next claimant takes over, and the conflict is gone.
    c.delete_service("b", "old");
    c.recompile_dirty();
    assert_eq!(table(&c, &k).name, "a/new:http");
    assert_eq!(backends(table(&c, &k)), ["10.244.0.3#8080 ready"]);
    assert!(c.warnings().is_empty());
    assert_eq!(c.stats().conflicts, 0);
}

#[test]
fn without_timestamps_names_decide_and_a_timestamp_beats_none() {
    let mut c = ServiceCatalog::new(node(), RING);
    c.upsert_service(service("default", "zeta", "10.96.0.10", None));
    c.upsert_service(service("default", "alpha", "10.96.0.10", None));
    c.recompile_dirty();
    let k = tcp("10.96.0.10", 80);
    assert_eq!(table(&c, &k).name, "default/alpha:http");
    c.upsert_service(service("default", "zeta", "10.96.0.10", Some("2020-01-01T00:00:00Z")));
    c.recompile_dirty();
    assert_eq!(table(&c, &k).name, "default/zeta:http");
    assert_eq!(c.stats().conflicts, 1);
}

#[test]
fn three_claimants_hand_the_key_down_in_order() {
    let mut c = ServiceCatalog::new(node(), RING);
    for (name, t) in [("c", "2023"), ("a", "2021"), ("b", "2022")] {
        c.upsert_service(service("default", name, "10.96.0.10", Some(&format!("{t}-01-01T00:00:00Z"))));
    }
    c.recompile_dirty();
    let k = tcp("10.96.0.10", 80);
    for (gone, next) in [("a", "default/b:http"), ("b", "default/c:http")] {
        assert!(table(&c, &k).name.starts_with(&format!("default/{gone}:")));
        c.delete_service("default", gone);
        c.recompile_dirty();
        assert_eq!(table(&c, &k).name, next);
    }
    c.delete_service("default", "c");
    c.recompile_dirty();
    assert!(c.map().is_empty());
}

#[test]
fn stats_count_services_keys_backends_and_bytes() {
    let mut c = catalog_of(4);
    c.upsert_slice(endpoints("default", "svc-0", "svc-0-2", &["10.244.9.1", "10.244.9.2"]));
    c.upsert_service(svc("apiVersion: v1\nkind: Service\nmetadata: {name: hl}\nspec: {clusterIP: None}\n"));
    let s = c.stats();
    assert_eq!((s.dirty, s.keys), (5, 0), "nothing published before a recompile");
    c.recompile_dirty();
    let s = c.stats();
    assert_eq!((s.services, s.keys, s.backends, s.conflicts, s.dirty), (5, 4, 6, 0, 0));
    let rings: usize = c.map().values().map(|t| t.heap_bytes()).sum();
    assert!(s.heap_bytes > rings && rings >= 4 * 127 * 2, "{s:?}");
}

#[test]
fn a_new_node_identity_recompiles_node_ports() {
    let mut c = ServiceCatalog::new(node(), RING);
    let mut np = service("default", "web", "10.96.0.10", None);
    let spec = np.spec.as_mut().unwrap();
    spec.type_ = Some("NodePort".into());
    spec.ports.as_mut().unwrap()[0].node_port = Some(30080);
    c.upsert_service(np);
    c.recompile_dirty();
    assert!(c.map().contains_key(&tcp("192.168.1.10", 30080)));
    c.set_node(NodeIdentity { name: "node-a".into(), addresses: vec![ip("192.168.1.11")] });
    assert_eq!(c.recompile_dirty(), 1);
    assert!(!c.map().contains_key(&tcp("192.168.1.10", 30080)));
    assert!(c.map().contains_key(&tcp("192.168.1.11", 30080)));
}

#[test]
fn incremental_changes_end_where_a_fresh_build_would() {
    let mut c = catalog_of(6);
    c.recompile_dirty();
    // A series of changes, recompiling now and then.
    c.upsert_service(service("default", "svc-7", "10.96.1.1", Some("2030-01-01T00:00:00Z"))); // a timestamp beats none: takes 10.96.1.1 from svc-1
    c.upsert_slice(endpoints("default", "svc-7", "svc-7-1", &["10.244.7.1"]));
    c.recompile_dirty();
    c.delete_service("default", "svc-2");
    c.upsert_slice(endpoints("default", "svc-3", "svc-3-2", &["10.244.3.2"]));
    c.recompile_dirty();
    c.delete_service("default", "svc-1");
    c.delete_slice("default", "svc-4-1");
    c.upsert_service(service("default", "svc-5", "10.96.2.5", None)); // moves
    c.recompile_dirty();

    let services: Vec<Service> = [0, 3, 4, 5, 7]
        .iter()
        .map(|&i| match i {
            5 => service("default", "svc-5", "10.96.2.5", None),
            7 => service("default", "svc-7", "10.96.1.1", Some("2030-01-01T00:00:00Z")),
            i => service("default", &format!("svc-{i}"), &format!("10.96.1.{i}"), None),
        })
        .collect();
    let slices = vec![
        endpoints("default", "svc-0", "svc-0-1", &["10.244.0.1"]),
        endpoints("default", "svc-1", "svc-1-1", &["10.244.1.1"]),
        endpoints("default", "svc-2", "svc-2-1", &["10.244.2.1"]),
        endpoints("default", "svc-3", "svc-3-1", &["10.244.3.1"]),
        endpoints("default", "svc-3", "svc-3-2", &["10.244.3.2"]),
        endpoints("default", "svc-5", "svc-5-1", &["10.244.5.1"]),
        endpoints("default", "svc-7", "svc-7-1", &["10.244.7.1"]),
    ];
    assert_same_as_fresh(&c, &services, &slices);
    assert_eq!(table(&c, &tcp("10.96.1.1", 80)).name, "default/svc-7:http");
    assert!(!c.map().contains_key(&tcp("10.96.1.5", 80)));
    assert_eq!(c.stats().conflicts, 0);
}

#[test]
fn a_parallel_full_sync_gives_what_a_serial_one_does() {
    let mut serial = catalog_of(600);
    let mut parallel = serial.clone();
    parallel.set_compile_threads(4);
    assert_eq!(serial.recompile_dirty(), 600);
    assert_eq!(parallel.recompile_dirty(), 600);
    assert_eq!(parallel.map().len(), 600);
    for (k, t) in serial.map() {
        let p = &parallel.map()[k];
        assert_eq!((&p.name, backends(p)), (&t.name, backends(t)));
    }
}
