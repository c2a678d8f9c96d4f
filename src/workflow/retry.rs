//! PURE: a queue's callback retry rules by outcome (`[callback.retry]`).
//!
//! A failed callback attempt is busy, no answer, failed (the trunk or the far end refused it
//! with a 4xx-6xx), or an answering machine; each outcome has its own delay before the next try
//! and its own cap on attempts. The cap is checked against the callback's attempts so far, all
//! outcomes together: with `busy.max_attempts = 5` and `machine.max_attempts = 2`, a callback
//! that met a machine twice closes `callback_failed`, while one that met a busy line twice is
//! tried again. A **trunk outage** (the trunk itself answered 503, or never answered, or could
//! not be reached) is not the customer's doing: it is retried after its own delay and never
//! counted.
//!
//! Must not: read a clock; the dial core and the lifecycle apply what [`RetryPolicy::rule`]
//! returns.

use std::time::Duration;

use crate::interaction::DialFailure;

/// What happens after one failed outcome: wait `delay`, and stop once the callback has failed
/// `max_attempts` times (all outcomes together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryRule {
    /// Attempts (counted ones, all outcomes) after which the callback closes `callback_failed`.
    pub max_attempts: u32,
    /// Time from the failed attempt to the next try.
    pub delay: Duration,
}

/// How the callback dialer retries, per outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The default cap of every outcome (`max_attempts`), and the cap a restart applies to a
    /// dial it cut.
    pub max_attempts: u32,
    /// The default delay of every outcome (`retry_interval`).
    pub retry_interval: Duration,
    /// How long the customer's phone may ring.
    pub ring_timeout: Duration,
    /// `busy = { delay, max_attempts }`: 486 / 600.
    pub busy: RetryRule,
    /// `no_answer`: the ring timeout passed, or 408 / 480 / 487 from the far end.
    pub no_answer: RetryRule,
    /// `failed`: any other refusal (4xx-6xx), a number the rules no longer allow.
    pub failed: RetryRule,
    /// `machine`: an answering machine took the call (it heard the short message).
    pub machine: RetryRule,
    /// `trunk_outage = { delay }`: the trunk itself is down; never counted, so no cap.
    pub outage_delay: Duration,
}

impl Default for RetryPolicy {
    /// A queue file's defaults (and the policy of a queue no longer configured).
    fn default() -> Self {
        Self::uniform(3, Duration::from_secs(600), Duration::from_secs(30))
    }
}

impl RetryPolicy {
    /// Every outcome with the same cap and delay (a trunk outage: the delay, uncapped).
    pub fn uniform(max_attempts: u32, retry_interval: Duration, ring_timeout: Duration) -> Self {
        let rule = RetryRule {
            max_attempts,
            delay: retry_interval,
        };
        Self {
            max_attempts,
            retry_interval,
            ring_timeout,
            busy: rule,
            no_answer: rule,
            failed: rule,
            machine: rule,
            outage_delay: retry_interval,
        }
    }

    /// The rule for `outcome`. A trunk outage never closes the callback: its cap is `u32::MAX`
    /// (and the lifecycle does not count it anyway).
    pub fn rule(&self, outcome: DialFailure) -> RetryRule {
        match outcome {
            DialFailure::Busy => self.busy,
            DialFailure::NoAnswer => self.no_answer,
            DialFailure::Failed => self.failed,
            DialFailure::Machine => self.machine,
            DialFailure::TrunkOutage => RetryRule {
                max_attempts: u32::MAX,
                delay: self.outage_delay,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outcome_has_its_rule_and_an_outage_is_uncapped() {
        let mut p = RetryPolicy::uniform(3, Duration::from_secs(600), Duration::from_secs(30));
        p.busy = RetryRule {
            max_attempts: 5,
            delay: Duration::from_secs(120),
        };
        p.outage_delay = Duration::from_secs(60);
        assert_eq!(p.rule(DialFailure::Busy).delay, Duration::from_secs(120));
        assert_eq!(p.rule(DialFailure::Busy).max_attempts, 5);
        assert_eq!(
            p.rule(DialFailure::NoAnswer).delay,
            Duration::from_secs(600)
        );
        assert_eq!(p.rule(DialFailure::Machine).max_attempts, 3);
        assert_eq!(p.rule(DialFailure::TrunkOutage).max_attempts, u32::MAX);
        assert_eq!(
            p.rule(DialFailure::TrunkOutage).delay,
            Duration::from_secs(60)
        );
    }
}
