use dataplane::tables::{proto, BackendState};
use k8s_openapi::api::discovery::v1::EndpointConditions;

use super::*;
use crate::compile::{backend_state, compile, DEFAULT_AFFINITY_TIMEOUT_S};

const WEB: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10]
  ports:
  - {name: http, port: 80, targetPort: 8080}
"#;

/// Two endpoints of web: 10.244.1.5 on node-a (ready), 10.244.2.7 on node-b
/// (conditions unset: ready).
const WEB_SLICE: &str = r#"
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc
  namespace: shop
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports:
- {name: http, port: 8080, protocol: TCP}
endpoints:
- addresses: [10.244.1.5]
  nodeName: node-a
  conditions: {ready: true}
- addresses: [10.244.2.7]
  nodeName: node-b
"#;

const WEB_SLICE_V6: &str = r#"
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-v6
  namespace: shop
  labels: {kubernetes.io/service-name: web}
addressType: IPv6
ports:
- {name: http, port: 8080, protocol: TCP}
endpoints:
- addresses: ["fd00:244::5"]
  nodeName: node-a
- addresses: ["fd00:244::7"]
  nodeName: node-b
"#;

fn run(service: &str, slices: &[&str]) -> CompiledService {
    let slices: Vec<_> = slices.iter().map(|s| slice(s)).collect();
    compile(&svc(service), &slices, &node(), RING)
}

#[test]
fn cluster_ip_port_gets_its_endpoints() {
    let c = run(WEB, &[WEB_SLICE]);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.entries.len(), 1);
    let (k, t) = &c.entries[0];
    assert_eq!(*k, tcp("10.96.0.10", 80));
    assert_eq!(t.key, *k);
    assert_eq!(t.name, "shop/web:http");
    assert_eq!(t.affinity_timeout_s, 0);
    assert_eq!(backends(t), ["10.244.1.5#8080 ready", "10.244.2.7#8080 ready"]);
    assert!(t.backends.iter().all(|b| b.weight == 1));
    let chosen = t.choose(12345).expect("a ready backend");
    assert_eq!(chosen.port, 8080);
}

#[test]
fn unnamed_port_is_named_by_the_service_and_matches_unnamed_slice_ports() {
    let service = WEB.replace("{name: http, port: 80, targetPort: 8080}", "{port: 80, targetPort: 8080}");
    // The slice port's name is "" (as the controller writes it), or unset.
    for port in ["{name: \"\", port: 8080, protocol: TCP}", "{port: 8080}"] {
        let s = WEB_SLICE.replace("{name: http, port: 8080, protocol: TCP}", port);
        let c = run(&service, &[&s]);
        let t = &by_key(&c)["10.96.0.10:80/TCP"];
        assert_eq!(t.name, "shop/web");
        assert_eq!(t.backends.len(), 2, "slice port {port}");
    }
    // A named slice port does not serve an unnamed Service port.
    let c = run(&service, &[WEB_SLICE]);
    assert!(c.entries[0].1.backends.is_empty());
}

#[test]
fn dual_stack_gets_a_key_per_family_with_that_familys_endpoints() {
    let service = WEB.replace(
        "clusterIPs: [10.96.0.10]",
        "clusterIPs: [10.96.0.10, \"fd00:96::10\"]\n  ipFamilies: [IPv4, IPv6]\n  ipFamilyPolicy: PreferDualStack",
    );
    let c = run(&service, &[WEB_SLICE, WEB_SLICE_V6]);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let m = by_key(&c);
    assert_eq!(m.keys().collect::<Vec<_>>(), ["10.96.0.10:80/TCP", "[fd00:96::10]:80/TCP"]);
    assert_eq!(backends(m["10.96.0.10:80/TCP"]), ["10.244.1.5#8080 ready", "10.244.2.7#8080 ready"]);
    assert_eq!(backends(m["[fd00:96::10]:80/TCP"]), ["fd00:244::5#8080 ready", "fd00:244::7#8080 ready"]);
}

#[test]
fn cluster_ip_alone_is_used_when_cluster_ips_is_unset() {
    let service = WEB.replace("  clusterIPs: [10.96.0.10]\n", "");
    let c = run(&service, &[WEB_SLICE]);
    assert_eq!(by_key(&c).keys().collect::<Vec<_>>(), ["10.96.0.10:80/TCP"]);
}

#[test]
fn named_ports_take_the_slice_port_of_the_same_name_and_protocol() {
    let service = r#"
apiVersion: v1
kind: Service
metadata: {name: dns, namespace: kube-system}
spec:
  clusterIP: 10.96.0.53
  ports:
  - {name: dns, port: 53, protocol: UDP, targetPort: 5353}
  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: 5353}
  - {name: metrics, port: 9153}
"#;
    let s = r#"
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: dns-1
  namespace: kube-system
  labels: {kubernetes.io/service-name: dns}
addressType: IPv4
ports:
- {name: dns, port: 5353, protocol: UDP}
- {name: dns-tcp, port: 5354, protocol: TCP}
- {name: metrics, port: 9253, protocol: UDP}
- {name: metrics, port: 9153, protocol: TCP}
endpoints:
- addresses: [10.244.0.2]
"#;
    let c = run(service, &[s]);
    let m = by_key(&c);
    assert_eq!(m.len(), 3);
    assert_eq!(backends(m["10.96.0.53:53/UDP"]), ["10.244.0.2#5353 ready"]);
    assert_eq!(backends(m["10.96.0.53:53/TCP"]), ["10.244.0.2#5354 ready"]);
    assert_eq!(backends(m["10.96.0.53:9153/TCP"]), ["10.244.0.2#9153 ready"]);
    assert_eq!(m["10.96.0.53:53/UDP"].name, "kube-system/dns:dns");
    assert_eq!(m["10.96.0.53:53/TCP"].name, "kube-system/dns:dns-tcp");
}

#[test]
fn sctp_is_a_protocol_too() {
    let service = WEB.replace("targetPort: 8080}", "targetPort: 8080, protocol: SCTP}");
    let s = WEB_SLICE.replace("protocol: TCP", "protocol: SCTP");
    let c = run(&service, &[&s]);
    assert_eq!(c.entries[0].0, key("10.96.0.10", 80, proto::SCTP));
    assert_eq!(c.entries[0].1.backends.len(), 2);
}

const NODE_PORT: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  type: NodePort
  clusterIP: 10.96.0.10
  ports:
  - {name: http, port: 80, targetPort: 8080, nodePort: 30080}
"#;

#[test]
fn node_port_is_answered_on_the_nodes_addresses_of_the_services_families() {
    let c = run(NODE_PORT, &[WEB_SLICE]);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let m = by_key(&c);
    // Single-stack IPv4: not on the node's IPv6 address.
    assert_eq!(m.keys().collect::<Vec<_>>(), ["10.96.0.10:80/TCP", "192.168.1.10:30080/TCP"]);
    assert_eq!(backends(m["192.168.1.10:30080/TCP"]).len(), 2);
    assert_eq!(m["192.168.1.10:30080/TCP"].name, "shop/web:http");

    let dual = NODE_PORT.replace("clusterIP: 10.96.0.10", "clusterIPs: [10.96.0.10, \"fd00:96::10\"]");
    let c = run(&dual, &[WEB_SLICE, WEB_SLICE_V6]);
    let m = by_key(&c);
    assert_eq!(
        m.keys().collect::<Vec<_>>(),
        ["10.96.0.10:80/TCP", "192.168.1.10:30080/TCP", "[fd00:1::10]:30080/TCP", "[fd00:96::10]:80/TCP"]
    );
    assert_eq!(backends(m["[fd00:1::10]:30080/TCP"]), ["fd00:244::5#8080 ready", "fd00:244::7#8080 ready"]);

    // Every address of the node, each once.
    let mut n = node();
    n.addresses.extend([ip("10.0.0.10"), ip("192.168.1.10")]);
    let c = compile(&svc(NODE_PORT), &[slice(WEB_SLICE)], &n, RING);
    assert_eq!(c.entries.len(), 3);
    assert!(by_key(&c).contains_key("10.0.0.10:30080/TCP"));
}

#[test]
fn a_node_port_on_a_cluster_ip_service_is_ignored() {
    let service = NODE_PORT.replace("type: NodePort", "type: ClusterIP");
    let c = run(&service, &[WEB_SLICE]);
    assert_eq!(c.entries.len(), 1);
    assert!(warnings(&c).contains("spec.ports[0].nodePort"), "{:?}", c.warnings);
}

const LB: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  type: LoadBalancer
  clusterIP: 10.96.0.10
  ports:
  - {name: http, port: 80, targetPort: 8080, nodePort: 30080}
status:
  loadBalancer:
    ingress:
    - ip: 203.0.113.7
    - hostname: lb.example.com
    - {ip: 203.0.113.8, ipMode: Proxy}
    - {ip: 203.0.113.9, ipMode: VIP}
"#;

#[test]
fn load_balancer_ingress_ips_are_vips() {
    let c = run(LB, &[WEB_SLICE]);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let m = by_key(&c);
    assert_eq!(
        m.keys().collect::<Vec<_>>(),
        ["10.96.0.10:80/TCP", "192.168.1.10:30080/TCP", "203.0.113.7:80/TCP", "203.0.113.9:80/TCP"],
        "hostname-only and ipMode Proxy ingresses are not VIPs"
    );
    assert_eq!(backends(m["203.0.113.7:80/TCP"]).len(), 2);

    // allocateLoadBalancerNodePorts: false → no nodePort, no NodePort keys.
    let no_np = LB
        .replace(", nodePort: 30080", "")
        .replace("type: LoadBalancer", "type: LoadBalancer\n  allocateLoadBalancerNodePorts: false");
    let c = run(&no_np, &[WEB_SLICE]);
    assert_eq!(c.entries.len(), 3);
    assert!(!by_key(&c).contains_key("192.168.1.10:30080/TCP"));
}

#[test]
fn external_ips_are_vips_of_their_family() {
    let service = WEB.replace("  ports:", "  externalIPs: [198.51.100.1, \"2001:db8::1\", 198.51.100.1]\n  ports:");
    let c = run(&service, &[WEB_SLICE]);
    let m = by_key(&c);
    assert_eq!(m.keys().collect::<Vec<_>>(), ["10.96.0.10:80/TCP", "198.51.100.1:80/TCP"]);
    assert_eq!(backends(m["198.51.100.1:80/TCP"]).len(), 2);
    let w = warnings(&c);
    assert!(w.contains("shop/web") && w.contains("spec.externalIPs[1]") && w.contains("IPv6"), "{w}");
    assert_eq!(c.warnings.len(), 1, "a repeated address is not a conflict");
}

#[test]
fn external_traffic_policy_local_keeps_external_keys_on_this_nodes_endpoints() {
    let service = LB
        .replace("type: LoadBalancer", "type: LoadBalancer\n  externalTrafficPolicy: Local")
        .replace("  ports:", "  externalIPs: [198.51.100.1]\n  ports:");
    let c = run(&service, &[WEB_SLICE]);
    let m = by_key(&c);
    assert_eq!(backends(m["10.96.0.10:80/TCP"]).len(), 2, "cluster IP: all endpoints");
    for external in ["192.168.1.10:30080/TCP", "203.0.113.7:80/TCP", "198.51.100.1:80/TCP"] {
        assert_eq!(backends(m[external]), ["10.244.1.5#8080 ready"], "{external}");
    }
    // No local endpoint: the key stays and drops (no fallback to others).
    let mut other = node();
    other.name = "node-c".into();
    let c = compile(&svc(&service), &[slice(WEB_SLICE)], &other, RING);
    let m = by_key(&c);
    assert!(m["203.0.113.7:80/TCP"].backends.is_empty());
    assert!(m["203.0.113.7:80/TCP"].choose(1).is_none());
    assert_eq!(m["10.96.0.10:80/TCP"].backends.len(), 2);
}

#[test]
fn internal_traffic_policy_local_keeps_the_cluster_ip_on_this_nodes_endpoints() {
    let service = LB.replace("type: LoadBalancer", "type: LoadBalancer\n  internalTrafficPolicy: Local");
    let c = run(&service, &[WEB_SLICE]);
    let m = by_key(&c);
    assert_eq!(backends(m["10.96.0.10:80/TCP"]), ["10.244.1.5#8080 ready"]);
    assert_eq!(backends(m["203.0.113.7:80/TCP"]).len(), 2, "external keys: all endpoints");
    assert_eq!(backends(m["192.168.1.10:30080/TCP"]).len(), 2);
}

#[test]
fn endpoint_conditions_map_to_backend_states() {
    let c = |ready, serving, terminating| EndpointConditions { ready, serving, terminating };
    let cases = [
        (None, BackendState::Ready),
        (Some(c(None, None, None)), BackendState::Ready),
        (Some(c(Some(true), None, None)), BackendState::Ready),
        (Some(c(Some(true), Some(true), Some(false))), BackendState::Ready),
        (Some(c(Some(false), Some(true), Some(true))), BackendState::Terminating),
        // serving unset means "as ready": a not-ready terminating endpoint does not serve.
        (Some(c(Some(false), None, Some(true))), BackendState::NotReady),
        (Some(c(Some(false), Some(false), Some(true))), BackendState::NotReady),
        (Some(c(Some(false), Some(true), None)), BackendState::NotReady),
        (Some(c(Some(false), None, None)), BackendState::NotReady),
    ];
    for (conditions, want) in cases {
        assert_eq!(backend_state(conditions.as_ref()), want, "{conditions:?}");
    }
}

#[test]
fn terminating_endpoints_serve_only_when_none_is_ready() {
    let s = r#"
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc
  namespace: shop
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports:
- {name: http, port: 8080, protocol: TCP}
endpoints:
- addresses: [10.244.1.5]
  conditions: {ready: true, serving: true, terminating: false}
- addresses: [10.244.1.6]
  conditions: {ready: false, serving: true, terminating: true}
- addresses: [10.244.1.7]
  conditions: {ready: false, serving: false, terminating: false}
"#;
    let c = run(WEB, &[s]);
    let t = &c.entries[0].1;
    assert_eq!(backends(t), ["10.244.1.5#8080 ready", "10.244.1.6#8080 terminating", "10.244.1.7#8080 not-ready"]);
    assert!((0..500).all(|h| t.choose(h).unwrap().addr == Addr::from(ip("10.244.1.5"))));

    let no_ready = s.replace("{ready: true, serving: true, terminating: false}", "{ready: false, serving: false}");
    let c = run(WEB, &[&no_ready]);
    let t = &c.entries[0].1;
    assert!((0..500).all(|h| t.choose(h).unwrap().addr == Addr::from(ip("10.244.1.6"))));
}

#[test]
fn endpoints_in_several_slices_count_once_with_their_best_state() {
    let second = WEB_SLICE
        .replace("name: web-abc", "name: web-def")
        .replace("conditions: {ready: true}", "conditions: {ready: false}")
        .replace("10.244.2.7]\n  nodeName: node-b", "10.244.2.7]\n  nodeName: node-b\n  conditions: {ready: false}")
        .replace("- addresses: [10.244.2.7]", "- addresses: [10.244.3.1]\n- addresses: [10.244.2.7]");
    let c = run(WEB, &[&second, WEB_SLICE]);
    assert_eq!(backends(&c.entries[0].1), ["10.244.1.5#8080 ready", "10.244.2.7#8080 ready", "10.244.3.1#8080 ready"]);
    // The order the slices come in does not matter.
    let again = run(WEB, &[WEB_SLICE, &second]);
    assert_eq!(backends(&c.entries[0].1), backends(&again.entries[0].1));
}

#[test]
fn only_the_services_own_slices_are_used() {
    let other_service = WEB_SLICE.replace("service-name: web}", "service-name: api}").replace("10.244.1.5", "10.1.1.1");
    let other_namespace = WEB_SLICE.replace("namespace: shop", "namespace: prod").replace("10.244.1.5", "10.2.2.2");
    let unlabelled =
        WEB_SLICE.replace("  labels: {kubernetes.io/service-name: web}\n", "").replace("10.244.1.5", "10.3.3.3");
    let fqdn = WEB_SLICE.replace("addressType: IPv4", "addressType: FQDN").replace("10.244.1.5", "web.example.com");
    let c = run(WEB, &[&other_service, &other_namespace, &unlabelled, &fqdn]);
    assert!(c.entries[0].1.backends.is_empty());
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn client_ip_affinity_sets_the_timeout() {
    let affinity = |extra: &str| {
        let c = run(&WEB.replace("  ports:", &format!("{extra}  ports:")), &[WEB_SLICE]);
        (c.entries[0].1.affinity_timeout_s, c.warnings)
    };
    assert_eq!(affinity("").0, 0);
    assert_eq!(affinity("  sessionAffinity: None\n").0, 0);
    assert_eq!(affinity("  sessionAffinity: ClientIP\n").0, DEFAULT_AFFINITY_TIMEOUT_S);
    assert_eq!(DEFAULT_AFFINITY_TIMEOUT_S, 10_800);
    let explicit = "  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}\n";
    assert_eq!(affinity(explicit), (60, vec![]));
    let (t, w) = affinity(&explicit.replace("60", "0"));
    assert_eq!(t, 10_800);
    assert!(w[0].contains("timeoutSeconds"), "{w:?}");
}

#[test]
fn headless_and_external_name_services_have_no_entries() {
    let headless =
        WEB.replace("clusterIP: 10.96.0.10\n  clusterIPs: [10.96.0.10]", "clusterIP: None\n  clusterIPs: [None]");
    let c = run(&headless, &[WEB_SLICE]);
    assert!(c.entries.is_empty() && c.warnings.is_empty(), "{c:?}");
    let external = r#"
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  type: ExternalName
  externalName: db.example.com
  ports: [{port: 5432}]
"#;
    let c = run(external, &[]);
    assert!(c.entries.is_empty() && c.warnings.is_empty(), "{c:?}");
}

#[test]
fn a_service_without_cluster_ip_is_reported() {
    let c = run(&WEB.replace("  clusterIP: 10.96.0.10\n  clusterIPs: [10.96.0.10]\n", ""), &[WEB_SLICE]);
    assert!(c.entries.is_empty());
    assert!(warnings(&c).contains("shop/web: spec.clusterIP"), "{:?}", c.warnings);
}

#[test]
fn bad_input_is_named_in_warnings_and_skipped() {
    let service = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  type: NodePort
  clusterIPs: [10.96.0.10, "fd00:96::zz"]
  externalIPs: [not-an-ip]
  externalTrafficPolicy: Sometimes
  ports:
  - {name: http, port: 80, nodePort: 70000}
  - {name: zero, port: 0}
  - {name: big, port: 65536}
  - {name: icmp, port: 7, protocol: ICMP}
  - {name: ok, port: 8080, protocol: UDP, nodePort: 30081}
status:
  loadBalancer:
    ingress: [{ip: 300.1.1.1}]
"#;
    let bad_slice = r#"
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-bad
  namespace: shop
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports:
- {name: http, port: 0}
- {name: ok, port: 8080, protocol: UDP}
- {name: ok, port: 99, protocol: QUIC}
endpoints:
- addresses: [10.244.1.500]
- addresses: ["fd00::1"]
- addresses: []
- addresses: [10.244.1.9]
"#;
    let bogus_type = WEB_SLICE.replace("IPv4", "IPv5").replace("web-abc", "web-v5");
    let c = run(service, &[bad_slice, &bogus_type]);
    let m = by_key(&c);
    // What is valid survives: port http without its nodePort, port ok with its own.
    assert_eq!(
        m.keys().collect::<Vec<_>>(),
        ["10.96.0.10:80/TCP", "10.96.0.10:8080/UDP", "192.168.1.10:30081/UDP"],
        "{:#?}",
        c.warnings
    );
    assert_eq!(backends(m["10.96.0.10:8080/UDP"]), ["10.244.1.9#8080 ready"]);
    assert!(m["10.96.0.10:80/TCP"].backends.is_empty());
    let w = warnings(&c);
    for field in [
        "spec.clusterIPs[1]",
        "spec.externalIPs[0]",
        "spec.externalTrafficPolicy",
        "spec.ports[0].nodePort",
        "spec.ports[1].port",
        "spec.ports[2].port",
        "spec.ports[3].protocol",
        "status.loadBalancer.ingress[0].ip",
        "endpointslice web-bad.ports[0]",
        "endpointslice web-bad.ports[2]",
        "endpointslice web-bad.endpoints[0].addresses[0]",
        "endpointslice web-bad.endpoints[1].addresses[0]",
        "endpointslice web-v5.addressType",
    ] {
        assert!(w.contains(&format!("service shop/web: {field}")), "no warning for {field}:\n{w}");
    }
    assert!(c.warnings.iter().all(|w| w.starts_with("service shop/web: ")));
}

#[test]
fn a_service_without_spec_or_name_is_a_warning_not_a_panic() {
    let c = run("apiVersion: v1\nkind: Service\nmetadata: {name: x}\n", &[]);
    assert!(c.entries.is_empty());
    assert!(warnings(&c).contains("service default/x: spec"), "{:?}", c.warnings);
    let c = run("apiVersion: v1\nkind: Service\nmetadata: {}\nspec: {clusterIP: 10.0.0.1}\n", &[]);
    assert!(c.entries.is_empty() && warnings(&c).contains("metadata.name"));
}

#[test]
fn one_key_claimed_twice_within_a_service_is_reported() {
    // The cluster IP is also listed as an external IP.
    let service = WEB.replace("  ports:", "  externalIPs: [10.96.0.10]\n  ports:");
    let c = run(&service, &[WEB_SLICE]);
    assert_eq!(c.entries.len(), 1);
    assert!(warnings(&c).contains("10.96.0.10:80/TCP is claimed twice"), "{:?}", c.warnings);
}
