//! One integration-test binary (fast to link): real processes and real peers.
//! `support` starts the `hammond` binary on free loopback ports with a temporary config and
//! runs SIPp scenarios from `tests/sipp/` against it.

mod call_flows;
mod support;
