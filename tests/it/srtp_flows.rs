//! Issue 18, SRTP on the customer's leg: `[sip.trunk] srtp = "mandatory"` against real peers.
//!
//! - baresip (Debian's package, libre's SDES-SRTP) is the customer's phone with SRTP mandatory
//!   (`mediaenc=srtp-mand`) over UDP: a picked-up callback reaches it, it answers, and audio
//!   flows both ways encrypted. The proof is taken off the wire: a packet capture on `lo` sees
//!   the SDP keys and every RTP packet of the customer's leg; the packets are SRTP (readable
//!   header, auth tag, payload that is not G.711), they decrypt with the keys the SDP
//!   exchanged, what baresip sent reaches the agent decrypted byte for byte (so Hammond
//!   authenticated and decrypted it), and baresip's own recording of what it decoded is not
//!   silent (so it decrypted Hammond's prompts).
//! - A customer whose answer has no crypto (SIPp answering plain RTP/AVP) fails the attempt
//!   at once: the feed says "SRTP: no common crypto suite", the callback is open again with
//!   the attempt counted, and the answered leg got its BYE.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hammond::media::sdes::CryptoAttr;
use hammond::media::sdp::{SessionDescription, SrtpKeys};
use hammond::media::srtp::Srtp;

use crate::support::baresip::Baresip;
use crate::support::capture::{Capture, Datagram};
use crate::support::sipp::{assert_ok, free_port, free_port_pair};
use crate::support::{Hammond, Options, Sipp, http};

/// The callback number the shipped `callback_info.xml` caller books.
const NUMBER: &str = "15551234567";

/// A Hammond with `srtp` on its trunk at `trunk_port`, alice's phone at `agent_port`, and one
/// open callback booked by a SIPp caller.
fn with_callback(trunk_port: u16, agent_port: u16, srtp: &str) -> (Hammond, i64) {
    started_with_callback(Options {
        trunk: Some(SocketAddr::from(([127, 0, 0, 1], trunk_port))),
        agent_port: Some(agent_port),
        trunk_extra: format!("srtp = \"{srtp}\""),
        ..Options::default()
    })
}

/// A Hammond started with `opts`, and one open callback booked by a SIPp caller.
fn started_with_callback(opts: Options) -> (Hammond, i64) {
    let h = Hammond::start(opts);
    let run = Sipp::uac("callback_info.xml", h.sip, "support")
        .key("key1", "1")
        .key("key2", "1")
        .run();
    assert_ok(&run);
    let list = http::get(
        h.http,
        "/api/v1/interactions?sub_type=callback&status=open",
        "alice-secret",
    );
    let id = list.body["interactions"][0]["id"]
        .as_i64()
        .expect("an open callback");
    (h, id)
}

fn post(h: &Hammond, id: i64, what: &str, body: &str) -> http::Reply {
    let r = http::post(
        h.http,
        &format!("/api/v1/interactions/{id}/{what}"),
        "alice-secret",
        body,
    );
    assert_eq!(r.status, 200, "{what}: {}", r.text);
    r
}

/// The interaction once `done` holds of it (or after 20 s: the assertions say what lacked).
fn wait_detail(
    h: &Hammond,
    id: i64,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let d = http::get(
            h.http,
            &format!("/api/v1/interactions/{id}"),
            "alice-secret",
        )
        .body;
        if done(&d) || start.elapsed() > Duration::from_secs(20) {
            return d;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn feed_has(d: &serde_json::Value, kind: &str) -> bool {
    d["feed"]
        .as_array()
        .is_some_and(|f| f.iter().any(|e| e["kind"] == kind))
}

/// The SIP message text of a datagram, if it is one.
fn sip(d: &Datagram) -> Option<&str> {
    let t = std::str::from_utf8(&d.payload).ok()?;
    (t.starts_with("SIP/2.0 ") || t.contains(" SIP/2.0\r\n")).then_some(t)
}

/// The first SIP message from `from` to `to` whose start line begins `start` and that has SDP.
fn sdp_of<'a>(wire: &'a [Datagram], start: &str, from: u16, to: u16) -> &'a str {
    wire.iter()
        .filter(|d| d.src.port() == from && d.dst.port() == to)
        .filter_map(sip)
        .find(|t| t.starts_with(start) && t.contains("\r\nm=audio"))
        .and_then(|t| t.split_once("\r\n\r\n"))
        .map(|(_, body)| body)
        .unwrap_or_else(|| panic!("no {start} with SDP from :{from} to :{to} on the wire"))
}

/// The audio section of an SDP body: its port, proto and `a=crypto` lines.
fn audio(body: &str) -> (u16, String, Vec<CryptoAttr>) {
    let sd = SessionDescription::parse(body).expect("SDP on the wire parses");
    let m = &sd.media[0];
    (m.port, m.proto.clone(), m.crypto.clone())
}

/// Shannon entropy of the bytes, in bits per byte (8 for random data).
fn entropy(bytes: impl Iterator<Item = u8>) -> f64 {
    let mut count = [0u64; 256];
    let mut n = 0u64;
    for b in bytes {
        count[usize::from(b)] += 1;
        n += 1;
    }
    count
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n as f64;
            -p * p.log2()
        })
        .sum()
}

/// An SRTP context that checks and decrypts what `sender` protected.
fn decryptor(suite_line: &CryptoAttr, sender: &CryptoAttr) -> Srtp {
    Srtp::new(&SrtpKeys {
        suite: suite_line.suite,
        local: sender.key.clone(),
        remote: sender.key.clone(),
        remote_mki: sender.mki,
    })
    .expect("keys from the wire key a context")
}

/// The RTP payloads (after a 12-byte header) of `packets`, decrypted by `ctx`.
fn decrypt_all(ctx: &mut Srtp, packets: &[&Datagram]) -> Vec<Vec<u8>> {
    let mut out = [0u8; 1500];
    packets
        .iter()
        .map(|d| {
            let plain = ctx
                .unprotect(&d.payload, &mut out)
                .unwrap_or_else(|e| panic!("{} → {}: {e}", d.src, d.dst));
            plain[12..].to_vec()
        })
        .collect()
}

#[test]
fn a_callback_to_a_baresip_phone_with_srtp_mandatory_is_encrypted_both_ways() {
    let wire = Capture::start();
    let phone_port = free_port();
    let agent_port = free_port_pair();
    let music = crate::support::hammond::repo().join("prompts/audio/hold_music.wav");
    let phone = Baresip::start(NUMBER, phone_port, "srtp-mand", &music);
    let (h, id) = with_callback(phone_port, agent_port, "mandatory");
    // Alice answers after 4 s: the customer answers first and hears the callback greeting
    // and hold music from Hammond, then the bridge carries the customer's audio to alice.
    let alice = Sipp::uas("customer_answers_after_4s.xml", agent_port).spawn();
    std::thread::sleep(Duration::from_millis(300));
    post(&h, id, "accept", "{}");
    let d = wait_detail(&h, id, |d| feed_has(d, "bridged"));
    assert!(feed_has(&d, "callback_answered"), "{d}\n{}", phone.log());
    assert!(feed_has(&d, "bridged"), "{d}\n{}\n{}", phone.log(), h.log());
    std::thread::sleep(Duration::from_millis(2500));
    post(&h, id, "close", r#"{"disposition": "resolved"}"#);
    assert_ok(&alice.wait());
    std::thread::sleep(Duration::from_millis(300));
    let phone_rtp = phone.rtp;
    let stopped = phone.stop();
    let wire = wire.stop();

    // The SDP on the wire: Hammond offers RTP/SAVP with a line per suite; baresip takes one.
    let hammond_sip = h.sip.port();
    let offer = sdp_of(&wire, "INVITE sip:15551234567@", hammond_sip, phone_port);
    let (h_port, proto, ours) = audio(offer);
    assert_eq!(proto, "RTP/SAVP", "{offer}");
    assert_eq!(ours.len(), 2, "{offer}");
    let answer = sdp_of(&wire, "SIP/2.0 200", phone_port, hammond_sip);
    let (b_port, proto, theirs) = audio(answer);
    assert_eq!(proto, "RTP/SAVP", "{answer}");
    assert_eq!(theirs.len(), 1, "one line answered: {answer}");
    let taken = &theirs[0];
    let ours = ours
        .iter()
        .find(|o| o.tag == taken.tag)
        .expect("answer names our tag");
    assert_eq!(ours.suite, taken.suite);
    assert!((phone_rtp.0..=phone_rtp.1).contains(&b_port));

    let leg = |src: u16, dst: u16| -> Vec<&Datagram> {
        wire.iter()
            .filter(|d| d.src.port() == src && d.dst.port() == dst)
            .collect()
    };
    let to_phone = leg(h_port, b_port);
    let from_phone = leg(b_port, h_port);
    assert!(
        to_phone.len() > 150,
        "Hammond → phone: {} packets",
        to_phone.len()
    );
    assert!(
        from_phone.len() > 150,
        "phone → Hammond: {} packets",
        from_phone.len()
    );
    let tag = taken.suite.auth_tag_len();
    for (dir, packets, sender) in [
        ("Hammond → phone", &to_phone, ours),
        ("phone → Hammond", &from_phone, taken),
    ] {
        // SRTP: an RTP header, 20 ms of G.711 that is not G.711, an auth tag.
        assert!(
            packets
                .iter()
                .all(|d| d.payload.len() == 12 + 160 + tag && d.payload[0] >> 6 == 2),
            "{dir}: not SRTP-sized RTP"
        );
        let on_wire = entropy(
            packets
                .iter()
                .flat_map(|d| d.payload[12..172].iter().copied()),
        );
        let plain = decrypt_all(&mut decryptor(taken, sender), packets);
        let in_clear = entropy(plain.iter().flatten().copied());
        assert!(
            on_wire > 7.9,
            "{dir}: payload entropy {on_wire:.2} bits/byte is not ciphertext"
        );
        assert!(
            in_clear < 7.5,
            "{dir}: decrypted entropy {in_clear:.2} is not G.711 audio"
        );
        let same = packets
            .iter()
            .zip(&plain)
            .filter(|(d, p)| d.payload[12..172] == p[..])
            .count();
        assert_eq!(same, 0, "{dir}: {same} payloads in the clear");
    }

    // Hammond decrypted the customer's audio: after the bridge alice receives, in the clear,
    // exactly the payloads baresip encrypted (PCMU on both legs, so relayed byte for byte).
    let alice_answer = wire
        .iter()
        .filter(|d| d.src.port() == agent_port)
        .filter_map(sip)
        .find(|t| t.starts_with("SIP/2.0 200") && t.contains("m=audio"))
        .expect("alice's 200 OK on the wire");
    let (alice_media, _, _) = audio(alice_answer.split_once("\r\n\r\n").unwrap().1);
    let customer_said = decrypt_all(&mut decryptor(taken, taken), &from_phone);
    let relayed: Vec<&[u8]> = wire
        .iter()
        .filter(|d| d.dst.port() == alice_media && d.payload.len() == 172)
        .map(|d| &d.payload[12..])
        .filter(|p| p.iter().any(|&b| b != p[0]))
        .collect();
    let matched = relayed
        .iter()
        .filter(|p| customer_said.iter().any(|c| c[..] == p[..]))
        .count();
    assert!(
        matched > 50,
        "alice got {matched} of {} audio frames that the customer sent\n{}\n{}",
        relayed.len(),
        h.log(),
        stopped.log
    );

    // baresip decrypted Hammond's audio: what it decoded is not silence.
    let loudest = loudest(&stopped.decoded);
    assert!(
        loudest > 300.0,
        "baresip decoded silence (RMS {loudest:.0}) from {} recordings:\n{}",
        stopped.decoded.len(),
        stopped.log
    );
    let text = h.log();
    assert!(!text.contains(&ours_b64(ours)), "Hammond logged its key");
}

/// The RMS level of the loudest recording.
fn loudest(recordings: &[Vec<i16>]) -> f64 {
    recordings
        .iter()
        .map(|s| {
            let sq: f64 = s.iter().map(|&x| f64::from(x).powi(2)).sum();
            (sq / s.len().max(1) as f64).sqrt()
        })
        .fold(0.0, f64::max)
}

/// The base64 key of a line, as it appears in SDP.
fn ours_b64(line: &CryptoAttr) -> String {
    let mut v = String::new();
    line.write_value(&mut v);
    v.split("inline:").nth(1).unwrap_or_default().to_owned()
}

/// SRTP mandatory and a customer that answers plain RTP/AVP: the attempt fails at once with
/// the reason on the feed, counted, back to open; the answered leg is hung up (its BYE).
#[test]
fn an_answer_without_crypto_fails_the_attempt_at_once_with_the_reason() {
    let trunk = free_port();
    let agent = free_port_pair();
    let (h, id) = with_callback(trunk, agent, "mandatory");
    let customer = Sipp::uas("phone_answers_waits_bye.xml", trunk).spawn();
    let alice = Sipp::uas("phone_no_answer.xml", agent).spawn();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    post(&h, id, "accept", "{}");
    let d = wait_detail(&h, id, |d| d["status"] == "open");
    let customer = customer.wait();
    // "At once": well inside the 20 s agent ring and 30 s customer ring timeouts it would
    // otherwise wait out (10 s leaves room for a loaded CI host; alone it takes about 1 s).
    assert!(started.elapsed() < Duration::from_secs(10), "not at once");
    assert_ok(&customer);
    assert!(
        customer.messages.contains("RTP/SAVP")
            && customer
                .messages
                .contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"),
        "the offer is SRTP: {}",
        customer.messages
    );
    assert_eq!(d["status"], "open", "{d}");
    assert_eq!(d["callback"]["attempts"], 1, "{d}");
    let failed = d["feed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "callback_failed_attempt")
        .unwrap_or_else(|| panic!("no failed attempt: {d}"));
    assert!(
        failed["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("SRTP: no common crypto suite; attempt 1 of")),
        "{d}"
    );
    assert!(
        h.wait_for_log("SRTP: no common crypto suite", Duration::from_secs(2)),
        "a warning says why"
    );
    let _ = alice.wait();
}

/// A PBX (here baresip, SRTP mandatory) that calls in with RTP/SAVP and `a=crypto` is answered
/// with SRTP: Hammond's 200 OK is RTP/SAVP with one line of the offered suite and its own key,
/// the greeting leaves encrypted (it decrypts with that key), and the caller decodes it.
#[test]
fn an_inbound_srtp_offer_is_answered_with_srtp() {
    let wire = Capture::start();
    let h = Hammond::start(Options::default());
    let music = crate::support::hammond::repo().join("prompts/audio/hold_music.wav");
    let target = format!("sip:support@{}", h.sip);
    let phone = Baresip::start_with("caller", free_port(), "srtp-mand", &music, Some(&target));
    assert!(
        phone.wait_for_log("Call established", Duration::from_secs(10)),
        "{}\n{}",
        phone.log(),
        h.log()
    );
    std::thread::sleep(Duration::from_secs(4));
    let phone_sip = phone.sip.port();
    let stopped = phone.stop();
    let wire = wire.stop();

    let offer = sdp_of(&wire, "INVITE sip:support@", phone_sip, h.sip.port());
    let (b_port, proto, theirs) = audio(offer);
    assert_eq!(proto, "RTP/SAVP", "{offer}");
    let answer = sdp_of(&wire, "SIP/2.0 200", h.sip.port(), phone_sip);
    let (h_port, proto, ours) = audio(answer);
    assert_eq!(proto, "RTP/SAVP", "{answer}");
    assert_eq!(ours.len(), 1, "{answer}");
    let offered = theirs
        .iter()
        .find(|t| t.tag == ours[0].tag)
        .expect("the answer names an offered tag");
    assert_eq!(offered.suite, ours[0].suite);
    assert_ne!(offered.key, ours[0].key, "our own key, not the caller's");
    let greeting: Vec<&Datagram> = wire
        .iter()
        .filter(|d| d.src.port() == h_port && d.dst.port() == b_port)
        .collect();
    assert!(greeting.len() > 100, "{} packets", greeting.len());
    let tag = ours[0].suite.auth_tag_len();
    assert!(greeting.iter().all(|d| d.payload.len() == 12 + 160 + tag));
    let plain = decrypt_all(&mut decryptor(&ours[0], &ours[0]), &greeting);
    let on_wire = entropy(
        greeting
            .iter()
            .flat_map(|d| d.payload[12..172].iter().copied()),
    );
    assert!(on_wire > 7.9, "entropy {on_wire:.2}");
    assert!(entropy(plain.iter().flatten().copied()) < 7.5);
    let loudest = loudest(&stopped.decoded);
    assert!(
        loudest > 300.0,
        "the caller decoded silence:\n{}",
        stopped.log
    );
}

/// The whole secure trunk (issue 18's acceptance): baresip listens on TLS with a certificate
/// from a test CA that Hammond trusts through `ca_file`, SRTP mandatory. A picked-up callback
/// reaches it over TLS (no SIP for it in the clear on the wire), it answers, and audio flows
/// both ways encrypted: every RTP packet of the customer's leg is SRTP-sized and its payload
/// is ciphertext, baresip decodes Hammond's audio, and Hammond decrypts baresip's (alice
/// hears it after the bridge). The keys travelled inside TLS, so this test cannot decrypt the
/// capture itself; the UDP test above does that.
#[test]
fn a_callback_over_tls_to_a_baresip_phone_with_srtp_mandatory_is_encrypted_both_ways() {
    let pki = crate::support::pki::make("Hammond test CA", &["127.0.0.1"]);
    let both = pki.dir.path().join("cert-and-key.pem");
    let pem =
        std::fs::read_to_string(&pki.cert).unwrap() + &std::fs::read_to_string(&pki.key).unwrap();
    std::fs::write(&both, pem).unwrap();
    let wire = Capture::start();
    let phone_port = free_port_pair();
    let agent_port = free_port_pair();
    let music = crate::support::hammond::repo().join("prompts/audio/hold_music.wav");
    let phone = Baresip::start_tls(NUMBER, phone_port, "srtp-mand", &music, &both);
    let sips = phone.sips.unwrap();
    let (h, id) = started_with_callback(Options {
        trunk: Some(sips),
        agent_port: Some(agent_port),
        trunk_extra: format!(
            "transport = \"tls\"\nca_file = \"{}\"\nsrtp = \"mandatory\"",
            pki.ca.display()
        ),
        ..Options::default()
    });
    let alice = Sipp::uas("customer_answers_after_4s.xml", agent_port).spawn();
    std::thread::sleep(Duration::from_millis(300));
    post(&h, id, "accept", "{}");
    let d = wait_detail(&h, id, |d| feed_has(d, "bridged"));
    assert!(
        feed_has(&d, "callback_answered"),
        "{d}\n{}\n{}",
        phone.log(),
        h.log()
    );
    assert!(feed_has(&d, "bridged"), "{d}\n{}\n{}", phone.log(), h.log());
    std::thread::sleep(Duration::from_millis(2500));
    post(&h, id, "close", r#"{"disposition": "resolved"}"#);
    assert_ok(&alice.wait());
    std::thread::sleep(Duration::from_millis(300));
    let phone_rtp = phone.rtp;
    let stopped = phone.stop();
    let wire = wire.stop();

    // The signalling went over TLS: no SIP to or from the phone in the clear.
    // (The capture is the whole loopback's: only this Hammond's datagrams count.)
    assert!(
        !wire
            .iter()
            .filter(|d| d.src.port() == h.sip.port())
            .filter_map(sip)
            .any(|t| t.starts_with("INVITE sip:15551234567@")),
        "the customer's INVITE travelled in the clear"
    );
    assert!(
        !wire
            .iter()
            .any(|d| d.dst.port() == phone_port || d.src.port() == phone_port),
        "SIP over UDP to or from the phone"
    );
    // RTP (not RTCP, whose second byte is its packet type, 200-207) on the phone's ports.
    let on_phone = |p: u16| (phone_rtp.0..=phone_rtp.1).contains(&p);
    let rtp = |d: &&Datagram| d.payload.len() > 12 && !(200..=207).contains(&d.payload[1]);
    let to_phone: Vec<&Datagram> = wire
        .iter()
        .filter(|d| on_phone(d.dst.port()))
        .filter(rtp)
        .collect();
    let from_phone: Vec<&Datagram> = wire
        .iter()
        .filter(|d| on_phone(d.src.port()))
        .filter(rtp)
        .collect();
    for (dir, packets) in [
        ("Hammond → phone", &to_phone),
        ("phone → Hammond", &from_phone),
    ] {
        assert!(packets.len() > 150, "{dir}: {} packets", packets.len());
        // SRTP: an RTP header, 160 bytes that are not G.711, an 80- or 32-bit auth tag.
        assert!(
            packets.iter().all(|d| {
                let n = d.payload.len();
                (n == 12 + 160 + 10 || n == 12 + 160 + 4) && d.payload[0] >> 6 == 2
            }),
            "{dir}: not SRTP-sized RTP: {:?}",
            packets
                .iter()
                .map(|d| (d.payload.len(), d.payload[1]))
                .collect::<std::collections::BTreeSet<_>>()
        );
        let on_wire = entropy(
            packets
                .iter()
                .flat_map(|d| d.payload[12..172].iter().copied()),
        );
        assert!(
            on_wire > 7.9,
            "{dir}: payload entropy {on_wire:.2} bits/byte is not ciphertext"
        );
    }

    // Hammond decrypted the customer's audio: after the bridge alice hears sound in the
    // clear (the music baresip plays is never one repeated byte).
    let alice_answer = wire
        .iter()
        .filter(|d| d.src.port() == agent_port)
        .filter_map(sip)
        .find(|t| t.starts_with("SIP/2.0 200") && t.contains("m=audio"))
        .expect("alice's 200 OK on the wire");
    let (alice_media, _, _) = audio(alice_answer.split_once("\r\n\r\n").unwrap().1);
    let heard: Vec<&[u8]> = wire
        .iter()
        .filter(|d| d.dst.port() == alice_media && d.payload.len() == 172)
        .map(|d| &d.payload[12..])
        .filter(|p| p.iter().any(|&b| b != p[0]))
        .collect();
    let in_clear = entropy(heard.iter().flat_map(|p| p.iter().copied()));
    assert!(
        heard.len() > 50 && in_clear < 7.5,
        "alice heard {} frames of entropy {in_clear:.2}\n{}\n{}",
        heard.len(),
        h.log(),
        stopped.log
    );
    // baresip decrypted Hammond's audio: what it decoded is not silence.
    let loudest = loudest(&stopped.decoded);
    assert!(
        loudest > 300.0,
        "baresip decoded silence (RMS {loudest:.0}):\n{}",
        stopped.log
    );
}
