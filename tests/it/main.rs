//! One integration-test binary (fast to link): real processes and real peers.
//! `support` starts the `hammond` binary on free loopback ports with a temporary config and
//! runs SIPp scenarios from `tests/sipp/` against it.

// Real processes on the real clock: the virtual-time rule is for the sans-IO cores.
#![allow(clippy::disallowed_methods)]

mod amd_flows;
mod browser;
mod call_flows;
mod deploy_files;
mod dialer_flows;
mod hardening;
mod hold_flows;
mod kamailio_instances;
mod layering;
mod media_flows;
mod net_hardening;
mod pg_instances;
mod schedule_flows;
mod srtp_flows;
mod store_outage;
mod support;
mod tcp_flows;
mod tls_flows;
mod wallboard;
mod webhooks;
mod webrtc;
mod workflow_flows;
