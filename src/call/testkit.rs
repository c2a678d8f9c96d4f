//! Helpers for the call cores' virtual-time tests: a fixed start, durations, and draining.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::callback::CallbackDial;
use super::inbound::InboundCall;
use super::{AgentCommand, Command, LegEvent, LegId, StoreOp, StoreReply};
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

/// What the scenario harness drives: the inputs and outputs both call cores share.
pub(crate) trait Core {
    fn poll_command(&mut self) -> Option<Command>;
    fn poll_timeout(&self) -> Option<Instant>;
    fn handle_timeout(&mut self, now: Instant);
    fn handle_leg(&mut self, now: Instant, leg: LegId, ev: LegEvent);
    fn handle_store(&mut self, now: Instant, reply: StoreReply);
    fn handle_close(&mut self, now: Instant);
    fn handle_agent(&mut self, now: Instant, cmd: AgentCommand);
}

macro_rules! core_for {
    ($t:ty) => {
        impl Core for $t {
            fn poll_command(&mut self) -> Option<Command> {
                <$t>::poll_command(self)
            }
            fn poll_timeout(&self) -> Option<Instant> {
                <$t>::poll_timeout(self)
            }
            fn handle_timeout(&mut self, now: Instant) {
                <$t>::handle_timeout(self, now)
            }
            fn handle_leg(&mut self, now: Instant, leg: LegId, ev: LegEvent) {
                <$t>::handle_leg(self, now, leg, ev)
            }
            fn handle_store(&mut self, now: Instant, reply: StoreReply) {
                <$t>::handle_store(self, now, reply)
            }
            fn handle_close(&mut self, now: Instant) {
                <$t>::handle_close(self, now)
            }
            fn handle_agent(&mut self, now: Instant, cmd: AgentCommand) {
                <$t>::handle_agent(self, now, cmd)
            }
        }
    };
}
core_for!(CallbackDial);
core_for!(InboundCall);

/// A core under test, virtual `now`, and every command it gave so far.
pub(crate) struct Sim<C> {
    pub(crate) c: C,
    pub(crate) now: Instant,
    pub(crate) log: Vec<Command>,
}

impl<C: Core> Sim<C> {
    /// `c` at [`t0`], with what it asked for on creation drained into the log.
    pub(crate) fn wrap(c: C) -> Self {
        let mut s = Self {
            c,
            now: t0(),
            log: Vec::new(),
        };
        s.drain();
        s
    }

    /// Commands since the last call.
    pub(crate) fn drain(&mut self) -> Vec<Command> {
        let new: Vec<Command> = std::iter::from_fn(|| self.c.poll_command()).collect();
        self.log.extend(new.iter().cloned());
        new
    }

    /// Move virtual time to `t0() + d`.
    pub(crate) fn at(&mut self, d: Duration) -> &mut Self {
        self.now = t0() + d;
        self
    }

    pub(crate) fn leg(&mut self, leg: LegId, ev: LegEvent) -> Vec<Command> {
        self.c.handle_leg(self.now, leg, ev);
        self.drain()
    }

    pub(crate) fn store(&mut self, r: StoreReply) -> Vec<Command> {
        self.c.handle_store(self.now, r);
        self.drain()
    }

    pub(crate) fn close(&mut self) -> Vec<Command> {
        self.c.handle_close(self.now);
        self.drain()
    }

    /// The agent's Hold or Resume.
    pub(crate) fn agent(&mut self, cmd: AgentCommand) -> Vec<Command> {
        self.c.handle_agent(self.now, cmd);
        self.drain()
    }

    /// Step through every deadline up to `t0() + until`, each at its exact instant, as the
    /// driver's timer would.
    pub(crate) fn run_until(&mut self, until: Duration) -> Vec<Command> {
        let end = t0() + until;
        let mut new = Vec::new();
        while let Some(t) = self.c.poll_timeout().filter(|t| *t <= end) {
            self.now = t.max(self.now);
            self.c.handle_timeout(self.now);
            new.extend(self.drain());
        }
        self.now = end;
        new
    }
}
