//! The tokio shell: sockets, timers and tasks around the PURE cores. Nothing here decides
//! protocol behaviour; it moves bytes and time into the cores and their outputs back out.
//!
//! ## Channels, and what happens when one is full
//! | channel | bound | when full |
//! |---|---|---|
//! | TCP/TLS readers → SIP endpoint | 1,024 messages | the reader waits: TCP backpressure slows the peer |
//! | SIP endpoint → one TCP/TLS connection | 64 messages | the connection is closed (its peer is not reading); the messages' transactions hear of it |
//! | API accept → dialer | 1,024 accepts | the accept request waits (the accept is durable; never dropped) |
//! | router → a live call's offers | 4 commands | the offer is refused at once (the call is stuck) |
//! | queue directory watcher → reloader | 1 | dropped: one pending reload covers every change |
//! | calls → SIP endpoint (`UaHandle`) | none | each call sends a handful of commands over its life, from synchronous code that cannot wait; the endpoint drains them every turn |
//! | SIP endpoint → a call's leg events | none | a leg's events are bounded by its dialog (a few per transaction, each rate-limited by the peer's retransmission timers); dropping one (a BYE) would leak the call |
//! | a call → its store worker | none | one call's writes, in order; the store's own timeouts bound how long they wait |

pub mod agents;
pub mod call_legs;
pub mod call_task;
pub mod callback_task;
pub mod calls;
pub mod connected;
pub mod expiry;
pub mod fd_limit;
pub mod http;
pub mod legs;
pub mod live;
pub mod media_worker;
pub mod outbound;
pub mod ports;
pub mod queue_watch;
pub mod router;
pub mod schedule;
pub mod services;
pub mod sip_socket;
pub mod store_worker;
pub mod udp_batch;
pub mod uring;
pub mod webrtc;
