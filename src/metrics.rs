//! Prometheus metric names and the small recorders every layer calls (shell: a global
//! recorder). Names live here, not in the HTTP layer, so the runtime records without reaching
//! up into `api/`; `GET /metrics` (in `api/`) only refreshes the store gauges and renders.
//!
//! Record through the helper functions rather than `metrics::counter!` with a name: a label
//! value spelled wrong in one place would otherwise become a new series silently.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::media::dtmf::DtmfMethod;

/// Gauge: calls with a live SIP dialog (set by the call shell).
pub const ACTIVE_CALLS: &str = "hammond_active_calls";
/// Gauge, labels `status`, `sub_type`: interactions by status (refreshed on scrape).
pub const INTERACTIONS: &str = "hammond_interactions";
/// Gauge: callbacks waiting (open, sub_type callback; refreshed on scrape).
pub const CALLBACKS_PENDING: &str = "hammond_callbacks_pending";
/// Counter, label `outcome` (answered, busy, no_answer, failed, agent_unreachable, machine:
/// answered, then screened as an answering machine): callback dial outcomes.
pub const DIAL_OUTCOMES: &str = "hammond_dial_outcomes_total";
/// Counter, label `method` (rfc4733, info, inband): DTMF digits received.
pub const DTMF_DIGITS: &str = "hammond_dtmf_digits_total";
/// Counter, label `direction` (in, out): RTP packets that arrived too late to play (in), and
/// frames the pacer skipped (out).
pub const RTP_LATE_PACKETS: &str = "hammond_rtp_late_packets_total";
/// Counter: datagrams an SRTP leg refused because they did not authenticate (forged, plain
/// RTP, replayed).
pub const SRTP_UNAUTHENTICATED: &str = "hammond_srtp_unauthenticated_packets_total";
/// Counter: interactions this instance settled for instances that died (their lease lapsed).
pub const LOST_INSTANCE_SETTLED: &str = "hammond_lost_instance_interactions_settled_total";
/// Counter, label `code`: SIP responses sent and received.
pub const SIP_RESPONSES: &str = "hammond_sip_responses_total";

/// Counter, labels `webhook`, `outcome` (delivered, failed_attempt, given_up, pruned: events
/// the retention removed before the webhook got to them): webhook deliveries.
pub const WEBHOOK_DELIVERIES: &str = "hammond_webhook_deliveries_total";
/// Gauge, label `webhook`: 1 while the webhook is retrying a failed event (its receiver is
/// failing), else 0.
pub const WEBHOOK_RETRYING: &str = "hammond_webhook_retrying";

/// Counter: interaction writes the store failed (unavailable, a database error), all backends.
pub const STORE_WRITE_FAILURES: &str = "hammond_store_write_failures_total";
/// Gauge, label `queue`: how long the oldest callback that may be dialled now has been due
/// (seconds; 0 when none is due): callbacks overdue.
pub const CALLBACK_OLDEST_DUE: &str = "hammond_callback_oldest_due_seconds";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder as the global `metrics` recorder (once per process; later
/// calls return the same handle) and describes Hammond's metrics. Call from `main` before the
/// first metric is recorded, and put the handle in `api::AppState`.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; then ours just renders empty.
            if ::metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed");
            }
            describe();
            handle
        })
        .clone()
}

/// Registers the descriptions (HELP lines) of every metric.
pub fn describe() {
    ::metrics::describe_gauge!(ACTIVE_CALLS, "Calls with a live SIP dialog");
    ::metrics::describe_counter!(
        LOST_INSTANCE_SETTLED,
        "Interactions settled for instances that died (lease lapsed)"
    );
    ::metrics::describe_gauge!(INTERACTIONS, "Interactions by status and sub_type");
    ::metrics::describe_gauge!(
        CALLBACKS_PENDING,
        "Open callback interactions waiting for an agent"
    );
    ::metrics::describe_counter!(DIAL_OUTCOMES, "Callback dial outcomes");
    ::metrics::describe_counter!(DTMF_DIGITS, "DTMF digits received, by method");
    ::metrics::describe_counter!(
        RTP_LATE_PACKETS,
        "RTP packets that arrived too late to play"
    );
    ::metrics::describe_counter!(SIP_RESPONSES, "SIP responses, by status code");
    ::metrics::describe_counter!(
        SRTP_UNAUTHENTICATED,
        "SRTP packets dropped because they did not authenticate"
    );
    ::metrics::describe_counter!(
        WEBHOOK_DELIVERIES,
        "Webhook deliveries: delivered, failed attempts, events given up"
    );
    ::metrics::describe_gauge!(
        WEBHOOK_RETRYING,
        "1 while a webhook is retrying a failed delivery"
    );
    ::metrics::describe_counter!(
        STORE_WRITE_FAILURES,
        "Interaction writes the store failed (unavailable or a database error)"
    );
    ::metrics::describe_gauge!(
        CALLBACK_OLDEST_DUE,
        "Seconds the oldest due callback of the queue has waited to be dialled"
    );
    ::metrics::counter!(STORE_WRITE_FAILURES).increment(0);
    // Register the counters at zero so the scrape lists them before the first event.
    ::metrics::gauge!(ACTIVE_CALLS).increment(0.0);
    ::metrics::counter!(RTP_LATE_PACKETS).increment(0);
    ::metrics::counter!(SRTP_UNAUTHENTICATED).increment(0);
    ::metrics::counter!(LOST_INSTANCE_SETTLED).increment(0);
}

/// `hammond_store_write_failures_total`: one write failed in the store.
pub fn store_write_failed() {
    ::metrics::counter!(STORE_WRITE_FAILURES).increment(1);
}

/// `hammond_callback_oldest_due_seconds{queue}`.
pub fn callback_oldest_due(queue: &str, secs: f64) {
    ::metrics::gauge!(CALLBACK_OLDEST_DUE, "queue" => queue.to_owned()).set(secs);
}

/// `hammond_webhook_deliveries_total{webhook, outcome}`: one delivery attempt ended so.
pub fn webhook_delivery(webhook: &str, outcome: &'static str) {
    ::metrics::counter!(WEBHOOK_DELIVERIES, "webhook" => webhook.to_owned(), "outcome" => outcome)
        .increment(1);
}

/// `hammond_webhook_deliveries_total{webhook, outcome="pruned"}`: `n` events the retention
/// pruned before the webhook got to them.
pub fn webhook_pruned(webhook: &str, n: u64) {
    ::metrics::counter!(WEBHOOK_DELIVERIES, "webhook" => webhook.to_owned(), "outcome" => "pruned")
        .increment(n);
}

/// `hammond_webhook_retrying{webhook}`: whether the webhook is retrying now.
pub fn webhook_retrying(webhook: &str, retrying: bool) {
    ::metrics::gauge!(WEBHOOK_RETRYING, "webhook" => webhook.to_owned()).set(if retrying {
        1.0
    } else {
        0.0
    });
}

/// `hammond_srtp_unauthenticated_packets_total`: a leg's SRTP refusals, counted as it ends.
pub fn srtp_unauthenticated(n: u64) {
    ::metrics::counter!(SRTP_UNAUTHENTICATED).increment(n);
}

/// `hammond_lost_instance_interactions_settled_total`: interactions settled for dead instances.
pub fn lost_instance_settled(n: u64) {
    if n > 0 {
        ::metrics::counter!(LOST_INSTANCE_SETTLED).increment(n);
    }
}

/// `hammond_active_calls`: the number of calls in progress now.
pub fn set_active_calls(n: usize) {
    ::metrics::gauge!(ACTIVE_CALLS).set(n as f64);
}

/// `hammond_dial_outcomes_total{outcome}`: one callback dial ended so.
pub fn dial_outcome(outcome: &'static str) {
    ::metrics::counter!(DIAL_OUTCOMES, "outcome" => outcome).increment(1);
}

/// `hammond_dtmf_digits_total{method}`: one key press arrived by `method`.
pub fn dtmf_digit(method: DtmfMethod) {
    ::metrics::counter!(DTMF_DIGITS, "method" => method.as_str()).increment(1);
}

/// `hammond_rtp_late_packets_total{direction}`: a call's late packets in (`late_in`) and frames
/// skipped out (`skipped_out`), added when the call ends.
pub fn rtp_late(late_in: u64, skipped_out: u64) {
    ::metrics::counter!(RTP_LATE_PACKETS, "direction" => "in").increment(late_in);
    ::metrics::counter!(RTP_LATE_PACKETS, "direction" => "out").increment(skipped_out);
}

/// The `hammond_sip_responses_total{code}` counter for `code` (the caller keeps it: one
/// registry look-up per code, not per response).
pub fn sip_responses(code: usize) -> ::metrics::Counter {
    ::metrics::counter!(SIP_RESPONSES, "code" => code.to_string())
}

#[cfg(test)]
mod tests {
    /// Every metric Hammond exports, by the constants above.
    const ALL: &[&str] = &[
        super::ACTIVE_CALLS,
        super::INTERACTIONS,
        super::CALLBACKS_PENDING,
        super::DIAL_OUTCOMES,
        super::DTMF_DIGITS,
        super::RTP_LATE_PACKETS,
        super::SRTP_UNAUTHENTICATED,
        super::SIP_RESPONSES,
        super::WEBHOOK_DELIVERIES,
        super::WEBHOOK_RETRYING,
        super::STORE_WRITE_FAILURES,
        super::CALLBACK_OLDEST_DUE,
    ];

    fn names(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = text;
        while let Some(k) = rest.find("hammond_") {
            let tail = &rest[k..];
            let end = tail
                .find(|c: char| !(c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()))
                .unwrap_or(tail.len());
            out.push(tail[..end].to_owned());
            rest = &tail[end..];
        }
        out
    }

    /// Issue 17: the Grafana dashboard and the alert rules name only metrics Hammond exports
    /// (a renamed metric would leave a panel empty and an alert silent), and cover the four
    /// the issue asks for.
    #[test]
    fn grafana_and_alerts_name_only_exported_metrics() {
        let dashboard = include_str!("../deploy/grafana/hammond-dashboard.json");
        let alerts = include_str!("../deploy/grafana/alerts.yml");
        let parsed: serde_json::Value = serde_json::from_str(dashboard).unwrap();
        assert!(parsed["panels"].as_array().is_some_and(|p| p.len() > 10));
        for (file, text) in [("dashboard", dashboard), ("alerts", alerts)] {
            for n in names(text) {
                // `hammond-overview` (the uid) is no metric; job names are not either.
                if n == "hammond_" {
                    continue;
                }
                assert!(
                    ALL.contains(&n.as_str()),
                    "{file} names {n}, which Hammond does not export"
                );
            }
        }
        for alert in [
            "HammondStoreWritesFailing",
            "HammondOverloadRefusing",
            "HammondTrunkFailures",
            "HammondCallbacksOverdue",
        ] {
            assert!(alerts.contains(&format!("alert: {alert}")), "{alert}");
        }
    }
}
