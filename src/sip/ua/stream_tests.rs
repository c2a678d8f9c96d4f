//! Issue 18: the user agent over TCP and TLS, in virtual time. Dialled legs name the transport
//! (Via, Contact, a pooled connection to their next hop); a dialog the peer started over a
//! connection falls back to its Route or Contact when that connection is gone; a connection is
//! held while a dialog uses it; a dial that could not be delivered fails at once with why.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use super::*;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn ua() -> UserAgent {
    UserAgent::new(
        UaConfig {
            local: SocketAddr::new(LOCALHOST, 5060),
            local_tls: Some(SocketAddr::new(LOCALHOST, 5061)),
            user_agent: "hammond-test".into(),
            timers: TimerValues::default(),
            trusted: vec![Cidr::new(LOCALHOST, 32).expect("/32")],
            max_calls: 100,
            per_source: None,
        },
        IdGen::seeded(3),
    )
}

fn t0() -> Instant {
    crate::clock::now()
}

/// Dial the customer through a trunk at `trunk.example.com:5061` over `transport`.
fn dial(ua: &mut UserAgent, now: Instant, transport: Proto) -> (CallId, Transmit) {
    let call = ua.new_call_id();
    ua.handle_command(
        now,
        Command::Dial(Box::new(Dial {
            call,
            target: msg::parse_uri("sip:15551234567@trunk.example.com:5061").expect("uri"),
            next_hop: SocketAddr::from(([192, 0, 2, 5], 5061)),
            transport,
            hop_host: "trunk.example.com".into(),
            from_user: "+15550100".into(),
            sdp: b"v=0\r\n".to_vec(),
            extra_headers: Vec::new(),
            credentials: None,
        })),
    );
    let t = ua.poll_transmit().expect("the INVITE");
    (call, t)
}

fn request(t: &Transmit) -> Request {
    match msg::parse(&t.bytes) {
        Ok(Message::Request(r)) => r,
        other => panic!("not a request: {other:?}"),
    }
}

#[test]
fn a_tcp_dial_says_so_and_uses_the_pooled_connection_to_its_next_hop() {
    let mut ua = ua();
    let now = t0();
    let (_, t) = dial(&mut ua, now, Proto::Tcp);
    assert_eq!(
        t.peer.link,
        Link::Tcp(None),
        "no connection named: the pool's"
    );
    let to = t.connect.clone().expect("where to connect");
    assert_eq!(to.key(), (Proto::Tcp, "trunk.example.com", 5061));
    assert_eq!(to.resolved, Some(t.peer.addr));
    assert!(
        t.txn.is_some(),
        "a failure to deliver must find its transaction"
    );
    let invite = request(&t);
    assert!(
        invite
            .headers
            .get("Via")
            .unwrap()
            .starts_with("SIP/2.0/TCP 127.0.0.1:5060;"),
        "{invite:?}"
    );
    assert_eq!(
        invite.headers.get("Contact"),
        Some("<sip:hammond@127.0.0.1:5060;transport=tcp>")
    );
    // §17.1.1.2: no retransmissions over a reliable transport.
    ua.handle_timeout(now + std::time::Duration::from_secs(5));
    assert!(ua.poll_transmit().is_none());
}

#[test]
fn a_tls_dial_names_the_tls_listener_in_via_and_contact() {
    let mut ua = ua();
    let (_, t) = dial(&mut ua, t0(), Proto::Tls);
    assert_eq!(t.peer.link, Link::Tls(None));
    assert_eq!(t.connect.as_ref().map(|c| c.proto), Some(Proto::Tls));
    let invite = request(&t);
    assert!(
        invite
            .headers
            .get("Via")
            .unwrap()
            .starts_with("SIP/2.0/TLS 127.0.0.1:5061;")
    );
    assert_eq!(
        invite.headers.get("Contact"),
        Some("<sip:hammond@127.0.0.1:5061;transport=tls>")
    );
}

/// The dial could not be delivered (an untrusted certificate): the leg fails now, as a 503
/// with the cause (§8.1.3.1), not after Timer B, and nothing is left behind.
#[test]
fn an_undeliverable_dial_fails_at_once_with_its_cause() {
    let mut ua = ua();
    let now = t0();
    let (call, t) = dial(&mut ua, now, Proto::Tls);
    let cause = TransportError::Tls(TlsError::CertificateNotTrusted);
    ua.handle_transport_error(now, t.txn.as_ref().unwrap(), cause);
    let events: Vec<SipEvent> = std::iter::from_fn(|| ua.poll_event()).collect();
    assert!(
        matches!(events[..], [SipEvent::Failed { call: c, status: 503, cause: Some(e) }] if c == call && e == cause),
        "{events:?}"
    );
    assert_eq!(ua.active_legs(), 0);
    assert_eq!(ua.active_transactions(), 0);
    // Its old deadlines fire harmlessly.
    ua.handle_timeout(now + std::time::Duration::from_secs(64));
    assert!(ua.poll_event().is_none());
}

fn pbx_invite(contact: &str, record_route: Option<&str>) -> Vec<u8> {
    let rr = record_route
        .map(|r| format!("Record-Route: {r}\r\n"))
        .unwrap_or_default();
    format!(
        "INVITE sip:support@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/TCP pbx.example.com:5070;branch=z9hG4bKtcp1;rport\r\n\
         From: <sip:15551234567@pbx.example.com>;tag=p1\r\nTo: <sip:support@127.0.0.1>\r\n\
         Call-ID: tcp-1@pbx\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n{rr}\
         Contact: {contact}\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// A call from the PBX on its connection 3, answered and acknowledged; the last 200 sent.
fn inbound_call(ua: &mut UserAgent, now: Instant, invite: &[u8]) -> (CallId, Transmit) {
    let pbx = Peer {
        addr: SocketAddr::from(([127, 0, 0, 1], 40_123)),
        link: Link::Tcp(Some(3)),
    };
    ua.handle_message(now, pbx, invite);
    let call = std::iter::from_fn(|| ua.poll_event())
        .find_map(|e| match e {
            SipEvent::IncomingCall { call, .. } => Some(call),
            _ => None,
        })
        .expect("an incoming call");
    while ua.poll_transmit().is_some() {}
    ua.handle_command(
        now,
        Command::Answer {
            call,
            sdp: b"v=0\r\n".to_vec(),
        },
    );
    let ok = ua.poll_transmit().expect("200");
    let to = match msg::parse(&ok.bytes) {
        Ok(Message::Response(r)) => r.headers.get("To").unwrap().to_owned(),
        other => panic!("{other:?}"),
    };
    let ack = format!(
        "ACK sip:hammond@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/TCP pbx.example.com:5070;branch=z9hG4bKtcp2;rport\r\n\
         From: <sip:15551234567@pbx.example.com>;tag=p1\r\nTo: {to}\r\n\
         Call-ID: tcp-1@pbx\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    ua.handle_message(now, pbx, ack.as_bytes());
    while ua.poll_event().is_some() {}
    (call, ok)
}

/// The 200 goes on the INVITE's connection, else (§18.2.2) to the Via's `received` address
/// and sent-by port; it offers our Contact with `;transport=tcp`.
#[test]
fn responses_use_the_connection_else_received_and_the_sent_by_port() {
    let mut ua = ua();
    let (_, ok) = inbound_call(
        &mut ua,
        t0(),
        &pbx_invite("<sip:pbx@192.0.2.9:5080;transport=tcp>", None),
    );
    assert_eq!(ok.peer.link, Link::Tcp(Some(3)));
    let to = ok.connect.expect("a fallback");
    assert_eq!(to.key(), (Proto::Tcp, "127.0.0.1", 5070));
    assert!(
        String::from_utf8_lossy(&ok.bytes)
            .contains("Contact: <sip:hammond@127.0.0.1:5060;transport=tcp>")
    );
}

/// Our BYE on a call the PBX made: its connection while it lasts, else a new connection to
/// the PBX's Contact (the connection came from a port nobody listens on).
#[test]
fn a_bye_falls_back_to_the_contact_of_the_peer() {
    let mut ua = ua();
    let now = t0();
    let (call, _) = inbound_call(
        &mut ua,
        now,
        &pbx_invite("<sip:pbx@192.0.2.9:5080;transport=tcp>", None),
    );
    ua.handle_command(now, Command::Hangup { call });
    let bye = ua.poll_transmit().expect("BYE");
    assert_eq!(request(&bye).method, Method::Bye);
    assert_eq!(bye.peer.link, Link::Tcp(Some(3)));
    assert_eq!(
        bye.connect.as_ref().map(Connect::key),
        Some((Proto::Tcp, "192.0.2.9", 5080))
    );
    assert!(bye.txn.is_some());
}

/// With a Record-Route, the first route is where a new connection goes (§12.2.1.1).
#[test]
fn a_record_routed_dialog_falls_back_to_its_first_route() {
    let mut ua = ua();
    let now = t0();
    let (call, _) = inbound_call(
        &mut ua,
        now,
        &pbx_invite(
            "<sip:pbx@192.0.2.9:5080;transport=tcp>",
            Some("<sip:proxy.example.com;transport=tcp;lr>"),
        ),
    );
    ua.handle_command(now, Command::Hangup { call });
    let bye = ua.poll_transmit().expect("BYE");
    assert_eq!(
        bye.connect.as_ref().map(Connect::key),
        Some((Proto::Tcp, "proxy.example.com", 5060))
    );
}

/// A connection is held while a dialog uses it, and released once the call is over; a dialled
/// leg holds the pooled connection to its next hop.
#[test]
fn a_connection_is_held_while_a_dialog_uses_it() {
    let mut ua = ua();
    let now = t0();
    let (call, _) = inbound_call(
        &mut ua,
        now,
        &pbx_invite("<sip:pbx@192.0.2.9:5080;transport=tcp>", None),
    );
    assert!(ua.holds(Link::Tcp(Some(3)), None));
    assert!(!ua.holds(Link::Tcp(Some(4)), None));
    assert!(!ua.holds(Link::Tls(Some(3)), None));
    let (_, t) = dial(&mut ua, now, Proto::Tls);
    let pool = t.connect.clone().unwrap();
    assert!(ua.holds(Link::Tls(Some(9)), Some(&pool)));
    assert!(!ua.holds(
        Link::Tcp(Some(9)),
        Some(&Connect {
            proto: Proto::Tcp,
            ..pool.clone()
        })
    ));
    // The PBX hangs up: its connection is free again.
    ua.handle_command(now, Command::Hangup { call });
    let bye = request(&ua.poll_transmit().expect("BYE"));
    let ok = Response::to_request(&bye, 200, "OK");
    ua.handle_message(
        now,
        Peer {
            addr: SocketAddr::from(([127, 0, 0, 1], 40_123)),
            link: Link::Tcp(Some(3)),
        },
        &ok.to_bytes(),
    );
    assert!(!ua.holds(Link::Tcp(Some(3)), None));
}

/// Our BYE could not be delivered at all: the leg is over on our side all the same.
#[test]
fn an_undeliverable_bye_ends_the_leg() {
    let mut ua = ua();
    let now = t0();
    let (call, _) = inbound_call(
        &mut ua,
        now,
        &pbx_invite("<sip:pbx@192.0.2.9:5080;transport=tcp>", None),
    );
    ua.handle_command(now, Command::Hangup { call });
    let bye = ua.poll_transmit().expect("BYE");
    ua.handle_transport_error(now, bye.txn.as_ref().unwrap(), TransportError::Connect);
    let events: Vec<SipEvent> = std::iter::from_fn(|| ua.poll_event()).collect();
    assert!(
        matches!(events[..], [SipEvent::CallEnded { call: c, reason: EndReason::LocalBye }] if c == call),
        "{events:?}"
    );
    assert_eq!(ua.active_legs(), 0);
    assert_eq!(ua.active_transactions(), 0);
}
