//! SIP messages: types, typed header views, the parser and the printer.
//!
//! PURE. The parser is ours (see `parse.rs` for why) and checks what libraries skip:
//! Content-Length against the body, duplicate Content-Length, CSeq method against the request
//! method, the SIP version (→ 505), and bounded sizes.

mod parse;
mod types;

#[cfg(test)]
mod tests;

pub use parse::{
    MAX_DATAGRAM, MAX_HEADERS, MAX_MESSAGE, ParseError, frame, parse, parse_name_addr, parse_uri,
    parse_via, salvage,
};
pub use types::*;
