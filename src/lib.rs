//! Hammond: a SIP user agent that answers a contact centre's queue calls, runs each queue's timed
//! workflow while the caller waits, and connects callers and callbacks to agents.
//!
//! Layers (data flows down, events flow up). PURE modules hold no sockets, tasks or clocks; they
//! take `now` as an input and are driven by the tokio shell in [`rt`].
//!
//! | module          | job                                                                   | kind  |
//! |-----------------|-----------------------------------------------------------------------|-------|
//! | [`api`]         | HTTP only: maps requests onto the domain (Home List, feed, accept, SSE) | shell |
//! | [`rt`]          | tokio shell: sockets, thin call drivers, the media thread, agents registry | shell |
//! | [`metrics`]     | Prometheus metric names and recorders (the recorder is global)        | shell |
//! | [`store`]       | persistence behind one trait (SQLite embedded)                        | shell |
//! | [`call`]        | a call's decisions: inbound call and callback dial cores (virtual time) | PURE |
//! | [`queue`]       | order, positions, estimated wait, offers; agents and presence ([`queue::agent`]) | PURE |
//! | [`workflow`]    | the timed workflow: queue files compiled to flows, the engine         | PURE  |
//! | [`interaction`] | the interaction lifecycle and its feed, with typed notes              | PURE  |
//! | [`sip`]         | SIP messages, transactions, dialogs, the user agent                   | PURE  |
//! | [`config`]      | service config with file:line:column errors; the one duration parser  | PURE  |
//! | [`media`]       | SDP, RTP, G.711 codecs, DTMF, prompts, pacing, bridging               | PURE  |
//! | [`diag`]        | `file:line:column` diagnostics shared by config, media and workflow   | PURE  |
//! | [`pii`]         | masking of numbers, URIs and IPs in logs                              | PURE  |
//! | [`telemetry`]   | logging setup (tracing-subscriber)                                    | shell |
//!
//! A module imports only from modules below it in this table (and from `clock` and `idgen`):
//! `workflow` reads durations with [`config::values::parse_duration`], `config` names
//! [`media::Codec`], and nothing outside `api` imports from `api`.

pub mod api;
pub mod app;
pub mod call;
pub mod cli;
pub mod clock;
pub mod config;
pub mod diag;
pub mod idgen;
pub mod interaction;
pub mod media;
pub mod metrics;
pub mod pii;
pub mod queue;
pub mod rt;
pub mod sip;
pub mod store;
pub mod telemetry;
pub mod webhook;
pub mod workflow;
