use k8s_openapi::api::core::v1::{Pod, PodStatus};

use super::*;
use crate::compile::compile;
use crate::standalone::{
    endpoint_slices, parse_services, read_services_dir, LocalPod, PodPort, MAX_ENDPOINTS_PER_SLICE,
};

const WEB: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 10.96.0.10
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http}
  - {name: admin, port: 9000, targetPort: 9001}
  - {name: plain, port: 7000}
"#;

fn pod(name: &str, ips: &[&str], ready: bool, terminating: bool, http_port: i32) -> LocalPod {
    LocalPod {
        namespace: "shop".into(),
        name: name.into(),
        labels: [("app".to_string(), "web".to_string()), ("tier".to_string(), "front".to_string())].into(),
        ips: ips.iter().map(|s| ip(s)).collect(),
        node_name: "node-a".into(),
        ready,
        terminating,
        container_ports: vec![PodPort { name: Some("http".into()), port: http_port, protocol: "TCP".into() }],
    }
}

/// Every endpoint of `slices` as "address conditions ports".
fn summary(slices: &[EndpointSlice]) -> Vec<String> {
    let mut out = Vec::new();
    for s in slices {
        let ports: Vec<String> = s
            .ports
            .iter()
            .flatten()
            .map(|p| format!("{}={}", p.name.as_deref().unwrap_or(""), p.port.unwrap_or(0)))
            .collect();
        for e in &s.endpoints {
            let c = e.conditions.as_ref().unwrap();
            out.push(format!(
                "{} {} r={} s={} t={} [{}]",
                s.address_type,
                e.addresses.join(","),
                c.ready.unwrap(),
                c.serving.unwrap(),
                c.terminating.unwrap(),
                ports.join(" ")
            ));
        }
    }
    out.sort();
    out
}

#[test]
fn selected_pods_become_endpoints_with_their_target_ports() {
    let mut stranger = pod("other", &["10.244.0.9"], true, false, 8080);
    stranger.labels.insert("app".into(), "db".into());
    let mut elsewhere = pod("web-x", &["10.244.0.8"], true, false, 8080);
    elsewhere.namespace = "prod".into();
    let pods = vec![pod("web-1", &["10.244.0.1"], true, false, 8080), stranger, elsewhere];
    let slices = endpoint_slices(&svc(WEB), &pods);
    assert_eq!(slices.len(), 1);
    let s = &slices[0];
    assert_eq!(s.metadata.namespace.as_deref(), Some("shop"));
    let labels = s.metadata.labels.as_ref().unwrap();
    assert_eq!(labels["kubernetes.io/service-name"], "web");
    assert_eq!(s.address_type, "IPv4");
    assert_eq!(summary(&slices), ["IPv4 10.244.0.1 r=true s=true t=false [http=8080 admin=9001 plain=7000]"]);
    let e = &s.endpoints[0];
    assert_eq!(e.node_name.as_deref(), Some("node-a"));
    assert_eq!(e.target_ref.as_ref().unwrap().name.as_deref(), Some("web-1"));
}

#[test]
fn no_selector_means_no_endpoints() {
    let pods = vec![pod("web-1", &["10.244.0.1"], true, false, 8080)];
    let no_selector = WEB.replace("  selector: {app: web}\n", "");
    assert!(endpoint_slices(&svc(&no_selector), &pods).is_empty());
    let empty = WEB.replace("selector: {app: web}", "selector: {}");
    assert!(endpoint_slices(&svc(&empty), &pods).is_empty());
    // All of the selector must match.
    let both = WEB.replace("selector: {app: web}", "selector: {app: web, tier: back}");
    assert!(endpoint_slices(&svc(&both), &pods).is_empty());
}

#[test]
fn a_named_target_port_is_resolved_per_pod() {
    let mut no_name = pod("web-3", &["10.244.0.3"], true, false, 8080);
    no_name.container_ports.clear();
    let mut udp = pod("web-4", &["10.244.0.4"], true, false, 8080);
    udp.container_ports[0].protocol = "UDP".into();
    let pods = vec![
        pod("web-1", &["10.244.0.1"], true, false, 8080),
        pod("web-2", &["10.244.0.2"], true, false, 8081),
        no_name,
        udp,
    ];
    let slices = endpoint_slices(&svc(WEB), &pods);
    // Different resolved ports, different slices (a slice's ports apply to all its endpoints).
    assert_eq!(slices.len(), 3);
    assert_eq!(
        summary(&slices),
        [
            "IPv4 10.244.0.1 r=true s=true t=false [http=8080 admin=9001 plain=7000]",
            "IPv4 10.244.0.2 r=true s=true t=false [http=8081 admin=9001 plain=7000]",
            "IPv4 10.244.0.3 r=true s=true t=false [admin=9001 plain=7000]",
            "IPv4 10.244.0.4 r=true s=true t=false [admin=9001 plain=7000]",
        ]
    );
    let names: std::collections::BTreeSet<_> = slices.iter().map(|s| s.metadata.name.clone().unwrap()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    // Stable names: the same input gives the same slices.
    let again = endpoint_slices(&svc(WEB), &pods);
    assert_eq!(again, slices);

    // Compiled, each pod serves http on its own port.
    let c = compile(&svc(WEB), &slices, &node(), RING);
    let m = by_key(&c);
    assert_eq!(backends(m["10.96.0.10:80/TCP"]), ["10.244.0.1#8080 ready", "10.244.0.2#8081 ready"]);
    assert_eq!(backends(m["10.96.0.10:9000/TCP"]).len(), 4);
    assert_eq!(backends(m["10.96.0.10:7000/TCP"])[0], "10.244.0.1#7000 ready", "targetPort unset: the port");
}

#[test]
fn readiness_and_termination_become_conditions() {
    let pods = vec![
        pod("ready", &["10.244.0.1"], true, false, 8080),
        pod("starting", &["10.244.0.2"], false, false, 8080),
        pod("stopping", &["10.244.0.3"], true, true, 8080),
        pod("stopped", &["10.244.0.4"], false, true, 8080),
        pod("no-ip", &[], true, false, 8080),
    ];
    let slices = endpoint_slices(&svc(WEB), &pods);
    let lines: Vec<String> = summary(&slices).iter().map(|l| l.split(" [").next().unwrap().to_string()).collect();
    assert_eq!(
        lines,
        [
            "IPv4 10.244.0.1 r=true s=true t=false",
            "IPv4 10.244.0.2 r=false s=false t=false",
            "IPv4 10.244.0.3 r=false s=true t=true",
            "IPv4 10.244.0.4 r=false s=false t=true",
        ]
    );
    let c = compile(&svc(WEB), &slices, &node(), RING);
    assert_eq!(
        backends(by_key(&c)["10.96.0.10:80/TCP"]),
        [
            "10.244.0.1#8080 ready",
            "10.244.0.2#8080 not-ready",
            "10.244.0.3#8080 terminating",
            "10.244.0.4#8080 not-ready"
        ]
    );

    // publishNotReadyAddresses: every endpoint is ready.
    let publish = WEB.replace("  selector:", "  publishNotReadyAddresses: true\n  selector:");
    let slices = endpoint_slices(&svc(&publish), &pods);
    assert!(slices.iter().flat_map(|s| &s.endpoints).all(|e| e.conditions.as_ref().unwrap().ready == Some(true)));
}

#[test]
fn dual_stack_services_get_a_slice_per_family() {
    let dual =
        WEB.replace("clusterIP: 10.96.0.10", "clusterIPs: [10.96.0.10, \"fd00:96::10\"]\n  ipFamilies: [IPv4, IPv6]");
    let pods = vec![
        pod("web-1", &["10.244.0.1", "fd00:244::1"], true, false, 8080),
        pod("v4-only", &["10.244.0.2"], true, false, 8080),
    ];
    let slices = endpoint_slices(&svc(&dual), &pods);
    assert_eq!(slices.len(), 2);
    let lines: Vec<String> = summary(&slices).iter().map(|l| l.split(" r=").next().unwrap().to_string()).collect();
    assert_eq!(lines, ["IPv4 10.244.0.1", "IPv4 10.244.0.2", "IPv6 fd00:244::1"]);
    // A single-stack IPv4 Service gets the IPv4 slice only.
    assert_eq!(endpoint_slices(&svc(WEB), &pods).len(), 1);
    let c = compile(&svc(&dual), &slices, &node(), RING);
    assert_eq!(backends(by_key(&c)["[fd00:96::10]:80/TCP"]), ["fd00:244::1#8080 ready"]);
}

#[test]
fn large_groups_are_split_into_slices_of_at_most_100() {
    let pods: Vec<LocalPod> = (0..250)
        .map(|i| pod(&format!("web-{i:03}"), &[&format!("10.244.{}.{}", i / 200, i % 200 + 1)], true, false, 8080))
        .collect();
    let slices = endpoint_slices(&svc(WEB), &pods);
    assert_eq!(slices.iter().map(|s| s.endpoints.len()).collect::<Vec<_>>(), [100, 100, 50]);
    assert!(slices.iter().all(|s| s.endpoints.len() <= MAX_ENDPOINTS_PER_SLICE));
    let c = compile(&svc(WEB), &slices, &node(), RING);
    assert_eq!(by_key(&c)["10.96.0.10:80/TCP"].backends.len(), 250);
}

#[test]
fn local_pods_come_from_pods_and_their_status() {
    let p: Pod = serde_yaml::from_str(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web}}
spec:
  nodeName: node-a
  initContainers:
  - {name: proxy, image: x, restartPolicy: Always, ports: [{name: proxy, containerPort: 15001}]}
  - {name: setup, image: x, ports: [{name: setup, containerPort: 1}]}
  containers:
  - name: httpd
    image: x
    ports: [{name: http, containerPort: 8080}, {name: dns, containerPort: 53, protocol: UDP}]
"#,
    )
    .unwrap();
    let status: PodStatus = serde_yaml::from_str(
        r#"
phase: Running
podIP: 10.244.0.1
podIPs: [{ip: 10.244.0.1}, {ip: "fd00:244::1"}]
conditions: [{type: Ready, status: "True"}, {type: ContainersReady, status: "True"}]
"#,
    )
    .unwrap();
    let local = LocalPod::from_pod(&p, &status, false).unwrap();
    assert_eq!((local.namespace.as_str(), local.name.as_str(), local.node_name.as_str()), ("shop", "web-1", "node-a"));
    assert_eq!(local.ips, [ip("10.244.0.1"), ip("fd00:244::1")]);
    assert!(local.ready && !local.terminating);
    let ports: Vec<(Option<&str>, i32, &str)> =
        local.container_ports.iter().map(|p| (p.name.as_deref(), p.port, p.protocol.as_str())).collect();
    assert_eq!(ports, [(Some("http"), 8080, "TCP"), (Some("dns"), 53, "UDP"), (Some("proxy"), 15001, "TCP")]);

    let mut not_ready = status.clone();
    not_ready.conditions.as_mut().unwrap()[0].status = "False".into();
    assert!(!LocalPod::from_pod(&p, &not_ready, true).unwrap().ready);
    let mut done = status;
    done.phase = Some("Succeeded".into());
    assert!(LocalPod::from_pod(&p, &done, false).is_none());
}

fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

#[test]
fn services_are_read_from_a_manifest_directory() {
    let multi = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: 10.96.0.10
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers: [{name: c, image: x}]
---
apiVersion: v1
kind: Service
metadata: {name: dns, namespace: kube-system}
spec:
  clusterIP: None
  ports: [{port: 53}]
"#;
    let json = r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"api"},"spec":{"clusterIPs":["10.96.0.11"],"ports":[{"port":443}]}}"#;
    let list = r#"
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Service, metadata: {name: db}, spec: {type: ExternalName, externalName: db.example.com}}
- {apiVersion: v1, kind: ConfigMap, metadata: {name: cm}}
"#;
    let dir = dir_with(&[
        ("a-multi.yaml", multi),
        ("b-api.json", json),
        ("c-list.yml", list),
        ("d-pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n"),
        ("e-noip.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: noip}\nspec: {ports: [{port: 80}]}\n"),
        ("f-broken.yaml", "kind: Service\nmetadata: {name: [unclosed\n"),
        ("g-badfield.yaml", "kind: Service\nmetadata: {name: bad}\nspec: {clusterIP: 10.96.0.12, ports: oops}\n"),
        ("h-dup.yaml", &multi.replace("10.96.0.10", "10.96.0.99")),
        (".hidden.yaml", "garbage: ["),
        ("README.md", "kind: Service"),
    ]);
    let (services, errors) = read_services_dir(dir.path());
    let names: Vec<String> = services
        .iter()
        .map(|s| format!("{}/{}", s.metadata.namespace.as_deref().unwrap(), s.metadata.name.as_deref().unwrap()))
        .collect();
    assert_eq!(names, ["default/web", "kube-system/dns", "default/api", "default/db"]);
    let reasons: BTreeMap<String, String> = errors
        .iter()
        .map(|(f, r)| (f.file_name().unwrap().to_string_lossy().into_owned(), r.clone()))
        .fold(BTreeMap::new(), |mut m, (f, r)| {
            m.entry(f).and_modify(|all: &mut String| all.push_str(&format!("\n{r}"))).or_insert(r);
            m
        });
    assert_eq!(reasons.keys().collect::<Vec<_>>(), ["e-noip.yaml", "f-broken.yaml", "g-badfield.yaml", "h-dup.yaml"]);
    assert!(reasons["e-noip.yaml"].contains("default/noip has no spec.clusterIP"), "{reasons:?}");
    assert!(reasons["f-broken.yaml"].contains("not YAML"), "{reasons:?}");
    assert!(reasons["g-badfield.yaml"].contains("not a valid Service"), "{reasons:?}");
    assert!(reasons["h-dup.yaml"].contains("already defined in") && reasons["h-dup.yaml"].contains("a-multi.yaml"));

    // A missing directory is no Services and no error.
    let (none, errors) = read_services_dir(&dir.path().join("absent"));
    assert!(none.is_empty() && errors.is_empty());
}

#[test]
fn parsed_standalone_services_compile() {
    let (services, problems) = parse_services(WEB);
    assert!(problems.is_empty(), "{problems:?}");
    let pods = vec![pod("web-1", &["10.244.0.1"], true, false, 8080)];
    let slices = endpoint_slices(&services[0], &pods);
    let c = compile(&services[0], &slices, &node(), RING);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(backends(by_key(&c)["10.96.0.10:80/TCP"]), ["10.244.0.1#8080 ready"]);
}
