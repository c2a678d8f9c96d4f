//! Transports as the user agent sees them (RFC 3261 §18, TLS per §26.2): which one a message came
//! on, which connection to answer on, and where to open a new connection when that one is gone.
//! PURE: connections are the shell's; here they are only ids and addresses.
//!
//! TCP and TLS are connection-oriented. The user agent names the connection a message arrived on
//! ([`Link::Tcp`]`(Some(id))`) and, with every [`Transmit`], says where the shell should connect
//! instead when that connection has closed ([`Transmit::connect`]):
//! - a response: the `received` address and the `sent-by` port of its top Via (§18.2.2);
//! - an in-dialog request on a dialog the peer started: its first Route, else its Contact
//!   (§12.2.1.1), so a BYE still reaches a PBX whose connection died during a long call;
//! - a request on a leg we dialled: the next hop we dialled (the trunk). These legs name no
//!   connection at all (`Link::Tcp(None)`): the shell keeps one connection per next hop and
//!   reuses it for every leg (a pool per peer).
//!
//! Must not: open sockets, resolve names or read clocks.

use std::fmt;
use std::net::SocketAddr;

use super::msg::{Uri, Via};
use super::txn::{Transport, Wire};

/// A SIP transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Udp,
    Tcp,
    Tls,
}

impl Proto {
    /// The Via transport token (§20.42): `UDP`, `TCP`, `TLS`.
    pub fn via_name(self) -> &'static str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
        }
    }

    /// The `transport` URI parameter for our Contact (§19.1.1); none for UDP, the default.
    pub fn uri_param(self) -> Option<&'static str> {
        match self {
            Self::Udp => None,
            Self::Tcp => Some("tcp"),
            Self::Tls => Some("tls"),
        }
    }

    /// The port a URI without one means (§19.1.2: 5061 for TLS).
    pub fn default_port(self) -> u16 {
        match self {
            Self::Udp | Self::Tcp => 5060,
            Self::Tls => 5061,
        }
    }

    /// Whether the transport retransmits for us (§17.1.1.2).
    pub fn reliability(self) -> Transport {
        match self {
            Self::Udp => Transport::Unreliable,
            Self::Tcp | Self::Tls => Transport::Reliable,
        }
    }

    /// The transport a URI asks for: `sips:` or `;transport=tls` is TLS, `;transport=tcp` TCP,
    /// anything else (no parameter, `udp`, one we do not speak) UDP.
    pub fn of_uri(uri: &Uri) -> Self {
        if uri.scheme == "sips" {
            return Self::Tls;
        }
        match uri.params.get("transport").flatten() {
            Some(t) if t.eq_ignore_ascii_case("tls") => Self::Tls,
            Some(t) if t.eq_ignore_ascii_case("tcp") => Self::Tcp,
            _ => Self::Udp,
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
        })
    }
}

/// Which transport a message came on and how to answer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Link {
    Udp,
    /// A TCP connection by the shell's id; `None`: whichever connection the shell has (or
    /// opens) to [`Transmit::connect`].
    Tcp(Option<u64>),
    /// A TLS connection, the same way.
    Tls(Option<u64>),
}

impl Link {
    /// The link's protocol.
    pub fn proto(self) -> Proto {
        match self {
            Self::Udp => Proto::Udp,
            Self::Tcp(_) => Proto::Tcp,
            Self::Tls(_) => Proto::Tls,
        }
    }

    /// The shell's connection id, if the link names one.
    pub fn conn(self) -> Option<u64> {
        match self {
            Self::Udp => None,
            Self::Tcp(c) | Self::Tls(c) => c,
        }
    }

    /// Any connection of `proto` (no particular one): what a dialled leg uses.
    pub fn any(proto: Proto) -> Self {
        match proto {
            Proto::Udp => Self::Udp,
            Proto::Tcp => Self::Tcp(None),
            Proto::Tls => Self::Tls(None),
        }
    }

    pub(crate) fn transport(self) -> Transport {
        self.proto().reliability()
    }
}

/// Where a message goes: the link and the peer's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub addr: SocketAddr,
    pub link: Link,
}

/// Where the shell opens a TCP or TLS connection. The pool of connections is keyed by
/// `(proto, host, port)`: every leg to the same trunk shares one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Connect {
    /// TCP or TLS.
    pub proto: Proto,
    /// A DNS name or an IP literal (IPv6 without brackets). For TLS it is the name the server's
    /// certificate must be valid for, and the SNI.
    pub host: String,
    pub port: u16,
    /// `host` already resolved (the dial did it), so the shell need not look it up again.
    pub resolved: Option<SocketAddr>,
}

impl Connect {
    /// What identifies the peer (and the pool's connection to it): `resolved` is only a hint.
    pub fn key(&self) -> (Proto, &str, u16) {
        (self.proto, &self.host, self.port)
    }

    /// A connection to where `uri` points, over `proto` (§12.2.1.1: the first Route or the
    /// remote target). `None` for UDP.
    pub fn to_uri(proto: Proto, uri: &Uri) -> Option<Self> {
        if proto == Proto::Udp {
            return None;
        }
        let host = uri.host.trim_start_matches('[').trim_end_matches(']');
        Some(Self {
            proto,
            host: host.to_owned(),
            port: uri.port.unwrap_or(proto.default_port()),
            resolved: None,
        })
    }

    /// Where a response goes when the request's connection is gone (§18.2.2): the `received`
    /// address (else the sent-by host) and the sent-by port of the request's top Via. `None`
    /// for UDP.
    pub fn for_response(proto: Proto, via: &Via) -> Option<Self> {
        if proto == Proto::Udp {
            return None;
        }
        let host = via
            .params
            .get("received")
            .flatten()
            .unwrap_or(&via.host)
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        Some(Self {
            proto,
            host,
            port: via.port.unwrap_or(proto.default_port()),
            resolved: None,
        })
    }
}

/// Names a client transaction for [`super::ua::UserAgent::handle_transport_error`]: the shell
/// hands it back when it could not deliver a [`Transmit`] that carried it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TxnKey(pub(crate) String);

/// Bytes to put on the wire. For `Link::Tcp(Some(id))` the shell uses that connection while it
/// is open; otherwise (or for `Link::Tcp(None)`) a connection to `connect`, reused or opened.
#[derive(Debug, Clone)]
#[must_use]
pub struct Transmit {
    pub peer: Peer,
    pub bytes: Wire,
    /// Where to connect when `peer`'s connection is gone or none is named; `None` for UDP.
    pub connect: Option<Connect>,
    /// The client transaction that sent it: report a failure to deliver it with
    /// [`super::ua::UserAgent::handle_transport_error`]. `None` for responses and ACKs.
    pub txn: Option<TxnKey>,
}

/// Why the shell could not deliver a message, in the user agent's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportError {
    /// No connection: refused, unreachable, timed out, or the name does not resolve.
    Connect,
    /// The TLS handshake failed.
    Tls(TlsError),
    /// The INVITE got no response at all before Timer B (RFC 3261 §17.1.1.2): the next hop
    /// is down, not the callee.
    NoResponse,
}

/// Why a TLS handshake failed, as far as the operator can act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsError {
    /// The server's certificate does not chain to a trusted root (self-signed, private CA not
    /// in `ca_file`, bad signature).
    CertificateNotTrusted,
    /// The certificate is expired or not valid yet.
    CertificateExpired,
    /// The certificate is not valid for the host name we connected to.
    CertificateNameMismatch,
    /// Anything else: no common protocol version or cipher suite, an alert from the peer, a
    /// peer that does not speak TLS.
    Handshake,
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect => f.write_str("no connection"),
            Self::Tls(e) => write!(f, "TLS: {e}"),
            Self::NoResponse => f.write_str("no response"),
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CertificateNotTrusted => "certificate not trusted",
            Self::CertificateExpired => "certificate expired",
            Self::CertificateNameMismatch => "certificate not valid for the host name",
            Self::Handshake => "handshake failed",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::msg::{parse_uri, parse_via};

    #[test]
    fn uris_choose_their_transport_and_default_port() {
        let tls = parse_uri("sip:pbx@[2001:db8::1];transport=TLS").unwrap();
        assert_eq!(Proto::of_uri(&tls), Proto::Tls);
        let c = Connect::to_uri(Proto::Tls, &tls).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("2001:db8::1", 5061));
        assert_eq!(
            Proto::of_uri(&parse_uri("sips:pbx.example.com").unwrap()),
            Proto::Tls
        );
        assert_eq!(
            Proto::of_uri(&parse_uri("sip:a@h:5070;transport=tcp").unwrap()),
            Proto::Tcp
        );
        assert_eq!(
            Proto::of_uri(&parse_uri("sip:a@h;transport=sctp").unwrap()),
            Proto::Udp
        );
        assert_eq!(Connect::to_uri(Proto::Udp, &tls), None);
    }

    /// §18.2.2: the received address with the sent-by port (not rport: that was the closed
    /// connection's source port).
    #[test]
    fn a_response_reconnects_to_received_and_the_sent_by_port() {
        let via = parse_via(
            "SIP/2.0/TCP pbx.example.com:5070;branch=z9hG4bK1;received=192.0.2.4;rport=40123",
        )
        .unwrap();
        let c = Connect::for_response(Proto::Tcp, &via).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("192.0.2.4", 5070));
        let via = parse_via("SIP/2.0/TLS pbx.example.com;branch=z9hG4bK1").unwrap();
        let c = Connect::for_response(Proto::Tls, &via).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("pbx.example.com", 5061));
    }
}
