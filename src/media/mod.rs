//! Media layer (PURE): SDP offer/answer (RFC 3264), RTP packets and per-call sessions
//! (RFC 3550), G.711, DTMF (RFC 4733, SIP INFO, in-band) and the two-leg bridge.
//! No sockets, tasks or clocks here: time comes in as `now`, bytes go out into caller buffers.

pub mod bridge;
pub mod dtmf;
pub mod g711;
pub mod rtp;
pub mod sdp;
pub mod session;
