//! Issue 18, SIP over TLS: a PBX calls in on `[sip] tls_listen`, a callback reaches the
//! customer through a trunk with `transport = "tls"` (its certificate checked against
//! `ca_file` and the proxy's host name, sent as SNI), and a trunk whose certificate is not
//! trusted fails the attempt at once with the reason on the feed.
//!
//! Debian's SIPp is built without TLS ("To use a TLS transport you must compile SIPp with
//! OpenSSL"), so the TLS peers here are small rustls clients and servers speaking hand-written
//! SIP. Certificates come from a test CA made at test time (rcgen). As in `tcp_flows`, the idle
//! timeout is 1 s and calls stay silent for 3 s: the connection outlives it three times over,
//! which is what a call of more than 2 minutes proves with the default 60 s.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConnection, ServerConnection, StreamOwned};

use crate::dialer_flows::{accept_as_alice, wait_detail, wait_feed, with_callback_opts};
use crate::support::pki::{self, Pki};
use crate::support::raw_sip::{header, read_until, sdp};
use crate::support::sipp::{assert_ok, free_port};
use crate::support::{Hammond, Options, Sipp};

const IDLE: &str = "tcp_idle_timeout = \"1s\"";
const HOLD: Duration = Duration::from_secs(3);

fn path(p: &std::path::Path) -> String {
    p.display().to_string()
}

/// A PBX calls in over TLS (checking Hammond's certificate against the test CA), holds the
/// call silent for three idle timeouts and hangs up: Hammond answered with a Contact on its
/// TLS port with `;transport=tls`, and the BYE on the same connection is answered.
#[test]
fn a_pbx_calls_in_over_tls_and_holds_the_call() {
    let pki = pki::make("Hammond test CA", &["127.0.0.1", "hammond.test"]);
    let h = Hammond::start(Options {
        sip_extra: format!(
            "{IDLE}\ntls_listen = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"",
            path(&pki.cert),
            path(&pki.key)
        ),
        ..Options::default()
    });
    let sips = h.sips.expect("a TLS listener in the ready line");
    let tcp = TcpStream::connect(sips).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let local = tcp.local_addr().unwrap();
    let name = ServerName::try_from("hammond.test").unwrap();
    let conn = ClientConnection::new(pki.client(), name).unwrap();
    let mut s = StreamOwned::new(conn, tcp);
    let body = sdp(free_port());
    let invite = format!(
        "INVITE sip:support@{sips};transport=tls SIP/2.0\r\n\
         Via: SIP/2.0/TLS {local};branch=z9hG4bKtls1;rport\r\n\
         From: <sip:15551234567@127.0.0.1>;tag=pbx1\r\n\
         To: <sip:support@{sips}>\r\n\
         Call-ID: tls-1@pbx\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:pbx@{local};transport=tls>\r\n\
         Max-Forwards: 70\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(invite.as_bytes()).unwrap();
    s.flush().unwrap();
    let ok = read_until(&mut s, "SIP/2.0 200", Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no 200 over TLS\n{}", h.log()));
    assert_eq!(
        header(&ok, "Contact"),
        format!("<sip:hammond@{sips};transport=tls>"),
        "{ok}"
    );
    let to = header(&ok, "To").to_owned();
    let ack = format!(
        "ACK sip:hammond@{sips};transport=tls SIP/2.0\r\n\
         Via: SIP/2.0/TLS {local};branch=z9hG4bKtls2;rport\r\n\
         From: <sip:15551234567@127.0.0.1>;tag=pbx1\r\nTo: {to}\r\n\
         Call-ID: tls-1@pbx\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    s.write_all(ack.as_bytes()).unwrap();
    s.flush().unwrap();
    std::thread::sleep(HOLD);
    let bye = format!(
        "BYE sip:hammond@{sips};transport=tls SIP/2.0\r\n\
         Via: SIP/2.0/TLS {local};branch=z9hG4bKtls3;rport\r\n\
         From: <sip:15551234567@127.0.0.1>;tag=pbx1\r\nTo: {to}\r\n\
         Call-ID: tls-1@pbx\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    s.write_all(bye.as_bytes())
        .and_then(|()| s.flush())
        .unwrap_or_else(|e| panic!("the connection did not hold: {e}\n{}", h.log()));
    let answer = read_until(
        &mut s,
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS",
        Duration::from_secs(5),
    )
    .filter(|m| header(m, "CSeq") == "2 BYE")
    .unwrap_or_else(|| panic!("BYE not answered on the held connection\n{}", h.log()));
    assert!(answer.contains("branch=z9hG4bKtls3"), "{answer}");
    assert!(
        h.wait_for_log("call ended", Duration::from_secs(5)),
        "{}",
        h.log()
    );
}

/// What the TLS trunk saw.
struct TrunkSaw {
    sni: Option<String>,
    invite: String,
    bye_answered: bool,
}

/// A carrier's TLS edge on `listener`: answers the customer's INVITE, lets the call run silent
/// for [`HOLD`], then hangs up (BYE) and waits for the 200.
fn tls_trunk(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> TrunkSaw {
    let (tcp, _) = listener.accept().unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let local = tcp.local_addr().unwrap();
    let mut s = StreamOwned::new(ServerConnection::new(config).unwrap(), tcp);
    let invite = read_until(&mut s, "INVITE ", Duration::from_secs(10)).expect("the INVITE");
    let sni = s.conn.server_name().map(str::to_owned);
    let to = format!("{};tag=cust1", header(&invite, "To"));
    let contact = format!("<sip:customer@{local};transport=tls>");
    let head = |status: &str| {
        format!(
            "SIP/2.0 {status}\r\nVia: {}\r\nFrom: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: {contact}\r\n",
            header(&invite, "Via"),
            header(&invite, "From"),
            header(&invite, "Call-ID"),
            header(&invite, "CSeq"),
        )
    };
    let body = sdp(free_port());
    let answer = format!(
        "{}Content-Length: 0\r\n\r\n{}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        head("180 Ringing"),
        head("200 OK"),
        body.len()
    );
    s.write_all(answer.as_bytes()).unwrap();
    s.flush().unwrap();
    read_until(&mut s, "ACK ", Duration::from_secs(10)).expect("the ACK");
    std::thread::sleep(HOLD);
    let from = header(&invite, "From").to_owned();
    let target = header(&invite, "Contact")
        .trim_matches(|c| c == '<' || c == '>')
        .to_owned();
    let bye = format!(
        "BYE {target} SIP/2.0\r\nVia: SIP/2.0/TLS {local};branch=z9hG4bKcust1\r\nFrom: {to}\r\nTo: {from}\r\n\
         Call-ID: {}\r\nCSeq: 1 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        header(&invite, "Call-ID")
    );
    let bye_answered = s.write_all(bye.as_bytes()).and_then(|()| s.flush()).is_ok()
        && read_until(&mut s, "SIP/2.0 200", Duration::from_secs(5))
            .is_some_and(|m| header(&m, "CSeq") == "1 BYE");
    TrunkSaw {
        sni,
        invite,
        bye_answered,
    }
}

/// A listener where `localhost` resolves first (IPv4 or IPv6), so Hammond's dial to
/// `localhost:PORT` finds it.
fn localhost_listener() -> TcpListener {
    let first = ("localhost", 0).to_socket_addrs().unwrap().next().unwrap();
    TcpListener::bind(SocketAddr::new(first.ip(), 0)).unwrap()
}

fn tls_trunk_options(o: &mut Options, port: u16, ca: &Pki) {
    o.trunk_proxy = Some(format!("localhost:{port}"));
    o.trunk_extra = format!("transport = \"tls\"\nca_file = \"{}\"", path(&ca.ca));
    o.sip_extra = IDLE.into();
}

/// A callback over a TLS trunk: the INVITE goes over TLS to the proxy's host name (SNI
/// `localhost`, checked against the CA in `ca_file`), says TLS in Via, Contact and
/// Request-URI, and the customer's BYE after a silent spell arrives on the held connection.
#[test]
fn a_callback_reaches_the_customer_over_a_tls_trunk() {
    let pki = pki::make("Carrier test CA", &["localhost"]);
    let listener = localhost_listener();
    let port = listener.local_addr().unwrap().port();
    let server = pki.server();
    let trunk = std::thread::spawn(move || tls_trunk(listener, server));
    let (h, _, agent, id) = with_callback_opts(|o| tls_trunk_options(o, port, &pki));
    let alice = Sipp::uas("phone_answers_waits_bye.xml", agent).spawn();
    std::thread::sleep(Duration::from_millis(300));
    accept_as_alice(&h, id);
    let saw = trunk.join().unwrap();
    assert_ok(&alice.wait());
    assert_eq!(saw.sni.as_deref(), Some("localhost"));
    assert!(
        saw.invite.starts_with(&format!(
            "INVITE sip:15551234567@localhost:{port};transport=tls SIP/2.0"
        )),
        "{}",
        saw.invite
    );
    assert!(header(&saw.invite, "Via").starts_with("SIP/2.0/TLS "));
    assert!(header(&saw.invite, "Contact").ends_with(";transport=tls>"));
    assert!(
        saw.bye_answered,
        "the customer's BYE was not answered\n{}",
        h.log()
    );
    let kinds = wait_feed(&h, id, "hung_up");
    for k in ["callback_answered", "bridged", "hung_up"] {
        assert!(kinds.iter().any(|x| x == k), "feed lacks {k}: {kinds:?}");
    }
}

/// A trunk whose certificate comes from a CA Hammond does not trust: the attempt fails at once
/// (no 32 s wait for Timer B), the callback is open again with the attempt counted, and the
/// feed and a warning say why.
#[test]
fn an_untrusted_trunk_certificate_fails_the_attempt_at_once_with_the_reason() {
    let trusted = pki::make("Carrier test CA", &["localhost"]);
    let rogue = pki::make("Someone else's CA", &["localhost"]);
    let listener = localhost_listener();
    let port = listener.local_addr().unwrap().port();
    let server = rogue.server();
    // The carrier's side: the handshake fails; nothing more comes.
    std::thread::spawn(move || {
        if let Ok((tcp, _)) = listener.accept() {
            tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut s = StreamOwned::new(ServerConnection::new(server).unwrap(), tcp);
            let _ = read_until(&mut s, "INVITE ", Duration::from_secs(5));
        }
    });
    let (h, _, agent, id) = with_callback_opts(|o| tls_trunk_options(o, port, &trusted));
    let alice = Sipp::uas("phone_no_answer.xml", agent).spawn();
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    accept_as_alice(&h, id);
    let d = wait_detail(&h, id, |d| {
        d["status"] == "open" && d["callback"]["attempts"] == 1
    });
    let took = start.elapsed();
    assert_eq!(d["status"], "open", "{d}");
    assert_eq!(d["callback"]["attempts"], 1, "{d}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let failed = d["feed"]
        .as_array()
        .and_then(|f| f.iter().find(|e| e["kind"] == "callback_failed_attempt"))
        .unwrap_or_else(|| panic!("no failed attempt on the feed: {d}"));
    assert_eq!(failed["cause"], "tls_certificate_not_trusted", "{failed}");
    assert!(
        failed["text"]
            .as_str()
            .is_some_and(|t| t.contains("TLS: certificate not trusted")),
        "{failed}"
    );
    assert_eq!(failed["outcome"], "failed", "{failed}");
    assert_ok(&alice.wait());
    let log = h.log();
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("SIP connection failed")
            && l.contains("certificate")),
        "{log}"
    );
}

/// `hammond check-config` checks the TLS keys' files: a key that is not the certificate's, an
/// unreadable CA file and a certificate file without a certificate, each at its own
/// `file:line:column`, and exit 1. The same config with the right files passes.
#[test]
fn check_config_reports_bad_tls_files_at_their_keys() {
    let pki = pki::make("Hammond test CA", &["hammond.test"]);
    let other = pki::make("Another CA", &["hammond.test"]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("hammond.toml");
    let repo = crate::support::hammond::repo();
    let write = |cert: &str, key: &str, ca: &str| {
        std::fs::write(
            &cfg,
            format!(
                "[sip]\ntls_listen = \"127.0.0.1:5061\"\ntls_cert = \"{cert}\"\ntls_key = \"{key}\"\n\
                 [sip.trunk]\ntransport = \"tls\"\nca_file = \"{ca}\"\n\
                 [queues]\ndir = \"{}\"\n[prompts]\ndir = \"{}\"\n",
                repo.join("config/queues").display(),
                repo.join("prompts").display()
            ),
        )
        .unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hammond"))
            .args(["check-config", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let (code, text) = write(&path(&pki.cert), &path(&pki.key), &path(&pki.ca));
    assert_eq!(code, Some(0), "{text}");

    let (code, text) = write(&path(&pki.cert), &path(&other.key), "/nonexistent/ca.pem");
    assert_eq!(code, Some(1), "{text}");
    let at = |line: u32, col: u32| format!("{}:{line}:{col}: ", cfg.display());
    for want in [
        format!(
            "{}sip.tls_key: the key does not match the certificate",
            at(4, 11)
        ),
        format!(
            "{}sip.trunk.ca_file: cannot read /nonexistent/ca.pem",
            at(7, 11)
        ),
    ] {
        assert!(text.contains(&want), "expected {want:?} in:\n{text}");
    }
    let (code, text) = write(&path(&pki.key), &path(&pki.key), &path(&pki.ca));
    assert_eq!(code, Some(1), "{text}");
    let want = format!("{}sip.tls_cert: no certificate in", at(3, 12));
    assert!(text.contains(&want), "expected {want:?} in:\n{text}");
}
