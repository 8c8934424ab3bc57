//! A private containerd (with its CRI plugin) for integration tests.
//!
//! [`Containerd::start`] runs `scripts/lab/containerd-up --foreground` on a fresh
//! state directory under /tmp: containerd listens on its own socket, pods get
//! addresses from 10.244.1.0/24 on the bridge `sy-cni0`, and the images
//! `switchyard.local/busybox:1` and `switchyard.local/pause:1` (the sandbox
//! image) are imported. [`Containerd::stop`] (and `Drop`) runs
//! `scripts/lab/containerd-down`, which kills every container, shim and pod
//! network namespace of the instance and removes the directory.
//!
//! The bridge and the pod subnet are the same for every instance, so
//! instances in one test binary run one at a time: `start` waits until the
//! previous instance has been stopped or dropped. (Cargo runs test binaries
//! one after another.)
//!
//! Needs root and the Debian packages containerd, runc,
//! containernetworking-plugins and busybox-static; [`Containerd::available`]
//! says whether they are there, so a test can skip instead of failing.
//!
//! ```ignore
//! let mut ctrd = Containerd::start().expect("containerd");
//! // point the agent's CRI client at ctrd.address ("unix:///tmp/.../containerd.sock")
//! ctrd.kill().unwrap();      // containerd crashes; shims and pods live on
//! ctrd.restart().unwrap();   // containerd comes back on the same state
//! ctrd.stop().unwrap();      // everything gone
//! ```

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Condvar, Mutex};
use std::thread::sleep;
use std::time::{Duration, Instant};

const UP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/lab/containerd-up");
const DOWN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/lab/containerd-down");

/// A running private containerd. Stopped and cleaned up on drop.
pub struct Containerd {
    /// /tmp/sy-ctrd.XXXXXX: holds the state directory and `up.log`.
    dir: PathBuf,
    /// The state directory given to the scripts (`dir`/s).
    state: PathBuf,
    /// The CRI/containerd gRPC address, `unix:///tmp/sy-ctrd.XXXXXX/s/containerd.sock`.
    pub address: String,
    /// The socket itself.
    pub socket: PathBuf,
    /// `containerd-up --foreground` processes, one per start or restart; each
    /// ends when its subreaper does, and is reaped by `stop`.
    launchers: Vec<Child>,
    stopped: bool,
    turn: Option<Turn>,
}

impl Containerd {
    /// Whether this machine can run one: root, and the tools the scripts use.
    pub fn available() -> Result<(), String> {
        let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
        let uid =
            status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|l| l.split_whitespace().nth(1)).unwrap_or("");
        if uid != "0" {
            return Err("containerd tests need root".into());
        }
        let needed = [
            "/usr/bin/containerd",
            "/usr/bin/ctr",
            "/usr/bin/containerd-shim-runc-v2",
            "/usr/sbin/runc",
            "/usr/lib/cni/bridge",
            "/usr/lib/cni/host-local",
            "/usr/lib/cni/loopback",
            "/bin/busybox",
        ];
        let missing: Vec<&str> = needed.iter().copied().filter(|p| !Path::new(p).exists()).collect();
        if !missing.is_empty() {
            return Err(format!(
                "missing {} (apt-get install containerd runc containernetworking-plugins busybox-static)",
                missing.join(", ")
            ));
        }
        Ok(())
    }

    /// Starts containerd on a fresh state directory under /tmp and waits
    /// until it answers and the test images are imported (~1-2 s).
    pub fn start() -> Result<Containerd, String> {
        let turn = Turn::take();
        let dir = tempfile::Builder::new()
            .prefix("sy-ctrd.")
            .tempdir_in("/tmp")
            .map_err(|e| format!("temp dir: {e}"))?
            .keep();
        let state = dir.join("s");
        let socket = state.join("containerd.sock");
        let mut ctrd = Containerd {
            address: format!("unix://{}", socket.display()),
            socket,
            dir,
            state,
            launchers: Vec::new(),
            stopped: false,
            turn: Some(turn),
        };
        if let Err(e) = ctrd.up() {
            let _ = ctrd.stop();
            return Err(e);
        }
        Ok(ctrd)
    }

    /// The state directory (config.toml, containerd.log, root/, state/...).
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// The pid of containerd itself, if it runs.
    pub fn pid(&self) -> Option<u32> {
        let pid: u32 = fs::read_to_string(self.state.join("containerd.pid")).ok()?.trim().parse().ok()?;
        alive(pid).then_some(pid)
    }

    /// containerd's log so far (for failure messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.state.join("containerd.log")).unwrap_or_default()
    }

    /// Runs `ctr --address SOCKET --namespace k8s.io ARGS...` and returns its
    /// stdout, or its stderr as the error.
    pub fn ctr(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(["--namespace", "k8s.io"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("ctr: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!("ctr {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
        }
    }

    /// Simulates a containerd crash: SIGKILLs containerd alone. Shims,
    /// containers, pod network namespaces and the state directory stay, as
    /// they would after a real crash. [`Containerd::restart`] brings it back.
    pub fn kill(&mut self) -> Result<(), String> {
        let pid = self.pid().ok_or("containerd is not running")?;
        signal(pid, "KILL")?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(pid) {
            if Instant::now() > deadline {
                return Err(format!("containerd (pid {pid}) survived SIGKILL for 5 s"));
            }
            sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Starts containerd again on the same state directory (after
    /// [`Containerd::kill`]: it reconnects to the running shims and pods).
    /// Does nothing if it is running. After `stop` it starts from scratch.
    pub fn restart(&mut self) -> Result<(), String> {
        if self.turn.is_none() {
            self.turn = Some(Turn::take());
        }
        self.stopped = false;
        self.up()
    }

    /// Stops containerd and removes everything it made: containers, shims,
    /// pod network namespaces, the bridge, mounts, the state directory.
    /// Errors say what could not be removed.
    pub fn stop(&mut self) -> Result<(), String> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let result = Command::new(DOWN)
            .arg(&self.state)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{DOWN}: {e}"))
            .and_then(|out| {
                if out.status.success() {
                    Ok(())
                } else {
                    Err(format!("containerd-down failed: {}", String::from_utf8_lossy(&out.stderr).trim()))
                }
            });
        // Each launcher ends once its subreaper has; give them a moment.
        for mut child in self.launchers.drain(..) {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => sleep(Duration::from_millis(20)),
                }
            }
        }
        if result.is_ok() && !self.state.exists() {
            let _ = fs::remove_dir_all(&self.dir);
        }
        self.turn = None;
        result
    }

    /// Runs containerd-up and waits for the address line.
    fn up(&mut self) -> Result<(), String> {
        let log_path = self.dir.join("up.log");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("{}: {e}", log_path.display()))?;
        let mut child = Command::new(UP)
            .arg("--foreground")
            .arg(&self.state)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("{UP}: {e}"))?;
        // The script closes its stdout after the address line (or exits).
        let mut out = String::new();
        let read = child.stdout.take().expect("piped stdout").read_to_string(&mut out);
        let address = out.lines().find_map(|l| l.strip_prefix("CONTAINERD_ADDRESS=")).map(str::to_owned);
        match (read, address) {
            (Ok(_), Some(address)) => {
                self.launchers.push(child);
                if address != self.address {
                    return Err(format!("containerd-up printed {address}, expected {}", self.address));
                }
                Ok(())
            }
            _ => {
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                let log = fs::read_to_string(&log_path).unwrap_or_default();
                Err(format!("containerd-up failed ({status}):\n{log}"))
            }
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("containerd cleanup: {e}");
        }
    }
}

fn alive(pid: u32) -> bool {
    // A zombie has exited; its stat line says state Z after the ")".
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').map(|(_, rest)| !rest.trim_start().starts_with('Z')).unwrap_or(false),
        Err(_) => false,
    }
}

fn signal(pid: u32, sig: &str) -> Result<(), String> {
    let status =
        Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status().map_err(|e| format!("kill: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("kill -{sig} {pid} failed"))
    }
}

/// One instance at a time per test binary: they share the bridge and subnet.
/// A Mutex guard would make `Containerd` !Send; this token is Send.
struct Turn;

static BUSY: Mutex<bool> = Mutex::new(false);
static FREED: Condvar = Condvar::new();

impl Turn {
    fn take() -> Turn {
        let mut busy = BUSY.lock().unwrap_or_else(|e| e.into_inner());
        while *busy {
            busy = FREED.wait(busy).unwrap_or_else(|e| e.into_inner());
        }
        *busy = true;
        Turn
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        *BUSY.lock().unwrap_or_else(|e| e.into_inner()) = false;
        FREED.notify_one();
    }
}
