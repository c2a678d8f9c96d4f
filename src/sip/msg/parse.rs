//! The SIP message parser (RFC 3261 §7, §25 grammar; RFC 4475 torture cases; RFC 5118 IPv6).
//!
//! PURE. Filled in by the SIP-core work: see the module docs of `msg`.

use super::types::*;

/// Largest UDP datagram we accept (RFC 3261 §18.1.1 path MTU discussion; jumbo INVITEs fit).
pub const MAX_DATAGRAM: usize = 65_507;
/// Largest message (headers + body) we frame on a stream transport.
pub const MAX_MESSAGE: usize = 65_536;
/// Most header lines a message may carry.
pub const MAX_HEADERS: usize = 128;

/// Why bytes are not a message we accept. `Incomplete` is not a failure (stream framing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("need more bytes")]
    Incomplete,
    #[error("malformed {what} at byte {at}")]
    Malformed { what: &'static str, at: usize },
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("unsupported SIP version {0}")]
    BadVersion(String),
    #[error("message too large")]
    TooLarge,
    #[error("too many headers")]
    TooManyHeaders,
    #[error("Content-Length {declared} does not match body length {actual}")]
    ContentLength { declared: usize, actual: usize },
    #[error("CSeq method {cseq} does not match request method {method}")]
    CSeqMethodMismatch { cseq: String, method: String },
}

impl ParseError {
    /// The status code to answer a request that failed with this error (§21.4).
    pub fn status(&self) -> u16 {
        match self {
            Self::BadVersion(_) => 505,
            Self::TooLarge => 513,
            _ => 400,
        }
    }
}

/// Parse one whole message from a datagram (or a frame cut by [`frame`]).
pub fn parse(_buf: &[u8]) -> Result<Message, ParseError> {
    todo!()
}

/// Stream framing (§18.3): the length of the first complete message in `buf`, `Ok(None)` when more
/// bytes are needed. Leading CRLFs (keep-alives, RFC 5626 §3.5.1) count as part of the frame.
pub fn frame(_buf: &[u8]) -> Result<Option<usize>, ParseError> {
    todo!()
}

/// For a request too broken to parse: the Via, From, To, Call-ID and CSeq lines, read leniently,
/// so a 400 can still be routed back. `None` when no Via can be read (then the request is dropped).
pub fn salvage(_buf: &[u8]) -> Option<Headers> {
    todo!()
}

pub(crate) fn parse_cseq(_v: &str) -> Result<CSeq, ParseError> {
    todo!()
}
pub fn parse_via(_v: &str) -> Result<Via, ParseError> {
    todo!()
}
pub fn parse_name_addr(_v: &str) -> Result<NameAddr, ParseError> {
    todo!()
}

/// Parse a URI (`sip:`, `sips:`, or any absolute URI kept opaque).
pub fn parse_uri(_s: &str) -> Result<Uri, ParseError> {
    todo!()
}
