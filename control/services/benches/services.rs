//! Service compilation at the scale of a large cluster: 10,000 Services
//! (ClusterIP, one TCP port) × 10 endpoints each, one EndpointSlice per
//! Service, rings of the default maximum size (10 backends → 1,021 slots).
//!
//! Run: `cargo bench -p switchyard-services --bench services` (about a minute; add
//! `-- --quick` for a shorter pass).
//!
//! - `full_sync/compile_and_map`: `compile` for every Service and inserting
//!   its entries into a fresh snapshot map (what a from-scratch build costs,
//!   without the catalog).
//! - `full_sync/specs_only`: the same without building the Maglev rings
//!   (`compile_specs`): the Kubernetes side of the work; the rest is rings.
//! - `full_sync/catalog`: a catalog holding all the objects, all dirty (as
//!   after the initial list): `recompile_dirty` + `services_map`. Serial, and
//!   on up to 4 threads (`set_compile_threads`; as many as there are CPUs).
//! - `one_change/add_service`: a catalog of 10,000 compiled Services; one
//!   more Service and its slice are upserted, then `recompile_dirty` +
//!   `services_map` (the map handed to the publisher). Removing it again
//!   after each iteration is not timed.
//! - `one_change/endpoint_update`: one existing Service's slice changes (an
//!   endpoint goes not-ready, and back): `upsert_slice` + `recompile_dirty`
//!   + `services_map`.
//! - `publish/services_map`: the clone of the 10,000-key map alone.
//!
//! Anchors: kube-proxy (iptables mode) takes seconds to minutes for a full
//! sync at this size and tens of milliseconds to minutes for one change.
//! Aim: < 1 s full, < 5 ms one change.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Once;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use dataplane::tables::DEFAULT_MAX_RING_SIZE;
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use services::{compile, compile_specs, NodeIdentity, ServiceCatalog, ServicesMap};

const SERVICES: usize = 10_000;
const ENDPOINTS: usize = 10;

fn v4(base: u8, index: usize) -> String {
    let i = index as u32;
    Ipv4Addr::new(10, base + (i >> 16) as u8, (i >> 8) as u8, i as u8).to_string()
}

fn service(i: usize) -> Service {
    let name = format!("svc-{i}");
    Service {
        metadata: ObjectMeta { name: Some(name.clone()), namespace: Some("bench".into()), ..Default::default() },
        spec: Some(ServiceSpec {
            cluster_ip: Some(v4(96, i)),
            cluster_ips: Some(vec![v4(96, i)]),
            ip_families: Some(vec!["IPv4".into()]),
            selector: Some([("app".to_string(), name)].into()),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                protocol: Some("TCP".into()),
                target_port: Some(IntOrString::Int(8080)),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

fn slice(i: usize, ready: bool) -> EndpointSlice {
    let name = format!("svc-{i}");
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(format!("{name}-abcde")),
            namespace: Some("bench".into()),
            labels: Some([("kubernetes.io/service-name".to_string(), name)].into()),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints: (0..ENDPOINTS)
            .map(|j| Endpoint {
                addresses: vec![v4(128, i * ENDPOINTS + j)],
                conditions: Some(EndpointConditions {
                    ready: Some(ready || j > 0),
                    serving: Some(true),
                    terminating: Some(false),
                }),
                node_name: Some(format!("node-{}", j % 3)),
                ..Default::default()
            })
            .collect(),
        ports: Some(vec![EndpointPort {
            name: Some("http".into()),
            port: Some(8080),
            protocol: Some("TCP".into()),
            app_protocol: None,
        }]),
    }
}

fn node() -> NodeIdentity {
    NodeIdentity { name: "node-0".into(), addresses: vec![IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10))] }
}

/// A catalog holding `n` Services and their slices, nothing compiled yet.
fn filled(services: &[Service], slices: &[EndpointSlice]) -> ServiceCatalog {
    let mut catalog = ServiceCatalog::new(node(), DEFAULT_MAX_RING_SIZE);
    for (s, e) in services.iter().zip(slices) {
        catalog.upsert_service(s.clone());
        catalog.upsert_slice(e.clone());
    }
    catalog
}

fn report_memory(catalog: &ServiceCatalog) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let s = catalog.stats();
        eprintln!(
            "\nservice tables: {} Services, {} keys, {} backends: {:.1} MiB ({} bytes; {:.0} bytes per key: map \
             entry, Arc'd Service, backends and a {}-slot ring)",
            s.services,
            s.keys,
            s.backends,
            s.heap_bytes as f64 / (1024.0 * 1024.0),
            s.heap_bytes,
            s.heap_bytes as f64 / s.keys as f64,
            catalog.map().values().next().map_or(0, |t| t.ring().len()),
        );
    });
}

fn bench(c: &mut Criterion) {
    let services: Vec<Service> = (0..SERVICES).map(service).collect();
    let slices: Vec<EndpointSlice> = (0..SERVICES).map(|i| slice(i, true)).collect();
    let node = node();

    let mut full = c.benchmark_group("full_sync");
    full.sample_size(10).measurement_time(Duration::from_secs(10));
    full.bench_function("compile_and_map", |b| {
        b.iter(|| {
            let mut map = ServicesMap::default();
            for (s, e) in services.iter().zip(&slices) {
                let compiled = compile(s, std::slice::from_ref(e), &node, DEFAULT_MAX_RING_SIZE);
                map.extend(compiled.entries);
            }
            assert_eq!(map.len(), SERVICES);
            map
        })
    });
    full.bench_function("specs_only", |b| {
        b.iter(|| {
            let mut specs = 0;
            for (s, e) in services.iter().zip(&slices) {
                specs += compile_specs(s, &[e], &node).specs.len();
            }
            assert_eq!(specs, SERVICES);
        })
    });
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let thread_counts = if cpus > 1 { vec![1, cpus.min(4)] } else { vec![1] };
    for threads in thread_counts {
        let name = if threads == 1 { "catalog".to_string() } else { format!("catalog_{threads}_threads") };
        full.bench_function(&name, |b| {
            b.iter_batched(
                || {
                    let mut catalog = filled(&services, &slices);
                    catalog.set_compile_threads(threads);
                    catalog
                },
                |mut catalog| {
                    assert_eq!(catalog.recompile_dirty(), SERVICES);
                    let map = catalog.services_map();
                    report_memory(&catalog);
                    (catalog, map)
                },
                BatchSize::PerIteration,
            )
        });
    }
    full.finish();

    let mut catalog = filled(&services, &slices);
    catalog.recompile_dirty();
    let extra = service(SERVICES);
    let extra_slice = slice(SERVICES, true);

    let mut one = c.benchmark_group("one_change");
    one.bench_function("add_service", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (s, e) = (extra.clone(), extra_slice.clone());
                let start = Instant::now();
                catalog.upsert_service(s);
                catalog.upsert_slice(e);
                assert_eq!(catalog.recompile_dirty(), 1);
                let map = black_box(catalog.services_map());
                total += start.elapsed();
                assert_eq!(map.len(), SERVICES + 1);
                drop(map);
                catalog.delete_service("bench", &format!("svc-{SERVICES}"));
                catalog.delete_slice("bench", &format!("svc-{SERVICES}-abcde"));
                catalog.recompile_dirty();
            }
            total
        })
    });
    let variants = [slice(SERVICES / 2, false), slice(SERVICES / 2, true)];
    let mut flip = 1; // the catalog holds variants[1]: start with the other
    one.bench_function("endpoint_update", |b| {
        b.iter_batched(
            || {
                flip ^= 1;
                variants[flip].clone()
            },
            |e| {
                catalog.upsert_slice(e);
                assert_eq!(catalog.recompile_dirty(), 1);
                catalog.services_map()
            },
            BatchSize::SmallInput,
        )
    });
    one.finish();

    c.bench_function("publish/services_map", |b| b.iter(|| catalog.services_map()));
}

criterion_group!(benches, bench);
criterion_main!(benches);
