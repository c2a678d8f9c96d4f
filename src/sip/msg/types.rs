//! Message types and typed views of the headers a user agent needs.

use std::borrow::Cow;
use std::fmt;

/// A SIP request method (§7.1). Unknown methods are kept, so we can answer 501 with Allow.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Info,
    Refer,
    Notify,
    Subscribe,
    Update,
    Prack,
    Message,
    Publish,
    Other(String),
}

impl Method {
    /// Method names are case-sensitive (§7.1).
    pub fn from_token(s: &str) -> Self {
        match s {
            "INVITE" => Self::Invite,
            "ACK" => Self::Ack,
            "BYE" => Self::Bye,
            "CANCEL" => Self::Cancel,
            "OPTIONS" => Self::Options,
            "REGISTER" => Self::Register,
            "INFO" => Self::Info,
            "REFER" => Self::Refer,
            "NOTIFY" => Self::Notify,
            "SUBSCRIBE" => Self::Subscribe,
            "UPDATE" => Self::Update,
            "PRACK" => Self::Prack,
            "MESSAGE" => Self::Message,
            "PUBLISH" => Self::Publish,
            other => Self::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Invite => "INVITE",
            Self::Ack => "ACK",
            Self::Bye => "BYE",
            Self::Cancel => "CANCEL",
            Self::Options => "OPTIONS",
            Self::Register => "REGISTER",
            Self::Info => "INFO",
            Self::Refer => "REFER",
            Self::Notify => "NOTIFY",
            Self::Subscribe => "SUBSCRIBE",
            Self::Update => "UPDATE",
            Self::Prack => "PRACK",
            Self::Message => "MESSAGE",
            Self::Publish => "PUBLISH",
            Self::Other(s) => s,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A header line. `name` is the canonical long form (compact forms such as `v` are expanded on
/// parse); `value` is the raw value with folding (LWS) collapsed and ends trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Borrowed for the names Hammond knows (no allocation to parse, copy or look one up).
    pub name: Cow<'static, str>,
    pub value: String,
}

/// Headers in wire order. Look-ups are case-insensitive and accept compact forms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<Header>);

impl Headers {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        let name = canonical_name(name);
        self.0
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(&name))
            .map(|h| h.value.as_str())
    }

    /// Every header line named `name`, in order (not split on commas).
    pub fn get_all<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        let name = canonical_name(name);
        self.0
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(&name))
            .map(|h| h.value.as_str())
    }

    /// Every element of a list header (Via, Route, Record-Route, Contact, Allow…), splitting
    /// lines on commas that are outside quotes and angle brackets (§7.3.1).
    pub fn list(&self, name: &str) -> Vec<&str> {
        self.get_all(name).flat_map(split_list).collect()
    }

    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        self.0.push(Header {
            name: canonical_name(name),
            value: value.into(),
        });
    }

    /// Replace every `name` line with one line holding `value`, at the first one's place.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let name = canonical_name(name);
        let value = value.into();
        match self
            .0
            .iter()
            .position(|h| h.name.eq_ignore_ascii_case(&name))
        {
            Some(i) => {
                self.0[i].value = value;
                let mut seen = 0usize;
                self.0.retain(|h| {
                    if h.name.eq_ignore_ascii_case(&name) {
                        seen += 1;
                        seen == 1
                    } else {
                        true
                    }
                });
            }
            None => self.0.push(Header { name, value }),
        }
    }

    pub fn remove(&mut self, name: &str) {
        let name = canonical_name(name);
        self.0.retain(|h| !h.name.eq_ignore_ascii_case(&name));
    }

    pub fn count(&self, name: &str) -> usize {
        self.get_all(name).count()
    }
}

/// Expand compact forms (§7.3.3, RFC 3515 `r`, RFC 4028 `x`…) and normalise the case of the
/// headers we know, so printing is tidy. Unknown names are kept as written.
pub fn canonical_name(name: &str) -> Cow<'static, str> {
    const KNOWN: &[(&str, &str)] = &[
        ("i", "Call-ID"),
        ("m", "Contact"),
        ("e", "Content-Encoding"),
        ("l", "Content-Length"),
        ("c", "Content-Type"),
        ("f", "From"),
        ("s", "Subject"),
        ("k", "Supported"),
        ("t", "To"),
        ("v", "Via"),
        ("r", "Refer-To"),
        ("b", "Referred-By"),
        ("o", "Event"),
        ("u", "Allow-Events"),
        ("x", "Session-Expires"),
        ("call-id", "Call-ID"),
        ("contact", "Contact"),
        ("content-length", "Content-Length"),
        ("content-type", "Content-Type"),
        ("content-encoding", "Content-Encoding"),
        ("from", "From"),
        ("to", "To"),
        ("via", "Via"),
        ("cseq", "CSeq"),
        ("max-forwards", "Max-Forwards"),
        ("route", "Route"),
        ("record-route", "Record-Route"),
        ("require", "Require"),
        ("proxy-require", "Proxy-Require"),
        ("supported", "Supported"),
        ("allow", "Allow"),
        ("accept", "Accept"),
        ("user-agent", "User-Agent"),
        ("server", "Server"),
        ("expires", "Expires"),
        ("refer-to", "Refer-To"),
        ("event", "Event"),
        ("www-authenticate", "WWW-Authenticate"),
        ("proxy-authenticate", "Proxy-Authenticate"),
        ("authorization", "Authorization"),
        ("proxy-authorization", "Proxy-Authorization"),
        ("retry-after", "Retry-After"),
        ("unsupported", "Unsupported"),
        ("p-asserted-identity", "P-Asserted-Identity"),
        ("subscription-state", "Subscription-State"),
    ];
    KNOWN
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map_or_else(|| Cow::Owned(name.to_owned()), |(_, v)| Cow::Borrowed(*v))
}

/// Split a list header value on top-level commas (outside `"…"` and `<…>`), trimmed.
pub fn split_list(value: &str) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let (mut in_quote, mut in_angle, mut escaped, mut start) = (false, false, false, 0);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quote => escaped = true,
            '"' => in_quote = !in_quote,
            '<' if !in_quote => in_angle = true,
            '>' if !in_quote => in_angle = false,
            ',' if !in_quote && !in_angle => {
                parts.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(value[start..].trim());
    parts.into_iter().filter(|p| !p.is_empty())
}

/// A `;name=value` parameter list, in order. Names compare case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub Vec<(String, Option<String>)>);

impl Params {
    /// The value of `name`: `Some(None)` when present without a value (`;lr`).
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn set(&mut self, name: &str, value: Option<String>) {
        match self
            .0
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            Some(slot) => slot.1 = value,
            None => self.0.push((name.to_owned(), value)),
        }
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v) in &self.0 {
            match v {
                Some(v) => write!(f, ";{k}={v}")?,
                None => write!(f, ";{k}")?,
            }
        }
        Ok(())
    }
}

/// A SIP or SIPS URI (§19.1), or another absolute URI kept opaque (`tel:`, `mailto:` …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    /// Lowercased scheme: `sip`, `sips`, `tel`…
    pub scheme: String,
    /// The user part, still %-escaped as on the wire. `None` for a host-only URI.
    pub user: Option<String>,
    /// Password after `user:`, rarely seen, kept for fidelity.
    pub password: Option<String>,
    /// Host name, IPv4 address, or IPv6 reference *with* its brackets (`[::1]`).
    pub host: String,
    pub port: Option<u16>,
    pub params: Params,
    /// `?h=v&…` headers part, raw, without the `?`.
    pub headers: Option<String>,
    /// For non-SIP schemes, everything after `scheme:`.
    pub opaque: Option<String>,
}

impl Uri {
    pub fn is_sip(&self) -> bool {
        self.scheme == "sip" || self.scheme == "sips"
    }

    /// The user part with %-escapes decoded (for queue look-up and numbers).
    pub fn user_decoded(&self) -> Option<String> {
        self.user.as_deref().map(percent_decode)
    }

    /// `host[:port]` as a string, brackets kept for IPv6.
    pub fn host_port(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(op) = &self.opaque {
            return write!(f, "{}:{op}", self.scheme);
        }
        write!(f, "{}:", self.scheme)?;
        if let Some(u) = &self.user {
            f.write_str(u)?;
            if let Some(p) = &self.password {
                write!(f, ":{p}")?;
            }
            f.write_str("@")?;
        }
        f.write_str(&self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.params)?;
        if let Some(h) = &self.headers {
            write!(f, "?{h}")?;
        }
        Ok(())
    }
}

/// Decode `%XX` escapes; malformed escapes are kept literally.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| char::from(c).to_digit(16);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        // Byte-wise, so a `%` before a multi-byte character cannot split it.
        if b[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                b.get(i + 1).and_then(|&c| hex(c)),
                b.get(i + 2).and_then(|&c| hex(c)),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// From, To, Contact, Route, Record-Route, Refer-To: `"Display" <uri>;params` or a bare URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name as on the wire: a quoted string keeps its quotes and escapes
    /// (`"J Rosenberg \\\""`), tokens their spacing. See [`NameAddr::display_name`].
    pub display: Option<String>,
    pub uri: Uri,
    /// Header parameters (outside the angle brackets), e.g. `tag`, `expires`.
    pub params: Params,
}

impl NameAddr {
    /// The display name with quotes removed and `\x` escapes (§25.1 quoted-pair) resolved.
    pub fn display_name(&self) -> Option<String> {
        let d = self.display.as_deref()?;
        let Some(inner) = d.strip_prefix('"').and_then(|d| d.strip_suffix('"')) else {
            return Some(d.to_owned());
        };
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.extend(chars.next()),
                c => out.push(c),
            }
        }
        Some(out)
    }

    pub fn tag(&self) -> Option<&str> {
        self.params.get("tag").flatten()
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            write!(f, "{d} ")?;
        }
        write!(f, "<{}>{}", self.uri, self.params)
    }
}

/// One Via element (§20.42).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// `UDP`, `TCP`, `TLS`, `WS`… uppercased.
    pub transport: String,
    /// sent-by host; IPv6 with brackets.
    pub host: String,
    pub port: Option<u16>,
    pub params: Params,
}

impl Via {
    pub fn branch(&self) -> Option<&str> {
        self.params.get("branch").flatten()
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.params)
    }
}

/// CSeq (§20.16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub uri: Uri,
    pub headers: Headers,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Request(Request),
    Response(Response),
}

impl Message {
    pub fn headers(&self) -> &Headers {
        match self {
            Self::Request(r) => &r.headers,
            Self::Response(r) => &r.headers,
        }
    }
}

/// Typed views shared by requests and responses. Each returns `None` when the header is absent
/// or does not parse; a parsed message has already been checked to carry the mandatory ones.
pub trait HeaderViews {
    fn hdrs(&self) -> &Headers;

    fn call_id(&self) -> Option<&str> {
        self.hdrs().get("Call-ID")
    }
    fn cseq(&self) -> Option<CSeq> {
        self.hdrs()
            .get("CSeq")
            .and_then(|v| crate::sip::msg::parse::parse_cseq(v).ok())
    }
    fn vias(&self) -> Vec<Via> {
        self.hdrs()
            .list("Via")
            .into_iter()
            .filter_map(|v| crate::sip::msg::parse::parse_via(v).ok())
            .collect()
    }
    fn top_via(&self) -> Option<Via> {
        self.hdrs()
            .list("Via")
            .first()
            .and_then(|v| crate::sip::msg::parse::parse_via(v).ok())
    }
    // The name is pinned (callers use it); it reads the From header, it converts nothing.
    #[allow(clippy::wrong_self_convention)]
    fn from_hdr(&self) -> Option<NameAddr> {
        self.hdrs()
            .get("From")
            .and_then(|v| crate::sip::msg::parse::parse_name_addr(v).ok())
    }
    fn to_hdr(&self) -> Option<NameAddr> {
        self.hdrs()
            .get("To")
            .and_then(|v| crate::sip::msg::parse::parse_name_addr(v).ok())
    }
    fn contact(&self) -> Option<NameAddr> {
        self.hdrs()
            .list("Contact")
            .first()
            .and_then(|v| crate::sip::msg::parse::parse_name_addr(v).ok())
    }
    /// Route or Record-Route entries, in order.
    fn routes(&self, name: &str) -> Vec<NameAddr> {
        self.hdrs()
            .list(name)
            .into_iter()
            .filter_map(|v| crate::sip::msg::parse::parse_name_addr(v).ok())
            .collect()
    }
    fn content_type(&self) -> Option<&str> {
        self.hdrs().get("Content-Type")
    }
}

impl HeaderViews for Request {
    fn hdrs(&self) -> &Headers {
        &self.headers
    }
}

impl HeaderViews for Response {
    fn hdrs(&self) -> &Headers {
        &self.headers
    }
}

impl Request {
    /// Serialise, setting Content-Length from the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} SIP/2.0\r\n", self.method, self.uri).into_bytes();
        write_headers_and_body(&mut out, &self.headers, &self.body);
        out
    }
}

impl Response {
    /// A response to `req` (§8.2.6.2): Via (all), From, To, Call-ID and CSeq copied. The caller
    /// adds a To tag where the response creates or belongs to a dialog.
    pub fn to_request(req: &Request, status: u16, reason: &str) -> Self {
        let mut headers = Headers::default();
        for h in &req.headers.0 {
            if ["Via", "From", "To", "Call-ID", "CSeq"]
                .iter()
                .any(|n| h.name.eq_ignore_ascii_case(n))
            {
                headers.0.push(h.clone());
            }
        }
        Self {
            status,
            reason: reason.to_owned(),
            headers,
            body: Vec::new(),
        }
    }

    /// Serialise, setting Content-Length from the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("SIP/2.0 {} {}\r\n", self.status, self.reason).into_bytes();
        write_headers_and_body(&mut out, &self.headers, &self.body);
        out
    }

    pub fn is_provisional(&self) -> bool {
        self.status < 200
    }
}

impl Message {
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::Request(r) => r.to_bytes(),
            Self::Response(r) => r.to_bytes(),
        }
    }
}

/// Headers in order, then the body. Content-Length always states the body length: written at
/// the place of the first Content-Length header (so a parsed message prints back in its own
/// order), or last when there is none; further Content-Length lines are dropped.
fn write_headers_and_body(out: &mut Vec<u8>, headers: &Headers, body: &[u8]) {
    let mut wrote_length = false;
    for h in &headers.0 {
        if h.name.eq_ignore_ascii_case("Content-Length") {
            if !wrote_length {
                out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
                wrote_length = true;
            }
            continue;
        }
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !wrote_length {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// The standard reason phrase for the codes Hammond sends.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        _ => "Unknown",
    }
}
