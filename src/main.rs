//! The `hammond` binary: CLI → tracing → config → [`hammond::app::run`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "hammond",
    version,
    about = "SIP queue workflows, callbacks and the agents' Home List"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run Hammond: SIP (UDP+TCP), RTP, the HTTP API and Home List, the embedded store.
    Run {
        #[arg(long, default_value = "config/hammond.toml")]
        config: PathBuf,
    },
    /// Validate the service config, the prompts and every queue file; exit 1 on any error.
    CheckConfig {
        #[arg(long, default_value = "config/hammond.toml")]
        config: PathBuf,
    },
    /// Liveness probe (the container's HEALTHCHECK): exit 0 when the HTTP server answers
    /// /healthz at all (200, or 503 naming problems a restart would not fix).
    Alive {
        /// The `[http] listen` address to ask.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
    },
    /// Dry-run a queue's workflow: what the caller hears, second by second.
    Simulate {
        #[arg(long, default_value = "config/hammond.toml")]
        config: PathBuf,
        /// Queue name (its file name without `.toml`).
        #[arg(long)]
        queue: String,
        /// Key presses as `time:key`, e.g. `35s:1,38s:1`.
        #[arg(long, default_value = "")]
        keys: String,
        /// How long to simulate.
        #[arg(long, default_value = "5m")]
        duration: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Run { config } => hammond::cli::run(&config),
        Cmd::CheckConfig { config } => hammond::cli::check_config(&config),
        Cmd::Alive { addr } => hammond::cli::alive(&addr),
        Cmd::Simulate {
            config,
            queue,
            keys,
            duration,
        } => hammond::cli::simulate(&config, &queue, &keys, &duration),
    }
}
