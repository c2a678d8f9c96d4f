//! The service config as written: serde structs that mirror the TOML, every key optional and
//! spanned so validation can point at the exact value. Unknown keys are refused by serde
//! (`deny_unknown_fields`) with their own line:column.

use serde::Deserialize;
use toml::Spanned;

/// An optional key, with the span of its value when present.
pub(super) type Key<T> = Option<Spanned<T>>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawConfig {
    pub(super) sip: RawSip,
    pub(super) media: RawMedia,
    pub(super) http: RawHttp,
    pub(super) store: RawStore,
    pub(super) queues: RawDir,
    pub(super) prompts: RawDir,
    pub(super) data: RawDir,
    pub(super) shutdown: RawShutdown,
    pub(super) webrtc: RawWebRtc,
    pub(super) agents: Vec<Spanned<RawAgent>>,
    pub(super) api_clients: Vec<Spanned<RawApiClient>>,
    pub(super) webhooks: Vec<Spanned<RawWebhook>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawWebhook {
    pub(super) name: Key<String>,
    pub(super) url: Key<String>,
    pub(super) events: Key<Vec<Spanned<String>>>,
    pub(super) secret: Key<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSip {
    pub(super) listen: Key<String>,
    pub(super) public_address: Key<String>,
    pub(super) trusted_sources: Key<Vec<Spanned<String>>>,
    pub(super) t1: Key<RawDuration>,
    pub(super) t2: Key<RawDuration>,
    pub(super) t4: Key<RawDuration>,
    pub(super) user_agent: Key<String>,
    pub(super) max_calls: Key<i64>,
    pub(super) max_requests_per_source: Key<RawRate>,
    pub(super) tcp_idle_timeout: Key<RawDuration>,
    pub(super) tcp_max_connections: Key<i64>,
    pub(super) tcp_max_connections_per_source: Key<i64>,
    pub(super) tls_listen: Key<String>,
    pub(super) tls_cert: Key<String>,
    pub(super) tls_key: Key<String>,
    pub(super) trunk: RawTrunk,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawRate {
    pub(super) count: Key<i64>,
    pub(super) per: Key<RawDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawTrunk {
    pub(super) proxy: Key<String>,
    pub(super) username: Key<String>,
    pub(super) password: Key<String>,
    pub(super) caller_id: Key<String>,
    pub(super) transport: Key<String>,
    pub(super) ca_file: Key<String>,
    pub(super) srtp: Key<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawMedia {
    pub(super) rtp_ports: Key<String>,
    pub(super) codecs: Key<Vec<Spanned<String>>>,
    pub(super) rtp_timeout: Key<RawDuration>,
    pub(super) io: Key<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawHttp {
    pub(super) listen: Key<String>,
    pub(super) max_body: Key<RawBytes>,
    pub(super) header_timeout: Key<RawDuration>,
    pub(super) max_connections: Key<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawStore {
    pub(super) url: Key<String>,
    pub(super) event_retention: Key<RawDuration>,
}

/// `[queues]`, `[prompts]` and `[data]`: one directory each.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawDir {
    pub(super) dir: Key<String>,
}

/// `[webrtc]`: the browser agents' media.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawWebRtc {
    pub(super) address: Key<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawShutdown {
    pub(super) drain_timeout: Key<RawDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAgent {
    pub(super) id: Key<String>,
    pub(super) endpoint: Key<String>,
    pub(super) queues: Key<Vec<Spanned<String>>>,
    pub(super) token: Key<String>,
    pub(super) role: Key<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawApiClient {
    pub(super) id: Key<String>,
    pub(super) queues: Key<Vec<Spanned<String>>>,
    pub(super) token: Key<String>,
    pub(super) rights: Key<Vec<Spanned<String>>>,
}

/// A duration as written. Numbers are accepted by serde so that validation can say which unit
/// to add instead of a bare "expected a string".
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawDuration {
    Text(String),
    Integer(i64),
    Float(f64),
}

/// A byte size: a count of bytes or a string with a unit (`"64KiB"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawBytes {
    Integer(i64),
    Text(String),
}
