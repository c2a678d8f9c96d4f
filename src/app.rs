//! Startup and shutdown: load everything, bind every socket, spawn the tasks, then wait.
//!
//! Order matters: prompts before queues (queue files refer to prompt ids), the store (with
//! crash recovery) before SIP (no call may arrive before interactions can be written), and all
//! sockets bound before the ready line is printed, so scripts and tests can rely on it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::api;
use crate::config::Config;
use crate::diag::Diagnostic;
use crate::idgen::IdGen;
use crate::media::prompts::PromptLibrary;
use crate::queue::agent::Agent;
use crate::rt::agents::Agents;
use crate::rt::calls::CallManager;
use crate::rt::http::HttpLimits;
use crate::rt::queue_watch::{self, QueueRegistry};
use crate::rt::services::Services;
use crate::rt::sip_socket::{self, SipSockets, Streams, TcpLimits};
use crate::sip::txn::TimerValues;
use crate::sip::ua::{Command, UaConfig, UserAgent};
use crate::store::InteractionStore;
use crate::workflow::flow::{self, PromptCatalog};

/// Why Hammond could not start. Each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("prompts in {dir}: {source}")]
    Prompts {
        dir: PathBuf,
        #[source]
        source: crate::media::Error,
    },
    #[error("queue files:\n{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Queues(Vec<Diagnostic>),
    #[error("store {url}: {source}")]
    Store {
        url: String,
        #[source]
        source: crate::store::Error,
    },
    #[error("starting the media clock thread: {0}")]
    MediaThread(#[source] std::io::Error),
    #[error("{0}")]
    Tls(#[from] sip_socket::tls::SetupError),
    #[error("binding {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Run Hammond until `shutdown` is cancelled, then drain calls (new ones get 503) for up to
/// the configured drain timeout.
pub async fn run(cfg: Config, shutdown: CancellationToken) -> Result<(), StartError> {
    let cfg = Arc::new(cfg);
    let open_files = crate::rt::fd_limit::raise();
    if open_files < 2 * cfg.sip.max_calls as u64 + 64 {
        warn!(
            open_files,
            max_calls = cfg.sip.max_calls,
            "the open-file limit may refuse calls before sip.max_calls (each call holds a socket, two while bridged)"
        );
    }
    let prompts =
        Arc::new(
            PromptLibrary::load(&cfg.prompts_dir).map_err(|source| StartError::Prompts {
                dir: cfg.prompts_dir.clone(),
                source,
            })?,
        );
    let (queues, diags) = flow::load_dir(&cfg.queues_dir, prompts.as_ref());
    if !diags.is_empty() {
        return Err(StartError::Queues(diags));
    }
    info!(
        queues = queues.len(),
        prompts = prompts.len(),
        "configuration loaded"
    );
    let registry = Arc::new(QueueRegistry::new(queues, Vec::new()));
    let catalog: Arc<dyn PromptCatalog + Send + Sync> = prompts.clone();
    let _watcher = queue_watch::spawn_watcher(cfg.queues_dir.clone(), registry.clone(), catalog)
        .map_err(|e| warn!(error = %e, "queue directory not watched; no hot reload"))
        .ok();

    let instance = instance_name(&cfg);
    let store: Arc<dyn InteractionStore> = crate::store::open(&cfg.store.url, &instance)
        .await
        .map_err(|source| StartError::Store {
            url: redact_password(&cfg.store.url),
            source,
        })?;
    if !cfg.store.is_sqlite() {
        info!(instance = %instance, "store shared with other instances (PostgreSQL)");
    }
    let queues_now = registry.clone();
    let retry: Arc<crate::store::RetryRules> = Arc::new(move |queue: &str| {
        let r = queues_now.current().retry(queue);
        (r.max_attempts, r.retry_interval)
    });
    crate::store::lease::take(&*store).await;
    match store.recover(crate::clock::wall(), &*retry).await {
        Ok(settled) if !settled.is_empty() => warn!(
            count = settled.len(),
            "settled interactions left by a crash"
        ),
        Ok(_) => {}
        Err(e) => warn!(error = %e, "crash recovery failed"),
    }
    crate::store::lease::spawn_keeper(store.clone(), retry, shutdown.clone());
    crate::store::retention::spawn_pruner(
        store.clone(),
        cfg.store.event_retention,
        shutdown.clone(),
    );
    let metrics = crate::metrics::install();

    let mut sockets =
        SipSockets::bind(cfg.sip.listen)
            .await
            .map_err(|source| StartError::Bind {
                what: "SIP",
                addr: cfg.sip.listen,
                source,
            })?;
    if let Some(tls) = &cfg.sip.tls {
        let acceptor = sip_socket::tls::acceptor(&tls.cert, &tls.key)?;
        sockets
            .bind_tls(tls.listen, acceptor)
            .await
            .map_err(|source| StartError::Bind {
                what: "SIP over TLS",
                addr: tls.listen,
                source,
            })?;
    }
    let tls_addr = sockets.tls_addr();
    // Every TLS connection we open (the trunk, a PBX's Contact after its connection died)
    // checks the server against ca_file or the system's roots.
    let tls_client = sip_socket::tls::client_config(cfg.trunk.ca_file.as_deref())?;
    // `https://` webhook receivers are checked against the system's roots.
    let webhook_tls = sip_socket::tls::client_config(None)?;
    let sip_addr = sockets.local_addr().map_err(|source| StartError::Bind {
        what: "SIP",
        addr: cfg.sip.listen,
        source,
    })?;
    let http = tokio::net::TcpListener::bind(cfg.http.listen)
        .await
        .map_err(|source| StartError::Bind {
            what: "HTTP",
            addr: cfg.http.listen,
            source,
        })?;
    let http_addr = http.local_addr().map_err(|source| StartError::Bind {
        what: "HTTP",
        addr: cfg.http.listen,
        source,
    })?;

    let mut ids = IdGen::from_entropy();
    let advertised = SocketAddr::new(cfg.sip.public_address, sip_addr.port());
    let ua = UserAgent::new(
        UaConfig {
            local: advertised,
            local_tls: tls_addr.map(|a| SocketAddr::new(cfg.sip.public_address, a.port())),
            user_agent: cfg.sip.user_agent.clone(),
            timers: TimerValues {
                t1: cfg.sip.t1,
                t2: cfg.sip.t2,
                t4: cfg.sip.t4,
            },
            trusted: cfg.sip.trusted_sources.clone(),
            max_calls: cfg.sip.max_calls,
            per_source: Some(crate::sip::pike::Limit {
                count: cfg.sip.max_requests_per_source.count,
                per: cfg.sip.max_requests_per_source.per,
            }),
        },
        IdGen::seeded(ids.next_u64()),
    );
    let (ua_handle, ua_commands) = sip_socket::ua_channel();
    let agent_list: Vec<Agent> = cfg
        .agents
        .iter()
        .map(|a| Agent {
            id: a.id.clone(),
            endpoint: a.endpoint.clone(),
            queues: a.queues.clone(),
            token: a.token.expose().to_owned(),
            role: a.role,
        })
        .collect();
    // Presence is stored: every instance on a PostgreSQL store shares it.
    let agents = Arc::new(Agents::stored(agent_list, store.clone()));
    agents.follow(shutdown.clone());
    let svc = Arc::new(
        Services::new(
            cfg.clone(),
            prompts.clone(),
            store.clone(),
            ua_handle.clone(),
            registry.clone(),
            agents.clone(),
            ids,
        )
        .map_err(|source| StartError::Bind {
            what: "the media clock thread",
            addr: cfg.sip.listen,
            source,
        })?,
    );
    let draining = Arc::new(AtomicBool::new(false));
    let sip_stop = CancellationToken::new();
    let manager = CallManager::new(svc.clone(), draining.clone());
    let streams = Streams {
        limits: TcpLimits {
            idle_timeout: cfg.sip.tcp_idle_timeout,
            max_connections: cfg.sip.tcp_max_connections,
            max_per_source: cfg.sip.tcp_max_connections_per_source,
            ..TcpLimits::default()
        },
        tls_client: Some(tls_client),
    };
    let sip_task = tokio::spawn(sip_socket::run(
        sockets,
        ua,
        ua_handle,
        ua_commands,
        manager,
        streams,
        sip_stop.clone(),
    ));

    let registry_for_health = registry.clone();
    // The dialer: every successful accept becomes one callback (customer + agent legs).
    let accepted = crate::rt::callback_task::spawn_dialer(svc.clone());
    let health = Arc::new(move || {
        registry_for_health
            .last_errors()
            .iter()
            .map(ToString::to_string)
            .collect()
    });
    // Stopped at SIGTERM: no new HTTP work (accepts would dial new calls), event streams end.
    let http_stop = CancellationToken::new();
    let state = api::AppState::with_agents(store.clone(), agents.clone(), metrics)
        .with_accepted(accepted)
        .with_connected(svc.connected.clone())
        .with_phones(svc.phones.clone())
        .with_health_extra(health)
        .with_queues({
            let registry = registry.clone();
            Arc::new(move || {
                registry
                    .current()
                    .iter()
                    .map(|f| (f.name.clone(), f.service_level))
                    .collect()
            })
        })
        .with_max_body(cfg.http.max_body)
        .with_shutdown(http_stop.clone())
        .with_flows(registry.clone())
        .with_api_clients(api::ApiClient::from_config(&cfg.api_clients));
    // Webhooks: delivered from the event log by tasks of their own (never on a call's path).
    let (deliveries, _webhook_tasks) = crate::webhook::deliver::spawn(
        store.clone(),
        cfg.webhooks.clone(),
        webhook_tls,
        shutdown.clone(),
    );
    let state = state.with_webhooks(Arc::new(move || deliveries.snapshot()));
    let router = api::router(state);
    let http_limits = HttpLimits {
        header_timeout: cfg.http.header_timeout,
        max_connections: cfg.http.max_connections,
        drain: HTTP_DRAIN,
    };
    let http_task = tokio::spawn(crate::rt::http::serve(
        http,
        router,
        http_limits,
        http_stop.clone(),
    ));

    crate::rt::router::spawn(svc.clone(), shutdown.clone());
    crate::rt::expiry::spawn(store.clone(), registry.clone(), shutdown.clone());

    // Scripts and tests wait for this exact line on stdout.
    match tls_addr {
        Some(tls) => {
            println!("hammond ready: sip={sip_addr} http={http_addr} sips={tls}");
            info!(sip = %sip_addr, http = %http_addr, sips = %tls, "hammond ready");
        }
        None => {
            println!("hammond ready: sip={sip_addr} http={http_addr}");
            info!(sip = %sip_addr, http = %http_addr, "hammond ready");
        }
    }

    shutdown.cancelled().await;
    draining.store(true, Ordering::Relaxed);
    http_stop.cancel();
    info!(timeout = ?cfg.shutdown.drain_timeout, "draining: new calls get 503");
    let deadline = crate::clock::now() + cfg.shutdown.drain_timeout;
    wait_for_calls(&svc, deadline).await;
    // What the drain timeout left is hung up, as the config promises: BYE (CANCEL while
    // dialling, 480 while ringing) on every leg, and a short wait for the answers.
    let left = svc.legs.calls();
    if !left.is_empty() {
        warn!(
            legs = left.len(),
            "drain timeout: hanging up the calls still up"
        );
        for call in left {
            svc.ua.send(Command::Hangup { call });
        }
        wait_for_calls(&svc, crate::clock::now() + HANGUP_GRACE).await;
    }
    sip_stop.cancel();
    let _ = sip_task.await;
    // Bounded by its own drain (`HTTP_DRAIN` from SIGTERM), long over by now in most cases.
    let _ = http_task.await;
    info!("hammond stopped");
    Ok(())
}

/// This Hammond's name among the instances sharing a store: the host and the SIP port, which
/// instances on one host cannot share, so a restart (same host, same port) recovers what it
/// left; with an OS-chosen port (`:0`) the process id instead.
fn instance_name(cfg: &Config) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "hammond".to_owned());
    match cfg.sip.listen.port() {
        0 => format!("{host}:pid{}", std::process::id()),
        port => format!("{host}:{port}"),
    }
}

/// `url` with any password replaced, for messages (`postgres://user:secret@…`).
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{}", &rest[authority.len()..])
        }
        _ => url.to_owned(),
    }
}

/// After SIGTERM, how long open HTTP connections get to finish before they are dropped.
const HTTP_DRAIN: Duration = Duration::from_secs(5);

/// After hanging up the calls the drain left, how long their BYEs get to be answered (the
/// SIP task must still run to send and retransmit them).
const HANGUP_GRACE: Duration = Duration::from_secs(3);

/// Until no call task is left or `deadline`.
async fn wait_for_calls(svc: &Services, deadline: std::time::Instant) {
    while svc.active_calls() > 0 && crate::clock::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::redact_password;

    #[test]
    fn store_urls_in_messages_hide_the_password() {
        assert_eq!(
            redact_password("postgres://hammond:s3cret@db:5432/calls?sslmode=require"),
            "postgres://hammond:***@db:5432/calls?sslmode=require"
        );
        assert_eq!(
            redact_password("postgres://hammond@/calls?host=/run/postgresql"),
            "postgres://hammond@/calls?host=/run/postgresql"
        );
        assert_eq!(
            redact_password("sqlite://data/hammond.db"),
            "sqlite://data/hammond.db"
        );
    }
}
