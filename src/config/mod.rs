//! Configuration: the service config (`config/hammond.toml`) and the diagnostics every config
//! error carries. Queue files are compiled by [`crate::workflow::flow`]; this module only carries
//! their directory.
//!
//! Loading is two steps: serde reads the TOML into spanned raw structs (unknown keys and TOML
//! syntax errors stop there, with their line:column), then [`Config::load`] validates every value
//! and reports **all** bad values at once, each at its own `file:line:column`. Every key has a
//! default; `config/hammond.toml` lists them all, commented.
//!
//! Relative paths (`queues.dir`, `prompts.dir`, `data.dir`, a relative `sqlite://` file) are kept
//! as written and resolve against the process working directory, not the config file's folder:
//! run `hammond` from the directory that holds `config/` (the container's `WORKDIR` does).
//!
//! Secrets and container addresses may come from the environment (see [`env`]):
//! `HAMMOND_TRUNK_USERNAME`, `HAMMOND_TRUNK_PASSWORD`, `HAMMOND_AGENT_<ID>_TOKEN`,
//! `HAMMOND_SIP_LISTEN`, `HAMMOND_SIP_PUBLIC_ADDRESS`, `HAMMOND_HTTP_LISTEN`,
//! `HAMMOND_MEDIA_RTP_PORTS`, `HAMMOND_STORE_URL`; they win over the file.
//!
//! PURE apart from reading the one file in [`Config::load`] and the TLS files it names (see
//! [`tls`]): no sockets, no clocks, no DNS.

pub mod env;
mod raw;
pub mod tls;
mod validate;
pub mod values;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::diag::Diagnostic;
use crate::media::Codec;
pub use env::{Env, ProcessEnv};
pub use values::{
    Cidr, HostPort, Secret, canonical_ip, check_sip_uri, parse_byte_size, parse_duration,
    parse_port_range,
};

/// The validated service config. Every field is typed; nothing here needs parsing again.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `[sip]`.
    pub sip: SipConfig,
    /// `[sip.trunk]`.
    pub trunk: TrunkConfig,
    /// `[media]`.
    pub media: MediaConfig,
    /// `[http]`.
    pub http: HttpConfig,
    /// `[store]`.
    pub store: StoreConfig,
    /// `[queues] dir`: where the queue files (`*.toml`) live.
    pub queues_dir: PathBuf,
    /// `[prompts] dir`: `manifest.toml` and the audio files.
    pub prompts_dir: PathBuf,
    /// `[data] dir`: voicemail recordings, and the SQLite file unless `store.url` says otherwise.
    pub data_dir: PathBuf,
    /// `[[agents]]`, in file order; ids are unique. Empty unless configured.
    pub agents: Vec<AgentConfig>,
    /// `[[api_clients]]`: tokens for programs (a website's "call me" form, a CRM), not agents.
    pub api_clients: Vec<ApiClientConfig>,
    /// `[shutdown]`.
    pub shutdown: ShutdownConfig,
    /// `[[webhooks]]`, in file order; names are unique.
    pub webhooks: Vec<WebhookConfig>,
    /// `[webrtc]`.
    pub webrtc: WebRtcConfig,
}

/// One `[[webhooks]]` entry: where lifecycle events are POSTed, which ones, and the key they
/// are signed with (Standard Webhooks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// Unique; names the delivery cursor in the store (default: the URL), so renaming it
    /// starts delivery afresh from the newest event.
    pub name: String,
    /// `http://` or `https://` URL.
    pub url: WebhookUrl,
    /// Event kinds to send (`created`, `callback_requested`, `closed`, …); empty = all (`"*"`).
    pub events: Vec<String>,
    /// The signing secret, `whsec_<base64>` (or `HAMMOND_WEBHOOK_<NAME>_SECRET`), checked
    /// with [`values::webhook_key`].
    pub secret: Secret,
}

/// A webhook's URL, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    /// `https`.
    pub tls: bool,
    /// Host name or IP (IPv6 without brackets).
    pub host: String,
    /// Port (80 / 443 by default).
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}{}", self.host, self.port, self.path)
        } else {
            write!(f, "{scheme}://{}:{}{}", self.host, self.port, self.path)
        }
    }
}

impl WebhookUrl {
    /// Parses `http(s)://host[:port][/path]` (no user info, no fragment).
    pub fn parse(s: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else {
            return Err("must start with http:// or https://".into());
        };
        if s.contains('#') || s.chars().any(char::is_whitespace) {
            return Err("must not hold a fragment or spaces".into());
        }
        let (authority, path) = match rest.find(['/', '?']) {
            Some(k) if rest[k..].starts_with('?') => (&rest[..k], format!("/{}", &rest[k..])),
            Some(k) => (&rest[..k], rest[k..].to_owned()),
            None => (rest, "/".to_owned()),
        };
        if authority.contains('@') {
            return Err("must not hold credentials (the signature authenticates)".into());
        }
        let default = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or("unclosed [ in the host")?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| format!("bad port {p:?}"))?,
                None if after.is_empty() => default,
                None => return Err("junk after the host".into()),
            };
            (h.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (
                    h.to_owned(),
                    p.parse().map_err(|_| format!("bad port {p:?}"))?,
                ),
                None => (authority.to_owned(), default),
            }
        };
        if host.is_empty() {
            return Err("has no host".into());
        }
        Ok(Self {
            tls,
            host,
            port,
            path,
        })
    }
}

/// `[[agents]] endpoint` for an agent whose phone is the Home List page (issue 16).
pub const WEBRTC_ENDPOINT: &str = "webrtc";

/// `[webrtc]`: the media of agents whose phone is the browser (`endpoint = "webrtc"`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebRtcConfig {
    /// The IP the browser's ICE candidate names (Hammond is ICE-lite: it offers one host
    /// candidate per call). `None`: `[sip] public_address`. Set it when browsers reach Hammond
    /// at another address than the PBX does (a NAT between them).
    pub address: Option<IpAddr>,
}

/// `[sip]`: the SIP listener and its protection.
#[derive(Debug, Clone, PartialEq)]
pub struct SipConfig {
    /// UDP and TCP on the same address.
    pub listen: SocketAddr,
    /// The IP we advertise in Contact and SDP `c=`. Defaults to the listen IP; required when
    /// listening on an unspecified address (`0.0.0.0`, `::`).
    pub public_address: IpAddr,
    /// Who may send INVITE; others get 403 before any state is kept.
    pub trusted_sources: Vec<Cidr>,
    /// RFC 3261 §17.1.1.1: round-trip estimate, first retransmit interval.
    pub t1: Duration,
    /// RFC 3261 §17.1.2.2: retransmit interval cap for non-INVITE requests and INVITE responses.
    pub t2: Duration,
    /// RFC 3261 §17.1.2.2: how long a message may stay in the network.
    pub t4: Duration,
    /// `User-Agent` / `Server` header value.
    pub user_agent: String,
    /// Concurrent calls (in and out) before new INVITEs get 503.
    pub max_calls: usize,
    /// Flood control per source IP (like Kamailio's `pike`).
    pub max_requests_per_source: RateLimit,
    /// Close a TCP or TLS connection after this long without SIP messages, unless a call
    /// (dialog) still uses it. CRLF keep-alives count only from trusted sources.
    pub tcp_idle_timeout: Duration,
    /// Accepted TCP and TLS connections at once.
    pub tcp_max_connections: usize,
    /// Accepted TCP and TLS connections at once from one source that is not trusted (an IPv4
    /// address or an IPv6 /64), so no stranger can take every slot.
    pub tcp_max_connections_per_source: usize,
    /// `tls_listen`, `tls_cert`, `tls_key`: SIP over TLS from PBXs; `None` when not set.
    pub tls: Option<TlsListen>,
}

/// `[sip] tls_listen` with its certificate and key (PEM files, checked to belong together).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsListen {
    /// Where the TLS listener binds (TCP).
    pub listen: SocketAddr,
    /// The certificate chain, the server's own certificate first.
    pub cert: PathBuf,
    /// The certificate's private key.
    pub key: PathBuf,
}

/// At most `count` requests per `per` from one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed in one window, at least 1.
    pub count: u32,
    /// The window, longer than zero.
    pub per: Duration,
}

/// `[sip.trunk]`: where outbound legs (callbacks, agent calls) are sent.
#[derive(Debug, Clone, PartialEq)]
pub struct TrunkConfig {
    /// Next hop for outbound requests; the host may be a DNS name.
    pub proxy: HostPort,
    /// `udp` (default), `tcp` or `tls`.
    pub transport: Transport,
    /// With TLS: the CA certificates (PEM) the trunk's certificate must chain to, instead of
    /// the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Digest username for 401/407 challenges; empty = no credentials.
    pub username: String,
    /// Digest password. `Debug` prints `***`.
    pub password: Secret,
    /// Digits, optionally with a leading `+`.
    pub caller_id: String,
    /// SRTP on the customer's leg (`off` by default).
    pub srtp: SrtpMode,
}

/// `[sip.trunk] srtp`: whether the customer's leg is encrypted (SRTP keyed by SDES, RFC 4568).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SrtpMode {
    /// Plain RTP (the default).
    #[default]
    Off,
    /// Offer SRTP on `RTP/AVP` (best effort): the customer's answer decides.
    Optional,
    /// Offer `RTP/SAVP` only: an answer without a common crypto suite fails the attempt.
    Mandatory,
}

/// The transport for outbound requests to the trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// SIP over UDP (RFC 3261 §18), the default.
    Udp,
    /// SIP over TCP (RFC 3261 §18).
    Tcp,
    /// SIP over TLS (RFC 3261 §26.2), the server's certificate checked against the system's
    /// roots or `ca_file` and the proxy's host name.
    Tls,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
        })
    }
}

/// `[media]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaConfig {
    /// Local RTP ports; the first is even. Allocate even ports only.
    pub rtp_ports: RangeInclusive<u16>,
    /// In order of preference; never empty, no duplicates.
    pub codecs: Vec<Codec>,
    /// Hang up a call after this long without an RTP packet.
    pub rtp_timeout: Duration,
    /// How the media thread moves packets.
    pub io: MediaIo,
}

/// `[media] io`: how the media thread moves packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaIo {
    /// io_uring (one system call per 5 ms tick for every call's packets) where the kernel
    /// allows it, epoll otherwise. The default.
    Auto,
    /// epoll and a system call per packet sent and per socket read: for kernels whose io_uring
    /// an operator does not trust.
    Epoll,
}

/// `[http]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// API, Home List page, `/metrics`, `/healthz`.
    pub listen: SocketAddr,
    /// Request bodies above this are refused with 413.
    pub max_body: usize,
    /// A client must send a request's headers within this long (and an idle keep-alive
    /// connection is closed after it): slow clients cannot hold connections open.
    pub header_timeout: Duration,
    /// Connections at once, SSE streams included; past it new ones are refused (503, closed),
    /// so HTTP cannot take the descriptors SIP and RTP need.
    pub max_connections: usize,
}

/// `[store]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// `sqlite://<path>` (default `sqlite://<data.dir>/hammond.db`) or `postgres://…`.
    pub url: String,
    /// `event_retention`: how long the change-event log keeps an event (SSE clients resume
    /// from it); older ones are pruned. Default 7 days.
    pub event_retention: Duration,
}

impl StoreConfig {
    /// Whether the store is the embedded SQLite one.
    pub fn is_sqlite(&self) -> bool {
        self.url.starts_with("sqlite:")
    }
}

/// One `[[agents]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    /// Unique; letters, digits, `-` and `_`.
    pub id: String,
    /// The agent's phone, a `sip:` URI; Hammond calls it when the agent accepts.
    pub endpoint: String,
    /// The queues whose interactions the agent may see and accept.
    pub queues: Vec<String>,
    /// Bearer token for the API (`HAMMOND_AGENT_<ID>_TOKEN` overrides). Compare with
    /// [`Secret::matches`].
    pub token: Secret,
    /// `role = "agent"` (default) or `"supervisor"`.
    pub role: Role,
}

/// An agent's rights (`[[agents]] role`, default `agent`).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sees and acts on its own queues; closes only what it holds; sets only its own presence.
    #[default]
    Agent,
    /// Sees every queue (the wallboard), and may close or reassign any interaction and set any
    /// agent's presence. Push offers still follow `queues` only.
    Supervisor,
}

impl Role {
    /// The config and JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Supervisor => "supervisor",
        }
    }
}

/// One `[[api_clients]]` entry: a program that uses the API with its own token and only the
/// rights it is given. It is no agent: it has no phone, no presence, no Home List.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiClientConfig {
    /// Unique among clients; letters, digits, `-` and `_`.
    pub id: String,
    /// The queues it may act on.
    pub queues: Vec<String>,
    /// Bearer token (`HAMMOND_API_CLIENT_<ID>_TOKEN` overrides); differs from every other
    /// client's and agent's.
    pub token: Secret,
    /// What it may do.
    pub rights: Vec<ApiRight>,
}

/// A right an `[[api_clients]]` token may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiRight {
    /// `POST /api/v1/callbacks`: book a callback for a number (`"create_callbacks"`).
    CreateCallbacks,
}

impl ApiRight {
    /// The right as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateCallbacks => "create_callbacks",
        }
    }
}

/// `[shutdown]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownConfig {
    /// On SIGTERM, stop taking calls and wait this long for live calls to end.
    pub drain_timeout: Duration,
}

/// Every problem found in a config file, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<Diagnostic>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl Config {
    /// Read, parse and validate the service config at `path`, applying `HAMMOND_*` overrides
    /// from `env`. Call it once at startup (and on reload); `Err` lists every problem found.
    pub fn load(path: &Path, env: &dyn Env) -> Result<Self, ConfigErrors> {
        let src = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![Diagnostic::whole_file(
                path,
                format!("cannot read config file: {e}"),
            )])
        })?;
        Self::from_toml(path, &src, env)
    }

    /// [`Config::load`] for text already in memory; `path` is only used in diagnostics.
    pub fn from_toml(path: &Path, src: &str, env: &dyn Env) -> Result<Self, ConfigErrors> {
        let raw: raw::RawConfig = toml::from_str(src)
            .map_err(|e| ConfigErrors(vec![Diagnostic::from_toml(path, src, &e)]))?;
        validate::validate(path, src, raw, env)
    }
}

impl Default for Config {
    /// The built-in defaults: what an empty config file gives (with no environment overrides).
    /// `config/hammond.toml` spells the same values out.
    fn default() -> Self {
        let none: std::collections::HashMap<String, String> = std::collections::HashMap::new();
        validate::validate(
            Path::new("<defaults>"),
            "",
            raw::RawConfig::default(),
            &none,
        )
        .expect("the built-in defaults are valid (tested)")
    }
}

/// Validate the service config at `path` for `hammond check-config`, with the process
/// environment. Empty means valid. Queue files are checked by the workflow module.
pub fn check(path: &Path) -> Vec<Diagnostic> {
    match Config::load(path, &ProcessEnv) {
        Ok(_) => Vec::new(),
        Err(ConfigErrors(diags)) => diags,
    }
}

#[cfg(test)]
mod tests;
