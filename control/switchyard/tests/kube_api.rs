//! switchyard against a real kube-apiserver (1.20.2 with etcd, RBAC, the
//! ServiceAccount admission plugin and bound token volumes on; see
//! testing::apiserver) and a real containerd, authenticated as the
//! ServiceAccount of `configs/kubernetes/rbac.yaml`, so that every call the
//! appliance makes is checked against the least-privilege role it ships:
//!
//! - the node registers with its labels, conditions, capacity and node info
//!   (runtime and kubelet versions), and renews its Lease;
//! - a pod bound to the node runs, and its status reaches the API;
//! - a pod as admission stores it (the projected ServiceAccount token
//!   volume) runs with a configMap and a secret volume and env from both;
//!   its token is accepted by the API server; a ConfigMap update reaches
//!   the mounted file; a missing ConfigMap holds a pod in ContainerCreating
//!   until it exists;
//! - the Lease and the mirror pods are owned by the Node; a deleted Node is
//!   registered again within seconds;
//! - a static pod gets a mirror pod, recreated when deleted;
//! - Events: `kubectl describe pod` shows a normal start, a missing image
//!   and a crash loop (one aggregated event); the node's Starting and
//!   NodeReady;
//! - Services and EndpointSlices reach the dataplane's tables and follow
//!   changes; Services labelled for another proxy, and headless ones, do
//!   not;
//! - with the API server down for 40 s, pods and tables stay; after it
//!   returns, a Service created then is served within 5 s, and the outage
//!   is logged once per watch, not per retry;
//! - a pod deleted in the API is stopped and removed.
//!
//! What a real server cannot be made to do on demand (end every watch,
//! answer 410 Gone) is in `kube_watch_faults.rs`, against the stand-in.
//!
//! Needs root, DPDK, containerd, kubectl, and the kube-apiserver that
//! `scripts/lab/kube-apiserver` builds (scripts/test builds it first).

use std::time::{Duration, Instant};

use serde_json::Value;
use testing::apiserver::ApiServer;
use testing::appliance::{agent_section, http_get, null_dataplane_section, Appliance, ADMIN_ONLY};
use testing::containerd::Containerd;

const NODE: &str = "node-r";

/// A pod bound to the node, without its ServiceAccount token.
const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: api-web, namespace: default, labels: {app: api-web}}
spec:
  nodeName: node-r
  automountServiceAccountToken: false
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

/// A pod as most are: its ServiceAccount token mounted (the admission
/// plugin adds the projected `kube-api-access-*` volume), a configMap and a
/// secret volume, and env from both.
const FULL_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: api-full, namespace: default}
spec:
  nodeName: node-r
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: switchyard.local/busybox:1
    command: ["sleep", "3600"]
    env:
    - name: GREETING
      valueFrom: {configMapKeyRef: {name: app-config, key: greeting}}
    envFrom: [{secretRef: {name: app-secret}, prefix: SECRET_}]
    volumeMounts:
    - {name: config, mountPath: /etc/config}
    - {name: secret, mountPath: /etc/secret}
  volumes:
  - name: config
    configMap: {name: app-config}
  - name: secret
    secret: {secretName: app-secret, defaultMode: 0400}
"#;

const APP_OBJECTS: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: app-config, namespace: default}
data: {greeting: hello}
---
apiVersion: v1
kind: Secret
metadata: {name: app-secret, namespace: default}
stringData: {password: s3cret}
"#;

/// A pod whose ConfigMap does not exist yet.
const LATE_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: api-late, namespace: default}
spec:
  nodeName: node-r
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 1
  containers:
  - {name: app, image: "switchyard.local/busybox:1", command: ["sleep", "3600"],
     volumeMounts: [{name: config, mountPath: /etc/config}]}
  volumes:
  - {name: config, configMap: {name: late-config}}
"#;

/// A pod whose image does not exist, and one whose container keeps failing.
const BAD_PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: api-noimage, namespace: default}
spec:
  nodeName: node-r
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 1
  containers: [{name: app, image: "switchyard.local/missing:1"}]
---
apiVersion: v1
kind: Pod
metadata: {name: api-crash, namespace: default}
spec:
  nodeName: node-r
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 1
  containers: [{name: app, image: "switchyard.local/busybox:1", command: ["sh", "-c", "exit 1"]}]
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

/// A ClusterIP Service `name` on `vip`, with extra labels.
fn service(name: &str, vip: &str, labels: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default, labels: {{{labels}}}}}\n\
         spec:\n  clusterIP: {vip}\n  selector: {{app: api-web}}\n  ports: [{{name: http, port: 80, targetPort: http, protocol: TCP}}]\n"
    )
}

/// An EndpointSlice of Service `service` with `(address, ready)` endpoints.
fn slice(name: &str, service: &str, endpoints: &[(&str, bool)]) -> String {
    let eps: Vec<String> = endpoints
        .iter()
        .map(|(ip, ready)| format!("  - addresses: [\"{ip}\"]\n    conditions: {{ready: {ready}}}\n"))
        .collect();
    format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}\n  namespace: default\n\
         \x20 labels: {{kubernetes.io/service-name: {service}}}\naddressType: IPv4\n\
         ports: [{{name: http, port: 8080, protocol: TCP}}]\nendpoints:\n{}",
        eps.concat()
    )
}

/// `(address, state)` of the backends of the VIP `vip` in the tables.
fn backends(a: &Appliance, vip: &str) -> Vec<(String, String)> {
    let services = a.get("/v1/services").and_then(|v| v.as_array().cloned()).unwrap_or_default();
    let Some(web) = services.iter().find(|s| s["vip"] == vip) else { return Vec::new() };
    let mut b: Vec<(String, String)> = web["backends"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| (b["address"].as_str().unwrap_or("").to_string(), b["state"].as_str().unwrap_or("").to_string()))
        .collect();
    b.sort();
    b
}

fn has_vip(a: &Appliance, vip: &str) -> bool {
    a.get("/v1/services").and_then(|v| v.as_array().cloned()).unwrap_or_default().iter().any(|s| s["vip"] == vip)
}

/// An object as JSON, or None if the server does not have it.
fn get(api: &ApiServer, args: &[&str]) -> Option<Value> {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    api.kubectl(&all, None).ok().and_then(|out| serde_json::from_str(&out).ok())
}

fn condition_true(object: &Value, kind: &str) -> bool {
    object["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == kind && c["status"] == "True"))
}

#[test]
fn the_appliance_follows_a_real_api_server() {
    if let Err(why) = Containerd::available() {
        panic!("this test needs containerd (scripts/install-deps) and root: {why}");
    }
    let mut api = ApiServer::start().unwrap_or_else(|e| panic!("kube-apiserver: {e}"));
    let rbac = std::fs::read_to_string(testing::repo_root().join("configs/kubernetes/rbac.yaml")).expect("rbac.yaml");
    api.apply(&rbac).unwrap_or_else(|e| panic!("applying rbac.yaml: {e}"));
    let kubeconfig = api.service_account_kubeconfig("kube-system", "switchyard").expect("a token for switchyard");

    let mut ctrd = Containerd::start().expect("containerd");
    let dir = tempfile::tempdir().expect("temp dir");
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).expect("manifests dir");
    std::fs::write(manifests.join("static.yaml"), STATIC).expect("static pod");
    let config = format!(
        r#"
{dataplane}{agent}node_ip = "192.0.2.1"
[cluster]
kubeconfig = "{kubeconfig}"
node_labels = {{ "switchyard.io/role" = "edge" }}
{ADMIN_ONLY}"#,
        agent = agent_section(NODE, &ctrd.address, dir.path()),
        dataplane = null_dataplane_section(),
        kubeconfig = kubeconfig.display(),
    );
    let mut sy = Appliance::start(dir.path(), &config);

    // The node registers with its labels, conditions and capacity.
    sy.wait_for("the Node, Ready", Duration::from_secs(30), |_| {
        get(&api, &["get", "node", NODE]).is_some_and(|n| condition_true(&n, "Ready"))
    });
    let node = get(&api, &["get", "node", NODE]).expect("the Node");
    assert_eq!(node["metadata"]["labels"]["switchyard.io/role"], "edge");
    assert_eq!(node["metadata"]["labels"]["kubernetes.io/hostname"], NODE);
    assert!(node["status"]["capacity"]["memory"].is_string(), "{node}");
    assert!(node["status"]["allocatable"]["pods"].is_string(), "{node}");
    let info = &node["status"]["nodeInfo"];
    assert!(info["containerRuntimeVersion"].as_str().is_some_and(|v| v.starts_with("containerd://")), "{info}");
    assert!(info["kubeletVersion"].as_str().is_some_and(|v| v.starts_with("v1.")), "{info}");
    assert_eq!(info["kubeProxyVersion"], info["kubeletVersion"]);
    for c in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
        assert!(node["status"]["conditions"].as_array().is_some_and(|l| l.iter().any(|x| x["type"] == c)), "{c}");
    }

    // The Lease exists and is renewed.
    let renew_time = |api: &ApiServer| {
        get(api, &["get", "lease", "-n", "kube-node-lease", NODE]).map(|l| l["spec"]["renewTime"].clone())
    };
    sy.wait_for("the Lease", Duration::from_secs(20), |_| renew_time(&api).is_some());
    let first = renew_time(&api);
    sy.wait_for("the Lease renewed", Duration::from_secs(25), |_| renew_time(&api) != first);
    let owner_uid = |object: Option<Value>| object.map(|o| o["metadata"]["ownerReferences"][0]["uid"].clone());
    let node_uid = node["metadata"]["uid"].clone();
    sy.wait_for("the Lease owned by the Node", Duration::from_secs(25), |_| {
        owner_uid(get(&api, &["get", "lease", "-n", "kube-node-lease", NODE])) == Some(node_uid.clone())
    });

    // A pod bound to this node runs; its status reaches the API.
    api.apply(POD).expect("create the pod");
    let pod = |api: &ApiServer| get(api, &["get", "pod", "-n", "default", "api-web"]);
    sy.wait_for("api-web Running and Ready in the API", Duration::from_secs(40), |_| {
        pod(&api).is_some_and(|p| p["status"]["phase"] == "Running" && condition_true(&p, "Ready"))
    });
    let ip = pod(&api).and_then(|p| p["status"]["podIP"].as_str().map(String::from)).expect("the pod's IP");
    assert_eq!(http_get(&format!("{ip}:8080"), "/").expect("HTTP to the pod").1.trim(), "api pod");

    // Events, as `kubectl describe pod` shows them: a normal start, a
    // missing image, a crash loop; and the node's.
    let described = |name: &str| api.kubectl(&["describe", "pod", "-n", "default", name], None).unwrap_or_default();
    sy.wait_for("api-web's Created and Started events", Duration::from_secs(20), |_| {
        let d = described("api-web");
        d.contains("Created") && d.contains("Started") && d.contains("Pulled")
    });
    api.apply(BAD_PODS).expect("the bad pods");
    sy.wait_for("api-noimage's Failed and BackOff events", Duration::from_secs(60), |_| {
        let d = described("api-noimage");
        d.contains("Failed to pull image") && d.contains("BackOff")
    });
    sy.wait_for("api-crash's BackOff event", Duration::from_secs(60), |_| {
        described("api-crash").contains("Back-off restarting failed container")
    });
    let node_events = api.kubectl(&["get", "events", "-n", "default", "-o", "json"], None).expect("events");
    assert!(node_events.contains("NodeReady") && node_events.contains("Starting"), "{node_events}");
    // A crash loop is one aggregated event with a count, not one per retry.
    let crash_events: Value = serde_json::from_str(
        &api.kubectl(
            &["get", "events", "-n", "default", "--field-selector", "involvedObject.name=api-crash", "-o", "json"],
            None,
        )
        .expect("events"),
    )
    .expect("events JSON");
    let backoffs: Vec<&Value> =
        crash_events["items"].as_array().into_iter().flatten().filter(|e| e["reason"] == "BackOff").collect();
    assert_eq!(backoffs.len(), 1, "{crash_events}");
    api.kubectl(&["delete", "pod", "-n", "default", "api-noimage", "api-crash", "--wait=false"], None)
        .expect("delete the bad pods");

    // The static pod appears as a mirror pod, and comes back when deleted.
    let mirror_name = format!("static-web-{NODE}");
    let mirror = |api: &ApiServer| get(api, &["get", "pod", "-n", "default", &mirror_name]);
    sy.wait_for("the mirror pod", Duration::from_secs(30), |_| {
        mirror(&api).is_some_and(|p| p["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_string())
    });
    assert_eq!(owner_uid(mirror(&api)), Some(node_uid.clone()), "the mirror pod is owned by the Node");
    let mirror_uid = mirror(&api).map(|p| p["metadata"]["uid"].clone());
    api.kubectl(&["delete", "pod", "-n", "default", &mirror_name, "--wait=false"], None).expect("delete the mirror");
    sy.wait_for("the mirror pod recreated", Duration::from_secs(30), |_| {
        mirror(&api).is_some_and(|p| Some(p["metadata"]["uid"].clone()) != mirror_uid)
    });

    // A deleted Node is registered again within seconds; the Lease follows
    // it to the new Node.
    api.kubectl(&["delete", "node", NODE, "--wait=false"], None).expect("delete the Node");
    let deleted = Instant::now();
    sy.wait_for("the Node registered again", Duration::from_secs(30), |_| {
        get(&api, &["get", "node", NODE]).is_some_and(|n| n["metadata"]["uid"] != node_uid)
    });
    let again = deleted.elapsed();
    assert!(again < Duration::from_secs(15), "the Node came back after {again:?}");
    let new_uid = get(&api, &["get", "node", NODE]).map(|n| n["metadata"]["uid"].clone()).expect("the new Node");
    sy.wait_for("the Lease owned by the new Node", Duration::from_secs(25), |_| {
        owner_uid(get(&api, &["get", "lease", "-n", "kube-node-lease", NODE])) == Some(new_uid.clone())
    });

    // A Service and its EndpointSlice reach the dataplane; changes follow.
    api.apply(&service("web", "10.96.7.7", "")).expect("the Service");
    api.apply(&slice("web-a", "web", &[(&ip, true), ("10.244.1.200", true)])).expect("the slice");
    sy.wait_for("the Service in the tables", Duration::from_secs(20), |a| backends(a, "10.96.7.7").len() == 2);
    api.apply(&slice("web-a", "web", &[(&ip, true), ("10.244.1.200", false)])).expect("the slice changed");
    sy.wait_for("the endpoint turning not ready", Duration::from_secs(20), |a| {
        backends(a, "10.96.7.7").contains(&("10.244.1.200:8080".into(), "not-ready".into()))
    });

    // Services for another proxy, and headless ones, are not programmed;
    // one that stops being ours leaves the tables.
    let other = "service.kubernetes.io/service-proxy-name: other-proxy";
    api.apply(&service("other", "10.96.7.8", other)).expect("a Service for another proxy");
    api.apply(&slice("other-a", "other", &[(&ip, true)])).expect("its slice");
    api.apply(&service("headless", "10.96.7.9", "service.kubernetes.io/headless: \"\"")).expect("headless");
    api.apply(&slice("headless-a", "headless", &[(&ip, true)])).expect("its slice");
    api.apply(&service("mine", "10.96.7.10", "")).expect("a Service for us");
    api.apply(&slice("mine-a", "mine", &[(&ip, true)])).expect("its slice");
    sy.wait_for("the Service for us", Duration::from_secs(20), |a| has_vip(a, "10.96.7.10"));
    assert!(!has_vip(&sy, "10.96.7.8"), "a Service labelled for another proxy was programmed");
    assert!(!has_vip(&sy, "10.96.7.9"), "a Service labelled headless was programmed");
    api.apply(&service("mine", "10.96.7.10", other)).expect("relabel it for another proxy");
    sy.wait_for("the relabelled Service gone", Duration::from_secs(20), |a| !has_vip(a, "10.96.7.10"));

    // A pod as admission stores it runs: its container reads its token
    // (which the API server accepts), the CA and its namespace from the
    // mount, a configMap and a secret volume, and env from both.
    api.apply(APP_OBJECTS).expect("the ConfigMap and the Secret");
    api.apply(FULL_POD).expect("the pod");
    let stored = get(&api, &["get", "pod", "-n", "default", "api-full"]).expect("the stored pod");
    let projected =
        stored["spec"]["volumes"].as_array().into_iter().flatten().find(|v| {
            v["name"].as_str().is_some_and(|n| n.starts_with("kube-api-access-")) && v["projected"].is_object()
        });
    assert!(projected.is_some(), "admission added the projected token volume: {stored}");
    sy.wait_for("api-full Running", Duration::from_secs(40), |_| {
        get(&api, &["get", "pod", "-n", "default", "api-full"]).is_some_and(|p| p["status"]["phase"] == "Running")
    });
    let id = sy
        .get("/v1/pods")
        .and_then(|p| p.as_array().cloned())
        .and_then(|p| p.into_iter().find(|p| p["name"] == "api-full"))
        .and_then(|p| p["containers"][0]["id"].as_str().map(|id| id.trim_start_matches("containerd://").to_string()))
        .expect("api-full's container");
    let exec = |args: &[&str]| {
        let mut all = vec!["tasks", "exec", "--exec-id", "check"];
        all.push(&id);
        all.extend(args);
        ctrd.ctr(&all).unwrap_or_else(|e| panic!("{e}"))
    };
    const SA: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
    assert_eq!(exec(&["cat", &format!("{SA}/namespace")]), "default");
    let ca = std::fs::read_to_string(api.ca()).expect("the API server's certificate");
    assert_eq!(exec(&["cat", &format!("{SA}/ca.crt")]), ca);
    let token = exec(&["cat", &format!("{SA}/token")]);
    let review = api
        .kubectl(
            &["create", "-o", "json", "-f", "-"],
            Some(&format!(
                "{{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenReview\",\"spec\":{{\"token\":\"{}\"}}}}",
                token.trim()
            )),
        )
        .expect("a TokenReview");
    let review: Value = serde_json::from_str(&review).expect("TokenReview JSON");
    assert_eq!(review["status"]["authenticated"], true, "{review}");
    assert_eq!(review["status"]["user"]["username"], "system:serviceaccount:default:default", "{review}");
    assert_eq!(exec(&["cat", "/etc/config/greeting"]), "hello");
    assert_eq!(exec(&["cat", "/etc/secret/password"]), "s3cret");
    assert_eq!(exec(&["stat", "-L", "-c", "%a", "/etc/secret/password"]).trim(), "400");
    assert_eq!(exec(&["sh", "-c", "echo $GREETING"]).trim(), "hello");
    assert_eq!(exec(&["sh", "-c", "echo $SECRET_password"]).trim(), "s3cret");
    // A ConfigMap update reaches the mounted file (never half written:
    // volumes::atomic).
    api.apply(&APP_OBJECTS.replace("greeting: hello", "greeting: hola")).expect("update the ConfigMap");
    sy.wait_for("the ConfigMap update in the file", Duration::from_secs(30), |_| {
        exec(&["cat", "/etc/config/greeting"]) == "hola"
    });

    // A missing ConfigMap keeps the pod in ContainerCreating, and it starts
    // once the ConfigMap is there.
    api.apply(LATE_POD).expect("the pod");
    let waiting_reason = |api: &ApiServer| {
        get(api, &["get", "pod", "-n", "default", "api-late"])
            .map(|p| p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"].clone())
    };
    sy.wait_for("api-late in ContainerCreating", Duration::from_secs(30), |_| {
        waiting_reason(&api) == Some(Value::from("ContainerCreating"))
    });
    api.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: late-config, namespace: default}\ndata: {a: b}\n")
        .expect("the late ConfigMap");
    sy.wait_for("api-late Running", Duration::from_secs(40), |_| {
        get(&api, &["get", "pod", "-n", "default", "api-late"]).is_some_and(|p| p["status"]["phase"] == "Running")
    });

    // The API server goes away: pods run on and the tables stay.
    let before = backends(&sy, "10.96.7.7");
    let generation = sy.get("/v1/counters").expect("counters")["generation"].clone();
    api.stop();
    // Long enough for kube-rs's default back-off to reach 30 s between
    // retries; the appliance's stays at 2 s.
    std::thread::sleep(Duration::from_secs(40));
    assert_eq!(backends(&sy, "10.96.7.7"), before, "the tables changed while the API server was away");
    assert_eq!(sy.get("/v1/counters").expect("counters")["generation"], generation);
    assert_eq!(http_get(&format!("{ip}:8080"), "/").expect("the pod still answers").1.trim(), "api pod");

    // It comes back; a Service created right then is served soon after.
    api.resume().unwrap_or_else(|e| panic!("resuming the API server: {e}"));
    let back = Instant::now();
    api.apply(&service("after", "10.96.7.11", "")).expect("a Service after the outage");
    api.apply(&slice("after-a", "after", &[(&ip, true)])).expect("its slice");
    sy.wait_for("the Service created after the outage", Duration::from_secs(60), |a| has_vip(a, "10.96.7.11"));
    let served = back.elapsed();
    eprintln!("a Service created after the outage was served {served:?} after the server returned");
    assert!(served < Duration::from_secs(5), "state converged {served:?} after the API server returned");
    // The outage is logged once per watch when it starts and once when it
    // ends, not at every retry.
    let count = |log: &str, what: &str, source: &str| {
        log.lines().filter(|l| l.contains(what) && l.contains(&format!("source={source}"))).count()
    };
    let sources = ["services", "endpointslices", "pods"];
    sy.wait_for("every watch working again", Duration::from_secs(15), |a| {
        sources.iter().all(|s| count(&a.log(), "API calls working again", s) == 1)
    });
    eprintln!("every watch working again {:?} after the server returned", back.elapsed());
    let log = sy.log();
    for source in sources {
        assert_eq!(count(&log, "API calls failing", source), 1, "{source}:\n{log}");
    }
    assert!(!log.contains("failed with error client error"), "kube-rs logged each failed request:\n{log}");

    // Deleting the pod in the API stops it and removes it for good.
    api.kubectl(&["delete", "pod", "-n", "default", "api-web", "--wait=false"], None).expect("delete the pod");
    sy.wait_for("api-web gone from the API", Duration::from_secs(90), |_| pod(&api).is_none());
    sy.wait_for("api-web gone from the node", Duration::from_secs(20), |a| {
        a.get("/v1/pods").and_then(|p| p.as_array().cloned()).is_some_and(|p| !p.iter().any(|p| p["name"] == "api-web"))
    });

    sy.stop();
    drop(sy);
    ctrd.stop().expect("containerd cleanup");
}
