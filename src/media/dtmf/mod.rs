//! DTMF: key presses from the caller. This branch holds the in-band (audio) detector; RFC 4733
//! telephone-events and SIP INFO live beside it.

pub mod inband;
