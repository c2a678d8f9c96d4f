//! Helpers for the call cores' virtual-time tests: a fixed start, durations, and draining.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{Command, StoreOp};
use crate::interaction::Event as Lifecycle;

/// The scenario's time zero (any fixed instant: the cores never read a clock).
pub(crate) fn t0() -> Instant {
    static T0: OnceLock<Instant> = OnceLock::new();
    *T0.get_or_init(crate::clock::now)
}

pub(crate) fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub(crate) fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

/// Every lifecycle event in `cmds` that goes to the store (applied or committed), in order.
pub(crate) fn stored(cmds: &[Command]) -> Vec<Lifecycle> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Store(StoreOp::Apply(e) | StoreOp::Commit(e)) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

/// The feed note kinds in `cmds`, in order.
pub(crate) fn notes(cmds: &[Command]) -> Vec<String> {
    stored(cmds)
        .into_iter()
        .filter_map(|e| match e {
            Lifecycle::Note(n) => Some(n.kind().to_owned()),
            _ => None,
        })
        .collect()
}
