//! Prometheus metrics: the names every layer records under, [`install`] for `main`, and the
//! gauges refreshed from the store on each scrape of `GET /metrics`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::interaction::{Status, SubType};
use crate::store::InteractionStore;

/// Gauge: calls with a live SIP dialog (set by the call shell).
pub const ACTIVE_CALLS: &str = "hammond_active_calls";
/// Gauge, labels `status`, `sub_type`: interactions by status (refreshed on scrape).
pub const INTERACTIONS: &str = "hammond_interactions";
/// Gauge: callbacks waiting (open, sub_type callback; refreshed on scrape).
pub const CALLBACKS_PENDING: &str = "hammond_callbacks_pending";
/// Counter, label `outcome` (answered, busy, no_answer, failed): callback dial outcomes.
pub const DIAL_OUTCOMES: &str = "hammond_dial_outcomes_total";
/// Counter, label `method` (rfc4733, info, inband): DTMF digits received.
pub const DTMF_DIGITS: &str = "hammond_dtmf_digits_total";
/// Counter: RTP packets that arrived too late to play.
pub const RTP_LATE_PACKETS: &str = "hammond_rtp_late_packets_total";
/// Counter, label `code`: SIP responses sent and received.
pub const SIP_RESPONSES: &str = "hammond_sip_responses_total";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder as the global `metrics` recorder (once per process; later
/// calls return the same handle) and describes Hammond's metrics. Call from `main` before the
/// first metric is recorded, and put the handle in [`super::AppState`].
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; then ours just renders empty.
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed");
            }
            describe();
            handle
        })
        .clone()
}

/// Registers the descriptions (HELP lines) of every metric.
pub fn describe() {
    metrics::describe_gauge!(ACTIVE_CALLS, "Calls with a live SIP dialog");
    metrics::describe_gauge!(INTERACTIONS, "Interactions by status and sub_type");
    metrics::describe_gauge!(
        CALLBACKS_PENDING,
        "Open callback interactions waiting for an agent"
    );
    metrics::describe_counter!(DIAL_OUTCOMES, "Callback dial outcomes");
    metrics::describe_counter!(DTMF_DIGITS, "DTMF digits received, by method");
    metrics::describe_counter!(
        RTP_LATE_PACKETS,
        "RTP packets that arrived too late to play"
    );
    metrics::describe_counter!(SIP_RESPONSES, "SIP responses, by status code");
    // Register the counters at zero so the scrape lists them before the first event.
    metrics::gauge!(ACTIVE_CALLS).increment(0.0);
    metrics::counter!(RTP_LATE_PACKETS).increment(0);
}

/// Sets the store-derived gauges; every (status, sub_type) pair is set, so counts that drop to
/// zero show zero.
pub(crate) async fn refresh(store: &dyn InteractionStore) -> Result<(), crate::store::Error> {
    let counts = store.counts().await?;
    let mut pending = 0;
    for status in [Status::Open, Status::Bot, Status::Connected, Status::Closed] {
        for sub_type in [SubType::Inbound, SubType::Callback, SubType::Voicemail] {
            let n = counts
                .iter()
                .find(|(s, t, _)| *s == status && *t == sub_type)
                .map_or(0, |c| c.2);
            if (status, sub_type) == (Status::Open, SubType::Callback) {
                pending = n;
            }
            metrics::gauge!(INTERACTIONS, "status" => status.as_str(), "sub_type" => sub_type.as_str()).set(n as f64);
        }
    }
    metrics::gauge!(CALLBACKS_PENDING).set(pending as f64);
    Ok(())
}
