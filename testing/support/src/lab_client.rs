//! Clients in the lab's client namespace (`scripts/lab/net`: netns sy-client):
//! curl, wrk, and `lab_client.py` (UDP queries, churning and long-lived TCP
//! connections to the lab's echo servers), with their results parsed.
//!
//! The echo servers answer each line or datagram with "POD_NAME what was
//! sent", so every answer names the pod that gave it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::Value;

/// The client namespace of `scripts/lab/net`.
pub const NETNS: &str = "sy-client";

/// The distribution's python3: the first on PATH may be another one.
const PYTHON: &str = "/usr/bin/python3";

const CLIENT_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/lab_client.py");
const WRK_LUA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/wrk_answers.lua");

/// Answers per pod.
pub type Spread = BTreeMap<String, usize>;

fn in_netns(program: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", NETNS, program]);
    c
}

fn client(args: &[&str]) -> Command {
    let mut c = in_netns(PYTHON);
    c.arg(CLIENT_PY).args(args);
    c
}

fn spread_of(v: &Value) -> Spread {
    v.as_object()
        .map(|o| o.iter().map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0) as usize)).collect())
        .unwrap_or_default()
}

fn strings_of(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().map(|s| s.as_str().unwrap_or("?").to_string()).collect()).unwrap_or_default()
}

/// One HTTP request with curl (2 s limit): the body, or curl's exit code.
pub fn curl(url: &str) -> Result<String, i32> {
    let out = in_netns("curl").args(["-s", "-m", "2", url]).output().expect("curl in the client namespace");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(out.status.code().unwrap_or(-1))
    }
}

/// `n` curl requests to `url` (answers "hello from POD"): answers per pod,
/// failures as "failed (curl exit N)" entries; and how many failed.
pub fn curl_spread(url: &str, n: usize) -> (Spread, usize) {
    let mut pods = Spread::new();
    let mut failed = 0;
    for _ in 0..n {
        match curl(url) {
            Ok(answer) => *pods.entry(answer.trim_start_matches("hello from ").to_string()).or_default() += 1,
            Err(code) => {
                failed += 1;
                *pods.entry(format!("failed (curl exit {code})")).or_default() += 1;
            }
        }
    }
    (pods, failed)
}

/// What a wrk run saw.
#[derive(Debug, Default)]
pub struct WrkRun {
    /// Requests completed.
    pub requests: u64,
    /// Answers by "STATUS BODY" (e.g. "200 hello from web-1-demo").
    pub answers: Spread,
    /// Socket errors and non-2xx/3xx answers, by kind (connect, read,
    /// write, status, timeout), only those that happened.
    pub errors: BTreeMap<String, u64>,
    /// wrk's own report, for failure messages.
    pub report: String,
}

/// `wrk -t1 -c CONNECTIONS -d SECONDS` at `url`, counting answers by body.
pub fn wrk(url: &str, connections: u32, seconds: u32) -> WrkRun {
    let out = in_netns("wrk")
        .args(["-t1", &format!("-c{connections}"), &format!("-d{seconds}s"), "-s", WRK_LUA, url])
        .output()
        .expect("wrk in the client namespace");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "wrk {url} failed:\n{report}");
    let mut run = WrkRun { report: report.clone(), ..Default::default() };
    for line in report.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["answer", count, rest @ ..] => {
                *run.answers.entry(rest.join(" ")).or_default() += count.parse::<usize>().unwrap_or(0);
            }
            ["requests", n, "errors", pairs @ ..] => {
                run.requests = n.parse().unwrap_or(0);
                for pair in pairs.chunks(2) {
                    if let [kind, n] = pair {
                        let n: u64 = n.parse().unwrap_or(u64::MAX);
                        if n > 0 {
                            run.errors.insert(kind.to_string(), n);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    assert!(report.contains("requests ") && report.contains(" errors "), "no summary from the wrk script:\n{report}");
    run
}

/// What `count` UDP queries to `host:port`, each from its own socket, got.
#[derive(Debug)]
pub struct UdpRun {
    pub pods: Spread,
    /// Queries without an answer within a second.
    pub lost: usize,
    /// Answers from another address than the one asked.
    pub strangers: Vec<String>,
}

pub fn udp(host: &str, port: u16, count: usize) -> UdpRun {
    let out = client(&["udp", host, &port.to_string(), &count.to_string()]).output().expect("lab_client.py udp");
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("lab_client.py udp: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    UdpRun {
        pods: spread_of(&v["pods"]),
        lost: v["lost"].as_u64().unwrap_or(0) as usize,
        strangers: strings_of(&v["strangers"]),
    }
}

/// A child process of ours speaking lab_client.py's line protocol.
struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    what: String,
}

impl Session {
    fn start(args: &[&str]) -> Session {
        let mut child = client(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("lab_client.py {}: {e}", args.join(" ")));
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Session { child, stdin, stdout, what: args.join(" ") }
    }

    fn send(&mut self, line: &str) {
        if let Some(stdin) = self.stdin.as_mut() {
            writeln!(stdin, "{line}").and_then(|_| stdin.flush()).unwrap_or_else(|e| panic!("{}: {e}", self.what));
        }
    }

    fn reply(&mut self) -> Value {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap_or_else(|e| panic!("{}: {e}", self.what));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("lab_client.py {}: {e}: {line:?}", self.what))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stdin = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// New TCP connections, one after another, while other things happen.
pub struct Churn(Session);

impl Churn {
    /// A connection every 10 ms or so: a steady client.
    pub fn start(host: &str, port: u16) -> Churn {
        Churn::paced(host, port, 10)
    }

    /// Connections back to back: as many as the machine makes, to catch
    /// short windows.
    pub fn rush(host: &str, port: u16) -> Churn {
        Churn::paced(host, port, 0)
    }

    fn paced(host: &str, port: u16, pause_ms: u32) -> Churn {
        Churn(Session::start(&["churn", host, &port.to_string(), &pause_ms.to_string()]))
    }

    /// Stops it: answers per pod, and each failed connection.
    pub fn stop(mut self) -> (Spread, Vec<String>) {
        self.0.send("stop");
        let v = self.0.reply();
        (spread_of(&v["pods"]), strings_of(&v["failures"]))
    }
}

/// Long-lived TCP connections.
pub struct Held(Session);

/// How a connection ended (`Held::finish`).
#[derive(Debug)]
pub struct Finish {
    /// The pod that answered the last line.
    pub answer: Option<String>,
    /// The server closed its end with a FIN after the last answer.
    pub clean: bool,
    pub error: Option<String>,
}

impl Held {
    pub fn open(host: &str, port: u16, count: usize) -> Held {
        let mut s = Session::start(&["hold", host, &port.to_string(), &count.to_string()]);
        let v = s.reply();
        assert_eq!(v["opened"].as_u64(), Some(count as u64), "opening {count} connections to {host}:{port}: {v}");
        Held(s)
    }

    /// A line on every open connection: the pod that answered each (or
    /// "error: ..."; "closed" for finished ones).
    pub fn ask(&mut self) -> Vec<String> {
        self.0.send("ask");
        strings_of(&self.0.reply()["answers"])
    }

    /// Ends connection `i` as a client does: a last line, then its half
    /// closed and the server's end awaited.
    pub fn finish(&mut self, i: usize) -> Finish {
        self.0.send(&format!("finish {i}"));
        let v = self.0.reply();
        Finish {
            answer: v["answer"].as_str().map(str::to_string),
            clean: v["clean"].as_bool().unwrap_or(false),
            error: v["error"].as_str().map(str::to_string),
        }
    }
}
