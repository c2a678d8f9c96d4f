//! A dry run of a flow: what a caller would hear and what would happen to the interaction,
//! for a scripted list of key presses, in virtual time.
//!
//! PURE. It drives the real [`Engine`]: playback ends after the prompt durations the caller
//! supplies ([`PromptDurations`]), `RequestCallback` is answered with `CallbackStored`,
//! `QueryQueueStatus` with a made-up position, and recordings end at their maximum. An operator
//! runs it (`hammond simulate`) to see a queue file change before any caller does.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::engine::{Action, CallContext, Engine, PlayItem, WfEvent};
use super::flow::{Flow, digit_prompt};
use super::hours::BusinessHours;
use crate::config::values::parse_duration;

/// How long each prompt lasts (and, for a readable dry run, what it says).
pub trait PromptDurations {
    /// Length of prompt `id`; `None` if unknown (the simulator assumes 2 s and marks it `?`).
    fn duration(&self, id: &str) -> Option<Duration>;
    /// The words of prompt `id`, if known.
    fn text(&self, _id: &str) -> Option<String> {
        None
    }
}

/// Assumed length of a prompt whose duration is unknown.
const UNKNOWN: Duration = Duration::from_secs(2);

/// Knobs of a dry run beyond the brief's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimOptions {
    /// The caller ID presented by the PBX.
    pub caller: Option<String>,
    /// Wall-clock time of the call. `None`: the next time the queue is open after
    /// 2026-01-05T00:00Z (or that instant for an always-open queue).
    pub start: Option<Timestamp>,
    /// Position reported for `QueryQueueStatus`.
    pub position: u32,
    /// Estimated wait reported for `QueryQueueStatus`.
    pub estimated_wait: Option<Duration>,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            caller: Some("+15551234567".into()),
            start: None,
            position: 3,
            estimated_wait: Some(Duration::from_secs(240)),
        }
    }
}

/// Parse `"35s:1,38s:1"` (time since the INVITE, `:`, key) into key presses, sorted by time.
/// Times take the queue-file units (`500ms`, `35s`, `2m`, `1h`) or combine them (`1m30s`).
pub fn parse_keys(s: &str) -> Result<Vec<(Duration, char)>, String> {
    let mut keys = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (t, k) = part
            .rsplit_once(':')
            .ok_or_else(|| format!("{part:?}: expected time:key, like \"35s:1\""))?;
        let mut chars = k.trim().chars();
        let key = match (chars.next(), chars.next()) {
            (Some(c), None) if "0123456789*#ABCD".contains(c) => c,
            _ => {
                return Err(format!(
                    "{part:?}: {k:?} is not one DTMF key (0-9, *, #, A-D)"
                ));
            }
        };
        keys.push((
            parse_duration(t).map_err(|e| format!("{part:?}: {e}"))?,
            key,
        ));
    }
    keys.sort_by_key(|(t, _)| *t);
    Ok(keys)
}

/// Dry-run `flow` with the default [`SimOptions`]. See [`simulate_with`].
pub fn simulate(
    flow: &Flow,
    keys: &[(Duration, char)],
    until: Duration,
    durations: &dyn PromptDurations,
) -> String {
    simulate_with(flow, keys, until, durations, &SimOptions::default())
}

/// The origin of virtual time. Only differences from it are used, so the output never depends
/// on the real clock.
fn origin() -> Instant {
    crate::clock::now()
}

/// What is playing: one part per prompt (or digit string), each with its planned span.
struct Segment {
    start: Duration,
    /// Planned end; `None` for music (loops until replaced).
    end: Option<Duration>,
    /// (length, label) in order. Music and ringing are a single part.
    parts: Vec<(Duration, String)>,
    seq: usize,
}

struct Sim<'a> {
    durations: &'a dyn PromptDurations,
    /// (sort time, sort seq, when column, what).
    lines: Vec<(Duration, usize, String, String)>,
    seq: usize,
    audio: Option<Segment>,
    /// When the line went silent (no prompt, no music), if it is.
    silent_since: Option<Duration>,
    /// Events the simulated shell answers with, at the current time.
    replies: Vec<WfEvent>,
    /// Voicemail recording ends (at its maximum) at this time.
    recording_until: Option<Duration>,
    ended: bool,
}

impl Sim<'_> {
    fn line(&mut self, at: Duration, text: String) {
        self.seq += 1;
        self.lines.push((at, self.seq, stamp(at), text));
    }

    fn prompt_len(&self, id: &str) -> (Duration, bool) {
        match self.durations.duration(id) {
            Some(d) => (d, true),
            None => (UNKNOWN, false),
        }
    }

    fn describe(&self, items: &[PlayItem]) -> Vec<(Duration, String)> {
        let mut parts = Vec::new();
        for item in items {
            match item {
                PlayItem::Prompt(id) => {
                    let (d, known) = self.prompt_len(id);
                    let mut s = id.clone();
                    if let Some(text) = self.durations.text(id) {
                        let _ = write!(s, " \"{text}\"");
                    }
                    if !known {
                        s.push_str(" (length unknown, 2s assumed)");
                    }
                    parts.push((d, s));
                }
                PlayItem::Digits(digits) => {
                    let d = digits
                        .chars()
                        .filter_map(digit_prompt)
                        .map(|id| self.prompt_len(id).0)
                        .sum();
                    parts.push((d, format!("digits {digits}")));
                }
                PlayItem::Silence(d) => {
                    parts.push((*d, format!("{}s of silence", d.as_secs_f32())))
                }
            }
        }
        parts
    }

    /// End the current audio at `t`: one line per part that started, the interrupted one
    /// marked with `why`.
    fn stop_audio(&mut self, t: Duration, why: &str) {
        if let Some(seg) = self.audio.take() {
            let mut at = seg.start;
            for (i, (len, label)) in seg.parts.into_iter().enumerate() {
                if at >= t && i > 0 {
                    break;
                }
                let planned = at + len;
                let is_music = seg.end.is_none();
                let end = if is_music { t } else { planned.min(t) };
                let mut label = label;
                if !is_music && t < planned && !why.is_empty() {
                    let _ = write!(label, " ({why})");
                }
                self.lines
                    .push((at, seg.seq + i, range(at, end), format!("hears {label}")));
                at = planned;
            }
            self.silent_since = Some(t);
        }
    }

    fn start_audio(&mut self, t: Duration, end: Option<Duration>, parts: Vec<(Duration, String)>) {
        self.stop_audio(t, "cut short");
        if let Some(s) = self.silent_since.take()
            && t > s
        {
            self.seq += 1;
            self.lines
                .push((s, self.seq, range(s, t), "silence".into()));
        }
        self.seq += 1;
        let n = parts.len();
        self.audio = Some(Segment {
            start: t,
            end,
            parts,
            seq: self.seq,
        });
        self.seq += n;
    }

    fn apply(&mut self, t: Duration, action: Action, opts: &SimOptions) {
        match action {
            Action::EnterWorkflow => {
                self.line(t, "interaction open → bot (entered the workflow)".into())
            }
            Action::Play { items, barge_in } => {
                let mut parts = self.describe(&items);
                let total = parts.iter().map(|(d, _)| *d).sum::<Duration>();
                if barge_in && let Some((_, first)) = parts.first_mut() {
                    first.push_str(" [keys barge in]");
                }
                self.start_audio(t, Some(t + total), parts);
            }
            Action::StopPlayback => self.stop_audio(t, "stopped by key"),
            Action::StartMusic => {
                self.start_audio(t, None, vec![(Duration::ZERO, "hold music".into())])
            }
            Action::QueryQueueStatus => self.replies.push(WfEvent::QueueStatus {
                position: opts.position,
                estimated_wait: opts.estimated_wait,
            }),
            Action::RequestCallback { number, not_before } => {
                let when = not_before
                    .map(|n| format!(", not before {n}"))
                    .unwrap_or_default();
                self.line(t, format!("interaction: callback requested for {number}{when} (sub-type inbound → callback)"));
                self.replies.push(WfEvent::CallbackStored);
            }
            Action::Transfer { target } => {
                self.stop_audio(t, "");
                self.line(
                    t,
                    format!("call transferred to {target}; the workflow ends"),
                );
                self.ended = true;
            }
            Action::StartRecording { max } => {
                self.stop_audio(t, "");
                self.line(
                    t,
                    format!("recording voicemail (up to {}s; # ends it)", max.as_secs()),
                );
                self.start_audio(
                    t,
                    Some(t + max),
                    vec![(max, "(the caller speaks; recorded)".into())],
                );
                self.recording_until = Some(t + max);
            }
            Action::StopRecording => {
                self.recording_until = None;
                self.stop_audio(t, "");
                self.replies.push(WfEvent::RecordingFinished);
            }
            Action::Hangup { reason } => {
                self.stop_audio(t, "");
                self.line(t, format!("Hammond hangs up ({reason:?})"));
                self.ended = true;
            }
            Action::Log(step) => self.line(t, format!("· {step}")),
        }
    }
}

/// Did the last input produce nothing? (Peeks without consuming: the engine queues actions.)
fn engine_idle(engine: &Engine) -> bool {
    !engine.has_pending_actions()
}

/// `m:ss` (with milliseconds when not whole), hours when needed.
fn stamp(d: Duration) -> String {
    let s = d.as_secs();
    let ms = d.subsec_millis();
    let base = if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 60, s % 60)
    };
    if ms == 0 {
        base
    } else {
        format!("{base}.{ms:03}")
    }
}

fn range(a: Duration, b: Duration) -> String {
    format!("{}–{}", stamp(a), stamp(b))
}

/// Dry-run `flow`: the caller presses `keys` (time since the INVITE, key), the run stops at
/// `until` or when the call ends. Returns a readable timeline, one line per step, with idle
/// stretches (music, silence, a prompt playing) collapsed into ranges.
pub fn simulate_with(
    flow: &Flow,
    keys: &[(Duration, char)],
    until: Duration,
    durations: &dyn PromptDurations,
    opts: &SimOptions,
) -> String {
    let reference: Timestamp =
        Timestamp::from_second(1_767_571_200).unwrap_or(Timestamp::UNIX_EPOCH); // 2026-01-05T00:00Z
    let wall = opts.start.unwrap_or_else(|| match &flow.hours {
        BusinessHours::AlwaysOpen => reference,
        hours @ BusinessHours::Weekly { .. } => {
            if hours.is_open(reference) {
                reference
            } else {
                hours.next_open(reference).unwrap_or(reference)
            }
        }
    });
    let o = origin();
    let ctx = CallContext {
        caller_number: opts.caller.clone(),
        started_wall: wall,
    };
    let mut engine = Engine::new(Arc::new(flow.clone()), ctx, o);
    let mut sim = Sim {
        durations,
        lines: Vec::new(),
        seq: 0,
        audio: None,
        silent_since: None,
        replies: Vec::new(),
        recording_until: None,
        ended: false,
    };

    let mut out = String::new();
    let _ = writeln!(out, "queue {} ({})", flow.name, flow.source.display());
    let _ = writeln!(
        out,
        "caller {}, call at {wall}; keys: {}",
        opts.caller.as_deref().unwrap_or("(no caller ID)"),
        if keys.is_empty() {
            "none".to_owned()
        } else {
            keys.iter()
                .map(|(t, k)| format!("{k} at {}", stamp(*t)))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );

    sim.line(Duration::ZERO, "call arrives; interaction open".into());
    let answer_at = flow.ring_before_answer;
    if !answer_at.is_zero() {
        sim.start_audio(
            Duration::ZERO,
            Some(answer_at),
            vec![(answer_at, "ringing (180)".into())],
        );
    }
    let mut answered = false;
    let mut next_key = 0;
    let mut t = Duration::ZERO;
    let mut steps = 0u32;

    while !sim.ended {
        steps += 1;
        if steps > 100_000 {
            sim.line(
                t,
                "simulation stopped: the workflow makes no progress".into(),
            );
            break;
        }
        let playback_end = sim
            .audio
            .as_ref()
            .and_then(|a| a.end)
            .filter(|_| answered && sim.recording_until.is_none());
        let engine_t = engine
            .poll_timeout()
            .map(|i| i.saturating_duration_since(o));
        let candidates = [
            (!answered).then_some(answer_at),
            keys.get(next_key).map(|(k, _)| *k),
            playback_end,
            engine_t,
            sim.recording_until,
        ];
        let Some(next) = candidates.into_iter().flatten().min() else {
            break;
        };
        if next > until {
            break;
        }
        t = next.max(t);
        let now = o + t;
        if !answered && t >= answer_at {
            answered = true;
            sim.stop_audio(t, "");
            sim.line(t, "answered (200 OK)".into());
            engine.handle_event(now, WfEvent::Answered);
        } else if let Some(&(kt, key)) = keys.get(next_key).filter(|(kt, _)| *kt <= t) {
            next_key += 1;
            engine.handle_event(now, WfEvent::Digit(key));
            let ignored = if engine_idle(&engine) {
                " (no effect here)"
            } else {
                ""
            };
            sim.line(kt, format!("caller presses {key}{ignored}"));
        } else if sim.recording_until.is_some_and(|r| r <= t) {
            sim.recording_until = None;
            sim.stop_audio(t, "");
            engine.handle_event(now, WfEvent::RecordingFinished);
        } else if playback_end.is_some_and(|e| e <= t) {
            sim.stop_audio(t, "");
            engine.handle_event(now, WfEvent::PlaybackFinished);
        } else {
            engine.handle_timeout(now);
        }
        // Drain, answering like the shell would, until quiet.
        loop {
            while let Some(a) = engine.poll_action() {
                sim.apply(t, a, opts);
            }
            if sim.replies.is_empty() {
                break;
            }
            for ev in std::mem::take(&mut sim.replies) {
                engine.handle_event(now, ev);
            }
        }
    }
    let end = if sim.ended { t } else { until };
    sim.stop_audio(end, "");
    if let Some(s) = sim.silent_since.take()
        && end > s
    {
        sim.seq += 1;
        sim.lines
            .push((s, sim.seq, range(s, end), "silence".into()));
    }
    if !sim.ended {
        sim.line(
            end,
            "end of simulation; the caller is still on the line".into(),
        );
    }
    sim.lines.sort_by_key(|(at, seq, _, _)| (*at, *seq));
    let width = sim
        .lines
        .iter()
        .map(|l| l.2.chars().count())
        .max()
        .unwrap_or(0);
    for (_, _, when, text) in sim.lines {
        let _ = writeln!(out, "{when:<width$}  {text}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::test_support::support_flow;

    /// Every prompt 2 s, digits 500 ms; texts for a few.
    struct Lengths;
    impl PromptDurations for Lengths {
        fn duration(&self, id: &str) -> Option<Duration> {
            match id {
                "greeting" => Some(Duration::from_secs(3)),
                "menu" => Some(Duration::from_secs(5)),
                "not_in_manifest" => None,
                d if d.starts_with("digit_") => Some(Duration::from_millis(500)),
                _ => Some(Duration::from_secs(2)),
            }
        }
        fn text(&self, id: &str) -> Option<String> {
            (id == "menu")
                .then(|| "Press 1 for a callback, 2 to keep waiting, 0 for the operator.".into())
        }
    }

    /// The output with runs of spaces collapsed (columns are padded to the widest time).
    fn run(flow: &Flow, keys: &str, until: u64) -> String {
        let out = simulate(
            flow,
            &parse_keys(keys).unwrap(),
            Duration::from_secs(until),
            &Lengths,
        );
        out.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn parse_keys_reads_times_and_keys() {
        let k = parse_keys("38s:1, 35s:1,1m30s:#,500ms:*").unwrap();
        assert_eq!(
            k,
            [
                (Duration::from_millis(500), '*'),
                (Duration::from_secs(35), '1'),
                (Duration::from_secs(38), '1'),
                (Duration::from_secs(90), '#'),
            ]
        );
        assert!(parse_keys("35:1").unwrap_err().contains("unit"));
        assert!(parse_keys("35s:12").is_err());
        assert!(parse_keys("35s").is_err());
        assert_eq!(parse_keys("").unwrap(), []);
    }

    /// Issue 21: `hammond simulate` shows the scheduled-callback choices second by second:
    /// the "when" question, the slots read in the queue's zone, the chosen one, and the
    /// callback requested for that time.
    #[test]
    fn a_scheduled_callback_is_shown_step_by_step() {
        let mut flow = support_flow();
        flow.callback.schedule = Some(crate::workflow::slots::Schedule {
            slots: 2,
            every_hours: 1,
            lead: Duration::from_secs(3600),
        });
        let out = run(&flow, "5s:1,8s:2,12s:2,24s:1", 120);
        let order = [
            "00:05 caller presses 1",
            "hears callback_when",
            "00:08 caller presses 2",
            "key 2 accepted: callback: choose a time",
            "hears slot_press",
            "00:12 caller presses 2",
            "callback time chosen: today at 3 AM",
            "hears slot_chosen",
            "hears callback_menu",
            "00:24 caller presses 1",
            "callback requested for +15551234567 (not before 2026-01-05T03:00:00Z)",
            "callback stored",
        ];
        let mut at = 0;
        for needle in order {
            let i = out[at..]
                .find(needle)
                .unwrap_or_else(|| panic!("{needle:?} missing (or out of order) in:\n{out}"));
            at += i + needle.len();
        }
    }

    #[test]
    fn callback_via_caller_id_is_shown_step_by_step() {
        let flow = support_flow();
        let out = run(&flow, "35s:1,38s:1", 120);
        let expect = [
            "00:00 call arrives; interaction open",
            "00:00–00:01 hears ringing (180)",
            "00:01 answered (200 OK)",
            "00:01 interaction open → bot",
            "00:01–00:04 hears greeting [keys barge in]",
            "00:04–00:09 hears menu \"Press 1 for a callback, 2 to keep waiting, 0 for the operator.\"",
            "00:09–00:15 silence",
            "00:15–00:17 hears position_intro [keys barge in]",
            "00:17–00:17.500 hears digits 3",
            "00:22–00:35 hears hold music",
            "00:35 caller presses 1",
            "00:35 · key 1 accepted: callback",
            "00:35–00:37 hears callback_menu [keys barge in]",
            "00:37–00:38 silence",
            "00:38 caller presses 1",
            "00:38–00:40 hears number_is",
            "00:40–00:46 hears digits +15551234567",
            "interaction: callback requested for +15551234567",
            "· callback stored",
            "hears callback_confirmed",
            "Hammond hangs up (CallbackConfirmed)",
        ];
        let mut from = 0;
        for want in expect {
            let Some(pos) = out[from..].find(want) else {
                panic!("missing (in order) {want:?} in\n{out}");
            };
            from += pos;
        }
        assert!(!out.contains("end of simulation"), "{out}");
    }

    #[test]
    fn waiting_collapses_into_ranges_and_offers_repeat() {
        let flow = support_flow();
        let out = run(&flow, "", 150);
        assert!(out.contains("01:01 · menu offered (#2)"), "{out}");
        assert!(out.contains("02:01 · menu offered (#3)"), "{out}");
        assert!(out.contains("00:09–00:15 silence"), "{out}");
        assert!(out.contains("01:01–01:06 hears menu"), "{out}");
        assert!(
            out.contains("end of simulation; the caller is still on the line"),
            "{out}"
        );
        // One line per step: 150 s of waiting is a couple of dozen lines, not 150.
        assert!(out.lines().count() < 60, "{out}");
    }

    #[test]
    fn barge_in_cuts_the_prompt_and_voicemail_is_recorded() {
        let mut flow = support_flow();
        flow.menu.options[1].action = crate::workflow::flow::MenuAction::Voicemail;
        let out = run(&flow, "6s:2,40s:#", 300);
        for want in [
            "00:04–00:06 hears menu \"Press 1",
            "(stopped by key)",
            "00:06–00:08 hears voicemail_intro",
            "00:10 recording voicemail (up to 120s; # ends it)",
            "00:10–00:40 hears (the caller speaks; recorded)",
            "00:40 · voicemail recorded",
            "Hammond hangs up (VoicemailLeft)",
        ] {
            assert!(out.contains(want), "missing {want:?} in\n{out}");
        }
    }

    #[test]
    fn a_closed_queue_books_a_callback_for_opening_time() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/queues/sales.toml");
        let src = std::fs::read_to_string(path).unwrap();
        let flow = crate::workflow::compile(
            std::path::Path::new(path),
            &src,
            &*crate::workflow::test_support::CATALOG,
        )
        .unwrap();
        let opts = SimOptions {
            start: Some("2026-03-07T23:00:00Z".parse().unwrap()),
            ..SimOptions::default()
        };
        let out = simulate_with(
            &flow,
            &parse_keys("5s:1,8s:1").unwrap(),
            Duration::from_secs(60),
            &Lengths,
            &opts,
        );
        for want in [
            "· closed (opens 2026-03-09T13:00:00Z)",
            "hears closed [keys barge in]",
            "hears closed_callback",
            "callback requested for +15551234567, not before 2026-03-09T13:00:00Z",
            "Hammond hangs up (CallbackConfirmed)",
            "caller presses 1 (no effect here)",
        ] {
            assert!(out.contains(want), "missing {want:?} in\n{out}");
        }
    }

    #[test]
    fn unknown_lengths_are_flagged() {
        let mut flow = support_flow();
        flow.greeting = Some("not_in_manifest".into());
        let out = run(&flow, "", 10);
        assert!(
            out.contains("not_in_manifest (length unknown, 2s assumed)"),
            "{out}"
        );
    }
}
