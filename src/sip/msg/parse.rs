//! The SIP message parser (RFC 3261 §7, §25 grammar; RFC 4475 torture cases; RFC 5118 IPv6).
//!
//! PURE: bytes in, a [`Message`] or a typed [`ParseError`] out. It never panics on input and
//! never allocates per byte; every scan is linear in the input.
//!
//! We wrote our own rather than use rsip, which accepts 11 of RFC 4475's 26 valid messages,
//! knows no compact forms and ignores Content-Length. Beyond the grammar, [`parse`] checks what
//! libraries skip: Content-Length against the body (§18.3: a datagram longer than it is cut,
//! a shorter one is refused), duplicate Content-Length, the CSeq method against the request
//! method (§8.1.1.5), the SIP version (→ 505), the mandatory headers (§8.1.1), single-valued
//! headers given twice, and bounded sizes. Header values are stored with folding collapsed; the
//! Request-URI, Via, From, To, CSeq, Contact, Route and Record-Route are parsed to check them.
//!
//! Invariant of a parsed message: it carries exactly one `Content-Length` header, equal to the
//! length of its body (added at the end when the datagram had none), so that
//! `parse(&m.to_bytes()) == Ok(m)`.

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

const fn malformed(what: &'static str, at: usize) -> ParseError {
    ParseError::Malformed { what, at }
}

/// Headers every message must carry: a request's six of §8.1.1 but Max-Forwards (RFC 2543
/// peers omit it, and we are the last hop anyway); a response copies them (§8.2.6.2).
const MANDATORY: [&str; 5] = ["To", "From", "CSeq", "Call-ID", "Via"];

/// Headers that may appear at most once (§20: not `#(…)` lists), with the error to report.
const SINGLE: [(&str, &str); 6] = [
    ("To", "duplicate To header"),
    ("From", "duplicate From header"),
    ("Call-ID", "duplicate Call-ID header"),
    ("CSeq", "duplicate CSeq header"),
    ("Max-Forwards", "duplicate Max-Forwards header"),
    ("Content-Type", "duplicate Content-Type header"),
];

/// Parse one whole message from a datagram (or a frame cut by [`frame`]).
///
/// Leading CR/LF bytes are skipped (§7.5). Without Content-Length the body is the rest of the
/// datagram; with it, extra bytes are dropped and missing ones are an error (§18.3).
pub fn parse(buf: &[u8]) -> Result<Message, ParseError> {
    if buf.len() > MAX_DATAGRAM {
        return Err(ParseError::TooLarge);
    }
    let start = skip_crlf(buf);
    let (head_end, body_start) =
        head_end(buf, start).ok_or(malformed("header section without an empty line", buf.len()))?;
    let mut lines = lines(buf, start, head_end);
    let (_, first) = lines.next().ok_or(malformed("start line", start))?;
    let start_line = parse_start_line(first, start)?;
    let (mut headers, offsets) = parse_header_lines(lines)?;

    // Body, sized by Content-Length (§18.3, §20.14).
    let available = buf.len() - body_start;
    let body_len = match content_length(&headers, &offsets)? {
        Some(declared) if declared > available => {
            return Err(ParseError::ContentLength {
                declared,
                actual: available,
            });
        }
        Some(declared) => declared,
        None => available,
    };
    headers.set("Content-Length", body_len.to_string());
    let body = buf[body_start..body_start + body_len].to_vec();

    check_headers(&headers, &offsets, start_line.method())?;
    Ok(match start_line {
        StartLine::Request { method, uri } => Message::Request(Request {
            method,
            uri,
            headers,
            body,
        }),
        StartLine::Response { status, reason } => Message::Response(Response {
            status,
            reason,
            headers,
            body,
        }),
    })
}

/// Stream framing (§18.3): the length of the first complete message in `buf`, `Ok(None)` when more
/// bytes are needed. Leading CRLFs (keep-alives, RFC 5626 §3.5.1) count as part of the frame.
///
/// A frame made only of CR/LF bytes is a keep-alive: drop it (answer a double CRLF "ping" with a
/// CRLF "pong") instead of parsing it. CRLFs before a message are part of its frame, and
/// [`parse`] skips them. A message without Content-Length cannot be framed on a
/// stream and is `Malformed`: close the connection.
pub fn frame(buf: &[u8]) -> Result<Option<usize>, ParseError> {
    let start = skip_crlf(buf);
    if start == buf.len() {
        return Ok((start > 0).then_some(start));
    }
    let Some((head_end, body_start)) = head_end(buf, start) else {
        if buf.len() - start > MAX_MESSAGE {
            return Err(ParseError::TooLarge);
        }
        return Ok(None);
    };
    if body_start - start > MAX_MESSAGE {
        return Err(ParseError::TooLarge);
    }
    let mut lines = lines(buf, start, head_end);
    lines.next();
    let (headers, offsets) = parse_header_lines(lines)?;
    let declared = content_length(&headers, &offsets)?
        .ok_or(malformed("stream message without Content-Length", start))?;
    let total = body_start.saturating_add(declared);
    if total - start > MAX_MESSAGE {
        return Err(ParseError::TooLarge);
    }
    Ok((buf.len() >= total).then_some(total))
}

/// For a request too broken to parse: the Via, From, To, Call-ID and CSeq lines, read leniently,
/// so a 400 can still be routed back. `None` when no Via can be read (then the request is dropped).
pub fn salvage(buf: &[u8]) -> Option<Headers> {
    let buf = &buf[..buf.len().min(MAX_DATAGRAM)];
    let start = skip_crlf(buf);
    let end = head_end(buf, start).map_or(buf.len(), |(end, _)| end);
    let mut out = Headers::default();
    let mut keep_last = false;
    for (_, line) in lines(buf, start, end).skip(1) {
        if matches!(line.first(), Some(b' ' | b'\t')) {
            if keep_last && let Some(h) = out.0.last_mut() {
                append_folded(&mut h.value, &String::from_utf8_lossy(line));
            }
            continue;
        }
        keep_last = false;
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = String::from_utf8_lossy(trim_bytes(&line[..colon]));
        let name = canonical_name(&name);
        if out.0.len() < MAX_HEADERS && ["Via", "From", "To", "Call-ID", "CSeq"].contains(&&*name) {
            let value = String::from_utf8_lossy(&line[colon + 1..]);
            out.0.push(Header {
                name,
                value: trim_lws(&value).to_owned(),
            });
            keep_last = true;
        }
    }
    let top = out.list("Via").first().map(|v| parse_via(v).is_ok());
    (top == Some(true)).then_some(out)
}

/// CSeq (§20.16): `1*DIGIT LWS Method`; the number must be below 2**31 (§8.1.1.5).
pub(crate) fn parse_cseq(v: &str) -> Result<CSeq, ParseError> {
    let mut c = Cursor::new(v);
    c.ws();
    let digits = c.take_while(|b| b.is_ascii_digit());
    if digits.is_empty() || digits.len() > 10 {
        return Err(malformed("CSeq number", c.i));
    }
    let seq = digits
        .parse::<u64>()
        .ok()
        .filter(|&n| n < 1 << 31)
        .ok_or(malformed("CSeq number (2**31 or more)", c.i))?;
    if !c.ws() {
        return Err(malformed("CSeq (no space before the method)", c.i));
    }
    let method = c.take_while(is_token_byte);
    c.ws();
    if method.is_empty() || !c.done() {
        return Err(malformed("CSeq method", c.i));
    }
    Ok(CSeq {
        seq: seq as u32,
        method: Method::from_token(method),
    })
}

/// One Via element (§20.42): `SIP / 2.0 / transport LWS sent-by *( SEMI via-params )`, with LWS
/// allowed around the slashes (RFC 4475 wsinv), an IPv6 sent-by in brackets (RFC 5118 §4.5) and
/// valueless parameters (`rport`, RFC 3581).
pub fn parse_via(v: &str) -> Result<Via, ParseError> {
    let mut c = Cursor::new(v);
    c.ws();
    let name = c.take_while(is_token_byte);
    if !name.eq_ignore_ascii_case("SIP") {
        return Err(malformed("Via protocol name", c.i));
    }
    c.ws();
    c.expect(b'/', "Via sent-protocol")?;
    c.ws();
    if c.take_while(is_token_byte) != "2.0" {
        return Err(malformed("Via protocol version", c.i));
    }
    c.ws();
    c.expect(b'/', "Via sent-protocol")?;
    c.ws();
    let transport = c.take_while(is_token_byte);
    if transport.is_empty() {
        return Err(malformed("Via transport", c.i));
    }
    if !c.ws() {
        return Err(malformed("Via (no space before sent-by)", c.i));
    }
    let host = c.host()?;
    c.ws();
    let port = if c.eat(b':') {
        c.ws();
        Some(c.port()?)
    } else {
        None
    };
    let params = c.params("Via parameter")?;
    Ok(Via {
        transport: transport.to_ascii_uppercase(),
        host: host.to_owned(),
        port,
        params,
    })
}

/// From, To, Contact, Route, Record-Route (§20.10, §25.1): `[display-name] <URI> *(;param)` or a
/// bare URI, whose `;params` then belong to the header. The display name is kept as on the wire
/// (quotes and escapes included); see [`NameAddr::display_name`].
pub fn parse_name_addr(v: &str) -> Result<NameAddr, ParseError> {
    let mut c = Cursor::new(v);
    c.ws();
    let (display, uri) = if c.peek() == Some(b'"') {
        let quoted = c.quoted()?;
        c.ws();
        c.expect(b'<', "name-addr (no < after the display name)")?;
        (Some(quoted.to_owned()), c.angle_uri()?)
    } else if v.as_bytes()[c.i..]
        .iter()
        .find(|&&b| matches!(b, b'<' | b';' | b'"'))
        == Some(&b'<')
    {
        // A token display name (or none): `*(token LWS) <`. UTF-8 is tolerated in the tokens
        // (unquoted `José <sip:…>` is common); separators such as `,` are not (RFC 4475 baddn).
        let lt = c.i + v[c.i..].find('<').unwrap_or(0);
        let name = trim_lws(&v[c.i..lt]);
        if !name
            .split([' ', '\t'])
            .filter(|w| !w.is_empty())
            .all(|w| w.bytes().all(|b| is_token_byte(b) || !b.is_ascii()))
        {
            return Err(malformed("display name", c.i));
        }
        c.i = lt + 1;
        ((!name.is_empty()).then(|| name.to_owned()), c.angle_uri()?)
    } else {
        // addr-spec: no `,`, `?` or `;` may belong to the URI (§20.10).
        let at = c.i;
        let spec = c.take_while(|b| !matches!(b, b' ' | b'\t' | b';'));
        if spec.contains([',', '?']) {
            return Err(malformed("URI with , or ? outside <>", at));
        }
        (None, parse_uri(spec).map_err(|e| shift(e, at))?)
    };
    let params = c.params("header parameter")?;
    Ok(NameAddr {
        display,
        uri,
        params,
    })
}

/// Parse a URI (`sip:`, `sips:`, or any absolute URI kept opaque).
///
/// SIP URIs (§19.1.1, §25.1): `user[:password]@`, a host name, IPv4 address or bracketed IPv6
/// reference (RFC 5118; the 3-colon form of RFC 5118 §4.10 is accepted), `:port`, `;params`,
/// `?headers`. Escapes stay escaped. No whitespace, `<`, `>` or `"` anywhere.
pub fn parse_uri(s: &str) -> Result<Uri, ParseError> {
    if let Some(i) = s
        .bytes()
        .position(|b| b <= b' ' || b >= 0x7f || matches!(b, b'<' | b'>' | b'"'))
    {
        return Err(malformed("URI character", i));
    }
    let colon = s.find(':').ok_or(malformed("URI without scheme", 0))?;
    let scheme = &s[..colon];
    let scheme_ok = scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !scheme_ok {
        return Err(malformed("URI scheme", 0));
    }
    let scheme = scheme.to_ascii_lowercase();
    let rest = &s[colon + 1..];
    if scheme != "sip" && scheme != "sips" {
        if rest.is_empty() {
            return Err(malformed("empty URI", colon + 1));
        }
        return Ok(Uri {
            scheme,
            user: None,
            password: None,
            host: String::new(),
            port: None,
            params: Params::default(),
            headers: None,
            opaque: Some(rest.to_owned()),
        });
    }
    let base = colon + 1;
    let (user, password, hostpart, hoff) = match rest.find('@') {
        Some(at) => {
            let (user, password) = match rest[..at].split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (&rest[..at], None),
            };
            if user.is_empty() || !uri_chars_ok(user, b"&=+$,;?/") {
                return Err(malformed("URI user", base));
            }
            if password.is_some_and(|p| !uri_chars_ok(p, b"&=+$,")) {
                return Err(malformed("URI password", base));
            }
            (Some(user), password, &rest[at + 1..], base + at + 1)
        }
        None => (None, None, rest, base),
    };
    let mut c = Cursor::new(hostpart);
    let host = c.host().map_err(|e| shift(e, hoff))?;
    let port = if c.eat(b':') {
        Some(c.port().map_err(|e| shift(e, hoff))?)
    } else {
        None
    };
    let mut params = Params::default();
    while c.eat(b';') {
        let p = c.take_while(|b| b != b';' && b != b'?');
        let (name, value) = match p.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (p, None),
        };
        if name.is_empty()
            || !uri_chars_ok(name, b"[]/:&+$")
            || !value.is_none_or(|v| uri_chars_ok(v, b"[]/:&+$"))
        {
            return Err(malformed("URI parameter", hoff + c.i));
        }
        params.0.push((name.to_owned(), value.map(str::to_owned)));
    }
    let headers = if c.eat(b'?') {
        let h = c.take_while(|_| true);
        if h.is_empty() || !uri_chars_ok(h, b"[]/?:+$=&") {
            return Err(malformed("URI headers", hoff + c.i));
        }
        Some(h.to_owned())
    } else {
        None
    };
    if !c.done() {
        return Err(malformed("URI host or port", hoff + c.i));
    }
    Ok(Uri {
        scheme,
        user: user.map(str::to_owned),
        password: password.map(str::to_owned),
        host: host.to_owned(),
        port,
        params,
        headers,
        opaque: None,
    })
}

// ------------------------------------------------------------------------------------------
// Start line and header section.

enum StartLine {
    Request { method: Method, uri: Uri },
    Response { status: u16, reason: String },
}

impl StartLine {
    fn method(&self) -> Option<&Method> {
        match self {
            Self::Request { method, .. } => Some(method),
            Self::Response { .. } => None,
        }
    }
}

/// Request-Line (§7.1: exactly one SP between the three parts, RFC 4475 lwsstart/trws/lwsruri)
/// or Status-Line (§7.2: three digits, then any reason, possibly empty: RFC 4475 noreason).
fn parse_start_line(line: &[u8], at: usize) -> Result<StartLine, ParseError> {
    if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"SIP/") {
        let sp = line
            .iter()
            .position(|&b| b == b' ')
            .ok_or(malformed("status line", at))?;
        check_version(&line[..sp], at)?;
        let rest = &line[sp + 1..];
        let code_ok = rest.len() >= 3
            && rest[..3].iter().all(u8::is_ascii_digit)
            && (rest.len() == 3 || rest[3] == b' ')
            && (b'1'..=b'6').contains(&rest[0]);
        if !code_ok {
            return Err(malformed("status code", at + sp + 1));
        }
        let status = rest[..3]
            .iter()
            .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
        let reason = String::from_utf8_lossy(rest.get(4..).unwrap_or_default()).into_owned();
        return Ok(StartLine::Response { status, reason });
    }
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed(
            "request line (need Method SP Request-URI SP SIP-Version)",
            at,
        ));
    };
    if method.is_empty() || !method.iter().all(|&b| is_token_byte(b)) {
        return Err(malformed("method", at));
    }
    check_version(version, at + method.len() + uri.len() + 2)?;
    let uri_at = at + method.len() + 1;
    let uri = std::str::from_utf8(uri).map_err(|_| malformed("Request-URI", uri_at))?;
    let uri = parse_uri(uri).map_err(|e| shift(e, uri_at))?;
    if uri.headers.is_some() {
        // §19.1.1 table: headers are not allowed in a Request-URI (RFC 4475 escruri).
        return Err(malformed("Request-URI with headers", uri_at));
    }
    let method = Method::from_token(std::str::from_utf8(method).unwrap_or_default());
    Ok(StartLine::Request { method, uri })
}

fn check_version(v: &[u8], at: usize) -> Result<(), ParseError> {
    if v.eq_ignore_ascii_case(b"SIP/2.0") {
        Ok(())
    } else if v.len() > 4 && v[..4].eq_ignore_ascii_case(b"SIP/") {
        Err(ParseError::BadVersion(
            String::from_utf8_lossy(v).into_owned(),
        ))
    } else {
        Err(malformed("SIP version", at))
    }
}

/// Header lines into headers, unfolding continuation lines (§7.3.1) and expanding compact names.
/// Also returns where each header starts, for error offsets.
fn parse_header_lines<'a>(
    lines: impl Iterator<Item = (usize, &'a [u8])>,
) -> Result<(Headers, Vec<usize>), ParseError> {
    let mut headers = Headers::default();
    let mut offsets = Vec::new();
    for (at, line) in lines {
        if matches!(line.first(), Some(b' ' | b'\t')) {
            let h = headers
                .0
                .last_mut()
                .ok_or(malformed("continuation line before any header", at))?;
            append_folded(&mut h.value, &String::from_utf8_lossy(line));
            continue;
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(malformed("header line without a colon", at))?;
        let name = trim_bytes(&line[..colon]);
        if name.is_empty() || !name.iter().all(|&b| is_token_byte(b)) {
            return Err(malformed("header name", at));
        }
        if headers.0.len() == MAX_HEADERS {
            return Err(ParseError::TooManyHeaders);
        }
        // Token bytes are ASCII, so this cannot fail.
        let name = canonical_name(std::str::from_utf8(name).unwrap_or_default());
        let value = String::from_utf8_lossy(&line[colon + 1..]);
        headers.0.push(Header {
            name,
            value: trim_lws(&value).to_owned(),
        });
        offsets.push(at);
    }
    Ok((headers, offsets))
}

/// Join a continuation line onto a header value: the fold and the whitespace around it become
/// one space.
fn append_folded(value: &mut String, line: &str) {
    let piece = trim_lws(line);
    if piece.is_empty() {
        return;
    }
    if !value.is_empty() {
        value.push(' ');
    }
    value.push_str(piece);
}

/// The declared Content-Length, if any; two of them (even equal) are an error (RFC 4475 mcl01).
fn content_length(headers: &Headers, offsets: &[usize]) -> Result<Option<usize>, ParseError> {
    let mut found = None;
    for (i, h) in headers.0.iter().enumerate() {
        if h.name != "Content-Length" {
            continue;
        }
        let at = offsets.get(i).copied().unwrap_or_default();
        if found.is_some() {
            return Err(malformed("duplicate Content-Length", at));
        }
        let v = h.value.as_str();
        if v.is_empty() || v.len() > 9 || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed("Content-Length value", at));
        }
        found = Some(
            v.parse::<usize>()
                .map_err(|_| malformed("Content-Length value", at))?,
        );
    }
    Ok(found)
}

/// Mandatory and single-valued headers, and the syntax of the headers the stack relies on.
fn check_headers(
    h: &Headers,
    offsets: &[usize],
    method: Option<&Method>,
) -> Result<(), ParseError> {
    for name in MANDATORY {
        if h.count(name) == 0 {
            return Err(ParseError::MissingHeader(name));
        }
    }
    for (name, what) in SINGLE {
        if h.count(name) > 1 {
            return Err(malformed(what, position(h, offsets, name)));
        }
    }
    for (i, hdr) in h.0.iter().enumerate() {
        let at = offsets.get(i).copied().unwrap_or_default();
        let v = hdr.value.as_str();
        let sh = |e| shift(e, at);
        match &*hdr.name {
            "CSeq" => {
                let cseq = parse_cseq(v).map_err(sh)?;
                if let Some(m) = method
                    && *m != cseq.method
                {
                    return Err(ParseError::CSeqMethodMismatch {
                        cseq: cseq.method.to_string(),
                        method: m.to_string(),
                    });
                }
            }
            "Call-ID" if v.is_empty() || v.contains([' ', '\t']) => {
                return Err(malformed("Call-ID", at));
            }
            "From" | "To" => {
                parse_name_addr(v).map_err(sh)?;
            }
            "Via" => {
                let mut n = 0;
                for e in split_list(v) {
                    parse_via(e).map_err(sh)?;
                    n += 1;
                }
                if n == 0 {
                    return Err(malformed("empty Via", at));
                }
            }
            "Contact" if v != "*" => {
                for e in split_list(v) {
                    parse_name_addr(e).map_err(sh)?;
                }
            }
            "Route" | "Record-Route" => {
                for e in split_list(v) {
                    parse_name_addr(e).map_err(sh)?;
                }
            }
            "Max-Forwards" => {
                // §20.22: an integer 0-255.
                // Leading zeros are fine (RFC 4475 wsinv: 0068).
                let ok = !v.is_empty()
                    && v.len() <= 9
                    && v.bytes().all(|b| b.is_ascii_digit())
                    && v.parse::<u32>().is_ok_and(|n| n <= 255);
                if !ok {
                    return Err(malformed("Max-Forwards", at));
                }
            }
            // §20.17: rfc1123-date, always in GMT (RFC 4475 baddate).
            "Date" if !v.ends_with(" GMT") => return Err(malformed("Date (not GMT)", at)),
            _ => {}
        }
    }
    Ok(())
}

fn position(h: &Headers, offsets: &[usize], name: &str) -> usize {
    h.0.iter()
        .enumerate()
        .filter(|(_, x)| x.name == name)
        .nth(1)
        .and_then(|(i, _)| offsets.get(i).copied())
        .unwrap_or_default()
}

// ------------------------------------------------------------------------------------------
// Byte-level helpers.

/// `token` characters (§25.1).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// URI component characters: `unreserved`, valid `%HH` escapes and the `extra` reserved ones.
fn uri_chars_ok(s: &str, extra: &[u8]) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
                if !(hex(i + 1) && hex(i + 2)) {
                    return false;
                }
                i += 3;
                continue;
            }
            c if c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
                )
                || extra.contains(&c) => {}
            _ => return false,
        }
        i += 1;
    }
    true
}

/// Index of the first byte that is not CR or LF (§7.5: ignore CRLFs before the start line).
fn skip_crlf(buf: &[u8]) -> usize {
    buf.iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len())
}

/// Where the header section that starts at `from` ends: (start of the empty line, start of the
/// body). Lines end in CRLF; a bare LF is tolerated.
fn head_end(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i < buf.len() {
        let n = buf[i..].iter().position(|&b| b == b'\n')?;
        let line = &buf[i..i + n];
        if line.is_empty() || line == b"\r" {
            return Some((i, i + n + 1));
        }
        i += n + 1;
    }
    None
}

/// The lines of `buf[from..to]`, each with its offset and without its CRLF (or LF).
fn lines(buf: &[u8], from: usize, to: usize) -> impl Iterator<Item = (usize, &[u8])> {
    let mut i = from;
    std::iter::from_fn(move || {
        if i >= to {
            return None;
        }
        let rest = &buf[i..to];
        let n = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let line = rest[..n].strip_suffix(b"\r").unwrap_or(&rest[..n]);
        let at = i;
        i += n + 1;
        Some((at, line))
    })
}

fn trim_bytes(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|&c| c != b' ' && c != b'\t')
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|&c| c != b' ' && c != b'\t')
        .map_or(start, |e| e + 1);
    &b[start..end.max(start)]
}

/// Trim SIP linear whitespace (SP, HTAB) only, so printing and re-parsing is stable.
fn trim_lws(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// Move an error's offset by `by` (errors from sub-parsers count from their own input).
fn shift(e: ParseError, by: usize) -> ParseError {
    match e {
        ParseError::Malformed { what, at } => malformed(what, at + by),
        other => other,
    }
}

/// A cursor over a header value. It only stops on ASCII bytes, so its slices are always on
/// `char` boundaries.
struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Self {
        Self { s, i: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    fn done(&self) -> bool {
        self.i >= self.s.len()
    }

    /// Skip SP/HTAB; true if any was skipped.
    fn ws(&mut self) -> bool {
        let start = self.i;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
        self.i > start
    }

    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        if hit {
            self.i += 1;
        }
        hit
    }

    fn expect(&mut self, c: u8, what: &'static str) -> Result<(), ParseError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(malformed(what, self.i))
        }
    }

    /// The longest run of ASCII bytes matching `f`.
    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.i;
        while let Some(b) = self.peek() {
            if !b.is_ascii() || !f(b) {
                break;
            }
            self.i += 1;
        }
        &self.s[start..self.i]
    }

    /// A quoted-string (§25.1) with its quotes, `\` escaping any byte but CR/LF.
    fn quoted(&mut self) -> Result<&'a str, ParseError> {
        let start = self.i;
        self.expect(b'"', "quoted string")?;
        let b = self.s.as_bytes();
        while self.i < b.len() {
            match b[self.i] {
                b'\\' => self.i += 2,
                b'"' => {
                    self.i += 1;
                    return Ok(&self.s[start..self.i]);
                }
                _ => self.i += 1,
            }
        }
        self.i = self.s.len();
        Err(malformed("unterminated quoted string", start))
    }

    /// `<URI>` after the `<`: no whitespace inside (RFC 4475 badaspec).
    fn angle_uri(&mut self) -> Result<Uri, ParseError> {
        let start = self.i;
        let gt = self.s[start..]
            .find('>')
            .ok_or(malformed("name-addr without >", start))?;
        self.i = start + gt + 1;
        parse_uri(&self.s[start..start + gt]).map_err(|e| shift(e, start))
    }

    /// `host`: a host name or IPv4 address, or an IPv6 reference in brackets (RFC 5118).
    fn host(&mut self) -> Result<&'a str, ParseError> {
        let start = self.i;
        if self.eat(b'[') {
            let inner = self.take_while(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
            if !inner.contains(':') || !self.eat(b']') {
                return Err(malformed("IPv6 reference", start));
            }
        } else if self
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
            .is_empty()
        {
            return Err(malformed("host", start));
        }
        Ok(&self.s[start..self.i])
    }

    fn port(&mut self) -> Result<u16, ParseError> {
        let at = self.i;
        let digits = self.take_while(|b| b.is_ascii_digit());
        if digits.is_empty() || digits.len() > 5 {
            return Err(malformed("port", at));
        }
        digits.parse().map_err(|_| malformed("port", at))
    }

    /// `*( SEMI name [EQUAL value] )` to the end of the input, LWS allowed around `;` and `=`.
    /// Values are tokens, hosts (`[v6]`, `a:b::c`) or quoted strings (kept with their quotes).
    fn params(&mut self, what: &'static str) -> Result<Params, ParseError> {
        let mut params = Params::default();
        loop {
            self.ws();
            if self.done() {
                return Ok(params);
            }
            self.expect(b';', what)?;
            self.ws();
            let name = self.take_while(is_token_byte);
            if name.is_empty() {
                return Err(malformed(what, self.i));
            }
            self.ws();
            let value = if self.eat(b'=') {
                self.ws();
                let v = if self.peek() == Some(b'"') {
                    self.quoted()?
                } else {
                    self.take_while(|b| is_token_byte(b) || matches!(b, b':' | b'[' | b']'))
                };
                if v.is_empty() {
                    return Err(malformed(what, self.i));
                }
                Some(v.to_owned())
            } else {
                None
            };
            params.0.push((name.to_owned(), value));
        }
    }
}
