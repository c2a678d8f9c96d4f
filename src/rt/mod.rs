//! The tokio shell: sockets, timers and tasks around the PURE cores. Nothing here decides
//! protocol behaviour; it moves bytes and time into the cores and their outputs back out.

pub mod agents;
pub mod call_task;
pub mod callback_task;
pub mod calls;
pub mod connected;
pub mod fd_limit;
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
