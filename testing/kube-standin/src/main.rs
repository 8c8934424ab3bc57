//! `kube-standin --listen 127.0.0.1:0 --kubeconfig FILE`: serve the stand-in API until killed.

use std::net::SocketAddr;

use anyhow::Context;
use kube_standin::StandIn;

const USAGE: &str = "usage: kube-standin [--listen ADDR] [--kubeconfig FILE]\n\
\n\
Serves a test-only stand-in for kube-apiserver over plain HTTP (default 127.0.0.1:0),\n\
writes a kubeconfig for it if asked, prints its URL and serves until killed.";

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let mut listen: SocketAddr = "127.0.0.1:0".parse()?;
    let mut kubeconfig = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().context("--listen needs an address")?.parse().context("--listen")?,
            "--kubeconfig" => kubeconfig = Some(args.next().context("--kubeconfig needs a path")?),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => {
                eprintln!("kube-standin: unknown argument {other:?}\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    let standin = StandIn::start_on(listen).with_context(|| format!("listening on {listen}"))?;
    if let Some(path) = &kubeconfig {
        standin.write_kubeconfig(path).with_context(|| format!("writing {path}"))?;
    }
    println!("{}", standin.url());
    loop {
        std::thread::park();
    }
}
