//! Routing: who gets offered what, and how long a caller may expect to wait. PURE: the shell
//! (`rt::router`) feeds it agents, waiting callers and due callbacks, and carries out offers.

pub mod agent;
pub mod estimate;
pub mod offers;
pub mod router;
pub mod stats;
