//! Media: G.711, prompts, the per-call player and its 20 ms pacing clock, DTMF detection and
//! voicemail recording. PURE apart from prompt and recording file I/O.
//!
//! (mediadsp branch: declares only the DSP half; the lead merges rtp/sdp/session/bridge.)

pub mod dtmf;
pub mod error;
pub mod g711;
pub mod pacer;
pub mod player;
pub mod prompts;
pub mod recorder;

pub use error::Error;
pub use g711::Codec;
