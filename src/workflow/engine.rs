//! The workflow engine: one call's timed workflow as a sans-IO state machine.
//!
//! PURE. The call task (the shell) owns the SIP dialog and the media; it feeds this engine
//! [`WfEvent`]s and timer expiries and carries out the [`Action`]s it pulls. The contract:
//!
//! 1. Create the engine when the INVITE is accepted for a queue ([`Engine::new`]).
//! 2. After every `handle_*`, drain [`Engine::poll_action`] until `None`, then wait for the next
//!    input or for [`Engine::poll_timeout`] (call [`Engine::handle_timeout`] when it passes;
//!    early or repeated calls are harmless).
//! 3. Audio: `Play` and `StartMusic` replace whatever is playing. The shell reports
//!    `PlaybackFinished` only when a `Play` ends by itself, never for one that was stopped
//!    (`StopPlayback`) or replaced, and never for music (which loops until replaced).
//! 4. `RequestCallback` is answered with `CallbackStored` once the callback is durable, or
//!    `CallbackRefused`. `Transfer` ends with the call leaving (`Hangup`) or `TransferFailed`.
//!    `StartRecording` ends with `RecordingFinished` (at `max`, on `StopRecording`).
//! 5. After `Action::Hangup` the engine is finished: the shell sends BYE and drops it.
//!
//! Must not: read clocks, touch sockets, or decide anything about the interaction beyond the
//! actions it emits (the shell turns `EnterWorkflow` into open → bot, `RequestCallback` into a
//! stored callback, `Log` steps into feed entries).

use std::fmt;
use std::mem;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::flow::{Flow, MenuAction, NoInput};
use super::numbers::NumberError;

/// What the engine knows about the call when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallContext {
    /// The caller ID as the PBX presented it (`From` user / P-Asserted-Identity), if any.
    pub caller_number: Option<String>,
    /// Wall-clock time of the INVITE; with the monotonic `now` it gives the wall time of every
    /// later moment (for business hours and a closed-hours callback's `not_before`).
    pub started_wall: Timestamp,
}

/// Why the shell's callback request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// This number already has a pending callback in this queue.
    Duplicate,
    /// The number reached the queue's `max_per_day`.
    Limit,
    /// The store could not take it (the caller must not hear a confirmation).
    Unavailable,
}

/// Inputs from the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WfEvent {
    /// The call was answered (200 OK / ACK): media flows, keys count from now.
    Answered,
    /// A DTMF key, whatever the method (RFC 4733, INFO, in-band).
    Digit(char),
    /// The last `Play` ended by itself.
    PlaybackFinished,
    /// The requested callback is durable.
    CallbackStored,
    /// The requested callback was not stored.
    CallbackRefused(Refusal),
    /// Answer to `QueryQueueStatus`.
    QueueStatus {
        position: u32,
        estimated_wait: Option<Duration>,
    },
    /// The transfer did not happen; the caller is still here.
    TransferFailed,
    /// The voicemail recording ended (max length, `StopRecording`).
    RecordingFinished,
    /// The caller hung up (BYE / CANCEL).
    Hangup,
}

/// One thing to play, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlayItem {
    /// A prompt id from the prompt library.
    Prompt(String),
    /// Read these characters one by one with the `digit_*` prompts (`+`, `*`, `#` included).
    Digits(String),
    Silence(Duration),
}

/// Why the engine hangs up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangupReason {
    /// The callback is stored and the caller heard it confirmed.
    CallbackConfirmed,
    /// The number already had a callback; the caller heard so.
    CallbackExists,
    /// Outside business hours.
    Closed,
    /// A `hangup` action played its message.
    Message,
    /// The caller left a voicemail.
    VoicemailLeft,
}

/// Outputs, pulled with [`Engine::poll_action`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The call enters the workflow: the interaction goes open → bot.
    EnterWorkflow,
    /// Play these items (replacing any audio). `barge_in`: a key stops it (the engine then sends
    /// `StopPlayback` itself).
    Play {
        items: Vec<PlayItem>,
        barge_in: bool,
    },
    /// Stop the current prompt; send silence.
    StopPlayback,
    /// Loop the flow's `hold_music` until the next `Play`.
    StartMusic,
    /// Ask the queue for this caller's position; answer with `WfEvent::QueueStatus`.
    QueryQueueStatus,
    /// Store a callback (inbound → callback); answer `CallbackStored` or `CallbackRefused`.
    RequestCallback {
        number: String,
        not_before: Option<Timestamp>,
    },
    /// Transfer the caller (REFER or a new leg) to this SIP URI.
    Transfer {
        target: String,
    },
    /// Record the caller, at most `max`.
    StartRecording {
        max: Duration,
    },
    StopRecording,
    /// Send BYE; the engine is finished.
    Hangup {
        reason: HangupReason,
    },
    /// A step worth an entry on the interaction's feed.
    Log(Step),
}

/// Steps for the interaction's feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    WorkflowEntered,
    /// The menu was offered (1 = first).
    MenuOffered {
        nth: u32,
    },
    KeyAccepted {
        key: char,
        action: &'static str,
    },
    /// An invalid key; `tries` so far.
    KeyInvalid {
        key: char,
        tries: u32,
    },
    NoInput,
    /// Tries ran out; the menu's fallback is taken.
    FallbackTaken {
        action: &'static str,
    },
    PositionAnnounced {
        position: u32,
        minutes: Option<u64>,
    },
    MaxWaitReached {
        action: &'static str,
    },
    /// Outside business hours; `opens` is the next opening, if any.
    Closed {
        opens: Option<Timestamp>,
    },
    /// The caller chose "this number" but the caller ID cannot be called back.
    CallerIdUnusable {
        reason: NumberError,
    },
    NumberEntered {
        digits: String,
    },
    NumberInvalid {
        digits: String,
        reason: NumberError,
    },
    CallbackRequested {
        number: String,
        not_before: Option<Timestamp>,
    },
    CallbackStored,
    CallbackRefused(Refusal),
    /// Callback capture gave up (tries ran out, or refused); the caller keeps waiting.
    CallbackAbandoned,
    /// The menu left its callback key out: the estimated wait (`None`: not known) is under
    /// `[callback] offer_when_wait_over`.
    CallbackNotOffered {
        wait: Option<Duration>,
    },
    /// The caller chose a time for the callback (`[callback.schedule]`).
    SlotChosen {
        at: Timestamp,
        /// As the caller heard it ("today at 3 PM", in the queue's time zone).
        words: String,
    },
    /// The time booked fell outside `[callback] calling_window` in the customer's time zone:
    /// the callback is for the window's opening, and the caller is told so once it is stored.
    CallingWindow {
        at: Timestamp,
        /// As the caller hears it ("tomorrow at 9 AM", in the customer's time zone).
        words: String,
    },
    TransferStarted {
        target: String,
    },
    TransferFailed {
        target: String,
    },
    VoicemailStarted,
    VoicemailRecorded,
    CallerHungUp,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WorkflowEntered => write!(f, "entered workflow"),
            Self::MenuOffered { nth } => write!(f, "menu offered (#{nth})"),
            Self::KeyAccepted { key, action } => write!(f, "key {key} accepted: {action}"),
            Self::KeyInvalid { key, tries } => write!(f, "key {key} invalid (try {tries})"),
            Self::NoInput => write!(f, "no input"),
            Self::FallbackTaken { action } => write!(f, "tries exhausted: {action}"),
            Self::PositionAnnounced { position, minutes } => match minutes {
                Some(m) => write!(f, "position {position} announced, about {m} min"),
                None => write!(f, "position {position} announced"),
            },
            Self::MaxWaitReached { action } => write!(f, "max wait reached: {action}"),
            Self::Closed { opens: Some(t) } => write!(f, "closed (opens {t})"),
            Self::Closed { opens: None } => write!(f, "closed"),
            Self::CallerIdUnusable { reason } => write!(f, "caller ID unusable: {reason}"),
            Self::NumberEntered { digits } => write!(f, "number entered: {digits}"),
            Self::NumberInvalid { digits, reason } => {
                write!(f, "number {digits} refused: {reason}")
            }
            Self::CallbackRequested {
                number,
                not_before: Some(t),
            } => {
                write!(f, "callback requested for {number} (not before {t})")
            }
            Self::CallbackRequested {
                number,
                not_before: None,
            } => {
                write!(f, "callback requested for {number}")
            }
            Self::CallbackStored => write!(f, "callback stored"),
            Self::CallbackRefused(Refusal::Duplicate) => {
                write!(f, "callback refused: already booked")
            }
            Self::CallbackRefused(Refusal::Limit) => write!(f, "callback refused: daily limit"),
            Self::CallbackRefused(Refusal::Unavailable) => {
                write!(f, "callback refused: could not be stored")
            }
            Self::CallbackAbandoned => write!(f, "callback capture abandoned"),
            Self::SlotChosen { at, words } => write!(f, "callback time chosen: {words} ({at})"),
            Self::CallingWindow { at, words } => write!(
                f,
                "outside the customer's calling window: callback {words} ({at})"
            ),
            Self::CallbackNotOffered { wait: Some(w) } => write!(
                f,
                "callback not offered: estimated wait {} min",
                w.as_secs().div_ceil(60)
            ),
            Self::CallbackNotOffered { wait: None } => write!(f, "callback not offered"),
            Self::TransferStarted { target } => write!(f, "transfer to {target}"),
            Self::TransferFailed { target } => write!(f, "transfer to {target} failed"),
            Self::VoicemailStarted => write!(f, "voicemail recording"),
            Self::VoicemailRecorded => write!(f, "voicemail recorded"),
            Self::CallerHungUp => write!(f, "caller hung up"),
        }
    }
}

/// Waiting for a key: the prompt is still playing, or it ended and we listen until a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listen {
    Playing,
    Until(Instant),
}

/// What a callback capture carries through its states.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Capture {
    /// Closed-hours callbacks: the next opening.
    not_before: Option<Timestamp>,
    /// Failed entries / confirmations so far.
    tries: u32,
}

/// What follows a notice (a prompt played without barge-in).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Next {
    Music,
    Hangup(HangupReason),
    Transfer(String),
    Record,
    /// Take this action (after the `max_wait` prompt).
    Act(MenuAction),
    /// Go on to the callback number (after the chosen slot is read back).
    Capture(Capture),
}

/// The engine's states; each holds only what is valid in it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// INVITE accepted, not answered yet.
    Ringing,
    /// Answered; hold music until `start_after` has passed.
    Answered { enter_at: Instant },
    /// The menu (after the greeting on the first offer).
    Menu {
        listen: Listen,
        invalid: u32,
        no_input: u32,
    },
    /// Hold music; the next offer comes at `Engine::next_offer`.
    Waiting,
    /// Position / estimated wait being played; music follows.
    Announcing,
    /// Outside business hours, offering a callback for opening time (`1`).
    Closed {
        listen: Listen,
        invalid: u32,
        opens: Timestamp,
    },
    /// With `[callback.schedule]`: "1 as soon as possible, 2 to choose a time".
    When {
        listen: Listen,
        invalid: u32,
        cap: Capture,
    },
    /// The slots read out; key `k` takes `slots[k - 1]`.
    Slots {
        slots: Vec<Timestamp>,
        listen: Listen,
        invalid: u32,
        cap: Capture,
    },
    /// "1 for this number, 2 for another".
    CallbackMenu {
        listen: Listen,
        invalid: u32,
        cap: Capture,
    },
    /// Reading the caller ID back; the request follows.
    ReadBack { number: String, cap: Capture },
    /// Collecting digits.
    Entry {
        digits: String,
        listen: Listen,
        cap: Capture,
    },
    /// "The number is …, 1 to confirm, 2 to re-enter".
    Confirm {
        number: String,
        listen: Listen,
        cap: Capture,
    },
    /// `RequestCallback` sent, waiting for the store.
    /// The booking is being stored; `window`: the calling window moved it to this time, which
    /// the caller hears after the confirmation.
    AwaitStored {
        number: String,
        cap: Capture,
        window: Option<Timestamp>,
    },
    /// A prompt without barge-in, then `Next`.
    Notice { next: Next },
    /// `Transfer` sent.
    Transferring { target: String },
    /// Recording; `deadline` is a safety stop a little after the maximum.
    Recording { deadline: Option<Instant> },
    /// Hung up (by either side).
    Done,
}

impl State {
    /// How a state that takes keys after its prompt (the menus, the number's entry and its
    /// confirmation) listens: `None` for every other state.
    fn listen_mut(&mut self) -> Option<&mut Listen> {
        match self {
            Self::Menu { listen, .. }
            | Self::Closed { listen, .. }
            | Self::CallbackMenu { listen, .. }
            | Self::When { listen, .. }
            | Self::Slots { listen, .. }
            | Self::Entry { listen, .. }
            | Self::Confirm { listen, .. } => Some(listen),
            _ => None,
        }
    }
}

/// One call's workflow. See the module docs for the run-loop contract.
#[derive(Debug)]
pub struct Engine {
    flow: Arc<Flow>,
    ctx: CallContext,
    /// `now` at creation, the monotonic twin of `ctx.started_wall`.
    created: Instant,
    state: State,
    actions: std::collections::VecDeque<Action>,
    /// The offer grid: workflow entry + k × offer_every.
    next_offer: Option<Instant>,
    max_wait_at: Option<Instant>,
    offers: u32,
    /// The latest estimated wait (`Some(None)`: the queue could not estimate), for
    /// `offer_when_wait_over`; `None` until the first `QueueStatus`.
    last_wait: Option<Option<Duration>>,
    /// Whether the last menu offered its callback key.
    callback_offered: bool,
    /// Latest `QueueStatus` not yet announced.
    status: Option<(u32, Option<Duration>)>,
}

impl Engine {
    /// Start a call's workflow when its INVITE has been accepted for `flow`. The call keeps this
    /// `Arc<Flow>` for its whole life, even if the queue file is reloaded meanwhile.
    pub fn new(flow: Arc<Flow>, ctx: CallContext, now: Instant) -> Self {
        Self {
            flow,
            ctx,
            created: now,
            state: State::Ringing,
            actions: Default::default(),
            next_offer: None,
            max_wait_at: None,
            offers: 0,
            status: None,
            last_wait: None,
            callback_offered: true,
        }
    }

    /// The flow this call runs.
    pub fn flow(&self) -> &Arc<Flow> {
        &self.flow
    }

    /// True once the engine hung up or saw the caller hang up; nothing more will happen.
    pub fn is_finished(&self) -> bool {
        self.state == State::Done
    }

    /// The next action for the shell. Drain after every `handle_*`.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Are there actions waiting for [`Engine::poll_action`]?
    pub fn has_pending_actions(&self) -> bool {
        !self.actions.is_empty()
    }

    /// When [`Engine::handle_timeout`] must be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let state = match &self.state {
            State::Answered { enter_at } => Some(*enter_at),
            State::Menu { listen, .. }
            | State::Closed { listen, .. }
            | State::When { listen, .. }
            | State::Slots { listen, .. }
            | State::CallbackMenu { listen, .. }
            | State::Entry { listen, .. }
            | State::Confirm { listen, .. } => match listen {
                Listen::Until(t) => Some(*t),
                Listen::Playing => None,
            },
            State::Recording { deadline } => *deadline,
            State::Ringing
            | State::Waiting
            | State::Announcing
            | State::ReadBack { .. }
            | State::AwaitStored { .. }
            | State::Notice { .. }
            | State::Transferring { .. }
            | State::Done => None,
        };
        let offer = match self.state {
            State::Waiting => self.next_offer,
            _ => None,
        };
        let max_wait = if self.in_queue() {
            self.max_wait_at
        } else {
            None
        };
        [state, offer, max_wait].into_iter().flatten().min()
    }

    /// States where the caller is simply waiting in the queue (max wait may interrupt them).
    fn in_queue(&self) -> bool {
        matches!(
            self.state,
            State::Menu { .. } | State::Waiting | State::Announcing
        )
    }

    fn push(&mut self, a: Action) {
        self.actions.push_back(a);
    }

    fn log(&mut self, s: Step) {
        self.push(Action::Log(s));
    }

    fn play(&mut self, ids: &[&str], barge_in: bool) {
        let items = ids
            .iter()
            .map(|id| PlayItem::Prompt((*id).to_owned()))
            .collect();
        self.push(Action::Play { items, barge_in });
    }

    fn wall(&self, now: Instant) -> Timestamp {
        let since = now.saturating_duration_since(self.created);
        self.ctx
            .started_wall
            .checked_add(since)
            .unwrap_or(self.ctx.started_wall)
    }

    /// Feed one input. Events that make no sense in the current state are ignored.
    pub fn handle_event(&mut self, now: Instant, ev: WfEvent) {
        let state = mem::replace(&mut self.state, State::Done);
        self.state = match (state, ev) {
            (State::Done, _) => State::Done,
            (_, WfEvent::Hangup) => {
                self.log(Step::CallerHungUp);
                State::Done
            }
            (
                s,
                WfEvent::QueueStatus {
                    position,
                    estimated_wait,
                },
            ) => {
                self.status = Some((position, estimated_wait));
                self.last_wait = Some(estimated_wait);
                s
            }
            (State::Ringing, WfEvent::Answered) => {
                if self.flow.start_after.is_zero() {
                    self.enter(now)
                } else {
                    self.push(Action::StartMusic);
                    State::Answered {
                        enter_at: now + self.flow.start_after,
                    }
                }
            }
            (s, WfEvent::Answered) => s,
            (s, WfEvent::Digit(key)) => self.on_digit(now, s, key),
            (s, WfEvent::PlaybackFinished) => self.on_finished(now, s),
            (State::AwaitStored { number, window, .. }, WfEvent::CallbackStored) => {
                self.log(Step::CallbackStored);
                let p = self.flow.prompts.callback_confirmed.clone();
                match window {
                    // "We will call you back tomorrow at 9 AM": when, in the caller's own zone.
                    Some(at) => {
                        let mut items = vec![
                            PlayItem::Prompt(p),
                            PlayItem::Prompt(self.flow.prompts.slot_chosen.clone()),
                        ];
                        items.extend(super::slots::read_back(
                            at,
                            self.wall(now),
                            &self.customer_zone(&number),
                        ));
                        self.push(Action::Play {
                            items,
                            barge_in: false,
                        });
                    }
                    None => self.play(&[&p], false),
                }
                State::Notice {
                    next: Next::Hangup(HangupReason::CallbackConfirmed),
                }
            }
            (State::AwaitStored { cap, .. }, WfEvent::CallbackRefused(r)) => {
                self.log(Step::CallbackRefused(r));
                match r {
                    Refusal::Duplicate => {
                        let p = self.flow.prompts.callback_exists.clone();
                        self.play(&[&p], false);
                        State::Notice {
                            next: Next::Hangup(HangupReason::CallbackExists),
                        }
                    }
                    Refusal::Limit => self.abandon(&cap),
                    Refusal::Unavailable => {
                        let sorry = self.flow.prompts.callback_unavailable.clone();
                        self.abandon_saying(&cap, &sorry)
                    }
                }
            }
            (s, WfEvent::CallbackStored | WfEvent::CallbackRefused(_)) => s,
            (State::Transferring { target }, WfEvent::TransferFailed) => {
                self.log(Step::TransferFailed { target });
                self.offer(now, false)
            }
            (s, WfEvent::TransferFailed) => s,
            (State::Recording { .. }, WfEvent::RecordingFinished) => {
                self.log(Step::VoicemailRecorded);
                let p = self.flow.prompts.goodbye.clone();
                self.play(&[&p], false);
                State::Notice {
                    next: Next::Hangup(HangupReason::VoicemailLeft),
                }
            }
            (s, WfEvent::RecordingFinished) => s,
        };
    }

    /// Call when [`Engine::poll_timeout`] has passed. Early or repeated calls are no-ops.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.in_queue()
            && let Some(t) = self.max_wait_at
            && now >= t
        {
            self.max_wait_at = None;
            let action = self.flow.max_wait_action.clone();
            self.log(Step::MaxWaitReached {
                action: action.kind(),
            });
            if matches!(
                self.state,
                State::Menu {
                    listen: Listen::Playing,
                    ..
                } | State::Announcing
            ) {
                self.push(Action::StopPlayback);
            }
            let p = self.flow.prompts.max_wait.clone();
            self.play(&[&p], false);
            self.state = State::Notice {
                next: Next::Act(action),
            };
            return;
        }
        let state = mem::replace(&mut self.state, State::Done);
        self.state = match state {
            State::Answered { enter_at } if now >= enter_at => self.enter(now),
            State::Waiting if self.next_offer.is_some_and(|t| now >= t) => self.offer(now, true),
            State::Menu {
                listen: Listen::Until(t),
                invalid,
                no_input,
            } if now >= t => {
                self.log(Step::NoInput);
                match self.flow.menu.no_input {
                    NoInput::Wait => self.back_to_queue(now),
                    NoInput::Repeat if no_input >= self.flow.menu.max_no_input => {
                        let fb = self.flow.menu.fallback.clone();
                        self.log(Step::FallbackTaken { action: fb.kind() });
                        self.act(now, fb)
                    }
                    NoInput::Repeat => {
                        let (n, m) = (
                            self.flow.prompts.no_input.clone(),
                            self.flow.menu.prompt.clone(),
                        );
                        self.play(&[&n, &m], true);
                        State::Menu {
                            listen: Listen::Playing,
                            invalid,
                            no_input: no_input + 1,
                        }
                    }
                }
            }
            State::Closed {
                listen: Listen::Until(t),
                ..
            } if now >= t => {
                self.log(Step::NoInput);
                let p = self.flow.prompts.goodbye.clone();
                self.play(&[&p], false);
                State::Notice {
                    next: Next::Hangup(HangupReason::Closed),
                }
            }
            State::When {
                listen: Listen::Until(t),
                invalid,
                cap,
            } if now >= t => {
                self.log(Step::NoInput);
                self.when_again(invalid, cap, &self.flow.prompts.no_input.clone())
            }
            State::Slots {
                slots,
                listen: Listen::Until(t),
                invalid,
                cap,
            } if now >= t => {
                self.log(Step::NoInput);
                self.slots_again(
                    now,
                    slots,
                    invalid,
                    cap,
                    &self.flow.prompts.no_input.clone(),
                )
            }
            State::CallbackMenu {
                listen: Listen::Until(t),
                invalid,
                cap,
            } if now >= t => {
                self.log(Step::NoInput);
                if invalid + 1 >= self.flow.callback.max_tries {
                    self.abandon(&cap)
                } else {
                    let (n, m) = (
                        self.flow.prompts.no_input.clone(),
                        self.flow.prompts.callback_menu.clone(),
                    );
                    self.play(&[&n, &m], true);
                    State::CallbackMenu {
                        listen: Listen::Playing,
                        invalid: invalid + 1,
                        cap,
                    }
                }
            }
            State::Entry {
                digits,
                listen: Listen::Until(t),
                cap,
            } if now >= t => {
                if digits.is_empty() {
                    self.log(Step::NoInput);
                    self.entry_failed(cap, &self.flow.prompts.no_input.clone())
                } else {
                    self.finish_entry(digits, cap)
                }
            }
            State::Confirm {
                number,
                listen: Listen::Until(t),
                mut cap,
            } if now >= t => {
                self.log(Step::NoInput);
                cap.tries += 1;
                if cap.tries >= self.flow.callback.max_tries {
                    self.abandon(&cap)
                } else {
                    self.confirm(number, cap)
                }
            }
            State::Recording { deadline: Some(t) } if now >= t => {
                self.push(Action::StopRecording);
                State::Recording { deadline: None }
            }
            s @ (State::Ringing
            | State::Answered { .. }
            | State::Menu { .. }
            | State::Waiting
            | State::Announcing
            | State::Closed { .. }
            | State::When { .. }
            | State::Slots { .. }
            | State::CallbackMenu { .. }
            | State::ReadBack { .. }
            | State::Entry { .. }
            | State::Confirm { .. }
            | State::AwaitStored { .. }
            | State::Notice { .. }
            | State::Transferring { .. }
            | State::Recording { .. }
            | State::Done) => s,
        };
    }

    /// The call enters the workflow: open → bot, then closed-hours handling or the first offer.
    fn enter(&mut self, now: Instant) -> State {
        self.push(Action::EnterWorkflow);
        self.log(Step::WorkflowEntered);
        let wall = self.wall(now);
        if !self.flow.hours.is_open(wall) {
            let opens = self.flow.hours.next_open(wall);
            self.log(Step::Closed { opens });
            let closed = self.flow.prompts.closed.clone();
            return match opens {
                Some(opens) if self.flow.closed_callback => {
                    let cc = self.flow.prompts.closed_callback.clone();
                    self.play(&[&closed, &cc], true);
                    State::Closed {
                        listen: Listen::Playing,
                        invalid: 0,
                        opens,
                    }
                }
                _ => {
                    self.play(&[&closed], false);
                    State::Notice {
                        next: Next::Hangup(HangupReason::Closed),
                    }
                }
            };
        }
        self.max_wait_at = self.flow.max_wait.map(|d| now + d);
        self.next_offer = Some(now);
        self.offer(now, true)
    }

    /// Offer the menu (with the greeting the first time). `scheduled`: an offer from the grid
    /// (advances it); otherwise a re-offer after a failed transfer.
    fn offer(&mut self, now: Instant, scheduled: bool) -> State {
        if scheduled {
            self.advance_offer(now);
        }
        self.offers += 1;
        self.log(Step::MenuOffered { nth: self.offers });
        if self.flow.announce.any() || self.flow.callback.offer_when_wait_over.is_some() {
            self.push(Action::QueryQueueStatus);
        }
        self.callback_offered = self.callback_worth_it();
        if !self.callback_offered {
            self.log(Step::CallbackNotOffered {
                wait: self.last_wait.flatten(),
            });
        }
        let menu = self.menu_prompt();
        match (&self.flow.greeting, self.offers) {
            (Some(g), 1) => {
                let g = g.clone();
                self.play(&[&g, &menu], true);
            }
            _ => self.play(&[&menu], true),
        }
        State::Menu {
            listen: Listen::Playing,
            invalid: 0,
            no_input: 0,
        }
    }

    /// Move the offer grid past `now`.
    fn advance_offer(&mut self, now: Instant) {
        let every = self.flow.offer_every.max(Duration::from_secs(1));
        if let Some(mut t) = self.next_offer {
            while t <= now {
                t += every;
            }
            self.next_offer = Some(t);
        }
    }

    /// Back to the queue: announce position if there is news, then music.
    fn back_to_queue(&mut self, now: Instant) -> State {
        self.advance_offer(now);
        if let Some((position, wait)) = self.status.take()
            && self.flow.announce.any()
        {
            let mut items = Vec::new();
            let p = &self.flow.prompts;
            if self.flow.announce.position {
                items.push(PlayItem::Prompt(p.position_intro.clone()));
                items.push(PlayItem::Digits(position.to_string()));
            }
            let minutes = wait
                .filter(|_| self.flow.announce.estimated_wait)
                .map(|w| w.as_secs().div_ceil(60).max(1));
            if let Some(m) = minutes {
                items.push(PlayItem::Prompt(p.wait_intro.clone()));
                items.push(PlayItem::Digits(m.to_string()));
                items.push(PlayItem::Prompt(p.minutes.clone()));
            }
            if !items.is_empty() {
                self.log(Step::PositionAnnounced { position, minutes });
                self.push(Action::Play {
                    items,
                    barge_in: true,
                });
                return State::Announcing;
            }
        }
        self.push(Action::StartMusic);
        State::Waiting
    }

    /// Take a menu action.
    fn act(&mut self, now: Instant, action: MenuAction) -> State {
        match action {
            MenuAction::Wait => self.back_to_queue(now),
            MenuAction::Repeat => self.offer(now, false),
            MenuAction::Callback => self.start_callback(None),
            MenuAction::Transfer { target } => {
                let p = self.flow.prompts.transferring.clone();
                self.play(&[&p], false);
                State::Notice {
                    next: Next::Transfer(target),
                }
            }
            MenuAction::Voicemail => {
                let (v, b) = (
                    self.flow.prompts.voicemail_intro.clone(),
                    self.flow.prompts.beep.clone(),
                );
                self.play(&[&v, &b], false);
                State::Notice { next: Next::Record }
            }
            MenuAction::Hangup { message } => {
                self.play(&[&message], false);
                State::Notice {
                    next: Next::Hangup(HangupReason::Message),
                }
            }
        }
    }

    /// A key in the menu or during the music/announcement.
    fn menu_key(&mut self, now: Instant, key: char, invalid: u32, no_input: u32) -> State {
        let offered = self.callback_offered;
        if let Some(o) = self
            .flow
            .menu
            .options
            .iter()
            .find(|o| o.key == key && (offered || o.action != MenuAction::Callback))
        {
            let action = o.action.clone();
            self.log(Step::KeyAccepted {
                key,
                action: action.kind(),
            });
            return self.act(now, action);
        }
        let tries = invalid + 1;
        self.log(Step::KeyInvalid { key, tries });
        if tries > self.flow.menu.max_invalid {
            let fb = self.flow.menu.fallback.clone();
            self.log(Step::FallbackTaken { action: fb.kind() });
            return self.act(now, fb);
        }
        let (i, m) = (self.flow.prompts.invalid_choice.clone(), self.menu_prompt());
        self.play(&[&i, &m], true);
        State::Menu {
            listen: Listen::Playing,
            invalid: tries,
            no_input,
        }
    }

    /// Whether a callback is worth offering now (`[callback] offer_when_wait_over`): the
    /// estimated wait is over the threshold, or not known (no estimate yet, or the queue
    /// cannot estimate: no agent has finished a call), or there is no threshold.
    fn callback_worth_it(&self) -> bool {
        match (self.flow.callback.offer_when_wait_over, self.last_wait) {
            (None, _) | (Some(_), None | Some(None)) => true,
            (Some(over), Some(Some(wait))) => wait > over,
        }
    }

    /// The menu as offered now: without its callback key while a callback is not worth it.
    fn menu_prompt(&self) -> String {
        if self.callback_offered {
            self.flow.menu.prompt.clone()
        } else {
            self.flow.prompts.menu_no_callback.clone()
        }
    }

    fn on_digit(&mut self, now: Instant, state: State, key: char) -> State {
        match state {
            State::Menu {
                listen,
                invalid,
                no_input,
            } => {
                if listen == Listen::Playing {
                    self.push(Action::StopPlayback);
                }
                self.menu_key(now, key, invalid, no_input)
            }
            State::Waiting => self.menu_key(now, key, 0, 0),
            State::Announcing => {
                self.push(Action::StopPlayback);
                self.menu_key(now, key, 0, 0)
            }
            State::Closed {
                listen,
                invalid,
                opens,
            } => {
                if listen == Listen::Playing {
                    self.push(Action::StopPlayback);
                }
                if key == '1' {
                    self.log(Step::KeyAccepted {
                        key,
                        action: "callback",
                    });
                    return self.start_callback(Some(opens));
                }
                self.log(Step::KeyInvalid {
                    key,
                    tries: invalid + 1,
                });
                if invalid + 1 > self.flow.menu.max_invalid {
                    let p = self.flow.prompts.goodbye.clone();
                    self.play(&[&p], false);
                    return State::Notice {
                        next: Next::Hangup(HangupReason::Closed),
                    };
                }
                let (i, c) = (
                    self.flow.prompts.invalid_choice.clone(),
                    self.flow.prompts.closed_callback.clone(),
                );
                self.play(&[&i, &c], true);
                State::Closed {
                    listen: Listen::Playing,
                    invalid: invalid + 1,
                    opens,
                }
            }
            State::When {
                listen,
                invalid,
                cap,
            } => {
                if listen == Listen::Playing {
                    self.push(Action::StopPlayback);
                }
                match key {
                    '1' => {
                        self.log(Step::KeyAccepted {
                            key,
                            action: "callback: as soon as possible",
                        });
                        self.capture_number(cap)
                    }
                    '2' => {
                        self.log(Step::KeyAccepted {
                            key,
                            action: "callback: choose a time",
                        });
                        let slots = self.slots_from(now);
                        if slots.is_empty() {
                            // No slot in the horizon (a long closure): as soon as possible.
                            return self.capture_number(cap);
                        }
                        self.offer_slots(now, &slots, None);
                        State::Slots {
                            slots,
                            listen: Listen::Playing,
                            invalid: 0,
                            cap,
                        }
                    }
                    _ => {
                        self.log(Step::KeyInvalid {
                            key,
                            tries: invalid + 1,
                        });
                        self.when_again(invalid, cap, &self.flow.prompts.invalid_choice.clone())
                    }
                }
            }
            State::Slots {
                slots,
                listen,
                invalid,
                mut cap,
            } => {
                if listen == Listen::Playing {
                    self.push(Action::StopPlayback);
                }
                let chosen = key
                    .to_digit(10)
                    .and_then(|d| usize::try_from(d).ok())
                    .filter(|d| *d >= 1)
                    .and_then(|d| slots.get(d - 1).copied());
                let Some(at) = chosen else {
                    self.log(Step::KeyInvalid {
                        key,
                        tries: invalid + 1,
                    });
                    let why = self.flow.prompts.invalid_choice.clone();
                    return self.slots_again(now, slots, invalid, cap, &why);
                };
                let wall = self.wall(now);
                let tz = self.slot_zone();
                self.log(Step::SlotChosen {
                    at,
                    words: super::slots::describe(at, wall, &tz),
                });
                cap.not_before = Some(at);
                let mut items = vec![PlayItem::Prompt(self.flow.prompts.slot_chosen.clone())];
                items.extend(super::slots::read_back(at, wall, &tz));
                self.push(Action::Play {
                    items,
                    barge_in: false,
                });
                State::Notice {
                    next: Next::Capture(cap),
                }
            }
            State::CallbackMenu {
                listen,
                invalid,
                cap,
            } => {
                if listen == Listen::Playing {
                    self.push(Action::StopPlayback);
                }
                let rules = &self.flow.callback;
                match key {
                    '1' if rules.confirm_caller_id => {
                        self.log(Step::KeyAccepted {
                            key,
                            action: "callback: this number",
                        });
                        self.caller_id_or_entry(cap)
                    }
                    '2' if rules.allow_other_number => {
                        self.log(Step::KeyAccepted {
                            key,
                            action: "callback: another number",
                        });
                        self.start_entry(cap)
                    }
                    _ => {
                        self.log(Step::KeyInvalid {
                            key,
                            tries: invalid + 1,
                        });
                        if invalid + 1 >= self.flow.callback.max_tries {
                            return self.abandon(&cap);
                        }
                        let (i, m) = (
                            self.flow.prompts.invalid_choice.clone(),
                            self.flow.prompts.callback_menu.clone(),
                        );
                        self.play(&[&i, &m], true);
                        State::CallbackMenu {
                            listen: Listen::Playing,
                            invalid: invalid + 1,
                            cap,
                        }
                    }
                }
            }
            State::Entry {
                mut digits,
                listen,
                cap,
            } => {
                if listen == Listen::Playing {
                    self.push(Action::StopPlayback);
                }
                match key {
                    '0'..='9' => {
                        digits.push(key);
                        let t = now + self.flow.callback.inter_digit_timeout;
                        State::Entry {
                            digits,
                            listen: Listen::Until(t),
                            cap,
                        }
                    }
                    '*' => self.start_entry(cap),
                    '#' if digits.is_empty() => {
                        // `#` before any digit: treat as "no number yet", prompt again.
                        self.entry_failed(cap, &self.flow.prompts.invalid_number.clone())
                    }
                    '#' => self.finish_entry(digits, cap),
                    _ => State::Entry {
                        digits,
                        listen,
                        cap,
                    },
                }
            }
            State::Confirm {
                number,
                listen,
                cap,
            } => {
                if listen == Listen::Playing {
                    self.push(Action::StopPlayback);
                }
                match key {
                    '1' => self.request(now, number, cap),
                    '2' => self.start_entry(cap),
                    _ => {
                        let (i, c) = (
                            self.flow.prompts.invalid_choice.clone(),
                            self.flow.prompts.confirm_number.clone(),
                        );
                        self.play(&[&i, &c], true);
                        State::Confirm {
                            number,
                            listen: Listen::Playing,
                            cap,
                        }
                    }
                }
            }
            // Keys do nothing while ringing, before the workflow, or during non-interactive
            // steps (read-back, storing, notices, transfer).
            s @ (State::Ringing
            | State::Answered { .. }
            | State::ReadBack { .. }
            | State::AwaitStored { .. }
            | State::Notice { .. }
            | State::Transferring { .. }
            | State::Done) => s,
            State::Recording { deadline } => {
                if key == '#' && deadline.is_some() {
                    self.push(Action::StopRecording);
                    return State::Recording { deadline: None };
                }
                State::Recording { deadline }
            }
        }
    }

    fn on_finished(&mut self, now: Instant, mut state: State) -> State {
        // A prompt that asks for keys ended: listen for them from now on.
        let timeout = match state {
            State::Entry { .. } => self.flow.callback.first_digit_timeout,
            _ => self.flow.menu.timeout,
        };
        if let Some(listen) = state.listen_mut()
            && matches!(listen, Listen::Playing)
        {
            *listen = Listen::Until(now + timeout);
            return state;
        }
        match state {
            State::Announcing => {
                self.push(Action::StartMusic);
                State::Waiting
            }
            State::ReadBack { number, cap } => self.request(now, number, cap),
            State::Notice { next } => match next {
                Next::Music => self.back_to_queue(now),
                Next::Hangup(reason) => {
                    self.push(Action::Hangup { reason });
                    State::Done
                }
                Next::Transfer(target) => {
                    self.log(Step::TransferStarted {
                        target: target.clone(),
                    });
                    self.push(Action::Transfer {
                        target: target.clone(),
                    });
                    State::Transferring { target }
                }
                Next::Record => {
                    self.log(Step::VoicemailStarted);
                    let max = self.flow.voicemail_max;
                    self.push(Action::StartRecording { max });
                    State::Recording {
                        deadline: Some(now + max + Duration::from_secs(2)),
                    }
                }
                Next::Act(action) => self.act(now, action),
                Next::Capture(cap) => self.capture_number(cap),
            },
            // A late or stray PlaybackFinished (the shell should not send one) changes nothing.
            s @ (State::Ringing
            | State::Answered { .. }
            | State::Menu { .. }
            | State::Waiting
            | State::Closed { .. }
            | State::When { .. }
            | State::Slots { .. }
            | State::CallbackMenu { .. }
            | State::Entry { .. }
            | State::Confirm { .. }
            | State::AwaitStored { .. }
            | State::Transferring { .. }
            | State::Recording { .. }
            | State::Done) => s,
        }
    }

    /// The caller chose a callback (`not_before`: for opening time). With
    /// `[callback.schedule]`, a caller who may be called at once is asked when first.
    fn start_callback(&mut self, not_before: Option<Timestamp>) -> State {
        let cap = Capture {
            not_before,
            tries: 0,
        };
        if not_before.is_none() && self.flow.callback.schedule.is_some() {
            let p = self.flow.prompts.callback_when.clone();
            self.play(&[&p], true);
            return State::When {
                listen: Listen::Playing,
                invalid: 0,
                cap,
            };
        }
        self.capture_number(cap)
    }

    /// "When": again after `why` (an invalid key, no input), or give up after `max_tries`.
    fn when_again(&mut self, invalid: u32, cap: Capture, why: &str) -> State {
        if invalid + 1 >= self.flow.callback.max_tries {
            return self.abandon(&cap);
        }
        let p = self.flow.prompts.callback_when.clone();
        self.play(&[why, &p], true);
        State::When {
            listen: Listen::Playing,
            invalid: invalid + 1,
            cap,
        }
    }

    /// The slots again after `why`, or give up after `max_tries`.
    fn slots_again(
        &mut self,
        now: Instant,
        slots: Vec<Timestamp>,
        invalid: u32,
        cap: Capture,
        why: &str,
    ) -> State {
        if invalid + 1 >= self.flow.callback.max_tries {
            return self.abandon(&cap);
        }
        self.offer_slots(now, &slots, Some(why));
        State::Slots {
            slots,
            listen: Listen::Playing,
            invalid: invalid + 1,
            cap,
        }
    }

    /// The zone slots are counted and read in: the queue's hours', else `[callback] time_zone`.
    fn slot_zone(&self) -> jiff::tz::TimeZone {
        self.flow
            .hours
            .time_zone()
            .cloned()
            .unwrap_or_else(|| self.flow.callback.time_zone.clone())
    }

    /// The next slots from the wall time of `now`, inside the calling window of the number
    /// calling (the caller ID: the number is asked after the slot; a slot another number's
    /// window excludes moves to its opening when booked, and the caller is told).
    fn slots_from(&self, now: Instant) -> Vec<Timestamp> {
        let Some(schedule) = self.flow.callback.schedule else {
            return Vec::new();
        };
        let caller = self.ctx.caller_number.as_deref().unwrap_or_default();
        schedule.next_slots_where(&self.flow.hours, &self.slot_zone(), self.wall(now), |t| {
            self.flow.callable_from(caller, t).is_none()
        })
    }

    /// "Press 1 for today at 3 PM, press 2 for …" (keys barge in), after `before` if any.
    fn offer_slots(&mut self, now: Instant, slots: &[Timestamp], before: Option<&str>) {
        let (wall, tz) = (self.wall(now), self.slot_zone());
        let mut items: Vec<PlayItem> = before
            .map(|p| PlayItem::Prompt(p.to_owned()))
            .into_iter()
            .collect();
        for (k, slot) in slots.iter().enumerate() {
            items.push(PlayItem::Prompt("slot_press".into()));
            items.push(PlayItem::Digits((k + 1).to_string()));
            items.push(PlayItem::Prompt("slot_for".into()));
            items.extend(super::slots::read_back(*slot, wall, &tz));
            items.push(PlayItem::Silence(Duration::from_millis(400)));
        }
        self.push(Action::Play {
            items,
            barge_in: true,
        });
    }

    /// The number to call back: "1 for this number, 2 for another", or straight to the one
    /// the queue allows.
    fn capture_number(&mut self, cap: Capture) -> State {
        let rules = &self.flow.callback;
        match (rules.confirm_caller_id, rules.allow_other_number) {
            (true, true) => {
                let p = self.flow.prompts.callback_menu.clone();
                self.play(&[&p], true);
                State::CallbackMenu {
                    listen: Listen::Playing,
                    invalid: 0,
                    cap,
                }
            }
            (true, false) => self.caller_id_or_entry(cap),
            (false, _) => self.start_entry(cap),
        }
    }

    /// "1 = this number": read back a usable caller ID, otherwise ask for a number (or give up
    /// when entering another number is not allowed).
    fn caller_id_or_entry(&mut self, cap: Capture) -> State {
        let caller = self.ctx.caller_number.clone().unwrap_or_default();
        match self.flow.callback.numbers.check_caller_id(&caller) {
            Ok(()) => {
                let p = self.flow.prompts.number_is.clone();
                self.push(Action::Play {
                    items: vec![PlayItem::Prompt(p), PlayItem::Digits(caller.clone())],
                    barge_in: false,
                });
                State::ReadBack {
                    number: caller,
                    cap,
                }
            }
            Err(reason) => {
                self.log(Step::CallerIdUnusable { reason });
                if self.flow.callback.allow_other_number {
                    self.start_entry(cap)
                } else {
                    self.abandon(&cap)
                }
            }
        }
    }

    fn start_entry(&mut self, cap: Capture) -> State {
        let p = self.flow.prompts.enter_number.clone();
        self.play(&[&p], true);
        State::Entry {
            digits: String::new(),
            listen: Listen::Playing,
            cap,
        }
    }

    /// `#` or the inter-digit timeout: validate.
    fn finish_entry(&mut self, digits: String, cap: Capture) -> State {
        self.log(Step::NumberEntered {
            digits: digits.clone(),
        });
        match self.flow.callback.numbers.check_entered(&digits) {
            Ok(()) => self.confirm(digits, cap),
            Err(reason) => {
                self.log(Step::NumberInvalid { digits, reason });
                self.entry_failed(cap, &self.flow.prompts.invalid_number.clone())
            }
        }
    }

    /// A failed entry: `why` and another try, or give up.
    fn entry_failed(&mut self, mut cap: Capture, why: &str) -> State {
        cap.tries += 1;
        if cap.tries >= self.flow.callback.max_tries {
            return self.abandon(&cap);
        }
        let e = self.flow.prompts.enter_number.clone();
        self.play(&[why, &e], true);
        State::Entry {
            digits: String::new(),
            listen: Listen::Playing,
            cap,
        }
    }

    fn confirm(&mut self, number: String, cap: Capture) -> State {
        let p = &self.flow.prompts;
        let items = vec![
            PlayItem::Prompt(p.number_is.clone()),
            PlayItem::Digits(number.clone()),
            PlayItem::Prompt(p.confirm_number.clone()),
        ];
        self.push(Action::Play {
            items,
            barge_in: true,
        });
        State::Confirm {
            number,
            listen: Listen::Playing,
            cap,
        }
    }

    fn request(&mut self, now: Instant, number: String, cap: Capture) -> State {
        // Never booked for a time nobody may dial: as soon as possible, a chosen slot or the
        // opening hour, outside the customer's calling window it moves to the window's opening.
        let wall = self.wall(now);
        let window = self
            .flow
            .callable_from(&number, cap.not_before.unwrap_or(wall));
        if let Some(at) = window {
            let words = super::slots::describe(at, wall, &self.customer_zone(&number));
            self.log(Step::CallingWindow { at, words });
        }
        let not_before = window.or(cap.not_before);
        self.log(Step::CallbackRequested {
            number: number.clone(),
            not_before,
        });
        self.push(Action::RequestCallback {
            number: number.clone(),
            not_before,
        });
        State::AwaitStored {
            number,
            cap,
            window,
        }
    }

    /// The zone a time is read to the customer at `number` in: the number's own (the calling
    /// window's), else the window's fallback (the queue's).
    fn customer_zone(&self, number: &str) -> jiff::tz::TimeZone {
        super::window::customer_zones(number, &self.flow.callback.time_zone)
            .into_iter()
            .next()
            .unwrap_or_else(|| self.flow.callback.time_zone.clone())
    }

    /// Callback capture gives up: back to waiting (the place in line is kept), or, for a
    /// closed-hours caller, goodbye.
    fn abandon(&mut self, cap: &Capture) -> State {
        let invalid = self.flow.prompts.invalid_number.clone();
        self.abandon_saying(cap, &invalid)
    }

    /// Gives up the capture after `why` is played: the caller keeps waiting, or, for a
    /// callback booked while closed, hears goodbye.
    fn abandon_saying(&mut self, cap: &Capture, why: &str) -> State {
        self.log(Step::CallbackAbandoned);
        let inv = why.to_owned();
        if cap.not_before.is_some() {
            let g = self.flow.prompts.goodbye.clone();
            self.play(&[&inv, &g], false);
            return State::Notice {
                next: Next::Hangup(HangupReason::Closed),
            };
        }
        self.play(&[&inv], false);
        State::Notice { next: Next::Music }
    }
}

impl Step {
    /// The feed kind for this step (snake_case, stable: scripts filter on it).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::WorkflowEntered => "workflow_entered",
            Self::MenuOffered { .. } => "menu_offered",
            Self::KeyAccepted { .. } => "key_accepted",
            Self::KeyInvalid { .. } => "key_invalid",
            Self::NoInput => "no_input",
            Self::FallbackTaken { .. } => "fallback_taken",
            Self::PositionAnnounced { .. } => "position_announced",
            Self::MaxWaitReached { .. } => "max_wait_reached",
            Self::Closed { .. } => "closed_hours",
            Self::CallerIdUnusable { .. } => "caller_id_unusable",
            Self::NumberEntered { .. } => "number_entered",
            Self::NumberInvalid { .. } => "number_invalid",
            Self::CallbackRequested { .. } => "callback_number_confirmed",
            Self::CallbackStored => "callback_stored",
            Self::CallbackRefused(_) => "callback_refused",
            Self::CallbackAbandoned => "callback_abandoned",
            Self::SlotChosen { .. } => "callback_slot_chosen",
            Self::CallingWindow { .. } => "callback_calling_window",
            Self::CallbackNotOffered { .. } => "callback_not_offered",
            Self::TransferStarted { .. } => "transfer_started",
            Self::TransferFailed { .. } => "transfer_failed",
            Self::VoicemailStarted => "voicemail_started",
            Self::VoicemailRecorded => "voicemail_recorded",
            Self::CallerHungUp => "caller_hung_up",
        }
    }
}

impl Engine {
    /// Where the caller is in the workflow, for the feed when the call ends early
    /// ("hung up during callback number entry").
    pub fn step_name(&self) -> &'static str {
        match &self.state {
            State::Ringing => "ringing",
            State::Answered { .. } => "waiting to enter the workflow",
            State::Menu { .. } => "menu",
            State::Waiting => "waiting",
            State::Announcing => "position announcement",
            State::Closed { .. } => "closed-hours menu",
            State::When { .. } => "callback time choice",
            State::Slots { .. } => "callback time slots",
            State::CallbackMenu { .. } => "callback menu",
            State::ReadBack { .. } => "callback number read-back",
            State::Entry { .. } => "callback number entry",
            State::Confirm { .. } => "callback number confirmation",
            State::AwaitStored { .. } => "callback storing",
            State::Notice { .. } => "announcement",
            State::Transferring { .. } => "transfer",
            State::Recording { .. } => "voicemail recording",
            State::Done => "end of workflow",
        }
    }
}
