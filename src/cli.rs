//! The subcommands behind `main.rs`: the edge of the program, where `anyhow`-style reporting
//! and exit codes live.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::{self, Config, ProcessEnv};
use crate::media::prompts::PromptLibrary;
use crate::workflow::flow;
use crate::workflow::simulate as sim;

/// `hammond run`: exit 0 after a clean (drained) shutdown, 1 when startup fails.
pub fn run(path: &Path) -> ExitCode {
    let cfg = match Config::load(path, &ProcessEnv) {
        Ok(c) => c,
        Err(errs) => {
            eprintln!("{errs}");
            return ExitCode::FAILURE;
        }
    };
    crate::telemetry::init("info");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hammond: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let signals = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            signals.cancel();
        });
        match crate::app::run(cfg, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hammond: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `hammond check-config`: every problem in the service file, the prompts and the queue
/// files, one `file:line:column: reason` per line; exit 1 if there is any.
pub fn check_config(path: &Path) -> ExitCode {
    let mut problems: Vec<String> = config::check(path)
        .iter()
        .map(ToString::to_string)
        .collect();
    if problems.is_empty() {
        // The service file is valid: its directories say where prompts and queues are.
        if let Ok(cfg) = Config::load(path, &ProcessEnv) {
            match PromptLibrary::load(&cfg.prompts_dir) {
                Ok(prompts) => {
                    let (queues, diags) = flow::load_dir(&cfg.queues_dir, &prompts);
                    problems.extend(diags.iter().map(ToString::to_string));
                    if problems.is_empty() {
                        println!(
                            "{}: ok ({} queues, {} prompts)",
                            path.display(),
                            queues.len(),
                            prompts.len()
                        );
                    }
                }
                Err(e) => problems.push(format!("{}: {e}", cfg.prompts_dir.display())),
            }
        }
    }
    for p in &problems {
        eprintln!("{p}");
    }
    if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("{} problem(s) found", problems.len());
        ExitCode::FAILURE
    }
}

/// `hammond simulate`: print what a caller of `queue` would hear and what would happen.
pub fn simulate(path: &Path, queue: &str, keys: &str, duration: &str) -> ExitCode {
    let fail = |msg: String| {
        eprintln!("hammond simulate: {msg}");
        ExitCode::FAILURE
    };
    let cfg = match Config::load(path, &ProcessEnv) {
        Ok(c) => c,
        Err(e) => return fail(e.to_string()),
    };
    let prompts = match PromptLibrary::load(&cfg.prompts_dir) {
        Ok(p) => p,
        Err(e) => return fail(e.to_string()),
    };
    let (queues, diags) = flow::load_dir(&cfg.queues_dir, &prompts);
    if !diags.is_empty() {
        return fail(
            diags
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        );
    }
    let Some(flow) = queues.get(queue) else {
        return fail(format!(
            "no queue named {queue:?} in {}",
            cfg.queues_dir.display()
        ));
    };
    let keys = match sim::parse_keys(keys) {
        Ok(k) => k,
        Err(e) => return fail(e),
    };
    let until: Duration = match config::parse_duration(duration) {
        Ok(d) => d,
        Err(e) => return fail(format!("--duration: {e}")),
    };
    print!("{}", sim::simulate(&flow, &keys, until, &prompts));
    ExitCode::SUCCESS
}
