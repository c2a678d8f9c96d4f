//! The player: what one call hears, as a gap-free stream of 20 ms G.711 frames.
//!
//! PURE and allocation-free per frame. Prompts live once in the shared [`PromptLibrary`]; a
//! playing call holds only its queue of `Arc`s and a byte cursor into the current one. The shell
//! (the call task) calls [`Player::next_frame`] every time the [`super::pacer::Pacer`] says a frame
//! is due and sends the result as one RTP packet (RFC 3551 §4.5.14: 160 samples per 20 ms). When
//! nothing is queued the frame is the codec's silence, so the RTP stream never gaps (DESIGN:
//! "silence packets between prompts"). `talkspurt_start` marks the first speech frame after
//! silence: set the RTP marker bit on it (RFC 3551 §4.1).
//!
//! The workflow enqueues [`Item`]s, barges in with [`Player::stop`] when a key is pressed, and
//! learns that a prompt sequence ended from [`Player::poll_event`].

use std::collections::VecDeque;
use std::sync::Arc;

use super::error::Error;
use super::g711::Codec;
use super::prompts::{Prompt, PromptLibrary};

/// Samples (= G.711 bytes) in one 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;

/// Silence between digits of a read-out (5 frames = 100 ms).
pub const DIGIT_GAP_FRAMES: u32 = 5;

/// Something to play.
#[derive(Debug, Clone)]
pub enum Item {
    /// One prompt, once.
    Prompt(Arc<Prompt>),
    /// `frames` × 20 ms of silence.
    Silence { frames: u32 },
    /// Read a number out digit by digit (`digit_0`…`digit_9`, `digit_star`, `digit_hash`,
    /// `digit_plus`) with a short gap between digits. Spaces, `-`, `.`, `(` and `)` are ignored.
    Digits(String),
    /// Play a prompt over and over (hold music) until [`Player::stop`]; never finishes.
    Loop(Arc<Prompt>),
}

/// One 20 ms frame of encoded audio, ready to be an RTP payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// 160 G.711 bytes in the player's codec.
    pub payload: [u8; FRAME_SAMPLES],
    /// First speech frame after silence or idle: set the RTP marker bit.
    pub talkspurt_start: bool,
}

/// What the player reports to the workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayerEvent {
    /// Everything enqueued has been played (not emitted for [`Item::Loop`], nor after
    /// [`Player::stop`]).
    PlaybackFinished,
}

/// A queued item, after read-outs have been expanded.
#[derive(Debug)]
enum Queued {
    Prompt(Arc<Prompt>),
    Silence(u32),
    Loop(Arc<Prompt>),
}

/// What one call hears. One per call (or per leg), owned by the call task.
#[derive(Debug)]
pub struct Player {
    codec: Codec,
    library: Arc<PromptLibrary>,
    /// The item playing now, kept in the player itself: the media clock reads it every frame,
    /// and a separate queue buffer is one more cache miss per frame.
    current: Option<Queued>,
    /// What plays after it.
    queue: VecDeque<Queued>,
    /// Byte offset into the current item's payload.
    cursor: usize,
    /// The previous frame carried speech (so the next speech frame is not a talkspurt start).
    in_talkspurt: bool,
    /// Something was enqueued and has not finished or been stopped.
    active: bool,
    event: Option<PlayerEvent>,
}

impl Player {
    /// A silent player for a leg that negotiated `codec`; read-outs look their digit prompts up
    /// in `library`.
    pub fn new(codec: Codec, library: Arc<PromptLibrary>) -> Self {
        Self {
            codec,
            library,
            current: None,
            queue: VecDeque::with_capacity(16),
            cursor: 0,
            in_talkspurt: false,
            active: false,
            event: None,
        }
    }

    /// The codec frames are encoded in.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Append an item to the queue. A read-out is checked in full before anything is queued:
    /// an unknown character or a missing digit prompt is an error and queues nothing.
    pub fn enqueue(&mut self, item: Item) -> Result<(), Error> {
        match item {
            Item::Prompt(p) => self.push(Queued::Prompt(p)),
            Item::Loop(p) => self.push(Queued::Loop(p)),
            Item::Silence { frames } => {
                if frames > 0 {
                    self.push(Queued::Silence(frames));
                }
            }
            Item::Digits(digits) => {
                let mut prompts = Vec::with_capacity(digits.len());
                for c in digits.chars() {
                    let id = match c {
                        ' ' | '-' | '.' | '(' | ')' => continue,
                        '0' => "digit_0",
                        '1' => "digit_1",
                        '2' => "digit_2",
                        '3' => "digit_3",
                        '4' => "digit_4",
                        '5' => "digit_5",
                        '6' => "digit_6",
                        '7' => "digit_7",
                        '8' => "digit_8",
                        '9' => "digit_9",
                        '*' => "digit_star",
                        '#' => "digit_hash",
                        '+' => "digit_plus",
                        other => return Err(Error::NotADigit(other)),
                    };
                    let p = self
                        .library
                        .get(id)
                        .ok_or_else(|| Error::UnknownPrompt(id.to_owned()))?;
                    prompts.push(p);
                }
                for (i, p) in prompts.into_iter().enumerate() {
                    if i > 0 {
                        self.push(Queued::Silence(DIGIT_GAP_FRAMES));
                    }
                    self.push(Queued::Prompt(p));
                }
            }
        }
        Ok(())
    }

    /// Enqueue the library prompt `id` once.
    pub fn enqueue_id(&mut self, id: &str) -> Result<(), Error> {
        let p = self
            .library
            .get(id)
            .ok_or_else(|| Error::UnknownPrompt(id.to_owned()))?;
        self.enqueue(Item::Prompt(p))
    }

    fn push(&mut self, q: Queued) {
        if self.current.is_none() {
            self.current = Some(q);
        } else {
            self.queue.push_back(q);
        }
        self.active = true;
    }

    /// Barge-in: drop everything queued, including the prompt playing now. The next frame is
    /// silence. No [`PlayerEvent::PlaybackFinished`] follows (the caller knows it stopped).
    pub fn stop(&mut self) {
        self.current = None;
        self.queue.clear();
        self.cursor = 0;
        self.active = false;
        self.event = None;
    }

    /// Whether nothing is queued (every frame is silence until the next `enqueue`).
    pub fn is_idle(&self) -> bool {
        self.current.is_none()
    }

    /// The next 20 ms frame: speech from the queue, or the codec's silence. Call exactly once per
    /// frame the pacer says is due, including frames the pacer skipped if you want the audio to
    /// stay in step (or not, to drop them). Never fails, never allocates.
    pub fn next_frame(&mut self) -> Frame {
        let codec = self.codec;
        let mut payload = [codec.silence_byte(); FRAME_SAMPLES];
        let speech = loop {
            let Some(front) = self.current.as_mut() else {
                break false;
            };
            match front {
                Queued::Prompt(p) => {
                    let data = p.payload(codec);
                    if self.cursor >= data.len() {
                        self.pop();
                        continue;
                    }
                    // The last, partial frame of a prompt is padded with silence.
                    let n = (data.len() - self.cursor).min(FRAME_SAMPLES);
                    payload[..n].copy_from_slice(&data[self.cursor..self.cursor + n]);
                    self.cursor += n;
                    let done = self.cursor >= data.len();
                    if done {
                        self.pop();
                    }
                    break true;
                }
                Queued::Silence(left) => {
                    if *left == 0 {
                        self.pop();
                        continue;
                    }
                    *left -= 1;
                    if *left == 0 {
                        self.pop();
                    }
                    break false;
                }
                Queued::Loop(p) => {
                    let data = p.payload(codec);
                    if data.is_empty() {
                        self.pop();
                        continue;
                    }
                    // Wrap within the frame so the loop is seamless.
                    let mut filled = 0;
                    while filled < FRAME_SAMPLES {
                        if self.cursor >= data.len() {
                            self.cursor = 0;
                        }
                        let n = (data.len() - self.cursor).min(FRAME_SAMPLES - filled);
                        payload[filled..filled + n]
                            .copy_from_slice(&data[self.cursor..self.cursor + n]);
                        self.cursor += n;
                        filled += n;
                    }
                    break true;
                }
            }
        };
        let talkspurt_start = speech && !self.in_talkspurt;
        self.in_talkspurt = speech;
        Frame {
            payload,
            talkspurt_start,
        }
    }

    fn pop(&mut self) {
        self.current = self.queue.pop_front();
        self.cursor = 0;
        if self.current.is_none() && self.active {
            self.active = false;
            self.event = Some(PlayerEvent::PlaybackFinished);
        }
    }

    /// Drain after every [`Player::next_frame`]: `PlaybackFinished` once the queue has played
    /// out (on the frame that carried its last audio).
    pub fn poll_event(&mut self) -> Option<PlayerEvent> {
        self.event.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A prompt of `n` samples of a recognisable ramp, its µ-law bytes all non-silent.
    fn prompt(id: &str, n: usize, level: i16) -> Prompt {
        let pcm: Vec<i16> = (0..n).map(|i| level + (i % 50) as i16 * 10).collect();
        Prompt::from_pcm(id, id, &pcm)
    }

    fn library() -> Arc<PromptLibrary> {
        let mut lib = PromptLibrary::default();
        for (i, id) in ["digit_0", "digit_1", "digit_5", "digit_hash", "digit_plus"]
            .iter()
            .enumerate()
        {
            lib.insert(prompt(id, 320, 1000 * (i as i16 + 1)));
        }
        lib.insert(prompt("greeting", 400, 3000));
        lib.insert(prompt("music", 100, 5000));
        Arc::new(lib)
    }

    fn player() -> Player {
        Player::new(Codec::Pcmu, library())
    }

    const SILENT: [u8; FRAME_SAMPLES] = [0xFF; FRAME_SAMPLES];

    #[test]
    fn idle_player_sends_silence_forever() {
        let mut p = player();
        for _ in 0..100 {
            let f = p.next_frame();
            assert_eq!(f.payload, SILENT);
            assert!(!f.talkspurt_start);
            assert_eq!(p.poll_event(), None);
        }
        let mut a = Player::new(Codec::Pcma, library());
        assert_eq!(a.next_frame().payload, [0xD5; FRAME_SAMPLES]);
    }

    #[test]
    fn prompt_plays_in_frames_with_marker_then_finishes() {
        let lib = library();
        let g = lib.get("greeting").expect("greeting");
        let mut p = Player::new(Codec::Pcmu, lib);
        p.enqueue(Item::Prompt(g.clone())).expect("enqueue");
        assert!(!p.is_idle());
        let f1 = p.next_frame();
        assert!(f1.talkspurt_start);
        assert_eq!(&f1.payload[..], &g.pcmu[..160]);
        assert_eq!(p.poll_event(), None);
        let f2 = p.next_frame();
        assert!(!f2.talkspurt_start);
        assert_eq!(&f2.payload[..], &g.pcmu[160..320]);
        assert_eq!(p.poll_event(), None);
        let f3 = p.next_frame(); // 80 samples left, padded with silence
        assert_eq!(&f3.payload[..80], &g.pcmu[320..400]);
        assert_eq!(&f3.payload[80..], &SILENT[80..]);
        assert_eq!(p.poll_event(), Some(PlayerEvent::PlaybackFinished));
        assert_eq!(p.poll_event(), None);
        assert!(p.is_idle());
        assert_eq!(p.next_frame().payload, SILENT);
        assert_eq!(p.poll_event(), None, "finished is reported once");
        // Playing again starts a new talkspurt.
        p.enqueue(Item::Prompt(g)).expect("enqueue");
        assert!(p.next_frame().talkspurt_start);
    }

    #[test]
    fn silence_items_separate_talkspurts() {
        let lib = library();
        let g = lib.get("greeting").expect("greeting");
        let mut p = Player::new(Codec::Pcmu, lib);
        p.enqueue(Item::Prompt(g.clone())).expect("e");
        p.enqueue(Item::Silence { frames: 2 }).expect("e");
        p.enqueue(Item::Silence { frames: 0 })
            .expect("zero frames is a no-op");
        p.enqueue(Item::Prompt(g)).expect("e");
        let frames: Vec<Frame> = (0..8).map(|_| p.next_frame()).collect();
        let marks: Vec<bool> = frames.iter().map(|f| f.talkspurt_start).collect();
        assert_eq!(
            marks,
            [true, false, false, false, false, true, false, false]
        );
        assert_eq!(frames[3].payload, SILENT);
        assert_eq!(frames[4].payload, SILENT);
        assert_eq!(p.poll_event(), Some(PlayerEvent::PlaybackFinished));
        // Only silence queued: plays out, finishes, no talkspurt.
        p.enqueue(Item::Silence { frames: 3 }).expect("e");
        for _ in 0..3 {
            assert!(!p.next_frame().talkspurt_start);
        }
        assert_eq!(p.poll_event(), Some(PlayerEvent::PlaybackFinished));
    }

    #[test]
    fn digits_read_out_with_gaps() {
        let lib = library();
        let mut p = Player::new(Codec::Pcmu, lib.clone());
        p.enqueue(Item::Digits("+1 5-0#".into())).expect("digits");
        let mut frames = Vec::new();
        while p.poll_event().is_none() {
            frames.push(p.next_frame());
            assert!(frames.len() < 1000);
        }
        // 5 digits × 2 frames + 4 gaps × 5 frames.
        assert_eq!(frames.len(), 5 * 2 + 4 * DIGIT_GAP_FRAMES as usize);
        let order = ["digit_plus", "digit_1", "digit_5", "digit_0", "digit_hash"];
        for (i, id) in order.iter().enumerate() {
            let at = i * (2 + DIGIT_GAP_FRAMES as usize);
            let d = lib.get(id).expect("digit");
            assert_eq!(&frames[at].payload[..], &d.pcmu[..160], "{id}");
            assert!(frames[at].talkspurt_start, "{id}");
            if i + 1 < order.len() {
                assert_eq!(frames[at + 2].payload, SILENT);
            }
        }
    }

    #[test]
    fn bad_read_outs_queue_nothing() {
        let mut p = player();
        assert!(matches!(
            p.enqueue(Item::Digits("15x".into())),
            Err(Error::NotADigit('x'))
        ));
        assert!(matches!(
            p.enqueue(Item::Digits("19".into())),
            Err(Error::UnknownPrompt(id)) if id == "digit_9"
        ));
        assert!(p.is_idle());
        assert!(matches!(p.enqueue_id("nope"), Err(Error::UnknownPrompt(_))));
        p.enqueue(Item::Digits(" - ".into()))
            .expect("only separators");
        assert!(p.is_idle());
        p.next_frame();
        assert_eq!(p.poll_event(), None);
    }

    #[test]
    fn loop_is_seamless_and_never_finishes_until_stopped() {
        let lib = library();
        let m = lib.get("music").expect("music"); // 100 samples: wraps inside each frame
        let mut p = Player::new(Codec::Pcmu, lib);
        p.enqueue(Item::Loop(m.clone())).expect("loop");
        let mut heard = Vec::new();
        for i in 0..50 {
            let f = p.next_frame();
            assert_eq!(f.talkspurt_start, i == 0);
            heard.extend_from_slice(&f.payload);
            assert_eq!(p.poll_event(), None);
        }
        for (i, b) in heard.iter().enumerate() {
            assert_eq!(*b, m.pcmu[i % 100], "byte {i}");
        }
        p.stop();
        assert!(p.is_idle());
        assert_eq!(p.next_frame().payload, SILENT);
        assert_eq!(p.poll_event(), None);
    }

    #[test]
    fn stop_barges_in_mid_prompt() {
        let mut p = player();
        p.enqueue_id("greeting").expect("g");
        p.enqueue_id("greeting").expect("g");
        p.next_frame();
        p.stop();
        let f = p.next_frame();
        assert_eq!(f.payload, SILENT);
        assert_eq!(p.poll_event(), None);
        p.enqueue_id("digit_1").expect("d");
        let f = p.next_frame();
        assert!(f.talkspurt_start);
        assert_eq!(f.payload[0], library().get("digit_1").expect("d").pcmu[0]);
    }

    #[test]
    fn shipped_greeting_plays_its_whole_length() {
        let lib = crate::media::prompts::tests::shipped();
        let g = lib.get("greeting").expect("greeting");
        let mut p = Player::new(Codec::Pcma, lib);
        p.enqueue_id("greeting").expect("g");
        let mut n = 0;
        let mut bytes = Vec::new();
        while p.poll_event().is_none() {
            bytes.extend_from_slice(&p.next_frame().payload);
            n += 1;
        }
        assert_eq!(n, g.samples.div_ceil(FRAME_SAMPLES));
        assert_eq!(&bytes[..g.samples], &g.pcma[..]);
    }
}
