//! Media (PURE apart from prompt and recording file I/O): SDP offer/answer (RFC 3264), RTP
//! packets and per-call sessions (RFC 3550), G.711, prompts and the per-call player with its
//! 20 ms pacing clock, DTMF (RFC 4733, SIP INFO, in-band), voicemail recording, and the two-leg
//! bridge. No sockets, tasks or clocks: time comes in as `now`, bytes go out into caller buffers.

pub mod amd;
pub mod bridge;
pub mod demux;
pub mod dtls_srtp;
pub mod dtmf;
pub mod error;
pub mod g711;
pub mod leg;
pub mod pacer;
pub mod player;
pub mod prompts;
pub mod recorder;
pub mod rtp;
pub mod sdes;
pub mod sdp;
pub mod session;
pub mod srtp;

pub use error::Error;
pub use g711::Codec;
