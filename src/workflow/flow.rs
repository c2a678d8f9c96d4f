//! Queue files (`config/queues/<name>.toml`) compiled into validated [`Flow`]s.
//!
//! PURE apart from [`load_dir`] reading the directory. A queue file is deserialized into raw
//! structs (`deny_unknown_fields`, every operator-written value `toml::Spanned`), then validated
//! as a whole: every problem becomes a [`Diagnostic`] with `file:line:column`, and [`compile`]
//! returns all of them at once so an operator fixes a file in one pass. The engine only ever sees
//! a valid [`Flow`]; it never re-checks prompt ids, keys or durations.
//!
//! Must not: read the prompt files themselves (prompt ids are checked against a
//! [`PromptCatalog`] the caller supplies), or know anything about SIP dialogs.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::hours::{self, BusinessHours};
use super::numbers::{self, NumberRules, NumberType};
use crate::config::values::parse_duration;
use crate::diag::Diagnostic;

/// The prompt ids the prompt library knows. Implemented by the prompt library (and by tests).
pub trait PromptCatalog {
    /// Does the library hold a prompt with this id?
    fn contains(&self, id: &str) -> bool;
}

impl PromptCatalog for std::collections::HashSet<String> {
    fn contains(&self, id: &str) -> bool {
        Self::contains(self, id)
    }
}

impl<const N: usize> PromptCatalog for [&str; N] {
    fn contains(&self, id: &str) -> bool {
        <[&str]>::contains(self, &id)
    }
}

/// The fixed prompts the engine plays by default (a queue's `[prompts]` table may swap them).
/// With [`DIGIT_PROMPTS`], every id the prompt library must hold.
pub const FIXED_PROMPTS: [&str; 32] = [
    "greeting",
    "menu",
    "callback_menu",
    "enter_number",
    "number_is",
    "confirm_number",
    "callback_confirmed",
    "callback_exists",
    "invalid_number",
    "invalid_choice",
    "no_input",
    "position_intro",
    "wait_intro",
    "minutes",
    "transferring",
    "voicemail_intro",
    "beep",
    "goodbye",
    "closed",
    "closed_callback",
    "max_wait",
    "hold_music",
    "callback_greeting",
    "callback_whisper",
    "requested_at",
    "agent_unreachable",
    "ringback",
    "callback_when",
    "slot_chosen",
    "menu_no_callback",
    "callback_confirm",
    "callback_machine_message",
];

/// The prompts every flow reads digits with (`Digits("+1555…")` is played with these).
pub const DIGIT_PROMPTS: [&str; 13] = [
    "digit_0",
    "digit_1",
    "digit_2",
    "digit_3",
    "digit_4",
    "digit_5",
    "digit_6",
    "digit_7",
    "digit_8",
    "digit_9",
    "digit_star",
    "digit_hash",
    "digit_plus",
];

/// The prompt id that reads one dialled character, or `None` for a character with no prompt.
pub fn digit_prompt(c: char) -> Option<&'static str> {
    Some(match c {
        '0'..='9' => DIGIT_PROMPTS[c as usize - '0' as usize],
        '*' => "digit_star",
        '#' => "digit_hash",
        '+' => "digit_plus",
        _ => return None,
    })
}

macro_rules! prompt_roles {
    ($($(#[$doc:meta])* $role:ident),* $(,)?) => {
        /// The prompt id for each fixed role of the workflow. A queue file may override any of
        /// them in its `[prompts]` table; each defaults to the prompt with the role's own name.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct Prompts { $($(#[$doc])* pub $role: String,)* }
        const PROMPT_ROLES: &[&str] = &[$(stringify!($role)),*];
        impl Prompts {
            fn build(mut pick: impl FnMut(&'static str) -> String) -> Self {
                Self { $($role: pick(stringify!($role)),)* }
            }
        }
    };
}

prompt_roles! {
    /// "Press 1 for the number you are calling from, 2 to enter another number then #".
    callback_menu,
    /// "Please enter your number followed by #".
    enter_number,
    /// "The number is" (followed by the digits).
    number_is,
    /// "Press 1 to confirm, 2 to re-enter".
    confirm_number,
    /// "Your callback is booked" (played only once the callback is durable).
    callback_confirmed,
    /// "A callback for this number already exists".
    callback_exists,
    /// "Sorry, we could not book your callback just now; please stay on the line" (the store
    /// could not take it: the caller is told so, never that the number was wrong).
    callback_unavailable,
    /// "That number cannot be used".
    invalid_number,
    /// "That is not a valid choice".
    invalid_choice,
    /// "We did not receive any input".
    no_input,
    /// "You are number" (followed by the position).
    position_intro,
    /// "Your estimated wait is" (followed by minutes).
    wait_intro,
    /// "minutes".
    minutes,
    /// "Transferring your call".
    transferring,
    /// "Leave a message after the tone".
    voicemail_intro,
    /// The tone before recording.
    beep,
    /// "Goodbye".
    goodbye,
    /// "We are closed".
    closed,
    /// "Press 1 to be called back when we open".
    closed_callback,
    /// Played before the `max_wait_action`.
    max_wait,
    /// A callback's first words to the customer who answers: "Hello, this is your callback
    /// from …, please hold while we connect you to an agent" (then hold music).
    callback_greeting,
    /// What the agent hears first on a callback: "Callback for …" (then the number).
    callback_whisper,
    /// "requested at" (then the time the customer asked for the callback).
    requested_at,
    /// To a customer who answered a callback that no agent could take, before the BYE.
    agent_unreachable,
    /// Looped for an agent who waits for the customer to answer.
    ringback,
    /// With `[callback.schedule]`: "Press 1 to be called back as soon as possible, or 2 to
    /// choose a time" (then "Press 1 for today at 3 PM …").
    callback_when,
    /// "We will call you back" (then the chosen slot, "today at 3 PM").
    slot_chosen,
    /// With `[callback] offer_when_wait_over`: the menu without its callback option, played
    /// while the estimated wait is under the threshold.
    menu_no_callback,
    /// With `[callback.answering_machine] confirm`: "Hello, this is your callback from …;
    /// press 1 to be connected to an agent".
    callback_confirm,
    /// Left on a customer's answering machine: "Hello, this is … returning your call; we will
    /// try again later".
    callback_machine_message,
}

/// A validated queue: everything the engine and the shell need to run one call of it.
#[derive(Debug, Clone)]
pub struct Flow {
    /// The queue name: the file stem (`support` for `support.toml`).
    pub name: String,
    /// The file it was compiled from.
    pub source: PathBuf,
    /// Request-URI users (or numbers) that route to this queue.
    pub numbers: Vec<String>,
    /// How long the shell sends 180 Ringing before answering.
    pub ring_before_answer: Duration,
    /// Time after answer before the call enters the workflow (and the interaction becomes bot).
    pub start_after: Duration,
    /// The menu is offered at workflow entry and then every `offer_every`.
    pub offer_every: Duration,
    /// After this long in the workflow, `max_wait_action` is taken. `None`: wait forever.
    pub max_wait: Option<Duration>,
    /// What happens at `max_wait` (never `Wait` or `Repeat`).
    pub max_wait_action: MenuAction,
    /// Played (looping) between offers.
    pub hold_music: String,
    /// Played once before the first menu.
    pub greeting: Option<String>,
    pub menu: Menu,
    pub callback: CallbackRules,
    pub announce: Announcements,
    pub hours: BusinessHours,
    /// Offer a callback for opening time to callers who call while closed.
    pub closed_callback: bool,
    /// Longest voicemail recording.
    pub voicemail_max: Duration,
    /// The service-level target (`service_level`, default 60 s): an interaction is handled
    /// within it when its caller or customer was bridged to an agent within this long of
    /// arriving. Reports and the wallboard count the share that was.
    pub service_level: Duration,
    /// Named transfer targets (SIP URIs).
    pub transfer_targets: BTreeMap<String, String>,
    pub prompts: Prompts,
}

/// The DTMF menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Menu {
    pub prompt: String,
    pub options: Vec<MenuOption>,
    /// How long to wait for a key after the menu prompt has finished.
    pub timeout: Duration,
    /// Invalid keys tolerated before the fallback (the N+1th invalid key takes it).
    pub max_invalid: u32,
    pub no_input: NoInput,
    /// With `NoInput::Repeat`: repetitions before the fallback.
    pub max_no_input: u32,
    /// Taken when the invalid or no-input tries run out.
    pub fallback: MenuAction,
}

/// One key of the menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuOption {
    pub key: char,
    pub action: MenuAction,
}

/// What the menu does when no key comes within `timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoInput {
    /// Back to hold music; the menu comes again at the next offer.
    Wait,
    /// Play `no_input` and the menu again (up to `max_no_input` times, then the fallback).
    Repeat,
}

/// An action a menu key (or max wait, or a fallback) takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MenuAction {
    /// Keep waiting: back to hold music.
    Wait,
    /// Capture a callback number.
    Callback,
    /// Transfer to this SIP URI (a named target is already resolved).
    Transfer { target: String },
    /// Record a message for the queue.
    Voicemail,
    /// Play `message`, then hang up.
    Hangup { message: String },
    /// Play the menu again.
    Repeat,
}

impl MenuAction {
    /// The action's name as written in queue files.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Wait => "wait",
            Self::Callback => "callback",
            Self::Transfer { .. } => "transfer",
            Self::Voicemail => "voicemail",
            Self::Hangup { .. } => "hangup",
            Self::Repeat => "repeat",
        }
    }
}

/// Callback capture rules and the dialer's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackRules {
    /// Offer "1 = the number you are calling from".
    pub confirm_caller_id: bool,
    /// Offer "2 = enter another number".
    pub allow_other_number: bool,
    pub numbers: NumberRules,
    /// Time for the first digit after the `enter_number` prompt.
    pub first_digit_timeout: Duration,
    /// Time between digits; when it passes with digits entered, entry finishes as with `#`.
    pub inter_digit_timeout: Duration,
    /// Tries at the callback menu, number entry and confirmation before returning to the queue.
    pub max_tries: u32,
    /// Callbacks per number per day (enforced by the store; refusal is `Refusal::Limit`).
    pub max_per_day: u32,
    /// Caller ID presented on the callback leg; `None`: the trunk's.
    pub caller_id: Option<String>,
    pub retry: RetryPolicy,
    /// How long the agent's leg of a callback may ring before the callback goes back to the
    /// queue (uncounted) and the agent is set away.
    pub agent_ring_timeout: Duration,
    /// When customers may be called, in their own time zone; `None`: at any hour.
    pub calling_window: Option<CallingWindow>,
    /// Offer the menu's callback key only while the estimated wait exceeds this (`max_wait`
    /// takes its action whatever the wait); `None`: always.
    pub offer_when_wait_over: Option<Duration>,
    /// `[callback.schedule]`: callers may choose a time; `None`: as soon as possible only.
    pub schedule: Option<super::slots::Schedule>,
    /// A callback still open this long after it was requested (or after its chosen time)
    /// closes `expired`; `None`: never.
    pub expiry: Option<Duration>,
    /// The zone for numbers the time-zone table cannot place: `[callback] time_zone`, else
    /// `[hours] time_zone`, else UTC.
    pub time_zone: jiff::tz::TimeZone,
    /// `[callback.answering_machine]`: screening the customer who answers a callback.
    pub machine: MachineRules,
}

/// `[callback.answering_machine]`: is it a person or a machine that answered a callback?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineRules {
    /// Listen to the first seconds of the customer's audio (`media::amd`): a machine gets
    /// `callback_machine_message` and the `machine` retry rule.
    pub detect: bool,
    /// Ask "press 1 to be connected to an agent" (`callback_confirm`) of whoever is not a
    /// machine; no key within `confirm_within` of the prompt's end is a machine.
    pub confirm: bool,
    /// See `confirm`.
    pub confirm_within: Duration,
    /// The longest a machine's greeting may go on (waiting for its beep or silence) before
    /// the message is left anyway.
    pub wait_for_beep: Duration,
}

impl Default for MachineRules {
    fn default() -> Self {
        Self {
            detect: false,
            confirm: false,
            confirm_within: Duration::from_secs(5),
            wait_for_beep: Duration::from_secs(20),
        }
    }
}

impl Flow {
    /// When an open callback of this queue expires (`[callback] expiry` after it was
    /// requested, or after its not-before when that is later: a chosen slot, a retry); `None`:
    /// never.
    pub fn callback_expires(
        &self,
        requested_at: jiff::Timestamp,
        not_before: Option<jiff::Timestamp>,
    ) -> Option<jiff::Timestamp> {
        let expiry = jiff::SignedDuration::try_from(self.callback.expiry?).ok()?;
        let from = not_before.map_or(requested_at, |t| t.max(requested_at));
        from.checked_add(expiry).ok()
    }

    /// When the customer at `number` may be called, at `at`: `None` now (no calling window, or
    /// inside it in the customer's time zone), else when the window next opens there.
    pub fn callable_from(&self, number: &str, at: jiff::Timestamp) -> Option<jiff::Timestamp> {
        let w = self.callback.calling_window?;
        let zones = super::window::customer_zones(number, &self.callback.time_zone);
        w.closed_until(&zones, at)
    }
}

/// A queue file's `agent_ring_timeout` when it has none.
pub const DEFAULT_AGENT_RING_TIMEOUT: Duration = Duration::from_secs(20);

pub use super::retry::{RetryPolicy, RetryRule};
pub use super::window::CallingWindow;

/// Position / estimated-wait announcements after each menu.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Announcements {
    pub position: bool,
    pub estimated_wait: bool,
}

impl Announcements {
    /// Does the queue announce anything (so the engine asks for `QueueStatus`)?
    pub fn any(&self) -> bool {
        self.position || self.estimated_wait
    }
}

// ---------------------------------------------------------------------------------------------
// Raw file structure.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQueue {
    numbers: Spanned<Vec<Spanned<String>>>,
    ring_before_answer: Option<Spanned<String>>,
    service_level: Option<Spanned<String>>,
    start_after: Option<Spanned<String>>,
    offer_every: Option<Spanned<String>>,
    max_wait: Option<Spanned<String>>,
    max_wait_action: Option<Spanned<RawAction>>,
    hold_music: Option<Spanned<String>>,
    greeting: Option<Spanned<String>>,
    menu: RawMenu,
    #[serde(default)]
    callback: RawCallback,
    #[serde(default)]
    announce: RawAnnounce,
    hours: Option<Spanned<RawHours>>,
    #[serde(default)]
    voicemail: RawVoicemail,
    #[serde(default)]
    transfer: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    prompts: BTreeMap<Spanned<String>, Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAction {
    action: Spanned<String>,
    target: Option<Spanned<String>>,
    message: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOption {
    key: Spanned<String>,
    action: Spanned<String>,
    target: Option<Spanned<String>>,
    message: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMenu {
    prompt: Option<Spanned<String>>,
    options: Spanned<Vec<Spanned<RawOption>>>,
    timeout: Option<Spanned<String>>,
    max_invalid: Option<Spanned<u32>>,
    no_input: Option<Spanned<String>>,
    max_no_input: Option<Spanned<u32>>,
    fallback: Option<Spanned<RawAction>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCallback {
    confirm_caller_id: Option<bool>,
    allow_other_number: Option<bool>,
    min_digits: Option<Spanned<usize>>,
    max_digits: Option<Spanned<usize>>,
    country_code: Option<Spanned<String>>,
    region: Option<Spanned<String>>,
    national_length: Option<Spanned<usize>>,
    international_prefix: Option<Spanned<String>>,
    international: Option<bool>,
    allowed_types: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    allowed_prefixes: Vec<Spanned<String>>,
    #[serde(default)]
    blocked_prefixes: Vec<Spanned<String>>,
    #[serde(default)]
    fictional_prefixes: Vec<Spanned<String>>,
    first_digit_timeout: Option<Spanned<String>>,
    inter_digit_timeout: Option<Spanned<String>>,
    max_tries: Option<Spanned<u32>>,
    max_per_day: Option<Spanned<u32>>,
    caller_id: Option<Spanned<String>>,
    agent_ring_timeout: Option<Spanned<String>>,
    calling_window: Option<Spanned<String>>,
    time_zone: Option<Spanned<String>>,
    expiry: Option<Spanned<String>>,
    offer_when_wait_over: Option<Spanned<String>>,
    schedule: Option<Spanned<RawSchedule>>,
    #[serde(default)]
    retry: RawRetry,
    #[serde(default)]
    answering_machine: RawMachine,
}

/// `[callback.answering_machine]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMachine {
    detect: Option<bool>,
    confirm: Option<bool>,
    confirm_within: Option<Spanned<String>>,
    wait_for_beep: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    max_attempts: Option<Spanned<u32>>,
    retry_interval: Option<Spanned<String>>,
    ring_timeout: Option<Spanned<String>>,
    busy: Option<RawRule>,
    no_answer: Option<RawRule>,
    failed: Option<RawRule>,
    machine: Option<RawRule>,
    trunk_outage: Option<RawOutage>,
}

/// `[callback.schedule]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    slots: Option<Spanned<u8>>,
    every: Option<Spanned<String>>,
    lead: Option<Spanned<String>>,
}

/// `busy = { delay = "5m", max_attempts = 5 }`: either key may be left out.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    delay: Option<Spanned<String>>,
    max_attempts: Option<Spanned<u32>>,
}

/// `trunk_outage = { delay = "2m" }`: an outage is never counted, so it has no cap.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutage {
    delay: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAnnounce {
    #[serde(default)]
    position: bool,
    #[serde(default)]
    estimated_wait: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHours {
    always_open: Option<Spanned<bool>>,
    time_zone: Option<Spanned<String>>,
    #[serde(default)]
    closed_callback: bool,
    mon: Option<Vec<Spanned<String>>>,
    tue: Option<Vec<Spanned<String>>>,
    wed: Option<Vec<Spanned<String>>>,
    thu: Option<Vec<Spanned<String>>>,
    fri: Option<Vec<Spanned<String>>>,
    sat: Option<Vec<Spanned<String>>>,
    sun: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawVoicemail {
    max_length: Option<Spanned<String>>,
}

// ---------------------------------------------------------------------------------------------
// Validation.

/// Collects diagnostics for one file.
struct Check<'a> {
    file: &'a Path,
    src: &'a str,
    catalog: &'a dyn PromptCatalog,
    diags: Vec<Diagnostic>,
}

impl Check<'_> {
    fn err(&mut self, span: Range<usize>, msg: impl Into<String>) {
        self.diags
            .push(Diagnostic::at_span(self.file, self.src, span, msg));
    }

    fn duration(&mut self, v: &Spanned<String>, what: &str) -> Duration {
        match parse_duration(v.get_ref()) {
            Ok(d) => d,
            Err(e) => {
                self.err(v.span(), format!("{what}: {e}"));
                Duration::ZERO
            }
        }
    }

    /// A duration that must be positive; `default` when absent.
    fn positive(&mut self, v: Option<&Spanned<String>>, what: &str, default: Duration) -> Duration {
        let Some(v) = v else { return default };
        let d = self.duration(v, what);
        if d.is_zero() && parse_duration(v.get_ref()).is_ok() {
            self.err(v.span(), format!("{what} must be longer than 0s"));
        }
        d
    }

    fn prompt(&mut self, v: &Spanned<String>) -> String {
        let id = v.get_ref().trim();
        if !self.catalog.contains(id) {
            self.err(
                v.span(),
                format!("unknown prompt id `{id}` (not in the prompt library)"),
            );
        }
        id.to_owned()
    }

    /// A prompt id with no place in the file (a default): reported at line 1.
    fn default_prompt(&mut self, id: &str, role: &str) -> String {
        if !self.catalog.contains(id) {
            self.diags.push(Diagnostic::whole_file(
                self.file,
                format!(
                    "prompt `{id}` (the default for {role}) is not in the prompt library; \
                     add it or set {role} to another prompt"
                ),
            ));
        }
        id.to_owned()
    }

    fn action(
        &mut self,
        action: &Spanned<String>,
        target: Option<&Spanned<String>>,
        message: Option<&Spanned<String>>,
        targets: &BTreeMap<String, String>,
    ) -> MenuAction {
        let kind = action.get_ref().as_str();
        if kind != "transfer"
            && let Some(t) = target
        {
            self.err(
                t.span(),
                format!("`target` only applies to transfer, not to {kind}"),
            );
        }
        if kind != "hangup"
            && let Some(m) = message
        {
            self.err(
                m.span(),
                format!("`message` only applies to hangup, not to {kind}"),
            );
        }
        match kind {
            "wait" => MenuAction::Wait,
            "callback" => MenuAction::Callback,
            "voicemail" => MenuAction::Voicemail,
            "repeat" => MenuAction::Repeat,
            "hangup" => MenuAction::Hangup {
                message: match message {
                    Some(m) => self.prompt(m),
                    None => self.default_prompt("goodbye", "a hangup action's `message`"),
                },
            },
            "transfer" => {
                let Some(t) = target else {
                    self.err(
                        action.span(),
                        "transfer needs `target`: a name from [transfer] or a sip: URI",
                    );
                    return MenuAction::Transfer {
                        target: String::new(),
                    };
                };
                let name = t.get_ref().trim();
                let uri = if let Some(uri) = targets.get(name) {
                    uri.clone()
                } else if is_sip_uri(name) {
                    name.to_owned()
                } else {
                    let known: Vec<&str> = targets.keys().map(String::as_str).collect();
                    self.err(
                        t.span(),
                        format!(
                            "transfer target `{name}` is neither a sip: URI nor a name in [transfer] \
                             (known: {})",
                            if known.is_empty() { "none".into() } else { known.join(", ") }
                        ),
                    );
                    String::new()
                };
                MenuAction::Transfer { target: uri }
            }
            other => {
                self.err(
                    action.span(),
                    format!(
                        "unknown action `{other}`; expected wait, callback, transfer, voicemail, \
                         hangup or repeat"
                    ),
                );
                MenuAction::Wait
            }
        }
    }

    fn raw_action(
        &mut self,
        a: &Spanned<RawAction>,
        targets: &BTreeMap<String, String>,
    ) -> MenuAction {
        let r = a.get_ref();
        self.action(&r.action, r.target.as_ref(), r.message.as_ref(), targets)
    }
}

/// `sip:` or `sips:` URI with a host part, no whitespace.
fn is_sip_uri(s: &str) -> bool {
    let rest = s.strip_prefix("sip:").or_else(|| s.strip_prefix("sips:"));
    let Some(rest) = rest else { return false };
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host = host.split([';', '?']).next().unwrap_or("");
    !host.is_empty()
        && !host.starts_with(':')
        && !s.chars().any(char::is_whitespace)
        && rest.split_once('@').is_none_or(|(u, _)| !u.is_empty())
}

/// The Request-URI user form used for routing: numbers (optionally `+`, with `-`/`.` visual
/// separators) compare by their digits; anything else compares exactly.
fn route_key(user: &str) -> String {
    let trimmed = user.trim();
    let body = trimmed.strip_prefix('+').unwrap_or(trimmed);
    let digits: String = body.chars().filter(|c| !matches!(c, '-' | '.')).collect();
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits
    } else {
        trimmed.to_owned()
    }
}

/// Compile one queue file. `path` names the file in diagnostics and gives the queue its name
/// (the file stem). Returns every problem found, each with `file:line:column`.
pub fn compile(
    path: &Path,
    src: &str,
    catalog: &dyn PromptCatalog,
) -> Result<Flow, Vec<Diagnostic>> {
    compile_spanned(path, src, catalog).map(|(f, _)| f)
}

/// [`compile`], also returning the span of each entry of `numbers` (for cross-file checks).
fn compile_spanned(
    path: &Path,
    src: &str,
    catalog: &dyn PromptCatalog,
) -> Result<(Flow, Vec<Range<usize>>), Vec<Diagnostic>> {
    let raw: RawQueue =
        toml::from_str(src).map_err(|e| vec![Diagnostic::from_toml(path, src, &e)])?;
    let mut c = Check {
        file: path,
        src,
        catalog,
        diags: Vec::new(),
    };

    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_owned();

    // numbers
    let mut numbers = Vec::new();
    let mut number_spans = Vec::new();
    let mut seen = HashMap::new();
    if raw.numbers.get_ref().is_empty() {
        c.err(
            raw.numbers.span(),
            "`numbers` is empty: list at least one Request-URI user, e.g. [\"support\"]",
        );
    }
    for n in raw.numbers.get_ref() {
        let v = n.get_ref().trim();
        if v.is_empty() || v.contains(['@', ':', ' ', ';']) {
            c.err(
                n.span(),
                format!(
                    "`{v}` is not a Request-URI user part (write `support`, not `sip:support@host`)"
                ),
            );
            continue;
        }
        if seen.insert(route_key(v), ()).is_some() {
            c.err(n.span(), format!("`{v}` is listed twice"));
            continue;
        }
        numbers.push(v.to_owned());
        number_spans.push(n.span());
    }

    // transfer targets first: actions refer to them.
    let mut targets = BTreeMap::new();
    for (k, v) in &raw.transfer {
        if is_sip_uri(v.get_ref().trim()) {
            targets.insert(k.clone(), v.get_ref().trim().to_owned());
        } else {
            c.err(
                v.span(),
                format!(
                    "transfer target `{k}` must be a sip: or sips: URI, found {:?}",
                    v.get_ref()
                ),
            );
            targets.insert(k.clone(), String::new());
        }
    }

    let ring_before_answer = raw
        .ring_before_answer
        .as_ref()
        .map_or(Duration::ZERO, |v| c.duration(v, "ring_before_answer"));
    let start_after = raw
        .start_after
        .as_ref()
        .map_or(Duration::ZERO, |v| c.duration(v, "start_after"));
    // Default: offer the menu once a minute.
    let offer_every = c.positive(
        raw.offer_every.as_ref(),
        "offer_every",
        Duration::from_secs(60),
    );
    let max_wait = raw
        .max_wait
        .as_ref()
        .map(|v| c.positive(Some(v), "max_wait", Duration::ZERO));
    let max_wait_action = match (&raw.max_wait, &raw.max_wait_action) {
        (_, Some(a)) => {
            let act = c.raw_action(a, &targets);
            if matches!(act, MenuAction::Wait | MenuAction::Repeat) {
                c.err(
                    a.get_ref().action.span(),
                    "max_wait_action must end the wait: callback, transfer, voicemail or hangup",
                );
            }
            if raw.max_wait.is_none() {
                c.err(
                    a.span(),
                    "max_wait_action without max_wait never happens; add max_wait = \"30m\"",
                );
            }
            act
        }
        (Some(mw), None) => {
            c.err(
                mw.span(),
                "max_wait needs max_wait_action, e.g. { action = \"callback\" }",
            );
            MenuAction::Wait
        }
        (None, None) => MenuAction::Wait,
    };
    let hold_music = match &raw.hold_music {
        Some(p) => c.prompt(p),
        None => c.default_prompt("hold_music", "hold_music"),
    };
    let greeting = raw.greeting.as_ref().map(|p| c.prompt(p));

    // menu
    let m = &raw.menu;
    let menu_prompt = match &m.prompt {
        Some(p) => c.prompt(p),
        None => c.default_prompt("menu", "menu.prompt"),
    };
    let mut options: Vec<MenuOption> = Vec::new();
    for o in m.options.get_ref() {
        let r = o.get_ref();
        let k = r.key.get_ref();
        let mut chars = k.chars();
        let key = match (chars.next(), chars.next()) {
            (Some(ch), None) if "0123456789*#ABCD".contains(ch) => ch,
            _ => {
                c.err(
                    r.key.span(),
                    format!("key {k:?} must be one DTMF key: 0-9, *, # or A-D"),
                );
                continue;
            }
        };
        if options.iter().any(|x| x.key == key) {
            c.err(
                r.key.span(),
                format!("key {key:?} is used twice in the menu"),
            );
            continue;
        }
        let action = c.action(&r.action, r.target.as_ref(), r.message.as_ref(), &targets);
        options.push(MenuOption { key, action });
    }
    if m.options.get_ref().is_empty() {
        c.err(m.options.span(), "the menu has no options");
    }
    let timeout = c.positive(m.timeout.as_ref(), "menu.timeout", Duration::from_secs(6));
    let no_input = match m
        .no_input
        .as_ref()
        .map(|v| (v.get_ref().as_str(), v.span()))
    {
        None | Some(("wait", _)) => NoInput::Wait,
        Some(("repeat", _)) => NoInput::Repeat,
        Some((other, span)) => {
            c.err(
                span,
                format!("menu.no_input is \"wait\" or \"repeat\", not {other:?}"),
            );
            NoInput::Wait
        }
    };
    let fallback = m.fallback.as_ref().map_or(MenuAction::Wait, |a| {
        let act = c.raw_action(a, &targets);
        if act == MenuAction::Repeat {
            c.err(
                a.get_ref().action.span(),
                "the fallback cannot be repeat (it would never end)",
            );
        }
        act
    });
    let menu = Menu {
        prompt: menu_prompt,
        options,
        timeout,
        max_invalid: m.max_invalid.as_ref().map_or(3, |v| *v.get_ref()),
        no_input,
        max_no_input: m.max_no_input.as_ref().map_or(2, |v| *v.get_ref()),
        fallback,
    };

    // callback
    let cb = &raw.callback;
    let digits_of = |c: &mut Check<'_>, v: &Spanned<String>, what: &str| -> String {
        let s = v.get_ref().trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            c.err(v.span(), format!("{what} must be digits only, found {s:?}"));
        }
        s.to_owned()
    };
    let min_digits = cb.min_digits.as_ref().map_or(10, |v| *v.get_ref());
    let max_digits = cb.max_digits.as_ref().map_or(15, |v| *v.get_ref());
    if let Some(v) = &cb.min_digits
        && min_digits == 0
    {
        c.err(v.span(), "min_digits must be at least 1");
    }
    if min_digits > max_digits {
        let span = cb
            .min_digits
            .as_ref()
            .or(cb.max_digits.as_ref())
            .map_or(0..0, Spanned::span);
        c.err(
            span,
            format!("min_digits ({min_digits}) is more than max_digits ({max_digits})"),
        );
    }
    if max_digits > 20 {
        let span = cb.max_digits.as_ref().map_or(0..0, Spanned::span);
        c.err(
            span,
            "max_digits above 20 is not a phone number (E.164 allows 15 plus a prefix)",
        );
    }
    let country_code = cb
        .country_code
        .as_ref()
        .map_or_else(|| "1".to_owned(), |v| digits_of(&mut c, v, "country_code"));
    let national_length = cb.national_length.as_ref().map_or(10, |v| *v.get_ref());
    if national_length == 0 || national_length > max_digits {
        let span = cb
            .national_length
            .as_ref()
            .or(cb.max_digits.as_ref())
            .map_or(0..0, Spanned::span);
        c.err(span, format!("national_length ({national_length}) must be between 1 and max_digits ({max_digits})"));
    }
    let international_prefix = match &cb.international_prefix {
        Some(v) if v.get_ref().is_empty() => String::new(),
        Some(v) => digits_of(&mut c, v, "international_prefix"),
        None => "011".to_owned(),
    };
    // Prefixes may use `x` for any digit (`1xxx976`: the 976 exchange of any area code).
    let prefixes = |c: &mut Check<'_>, list: &[Spanned<String>], what: &str| -> Vec<String> {
        list.iter()
            .map(|p| {
                let s = p.get_ref().trim();
                if s.is_empty()
                    || !s
                        .bytes()
                        .all(|b| b.is_ascii_digit() || b == b'x' || b == b'X')
                {
                    c.err(
                        p.span(),
                        format!("{what} must be digits, or x for any digit, found {s:?}"),
                    );
                }
                s.to_ascii_lowercase()
            })
            .collect()
    };
    let allowed_prefixes = prefixes(&mut c, &cb.allowed_prefixes, "an allowed prefix");
    let blocked_prefixes = prefixes(&mut c, &cb.blocked_prefixes, "a blocked prefix");
    let fictional_prefixes = prefixes(&mut c, &cb.fictional_prefixes, "a fictional prefix");
    // The region: given, or the main one of the country code (1 → US, 44 → GB).
    let region = match &cb.region {
        Some(v) => {
            let r = v.get_ref().trim().to_ascii_uppercase();
            match numbers::region_code(&r) {
                None => c.err(
                    v.span(),
                    format!(
                        "unknown region {:?}: expected an ISO 3166 code such as \"US\"",
                        v.get_ref()
                    ),
                ),
                Some(code) if code.to_string() != country_code => c.err(
                    v.span(),
                    format!("region {r} has country code {code}, not {country_code}"),
                ),
                Some(_) => {}
            }
            r
        }
        None => numbers::main_region(&country_code).unwrap_or_else(|| {
            // A country_code that is not digits has its own error already.
            if country_code.bytes().all(|b| b.is_ascii_digit()) {
                let span = cb.country_code.as_ref().map_or(0..0, Spanned::span);
                c.err(
                    span,
                    format!("country_code {country_code} belongs to no region; set `region`"),
                );
            }
            String::new()
        }),
    };
    let allowed_types = match &cb.allowed_types {
        None => NumberType::DEFAULT_ALLOWED.to_vec(),
        Some(list) => list
            .iter()
            .filter_map(|t| {
                let kind = NumberType::parse(t.get_ref().trim());
                if kind.is_none() {
                    let names: Vec<&str> = NumberType::ALL.iter().map(|k| k.as_str()).collect();
                    c.err(
                        t.span(),
                        format!(
                            "unknown number type {:?}: expected one of {}",
                            t.get_ref(),
                            names.join(", ")
                        ),
                    );
                }
                kind
            })
            .collect(),
    };
    for p in &cb.allowed_prefixes {
        if blocked_prefixes.iter().any(|b| b == p.get_ref().trim()) {
            c.err(
                p.span(),
                format!("prefix {:?} is both allowed and blocked", p.get_ref()),
            );
        }
    }
    let confirm_caller_id = cb.confirm_caller_id.unwrap_or(true);
    let allow_other_number = cb.allow_other_number.unwrap_or(true);
    let uses_callback = menu
        .options
        .iter()
        .any(|o| o.action == MenuAction::Callback)
        || max_wait_action == MenuAction::Callback
        || menu.fallback == MenuAction::Callback;
    let closed_callback = raw
        .hours
        .as_ref()
        .is_some_and(|h| h.get_ref().closed_callback);
    if (uses_callback || closed_callback) && !confirm_caller_id && !allow_other_number {
        c.err(
            raw.menu.options.span(),
            "callbacks are offered but [callback] allows neither the caller ID nor another number",
        );
    }
    let caller_id = cb.caller_id.as_ref().map(|v| {
        let s = v.get_ref().trim();
        let body = s.strip_prefix('+').unwrap_or(s);
        if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
            c.err(
                v.span(),
                format!("caller_id must be digits, optionally with a leading +, found {s:?}"),
            );
        }
        s.to_owned()
    });
    let defaults = RetryPolicy::default();
    let max_attempts = cb
        .retry
        .max_attempts
        .as_ref()
        .map_or(defaults.max_attempts, |v| *v.get_ref());
    if let Some(v) = &cb.retry.max_attempts
        && max_attempts == 0
    {
        c.err(v.span(), "retry.max_attempts must be at least 1");
    }
    let calling_window =
        cb.calling_window
            .as_ref()
            .and_then(|v| match hours::parse_range(v.get_ref()) {
                Ok(daily) => Some(CallingWindow { daily }),
                Err(e) => {
                    c.err(v.span(), format!("calling_window: {e}"));
                    None
                }
            });
    let hours_zone = raw
        .hours
        .as_ref()
        .and_then(|h| h.get_ref().time_zone.as_ref())
        .and_then(|z| jiff::tz::TimeZone::get(z.get_ref().trim()).ok());
    let time_zone = match &cb.time_zone {
        Some(z) => jiff::tz::TimeZone::get(z.get_ref().trim()).unwrap_or_else(|_| {
            c.err(
                z.span(),
                format!(
                    "unknown time zone {:?} (use an IANA name like \"America/New_York\")",
                    z.get_ref()
                ),
            );
            jiff::tz::TimeZone::UTC
        }),
        None => hours_zone.unwrap_or(jiff::tz::TimeZone::UTC),
    };
    let schedule = cb.schedule.as_ref().map(|s| compile_schedule(&mut c, s));
    let expiry = cb
        .expiry
        .as_ref()
        .map(|v| c.positive(Some(v), "expiry", Duration::ZERO));
    let offer_when_wait_over = cb
        .offer_when_wait_over
        .as_ref()
        .map(|v| c.positive(Some(v), "offer_when_wait_over", Duration::ZERO));
    let machine = {
        let m = &cb.answering_machine;
        let d = MachineRules::default();
        MachineRules {
            detect: m.detect.unwrap_or(d.detect),
            confirm: m.confirm.unwrap_or(d.confirm),
            confirm_within: c.positive(
                m.confirm_within.as_ref(),
                "answering_machine.confirm_within",
                d.confirm_within,
            ),
            wait_for_beep: c.positive(
                m.wait_for_beep.as_ref(),
                "answering_machine.wait_for_beep",
                d.wait_for_beep,
            ),
        }
    };
    let callback = CallbackRules {
        machine,
        offer_when_wait_over,
        schedule,
        expiry,
        calling_window,
        time_zone,
        confirm_caller_id,
        allow_other_number,
        numbers: NumberRules {
            min_digits,
            max_digits,
            country_code,
            region,
            national_length,
            international_prefix,
            international: cb.international.unwrap_or(false),
            allowed_types,
            allowed_prefixes,
            blocked_prefixes,
            fictional_prefixes,
        },
        first_digit_timeout: c.positive(
            cb.first_digit_timeout.as_ref(),
            "first_digit_timeout",
            Duration::from_secs(10),
        ),
        inter_digit_timeout: c.positive(
            cb.inter_digit_timeout.as_ref(),
            "inter_digit_timeout",
            Duration::from_secs(5),
        ),
        max_tries: cb.max_tries.as_ref().map_or(3, |v| (*v.get_ref()).max(1)),
        max_per_day: cb.max_per_day.as_ref().map_or(3, |v| *v.get_ref()),
        caller_id,
        retry: compile_retry(&mut c, &cb.retry, max_attempts),
        agent_ring_timeout: c.positive(
            cb.agent_ring_timeout.as_ref(),
            "agent_ring_timeout",
            DEFAULT_AGENT_RING_TIMEOUT,
        ),
    };

    let hours = match &raw.hours {
        None => BusinessHours::AlwaysOpen,
        Some(h) => compile_hours(&mut c, h),
    };

    let voicemail_max = c.positive(
        raw.voicemail.max_length.as_ref(),
        "voicemail.max_length",
        Duration::from_secs(120),
    );
    let service_level = c.positive(
        raw.service_level.as_ref(),
        "service_level",
        Duration::from_secs(60),
    );

    // [prompts]: overrides of the fixed roles.
    let mut overrides: HashMap<&str, &Spanned<String>> = HashMap::new();
    for (k, v) in &raw.prompts {
        if PROMPT_ROLES.contains(&k.get_ref().as_str()) {
            overrides.insert(k.get_ref().as_str(), v);
        } else {
            c.err(
                k.span(),
                format!(
                    "unknown prompt role `{}`; roles: {}",
                    k.get_ref(),
                    PROMPT_ROLES.join(", ")
                ),
            );
        }
    }
    let prompts = Prompts::build(|role| match overrides.get(role) {
        Some(v) => c.prompt(v),
        None => c.default_prompt(role, &format!("prompts.{role}")),
    });
    for d in DIGIT_PROMPTS {
        c.default_prompt(d, "reading digits");
    }
    if callback.schedule.is_some() {
        for p in super::slots::TIME_PROMPTS {
            c.default_prompt(p, "reading a callback time");
        }
    }

    if !c.diags.is_empty() {
        c.diags.sort_by_key(|d| (d.line, d.column));
        return Err(c.diags);
    }
    Ok((
        Flow {
            name,
            source: path.to_owned(),
            numbers,
            ring_before_answer,
            start_after,
            offer_every,
            max_wait,
            max_wait_action,
            hold_music,
            greeting,
            menu,
            callback,
            announce: Announcements {
                position: raw.announce.position,
                estimated_wait: raw.announce.estimated_wait,
            },
            hours,
            closed_callback,
            voicemail_max,
            service_level,
            transfer_targets: targets,
            prompts,
        },
        number_spans,
    ))
}

/// `[callback.schedule]`: 1-9 slots (one key each), whole hours apart, after a lead time.
fn compile_schedule(c: &mut Check<'_>, s: &Spanned<RawSchedule>) -> super::slots::Schedule {
    let r = s.get_ref();
    let slots = match &r.slots {
        Some(v) if !(1..=9).contains(v.get_ref()) => {
            c.err(v.span(), "schedule.slots must be 1 to 9 (one key each)");
            3
        }
        Some(v) => *v.get_ref(),
        None => 3,
    };
    let every = c.positive(
        r.every.as_ref(),
        "schedule.every",
        Duration::from_secs(3600),
    );
    let every_hours =
        if every.as_secs().is_multiple_of(3600) && (1..=12).contains(&(every.as_secs() / 3600)) {
            u8::try_from(every.as_secs() / 3600).unwrap_or(1)
        } else {
            if let Some(v) = &r.every {
                c.err(v.span(), "schedule.every must be whole hours, 1h to 12h");
            }
            1
        };
    let lead = match &r.lead {
        Some(v) => c.duration(v, "schedule.lead"),
        None => Duration::from_secs(3600),
    };
    super::slots::Schedule {
        slots,
        every_hours,
        lead,
    }
}

/// `[callback.retry]`: the defaults, then each outcome's own delay and cap.
fn compile_retry(c: &mut Check<'_>, r: &RawRetry, max_attempts: u32) -> RetryPolicy {
    let defaults = RetryPolicy::default();
    let mut p = RetryPolicy::uniform(
        max_attempts,
        c.positive(
            r.retry_interval.as_ref(),
            "retry.retry_interval",
            defaults.retry_interval,
        ),
        c.positive(
            r.ring_timeout.as_ref(),
            "retry.ring_timeout",
            defaults.ring_timeout,
        ),
    );
    let base = p.busy;
    for (name, raw, rule) in [
        ("busy", &r.busy, &mut p.busy),
        ("no_answer", &r.no_answer, &mut p.no_answer),
        ("failed", &r.failed, &mut p.failed),
        ("machine", &r.machine, &mut p.machine),
    ] {
        let Some(raw) = raw else { continue };
        *rule = RetryRule {
            delay: c.positive(
                raw.delay.as_ref(),
                &format!("retry.{name}.delay"),
                base.delay,
            ),
            max_attempts: match &raw.max_attempts {
                Some(v) if *v.get_ref() == 0 => {
                    c.err(
                        v.span(),
                        format!("retry.{name}.max_attempts must be at least 1"),
                    );
                    1
                }
                Some(v) => *v.get_ref(),
                None => base.max_attempts,
            },
        };
    }
    if let Some(o) = &r.trunk_outage {
        p.outage_delay = c.positive(o.delay.as_ref(), "retry.trunk_outage.delay", base.delay);
    }
    p
}

fn compile_hours(c: &mut Check<'_>, h: &Spanned<RawHours>) -> BusinessHours {
    let r = h.get_ref();
    let days = [&r.mon, &r.tue, &r.wed, &r.thu, &r.fri, &r.sat, &r.sun];
    let any_days = days.iter().any(|d| d.is_some());
    let always = r.always_open.as_ref().is_some_and(|v| *v.get_ref());
    if always {
        if any_days || r.time_zone.is_some() {
            c.err(
                h.span(),
                "always_open = true cannot be combined with time_zone or weekly ranges",
            );
        }
        if r.closed_callback {
            c.err(
                h.span(),
                "closed_callback has no effect when always_open = true",
            );
        }
        return BusinessHours::AlwaysOpen;
    }
    let Some(tz_name) = &r.time_zone else {
        c.err(h.span(), "[hours] needs time_zone (e.g. \"America/New_York\") and weekly ranges, or always_open = true");
        return BusinessHours::AlwaysOpen;
    };
    let tz = match jiff::tz::TimeZone::get(tz_name.get_ref().trim()) {
        Ok(tz) => tz,
        Err(_) => {
            c.err(
                tz_name.span(),
                format!(
                    "unknown time zone {:?} (use an IANA name like \"Europe/Paris\")",
                    tz_name.get_ref()
                ),
            );
            return BusinessHours::AlwaysOpen;
        }
    };
    if !any_days {
        c.err(h.span(), "[hours] lists no opening ranges (mon = [\"09:00-17:00\"], …); the queue would never open");
    }
    let mut out: [Vec<hours::Range>; 7] = Default::default();
    for (i, d) in days.iter().enumerate() {
        let Some(list) = d else { continue };
        for s in list {
            match hours::parse_range(s.get_ref()) {
                Ok(range) => {
                    if out[i]
                        .iter()
                        .any(|x| x.start < range.end && range.start < x.end)
                    {
                        c.err(
                            s.span(),
                            format!(
                                "range {:?} overlaps another range of the same day",
                                s.get_ref()
                            ),
                        );
                    }
                    out[i].push(range);
                }
                Err(e) => c.err(s.span(), e),
            }
        }
        out[i].sort_by_key(|r| r.start);
    }
    BusinessHours::Weekly { tz, days: out }
}

// ---------------------------------------------------------------------------------------------
// The set of queues.

/// Every queue of the queue directory, routable by Request-URI user. Immutable: hot reload
/// builds a new set and swaps it, and calls keep the `Arc<Flow>` they started with.
#[derive(Debug, Clone, Default)]
pub struct QueueSet {
    flows: BTreeMap<String, Arc<Flow>>,
    routes: HashMap<String, String>,
}

impl QueueSet {
    /// A set of already compiled flows. Later flows lose a number an earlier one routes.
    pub fn new(flows: impl IntoIterator<Item = Flow>) -> Self {
        let mut set = Self::default();
        for f in flows {
            set.insert(f);
        }
        set
    }

    fn insert(&mut self, f: Flow) {
        for n in &f.numbers {
            self.routes
                .entry(route_key(n))
                .or_insert_with(|| f.name.clone());
        }
        self.flows.insert(f.name.clone(), Arc::new(f));
    }

    /// The queue an INVITE's Request-URI user routes to: `support`, or a number such as
    /// `+15550200` / `15550200` (compared by digits). Call once per incoming INVITE.
    pub fn route(&self, user: &str) -> Option<Arc<Flow>> {
        self.routes
            .get(&route_key(user))
            .and_then(|name| self.get(name))
    }

    /// The queue named `name` (its file stem).
    pub fn get(&self, name: &str) -> Option<Arc<Flow>> {
        self.flows.get(name).cloned()
    }

    /// How the callback dialer retries for queue `name` (the defaults for a queue no longer
    /// configured).
    pub fn retry(&self, name: &str) -> RetryPolicy {
        self.flows
            .get(name)
            .map_or_else(RetryPolicy::default, |f| f.callback.retry)
    }

    /// All queues, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Flow>> {
        self.flows.values()
    }

    /// How many queues.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// No queues at all.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }
}

/// Compile every `*.toml` in `dir`. Returns the queues that compiled and every diagnostic
/// (including a number routed by two files, reported at the second). Hot reload applies the set
/// only when the diagnostics are empty; `check-config` prints them and fails.
pub fn load_dir(dir: &Path, catalog: &dyn PromptCatalog) -> (QueueSet, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file())
            .collect(),
        Err(e) => {
            diags.push(Diagnostic::whole_file(
                dir,
                format!("cannot read the queue directory: {e}"),
            ));
            return (QueueSet::default(), diags);
        }
    };
    paths.sort();
    let mut set = QueueSet::default();
    let mut owner: HashMap<String, String> = HashMap::new();
    for path in paths {
        let src = match std::fs::read_to_string(&path) {
            Ok(s) => s,
            Err(e) => {
                diags.push(Diagnostic::whole_file(&path, format!("cannot read: {e}")));
                continue;
            }
        };
        match compile_spanned(&path, &src, catalog) {
            Ok((flow, spans)) => {
                let mut clash = false;
                for (n, span) in flow.numbers.iter().zip(spans) {
                    if let Some(other) = owner.get(&route_key(n)) {
                        diags.push(Diagnostic::at_span(
                            &path,
                            &src,
                            span,
                            format!("`{n}` already routes to queue `{other}`"),
                        ));
                        clash = true;
                    }
                }
                if !clash {
                    for n in &flow.numbers {
                        owner.insert(route_key(n), flow.name.clone());
                    }
                    set.insert(flow);
                }
            }
            Err(mut d) => diags.append(&mut d),
        }
    }
    (set, diags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::test_support::{CATALOG, support_flow};

    fn errors(src: &str) -> Vec<String> {
        match compile(Path::new("q.toml"), src, &*CATALOG) {
            Ok(_) => vec![],
            Err(d) => d.iter().map(ToString::to_string).collect(),
        }
    }

    const MINIMAL: &str = r#"
numbers = ["sales"]
offer_every = "30s"
[menu]
options = [{ key = "1", action = "callback" }]
"#;

    #[test]
    fn the_shipped_support_queue_matches_the_design() {
        let f = support_flow();
        assert_eq!(f.name, "support");
        assert_eq!(f.numbers, ["support"]);
        assert_eq!(f.ring_before_answer, Duration::from_secs(1));
        assert_eq!(f.start_after, Duration::ZERO);
        assert_eq!(f.offer_every, Duration::from_secs(60));
        assert!(matches!(f.hours, BusinessHours::AlwaysOpen));
        let keys: Vec<(char, &str)> = f
            .menu
            .options
            .iter()
            .map(|o| (o.key, o.action.kind()))
            .collect();
        assert_eq!(keys, [('1', "callback"), ('2', "wait"), ('0', "transfer")]);
        assert_eq!(
            f.menu.options[2].action,
            MenuAction::Transfer {
                target: "sip:operator@127.0.0.1:5080".into()
            }
        );
        assert!(f.callback.confirm_caller_id && f.callback.allow_other_number);
        assert_eq!(f.callback.numbers.check_entered("15551234567"), Ok(()));
    }

    /// Issue 21: `[callback.retry]` takes a delay and a cap per outcome, each defaulting to
    /// `retry_interval` / `max_attempts`; a zero cap or a bare number is an error in place.
    #[test]
    fn retry_rules_by_outcome_compile_with_defaults_and_errors() {
        let f = support_flow();
        let r = f.callback.retry;
        assert_eq!(
            r.busy,
            RetryRule {
                max_attempts: 4,
                delay: Duration::from_secs(300)
            }
        );
        assert_eq!(
            r.no_answer,
            RetryRule {
                max_attempts: 3,
                delay: Duration::from_secs(900)
            }
        );
        assert_eq!(r.machine.max_attempts, 2);
        assert_eq!(r.outage_delay, Duration::from_secs(120));
        let m = compile(Path::new("q.toml"), MINIMAL, &*CATALOG).unwrap();
        assert_eq!(m.callback.retry, RetryPolicy::default());
        let src = format!(
            "{MINIMAL}[callback.retry]\nmax_attempts = 4\nbusy = {{ max_attempts = 0 }}\nmachine = {{ delay = \"5\" }}\nfailed = {{ delay = \"1m\" }}\n"
        );
        let e = errors(&src);
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].contains(":8:") && e[0].contains("retry.busy.max_attempts must be at least 1"),
            "{e:?}"
        );
        assert!(
            e[1].contains(":9:") && e[1].contains("retry.machine.delay"),
            "{e:?}"
        );
        let src =
            format!("{MINIMAL}[callback.retry]\nmax_attempts = 4\nfailed = {{ delay = \"1m\" }}\n");
        let f = compile(Path::new("q.toml"), &src, &*CATALOG).unwrap();
        assert_eq!(
            f.callback.retry.failed,
            RetryRule {
                max_attempts: 4,
                delay: Duration::from_secs(60)
            }
        );
        assert_eq!(f.callback.retry.busy.delay, Duration::from_secs(600));
    }

    /// Issue 21: `calling_window` and its fallback `time_zone` (else the hours' zone, else
    /// UTC), checked in place.
    #[test]
    fn calling_window_compiles_with_its_fallback_zone() {
        let m = compile(Path::new("q.toml"), MINIMAL, &*CATALOG).unwrap();
        assert_eq!(m.callback.calling_window, None);
        assert_eq!(m.callback.time_zone, jiff::tz::TimeZone::UTC);
        assert_eq!(
            m.callable_from("+15551234567", "2026-03-02T03:00:00Z".parse().unwrap()),
            None
        );
        let src = format!(
            "{MINIMAL}[callback]\ncalling_window = \"09:00-20:00\"\ntime_zone = \"Europe/Paris\"\n"
        );
        let f = compile(Path::new("q.toml"), &src, &*CATALOG).unwrap();
        assert_eq!(f.callback.calling_window.unwrap().daily.start, 9 * 60);
        // A fictional number (no zone of its own) at 03:00Z = 04:00 Paris: from 09:00 Paris.
        assert_eq!(
            f.callable_from("+15551234567", "2026-03-02T03:00:00Z".parse().unwrap()),
            Some("2026-03-02T08:00:00Z".parse().unwrap())
        );
        // A New York number at the same instant (22:00 there): 09:00 New York.
        assert_eq!(
            f.callable_from("+12125550123", "2026-03-02T03:00:00Z".parse().unwrap()),
            Some("2026-03-02T14:00:00Z".parse().unwrap())
        );
        let src = format!(
            "{MINIMAL}[callback]\ncalling_window = \"20:00-09:00\"\ntime_zone = \"Mars/Olympus\"\n"
        );
        let e = errors(&src);
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].contains(":7:") && e[0].contains("calling_window"),
            "{e:?}"
        );
        assert!(
            e[1].contains(":8:") && e[1].contains("unknown time zone"),
            "{e:?}"
        );
    }

    /// The keys a table of the queue file takes, as the code knows them: a key it does not
    /// take is refused with the list of those it does (serde's `deny_unknown_fields`).
    fn keys_taken(src: &str) -> Vec<String> {
        let e = errors(src);
        let msg = e
            .iter()
            .find(|m| m.contains("zz_unknown"))
            .unwrap_or_else(|| panic!("no unknown-key error for {src}: {e:?}"));
        let list = msg.split_once("expected").map_or("", |(_, l)| l).to_owned();
        list.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    }

    /// Every table of a queue file, with a source that puts an unknown key in it, and the
    /// prefix its keys have in `docs/queues.md`.
    fn tables() -> Vec<(&'static str, String)> {
        let menu = "[menu]\noptions = [{ key = \"1\", action = \"callback\" }]\n";
        vec![
            ("", format!("zz_unknown = 1\nnumbers = [\"q\"]\n{menu}")),
            ("menu.", "numbers = [\"q\"]\n[menu]\nzz_unknown = 1\noptions = []\n".into()),
            ("menu.options[].", "numbers = [\"q\"]\n[menu]\noptions = [{ key = \"1\", action = \"callback\", zz_unknown = 1 }]\n".into()),
            ("max_wait_action.", format!("numbers = [\"q\"]\nmax_wait_action = {{ action = \"callback\", zz_unknown = 1 }}\n{menu}")),
            ("callback.", format!("numbers = [\"q\"]\n{menu}[callback]\nzz_unknown = 1\n")),
            ("callback.retry.", format!("numbers = [\"q\"]\n{menu}[callback.retry]\nzz_unknown = 1\n")),
            ("callback.retry.<outcome>.", format!("numbers = [\"q\"]\n{menu}[callback.retry]\nbusy = {{ zz_unknown = 1 }}\n")),
            ("callback.retry.trunk_outage.", format!("numbers = [\"q\"]\n{menu}[callback.retry]\ntrunk_outage = {{ zz_unknown = 1 }}\n")),
            ("callback.schedule.", format!("numbers = [\"q\"]\n{menu}[callback.schedule]\nzz_unknown = 1\n")),
            ("callback.answering_machine.", format!("numbers = [\"q\"]\n{menu}[callback.answering_machine]\nzz_unknown = 1\n")),
            ("announce.", format!("numbers = [\"q\"]\n{menu}[announce]\nzz_unknown = 1\n")),
            ("hours.", format!("numbers = [\"q\"]\n{menu}[hours]\nzz_unknown = 1\n")),
            ("voicemail.", format!("numbers = [\"q\"]\n{menu}[voicemail]\nzz_unknown = 1\n")),
        ]
    }

    /// Issue 21: `docs/queues.md` cannot drift from the code: every key each table takes has
    /// a row (`| \`callback.retry.busy\` |`), every row names a key the code takes, every prompt
    /// role is listed, and the complete example compiles.
    #[test]
    fn docs_queues_md_lists_every_key() {
        let docs = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/queues.md"));
        let mut known = std::collections::HashSet::new();
        for (prefix, src) in tables() {
            for key in keys_taken(&src) {
                let row = format!("| `{prefix}{key}` |");
                assert!(docs.contains(&row), "docs/queues.md lacks the row {row}");
                known.insert(format!("{prefix}{key}"));
            }
        }
        for role in PROMPT_ROLES {
            let key = format!("prompts.{role}");
            assert!(
                docs.contains(&format!("| `{key}` |")),
                "docs/queues.md lacks {key}"
            );
            known.insert(key);
        }
        // Every documented key is one the code takes.
        for line in docs.lines().filter(|l| l.starts_with("| `")) {
            let key = line.split('`').nth(1).unwrap_or_default();
            assert!(
                known.contains(key),
                "docs/queues.md documents {key}, which no table takes"
            );
        }
        let example = docs
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("a complete example");
        let f = compile(Path::new("sales.toml"), example, &*CATALOG)
            .unwrap_or_else(|e| panic!("the example does not compile: {e:?}"));
        assert!(f.callback.schedule.is_some() && f.callback.calling_window.is_some());
    }

    /// Issue 21: a callback expires `expiry` after its request, or after a later not-before.
    #[test]
    fn a_callback_expires_after_its_request_or_its_later_slot() {
        let f = support_flow();
        let t = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        assert_eq!(
            f.callback_expires(t("2026-03-01T10:00:00Z"), None),
            Some(t("2026-03-08T10:00:00Z"))
        );
        assert_eq!(
            f.callback_expires(t("2026-03-01T10:00:00Z"), Some(t("2026-03-02T15:00:00Z"))),
            Some(t("2026-03-09T15:00:00Z"))
        );
        let m = compile(Path::new("q.toml"), MINIMAL, &*CATALOG).unwrap();
        assert_eq!(m.callback_expires(t("2026-03-01T10:00:00Z"), None), None);
    }

    /// Issue 21 item 5: `[callback.answering_machine]` is off unless asked for, and its
    /// durations are checked; the Settings of a callback dial follow it.
    #[test]
    fn answering_machine_compiles_with_defaults_and_checks() {
        let m = compile(Path::new("q.toml"), MINIMAL, &*CATALOG).unwrap();
        assert_eq!(m.callback.machine, MachineRules::default());
        assert!(
            !crate::call::callback::Settings::for_number(Some(&m), "15551234567")
                .screening
                .active()
        );
        let src = format!(
            "{MINIMAL}[callback.answering_machine]\ndetect = true\nconfirm = true\nconfirm_within = \"8s\"\n"
        );
        let f = compile(Path::new("q.toml"), &src, &*CATALOG).unwrap();
        let r = f.callback.machine;
        assert_eq!(
            (r.detect, r.confirm, r.confirm_within, r.wait_for_beep),
            (true, true, Duration::from_secs(8), Duration::from_secs(20))
        );
        let s = crate::call::callback::Settings::for_number(Some(&f), "15551234567").screening;
        assert_eq!(s.detect, Some(crate::media::amd::AmdConfig::default()));
        assert_eq!(s.confirm_within, Some(Duration::from_secs(8)));
        assert_eq!(
            (s.confirm.as_str(), s.machine_message.as_str()),
            ("callback_confirm", "callback_machine_message")
        );
        let src = format!("{MINIMAL}[callback.answering_machine]\nwait_for_beep = \"0s\"\n");
        let e = errors(&src);
        assert!(
            e.len() == 1 && e[0].contains("answering_machine.wait_for_beep"),
            "{e:?}"
        );
    }

    /// Issue 21: `[callback.schedule]` (slots 1-9, whole hours, a lead) and `expiry`.
    #[test]
    fn schedule_and_expiry_compile_with_checks() {
        let m = compile(Path::new("q.toml"), MINIMAL, &*CATALOG).unwrap();
        assert_eq!((m.callback.schedule, m.callback.expiry), (None, None));
        assert_eq!(
            support_flow().callback.expiry,
            Some(Duration::from_secs(7 * 86400))
        );
        let src = format!(
            "{MINIMAL}[callback]\nexpiry = \"2d\"\n[callback.schedule]\nslots = 4\nevery = \"2h\"\n"
        );
        let f = compile(Path::new("q.toml"), &src, &*CATALOG).unwrap();
        let s = f.callback.schedule.unwrap();
        assert_eq!(
            (s.slots, s.every_hours, s.lead),
            (4, 2, Duration::from_secs(3600))
        );
        assert_eq!(f.callback.expiry, Some(Duration::from_secs(2 * 86400)));
        let src =
            format!("{MINIMAL}[callback.schedule]\nslots = 12\nevery = \"90m\"\nlead = \"x\"\n");
        let e = errors(&src);
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].contains(":7:") && e[0].contains("1 to 9"), "{e:?}");
        assert!(
            e[1].contains(":8:") && e[1].contains("whole hours"),
            "{e:?}"
        );
        assert!(
            e[2].contains(":9:") && e[2].contains("schedule.lead"),
            "{e:?}"
        );
    }

    #[test]
    fn a_minimal_file_gets_defaults() {
        let f = compile(Path::new("queues/sales.toml"), MINIMAL, &*CATALOG).unwrap();
        assert_eq!(f.name, "sales");
        assert_eq!(f.menu.prompt, "menu");
        assert_eq!(f.menu.timeout, Duration::from_secs(6));
        assert_eq!(f.max_wait, None);
        assert_eq!(f.prompts.callback_menu, "callback_menu");
    }

    #[test]
    fn every_error_is_reported_with_its_place() {
        let src = r#"numbers = ["sales", "sales"]
offer_every = "30"
greeting = "hello_there"
[menu]
timeout = "5x"
options = [
  { key = "1", action = "callback" },
  { key = "1", action = "wait" },
  { key = "12", action = "wait" },
  { key = "3", action = "transfer", target = "http://x" },
  { key = "4", action = "dance" },
]
[callback]
min_digits = 12
max_digits = 11
blocked_prefixes = ["19y0"]
[hours]
time_zone = "Mars/Olympus"
[transfer]
desk = "tel:123"
"#;
        let e = errors(src);
        let expect = [
            "q.toml:1:21: `sales` is listed twice",
            "q.toml:2:15: offer_every: duration \"30\" has no unit",
            "q.toml:3:12: unknown prompt id `hello_there`",
            "q.toml:5:11: menu.timeout: unknown unit",
            "q.toml:8:11: key '1' is used twice",
            "q.toml:9:11: key \"12\" must be one DTMF key",
            "q.toml:10:46: transfer target `http://x` is neither",
            "q.toml:11:25: unknown action `dance`",
            "q.toml:14:14: min_digits (12) is more than max_digits (11)",
            "q.toml:16:21: a blocked prefix must be digits, or x for any digit",
            "q.toml:18:13: unknown time zone \"Mars/Olympus\"",
            "q.toml:20:8: transfer target `desk` must be a sip: or sips: URI",
        ];
        for want in expect {
            assert!(
                e.iter().any(|got| got.starts_with(want)),
                "missing {want:?} in\n{}",
                e.join("\n")
            );
        }
        assert_eq!(e.len(), expect.len(), "{}", e.join("\n"));
    }

    #[test]
    fn unknown_keys_and_bad_types_are_located() {
        let e =
            errors("numbers = [\"a\"]\noffer_every = \"1m\"\ncolour = 3\n[menu]\noptions = []\n");
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("q.toml:3:1: unknown field `colour`"),
            "{e:?}"
        );
        let e = errors("numbers = \"a\"\noffer_every = \"1m\"\n[menu]\noptions = []\n");
        assert!(e[0].starts_with("q.toml:1:11:"), "{e:?}");
    }

    #[test]
    fn prompt_roles_can_be_overridden_and_are_checked() {
        let src = format!(
            "{MINIMAL}[prompts]\ngoodbye = \"menu\"\nfarewell = \"goodbye\"\nbeep = \"bleep\"\n"
        );
        let e = errors(&src);
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].starts_with("q.toml:8:1: unknown prompt role `farewell`"),
            "{e:?}"
        );
        assert!(
            e[1].starts_with("q.toml:9:8: unknown prompt id `bleep`"),
            "{e:?}"
        );
        let src = format!("{MINIMAL}[prompts]\ngoodbye = \"menu\"\n");
        let f = compile(Path::new("q.toml"), &src, &*CATALOG).unwrap();
        assert_eq!(f.prompts.goodbye, "menu");
        // A library without digit prompts cannot read numbers back.
        let e = compile(Path::new("q.toml"), MINIMAL, &["menu", "hold_music"]).unwrap_err();
        assert!(e.iter().any(|d| d.message.contains("`digit_0`")), "{e:?}");
    }

    #[test]
    fn hours_and_max_wait_are_checked() {
        let src = format!(
            "max_wait = \"10m\"\n{MINIMAL}[hours]\ntime_zone = \"Europe/Paris\"\nmon = [\"18:00-09:00\"]\n"
        );
        let e = errors(&src);
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].contains("max_wait needs max_wait_action"), "{e:?}");
        assert!(e[1].contains("ends before it starts"), "{e:?}");
    }

    #[test]
    fn routing_by_user_or_number() {
        let mut f = support_flow();
        f.numbers.push("+1-555-0200".into());
        let set = QueueSet::new([f]);
        assert_eq!(set.route("support").unwrap().name, "support");
        assert_eq!(set.route("15550200").unwrap().name, "support");
        assert_eq!(set.route("+15550200").unwrap().name, "support");
        assert!(set.route("sales").is_none());
        assert!(set.get("support").is_some());
    }

    #[test]
    fn load_dir_reports_broken_files_and_clashing_numbers() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/queues");
        let (set, diags) = load_dir(&dir, &*CATALOG);
        assert!(set.get("good").is_some(), "{diags:?}");
        let text: Vec<String> = diags.iter().map(ToString::to_string).collect();
        assert!(
            text.iter().any(|d| d.contains("broken_syntax.toml:")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|d| d.contains("same_number.toml:1:")
                && d.contains("already routes to queue `good`")),
            "{text:?}"
        );
        assert!(set.get("same_number").is_none());
    }

    /// The number-plan keys of `[callback]` (issue 19) point at their own value when wrong.
    #[test]
    fn callback_number_plan_keys_are_checked_in_place() {
        let src = format!(
            "{MINIMAL}[callback]\nregion = \"ZZ\"\nallowed_types = [\"mobile\", \"premium\"]\n\
             fictional_prefixes = [\"1-555\"]\nblocked_prefixes = [\"1xxx976\"]\n"
        );
        let e = errors(&src);
        let at = |line: usize| format!("q.toml:{line}:");
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(
            e[0].starts_with(&at(7)) && e[0].contains("unknown region \"ZZ\""),
            "{e:?}"
        );
        assert!(
            e[1].starts_with(&format!("{}28", at(8)))
                && e[1].contains("unknown number type \"premium\": expected one of fixed_line"),
            "{e:?}"
        );
        assert!(
            e[2].starts_with(&at(9)) && e[2].contains("a fictional prefix"),
            "{e:?}"
        );
        let src = format!("{MINIMAL}[callback]\ncountry_code = \"44\"\nregion = \"us\"\n");
        let e = errors(&src);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with(&at(8)) && e[0].contains("region US has country code 1, not 44"));
        // Left out: the main region of the country code, and the default types.
        let src = format!("{MINIMAL}[callback]\ncountry_code = \"44\"\n");
        let flow = compile(Path::new("q.toml"), &src, &*CATALOG).expect("compiles");
        assert_eq!(flow.callback.numbers.region, "GB");
        assert_eq!(
            flow.callback.numbers.allowed_types,
            NumberType::DEFAULT_ALLOWED.to_vec()
        );
    }

    /// The shipped `support` queue refuses the toll-fraud numbers of issue 19 and keeps the
    /// fictional 1-555 number its tests call back.
    #[test]
    fn the_shipped_support_queue_refuses_toll_fraud_numbers() {
        use super::numbers::NumberError;
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/queues/support.toml");
        let src = std::fs::read_to_string(&path).expect("support.toml");
        let flow = compile(&path, &src, &*CATALOG).expect("compiles");
        let rules = &flow.callback.numbers;
        assert_eq!(rules.check_caller_id("+15551234567"), Ok(()));
        assert_eq!(rules.check_entered("5551234567"), Ok(()));
        assert_eq!(rules.check_entered("2125550123"), Ok(()));
        for n in ["18765551234", "18095551234", "+12845551234", "+18765551234"] {
            assert!(
                matches!(
                    rules.check_caller_id(n),
                    Err(NumberError::International | NumberError::Invalid)
                ),
                "{n}: {:?}",
                rules.check_caller_id(n)
            );
        }
        assert!(matches!(
            rules.check_entered("12129761234"),
            Err(NumberError::Blocked(_))
        ));
        assert!(rules.check_entered("19005551234").is_err());
    }

    #[test]
    fn shipped_queue_files_compile() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/queues");
        let (set, diags) = load_dir(&dir, &*CATALOG);
        assert!(diags.is_empty(), "{diags:?}");
        assert!(set.route("support").is_some());
        let sales = set
            .route("+1 555 0200".replace(' ', "").as_str())
            .expect("sales by DID");
        assert_eq!(sales.name, "sales");
        assert!(matches!(sales.hours, BusinessHours::Weekly { .. }) && sales.closed_callback);
    }
}
