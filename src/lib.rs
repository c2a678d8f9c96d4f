//! Hammond: a SIP user agent that answers a contact centre's queue calls, runs each queue's timed
//! workflow while the caller waits, and connects callers and callbacks to agents.
//!
//! Layers (data flows down, events flow up). PURE modules hold no sockets, tasks or clocks; they
//! take `now` as an input and are driven by the tokio shell in [`rt`].
//!
//! | module          | job                                                                | kind  |
//! |-----------------|--------------------------------------------------------------------|-------|
//! | [`api`]         | HTTP: Home List, interactions + feed, accept, agents, SSE, metrics | shell |
//! | [`queue`]       | routing: order, positions, estimated wait, offers, callback dialer  | mixed |
//! | [`rt`]          | tokio shell: SIP sockets, one task per call, RTP sockets           | shell |
//! | [`workflow`]    | the timed workflow: queue files compiled to flows, the engine      | PURE  |
//! | [`interaction`] | the interaction lifecycle and its feed                             | PURE  |
//! | [`store`]       | persistence behind one trait (SQLite embedded)                     | shell |
//! | [`sip`]         | SIP messages, transactions, dialogs, the user agent                | PURE  |
//! | [`media`]       | SDP, RTP, G.711, DTMF, prompts, pacing, bridging                   | PURE  |
//! | [`config`]      | service config with file:line:column errors                       | PURE  |
//! | [`pii`]         | masking of numbers, URIs and IPs in logs                           | PURE  |
//! | [`telemetry`]   | logging setup (tracing-subscriber)                                 | shell |

pub mod api;
pub mod app;
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
pub mod workflow;
