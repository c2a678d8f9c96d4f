//! SDP parsing (RFC 4566) and the offer/answer model (RFC 3264) for one G.711 audio stream
//! plus RFC 4733 telephone-events.
//!
//! - [`SessionDescription::parse`] reads an offer or answer: tolerant of LF-only line ends and of
//!   unknown attributes, bounded in size, and refusing lines that are not `<type>=<value>`.
//! - [`negotiate`] answers an offer (§6): the first RTP/AVP audio stream with PCMU or PCMA in the
//!   offerer's order is accepted; every other `m=` line is rejected with port 0 (§6); the
//!   direction is mirrored (§6.1) and `c=0.0.0.0` is the old hold form (§8.4): we do not send.
//! - [`build_offer`] / [`accept_answer`] are the outbound-leg half (§5, §7).
//! - SRTP by SDES (RFC 4568, keys in [`crate::media::sdes`]): a leg's [`LocalCrypto`] says
//!   whether it offers `a=crypto` (on `RTP/SAVP` when mandatory, on `RTP/AVP` when optional,
//!   §7.1.2's best effort) and holds our keys; an offer's `RTP/SAVP` stream, or an `RTP/AVP`
//!   one with `a=crypto`, is answered with the first offered suite we support and our own key.
//!   The outcome is [`Negotiated::srtp`]; no common suite where SRTP is required is
//!   [`SdpError::NoCommonCrypto`].
//!
//! The answer's and offer's `o=` line keeps one session id per [`LocalOrigin`] and increments the
//! version on every new description (§8). PURE: no sockets, no clocks; SDP is not on the per-packet
//! path, so allocation is fine here.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use crate::idgen::IdGen;
use crate::media::g711::Codec;
use crate::media::sdes::{CryptoAttr, MasterKey, Mki, Suite};

/// Longest SDP body we parse; anything larger is refused.
pub const MAX_SDP_LEN: usize = 32 * 1024;
/// Most `m=` sections we parse.
pub const MAX_MEDIA: usize = 16;
/// Most formats on one `m=` line.
pub const MAX_FORMATS: usize = 64;
/// Most `a=` lines per section.
pub const MAX_ATTRIBUTES: usize = 128;

/// Why an SDP could not be parsed or negotiated. Every variant is the peer's fault: answer an
/// INVITE carrying one with 488 Not Acceptable Here (we never build a bad local description).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// The body exceeds [`MAX_SDP_LEN`] or one of the other bounds.
    #[error("SDP too large: {what}")]
    TooLarge {
        /// Which bound was exceeded.
        what: &'static str,
    },
    /// A line is not valid SDP.
    #[error("malformed SDP {what} on line {line}")]
    Malformed {
        /// What was wrong.
        what: &'static str,
        /// 1-based line number.
        line: usize,
    },
    /// A mandatory line (`v=`, `o=`, `c=` for an accepted stream) is missing.
    #[error("SDP lacks the {0} line")]
    Missing(&'static str),
    /// No RTP/AVP audio stream with a non-zero port.
    #[error("no RTP/AVP audio stream")]
    NoAudio,
    /// The audio stream offers neither PCMU nor PCMA (→ 488 Not Acceptable Here).
    #[error("no common codec")]
    NoCommonCodec,
    /// SRTP is required (an `RTP/SAVP` stream, or our mandatory policy) but no `a=crypto`
    /// names a suite and key we can use (→ 488).
    #[error("SRTP: no common crypto suite")]
    NoCommonCrypto,
}

/// Media direction attribute (RFC 3264 §5.1, §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// `a=sendrecv` (the default when no attribute is present).
    #[default]
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    fn parse(attr: &str) -> Option<Self> {
        match attr {
            "sendrecv" => Some(Self::SendRecv),
            "sendonly" => Some(Self::SendOnly),
            "recvonly" => Some(Self::RecvOnly),
            "inactive" => Some(Self::Inactive),
            _ => None,
        }
    }

    /// The attribute name, as written in `a=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SendRecv => "sendrecv",
            Self::SendOnly => "sendonly",
            Self::RecvOnly => "recvonly",
            Self::Inactive => "inactive",
        }
    }

    /// The direction seen from the other side (§6.1: sendonly is answered with recvonly).
    pub fn reverse(self) -> Self {
        match self {
            Self::SendOnly => Self::RecvOnly,
            Self::RecvOnly => Self::SendOnly,
            d => d,
        }
    }

    /// Whether this side sends media.
    pub fn sends(self) -> bool {
        matches!(self, Self::SendRecv | Self::SendOnly)
    }

    /// Whether this side expects to receive media.
    pub fn receives(self) -> bool {
        matches!(self, Self::SendRecv | Self::RecvOnly)
    }

    fn without_recv(self) -> Self {
        match self {
            Self::SendRecv => Self::SendOnly,
            Self::RecvOnly => Self::Inactive,
            d => d,
        }
    }
}

/// `a=rtpmap:<pt> <encoding>/<clock>[/<channels>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// Payload type.
    pub pt: u8,
    /// Encoding name as written (compare case-insensitively).
    pub encoding: String,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Channel count, if given.
    pub channels: Option<u8>,
}

/// The `o=` line (RFC 4566 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Username (`-` when none).
    pub username: String,
    /// Session id (numeric string).
    pub session_id: String,
    /// Session version (numeric string).
    pub session_version: String,
    /// Unicast address as written.
    pub address: String,
}

/// One `m=` section with its media-level lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSection {
    /// `audio`, `video`, ...
    pub media: String,
    /// Transport port; 0 means the stream is rejected/disabled.
    pub port: u16,
    /// `RTP/AVP`, `RTP/SAVP`, ...
    pub proto: String,
    /// Formats in the offerer's preference order (payload types for RTP).
    pub formats: Vec<String>,
    /// Media-level `c=` address.
    pub connection: Option<IpAddr>,
    /// `a=rtpmap` lines.
    pub rtpmaps: Vec<RtpMap>,
    /// `a=fmtp:<pt> <params>` lines.
    pub fmtps: Vec<(u8, String)>,
    /// `a=ptime` in milliseconds.
    pub ptime: Option<u32>,
    /// Media-level direction attribute.
    pub direction: Option<Direction>,
    /// The `a=crypto` lines we could parse with a suite we support, in order (RFC 4568).
    pub crypto: Vec<CryptoAttr>,
    /// `a=crypto` lines we could not use (malformed, unknown suite, unsupported parameter).
    pub crypto_refused: usize,
}

impl MediaSection {
    fn new(media: String, port: u16, proto: String, formats: Vec<String>) -> Self {
        Self {
            media,
            port,
            proto,
            formats,
            connection: None,
            rtpmaps: Vec::new(),
            fmtps: Vec::new(),
            ptime: None,
            direction: None,
            crypto: Vec::new(),
            crypto_refused: 0,
        }
    }

    /// The rtpmap for `pt`, if any.
    pub fn rtpmap(&self, pt: u8) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|m| m.pt == pt)
    }

    /// Whether this is an RTP/AVP audio stream that is not disabled.
    pub fn is_usable_audio(&self) -> bool {
        self.is_live_audio() && self.proto.eq_ignore_ascii_case("RTP/AVP")
    }

    /// Whether this is an RTP/SAVP audio stream (SRTP, RFC 3711 §12) that is not disabled.
    pub fn is_savp_audio(&self) -> bool {
        self.is_live_audio() && self.proto.eq_ignore_ascii_case("RTP/SAVP")
    }

    fn is_live_audio(&self) -> bool {
        self.media.eq_ignore_ascii_case("audio") && self.port != 0
    }

    /// The G.711 codecs of this section in its format order. Static PT 0 and 8 count without an
    /// rtpmap; an rtpmap that contradicts the static assignment disqualifies the PT.
    pub fn g711_codecs(&self) -> impl Iterator<Item = Codec> + '_ {
        self.formats.iter().filter_map(|f| {
            let pt: u8 = f.parse().ok()?;
            let codec = match pt {
                0 => Codec::Pcmu,
                8 => Codec::Pcma,
                _ => return None,
            };
            let name = match codec {
                Codec::Pcmu => "PCMU",
                Codec::Pcma => "PCMA",
            };
            match self.rtpmap(pt) {
                None => Some(codec),
                Some(m) if m.encoding.eq_ignore_ascii_case(name) && m.clock_rate == 8000 => {
                    Some(codec)
                }
                Some(_) => None,
            }
        })
    }

    /// The first offered `telephone-event/8000` payload type.
    pub fn telephone_event_pt(&self) -> Option<u8> {
        self.formats.iter().find_map(|f| {
            let pt: u8 = f.parse().ok()?;
            let m = self.rtpmap(pt)?;
            (m.encoding.eq_ignore_ascii_case("telephone-event") && m.clock_rate == 8000)
                .then_some(pt)
        })
    }
}

/// A parsed session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// The `o=` line.
    pub origin: Origin,
    /// The `s=` line (`-` if absent).
    pub session_name: String,
    /// Session-level `c=` address.
    pub connection: Option<IpAddr>,
    /// Session-level direction attribute.
    pub direction: Option<Direction>,
    /// The `m=` sections in order.
    pub media: Vec<MediaSection>,
}

fn parse_connection(value: &str, line: usize) -> Result<IpAddr, SdpError> {
    let bad = |what| SdpError::Malformed { what, line };
    let mut it = value.split_ascii_whitespace();
    let (Some(net), Some(kind), Some(addr), None) = (it.next(), it.next(), it.next(), it.next())
    else {
        return Err(bad("c= line"));
    };
    if net != "IN" {
        return Err(bad("c= network type"));
    }
    // Multicast TTL / count suffixes ("/127") are not for us, but parse the address anyway.
    let addr = addr.split('/').next().unwrap_or(addr);
    match kind {
        "IP4" => addr
            .parse::<std::net::Ipv4Addr>()
            .map(IpAddr::V4)
            .map_err(|_| bad("c= IPv4 address")),
        "IP6" => addr
            .parse::<std::net::Ipv6Addr>()
            .map(IpAddr::V6)
            .map_err(|_| bad("c= IPv6 address")),
        _ => Err(bad("c= address type")),
    }
}

fn parse_rtpmap(value: &str, line: usize) -> Result<RtpMap, SdpError> {
    let bad = SdpError::Malformed {
        what: "a=rtpmap",
        line,
    };
    let (pt, rest) = value.split_once(' ').ok_or(bad.clone())?;
    let pt: u8 = pt.parse().map_err(|_| bad.clone())?;
    let mut parts = rest.trim().split('/');
    let encoding = parts.next().filter(|e| !e.is_empty()).ok_or(bad.clone())?;
    let clock_rate: u32 = parts
        .next()
        .and_then(|c| c.parse().ok())
        .ok_or(bad.clone())?;
    let channels = match parts.next() {
        Some(c) => Some(c.parse().map_err(|_| bad.clone())?),
        None => None,
    };
    if parts.next().is_some() || pt > 127 {
        return Err(bad);
    }
    Ok(RtpMap {
        pt,
        encoding: encoding.to_owned(),
        clock_rate,
        channels,
    })
}

impl SessionDescription {
    /// Parse an SDP body (RFC 4566). Accepts CRLF or bare LF line ends and ignores unknown
    /// attributes and `a=rtcp`; refuses bodies that are oversized, lack `v=0`/`o=`, or contain
    /// lines that are not `<letter>=<value>`.
    pub fn parse(text: &str) -> Result<Self, SdpError> {
        if text.len() > MAX_SDP_LEN {
            return Err(SdpError::TooLarge { what: "body" });
        }
        let mut origin = None;
        let mut session_name = None;
        let mut connection = None;
        let mut direction = None;
        let mut media: Vec<MediaSection> = Vec::new();
        let mut attrs = 0usize;
        let mut seen_v = false;

        for (idx, raw) in text.split('\n').enumerate() {
            let line = idx + 1;
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            if raw.trim().is_empty() {
                continue;
            }
            let bytes = raw.as_bytes();
            if bytes.len() < 2 || bytes[1] != b'=' || !bytes[0].is_ascii_lowercase() {
                return Err(SdpError::Malformed {
                    what: "line (expected <type>=<value>)",
                    line,
                });
            }
            let kind = bytes[0];
            let value = raw[2..].trim();
            if !seen_v {
                if kind != b'v' || value != "0" {
                    return Err(SdpError::Missing("v=0"));
                }
                seen_v = true;
                continue;
            }
            match kind {
                b'v' => {
                    return Err(SdpError::Malformed {
                        what: "repeated v=",
                        line,
                    });
                }
                b'o' => {
                    let f: Vec<&str> = value.split_ascii_whitespace().collect();
                    if f.len() != 6 || origin.is_some() || !media.is_empty() {
                        return Err(SdpError::Malformed {
                            what: "o= line",
                            line,
                        });
                    }
                    origin = Some(Origin {
                        username: f[0].to_owned(),
                        session_id: f[1].to_owned(),
                        session_version: f[2].to_owned(),
                        address: f[5].to_owned(),
                    });
                }
                b's' if media.is_empty() => session_name = Some(value.to_owned()),
                b'c' => {
                    let addr = parse_connection(value, line)?;
                    match media.last_mut() {
                        Some(m) => m.connection = Some(addr),
                        None => connection = Some(addr),
                    }
                }
                b'm' => {
                    if media.len() >= MAX_MEDIA {
                        return Err(SdpError::TooLarge {
                            what: "m= sections",
                        });
                    }
                    let mut f = value.split_ascii_whitespace();
                    let bad = SdpError::Malformed {
                        what: "m= line",
                        line,
                    };
                    let kind = f.next().ok_or(bad.clone())?;
                    let port = f.next().ok_or(bad.clone())?;
                    let port: u16 = port
                        .split('/')
                        .next()
                        .and_then(|p| p.parse().ok())
                        .ok_or(bad.clone())?;
                    let proto = f.next().ok_or(bad.clone())?;
                    let formats: Vec<String> = f.map(str::to_owned).collect();
                    if formats.is_empty() {
                        return Err(bad);
                    }
                    if formats.len() > MAX_FORMATS {
                        return Err(SdpError::TooLarge { what: "m= formats" });
                    }
                    attrs = 0;
                    media.push(MediaSection::new(
                        kind.to_owned(),
                        port,
                        proto.to_owned(),
                        formats,
                    ));
                }
                b'a' => {
                    attrs += 1;
                    if attrs > MAX_ATTRIBUTES {
                        return Err(SdpError::TooLarge { what: "a= lines" });
                    }
                    let (name, val) = match value.split_once(':') {
                        Some((n, v)) => (n, Some(v.trim())),
                        None => (value, None),
                    };
                    if let Some(d) = Direction::parse(name) {
                        match media.last_mut() {
                            Some(m) => m.direction = Some(d),
                            None => direction = Some(d),
                        }
                        continue;
                    }
                    let Some(m) = media.last_mut() else { continue };
                    match (name, val) {
                        ("rtpmap", Some(v)) => {
                            let map = parse_rtpmap(v, line)?;
                            m.rtpmaps.retain(|old| old.pt != map.pt);
                            m.rtpmaps.push(map);
                        }
                        ("fmtp", Some(v)) => {
                            let (pt, params) = v.split_once(' ').unwrap_or((v, ""));
                            let pt = pt.parse().map_err(|_| SdpError::Malformed {
                                what: "a=fmtp",
                                line,
                            })?;
                            m.fmtps.push((pt, params.trim().to_owned()));
                        }
                        ("crypto", Some(v)) => match CryptoAttr::parse(v) {
                            Ok(c) if !m.crypto.iter().any(|o| o.tag == c.tag) => m.crypto.push(c),
                            // A repeated tag is ambiguous in an answer: keep the first.
                            Ok(_) | Err(_) => m.crypto_refused += 1,
                        },
                        ("ptime", Some(v)) => {
                            m.ptime = Some(v.parse().map_err(|_| SdpError::Malformed {
                                what: "a=ptime",
                                line,
                            })?);
                        }
                        // a=rtcp, a=maxptime, ICE...: not ours to interpret.
                        _ => {}
                    }
                }
                // RFC 4566 §5: the other defined types; we have no use for them.
                b's' | b'i' | b'u' | b'e' | b'p' | b'b' | b't' | b'r' | b'z' | b'k' => {}
                _ => {
                    return Err(SdpError::Malformed {
                        what: "unknown line type",
                        line,
                    });
                }
            }
        }
        if !seen_v {
            return Err(SdpError::Missing("v=0"));
        }
        Ok(Self {
            origin: origin.ok_or(SdpError::Missing("o="))?,
            session_name: session_name.unwrap_or_else(|| "-".to_owned()),
            connection,
            direction,
            media,
        })
    }

    /// The connection address in force for `m` (media-level, else session-level).
    pub fn connection_for(&self, m: &MediaSection) -> Option<IpAddr> {
        m.connection.or(self.connection)
    }

    /// The direction in force for `m` (media-level, else session-level, else sendrecv).
    pub fn direction_for(&self, m: &MediaSection) -> Direction {
        m.direction.or(self.direction).unwrap_or_default()
    }
}

/// What we can do locally: where we receive RTP and which codecs we accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    /// Our RTP address (the `c=` line).
    pub addr: IpAddr,
    /// Our RTP port (the `m=` line).
    pub port: u16,
    /// The G.711 codecs we accept, in our preference order for offers.
    pub codecs: Vec<Codec>,
    /// Whether we accept RFC 4733 telephone-events.
    pub telephone_event: bool,
    /// The telephone-event payload type we use in our offers (101 by convention).
    pub offer_dtmf_pt: u8,
    /// Packetisation time we send, in ms.
    pub ptime: u32,
    /// SRTP on this leg: `None` is plain RTP only (an `RTP/SAVP` offer is then unusable).
    pub crypto: Option<LocalCrypto>,
}

/// Whether a leg uses SRTP (`[sip.trunk] srtp` for the customer's leg).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SrtpPolicy {
    /// Plain RTP: no `a=crypto` offered.
    #[default]
    Off,
    /// Offer `RTP/AVP` with `a=crypto` (RFC 4568 §7.1.2 best effort): SRTP if the answer takes
    /// a key, plain RTP if not. As answerer: SRTP whenever the offer asks for it.
    Optional,
    /// Offer `RTP/SAVP` with `a=crypto`: an answer without a usable key fails the leg.
    Mandatory,
}

/// Our SRTP side of one leg: the policy, and the key we send with for each suite (RFC 4568
/// §6.1: a fresh key per line). Build one per leg with keys from the OS RNG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalCrypto {
    /// Off, optional or mandatory.
    pub policy: SrtpPolicy,
    keys: [MasterKey; 2],
}

impl LocalCrypto {
    /// `policy` with a key per suite, each filled by `fill` (the OS RNG in production).
    pub fn new(policy: SrtpPolicy, mut fill: impl FnMut(&mut [u8])) -> Self {
        Self {
            policy,
            keys: [
                MasterKey::generate(&mut fill),
                MasterKey::generate(&mut fill),
            ],
        }
    }

    /// Our key for `suite`.
    pub fn key(&self, suite: Suite) -> &MasterKey {
        &self.keys[suite.index()]
    }

    /// The `a=crypto` lines of our offer: one per suite we support, tags 1, 2, ...
    fn offer_lines(&self) -> Vec<CryptoAttr> {
        Suite::ALL
            .into_iter()
            .zip(1..)
            .map(|(s, tag)| CryptoAttr::ours(tag, s, self.key(s).clone()))
            .collect()
    }
}

/// The keys of an SRTP leg: we protect what we send with `local` and check and decrypt what
/// arrives with `remote` (each side's `a=crypto` names the key it sends with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtpKeys {
    /// The suite both sides use.
    pub suite: Suite,
    /// Our sending key.
    pub local: MasterKey,
    /// The peer's sending key.
    pub remote: MasterKey,
    /// The MKI the peer's packets carry, if its key has one.
    pub remote_mki: Option<Mki>,
}

impl LocalMedia {
    /// PCMU and PCMA, telephone-event 101, 20 ms: what Hammond normally offers and accepts.
    pub fn new(addr: IpAddr, port: u16) -> Self {
        Self {
            addr,
            port,
            codecs: vec![Codec::Pcmu, Codec::Pcma],
            telephone_event: true,
            offer_dtmf_pt: 101,
            ptime: 20,
            crypto: None,
        }
    }

    /// The same with SRTP as `crypto` says.
    pub fn with_crypto(mut self, crypto: LocalCrypto) -> Self {
        self.crypto = Some(crypto);
        self
    }
}

/// Our `o=` line state across one dialog: one session id, a version that increments with every
/// description we send (RFC 3264 §8). Create one per call leg and keep it for the dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalOrigin {
    session_id: u64,
    version: u64,
    sent_any: bool,
}

impl LocalOrigin {
    /// A fresh origin with a random session id (and initial version equal to it, as is customary).
    pub fn new(ids: &mut IdGen) -> Self {
        // Keep it below 2^62 so version increments never overflow an NTP-ish i64 in peers.
        let session_id = ids.next_u64() >> 2;
        Self {
            session_id,
            version: session_id,
            sent_any: false,
        }
    }

    /// The session id in every `o=` line of this dialog.
    pub fn session_id(&self) -> u64 {
        self.session_id
    }

    /// The version of the last description built (or the initial one if none yet).
    pub fn version(&self) -> u64 {
        self.version
    }

    fn next_version(&mut self) -> u64 {
        if self.sent_any {
            self.version = self.version.wrapping_add(1);
        }
        self.sent_any = true;
        self.version
    }
}

/// The outcome of an offer/answer exchange: what the session must do. Its `Debug` masks the
/// keys in `answer_sdp`.
#[derive(Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The audio codec both sides use.
    pub codec: Codec,
    /// The telephone-event payload type, when the peer supports RFC 4733.
    pub dtmf_pt: Option<u8>,
    /// Where we send RTP; `None` for the hold form `c=0.0.0.0` (we do not send).
    pub remote: Option<SocketAddr>,
    /// Our own direction: whether we send and/or receive.
    pub direction: Direction,
    /// Our SDP in force: the answer we built (after [`negotiate`]) or the offer we sent (after
    /// [`accept_answer`]).
    pub answer_sdp: String,
    /// The SRTP keys, when the leg is SRTP; `None` for plain RTP.
    pub srtp: Option<SrtpKeys>,
}

impl std::fmt::Debug for Negotiated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Negotiated")
            .field("codec", &self.codec)
            .field("dtmf_pt", &self.dtmf_pt)
            .field("remote", &self.remote)
            .field("direction", &self.direction)
            .field("answer_sdp", &crate::media::sdes::redact(&self.answer_sdp))
            .field("srtp", &self.srtp)
            .finish()
    }
}

fn ip_kind(addr: IpAddr) -> &'static str {
    match addr {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

fn codec_name(c: Codec) -> &'static str {
    match c {
        Codec::Pcmu => "PCMU",
        Codec::Pcma => "PCMA",
    }
}

fn write_session_header(out: &mut String, local: &LocalMedia, origin: &mut LocalOrigin) {
    let v = origin.next_version();
    let kind = ip_kind(local.addr);
    let _ = write!(
        out,
        "v=0\r\no=hammond {} {v} IN {kind} {}\r\ns=hammond\r\nc=IN {kind} {}\r\nt=0 0\r\n",
        origin.session_id, local.addr, local.addr
    );
}

fn write_audio(
    out: &mut String,
    local: &LocalMedia,
    codecs: &[Codec],
    dtmf_pt: Option<u8>,
    dir: Direction,
    (proto, crypto): (&str, &[CryptoAttr]),
) {
    let _ = write!(out, "m=audio {} {proto}", local.port);
    for c in codecs {
        let _ = write!(out, " {}", c.payload_type());
    }
    if let Some(pt) = dtmf_pt {
        let _ = write!(out, " {pt}");
    }
    out.push_str("\r\n");
    for c in codecs {
        let _ = write!(
            out,
            "a=rtpmap:{} {}/8000\r\n",
            c.payload_type(),
            codec_name(*c)
        );
    }
    if let Some(pt) = dtmf_pt {
        let _ = write!(
            out,
            "a=rtpmap:{pt} telephone-event/8000\r\na=fmtp:{pt} 0-15\r\n"
        );
    }
    let _ = write!(out, "a=ptime:{}\r\na={}\r\n", local.ptime, dir.as_str());
    for c in crypto {
        out.push_str("a=crypto:");
        c.write_value(out);
        out.push_str("\r\n");
    }
}

/// How `m` can be answered given our SRTP side `ours`: `Some(None)` plain RTP, `Some(Some(line))`
/// SRTP with the offered `line`, `None` not at all.
fn answerable<'m>(
    m: &'m MediaSection,
    ours: Option<&LocalCrypto>,
) -> Option<Option<&'m CryptoAttr>> {
    let policy = ours.map_or(SrtpPolicy::Off, |c| c.policy);
    // RFC 4568 §7.1.1: the first line, in the offerer's order, that we can do.
    let line = m.crypto.first().filter(|_| policy != SrtpPolicy::Off);
    if m.is_savp_audio() {
        return line.map(Some);
    }
    if !m.is_usable_audio() {
        return None;
    }
    match (policy, line) {
        (SrtpPolicy::Mandatory, None) => None,
        (_, line) => Some(line),
    }
}

fn remote_addr(ip: IpAddr, port: u16) -> Option<SocketAddr> {
    (!ip.is_unspecified()).then_some(SocketAddr::new(ip, port))
}

/// Answer `offer` (RFC 3264 §6): accept the first RTP/AVP audio stream whose codecs include one
/// of `local.codecs`, choosing the first such codec **in the offer's order**; answer its
/// telephone-event PT if offered; reject every other `m=` line with port 0. Call once per offer
/// (initial INVITE and each re-INVITE) with the dialog's [`LocalOrigin`].
pub fn negotiate(
    offer: &SessionDescription,
    local: &LocalMedia,
    origin: &mut LocalOrigin,
) -> Result<Negotiated, SdpError> {
    let mut chosen: Option<(usize, Codec, Option<&CryptoAttr>)> = None;
    let (mut saw_audio, mut saw_srtp) = (false, false);
    for (i, m) in offer.media.iter().enumerate() {
        saw_srtp |= m.is_savp_audio() || (m.is_usable_audio() && m.crypto_refused > 0);
        let Some(line) = answerable(m, local.crypto.as_ref()) else {
            continue;
        };
        saw_audio = true;
        if let Some(c) = m.g711_codecs().find(|c| local.codecs.contains(c)) {
            chosen = Some((i, c, line));
            break;
        }
    }
    let Some((idx, codec, line)) = chosen else {
        return Err(if saw_audio {
            SdpError::NoCommonCodec
        } else if local
            .crypto
            .as_ref()
            .is_some_and(|c| saw_srtp || c.policy == SrtpPolicy::Mandatory)
        {
            SdpError::NoCommonCrypto
        } else {
            SdpError::NoAudio
        });
    };
    // We answer the chosen line's tag and suite with our own key for that suite.
    let (answer_crypto, srtp) = match (line, local.crypto.as_ref()) {
        (Some(theirs), Some(ours)) => {
            let key = ours.key(theirs.suite).clone();
            let keys = SrtpKeys {
                suite: theirs.suite,
                local: key.clone(),
                remote: theirs.key.clone(),
                remote_mki: theirs.mki,
            };
            (
                vec![CryptoAttr::ours(theirs.tag, theirs.suite, key)],
                Some(keys),
            )
        }
        _ => (Vec::new(), None),
    };
    let m = &offer.media[idx];
    let ip = offer.connection_for(m).ok_or(SdpError::Missing("c="))?;
    let remote = remote_addr(ip, m.port);
    let mut offered = offer.direction_for(m);
    if remote.is_none() {
        // §8.4: c=0.0.0.0 means the offerer does not want to receive.
        offered = offered.without_recv();
    }
    let direction = offered.reverse();
    let dtmf_pt = if local.telephone_event {
        m.telephone_event_pt()
    } else {
        None
    };

    let mut sdp = String::with_capacity(512);
    write_session_header(&mut sdp, local, origin);
    for (i, other) in offer.media.iter().enumerate() {
        if i == idx {
            let proto = offer.media[idx].proto.as_str();
            write_audio(
                &mut sdp,
                local,
                &[codec],
                dtmf_pt,
                direction,
                (proto, &answer_crypto),
            );
        } else {
            // §6: a rejected stream keeps its media and formats with port 0.
            let _ = write!(sdp, "m={} 0 {}", other.media, other.proto);
            for f in &other.formats {
                let _ = write!(sdp, " {f}");
            }
            sdp.push_str("\r\n");
        }
    }
    Ok(Negotiated {
        codec,
        dtmf_pt,
        remote,
        direction,
        answer_sdp: sdp,
        srtp,
    })
}

/// An offer we sent on an outbound leg, kept until its answer arrives. Its `Debug` masks the
/// keys in the SDP.
#[derive(Clone, PartialEq, Eq)]
pub struct OfferState {
    sdp: String,
    codecs: Vec<Codec>,
    telephone_event: bool,
    /// Our SRTP side and the `a=crypto` lines we offered.
    crypto: Option<(LocalCrypto, Vec<CryptoAttr>)>,
}

impl std::fmt::Debug for OfferState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfferState")
            .field("sdp", &crate::media::sdes::redact(&self.sdp))
            .field("codecs", &self.codecs)
            .field("telephone_event", &self.telephone_event)
            .field("crypto", &self.crypto)
            .finish()
    }
}

impl OfferState {
    /// The SDP body to put in the INVITE.
    pub fn sdp(&self) -> &str {
        &self.sdp
    }
}

/// Build an offer for an outbound leg (RFC 3264 §5): `local.codecs` in order (PCMU, PCMA by
/// default), telephone-event on `local.offer_dtmf_pt`, sendrecv; with `local.crypto` not off,
/// an `a=crypto` line per suite on `RTP/SAVP` (mandatory) or `RTP/AVP` (optional). Keep the
/// returned state for [`accept_answer`].
pub fn build_offer(local: &LocalMedia, origin: &mut LocalOrigin) -> OfferState {
    let mut sdp = String::with_capacity(640);
    write_session_header(&mut sdp, local, origin);
    let dtmf = local.telephone_event.then_some(local.offer_dtmf_pt);
    let crypto = local
        .crypto
        .as_ref()
        .filter(|c| c.policy != SrtpPolicy::Off)
        .map(|c| (c.clone(), c.offer_lines()));
    let (proto, lines): (&str, &[CryptoAttr]) = match &crypto {
        Some((c, lines)) if c.policy == SrtpPolicy::Mandatory => ("RTP/SAVP", lines),
        Some((_, lines)) => ("RTP/AVP", lines),
        None => ("RTP/AVP", &[]),
    };
    write_audio(
        &mut sdp,
        local,
        &local.codecs,
        dtmf,
        Direction::SendRecv,
        (proto, lines),
    );
    OfferState {
        sdp,
        codecs: local.codecs.clone(),
        telephone_event: local.telephone_event,
        crypto,
    }
}

/// The SRTP outcome of the answer `m` to our offer: the keys when it took one of our lines,
/// `None` for plain RTP, or the error when SRTP was required and not agreed.
fn answered_crypto(offer: &OfferState, m: &MediaSection) -> Result<Option<SrtpKeys>, SdpError> {
    let savp = m.proto.eq_ignore_ascii_case("RTP/SAVP");
    let Some((ours, offered)) = &offer.crypto else {
        // We offered plain RTP: an answer that insists on SRTP has no key of ours.
        return if savp {
            Err(SdpError::NoCommonCrypto)
        } else {
            Ok(None)
        };
    };
    // RFC 4568 §7.1.3: the answer repeats the tag (and suite) of the line it accepted.
    let taken = m.crypto.iter().find_map(|theirs| {
        offered
            .iter()
            .find(|o| o.tag == theirs.tag && o.suite == theirs.suite)
            .map(|o| (o, theirs))
    });
    match taken {
        Some((o, theirs)) => Ok(Some(SrtpKeys {
            suite: o.suite,
            local: ours.key(o.suite).clone(),
            remote: theirs.key.clone(),
            remote_mki: theirs.mki,
        })),
        None if savp || ours.policy == SrtpPolicy::Mandatory => Err(SdpError::NoCommonCrypto),
        None => Ok(None),
    }
}

/// Apply the answer to an offer we sent (RFC 3264 §7): the first answered codec that we offered
/// wins; a rejected (port 0) or codec-less audio stream is [`SdpError::NoCommonCodec`].
pub fn accept_answer(offer: &OfferState, answer_sdp: &str) -> Result<Negotiated, SdpError> {
    let answer = SessionDescription::parse(answer_sdp)?;
    // We offered exactly one m= line, so the answer's first m= line is its answer.
    let m = answer.media.first().ok_or(SdpError::NoAudio)?;
    if !m.media.eq_ignore_ascii_case("audio") {
        return Err(SdpError::NoAudio);
    }
    if m.port == 0 {
        return Err(SdpError::NoCommonCodec);
    }
    let codec = m
        .g711_codecs()
        .find(|c| offer.codecs.contains(c))
        .ok_or(SdpError::NoCommonCodec)?;
    let srtp = answered_crypto(offer, m)?;
    let ip = answer.connection_for(m).ok_or(SdpError::Missing("c="))?;
    let remote = remote_addr(ip, m.port);
    let mut theirs = answer.direction_for(m);
    if remote.is_none() {
        theirs = theirs.without_recv();
    }
    Ok(Negotiated {
        codec,
        dtmf_pt: if offer.telephone_event {
            m.telephone_event_pt()
        } else {
            None
        },
        remote,
        direction: theirs.reverse(),
        answer_sdp: offer.sdp.clone(),
        srtp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIPP: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n\
        c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

    const ASTERISK: &str = "v=0\r\no=- 1234 1234 IN IP4 10.0.0.1\r\ns=Asterisk\r\n\
        c=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 10000 RTP/AVP 8 0 3 101\r\n\
        a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:3 GSM/8000\r\n\
        a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n\
        a=maxptime:150\r\na=sendrecv\r\n";

    const FREESWITCH: &str = "v=0\no=FreeSWITCH 1700000000 1700000001 IN IP4 192.168.1.10\n\
        s=FreeSWITCH\nc=IN IP4 192.168.1.10\nt=0 0\n\
        m=audio 16384 RTP/AVP 102 9 0 8 104 96\n\
        a=rtpmap:102 opus/48000/2\na=fmtp:102 useinbandfec=1; maxplaybackrate=16000\n\
        a=rtpmap:9 G722/8000\na=rtpmap:0 PCMU/8000\na=rtpmap:8 PCMA/8000\n\
        a=rtpmap:104 telephone-event/48000\na=rtpmap:96 telephone-event/8000\n\
        a=fmtp:96 0-16\na=ptime:20\na=sendrecv\na=rtcp:16385 IN IP4 192.168.1.10\n\
        m=video 16386 RTP/AVP 97\na=rtpmap:97 H264/90000\n";

    fn local() -> LocalMedia {
        LocalMedia::new("192.0.2.5".parse().unwrap(), 20000)
    }

    fn origin() -> LocalOrigin {
        LocalOrigin::new(&mut IdGen::seeded(1))
    }

    fn answer(offer: &str) -> Result<Negotiated, SdpError> {
        negotiate(
            &SessionDescription::parse(offer).unwrap(),
            &local(),
            &mut origin(),
        )
    }

    fn o_line(sdp: &str) -> Vec<String> {
        let line = sdp.lines().find(|l| l.starts_with("o=")).unwrap();
        line.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn sipp_default_offer() {
        let n = answer(SIPP).unwrap();
        assert_eq!(n.codec, Codec::Pcmu);
        assert_eq!(n.dtmf_pt, None);
        assert_eq!(n.remote, Some("127.0.0.1:6000".parse().unwrap()));
        assert_eq!(n.direction, Direction::SendRecv);
        assert!(n.answer_sdp.contains("m=audio 20000 RTP/AVP 0\r\n"));
        assert!(n.answer_sdp.contains("c=IN IP4 192.0.2.5\r\n"));
        assert!(!n.answer_sdp.contains("telephone-event"));
        // The answer must itself parse.
        SessionDescription::parse(&n.answer_sdp).unwrap();
    }

    #[test]
    fn asterisk_pcma_first_is_honoured() {
        let n = answer(ASTERISK).unwrap();
        assert_eq!(n.codec, Codec::Pcma);
        assert_eq!(n.dtmf_pt, Some(101));
        assert!(n.answer_sdp.contains("m=audio 20000 RTP/AVP 8 101\r\n"));
        assert!(
            n.answer_sdp
                .contains("a=rtpmap:101 telephone-event/8000\r\n")
        );
        assert!(n.answer_sdp.contains("a=sendrecv\r\n"));
    }

    #[test]
    fn freeswitch_lf_only_dynamic_dtmf_pt_and_rejected_video() {
        let n = answer(FREESWITCH).unwrap();
        assert_eq!(n.codec, Codec::Pcmu);
        assert_eq!(n.dtmf_pt, Some(96), "telephone-event/48000 is skipped");
        assert_eq!(n.remote, Some("192.168.1.10:16384".parse().unwrap()));
        let ans = SessionDescription::parse(&n.answer_sdp).unwrap();
        assert_eq!(ans.media.len(), 2, "one answer m= per offer m=");
        assert_eq!(ans.media[1].media, "video");
        assert_eq!(ans.media[1].port, 0);
        assert_eq!(ans.media[1].formats, ["97"]);
    }

    #[test]
    fn static_pt_without_rtpmap_counts_and_contradicting_rtpmap_does_not() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
                   m=audio 4000 RTP/AVP 0 8\r\na=rtpmap:0 opus/48000\r\n";
        assert_eq!(answer(sdp).unwrap().codec, Codec::Pcma);
    }

    #[test]
    fn no_common_codec_and_no_audio() {
        let g729 = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
                    m=audio 4000 RTP/AVP 18 101\r\na=rtpmap:18 G729/8000\r\n\
                    a=rtpmap:101 telephone-event/8000\r\n";
        assert_eq!(answer(g729), Err(SdpError::NoCommonCodec));
        let srtp = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
                    m=audio 4000 RTP/SAVP 0\r\n";
        assert_eq!(answer(srtp), Err(SdpError::NoAudio));
        let mut only_pcmu = local();
        only_pcmu.codecs = vec![Codec::Pcmu];
        let pcma = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
                    m=audio 4000 RTP/AVP 8\r\n";
        let r = negotiate(
            &SessionDescription::parse(pcma).unwrap(),
            &only_pcmu,
            &mut origin(),
        );
        assert_eq!(r, Err(SdpError::NoCommonCodec));
    }

    #[test]
    fn hold_forms() {
        let base = "v=0\r\no=- 1 2 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
                    m=audio 4000 RTP/AVP 0\r\n";
        let n = answer(&format!("{base}a=sendonly\r\n")).unwrap();
        assert_eq!(n.direction, Direction::RecvOnly);
        assert!(n.answer_sdp.contains("a=recvonly\r\n"));
        assert!(n.remote.is_some());

        let n = answer(&format!("{base}a=inactive\r\n")).unwrap();
        assert_eq!(n.direction, Direction::Inactive);
        assert!(n.answer_sdp.contains("a=inactive\r\n"));

        let n = answer(&format!("{base}a=recvonly\r\n")).unwrap();
        assert_eq!(n.direction, Direction::SendOnly);

        let old = base.replace("c=IN IP4 10.0.0.1", "c=IN IP4 0.0.0.0");
        let n = answer(&old).unwrap();
        assert_eq!(n.remote, None, "c=0.0.0.0: we do not send");
        assert_eq!(n.direction, Direction::RecvOnly);
        assert!(!n.direction.sends());

        // Session-level direction applies when the media has none.
        let sess = base.replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n");
        assert_eq!(answer(&sess).unwrap().direction, Direction::RecvOnly);
    }

    #[test]
    fn ipv6_offer_and_local() {
        let sdp = "v=0\r\no=- 1 1 IN IP6 2001:db8::1\r\ns=-\r\nt=0 0\r\n\
                   m=audio 5004 RTP/AVP 0\r\nc=IN IP6 2001:db8::1\r\n";
        let mut l = local();
        l.addr = "2001:db8::5".parse().unwrap();
        let n = negotiate(&SessionDescription::parse(sdp).unwrap(), &l, &mut origin()).unwrap();
        assert_eq!(n.remote, Some("[2001:db8::1]:5004".parse().unwrap()));
        assert!(n.answer_sdp.contains("c=IN IP6 2001:db8::5\r\n"));
        let v6_hold = sdp.replace("c=IN IP6 2001:db8::1", "c=IN IP6 ::");
        assert_eq!(answer(&v6_hold).unwrap().remote, None);
    }

    #[test]
    fn reoffer_keeps_session_id_and_increments_version() {
        let offer = SessionDescription::parse(ASTERISK).unwrap();
        let mut o = origin();
        let first = negotiate(&offer, &local(), &mut o).unwrap();
        let hold =
            SessionDescription::parse(&ASTERISK.replace("a=sendrecv", "a=sendonly")).unwrap();
        let second = negotiate(&hold, &local(), &mut o).unwrap();
        let (a, b) = (o_line(&first.answer_sdp), o_line(&second.answer_sdp));
        assert_eq!(a[1], b[1], "session id kept");
        let (va, vb): (u64, u64) = (a[2].parse().unwrap(), b[2].parse().unwrap());
        assert_eq!(vb, va + 1);
        assert_eq!(second.direction, Direction::RecvOnly);
    }

    #[test]
    fn outbound_offer_and_answer() {
        let mut o = origin();
        let offer = build_offer(&local(), &mut o);
        let parsed = SessionDescription::parse(offer.sdp()).unwrap();
        assert_eq!(parsed.media[0].formats, ["0", "8", "101"]);
        assert_eq!(parsed.media[0].telephone_event_pt(), Some(101));
        assert_eq!(parsed.direction_for(&parsed.media[0]), Direction::SendRecv);

        let ans = "v=0\r\no=agent 9 9 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n\
                   m=audio 7000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\n\
                   a=recvonly\r\n";
        let n = accept_answer(&offer, ans).unwrap();
        assert_eq!(n.codec, Codec::Pcma);
        assert_eq!(n.dtmf_pt, Some(101));
        assert_eq!(n.remote, Some("10.0.0.9:7000".parse().unwrap()));
        assert_eq!(n.direction, Direction::SendOnly);
        assert_eq!(n.answer_sdp, offer.sdp());

        let rejected = ans.replace("m=audio 7000", "m=audio 0");
        assert_eq!(
            accept_answer(&offer, &rejected),
            Err(SdpError::NoCommonCodec)
        );
        // A re-offer from us keeps the id and bumps the version.
        let again = build_offer(&local(), &mut o);
        assert_eq!(o_line(again.sdp())[1], o_line(offer.sdp())[1]);
    }

    #[test]
    fn second_audio_stream_is_used_when_the_first_is_unusable() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
                   m=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\n\
                   m=audio 4002 RTP/AVP 8 0\r\nm=audio 4004 RTP/AVP 0\r\n";
        let n = answer(sdp).unwrap();
        assert_eq!(n.codec, Codec::Pcma);
        assert_eq!(n.remote, Some("10.0.0.1:4002".parse().unwrap()));
        let ans = SessionDescription::parse(&n.answer_sdp).unwrap();
        let ports: Vec<u16> = ans.media.iter().map(|m| m.port).collect();
        assert_eq!(ports, [0, 20000, 0], "only one audio stream is answered");
        assert_eq!(ans.media[0].proto, "RTP/SAVP");
    }

    #[test]
    fn our_offer_answered_by_ourselves() {
        let mut ours = origin();
        let offer = build_offer(&local(), &mut ours);
        let mut peer = LocalMedia::new("10.0.0.7".parse().unwrap(), 30000);
        peer.codecs = vec![Codec::Pcma];
        let theirs = negotiate(
            &SessionDescription::parse(offer.sdp()).unwrap(),
            &peer,
            &mut origin(),
        )
        .unwrap();
        assert_eq!((theirs.codec, theirs.dtmf_pt), (Codec::Pcma, Some(101)));
        assert_eq!(theirs.remote, Some("192.0.2.5:20000".parse().unwrap()));
        let n = accept_answer(&offer, &theirs.answer_sdp).unwrap();
        assert_eq!((n.codec, n.dtmf_pt), (Codec::Pcma, Some(101)));
        assert_eq!(n.remote, Some("10.0.0.7:30000".parse().unwrap()));
        assert_eq!(n.direction, Direction::SendRecv);
    }

    #[test]
    fn garbage_is_refused() {
        for bad in [
            "",
            "hello",
            "v=1\r\no=- 1 1 IN IP4 1.2.3.4\r\n",
            "v=0\r\n",
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nthis is not sdp\r\n",
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4 999.1.1.1\r\n",
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP6 1.2.3.4\r\n",
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio x RTP/AVP 0\r\n",
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP\r\n",
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n",
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nX=1\r\n",
        ] {
            assert!(SessionDescription::parse(bad).is_err(), "accepted {bad:?}");
        }
        let huge = format!(
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n{}",
            "a=x\r\n".repeat(10_000)
        );
        assert_eq!(
            SessionDescription::parse(&huge),
            Err(SdpError::TooLarge { what: "body" })
        );
    }

    #[test]
    fn missing_connection_is_an_error() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
        assert_eq!(answer(sdp), Err(SdpError::Missing("c=")));
    }

    fn crypto(policy: SrtpPolicy, seed: u8) -> LocalCrypto {
        let mut n = seed;
        LocalCrypto::new(policy, |b| {
            for x in b {
                n = n.wrapping_mul(31).wrapping_add(7);
                *x = n;
            }
        })
    }

    fn srtp_local(policy: SrtpPolicy, seed: u8) -> LocalMedia {
        local().with_crypto(crypto(policy, seed))
    }

    const K1: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";

    fn savp_offer(proto: &str, lines: &str) -> String {
        format!(
            "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
             m=audio 4000 {proto} 0 101\r\na=rtpmap:101 telephone-event/8000\r\n{lines}"
        )
    }

    /// An inbound RTP/SAVP offer is answered on RTP/SAVP with the first suite we support, the
    /// offer's tag, and our own key for that suite.
    #[test]
    fn savp_offer_is_answered_with_our_key_for_the_first_supported_suite() {
        let offer = savp_offer(
            "RTP/SAVP",
            &format!(
                "a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:{K1}{K1}\r\n\
                 a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{K1}|2^31|3:1\r\n\
                 a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:{K1}\r\n"
            ),
        );
        let ours = srtp_local(SrtpPolicy::Optional, 1);
        let n = negotiate(
            &SessionDescription::parse(&offer).unwrap(),
            &ours,
            &mut origin(),
        )
        .unwrap();
        let keys = n.srtp.clone().expect("SRTP");
        assert_eq!(keys.suite, Suite::AesCm128HmacSha1_32);
        assert_eq!(
            &keys.local,
            ours.crypto
                .as_ref()
                .unwrap()
                .key(Suite::AesCm128HmacSha1_32)
        );
        assert_eq!(keys.remote.key(), b"YS___semctl () {");
        assert_eq!(keys.remote_mki, Some(Mki { value: 3, len: 1 }));
        let ans = SessionDescription::parse(&n.answer_sdp).unwrap();
        let m = &ans.media[0];
        assert_eq!(m.proto, "RTP/SAVP");
        assert_eq!(m.crypto.len(), 1);
        assert_eq!(
            (m.crypto[0].tag, m.crypto[0].suite),
            (2, Suite::AesCm128HmacSha1_32)
        );
        assert_eq!(m.crypto[0].key, keys.local);
        assert!(!format!("{n:?}").contains(K1), "keys stay out of Debug");
    }

    /// Best-effort SRTP (RTP/AVP with a=crypto) is answered with a key when we do SRTP and
    /// plainly when we do not; RTP/SAVP without a usable key is refused as such.
    #[test]
    fn avp_with_crypto_and_savp_without_a_usable_key() {
        let avp = savp_offer(
            "RTP/AVP",
            &format!("a=crypto:5 AES_CM_128_HMAC_SHA1_80 inline:{K1}\r\n"),
        );
        let parsed = SessionDescription::parse(&avp).unwrap();
        let n = negotiate(&parsed, &srtp_local(SrtpPolicy::Optional, 2), &mut origin()).unwrap();
        assert_eq!(
            n.srtp.as_ref().map(|k| k.suite),
            Some(Suite::AesCm128HmacSha1_80)
        );
        assert!(n.answer_sdp.contains("m=audio 20000 RTP/AVP 0 101\r\n"));
        assert!(
            n.answer_sdp
                .contains("a=crypto:5 AES_CM_128_HMAC_SHA1_80 inline:")
        );
        let plain = negotiate(&parsed, &local(), &mut origin()).unwrap();
        assert_eq!(plain.srtp, None);
        assert!(!plain.answer_sdp.contains("a=crypto"));

        let unusable = savp_offer(
            "RTP/SAVP",
            &format!("a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:{K1}{K1}\r\n"),
        );
        let parsed = SessionDescription::parse(&unusable).unwrap();
        assert_eq!(
            negotiate(&parsed, &srtp_local(SrtpPolicy::Optional, 2), &mut origin()),
            Err(SdpError::NoCommonCrypto)
        );
        let none = SessionDescription::parse(&savp_offer("RTP/SAVP", "")).unwrap();
        assert_eq!(
            negotiate(&none, &srtp_local(SrtpPolicy::Optional, 2), &mut origin()),
            Err(SdpError::NoCommonCrypto)
        );
        let plain_offer = SessionDescription::parse(&savp_offer("RTP/AVP", "")).unwrap();
        assert_eq!(
            negotiate(
                &plain_offer,
                &srtp_local(SrtpPolicy::Mandatory, 2),
                &mut origin()
            ),
            Err(SdpError::NoCommonCrypto)
        );
    }

    /// Mandatory offers RTP/SAVP, optional RTP/AVP, both with a line per suite and distinct
    /// keys; off offers neither.
    #[test]
    fn offers_by_policy() {
        let parse = |l: &LocalMedia| {
            let o = build_offer(l, &mut origin());
            SessionDescription::parse(o.sdp()).unwrap().media.remove(0)
        };
        let m = parse(&srtp_local(SrtpPolicy::Mandatory, 3));
        assert_eq!(m.proto, "RTP/SAVP");
        let offer = build_offer(&srtp_local(SrtpPolicy::Mandatory, 3), &mut origin());
        let shown = format!("{offer:?}");
        assert!(
            shown.contains("inline:REDACTED") && !shown.contains("MasterKey(["),
            "{shown}"
        );
        let tags: Vec<(u32, Suite)> = m.crypto.iter().map(|c| (c.tag, c.suite)).collect();
        assert_eq!(
            tags,
            [
                (1, Suite::AesCm128HmacSha1_80),
                (2, Suite::AesCm128HmacSha1_32)
            ]
        );
        assert_ne!(m.crypto[0].key, m.crypto[1].key);
        let m = parse(&srtp_local(SrtpPolicy::Optional, 3));
        assert_eq!((m.proto.as_str(), m.crypto.len()), ("RTP/AVP", 2));
        let m = parse(&srtp_local(SrtpPolicy::Off, 3));
        assert_eq!((m.proto.as_str(), m.crypto.len()), ("RTP/AVP", 0));
    }

    /// Our offer answered by a peer: the answer's tag picks the key we send with; mandatory
    /// without a usable answer key fails with NoCommonCrypto, optional falls back to RTP.
    #[test]
    fn answers_to_our_srtp_offers() {
        let ours = srtp_local(SrtpPolicy::Mandatory, 4);
        let offer = build_offer(&ours, &mut origin());
        let mut peer = srtp_local(SrtpPolicy::Optional, 5);
        peer.addr = "10.0.0.7".parse().unwrap();
        let theirs = negotiate(
            &SessionDescription::parse(offer.sdp()).unwrap(),
            &peer,
            &mut origin(),
        )
        .unwrap();
        let n = accept_answer(&offer, &theirs.answer_sdp).unwrap();
        let (a, b) = (n.srtp.unwrap(), theirs.srtp.unwrap());
        assert_eq!(a.suite, Suite::AesCm128HmacSha1_80);
        assert_eq!(
            (a.local, a.remote),
            (b.remote, b.local),
            "each side sends with its own key"
        );

        let answer = |proto: &str, lines: &str| {
            format!(
                "v=0\r\no=c 9 9 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n\
                 m=audio 7000 {proto} 0\r\n{lines}"
            )
        };
        // Tag 2 is our _32 line: the suite must match it.
        let wrong_suite = answer(
            "RTP/SAVP",
            &format!("a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{K1}\r\n"),
        );
        assert_eq!(
            accept_answer(&offer, &wrong_suite),
            Err(SdpError::NoCommonCrypto)
        );
        let second = answer(
            "RTP/SAVP",
            &format!("a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{K1}\r\n"),
        );
        let k = accept_answer(&offer, &second).unwrap().srtp.unwrap();
        assert_eq!(
            &k.local,
            ours.crypto
                .as_ref()
                .unwrap()
                .key(Suite::AesCm128HmacSha1_32)
        );
        assert_eq!(
            accept_answer(&offer, &answer("RTP/AVP", "")),
            Err(SdpError::NoCommonCrypto)
        );
        assert_eq!(
            accept_answer(&offer, &answer("RTP/SAVP", "a=crypto:1 junk\r\n")),
            Err(SdpError::NoCommonCrypto)
        );

        let optional = build_offer(&srtp_local(SrtpPolicy::Optional, 6), &mut origin());
        assert_eq!(
            accept_answer(&optional, &answer("RTP/AVP", ""))
                .unwrap()
                .srtp,
            None
        );
        assert_eq!(
            accept_answer(&optional, &answer("RTP/SAVP", "")),
            Err(SdpError::NoCommonCrypto)
        );
        let plain = build_offer(&local(), &mut origin());
        assert_eq!(
            accept_answer(&plain, &second),
            Err(SdpError::NoCommonCrypto)
        );
        assert_eq!(
            SdpError::NoCommonCrypto.to_string(),
            "SRTP: no common crypto suite"
        );
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,300}") {
            let _ = SessionDescription::parse(&s);
        }

        #[test]
        fn parse_sdp_like_never_panics(lines in proptest::collection::vec("[a-z]=[ -~]{0,40}", 0..20)) {
            let body = format!("v=0\r\n{}", lines.join("\r\n"));
            if let Ok(sd) = SessionDescription::parse(&body) {
                let _ = negotiate(&sd, &local(), &mut origin());
            }
        }
    }
}
