//! Container probes (startup, liveness, readiness) with kubelet's defaults:
//! period 10 s, timeout 1 s, failure threshold 3, success threshold 1.
//!
//! Each running container with probes gets one task that runs them and
//! publishes a [`ProbeState`] on a watch channel; the pod worker reads it
//! on its next sync (kills a container that failed liveness, reports
//! readiness).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Container, Probe};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{sleep, timeout, Instant};

use super::cri::CriClient;
use super::pod::resolve_port;

/// What the probes say about one container instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeState {
    /// The startup probe has succeeded (true at once without one).
    pub started: bool,
    /// Readiness (true at once without a readiness probe, once started).
    pub ready: bool,
    /// Liveness or startup failed past its threshold: restart the container.
    pub failed: Option<String>,
}

/// Where a container can be reached.
#[derive(Clone, Debug)]
pub struct ProbeTarget {
    pub container_id: String,
    pub pod_ip: Option<IpAddr>,
}

/// The probes that run side by side once the container has started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Liveness,
    Readiness,
}

/// One probe's settings with the defaults filled in.
struct Settings {
    probe: Probe,
    initial_delay: Duration,
    period: Duration,
    timeout: Duration,
    failure_threshold: u32,
    success_threshold: u32,
}

impl Settings {
    fn new(probe: &Probe) -> Settings {
        let secs = |v: Option<i32>, default: u64| Duration::from_secs(v.map_or(default, |s| s.max(0) as u64));
        Settings {
            probe: probe.clone(),
            initial_delay: secs(probe.initial_delay_seconds, 0),
            period: secs(probe.period_seconds, 10).max(Duration::from_secs(1)),
            timeout: secs(probe.timeout_seconds, 1).max(Duration::from_secs(1)),
            failure_threshold: probe.failure_threshold.unwrap_or(3).max(1) as u32,
            success_threshold: probe.success_threshold.unwrap_or(1).max(1) as u32,
        }
    }
}

/// Starts the probes of a container instance. Returns the state channel and
/// the task (abort it when the instance goes), or `None` without probes.
pub fn start(
    cri: CriClient,
    container: &Container,
    target: ProbeTarget,
) -> (watch::Receiver<ProbeState>, Option<tokio::task::JoinHandle<()>>) {
    let startup = container.startup_probe.as_ref().map(Settings::new);
    let liveness = container.liveness_probe.as_ref().map(Settings::new);
    let readiness = container.readiness_probe.as_ref().map(Settings::new);
    let initial =
        ProbeState { started: startup.is_none(), ready: readiness.is_none() && startup.is_none(), failed: None };
    let (tx, rx) = watch::channel(initial);
    if startup.is_none() && liveness.is_none() && readiness.is_none() {
        return (rx, None);
    }
    let container = container.clone();
    let task = tokio::spawn(async move {
        let runner = Runner { cri, container, target };
        runner.run(startup, liveness, readiness, tx).await;
    });
    (rx, Some(task))
}

struct Runner {
    cri: CriClient,
    container: Container,
    target: ProbeTarget,
}

/// Consecutive results of one probe.
#[derive(Default)]
struct Streak {
    successes: u32,
    failures: u32,
}

impl Streak {
    fn record(&mut self, ok: bool) {
        if ok {
            self.successes += 1;
            self.failures = 0;
        } else {
            self.failures += 1;
            self.successes = 0;
        }
    }
}

impl Runner {
    async fn run(
        &self,
        startup: Option<Settings>,
        liveness: Option<Settings>,
        readiness: Option<Settings>,
        tx: watch::Sender<ProbeState>,
    ) {
        let mut state = tx.borrow().clone();
        if let Some(s) = startup {
            sleep(s.initial_delay).await;
            let mut streak = Streak::default();
            loop {
                let (ok, why) = self.probe_once(&s).await;
                streak.record(ok);
                if streak.successes >= 1 {
                    state.started = true;
                    state.ready = readiness.is_none();
                    let _ = tx.send(state.clone());
                    break;
                }
                if streak.failures >= s.failure_threshold {
                    state.failed = Some(format!("startup probe failed: {why}"));
                    let _ = tx.send(state.clone());
                    return;
                }
                sleep(s.period).await;
            }
        }

        // Liveness and readiness run side by side, each on its own period.
        let now = Instant::now();
        let mut due: Vec<(Kind, Settings, Instant, Streak)> =
            [(Kind::Liveness, liveness), (Kind::Readiness, readiness)]
                .into_iter()
                .filter_map(|(kind, s)| s.map(|s| (kind, now + s.initial_delay, s)))
                .map(|(kind, first, s)| (kind, s, first, Streak::default()))
                .collect();
        loop {
            let Some(next) = due.iter().map(|d| d.2).min() else { return };
            tokio::time::sleep_until(next).await;
            for (kind, settings, at, streak) in due.iter_mut() {
                if *at > Instant::now() {
                    continue;
                }
                let (ok, why) = self.probe_once(settings).await;
                streak.record(ok);
                *at = Instant::now() + settings.period;
                match kind {
                    Kind::Liveness if streak.failures >= settings.failure_threshold => {
                        state.failed = Some(format!("liveness probe failed: {why}"));
                        let _ = tx.send(state.clone());
                        return;
                    }
                    Kind::Readiness => {
                        let ready = if streak.successes >= settings.success_threshold {
                            true
                        } else if streak.failures >= settings.failure_threshold {
                            false
                        } else {
                            state.ready
                        };
                        if ready != state.ready {
                            state.ready = ready;
                            let _ = tx.send(state.clone());
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Runs the probe once; `(success, what happened)`.
    async fn probe_once(&self, s: &Settings) -> (bool, String) {
        let p = &s.probe;
        if let Some(exec) = &p.exec {
            let cmd = exec.command.clone().unwrap_or_default();
            return match self.cri.exec_sync(&self.target.container_id, cmd, s.timeout).await {
                Ok(r) if r.exit_code == 0 => (true, "exit 0".into()),
                Ok(r) => {
                    let said = String::from_utf8_lossy(if r.stderr.is_empty() { &r.stdout } else { &r.stderr });
                    (false, format!("command exited with {}: {}", r.exit_code, said.trim()))
                }
                Err(e) => (false, e.to_string()),
            };
        }
        let host = |explicit: &Option<String>| -> IpAddr {
            explicit
                .as_deref()
                .and_then(|h| h.parse().ok())
                .or(self.target.pod_ip)
                .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
        };
        if let Some(t) = &p.tcp_socket {
            let Ok(port) = resolve_port(&self.container, &t.port) else { return (false, "bad port".into()) };
            let addr = SocketAddr::new(host(&t.host), port);
            return match timeout(s.timeout, TcpStream::connect(addr)).await {
                Ok(Ok(_)) => (true, "connected".into()),
                Ok(Err(e)) => (false, format!("dial {addr}: {e}")),
                Err(_) => (false, format!("dial {addr}: timed out")),
            };
        }
        if let Some(h) = &p.http_get {
            let Ok(port) = resolve_port(&self.container, &h.port) else { return (false, "bad port".into()) };
            let addr = SocketAddr::new(host(&h.host), port);
            let path = h.path.clone().unwrap_or_else(|| "/".into());
            let headers: Vec<(String, String)> =
                h.http_headers.iter().flatten().map(|hh| (hh.name.clone(), hh.value.clone())).collect();
            return match timeout(s.timeout, http_get(addr, &path, &headers)).await {
                Ok(Ok(code)) if (200..400).contains(&code) => (true, format!("HTTP {code}")),
                Ok(Ok(code)) => (false, format!("GET http://{addr}{path}: HTTP {code}")),
                Ok(Err(e)) => (false, format!("GET http://{addr}{path}: {e}")),
                Err(_) => (false, format!("GET http://{addr}{path}: timed out")),
            };
        }
        (false, "no handler".into())
    }
}

/// One HTTP/1.1 GET; the status code.
async fn http_get(addr: SocketAddr, path: &str, headers: &[(String, String)]) -> Result<u16, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    let conn = tokio::spawn(conn);
    let mut request = hyper::Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .header(hyper::header::USER_AGENT, "switchyard-probe/1")
        .header(hyper::header::CONNECTION, "close");
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let request = request.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| e.to_string());
    conn.abort();
    Ok(response?.status().as_u16())
}
