//! switchyard against an API server (the kube-standin test server, driven
//! with kubectl too) and a real containerd: the node registers and renews
//! its Lease; a pod bound to the node runs and its status appears in the
//! API; a static pod gets a mirror pod; Services and EndpointSlices reach
//! the dataplane's tables and follow changes; watches that end or answer 410
//! lose nothing; with the API server gone, pods and tables stay, and on its
//! return everything re-syncs; a deleted pod is stopped and removed.
//!
//! Needs root, DPDK, containerd and kubectl (scripts/install-deps).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube_standin::StandIn;
use serde_json::Value;
use testing::appliance::{agent_section, http_get, Appliance, ADMIN_ONLY};
use testing::containerd::Containerd;

fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl (apt-get install kubectl)");
    if let Some(text) = stdin {
        let _ = child.stdin.take().map(|mut s| s.write_all(text.as_bytes()));
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().expect("kubectl output");
    assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn apply(kubeconfig: &Path, yaml: &str) {
    kubectl(kubeconfig, &["apply", "--validate=false", "-f", "-"], Some(yaml));
}

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: api-web, namespace: default, labels: {app: api-web}}
spec:
  nodeName: node-k
  terminationGracePeriodSeconds: 2
  containers:
  - name: httpd
    image: switchyard.local/busybox:1
    command: ["sh", "-c", "echo api pod > /var/www/index.html && exec httpd -f -p 8080 -h /var/www"]
    ports: [{name: http, containerPort: 8080}]
    readinessProbe:
      httpGet: {path: /, port: http}
      periodSeconds: 1
"#;

const STATIC: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: static-web, labels: {app: static}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: idle, image: "switchyard.local/busybox:1", command: ["sleep", "3600"]}
"#;

const SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.7.7
  selector: {app: api-web}
  ports: [{name: http, port: 80, targetPort: http, protocol: TCP}]
"#;

fn slice(name: &str, endpoints: &[(&str, bool)]) -> String {
    let eps: Vec<String> = endpoints
        .iter()
        .map(|(ip, ready)| format!("  - addresses: [\"{ip}\"]\n    conditions: {{ready: {ready}}}\n"))
        .collect();
    format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}\n  namespace: default\n  labels: {{kubernetes.io/service-name: web}}\naddressType: IPv4\nports: [{{name: http, port: 8080, protocol: TCP}}]\nendpoints:\n{}",
        eps.concat()
    )
}

fn backends(a: &Appliance) -> Vec<(String, String)> {
    let services = a.get("/v1/services").and_then(|v| v.as_array().cloned()).unwrap_or_default();
    let Some(web) = services.iter().find(|s| s["vip"] == "10.96.7.7") else { return Vec::new() };
    let mut b: Vec<(String, String)> = web["backends"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| (b["address"].as_str().unwrap_or("").to_string(), b["state"].as_str().unwrap_or("").to_string()))
        .collect();
    b.sort();
    b
}

fn pod_status(api: &StandIn, name: &str) -> Option<Value> {
    api.get::<Pod>("default", name).and_then(|p| serde_json::to_value(p.status?).ok())
}

#[test]
fn the_appliance_follows_the_api_server() {
    if let Err(why) = Containerd::available() {
        panic!("this test needs containerd (scripts/install-deps) and root: {why}");
    }
    let api = StandIn::start();
    let mut ctrd = Containerd::start().expect("containerd");
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    std::fs::write(manifests.join("static.yaml"), STATIC).unwrap();

    let worker = std::thread::available_parallelism().map(|n| n.get() - 1).unwrap_or(0);
    let config = format!(
        r#"
[dataplane]
eal_args = ["--no-huge", "-m", "512", "--no-shconf", "--no-pci", "-l", "0", "--no-telemetry",
            "--log-level", "lib.eal:error", "--vdev", "net_null0,no-rx=1"]
workers = [{worker}]
[[port]]
name = "net_null0"
ipv4 = "192.0.2.1"
{agent}node_ip = "192.0.2.1"
[cluster]
kubeconfig = "{kubeconfig}"
node_labels = {{ "switchyard.io/role" = "edge" }}
{ADMIN_ONLY}"#,
        agent = agent_section("node-k", &ctrd.address, dir.path()),
        kubeconfig = kubeconfig.display(),
    );
    let sy = Appliance::start(dir.path(), &config);

    // The node registers with its conditions, labels and capacity.
    sy.wait_for("the Node, Ready", Duration::from_secs(30), |_| {
        api.get::<Node>("", "node-k").is_some_and(|n| {
            n.status
                .and_then(|s| s.conditions)
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
    });
    let node = api.get::<Node>("", "node-k").unwrap();
    let labels = node.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("switchyard.io/role").map(String::as_str), Some("edge"));
    assert_eq!(labels.get("kubernetes.io/hostname").map(String::as_str), Some("node-k"));
    let status = node.status.unwrap();
    assert!(status.capacity.unwrap().contains_key("memory"));
    assert!(status.allocatable.unwrap().contains_key("pods"));
    let conditions: Vec<String> = status.conditions.unwrap().iter().map(|c| c.type_.clone()).collect();
    for c in ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"] {
        assert!(conditions.contains(&c.to_string()), "{conditions:?}");
    }
    assert!(kubectl(&kubeconfig, &["get", "node", "node-k", "-o", "name"], None).contains("node/node-k"));

    // The Lease exists and is renewed.
    sy.wait_for("the Lease", Duration::from_secs(20), |_| api.get::<Lease>("kube-node-lease", "node-k").is_some());
    let renewed = |l: Lease| l.spec.and_then(|s| s.renew_time).map(|t| t.0);
    let first = renewed(api.get::<Lease>("kube-node-lease", "node-k").unwrap());
    sy.wait_for("the Lease renewed", Duration::from_secs(25), |_| {
        api.get::<Lease>("kube-node-lease", "node-k").map(renewed) != Some(first)
    });
    let lease = api.get::<Lease>("kube-node-lease", "node-k").unwrap().spec.unwrap();
    assert_eq!(lease.lease_duration_seconds, Some(40));

    // A pod bound to this node runs; its status reaches the API.
    apply(&kubeconfig, POD);
    sy.wait_for("api-web Running and Ready in the API", Duration::from_secs(40), |_| {
        pod_status(&api, "api-web").is_some_and(|s| {
            s["phase"] == "Running"
                && s["conditions"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
        })
    });
    let ip = pod_status(&api, "api-web").unwrap()["podIP"].as_str().unwrap().to_string();
    assert_eq!(http_get(&format!("{ip}:8080"), "/").expect("HTTP to the pod").1.trim(), "api pod");

    // The static pod appears as a mirror pod, and comes back when deleted.
    sy.wait_for("the mirror pod", Duration::from_secs(30), |_| {
        api.get::<Pod>("default", "static-web-node-k")
            .is_some_and(|p| p.metadata.annotations.is_some_and(|a| a.contains_key("kubernetes.io/config.mirror")))
    });
    let mirror_uid = api.get::<Pod>("default", "static-web-node-k").unwrap().metadata.uid;
    kubectl(&kubeconfig, &["delete", "pod", "static-web-node-k", "--wait=false"], None);
    sy.wait_for("the mirror pod recreated", Duration::from_secs(30), |_| {
        api.get::<Pod>("default", "static-web-node-k")
            .is_some_and(|p| p.metadata.uid != mirror_uid && p.metadata.deletion_timestamp.is_none())
    });

    // A Service and its EndpointSlice reach the dataplane; changes follow.
    apply(&kubeconfig, SERVICE);
    apply(&kubeconfig, &slice("web-a", &[(&ip, true), ("10.244.1.200", true)]));
    sy.wait_for("the Service in the tables", Duration::from_secs(20), |a| backends(a).len() == 2);
    apply(&kubeconfig, &slice("web-a", &[(&ip, true), ("10.244.1.200", false)]));
    sy.wait_for("the endpoint turning not ready", Duration::from_secs(20), |a| {
        backends(a).contains(&("10.244.1.200:8080".into(), "not-ready".into()))
    });

    // Watches that end, or answer 410, are resumed without losing events.
    api.end_watches();
    apply(&kubeconfig, &slice("web-a", &[(&ip, true), ("10.244.1.201", true)]));
    sy.wait_for("the change after the watches ended", Duration::from_secs(30), |a| {
        backends(a).iter().any(|(b, _)| b == "10.244.1.201:8080")
    });
    api.compact();
    api.end_watches();
    apply(&kubeconfig, &slice("web-b", &[("10.244.1.202", true)]));
    sy.wait_for("the change after 410 Gone", Duration::from_secs(30), |a| {
        backends(a).iter().any(|(b, _)| b == "10.244.1.202:8080")
    });

    // The API server goes away: pods run on and the tables stay.
    let before = backends(&sy);
    let generation = sy.get("/v1/counters").unwrap()["generation"].clone();
    api.stop();
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(backends(&sy), before, "the tables changed while the API server was away");
    assert_eq!(sy.get("/v1/counters").unwrap()["generation"], generation);
    assert_eq!(http_get(&format!("{ip}:8080"), "/").expect("the pod still answers").1.trim(), "api pod");
    // A change made while it is away (straight into its store) arrives once
    // it is back.
    let mut svc: k8s_openapi::api::discovery::v1::EndpointSlice = api.get("default", "web-b").expect("slice web-b");
    svc.endpoints[0].addresses = vec!["10.244.1.203".into()];
    api.replace(&svc).expect("replace while stopped");
    api.resume().expect("resume the API server");
    sy.wait_for("the re-sync after the API server returned", Duration::from_secs(60), |a| {
        backends(a).iter().any(|(b, _)| b == "10.244.1.203:8080")
    });

    // Deleting the pod in the API stops it and removes it for good.
    kubectl(&kubeconfig, &["delete", "pod", "api-web", "--wait=false"], None);
    sy.wait_for("api-web gone from the API", Duration::from_secs(90), |_| {
        api.get::<Pod>("default", "api-web").is_none()
    });
    sy.wait_for("api-web gone from the node", Duration::from_secs(20), |a| {
        a.get("/v1/pods").and_then(|p| p.as_array().cloned()).is_some_and(|p| !p.iter().any(|p| p["name"] == "api-web"))
    });

    drop(sy);
    ctrd.stop().expect("containerd cleanup");
}
