//! SIP (RFC 3261): messages, transactions (§17), dialogs (§12) and the user agent that ties them
//! together. PURE: no sockets, tasks or clocks; the tokio shell lives in [`crate::rt`].

pub mod auth;
pub mod dialog;
pub mod msg;
pub mod pike;
pub mod transport;
pub mod txn;
pub mod ua;
