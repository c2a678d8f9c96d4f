//! User-agent tests in virtual time, no runtime: the RFC 4475 / RFC 5118 torture corpora and
//! the fuzz corpora fed through `handle_message` (answers per message, no panics, no leaked
//! transactions), never-panic properties, and the per-source rate limiter.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn config(per_source: Option<pike::Limit>) -> UaConfig {
    UaConfig {
        local: SocketAddr::new(LOCALHOST, 5060),
        local_tls: None,
        user_agent: "hammond-test".into(),
        timers: TimerValues::default(),
        trusted: vec![Cidr::new(LOCALHOST, 32).expect("/32")],
        max_calls: 100,
        per_source,
    }
}

fn ua() -> UserAgent {
    UserAgent::new(config(None), IdGen::seeded(7))
}

fn from(ip: [u8; 4], port: u16) -> Peer {
    Peer {
        addr: SocketAddr::from((ip, port)),
        link: Link::Udp,
    }
}

/// The PBX on loopback: trusted.
fn pbx() -> Peer {
    from([127, 0, 0, 1], 5080)
}

/// What one input produced.
#[derive(Debug, Default)]
struct Out {
    statuses: Vec<u16>,
    requests: Vec<Method>,
    events: Vec<SipEvent>,
}

fn drain(ua: &mut UserAgent) -> Out {
    let mut out = Out::default();
    while let Some(t) = ua.poll_transmit() {
        match msg::parse(&t.bytes) {
            Ok(Message::Response(r)) => out.statuses.push(r.status),
            Ok(Message::Request(r)) => out.requests.push(r.method),
            // A 4xx to a malformed request copies its headers (§8.2.6.2), garbage included, so
            // our own parser may refuse it; it must still have a clean status line and the
            // Via and CSeq the peer matches it with (§17.1.3).
            Err(e) => {
                let text = String::from_utf8_lossy(&t.bytes);
                let status = text
                    .strip_prefix("SIP/2.0 ")
                    .and_then(|r| r.get(..3))
                    .and_then(|c| c.parse::<u16>().ok())
                    .filter(|c| (400..600).contains(c))
                    .unwrap_or_else(|| panic!("we sent something unparsable ({e}):\n{text}"));
                assert!(
                    text.contains("\r\nVia: ") && text.contains("\r\nCSeq: "),
                    "unmatchable {status}:\n{text}"
                );
                out.statuses.push(status);
            }
        }
    }
    while let Some(e) = ua.poll_event() {
        out.events.push(e);
    }
    out
}

/// Refuse every call the input started, then step through every deadline to the end.
/// Returns the virtual time it took.
fn settle(ua: &mut UserAgent, start: Instant, events: &[SipEvent]) -> Duration {
    let mut now = start;
    for e in events {
        if let SipEvent::IncomingCall { call, .. } = e {
            ua.handle_command(
                now,
                Command::Reject {
                    call: *call,
                    status: 486,
                },
            );
        }
    }
    drain(ua);
    let mut steps = 0;
    while let Some(at) = ua.poll_timeout() {
        now = now.max(at);
        ua.handle_timeout(now);
        let out = drain(ua);
        assert!(
            out.events
                .iter()
                .all(|e| !matches!(e, SipEvent::IncomingCall { .. }))
        );
        steps += 1;
        assert!(steps < 10_000, "timers never stop");
    }
    now - start
}

fn data_dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(sub)
}

/// `(name, bytes)` of every file in `tests/data/<sub>` (sorted), or none if it does not exist.
fn files(sub: &str) -> Vec<(String, Vec<u8>)> {
    let Ok(dir) = std::fs::read_dir(data_dir(sub)) else {
        return Vec::new();
    };
    let mut out: Vec<_> = dir
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_stem().expect("stem").to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("read corpus file"))
        })
        .collect();
    out.sort();
    out
}

/// The answer we expect to one torture message sent by the trusted PBX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A new call: 100 Trying and an `IncomingCall` event.
    Call,
    /// A final response with this status and no event.
    Status(u16),
    /// Nothing at all (responses without a transaction, unrecoverable garbage).
    Dropped,
}

/// Every valid torture message and what the user agent does with it.
const VALID: &[(&str, Expect)] = &[
    // RFC 4475 §3.1.1 and §3.2-3.4 (well-formed ones).
    ("badbranch", Expect::Status(200)), // OPTIONS with a bare magic-cookie branch
    ("bcast", Expect::Dropped),         // a response: no transaction of ours
    ("cparam01", Expect::Status(405)),  // REGISTER: not a registrar
    ("cparam02", Expect::Status(405)),  // REGISTER
    ("dblreq", Expect::Status(405)),    // REGISTER (the first of the two in the datagram)
    ("esc01", Expect::Call),            // INVITE with escaped user/params
    ("esc02", Expect::Status(501)),     // unknown method RE%47IST%45R
    ("escnull", Expect::Status(405)),   // REGISTER with %00 in the user
    ("intmeth", Expect::Status(501)),   // an extension method of odd characters
    ("inv2543", Expect::Call),          // an RFC 2543 INVITE (no branch cookie)
    ("longreq", Expect::Call),          // a very long INVITE
    ("lwsdisp", Expect::Status(200)),   // OPTIONS, no LWS between display name and <
    ("mpart01", Expect::Status(405)),   // MESSAGE with a multipart/mixed body
    ("noreason", Expect::Dropped),      // a response
    ("novelsc", Expect::Status(416)),   // OPTIONS to soap.beep:// - an unknown scheme
    ("regescrt", Expect::Status(405)),  // REGISTER
    ("semiuri", Expect::Status(200)),   // OPTIONS with ; in the user part
    ("transports", Expect::Status(200)), // OPTIONS via unknown transports
    ("unksm2", Expect::Status(405)),    // REGISTER with an unknown To scheme
    ("unreason", Expect::Dropped),      // a response
    ("wsinv", Expect::Status(481)),     // INVITE with a To tag of no dialog of ours
    ("zeromf", Expect::Status(483)),    // OPTIONS with Max-Forwards 0
    // RFC 5118 §4.1.
    ("ipv4-mapped-ipv6", Expect::Call),
    ("ipv6-bug-abnf-3-colons", Expect::Status(200)), // OPTIONS
    ("ipv6-correct-abnf-2-colons", Expect::Status(200)), // OPTIONS
    ("ipv6-good", Expect::Status(405)),              // REGISTER
    ("ipv6-in-sdp", Expect::Call),
    ("mult-ip-in-header", Expect::Status(481)), // BYE for no dialog of ours
    ("mult-ip-in-sdp", Expect::Call),
    ("port-ambiguous", Expect::Status(405)),   // REGISTER
    ("port-unambiguous", Expect::Status(405)), // REGISTER
    ("via-received-param-no-delim", Expect::Dropped), // a response
    ("via-received-param-with-delim", Expect::Dropped), // a response
];

/// Every invalid torture message: refused (400/505/513 from the parser, or the status the RFC
/// asks of a UA for the semantically wrong ones) or dropped (broken responses).
const INVALID: &[(&str, Expect)] = &[
    ("badaspec", Expect::Status(400)),
    ("baddate", Expect::Status(400)),
    ("baddn", Expect::Status(400)),
    ("badinv01", Expect::Dropped), // its only Via is `;;,;,,`: no address to answer to
    ("badvers", Expect::Dropped),  // SIP/7.0 in the Via too: no Via we can answer to
    ("bext01", Expect::Status(420)), // Require: an unknown extension
    ("bigcode", Expect::Dropped),  // a response with status 4294967301
    ("clerr", Expect::Status(400)),
    ("escruri", Expect::Status(400)),
    ("insuf", Expect::Status(400)),
    ("invut", Expect::Status(415)), // an offer in application/unknownformat
    ("ltgtruri", Expect::Status(400)),
    ("lwsruri", Expect::Status(400)),
    ("lwsstart", Expect::Status(400)),
    ("mcl01", Expect::Status(400)),
    ("mismatch01", Expect::Status(400)),
    ("mismatch02", Expect::Status(400)),
    ("multi01", Expect::Status(400)),
    ("ncl", Expect::Status(400)),
    ("quotbal", Expect::Status(400)),
    ("regaut01", Expect::Status(405)), // REGISTER with an unknown auth scheme: not a registrar
    ("regbadct", Expect::Status(400)),
    ("scalar02", Expect::Status(400)),
    ("scalarlg", Expect::Dropped),  // a response with CSeq beyond 2**31
    ("sdp01", Expect::Status(406)), // Accept: text/nobodyknowsthis
    ("trws", Expect::Status(400)),
    ("unkscm", Expect::Status(416)), // Request-URI scheme nobody knows
    ("ipv6-bad", Expect::Status(400)),
];

fn observe(out: &Out) -> Expect {
    let calls = out
        .events
        .iter()
        .filter(|e| matches!(e, SipEvent::IncomingCall { .. }))
        .count();
    match (calls, out.statuses.as_slice()) {
        (1, [100]) => Expect::Call,
        (0, [status]) if out.events.is_empty() => Expect::Status(*status),
        (0, []) if out.events.is_empty() => Expect::Dropped,
        _ => panic!("unexpected output {out:?}"),
    }
}

/// Feed one message into a fresh user agent, check what it answered, settle it and check no
/// transaction is left.
fn run_one(name: &str, bytes: &[u8]) -> Expect {
    let mut ua = ua();
    let t0 = crate::clock::now();
    ua.handle_message(t0, pbx(), bytes);
    let out = drain(&mut ua);
    assert!(out.requests.is_empty(), "{name}: sent requests {out:?}");
    let got = observe(&out);
    settle(&mut ua, t0, &out.events);
    assert_eq!(ua.active_transactions(), 0, "{name}: leaked a transaction");
    assert_eq!(ua.active_legs(), 0, "{name}: leaked a call leg");
    got
}

fn check_table(dirs: &[&str], table: &[(&str, Expect)]) -> (usize, Vec<String>) {
    let mut seen = 0;
    let mut wrong = Vec::new();
    for dir in dirs {
        for (name, bytes) in files(dir) {
            let (_, want) = table
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("{dir}/{name}: not in the table"));
            let got = run_one(&name, &bytes);
            if got != *want {
                wrong.push(format!("{dir}/{name}: want {want:?}, got {got:?}"));
            }
            seen += 1;
        }
    }
    assert_eq!(seen, table.len(), "every table entry has a file");
    (seen, wrong)
}

#[test]
fn valid_torture_messages_are_answered_sensibly() {
    let (n, wrong) = check_table(&["sip/rfc4475/valid", "sip/rfc5118/valid"], VALID);
    assert!(wrong.is_empty(), "{wrong:#?}");
    let calls = VALID.iter().filter(|(_, e)| *e == Expect::Call).count();
    println!("valid: {n} messages answered as expected ({calls} calls, no leaks)");
}

#[test]
fn invalid_torture_messages_are_refused_or_dropped() {
    let (n, wrong) = check_table(&["sip/rfc4475/invalid", "sip/rfc5118/invalid"], INVALID);
    assert!(wrong.is_empty(), "{wrong:#?}");
    let dropped = INVALID
        .iter()
        .filter(|(_, e)| *e == Expect::Dropped)
        .count();
    println!(
        "invalid: {} refused, {dropped} dropped, none accepted",
        n - dropped
    );
    assert!(INVALID.iter().all(|(_, e)| *e != Expect::Call));
}

/// Every message of every corpus (torture files, fuzz seeds and committed fuzz findings) through
/// one user agent, from trusted and untrusted sources, over UDP and TCP: no panic, and after
/// the timers run out no transaction or leg is left.
#[test]
fn whole_corpora_through_one_user_agent_leak_nothing() {
    let mut all = Vec::new();
    for dir in [
        "sip/rfc4475/valid",
        "sip/rfc4475/invalid",
        "sip/rfc5118/valid",
        "sip/rfc5118/invalid",
        "sip/fuzz",
    ] {
        all.extend(files(dir));
    }
    let fuzz_seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/sip_msg");
    if let Ok(dir) = std::fs::read_dir(fuzz_seeds) {
        for e in dir.flatten() {
            all.push((
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).expect("read fuzz seed"),
            ));
        }
    }
    assert!(all.len() >= 50, "corpus missing: {}", all.len());
    let mut ua = ua();
    let t0 = crate::clock::now();
    let peers = [
        pbx(),
        from([192, 0, 2, 9], 5060),
        Peer {
            addr: SocketAddr::from(([127, 0, 0, 1], 40000)),
            link: Link::Tcp(Some(3)),
        },
    ];
    let mut events = Vec::new();
    for peer in peers {
        for (_, bytes) in &all {
            ua.handle_message(t0, peer, bytes);
            // A retransmission of each, too.
            ua.handle_message(t0 + Duration::from_millis(10), peer, bytes);
            events.extend(drain(&mut ua).events);
        }
    }
    let took = settle(&mut ua, t0, &events);
    assert_eq!(ua.active_transactions(), 0, "leaked transactions");
    assert_eq!(ua.active_legs(), 0, "leaked legs");
    assert!(took <= Duration::from_secs(64), "settled after {took:?}");
}

/// A whole call the normal way (answer, ACK, BYE from us, 200) leaves nothing behind either.
#[test]
fn an_answered_call_hung_up_by_us_leaks_nothing() {
    let invite = files("sip/rfc5118/valid")
        .into_iter()
        .find(|(n, _)| n == "ipv6-in-sdp")
        .expect("file")
        .1;
    let mut ua = ua();
    let t0 = crate::clock::now();
    ua.handle_message(t0, pbx(), &invite);
    let out = drain(&mut ua);
    let Some(SipEvent::IncomingCall { call, invite, .. }) = out.events.into_iter().next() else {
        panic!("no call");
    };
    ua.handle_command(
        t0,
        Command::Answer {
            call,
            sdp: b"v=0\r\n".to_vec(),
        },
    );
    let ok = std::iter::from_fn(|| ua.poll_transmit())
        .find_map(|t| match msg::parse(&t.bytes) {
            Ok(Message::Response(r)) if r.status == 200 => Some(r),
            _ => None,
        })
        .expect("200 OK");
    let to = ok.headers.get("To").expect("To").to_owned();
    let ack = format!(
        "ACK sip:hammond@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKack1\r\n\
         From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {} ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        invite.headers.get("From").expect("From"),
        invite.call_id().expect("Call-ID"),
        invite.cseq().expect("CSeq").seq,
    );
    ua.handle_message(t0 + Duration::from_millis(20), pbx(), ack.as_bytes());
    let out = drain(&mut ua);
    assert!(matches!(out.events[..], [SipEvent::CallConfirmed { .. }]));
    ua.handle_command(t0 + Duration::from_secs(1), Command::Hangup { call });
    let bye = std::iter::from_fn(|| ua.poll_transmit())
        .find_map(|t| match msg::parse(&t.bytes) {
            Ok(Message::Request(r)) if r.method == Method::Bye => Some(r),
            _ => None,
        })
        .expect("BYE");
    let mut ok = Response::to_request(&bye, 200, "OK");
    ok.headers.push("Server", "pbx");
    ua.handle_message(t0 + Duration::from_secs(1), pbx(), &ok.to_bytes());
    let out = drain(&mut ua);
    assert!(matches!(
        out.events[..],
        [SipEvent::CallEnded {
            reason: EndReason::LocalBye,
            ..
        }]
    ));
    settle(&mut ua, t0 + Duration::from_secs(1), &[]);
    assert_eq!(ua.active_transactions(), 0);
    assert_eq!(ua.active_legs(), 0);
}

/// Requests `ua` sends, parsed.
fn sent_requests(ua: &mut UserAgent) -> Vec<Request> {
    std::iter::from_fn(|| ua.poll_transmit())
        .filter_map(|t| match msg::parse(&t.bytes) {
            Ok(Message::Request(r)) => Some(r),
            _ => None,
        })
        .collect()
}

/// Dial the customer's phone through the trunk; returns the leg and the INVITE sent.
fn dial_customer(ua: &mut UserAgent, now: Instant) -> (CallId, Request) {
    let call = ua.new_call_id();
    ua.handle_command(
        now,
        Command::Dial(Box::new(Dial {
            call,
            target: msg::parse_uri("sip:15551234567@127.0.0.1:5080").expect("uri"),
            next_hop: pbx().addr,
            transport: Proto::Udp,
            hop_host: "127.0.0.1".into(),
            from_user: "support".into(),
            sdp: b"v=0\r\n".to_vec(),
            extra_headers: Vec::new(),
            credentials: None,
        })),
    );
    let invite = sent_requests(ua).pop().expect("INVITE");
    assert_eq!(invite.method, Method::Invite);
    (call, invite)
}

/// RFC 3261 §9.1: no CANCEL before a provisional response; hanging up before one arrives
/// sends the CANCEL when it does, and the leg then fails as cancelled.
#[test]
fn a_hang_up_before_any_provisional_waits_for_one_to_cancel() {
    let mut ua = ua();
    let t0 = crate::clock::now();
    let (call, invite) = dial_customer(&mut ua, t0);
    ua.handle_command(t0 + Duration::from_millis(10), Command::Hangup { call });
    assert!(
        sent_requests(&mut ua).is_empty(),
        "a CANCEL went out before any provisional response"
    );
    ua.handle_message(
        t0 + Duration::from_millis(20),
        pbx(),
        &ringing(&invite).to_bytes(),
    );
    let out = drain_requests_and_events(&mut ua);
    let cancel = out
        .0
        .iter()
        .find(|r| r.method == Method::Cancel)
        .expect("CANCEL");
    assert_eq!(
        cancel.top_via().and_then(|v| v.branch().map(str::to_owned)),
        invite.top_via().and_then(|v| v.branch().map(str::to_owned))
    );
    assert!(
        out.1.is_empty(),
        "progress reported for a leg we hung up: {:?}",
        out.1
    );
    ua.handle_message(
        t0 + Duration::from_millis(30),
        pbx(),
        &Response::to_request(cancel, 200, "OK").to_bytes(),
    );
    let terminated = from_far_end(&invite, 487, "Request Terminated");
    ua.handle_message(
        t0 + Duration::from_millis(40),
        pbx(),
        &terminated.to_bytes(),
    );
    let out = drain_requests_and_events(&mut ua);
    assert!(
        out.0.iter().any(|r| r.method == Method::Ack),
        "487 not acknowledged"
    );
    assert!(matches!(out.1[..], [SipEvent::Failed { call: c, status: 487, .. }] if c == call));
    settle(&mut ua, t0 + Duration::from_millis(40), &[]);
    assert_eq!(ua.active_transactions(), 0);
    assert_eq!(ua.active_legs(), 0);
}

/// Once the far end has sent a provisional response, a hang-up cancels at once.
#[test]
fn a_hang_up_while_ringing_cancels_at_once() {
    let mut ua = ua();
    let t0 = crate::clock::now();
    let (call, invite) = dial_customer(&mut ua, t0);
    ua.handle_message(
        t0 + Duration::from_millis(10),
        pbx(),
        &ringing(&invite).to_bytes(),
    );
    let out = drain_requests_and_events(&mut ua);
    assert!(matches!(
        out.1[..],
        [SipEvent::Progress { status: 180, .. }]
    ));
    ua.handle_command(t0 + Duration::from_millis(20), Command::Hangup { call });
    let sent = sent_requests(&mut ua);
    assert!(
        sent.iter().any(|r| r.method == Method::Cancel),
        "no CANCEL: {sent:?}"
    );
}

/// §9.1: a far end that takes our CANCEL but never ends the INVITE is given up on after
/// 64·T1: the leg fails and nothing is left behind.
#[test]
fn a_cancelled_invite_never_answered_is_given_up_after_64_t1() {
    let mut ua = ua();
    let t0 = crate::clock::now();
    let (call, invite) = dial_customer(&mut ua, t0);
    ua.handle_message(
        t0 + Duration::from_millis(10),
        pbx(),
        &ringing(&invite).to_bytes(),
    );
    drain_requests_and_events(&mut ua);
    ua.handle_command(t0 + Duration::from_millis(20), Command::Hangup { call });
    let cancel = sent_requests(&mut ua)
        .into_iter()
        .find(|r| r.method == Method::Cancel)
        .expect("CANCEL");
    ua.handle_message(
        t0 + Duration::from_millis(30),
        pbx(),
        &Response::to_request(&cancel, 200, "OK").to_bytes(),
    );
    let mut events = Vec::new();
    let mut now = t0 + Duration::from_millis(30);
    while let Some(at) = ua.poll_timeout() {
        now = now.max(at);
        ua.handle_timeout(now);
        events.extend(drain_requests_and_events(&mut ua).1);
    }
    assert!(
        matches!(events[..], [SipEvent::Failed { call: c, status: 487, .. }] if c == call),
        "{events:?}"
    );
    assert!(
        now - t0 >= Duration::from_secs(32),
        "given up after {:?}",
        now - t0
    );
    assert_eq!(ua.active_transactions(), 0);
    assert_eq!(ua.active_legs(), 0);
}

/// A 2xx arriving after a hang-up that had no provisional to cancel on: acknowledged and
/// hung up at once (§9.1 / §15), never reported as answered.
#[test]
fn an_answer_after_a_hang_up_is_acked_and_hung_up() {
    let mut ua = ua();
    let t0 = crate::clock::now();
    let (call, invite) = dial_customer(&mut ua, t0);
    ua.handle_command(t0 + Duration::from_millis(10), Command::Hangup { call });
    let mut ok = from_far_end(&invite, 200, "OK");
    ok.headers
        .push("Contact", "<sip:15551234567@127.0.0.1:5080>");
    ua.handle_message(t0 + Duration::from_millis(20), pbx(), &ok.to_bytes());
    let (sent, events) = drain_requests_and_events(&mut ua);
    let methods: Vec<&Method> = sent.iter().map(|r| &r.method).collect();
    assert_eq!(methods, [&Method::Ack, &Method::Bye], "{sent:?}");
    assert!(events.is_empty(), "{events:?}");
}

/// A 180 Ringing to `invite`.
fn ringing(invite: &Request) -> Response {
    from_far_end(invite, 180, "Ringing")
}

/// A response to `invite` from the far end's side of the dialog (its To tag).
fn from_far_end(invite: &Request, status: u16, reason: &str) -> Response {
    let mut r = Response::to_request(invite, status, reason);
    r.headers.set(
        "To",
        format!("{};tag=pbx1", invite.headers.get("To").expect("To")),
    );
    r
}

/// Requests sent and events reported since the last look.
fn drain_requests_and_events(ua: &mut UserAgent) -> (Vec<Request>, Vec<SipEvent>) {
    let requests = sent_requests(ua);
    let events = std::iter::from_fn(|| ua.poll_event()).collect();
    (requests, events)
}

// ------------------------------------------------------------------------------ rate limiting

fn invite(n: u32, branch: &str) -> Vec<u8> {
    format!(
        "INVITE sip:support@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK{branch}\r\n\
         From: <sip:15551234567@127.0.0.1>;tag=f{n}\r\nTo: <sip:support@127.0.0.1>\r\n\
         Call-ID: flood-{n}@pbx\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n\
         Contact: <sip:15551234567@127.0.0.1:5080>\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn options(n: u32) -> Vec<u8> {
    format!(
        "OPTIONS sip:hammond@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKopt{n}\r\n\
         From: <sip:pbx@127.0.0.1>;tag=o{n}\r\nTo: <sip:hammond@127.0.0.1>\r\n\
         Call-ID: opt-{n}@pbx\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn limited_ua(count: u32, per: Duration) -> UserAgent {
    UserAgent::new(config(Some(pike::Limit { count, per })), IdGen::seeded(11))
}

/// The Retry-After of the last 503 sent.
fn retry_after(ua: &mut UserAgent) -> Vec<(u16, Option<String>)> {
    std::iter::from_fn(|| ua.poll_transmit())
        .filter_map(|t| match msg::parse(&t.bytes) {
            Ok(Message::Response(r)) => {
                Some((r.status, r.headers.get("Retry-After").map(str::to_owned)))
            }
            _ => None,
        })
        .collect()
}

/// A host outside `trusted_sources`: its INVITEs get 403, its OPTIONS 200, until it is limited.
fn stranger(last: u8) -> Peer {
    from([192, 0, 2, last], 5060)
}

#[test]
fn past_the_per_source_limit_new_requests_get_503_with_retry_after() {
    let mut ua = limited_ua(5, Duration::from_secs(1));
    let t0 = crate::clock::now();
    for n in 0..8 {
        ua.handle_message(t0, stranger(1), &options(n));
        let rsp = retry_after(&mut ua);
        if n < 5 {
            assert_eq!(rsp, vec![(200, None)], "OPTIONS {n}");
        } else {
            assert_eq!(rsp, vec![(503, Some("1".to_owned()))], "OPTIONS {n}");
        }
    }
    assert_eq!(ua.rate_limited(), 3);
    // Its INVITEs count too (503 before the 403 it would get).
    ua.handle_message(t0, stranger(1), &invite(1, "inv1"));
    assert_eq!(retry_after(&mut ua), vec![(503, Some("1".to_owned()))]);
    // Another source is not affected (it gets its own verdict: 403, not trusted).
    ua.handle_message(t0, stranger(2), &invite(99, "other"));
    assert_eq!(retry_after(&mut ua), vec![(403, None)]);
    // A retransmission of an admitted OPTIONS is absorbed by its transaction, not limited.
    ua.handle_message(t0, stranger(1), &options(0));
    assert_eq!(retry_after(&mut ua), vec![(200, None)]);
    // A second later the bucket is full again.
    ua.handle_message(t0 + Duration::from_secs(1), stranger(1), &options(50));
    assert_eq!(retry_after(&mut ua), vec![(200, None)]);
    assert_eq!(ua.rate_limited(), 4);
}

/// Issue 19: spoofed traffic from the PBX's address could push its INVITEs into 503. Trusted
/// sources are not limited at all (`max_calls` and overload control bound them).
#[test]
fn trusted_sources_are_never_rate_limited() {
    let mut ua = limited_ua(5, Duration::from_secs(10));
    let t0 = crate::clock::now();
    // A flood of garbage (its answers are limited) and OPTIONS "from the PBX"...
    for n in 0..50 {
        ua.handle_message(t0, pbx(), b"garbage\r\n\r\n");
        ua.handle_message(t0, pbx(), &options(n));
        assert_eq!(retry_after(&mut ua), vec![(200, None)], "OPTIONS {n}");
    }
    // ...and its calls still come in, every one.
    for n in 0..20 {
        ua.handle_message(t0, pbx(), &invite(n, &format!("inv{n}")));
        assert_eq!(retry_after(&mut ua), vec![(100, None)], "INVITE {n}");
    }
}

/// A callback leg through a trunk that is not a trusted source: the trunk's out-of-dialog
/// requests are limited, but requests in the live dialog always get through.
#[test]
fn in_dialog_requests_work_while_the_source_is_limited() {
    let mut ua = limited_ua(1, Duration::from_secs(10));
    let t0 = crate::clock::now();
    let trunk = stranger(7);
    let call = ua.new_call_id();
    ua.handle_command(
        t0,
        Command::Dial(Box::new(Dial {
            call,
            target: msg::parse_uri("sip:15551234567@192.0.2.7").expect("uri"),
            next_hop: trunk.addr,
            transport: Proto::Udp,
            hop_host: "127.0.0.1".into(),
            from_user: "support".into(),
            sdp: b"v=0\r\n".to_vec(),
            extra_headers: Vec::new(),
            credentials: None,
        })),
    );
    let invite = sent_requests(&mut ua).pop().expect("INVITE");
    let ok = from_far_end(&invite, 200, "OK");
    ua.handle_message(t0, trunk, &ok.to_bytes());
    let (_, events) = drain_requests_and_events(&mut ua);
    assert!(
        matches!(events[..], [SipEvent::Answered { .. }]),
        "{events:?}"
    );
    // The trunk's bucket holds one request: an OPTIONS takes it, the next is refused...
    ua.handle_message(t0, trunk, &options(1));
    assert_eq!(retry_after(&mut ua), vec![(200, None)]);
    ua.handle_message(t0, trunk, &options(2));
    assert_eq!(retry_after(&mut ua), vec![(503, Some("10".to_owned()))]);
    // ...but an INFO and the BYE of the live call go through.
    let in_dialog = |method: &str, seq: u32, branch: &str, call_id: &str| {
        format!(
            "{method} sip:hammond@127.0.0.1:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK{branch}\r\n\
             From: {}\r\nTo: {}\r\nCall-ID: {call_id}\r\nCSeq: {seq} {method}\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            ok.headers.get("To").expect("To"),
            invite.headers.get("From").expect("From"),
        )
        .into_bytes()
    };
    let call_id = invite.call_id().expect("Call-ID").to_owned();
    ua.handle_message(t0, trunk, &in_dialog("INFO", 1, "info", &call_id));
    assert_eq!(retry_after(&mut ua), vec![(200, None)]);
    ua.handle_message(t0, trunk, &in_dialog("BYE", 2, "bye", &call_id));
    assert_eq!(retry_after(&mut ua), vec![(200, None)]);
    // A request naming a dialog that does not exist is new work: limited.
    ua.handle_message(t0, trunk, &in_dialog("BYE", 3, "bye2", "nope@x"));
    assert_eq!(retry_after(&mut ua), vec![(503, Some("10".to_owned()))]);
    let events: Vec<_> = std::iter::from_fn(|| ua.poll_event()).collect();
    assert!(events.iter().any(|e| matches!(
        e,
        SipEvent::CallEnded {
            reason: EndReason::RemoteBye,
            ..
        }
    )));
    settle(&mut ua, t0, &[]);
    assert_eq!(ua.active_transactions(), 0);
}

/// Issue 19: every retransmission drained its transaction and pushed its deadline onto the
/// timer heap again, so a flood of retransmissions (which the rate limiter rightly lets
/// through) grew the heap without bound until Timer J or H fired 32 s later.
#[test]
fn retransmissions_do_not_grow_the_timer_heap() {
    let mut ua = ua();
    let t0 = crate::clock::now();
    ua.handle_message(t0, stranger(1), &options(1));
    ua.handle_message(t0, pbx(), &invite(1, "inv1"));
    let out = drain(&mut ua);
    let Some(SipEvent::IncomingCall { call, .. }) = out.events.into_iter().next() else {
        panic!("no call");
    };
    // A final response, so the INVITE transaction runs Timers G and H.
    ua.handle_command(t0, Command::Reject { call, status: 486 });
    drain(&mut ua);
    let before = ua.timer_entries();
    assert!(before >= 2, "{before}");
    for i in 0..10_000u64 {
        let now = t0 + Duration::from_micros(i);
        ua.handle_message(now, stranger(1), &options(1));
        ua.handle_message(now, pbx(), &invite(1, "inv1"));
        drain(&mut ua);
    }
    assert_eq!(ua.timer_entries(), before);
    settle(&mut ua, t0, &[]);
    assert_eq!(ua.active_transactions(), 0);
    assert_eq!(ua.timer_entries(), 0);
}

#[test]
fn a_garbage_flood_past_the_limit_is_dropped_unanswered() {
    let mut ua = limited_ua(3, Duration::from_secs(1));
    let t0 = crate::clock::now();
    let garbage =
        b"INVITE sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKg\r\n\
        From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: g@pbx\r\n\
        CSeq: nope INVITE\r\nContent-Length: 0\r\n\r\n";
    let mut answered = 0;
    for _ in 0..100 {
        ua.handle_message(t0, pbx(), garbage);
        answered += std::iter::from_fn(|| ua.poll_transmit()).count();
    }
    assert_eq!(answered, 3);
    assert_eq!(ua.active_transactions(), 0);
}

// ------------------------------------------------------------------------------ source checks

/// A peer as a dual-stack socket (`listen = "[::]:5060"`) reports it: IPv4 hosts come as
/// `::ffff:a.b.c.d`.
fn mapped(ip: [u8; 4], port: u16) -> Peer {
    Peer {
        addr: SocketAddr::new(IpAddr::V6(Ipv4Addr::from(ip).to_ipv6_mapped()), port),
        link: Link::Udp,
    }
}

/// Issue 19: on a dual-stack listener any IPv4 host passed `trusted_sources` (the mixed-family
/// arm of the old `cidr_contains` swapped network and address). Only the trusted host, in
/// either spelling, may place a call.
#[test]
fn trusted_sources_hold_on_a_dual_stack_listener() {
    let mut cfg = config(None);
    cfg.local = SocketAddr::from(([0u16; 8], 5060));
    cfg.trusted = vec!["10.0.0.5/32".parse().expect("cidr")];
    let mut ua = UserAgent::new(cfg, IdGen::seeded(3));
    let t0 = crate::clock::now();
    let cases = [
        (mapped([192, 0, 2, 1], 5060), 403),
        (mapped([10, 0, 0, 6], 5060), 403),
        (from([192, 0, 2, 1], 5060), 403),
        (mapped([10, 0, 0, 5], 5060), 100),
        (from([10, 0, 0, 5], 5060), 100),
    ];
    for (n, (peer, status)) in cases.into_iter().enumerate() {
        let n = u32::try_from(n).expect("few");
        ua.handle_message(t0, peer, &invite(n, &format!("ds{n}")));
        let out = drain(&mut ua);
        assert_eq!(out.statuses, vec![status], "INVITE from {}", peer.addr);
        let calls = out
            .events
            .iter()
            .filter(|e| matches!(e, SipEvent::IncomingCall { .. }))
            .count();
        assert_eq!(calls, usize::from(status == 100), "from {}", peer.addr);
    }
}

/// Call `n` (see [`invite`]) from the PBX, answered and acknowledged; returns the leg and the
/// To of our 200 (with our tag), for requests in its dialog.
fn confirmed_call(ua: &mut UserAgent, now: Instant, n: u32) -> (CallId, String) {
    ua.handle_message(now, pbx(), &invite(n, &format!("call{n}")));
    let out = drain(ua);
    let Some(SipEvent::IncomingCall { call, .. }) = out.events.into_iter().next() else {
        panic!("no call");
    };
    ua.handle_command(
        now,
        Command::Answer {
            call,
            sdp: b"v=0\r\n".to_vec(),
        },
    );
    let to = std::iter::from_fn(|| ua.poll_transmit())
        .find_map(|t| match msg::parse(&t.bytes) {
            Ok(Message::Response(r)) if r.status == 200 => r.headers.get("To").map(str::to_owned),
            _ => None,
        })
        .expect("200 OK");
    ua.handle_message(now, pbx(), &in_dialog(n, &to, "ACK", 1, &format!("ack{n}")));
    assert!(matches!(
        drain(ua).events[..],
        [SipEvent::CallConfirmed { .. }]
    ));
    (call, to)
}

/// A request from the caller's side in the dialog of call `n`.
fn in_dialog(n: u32, to: &str, method: &str, seq: u32, branch: &str) -> Vec<u8> {
    let (ctype, body) = match method {
        "INFO" => ("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n"),
        "INVITE" => ("application/sdp", "v=0\r\n"),
        "NOTIFY" => ("message/sipfrag", "SIP/2.0 200 OK\r\n"),
        _ => ("text/plain", ""),
    };
    format!(
        "{method} sip:hammond@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.66:5060;branch=z9hG4bK{branch}\r\n\
         From: <sip:15551234567@127.0.0.1>;tag=f{n}\r\nTo: {to}\r\n\
         Call-ID: flood-{n}@pbx\r\nCSeq: {seq} {method}\r\nMax-Forwards: 70\r\n\
         Contact: <sip:attacker@192.0.2.66:5060>\r\nEvent: refer\r\n\
         Content-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Issue 19: a host that learnt a call's Call-ID and tags could end it (BYE), inject digits
/// (INFO), move its media (re-INVITE) or confirm it (ACK). Requests in a dialog are taken only
/// from the dialog's peer or a trusted source; the rest get 403 and change nothing, not even
/// the CSeq space the real peer's next request is checked against.
#[test]
fn in_dialog_requests_from_strangers_are_refused() {
    let mut ua = ua();
    let t0 = crate::clock::now();
    let (call, to) = confirmed_call(&mut ua, t0, 1);
    let stranger = from([192, 0, 2, 66], 5060);
    for (i, method) in ["BYE", "INFO", "INVITE", "NOTIFY", "REFER", "OPTIONS"]
        .into_iter()
        .enumerate()
    {
        let seq = 100 + u32::try_from(i).expect("few");
        ua.handle_message(
            t0,
            stranger,
            &in_dialog(1, &to, method, seq, &format!("x{i}")),
        );
        let out = drain(&mut ua);
        assert_eq!(out.statuses, vec![403], "{method} from a stranger");
        assert!(out.events.is_empty(), "{method}: {:?}", out.events);
    }
    assert_eq!(ua.active_legs(), 1, "the call is still up");
    // The real peer's next request (CSeq 2, below the forged 100-105) is in order.
    ua.handle_message(t0, pbx(), &in_dialog(1, &to, "INFO", 2, "info"));
    let out = drain(&mut ua);
    assert_eq!(out.statuses, vec![200]);
    assert!(matches!(out.events[..], [SipEvent::InfoReceived { .. }]));
    ua.handle_message(t0, pbx(), &in_dialog(1, &to, "BYE", 3, "bye"));
    let out = drain(&mut ua);
    assert_eq!(out.statuses, vec![200]);
    assert!(matches!(
        out.events[..],
        [SipEvent::CallEnded { call: c, reason: EndReason::RemoteBye }] if c == call
    ));
}

/// A forged ACK does not confirm an answered call, and a forged CANCEL does not end a
/// ringing one.
#[test]
fn forged_ack_and_cancel_are_ignored() {
    let mut ua = ua();
    let t0 = crate::clock::now();
    ua.handle_message(t0, pbx(), &invite(7, "inv7"));
    let Some(SipEvent::IncomingCall { call, .. }) = drain(&mut ua).events.into_iter().next() else {
        panic!("no call");
    };
    let cancel = String::from_utf8(invite(7, "inv7"))
        .expect("utf8")
        .replace("INVITE sip:", "CANCEL sip:")
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    ua.handle_message(t0, from([192, 0, 2, 66], 5080), cancel.as_bytes());
    let out = drain(&mut ua);
    assert_eq!(out.statuses, vec![403]);
    assert!(out.events.is_empty(), "{:?}", out.events);
    ua.handle_command(
        t0,
        Command::Answer {
            call,
            sdp: b"v=0\r\n".to_vec(),
        },
    );
    let to = std::iter::from_fn(|| ua.poll_transmit())
        .find_map(|t| match msg::parse(&t.bytes) {
            Ok(Message::Response(r)) if r.status == 200 => r.headers.get("To").map(str::to_owned),
            _ => None,
        })
        .expect("200 OK");
    ua.handle_message(
        t0,
        from([192, 0, 2, 66], 5080),
        &in_dialog(7, &to, "ACK", 1, "a"),
    );
    let out = drain(&mut ua);
    assert!(out.statuses.is_empty() && out.events.is_empty(), "{out:?}");
    ua.handle_message(t0, pbx(), &in_dialog(7, &to, "ACK", 1, "a"));
    assert!(matches!(
        drain(&mut ua).events[..],
        [SipEvent::CallConfirmed { .. }]
    ));
}

/// A callback leg's dialog goes through the trunk, which need not be a trusted source: its
/// hops (the trunk we sent the INVITE to, the customer's Contact) may send in the dialog, a
/// re-INVITE from them is not a new call to refuse, and anyone else gets 403.
#[test]
fn an_outbound_legs_peers_may_act_in_its_dialog() {
    let mut cfg = config(None);
    cfg.trusted = vec!["10.0.0.5/32".parse().expect("cidr")];
    let mut ua = UserAgent::new(cfg, IdGen::seeded(5));
    let t0 = crate::clock::now();
    let trunk = from([203, 0, 113, 7], 5060);
    let customer = from([198, 51, 100, 20], 5062);
    let call = ua.new_call_id();
    ua.handle_command(
        t0,
        Command::Dial(Box::new(Dial {
            call,
            target: msg::parse_uri("sip:15551234567@203.0.113.7").expect("uri"),
            next_hop: trunk.addr,
            transport: Proto::Udp,
            hop_host: "127.0.0.1".into(),
            from_user: "support".into(),
            sdp: b"v=0\r\n".to_vec(),
            extra_headers: Vec::new(),
            credentials: None,
        })),
    );
    let invite = sent_requests(&mut ua).pop().expect("INVITE");
    let mut ok = from_far_end(&invite, 200, "OK");
    ok.headers.push("Contact", "<sip:cust@198.51.100.20:5062>");
    ok.body = b"v=0\r\n".to_vec();
    ua.handle_message(t0, trunk, &ok.to_bytes());
    let (_, events) = drain_requests_and_events(&mut ua);
    assert!(
        matches!(events[..], [SipEvent::Answered { .. }]),
        "{events:?}"
    );
    let request = |method: &str, seq: u32| {
        format!(
            "{method} sip:hammond@127.0.0.1:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 198.51.100.20:5062;branch=z9hG4bKo{seq}\r\n\
             From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {seq} {method}\r\n\
             Max-Forwards: 70\r\nContact: <sip:cust@198.51.100.20:5062>\r\n\
             Content-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n",
            ok.headers.get("To").expect("To"),
            invite.headers.get("From").expect("From"),
            invite.call_id().expect("Call-ID"),
        )
        .into_bytes()
    };
    // The trunk re-INVITEs (hold, session refresh): a re-INVITE, not a 403.
    ua.handle_message(t0, trunk, &request("INVITE", 1));
    let out = drain(&mut ua);
    assert_eq!(out.statuses, vec![100]);
    assert!(
        matches!(out.events[..], [SipEvent::ReInvite { .. }]),
        "{out:?}"
    );
    ua.handle_command(
        t0,
        Command::AnswerReInvite {
            call,
            sdp: b"v=0\r\n".to_vec(),
        },
    );
    drain(&mut ua);
    // A stranger's BYE is refused; the customer's own (its Contact) ends the leg.
    ua.handle_message(t0, from([192, 0, 2, 66], 5060), &request("BYE", 5));
    let out = drain(&mut ua);
    assert_eq!(out.statuses, vec![403]);
    assert!(out.events.is_empty());
    ua.handle_message(t0, customer, &request("BYE", 2));
    let out = drain(&mut ua);
    assert_eq!(out.statuses, vec![200]);
    assert!(matches!(
        out.events[..],
        [SipEvent::CallEnded {
            reason: EndReason::RemoteBye,
            ..
        }]
    ));
}

// ------------------------------------------------------------------------------ properties

fn seeds() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = [
        "sip/rfc4475/valid",
        "sip/rfc4475/invalid",
        "sip/rfc5118/valid",
        "sip/rfc5118/invalid",
        "sip/fuzz",
    ]
    .iter()
    .flat_map(|d| files(d))
    .map(|(_, b)| b)
    .collect();
    out.push(invite(1, "seed"));
    out.push(options(1));
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_the_user_agent(
        b in prop::collection::vec(any::<u8>(), 0..600),
        tcp in any::<bool>(),
    ) {
        let mut ua = UserAgent::new(config(Some(pike::Limit { count: 100, per: Duration::from_secs(1) })), IdGen::seeded(3));
        let t0 = crate::clock::now();
        let peer = Peer { addr: SocketAddr::from(([127, 0, 0, 1], 5080)), link: if tcp { Link::Tcp(Some(1)) } else { Link::Udp } };
        ua.handle_message(t0, peer, &b);
        let out = drain(&mut ua);
        settle(&mut ua, t0, &out.events);
        prop_assert_eq!(ua.active_transactions(), 0);
    }

    #[test]
    fn mutated_corpus_never_panics_the_user_agent(
        pick in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..12),
    ) {
        let seeds = seeds();
        let mut b = pick.get(&seeds).clone();
        for (at, byte, op) in edits {
            if b.is_empty() { b.push(byte); continue; }
            let i = at.index(b.len());
            match op {
                0 => b[i] = byte,
                1 => b.insert(i, byte),
                2 => { b.remove(i); }
                _ => b.truncate(i),
            }
        }
        let mut ua = ua();
        let t0 = crate::clock::now();
        ua.handle_message(t0, pbx(), &b);
        ua.handle_message(t0 + Duration::from_millis(1), pbx(), &b);
        let out = drain(&mut ua);
        settle(&mut ua, t0, &out.events);
        prop_assert_eq!(ua.active_transactions(), 0);
        prop_assert_eq!(ua.active_legs(), 0);
    }
}

/// Found by `mutated_corpus_never_panics_the_user_agent`: a request whose CSeq line was broken
/// got a 400 without CSeq, which no client can match to its transaction. Now it gets nothing;
/// with its CSeq intact it still gets the 400.
#[test]
fn a_broken_request_without_via_or_cseq_gets_no_answer() {
    let head = "INVITE sip:support@127.0.0.1 SIP/2.0\r\n\
                Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\n\
                From: <sip:a@192.0.2.1>;tag=1\r\nTo: <sip:support@127.0.0.1>\r\nCall-ID: x@y\r\n";
    let mut ua = ua();
    let t0 = crate::clock::now();
    let no_cseq = format!("{head}Content-Length: 12x\r\n\r\n");
    ua.handle_message(t0, pbx(), no_cseq.as_bytes());
    assert!(ua.poll_transmit().is_none());
    let with_cseq = format!("{head}CSeq: 1 INVITE\r\nContent-Length: 12x\r\n\r\n");
    ua.handle_message(t0, pbx(), with_cseq.as_bytes());
    let t = ua.poll_transmit().expect("a 400");
    assert!(t.bytes.starts_with(b"SIP/2.0 400 "));
}
