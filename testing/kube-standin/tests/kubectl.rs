//! The stand-in checked with the real kubectl (`$KUBECTL`, else `kubectl` on PATH). The tests
//! are skipped, with a note on stderr, when kubectl is not installed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube_standin::StandIn;
use serde_json::{json, Value};

fn kubectl_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KUBECTL") {
        return Some(PathBuf::from(p));
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join("kubectl")).find(|p| p.is_file())
}

struct Kubectl {
    bin: PathBuf,
    dir: tempfile::TempDir,
}

impl Kubectl {
    fn new(s: &StandIn) -> Option<Kubectl> {
        let Some(bin) = kubectl_path() else {
            eprintln!("skipping: kubectl not found (set KUBECTL or put it on PATH)");
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        s.write_kubeconfig(dir.path().join("kubeconfig")).expect("kubeconfig");
        Some(Kubectl { bin, dir })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--kubeconfig")
            .arg(self.dir.path().join("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .arg("--request-timeout=10s")
            .args(args)
            .env("HOME", self.dir.path())
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run kubectl")
    }

    /// Run, require success, return stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// Run, require failure, return stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "kubectl {args:?} should fail");
        String::from_utf8(out.stderr).expect("utf-8")
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).expect("kubectl JSON output")
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::File::create(&p).and_then(|mut f| f.write_all(text.as_bytes())).expect("write manifest");
        p
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

const MANIFEST: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {app: web}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
---
apiVersion: v1
kind: Service
metadata:
  name: db
  labels: {app: db}
spec:
  selector: {app: db}
  ports:
  - {port: 5432}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  labels: {kubernetes.io/service-name: web, app: web}
addressType: IPv4
ports:
- {name: http, port: 8080}
endpoints:
- addresses: ["10.1.0.5"]
  conditions: {ready: true}
  nodeName: n1
"#;

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: a, labels: {app: web}}
spec:
  nodeName: n1
  containers: [{name: c, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata: {name: b, labels: {app: web}}
spec:
  nodeName: n2
  containers: [{name: c, image: busybox}]
"#;

#[test]
fn apply_get_select_and_delete() {
    let standin = StandIn::start();
    let Some(k) = Kubectl::new(&standin) else { return };
    let m = k.file("m.yaml", MANIFEST);
    // Client-side apply creates, then patches a change with a strategic merge patch (merge keys,
    // `$patch: delete`, `$setElementOrder`). Validation is client-side without an OpenAPI document,
    // so it is off.
    let out = k.ok(&["apply", "--validate=false", "-f", s(&m)]);
    assert!(
        out.contains("service/web created") && out.contains("endpointslice.discovery.k8s.io/web-1 created"),
        "{out}"
    );
    let m2 = k.file(
        "m2.yaml",
        &MANIFEST
            .replace("port: 80,", "port: 81,")
            .replace("labels: {app: web}\nspec", "labels: {app: web, tier: fe}\nspec"),
    );
    let out = k.ok(&["apply", "--validate=false", "-f", s(&m2)]);
    assert!(out.contains("service/web configured") && out.contains("service/db unchanged"), "{out}");
    // Server-side apply of the same configuration.
    let out = k.ok(&["apply", "--server-side", "--force-conflicts", "--validate=false", "-f", s(&m2)]);
    assert!(out.contains("service/web serverside-applied"), "{out}");
    assert!(out.contains("endpointslice.discovery.k8s.io/web-1 serverside-applied"), "{out}");

    let svcs = k.json(&["get", "svc"]);
    assert_eq!(svcs["items"].as_array().unwrap().len(), 2);
    let web = svcs["items"].as_array().unwrap().iter().find(|s| s["metadata"]["name"] == "web").unwrap();
    assert_eq!(web["kind"], "Service");
    assert_eq!(web["spec"]["ports"], json!([{"name": "http", "port": 81, "protocol": "TCP", "targetPort": 8080}]));
    assert_eq!(web["metadata"]["labels"]["tier"], "fe");
    assert!(web["spec"]["clusterIP"].as_str().unwrap().starts_with("10.96."));
    let slice = k.json(&["get", "endpointslice", "web-1"]);
    assert_eq!(slice["endpoints"][0]["addresses"], json!(["10.1.0.5"]));
    assert_eq!(slice["ports"][0]["protocol"], "TCP");

    assert_eq!(k.ok(&["get", "svc", "-l", "app=web", "-o", "name"]), "service/web\n");
    assert_eq!(
        k.ok(&["get", "svc,endpointslices", "-l", "app=web", "-o", "name"]),
        "service/web\nendpointslice.discovery.k8s.io/web-1\n"
    );
    assert_eq!(k.ok(&["get", "svc", "-l", "app notin (web)", "-o", "name"]), "service/db\n");
    assert_eq!(k.ok(&["get", "svc", "-l", "!app", "-o", "name"]), "");
    assert!(k.fails(&["get", "svc", "-l", "app in web"]).contains("BadRequest"));

    let p = k.file("pods.yaml", PODS);
    let out = k.ok(&["create", "--validate=false", "-f", s(&p)]);
    assert!(out.contains("pod/a created") && out.contains("pod/b created"), "{out}");
    assert!(k.fails(&["create", "--validate=false", "-f", s(&p)]).contains("AlreadyExists"));
    assert_eq!(k.ok(&["get", "pods", "--field-selector", "spec.nodeName=n1", "-o", "name"]), "pod/a\n");
    assert_eq!(k.ok(&["get", "pods", "-A", "--field-selector", "spec.nodeName!=n1", "-o", "name"]), "pod/b\n");
    assert_eq!(
        k.ok(&["get", "pods", "-l", "app=web", "--field-selector", "spec.nodeName=n2", "-o", "name"]),
        "pod/b\n"
    );
    let table = k.ok(&["get", "pods"]);
    assert!(table.starts_with("NAME") && table.contains("\na ") && table.contains("\nb "), "{table}");

    let err = k.fails(&["get", "pod", "nope"]);
    assert!(err.contains("Error from server (NotFound): pods \"nope\" not found"), "{err}");
    let err = k.fails(&["get", "deployments"]);
    assert!(err.contains("the server doesn't have a resource type \"deployments\""), "{err}");
    let err = k.fails(&["get", "pods", "--field-selector", "spec.bogus=1"]);
    assert!(err.contains("field label not supported: spec.bogus"), "{err}");

    let out = k.ok(&["delete", "svc", "db"]);
    assert!(out.contains("service \"db\" deleted"), "{out}");
    assert!(k.fails(&["get", "svc", "db"]).contains("NotFound"));
    // Unbound-or-forced pod deletions are immediate; kubectl's wait sees them gone.
    k.ok(&["delete", "pod", "a", "--grace-period=0", "--force"]);
    assert!(standin.get::<Pod>("default", "a").is_none());
}

#[test]
fn watch_patch_status_and_graceful_delete() {
    let standin = StandIn::start();
    let Some(k) = Kubectl::new(&standin) else { return };
    let p = k.file("pods.yaml", PODS);
    k.ok(&["create", "--validate=false", "-f", s(&p)]);
    k.ok(&["delete", "pod", "b", "--grace-period=0", "--force"]);

    let mut child = k
        .command(&["get", "pods", "-w", "--output-watch-events", "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get -w");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for v in serde_json::Deserializer::from_reader(stdout).into_iter::<Value>() {
            let Ok(v) = v else { return };
            if tx.send(v).is_err() {
                return;
            }
        }
    });
    let next = || rx.recv_timeout(Duration::from_secs(10)).expect("a watch event from kubectl");
    let first = next();
    assert_eq!((first["type"].as_str(), first["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("a")));

    // The status subresource changes only status.
    let out = k.ok(&[
        "patch", "pod", "a", "--subresource=status", "--type=merge",
        "-p", r#"{"status":{"phase":"Running","podIP":"10.1.0.9"},"spec":{"nodeName":"elsewhere"},"metadata":{"labels":{"sneaky":"yes"}}}"#,
        "-o", "json",
    ]);
    let patched: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(patched["status"]["phase"], "Running");
    assert_eq!(patched["status"]["podIP"], "10.1.0.9");
    assert_eq!(patched["spec"]["nodeName"], "n1");
    assert!(patched["metadata"]["labels"].get("sneaky").is_none());
    // The main resource ignores status; a JSON patch changes labels.
    k.ok(&["patch", "pod", "a", "--type=merge", "-p", r#"{"status":{"phase":"Failed"}}"#]);
    k.ok(&["patch", "pod", "a", "--type=json", "-p", r#"[{"op":"add","path":"/metadata/labels/tier","value":"fe"}]"#]);
    assert_eq!(k.ok(&["get", "pod", "a", "-o", "jsonpath={.status.phase} {.metadata.labels.tier}"]), "Running fe");

    // A bound pod: delete marks it, the kubelet's grace-0 delete removes it.
    k.ok(&["delete", "pod", "a", "--wait=false"]);
    let marked = k.json(&["get", "pod", "a"]);
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 30);
    k.ok(&["delete", "pod", "a", "--grace-period=0", "--force"]);

    let mut seen = vec![];
    loop {
        let e = next();
        let kind = e["type"].as_str().unwrap().to_string();
        seen.push((kind.clone(), e["object"].clone()));
        if kind == "DELETED" {
            break;
        }
    }
    let kinds: Vec<&str> = seen.iter().map(|(k, _)| k.as_str()).collect();
    // The merge patch on the main resource changed nothing, so it produced no event.
    assert_eq!(kinds, ["MODIFIED", "MODIFIED", "MODIFIED", "DELETED"], "status, labels, deletion mark, removal");
    assert_eq!(seen[0].1["status"]["phase"], "Running");
    assert_eq!(seen[1].1["metadata"]["labels"]["tier"], "fe");
    assert!(seen[2].1["metadata"]["deletionTimestamp"].is_string());
    let rvs: Vec<u64> =
        seen.iter().map(|(_, o)| o["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap()).collect();
    assert!(rvs.windows(2).all(|w| w[0] < w[1]), "{rvs:?}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn kubectl_watch_ends_cleanly_when_the_server_ends_it() {
    let standin = StandIn::start();
    let Some(k) = Kubectl::new(&standin) else { return };
    let mut child = k
        .command(&["get", "pods", "-w", "--output-watch-events", "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl get -w");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for v in serde_json::Deserializer::from_reader(stdout).into_iter::<Value>().map_while(Result::ok) {
            if tx.send(v).is_err() {
                return;
            }
        }
    });
    // Wait until kubectl is watching (it lists first), then create a pod through the library.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while standin.request_count("watch pods") == 0 {
        assert!(std::time::Instant::now() < deadline, "kubectl never started watching");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pod: Pod = serde_json::from_value(
        json!({"metadata": {"name": "one"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}),
    )
    .unwrap();
    standin.create(&pod).unwrap();
    let e = rx.recv_timeout(Duration::from_secs(10)).expect("event");
    assert_eq!((e["type"].as_str(), e["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("one")));
    // kubectl get -w does not re-watch: a cleanly ended stream ends it with success.
    standin.end_watches();
    let out = child.wait_with_output().expect("kubectl exits");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}
