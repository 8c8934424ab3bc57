//! `switchyard`: the appliance's one binary.
//!
//! - `switchyard run --config FILE`: start the dataplane (DPDK ports, pinned
//!   worker cores) and the control thread (tables, metrics).
//! - `switchyard check --config FILE`: validate a config and print the tables
//!   it compiles to, without touching DPDK.
//! - `switchyard services|routes|counters|pods|node`: ask a running instance
//!   through its admin API.

use switchyard::{admin, config, runtime};

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
    /// The Service table of a running instance (VIPs, backends, state, share).
    Services {
        #[arg(long, default_value = config::DEFAULT_ADMIN_LISTEN)]
        admin: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The routes and neighbours the cores forward with (configured and learned).
    Routes {
        #[arg(long, default_value = config::DEFAULT_ADMIN_LISTEN)]
        admin: String,
        #[arg(long)]
        json: bool,
    },
    /// The worker cores' counters.
    Counters {
        #[arg(long, default_value = config::DEFAULT_ADMIN_LISTEN)]
        admin: String,
        #[arg(long)]
        json: bool,
    },
    /// The pods the node agent runs.
    Pods {
        #[arg(long, default_value = config::DEFAULT_ADMIN_LISTEN)]
        admin: String,
        #[arg(long)]
        json: bool,
        /// One line per container too.
        #[arg(long, short)]
        wide: bool,
    },
    /// The node: conditions, capacity, allocatable, runtime.
    Node {
        #[arg(long, default_value = config::DEFAULT_ADMIN_LISTEN)]
        admin: String,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // kube-rs logs every failed request at ERROR; the watches and
                // the Lease report an outage once, when it starts and ends
                // (cluster::retry).
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube_client::client::builder=off")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => runtime::run(&config),
        Command::Check { config } => check(config),
        Command::Services { admin, json } => {
            ask::<Vec<admin::views::ServiceView>>(&admin, "/v1/services", json, |v| admin::views::render_services(v))
        }
        Command::Routes { admin, json } => {
            ask::<admin::views::RoutesView>(&admin, "/v1/routes", json, admin::views::render_routes)
        }
        Command::Counters { admin, json } => {
            ask::<admin::views::CountersView>(&admin, "/v1/counters", json, admin::views::render_counters)
        }
        Command::Pods { admin, json, wide } => {
            ask::<Vec<admin::pod_views::PodView>>(&admin, "/v1/pods", json, |v| admin::pod_views::render_pods(v, wide))
        }
        Command::Node { admin, json } => {
            ask::<admin::pod_views::NodeView>(&admin, "/v1/node", json, admin::pod_views::render_node)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchyard: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: PathBuf) -> anyhow::Result<()> {
    let config = config::Config::load(&path)?;
    let snap = config.snapshot(&[])?;
    print!("{}", admin::views::render_services(&admin::views::services(&snap)));
    Ok(())
}

/// One CLI query to a running instance: JSON as is, or rendered.
fn ask<T: serde::de::DeserializeOwned + serde::Serialize>(
    addr: &str,
    path: &str,
    json: bool,
    render: impl Fn(&T) -> String,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let value: T = runtime.block_on(admin::client::get(addr, path))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", render(&value));
    }
    Ok(())
}
