//! Raw (as written) → typed config. Validation never stops at the first problem: a bad value is
//! recorded with its line:column and replaced by its default so the rest can still be checked.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::env::{self, Env};
use super::raw::{Key, RawBytes, RawConfig, RawDuration};
use super::values::{self, Cidr, HostPort, Secret};
use super::{
    AgentConfig, ApiClientConfig, ApiRight, Config, ConfigErrors, Diagnostic, HttpConfig,
    MediaConfig, MediaIo, RateLimit, Role, ShutdownConfig, SipConfig, SrtpMode, StoreConfig,
    TlsListen, Transport, TrunkConfig, WEBRTC_ENDPOINT, WebRtcConfig, WebhookConfig, WebhookUrl,
};
use crate::media::Codec;

/// `[store] event_retention` when not set: a week of change events for SSE clients to resume.
const DEFAULT_EVENT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Collects diagnostics for one file.
struct Checker<'a> {
    file: &'a Path,
    src: &'a str,
    diags: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn error_at(&mut self, span: Range<usize>, message: String) {
        self.diags
            .push(Diagnostic::at_span(self.file, self.src, span, message));
    }

    fn env_error(&mut self, var: &str, message: String) {
        self.diags.push(Diagnostic::whole_file(
            self.file,
            format!("environment variable {var}: {message}"),
        ));
    }

    /// Parse an optional key; `None` when absent or invalid (invalid is recorded).
    fn value<T, U>(
        &mut self,
        key: &Key<T>,
        name: &str,
        parse: impl FnOnce(&T) -> Result<U, String>,
    ) -> Option<U> {
        let spanned = key.as_ref()?;
        match parse(spanned.get_ref()) {
            Ok(v) => Some(v),
            Err(e) => {
                self.error_at(spanned.span(), format!("{name}: {e}"));
                None
            }
        }
    }

    /// Parse a key that an environment variable may override; the file value is checked either
    /// way so `check-config` reports it.
    fn value_or_env<U>(
        &mut self,
        key: &Key<String>,
        name: &str,
        env: &dyn Env,
        var: &str,
        parse: impl Fn(&str) -> Result<U, String>,
    ) -> Option<U> {
        let from_file = self.value(key, name, |s| parse(s));
        match env.get(var) {
            Some(v) => match parse(&v) {
                Ok(u) => Some(u),
                Err(e) => {
                    self.env_error(var, e);
                    None
                }
            },
            None => from_file,
        }
    }

    fn duration(&mut self, key: &Key<RawDuration>, name: &str, zero_ok: bool) -> Option<Duration> {
        self.value(key, name, |raw| {
            let d = match raw {
                RawDuration::Text(s) => values::parse_duration(s)?,
                RawDuration::Integer(n) => {
                    return Err(format!(
                        "a bare number is not a duration: write \"{n}s\" for seconds or \"{n}ms\" for milliseconds (units: ms, s, m, h, d)"
                    ));
                }
                RawDuration::Float(x) => {
                    return Err(format!(
                        "a bare number is not a duration: write a whole number with a unit instead of {x}, e.g. \"500ms\" (units: ms, s, m, h, d)"
                    ));
                }
            };
            if d.is_zero() && !zero_ok {
                return Err("must be longer than zero".into());
            }
            Ok(d)
        })
    }

    fn count(&mut self, key: &Key<i64>, name: &str, max: i64) -> Option<i64> {
        self.value(key, name, |&n| {
            if (1..=max).contains(&n) {
                Ok(n)
            } else {
                Err(format!("{n} is out of range: expected 1 to {max}"))
            }
        })
    }

    fn dir(&mut self, key: &Key<String>, name: &str, default: &str) -> PathBuf {
        self.value(key, name, |s| {
            if s.trim().is_empty() {
                Err("must not be empty".to_owned())
            } else {
                Ok(PathBuf::from(s))
            }
        })
        .unwrap_or_else(|| PathBuf::from(default))
    }
}

fn socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.trim().parse().map_err(|_| {
        format!(
            "invalid address {s:?}: expected \"ip:port\", e.g. \"0.0.0.0:5060\" or \"[::]:5060\""
        )
    })
}

fn ip_addr(s: &str) -> Result<IpAddr, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("invalid IP address {s:?}: expected e.g. \"192.0.2.10\""))
}

fn caller_id(s: &str) -> Result<String, String> {
    let digits = s.strip_prefix('+').unwrap_or(s);
    if !digits.is_empty() && digits.len() <= 32 && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "invalid caller ID {s:?}: expected digits with an optional leading '+', e.g. \"+15550100\""
        ))
    }
}

fn store_url(s: &str) -> Result<String, String> {
    let rest = ["sqlite://", "sqlite:", "postgres://", "postgresql://"]
        .iter()
        .find_map(|p| s.strip_prefix(p));
    match rest {
        Some(r) if !r.trim().is_empty() => Ok(s.to_owned()),
        _ => Err(format!(
            "invalid store URL {s:?}: expected \"sqlite://path/to/file.db\" or \"postgres://user@host/db\""
        )),
    }
}

fn no_control_chars(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        Err("must not be empty".into())
    } else if s.chars().any(char::is_control) {
        Err("must not contain control characters".into())
    } else {
        Ok(s.to_owned())
    }
}

fn agent_id(s: &str) -> Result<String, String> {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "invalid agent id {s:?}: use letters, digits, '-' and '_' (it names the HAMMOND_AGENT_<ID>_TOKEN variable)"
        ))
    }
}

/// `[sip] tls_listen`, `tls_cert`, `tls_key`: all three or none; the files readable PEM and the
/// key the certificate's. Each problem is reported at the key it concerns.
fn tls_listen(
    c: &mut Checker<'_>,
    s: &super::raw::RawSip,
    listen: SocketAddr,
) -> Option<TlsListen> {
    let Some(at) = &s.tls_listen else {
        for (key, name) in [(&s.tls_cert, "sip.tls_cert"), (&s.tls_key, "sip.tls_key")] {
            if let Some(k) = key {
                c.error_at(
                    k.span(),
                    format!("{name}: only used with sip.tls_listen (set it to the TLS address, e.g. \"0.0.0.0:5061\")"),
                );
            }
        }
        return None;
    };
    let addr = c.value(&s.tls_listen, "sip.tls_listen", |s| {
        let addr = socket_addr(s)?;
        if addr.port() != 0 && addr == listen {
            return Err(format!(
                "{addr} is sip.listen, where SIP over TCP listens: give TLS its own port (5061 is usual)"
            ));
        }
        Ok(addr)
    });
    let (Some(cert_key), Some(key_key)) = (&s.tls_cert, &s.tls_key) else {
        c.error_at(
            at.span(),
            "sip.tls_listen: needs sip.tls_cert and sip.tls_key (PEM files: the certificate chain and its private key)".into(),
        );
        return None;
    };
    let cert = PathBuf::from(cert_key.get_ref());
    let key = PathBuf::from(key_key.get_ref());
    match super::tls::load_identity(&cert, &key) {
        Ok(_) => {}
        Err(super::tls::IdentityError::Cert(e)) => {
            c.error_at(cert_key.span(), format!("sip.tls_cert: {e}"));
            return None;
        }
        Err(super::tls::IdentityError::Key(e)) => {
            c.error_at(key_key.span(), format!("sip.tls_key: {e}"));
            return None;
        }
    }
    Some(TlsListen {
        listen: addr?,
        cert,
        key,
    })
}

/// Validate `raw` (read from `file`, whose text is `src`) into a [`Config`].
pub(super) fn validate(
    file: &Path,
    src: &str,
    raw: RawConfig,
    env: &dyn Env,
) -> Result<Config, ConfigErrors> {
    let mut c = Checker {
        file,
        src,
        diags: Vec::new(),
    };

    // [sip]
    let s = &raw.sip;
    let listen = c
        .value_or_env(&s.listen, "sip.listen", env, env::SIP_LISTEN, socket_addr)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5060)));
    let public_address = c.value_or_env(
        &s.public_address,
        "sip.public_address",
        env,
        env::SIP_PUBLIC_ADDRESS,
        ip_addr,
    );
    let public_address = match public_address {
        Some(ip) if ip.is_unspecified() => {
            let msg = "must be an address peers can reach, not 0.0.0.0 or ::";
            match &s.public_address {
                _ if env.get(env::SIP_PUBLIC_ADDRESS).is_some() => {
                    c.env_error(env::SIP_PUBLIC_ADDRESS, msg.into());
                }
                Some(k) => c.error_at(k.span(), format!("sip.public_address: {msg}")),
                None => {}
            }
            listen.ip()
        }
        Some(ip) => ip,
        None => {
            let explicit = s.public_address.is_some() || env.get(env::SIP_PUBLIC_ADDRESS).is_some();
            if listen.ip().is_unspecified() && !explicit {
                let msg = format!(
                    "sip.public_address: required when sip.listen is {} (set it, or {}, to the IP peers should send SIP and RTP to)",
                    listen.ip(),
                    env::SIP_PUBLIC_ADDRESS
                );
                match &s.listen {
                    Some(k) if env.get(env::SIP_LISTEN).is_none() => c.error_at(k.span(), msg),
                    _ => c.diags.push(Diagnostic::whole_file(file, msg)),
                }
            }
            listen.ip()
        }
    };
    let trusted_sources = match &s.trusted_sources {
        None => vec![Cidr::new(IpAddr::from([127, 0, 0, 1]), 32).expect("/32 fits IPv4")],
        Some(list) => {
            let mut out = Vec::new();
            for item in list.get_ref() {
                match item.get_ref().parse::<Cidr>() {
                    Ok(cidr) => out.push(cidr),
                    Err(e) => c.error_at(item.span(), format!("sip.trusted_sources: {e}")),
                }
            }
            out
        }
    };
    let t1 = c
        .duration(&s.t1, "sip.t1", false)
        .unwrap_or(Duration::from_millis(500));
    let t2 = c
        .duration(&s.t2, "sip.t2", false)
        .unwrap_or(Duration::from_secs(4));
    if t2 < t1 {
        if let Some(k) = &s.t2 {
            c.error_at(
                k.span(),
                "sip.t2: must not be shorter than sip.t1 (RFC 3261 §17.1.2.2)".into(),
            );
        } else if let Some(k) = &s.t1 {
            c.error_at(
                k.span(),
                "sip.t1: must not be longer than sip.t2 (default 4s)".into(),
            );
        }
    }
    let t4 = c
        .duration(&s.t4, "sip.t4", false)
        .unwrap_or(Duration::from_secs(5));
    let user_agent = c
        .value(&s.user_agent, "sip.user_agent", |s| no_control_chars(s))
        .unwrap_or_else(|| format!("Hammond/{}", env!("CARGO_PKG_VERSION")));
    let max_calls = c
        .count(&s.max_calls, "sip.max_calls", 1_000_000)
        .unwrap_or(2000);
    let rate = s.max_requests_per_source.as_ref().map(Spanned::get_ref);
    let max_requests_per_source = RateLimit {
        count: rate
            .and_then(|r| c.count(&r.count, "sip.max_requests_per_source.count", 1_000_000))
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(1000),
        per: rate
            .and_then(|r| c.duration(&r.per, "sip.max_requests_per_source.per", false))
            .unwrap_or(Duration::from_secs(1)),
    };
    let tcp_idle_timeout = c
        .duration(&s.tcp_idle_timeout, "sip.tcp_idle_timeout", false)
        .unwrap_or(Duration::from_secs(60));
    let tcp_max_connections = c
        .count(&s.tcp_max_connections, "sip.tcp_max_connections", 1_000_000)
        .unwrap_or(1024);
    let tcp_max_connections_per_source = c
        .count(
            &s.tcp_max_connections_per_source,
            "sip.tcp_max_connections_per_source",
            1_000_000,
        )
        .unwrap_or(16);
    let tls = tls_listen(&mut c, s, listen);

    // [sip.trunk]
    let t = &s.trunk;
    let proxy = c
        .value(&t.proxy, "sip.trunk.proxy", |s| s.parse::<HostPort>())
        .unwrap_or_else(|| HostPort {
            host: "127.0.0.1".into(),
            port: 5090,
        });
    let transport = c
        .value(&t.transport, "sip.trunk.transport", |s| {
            values::parse_choice(
                s,
                "transport",
                &[
                    ("udp", Transport::Udp),
                    ("tcp", Transport::Tcp),
                    ("tls", Transport::Tls),
                ],
            )
        })
        .unwrap_or(Transport::Udp);
    // §19.1.2: a TLS proxy written without a port listens on 5061.
    let written_port = |s: &str| {
        s.parse::<SocketAddr>().is_ok() || (s.parse::<IpAddr>().is_err() && s.contains(':'))
    };
    let proxy = match &t.proxy {
        Some(k) if transport == Transport::Tls && !written_port(k.get_ref()) => HostPort {
            port: 5061,
            ..proxy
        },
        _ => proxy,
    };
    let ca_file = c.value(&t.ca_file, "sip.trunk.ca_file", |s| {
        let path = PathBuf::from(s);
        super::tls::load_roots(&path).map(|_| path)
    });
    if let (Some(k), false) = (&t.ca_file, transport == Transport::Tls) {
        c.error_at(
            k.span(),
            "sip.trunk.ca_file: only used with transport = \"tls\"".into(),
        );
    }
    let srtp = c
        .value(&t.srtp, "sip.trunk.srtp", |s| {
            values::parse_choice(
                s,
                "srtp mode",
                &[
                    ("off", SrtpMode::Off),
                    ("optional", SrtpMode::Optional),
                    ("mandatory", SrtpMode::Mandatory),
                ],
            )
        })
        .unwrap_or_default();
    let username = env
        .get(env::TRUNK_USERNAME)
        .or_else(|| t.username.as_ref().map(|u| u.get_ref().clone()))
        .unwrap_or_default();
    let password = Secret::new(
        env.get(env::TRUNK_PASSWORD)
            .or_else(|| t.password.as_ref().map(|p| p.get_ref().clone()))
            .unwrap_or_default(),
    );
    let caller_id = c
        .value(&t.caller_id, "sip.trunk.caller_id", |s| caller_id(s))
        .unwrap_or_else(|| "+15550100".into());

    // [media]
    let m = &raw.media;
    let rtp_ports = c
        .value_or_env(
            &m.rtp_ports,
            "media.rtp_ports",
            env,
            env::MEDIA_RTP_PORTS,
            values::parse_port_range,
        )
        .unwrap_or(20000..=29999);
    let codecs = match &m.codecs {
        None => vec![Codec::Pcmu, Codec::Pcma],
        Some(list) if list.get_ref().is_empty() => {
            c.error_at(
                list.span(),
                "media.codecs: list at least one codec (PCMU, PCMA)".into(),
            );
            vec![Codec::Pcmu, Codec::Pcma]
        }
        Some(list) => {
            let mut out: Vec<Codec> = Vec::new();
            for item in list.get_ref() {
                match item.get_ref().parse::<Codec>() {
                    Ok(codec) if out.contains(&codec) => c.error_at(
                        item.span(),
                        format!("media.codecs: {} is listed twice", codec.name()),
                    ),
                    Ok(codec) => out.push(codec),
                    Err(e) => c.error_at(item.span(), format!("media.codecs: {e}")),
                }
            }
            out
        }
    };
    let rtp_timeout = c
        .duration(&m.rtp_timeout, "media.rtp_timeout", false)
        .unwrap_or(Duration::from_secs(60));
    let io = c
        .value(&m.io, "media.io", |s| {
            values::parse_choice(
                s,
                "media I/O",
                &[("auto", MediaIo::Auto), ("epoll", MediaIo::Epoll)],
            )
        })
        .unwrap_or(MediaIo::Auto);

    // [http]
    let h = &raw.http;
    let http_listen = c
        .value_or_env(&h.listen, "http.listen", env, env::HTTP_LISTEN, socket_addr)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
    let max_body = c
        .value(&h.max_body, "http.max_body", |raw| {
            let n = match raw {
                RawBytes::Integer(n) => {
                    u64::try_from(*n).map_err(|_| format!("{n} is negative"))?
                }
                RawBytes::Text(s) => values::parse_byte_size(s)?,
            };
            match usize::try_from(n) {
                Ok(0) => Err("must be at least 1 byte".to_owned()),
                Ok(n) => Ok(n),
                Err(_) => Err(format!("{n} bytes is too large")),
            }
        })
        .unwrap_or(64 * 1024);
    let header_timeout = c
        .duration(&h.header_timeout, "http.header_timeout", false)
        .unwrap_or(Duration::from_secs(10));
    let http_max_connections = c
        .count(&h.max_connections, "http.max_connections", 1_000_000)
        .unwrap_or(512);

    // [queues] [prompts] [data] [store] [shutdown]
    let queues_dir = c.dir(&raw.queues.dir, "queues.dir", "config/queues");
    let prompts_dir = c.dir(&raw.prompts.dir, "prompts.dir", "prompts");
    let data_dir = c.dir(&raw.data.dir, "data.dir", "data");
    let url = c
        .value_or_env(&raw.store.url, "store.url", env, env::STORE_URL, store_url)
        .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("hammond.db").display()));
    let event_retention = c
        .duration(&raw.store.event_retention, "store.event_retention", false)
        .unwrap_or(DEFAULT_EVENT_RETENTION);
    let drain_timeout = c
        .duration(&raw.shutdown.drain_timeout, "shutdown.drain_timeout", true)
        .unwrap_or(Duration::from_secs(30));

    // [[agents]]
    let mut agents = Vec::with_capacity(raw.agents.len());
    let mut seen_ids: HashMap<String, usize> = HashMap::new();
    let mut seen_tokens: HashMap<String, String> = HashMap::new();
    for entry in &raw.agents {
        let a = entry.get_ref();
        let Some(id_key) = &a.id else {
            c.error_at(entry.span(), "agents: every agent needs an `id`".into());
            continue;
        };
        let Some(id) = c.value(&a.id, "agents.id", |s| agent_id(s)) else {
            continue;
        };
        if let Some(&first_at) = seen_ids.get(&id) {
            let (line, _) = crate::diag::line_column(src, first_at);
            c.error_at(
                id_key.span(),
                format!("agents.id: duplicate agent id {id:?} (first defined on line {line})"),
            );
            continue;
        }
        seen_ids.insert(id.clone(), id_key.span().start);

        let endpoint = match &a.endpoint {
            None => {
                c.error_at(id_key.span(), format!("agent {id:?} has no `endpoint` (its phone, e.g. \"sip:{id}@192.0.2.10:5060\")"));
                String::new()
            }
            Some(_) => c
                .value(&a.endpoint, "agents.endpoint", |s| {
                    // "webrtc": the agent's phone is the browser page.
                    if s == WEBRTC_ENDPOINT {
                        return Ok(s.clone());
                    }
                    values::check_sip_uri(s).map(|()| s.clone())
                })
                .unwrap_or_default(),
        };
        let queues = a
            .queues
            .as_ref()
            .map(|list| {
                list.get_ref()
                    .iter()
                    .filter_map(|q| {
                        if q.get_ref().trim().is_empty() {
                            c.error_at(
                                q.span(),
                                "agents.queues: queue names must not be empty".into(),
                            );
                            None
                        } else {
                            Some(q.get_ref().clone())
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let var = env::agent_token_var(&id);
        let token = env
            .get(&var)
            .or_else(|| a.token.as_ref().map(|t| t.get_ref().clone()))
            .unwrap_or_default();
        if token.is_empty() {
            let span = a.token.as_ref().map_or(id_key.span(), Spanned::span);
            c.error_at(
                span,
                format!("agent {id:?} has no API token: set `token` or {var}"),
            );
        } else if let Some(other) = seen_tokens.get(&token) {
            let span = a.token.as_ref().map_or(id_key.span(), Spanned::span);
            c.error_at(
                span,
                format!("agent {id:?} has the same token as agent {other:?}: tokens identify agents and must differ"),
            );
        } else {
            seen_tokens.insert(token.clone(), id.clone());
        }
        let role = c
            .value(&a.role, "agents.role", |s| match s.as_str() {
                "agent" => Ok(Role::Agent),
                "supervisor" => Ok(Role::Supervisor),
                other => Err(format!(
                    "{other:?} is not a role (expected \"agent\" or \"supervisor\")"
                )),
            })
            .unwrap_or_default();
        agents.push(AgentConfig {
            id,
            endpoint,
            queues,
            token: Secret::new(token),
            role,
        });
    }

    let webhooks = webhooks(&mut c, &raw.webhooks, env);
    let webrtc = WebRtcConfig {
        address: match c.value(&raw.webrtc.address, "webrtc.address", |s| ip_addr(s)) {
            Some(ip) if ip.is_unspecified() => {
                if let Some(k) = &raw.webrtc.address {
                    c.error_at(
                        k.span(),
                        "webrtc.address: must be an address browsers can reach, not 0.0.0.0 or ::"
                            .into(),
                    );
                }
                None
            }
            other => other,
        },
    };
    // [[api_clients]]
    let mut api_clients = Vec::with_capacity(raw.api_clients.len());
    let mut client_ids: HashMap<String, ()> = HashMap::new();
    for entry in &raw.api_clients {
        let a = entry.get_ref();
        let Some(id_key) = &a.id else {
            c.error_at(
                entry.span(),
                "api_clients: every client needs an `id`".into(),
            );
            continue;
        };
        let Some(id) = c.value(&a.id, "api_clients.id", |s| agent_id(s)) else {
            continue;
        };
        if client_ids.insert(id.clone(), ()).is_some() {
            c.error_at(
                id_key.span(),
                format!("api_clients.id: duplicate client id {id:?}"),
            );
            continue;
        }
        let queues: Vec<String> = a
            .queues
            .as_ref()
            .map(|l| {
                l.get_ref()
                    .iter()
                    .map(|q| q.get_ref().trim().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        if queues.is_empty() || queues.iter().any(String::is_empty) {
            let span = a.queues.as_ref().map_or(id_key.span(), Spanned::span);
            c.error_at(
                span,
                format!("API client {id:?} needs `queues`, the queues it may act on"),
            );
        }
        let mut rights = Vec::new();
        for r in a
            .rights
            .as_ref()
            .map(|l| l.get_ref().as_slice())
            .unwrap_or_default()
        {
            match r.get_ref().trim() {
                "create_callbacks" => rights.push(ApiRight::CreateCallbacks),
                other => c.error_at(
                    r.span(),
                    format!(
                        "api_clients.rights: unknown right {other:?} (known: \"create_callbacks\")"
                    ),
                ),
            }
        }
        let var = env::api_client_token_var(&id);
        let token = env
            .get(&var)
            .or_else(|| a.token.as_ref().map(|t| t.get_ref().clone()))
            .unwrap_or_default();
        let span = a.token.as_ref().map_or(id_key.span(), Spanned::span);
        if token.is_empty() {
            c.error_at(
                span,
                format!("API client {id:?} has no token: set `token` or {var}"),
            );
        } else if let Some(other) = seen_tokens.get(&token) {
            c.error_at(
                span,
                format!("API client {id:?} has the same token as {other:?}: tokens must differ"),
            );
        } else {
            seen_tokens.insert(token.clone(), id.clone());
        }
        api_clients.push(ApiClientConfig {
            id,
            queues,
            token: Secret::new(token),
            rights,
        });
    }

    if !c.diags.is_empty() {
        let mut diags = c.diags;
        // File order; environment problems (line 1) first.
        diags.sort_by_key(|d| (d.line, d.column));
        return Err(ConfigErrors(diags));
    }
    Ok(Config {
        sip: SipConfig {
            listen,
            public_address,
            trusted_sources,
            t1,
            t2,
            t4,
            user_agent,
            max_calls: usize::try_from(max_calls).unwrap_or(2000),
            max_requests_per_source,
            tcp_idle_timeout,
            tcp_max_connections: usize::try_from(tcp_max_connections).unwrap_or(1024),
            tcp_max_connections_per_source: usize::try_from(tcp_max_connections_per_source)
                .unwrap_or(16),
            tls,
        },
        trunk: TrunkConfig {
            proxy,
            transport,
            ca_file,
            username,
            password,
            caller_id,
            srtp,
        },
        media: MediaConfig {
            rtp_ports,
            codecs,
            rtp_timeout,
            io,
        },
        http: HttpConfig {
            listen: http_listen,
            max_body,
            header_timeout,
            max_connections: usize::try_from(http_max_connections).unwrap_or(512),
        },
        store: StoreConfig {
            url,
            event_retention,
        },
        queues_dir,
        prompts_dir,
        data_dir,
        agents,
        api_clients,
        shutdown: ShutdownConfig { drain_timeout },
        webhooks,
        webrtc,
    })
}

/// `[[webhooks]]`: a URL, the events (known kinds, or `"*"`), a `whsec_` secret (or
/// `HAMMOND_WEBHOOK_<NAME>_SECRET`), unique names.
fn webhooks(
    c: &mut Checker<'_>,
    raw: &[Spanned<super::raw::RawWebhook>],
    env: &dyn Env,
) -> Vec<WebhookConfig> {
    let mut out: Vec<WebhookConfig> = Vec::new();
    for entry in raw {
        let w = entry.get_ref();
        let Some(url_key) = &w.url else {
            c.error_at(entry.span(), "webhooks: every webhook needs a `url`".into());
            continue;
        };
        let Some(url) = c.value(&w.url, "webhooks.url", |s| WebhookUrl::parse(s)) else {
            continue;
        };
        let name = w
            .name
            .as_ref()
            .map_or_else(|| url_key.get_ref().clone(), |n| n.get_ref().clone());
        if out.iter().any(|o| o.name == name) {
            let span = w.name.as_ref().map_or(url_key.span(), Spanned::span);
            c.error_at(
                span,
                format!("webhooks: duplicate webhook {name:?} (give each a unique `name`)"),
            );
            continue;
        }
        let mut events = Vec::new();
        for e in w
            .events
            .as_ref()
            .map(|l| l.get_ref().as_slice())
            .unwrap_or_default()
        {
            let kind = e.get_ref().trim();
            let kind = kind.strip_prefix("interaction.").unwrap_or(kind);
            if kind == "*" {
                continue;
            }
            if crate::interaction::EVENT_KINDS.contains(&kind) {
                events.push(kind.to_owned());
            } else {
                c.error_at(
                    e.span(),
                    format!(
                        "webhooks.events: unknown event {kind:?}; events: *, {}",
                        crate::interaction::EVENT_KINDS.join(", ")
                    ),
                );
            }
        }
        if w.events
            .as_ref()
            .is_some_and(|l| l.get_ref().iter().any(|e| e.get_ref().trim() == "*"))
        {
            events.clear();
        }
        let var = env::webhook_secret_var(&name);
        let secret_span = w.secret.as_ref().map_or(url_key.span(), Spanned::span);
        let key = match env
            .get(&var)
            .or_else(|| w.secret.as_ref().map(|s| s.get_ref().clone()))
        {
            None => {
                c.error_at(
                    secret_span,
                    format!("webhook {name:?} has no `secret` (\"whsec_…\", or set {var})"),
                );
                continue;
            }
            Some(s) => match values::webhook_key(&s) {
                Ok(_) => Secret::new(s),
                Err(e) => {
                    c.error_at(secret_span, format!("webhooks.secret: {e}"));
                    continue;
                }
            },
        };
        out.push(WebhookConfig {
            name,
            url,
            events,
            secret: key,
        });
    }
    out
}
