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

/// `hammond alive`: the container's liveness probe. Exit 0 when the HTTP server at `addr`
/// answers `GET /healthz` at all, 200 or 503, and 1 when it does not answer within 3 s.
///
/// A 503 is still alive on purpose: it names problems a restart does not fix and would make
/// worse (a queue file edited into one that is refused keeps the last good one running; a store
/// that went away is reconnected by itself, and calls in progress keep playing meanwhile). Those
/// are for monitoring, which reads the body; an orchestrator restarts only a process that no
/// longer answers.
pub fn alive(addr: &str) -> ExitCode {
    match probe(addr, Duration::from_secs(3)) {
        Ok((status, body)) if status == 200 || status == 503 => {
            println!("{status} {body}");
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            eprintln!("hammond alive: {addr} answered {status} {body}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("hammond alive: {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `GET /healthz` over HTTP/1.0 at `addr`: the status code and the body.
fn probe(addr: &str, timeout: Duration) -> Result<(u16, String), String> {
    use std::io::{Read as _, Write as _};
    use std::net::{TcpStream, ToSocketAddrs as _};
    let to = addr
        .to_socket_addrs()
        .map_err(|e| format!("not an address: {e}"))?
        .next()
        .ok_or("not an address")?;
    let mut s = TcpStream::connect_timeout(&to, timeout).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    // One write: `write!` on a socket may send the request in pieces.
    let request = format!("GET /healthz HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    s.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    s.take(64 * 1024)
        .read_to_end(&mut reply)
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&reply);
    let status = text
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an HTTP reply: {:?}", text.lines().next()))?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b).trim();
    Ok((status, body.to_owned()))
}

#[cfg(test)]
mod alive_tests {
    use std::io::{Read as _, Write as _};
    use std::net::TcpListener;
    use std::time::Duration;

    use super::probe;

    /// A one-shot HTTP server answering `reply`.
    fn server(reply: &'static str) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            // Read the whole request before answering, and drain after: a socket closed with
            // unread bytes resets the connection, and the reset can reach the client before
            // the answer does (ECONNRESET, seen under load).
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            c.write_all(reply.as_bytes()).unwrap();
            let _ = c.shutdown(std::net::Shutdown::Write);
            while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
        });
        addr
    }

    #[test]
    fn a_503_with_its_problems_is_an_answer() {
        let addr = server(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\r\n{\"status\":\"unhealthy\",\"problems\":[\"queue support: refused\"]}",
        );
        let (status, body) = probe(&addr, Duration::from_secs(2)).unwrap();
        assert_eq!(status, 503);
        assert!(body.contains("queue support"), "{body}");
    }

    #[test]
    fn nobody_listening_is_not_alive() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        drop(l);
        assert!(probe(&addr, Duration::from_secs(1)).is_err());
    }
}
