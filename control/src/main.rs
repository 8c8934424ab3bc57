//! `switchyard`: the appliance's one binary.
//!
//! - `switchyard run --config FILE`: start the dataplane (DPDK ports, pinned
//!   worker cores) and the control thread (tables, metrics).
//! - `switchyard check --config FILE`: validate a config and print the tables
//!   it compiles to, without touching DPDK.

mod config;
mod metrics_export;
#[cfg(feature = "dpdk")]
mod runtime;
mod tables;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "switchyard", version, about = "Kernel-bypass Kubernetes service proxy appliance")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the appliance.
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a config file and print the Service table it compiles to.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => run(config),
        Command::Check { config } => check(config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchyard: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(feature = "dpdk")]
fn run(path: PathBuf) -> anyhow::Result<()> {
    runtime::run(&path)
}

#[cfg(not(feature = "dpdk"))]
fn run(_path: PathBuf) -> anyhow::Result<()> {
    anyhow::bail!("this build has no DPDK support (built without the `dpdk` feature)")
}

fn check(path: PathBuf) -> anyhow::Result<()> {
    let config = config::Config::load(&path)?;
    let snap = tables::snapshot_from_config(&config, &[])?;
    print!("{}", tables::render_services(&snap));
    Ok(())
}
