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
//! | store callers → the store's writer (SQLite's thread, PostgreSQL's writer task) | none | every caller awaits its job's reply, so the queue holds at most one job per waiting task; the store's timeouts bound the wait |
//! | PostgreSQL `LISTEN` → the event pump; the writer's commits → the pump | none | one message per commit or notification (event ids, which the pump coalesces): bounded by the store's write rate, which one writer serialises |
//! | a browser peer connection → its leg | none | a handful of events in a peer's life (connected, lost) |
//! | the page's requests → its browser call (answer, hold, hang up) | 8 requests | refused with 409: only a page flooding its own call fills it |
//! | media thread → a browser peer's task (STUN, DTLS from its socket) | 32 datagrams | dropped on the media thread, which never waits (a browser sends a consent check every 2.5 s; STUN and DTLS retransmit) |

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
