//! Hand-written SIP over a byte stream (TCP or TLS), for the peers SIPp cannot play: a PBX
//! whose connection dies mid-call, a PBX or a carrier over TLS (Debian's SIPp has no TLS).

use std::io::Read;
use std::time::{Duration, Instant};

/// Read from `s` (whose socket has a short read timeout) until a message starting with `start`
/// has arrived whole up to its blank line; it and everything after it. `None` when the peer
/// closed or `within` passed.
pub(crate) fn read_until(s: &mut impl Read, start: &str, within: Duration) -> Option<String> {
    let deadline = Instant::now() + within;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return None,
        }
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(at) = text.find(start) {
            let rest = &text[at..];
            if let Some(end) = rest.find("\r\n\r\n") {
                return Some(rest[..end + 4].to_owned());
            }
        }
    }
    None
}

/// The value of header `name` in `msg`.
pub(crate) fn header<'a>(msg: &'a str, name: &str) -> &'a str {
    msg.lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
        .unwrap_or_else(|| panic!("no {name} in\n{msg}"))
}

/// A 200 OK to request `req` (no body).
pub(crate) fn ok_to(req: &str) -> String {
    format!(
        "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
        header(req, "Via"),
        header(req, "From"),
        header(req, "To"),
        header(req, "Call-ID"),
        header(req, "CSeq"),
    )
}

/// A minimal SDP offer or answer with audio (PCMU) on `port`.
pub(crate) fn sdp(port: u16) -> String {
    format!(
        "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )
}
