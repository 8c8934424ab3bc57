//! The real `switchyard` binary as a child process, with helpers to read its
//! admin API and wait for a condition.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Appliance {
    child: Option<Child>,
    config: PathBuf,
    /// `127.0.0.1:PORT` of its admin API.
    pub admin: String,
    log: Arc<Mutex<Vec<String>>>,
}

/// A free loopback port (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(19477)
}

/// One HTTP/1.0 GET with std only: `(status, body)`.
pub fn http_get(addr: &str, path: &str) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(|e| format!("read {addr}: {e}"))?;
    let (head, body) = response.split_once("\r\n\r\n").ok_or("no header end")?;
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or("no status")?;
    Ok((status, body.to_string()))
}

/// The `[agent]` section the agent tests start from: node `node`, the
/// containerd at `runtime_endpoint`, manifests and state under `dir`, pods
/// looked at every 300 ms. More `[agent]` keys may follow it.
pub fn agent_section(node: &str, runtime_endpoint: &str, dir: &Path) -> String {
    format!(
        "[agent]\nnode_name = \"{node}\"\nruntime_endpoint = \"{runtime_endpoint}\"\nmanifests = \"{}\"\n\
         root = \"{}\"\nsync_period_ms = 300\n",
        dir.join("manifests").display(),
        dir.join("root").display()
    )
}

/// The largest lag of the control loop's ticks so far (seconds), from the
/// Prometheus endpoint at `metrics` (the summary's quantile 1).
pub fn max_control_loop_lag(metrics: &str) -> Result<f64, String> {
    let (_, text) = http_get(metrics, "/metrics")?;
    text.lines()
        .find(|l| l.starts_with("switchyard_control_loop_lag_seconds_hist{quantile=\"1\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .ok_or_else(|| format!("no control loop lag in the metrics:\n{text}"))
}

/// The CPU for the one worker core: the last one (the control thread and
/// the tests keep the others).
pub fn worker_cpu() -> usize {
    std::thread::available_parallelism().map(|n| n.get() - 1).unwrap_or(0)
}

/// A `[dataplane]` with one worker and one `net_null0` port at 192.0.2.1
/// that receives nothing: for tests of the control side, which need the
/// dataplane's tables but no traffic.
pub fn null_dataplane_section() -> String {
    format!(
        "[dataplane]\neal_args = [\"--no-huge\", \"-m\", \"512\", \"--no-shconf\", \"--no-pci\", \"-l\", \"0\", \
         \"--no-telemetry\", \"--log-level\", \"lib.eal:error\", \"--vdev\", \"net_null0,no-rx=1\"]\n\
         workers = [{}]\n[[port]]\nname = \"net_null0\"\nipv4 = \"192.0.2.1\"\n",
        worker_cpu()
    )
}

/// The admin API on the address [`Appliance::start`] picks, and no
/// Prometheus endpoint (two tests at once would share its port).
pub const ADMIN_ONLY: &str = "[admin]\nlisten = \"@ADMIN@\"\n[metrics]\nlisten = \"\"\n";

impl Appliance {
    /// Writes `config` (with `@ADMIN@` replaced by a free admin address) into
    /// `dir` and starts `switchyard run` on it.
    pub fn start(dir: &Path, config: &str) -> Appliance {
        let admin = format!("127.0.0.1:{}", free_port());
        let path = dir.join("switchyard.toml");
        std::fs::write(&path, config.replace("@ADMIN@", &admin)).expect("write config");
        let mut a = Appliance { child: None, config: path, admin, log: Arc::new(Mutex::new(Vec::new())) };
        a.spawn();
        a
    }

    fn spawn(&mut self) {
        let mut child = Command::new(crate::switchyard_bin())
            .args(["run", "--config"])
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start switchyard");
        let stderr = child.stderr.take().expect("stderr");
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut l) = log.lock() {
                    l.push(line);
                }
            }
        });
        self.child = Some(child);
        self.wait_for("the admin API", Duration::from_secs(20), |a| a.get("/healthz").is_some());
    }

    /// The log so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// GET a JSON resource of the admin API.
    pub fn get(&self, path: &str) -> Option<serde_json::Value> {
        let (status, body) = http_get(&self.admin, path).ok()?;
        (status == 200).then(|| serde_json::from_str(&body).ok()).flatten()
    }

    /// Polls `check` every 200 ms until it holds; panics with the log after
    /// `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration, check: impl Fn(&Appliance) -> bool) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if check(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("timed out waiting for {what}\n--- switchyard log ---\n{}", self.log());
    }

    /// Stops it with SIGTERM (pods keep running) and waits.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills it with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// CPU time (user and system) the process has used so far, from
    /// `/proc/PID/stat`.
    pub fn cpu_time(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()?)).ok()?;
        // Fields after the command name (which may hold spaces) in parentheses.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        // USER_HZ is 100 on Linux.
        Some(Duration::from_millis(ticks * 10))
    }

    /// The config file it runs on (`@ADMIN@` filled in).
    pub fn config(&self) -> String {
        std::fs::read_to_string(&self.config).unwrap_or_default()
    }

    /// Writes `config` over its config file (atomically) and sends SIGHUP.
    pub fn reload(&self, config: &str) {
        let tmp = self.config.with_extension("toml.new");
        std::fs::write(&tmp, config).expect("write the new config");
        std::fs::rename(&tmp, &self.config).expect("move the new config in place");
        if let Some(child) = &self.child {
            let _ = Command::new("kill").args(["-HUP", &child.id().to_string()]).status();
        }
    }

    /// Starts it again on the same config.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        self.kill();
    }
}
