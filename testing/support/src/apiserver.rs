//! A real kube-apiserver (1.20.2) with its own etcd, as the tests' cluster:
//! TLS with the server's self-signed certificate, RBAC, the ServiceAccount
//! admission plugin and bound service-account token volumes on, as a real
//! cluster has them. State lives in a temp dir; both processes listen on
//! free loopback ports, so two test runs do not meet.
//!
//! There is no controller-manager: what it would create, the harness creates
//! (each namespace's `default` ServiceAccount and `kube-root-ca.crt`
//! ConfigMap), and tests write EndpointSlices themselves. 1.20 serves
//! EndpointSlices only as v1beta1; the harness turns that version off and
//! serves `discovery.k8s.io/v1` through a CRD, which is what the appliance's
//! watchers read.
//!
//! The binary is built once by `scripts/lab/kube-apiserver` and cached
//! outside the repository.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::appliance::free_port;

/// The CRD that serves EndpointSlices as `discovery.k8s.io/v1`, with a
/// structural schema that keeps their fields.
const ENDPOINTSLICE_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: endpointslices.discovery.k8s.io
  annotations: {api-approved.kubernetes.io: "unapproved, test-only EndpointSlice v1 for a 1.20 server"}
spec:
  group: discovery.k8s.io
  names: {kind: EndpointSlice, listKind: EndpointSliceList, plural: endpointslices, singular: endpointslice}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        required: [addressType]
        properties:
          addressType: {type: string}
          endpoints:
            type: array
            items: {type: object, x-kubernetes-preserve-unknown-fields: true}
          ports:
            type: array
            items: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

pub struct ApiServer {
    etcd: Option<Child>,
    server: Option<Child>,
    /// How the server was started, to start it again after [`ApiServer::stop`].
    command: Vec<String>,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    admin: PathBuf,
    ca: PathBuf,
    dir: tempfile::TempDir,
}

/// Runs `cmd`, returning its stdout or why it failed.
fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn spawn_logged(cmd: &mut Command, log: &Path) -> Result<Child, String> {
    let file = fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    cmd.stdin(Stdio::null()).stdout(file).stderr(err).spawn().map_err(|e| format!("{cmd:?}: {e}"))
}

/// A kubeconfig for `url`, trusting `ca`, authenticating with `token`.
fn kubeconfig(url: &str, ca: &Path, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster: {{server: \"{url}\", certificate-authority: \"{}\"}}\n\
         users:\n- name: test\n  user: {{token: \"{token}\"}}\ncontexts:\n- name: test\n  context: {{cluster: test, user: test}}\n\
         current-context: test\n",
        ca.display()
    )
}

impl ApiServer {
    /// The kube-apiserver binary: built (the first time, about 9 minutes) or
    /// found in the cache by `scripts/lab/kube-apiserver`.
    pub fn binary() -> Result<PathBuf, String> {
        let script = crate::repo_root().join("scripts/lab/kube-apiserver");
        let out = run(&mut Command::new(script))?;
        let path = PathBuf::from(out.trim().lines().last().unwrap_or_default());
        if path.is_file() {
            Ok(path)
        } else {
            Err(format!("scripts/lab/kube-apiserver printed no binary: {out}"))
        }
    }

    /// Starts etcd and the API server and waits until the server is ready
    /// and bootstrapped.
    pub fn start() -> Result<ApiServer, String> {
        let binary = ApiServer::binary()?;
        let dir = tempfile::Builder::new().prefix("sy-apiserver-").tempdir().map_err(|e| e.to_string())?;
        let path = |name: &str| dir.path().join(name);
        let (client, peer, secure) = (free_port(), free_port(), free_port());
        let etcd = spawn_logged(
            Command::new("etcd")
                .arg("--name=test")
                .arg(format!("--data-dir={}", path("etcd").display()))
                .arg(format!("--listen-client-urls=http://127.0.0.1:{client}"))
                .arg(format!("--advertise-client-urls=http://127.0.0.1:{client}"))
                .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
                .arg(format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"))
                .arg(format!("--initial-cluster=test=http://127.0.0.1:{peer}")),
            &path("etcd.log"),
        )?;
        let mut api = ApiServer {
            etcd: Some(etcd),
            server: None,
            command: Vec::new(),
            url: format!("https://127.0.0.1:{secure}"),
            admin: path("admin.kubeconfig"),
            ca: path("certs/apiserver.crt"),
            dir,
        };
        let path = |name: &str| api.dir.path().join(name);
        run(Command::new("openssl").args(["genrsa", "-out"]).arg(path("sa.key")).arg("2048"))?;
        run(Command::new("openssl")
            .arg("rsa")
            .arg("-in")
            .arg(path("sa.key"))
            .arg("-pubout")
            .arg("-out")
            .arg(path("sa.pub")))?;
        let token = run(Command::new("openssl").args(["rand", "-hex", "16"]))?.trim().to_string();
        fs::write(path("tokens.csv"), format!("{token},admin,1,system:masters\n")).map_err(|e| e.to_string())?;
        let path_arg = |flag: &str, name: &str| format!("--{flag}={}", path(name).display());
        api.command = vec![
            binary.display().to_string(),
            format!("--etcd-servers=http://127.0.0.1:{client}"),
            format!("--secure-port={secure}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            path_arg("cert-dir", "certs"),
            path_arg("token-auth-file", "tokens.csv"),
            "--service-account-issuer=https://kubernetes.default.svc".into(),
            path_arg("service-account-key-file", "sa.pub"),
            path_arg("service-account-signing-key-file", "sa.key"),
            "--service-cluster-ip-range=10.96.0.0/16".into(),
            "--authorization-mode=RBAC".into(),
            "--enable-admission-plugins=ServiceAccount".into(),
            "--endpoint-reconciler-type=none".into(),
            "--feature-gates=BoundServiceAccountTokenVolume=true".into(),
            "--runtime-config=discovery.k8s.io/v1beta1=false".into(),
        ];
        let server = api.spawn_server()?;
        api.server = Some(server);

        // The server writes its certificate, then answers /readyz.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !api.ca.exists() {
            api.check_alive()?;
            if Instant::now() > deadline {
                return Err(format!("no serving certificate after 60 s\n{}", api.log()));
            }
            sleep(Duration::from_millis(100));
        }
        fs::write(&api.admin, kubeconfig(&api.url, &api.ca, &token)).map_err(|e| e.to_string())?;
        while api.kubectl(&["get", "--raw", "/readyz"], None).is_err() {
            api.check_alive()?;
            if Instant::now() > deadline {
                return Err(format!("not ready after 60 s\n{}", api.log()));
            }
            sleep(Duration::from_millis(200));
        }
        api.bootstrap()?;
        Ok(api)
    }

    fn spawn_server(&self) -> Result<Child, String> {
        let log = self.dir.path().join("apiserver.log");
        let file = fs::OpenOptions::new().create(true).append(true).open(&log).map_err(|e| e.to_string())?;
        let err = file.try_clone().map_err(|e| e.to_string())?;
        Command::new(&self.command[0])
            .args(&self.command[1..])
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("kube-apiserver: {e}"))
    }

    /// Stops the API server (etcd keeps its state): clients see connections
    /// refused, as in an outage.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the API server again after [`ApiServer::stop`], on the same
    /// port and state, and waits until it is ready.
    pub fn resume(&mut self) -> Result<(), String> {
        if self.server.is_none() {
            self.server = Some(self.spawn_server()?);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.kubectl(&["get", "--raw", "/readyz"], None).is_err() {
            self.check_alive()?;
            if Instant::now() > deadline {
                return Err(format!("not ready 60 s after resuming\n{}", self.log()));
            }
            sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// What a controller-manager would have made, and the EndpointSlice
    /// CRD.
    fn bootstrap(&self) -> Result<(), String> {
        let ca = fs::read_to_string(&self.ca).map_err(|e| e.to_string())?;
        let indented: String = ca.lines().map(|l| format!("    {l}\n")).collect();
        // The system namespaces appear a moment after /readyz: retry.
        let deadline = Instant::now() + Duration::from_secs(30);
        for ns in ["default", "kube-system"] {
            let objects = format!(
                "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: default, namespace: {ns}}}\n---\n\
                 apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: kube-root-ca.crt, namespace: {ns}}}\ndata:\n  ca.crt: |\n{indented}"
            );
            while let Err(e) = self.apply(&objects) {
                if Instant::now() > deadline {
                    return Err(format!("bootstrapping namespace {ns}: {e}"));
                }
                sleep(Duration::from_millis(200));
            }
        }
        self.apply(ENDPOINTSLICE_CRD)?;
        self.kubectl(
            &["wait", "--for=condition=Established", "--timeout=30s", "crd/endpointslices.discovery.k8s.io"],
            None,
        )?;
        Ok(())
    }

    fn check_alive(&mut self) -> Result<(), String> {
        let mut exited = None;
        for (what, child) in [("etcd", &mut self.etcd), ("kube-apiserver", &mut self.server)] {
            if let Some(Ok(Some(status))) = child.as_mut().map(Child::try_wait) {
                exited = Some(format!("{what} exited ({status})"));
            }
        }
        match exited {
            Some(why) => Err(format!("{why}\n{}", self.log())),
            None => Ok(()),
        }
    }

    /// The last lines of the server's and etcd's logs.
    pub fn log(&self) -> String {
        let tail = |name: &str| {
            let text = fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(30)..].join("\n")
        };
        format!("--- kube-apiserver ---\n{}\n--- etcd ---\n{}", tail("apiserver.log"), tail("etcd.log"))
    }

    /// The server's certificate (the cluster's CA, for clients).
    pub fn ca(&self) -> &Path {
        &self.ca
    }

    /// A kubeconfig with cluster-admin rights (system:masters).
    pub fn admin_kubeconfig(&self) -> &Path {
        &self.admin
    }

    /// `kubectl` as cluster-admin; `stdin` is piped in.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        kubectl(&self.admin, args, stdin)
    }

    /// `kubectl apply` of `yaml` as cluster-admin, server-side: client-side
    /// apply would send a strategic merge patch, which the CRD-served
    /// EndpointSlices refuse.
    pub fn apply(&self, yaml: &str) -> Result<String, String> {
        self.kubectl(&["apply", "--server-side", "--force-conflicts", "--field-manager=test", "-f", "-"], Some(yaml))
    }

    /// A kubeconfig that authenticates as the ServiceAccount
    /// `namespace/name`, with a token from the TokenRequest API: what an
    /// appliance deployed with `configs/kubernetes/rbac.yaml` has.
    pub fn service_account_kubeconfig(&self, namespace: &str, name: &str) -> Result<PathBuf, String> {
        let token = self.kubectl(&["create", "token", name, "-n", namespace, "--duration=3600s"], None)?;
        let path = self.dir.path().join(format!("{namespace}-{name}.kubeconfig"));
        fs::write(&path, kubeconfig(&self.url, &self.ca, token.trim())).map_err(|e| e.to_string())?;
        Ok(path)
    }
}

/// `kubectl --kubeconfig KUBECONFIG ARGS`, with `stdin` piped in.
pub fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("kubectl (apt-get install kubectl): {e}"))?;
    if let Some(mut input) = child.stdin.take() {
        if let Some(text) = stdin {
            let _ = input.write_all(text.as_bytes());
        }
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        for child in [self.server.take(), self.etcd.take()].into_iter().flatten() {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
