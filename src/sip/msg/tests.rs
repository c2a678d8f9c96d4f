//! Parser tests: the RFC 4475 / RFC 5118 corpora in `tests/data/sip`, unit cases per
//! production, round-trip and never-panic properties.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::parse::{parse_cseq, parse_name_addr, parse_via};
use super::*;

fn data_dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/sip")
        .join(sub)
}

/// `(name, bytes)` of every `.sip` file in `tests/data/sip/<sub>`, sorted by name.
fn corpus(sub: &str) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(data_dir(sub))
        .unwrap_or_else(|e| panic!("reading {sub}: {e}"))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "sip"))
        .map(|p| {
            let name = p.file_stem().expect("stem").to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("read corpus file"))
        })
        .collect();
    out.sort();
    out
}

fn all_corpus() -> Vec<(String, Vec<u8>)> {
    [
        "rfc4475/valid",
        "rfc4475/invalid",
        "rfc5118/valid",
        "rfc5118/invalid",
    ]
    .iter()
    .flat_map(|d| corpus(d))
    .collect()
}

fn req(m: &Message) -> &Request {
    match m {
        Message::Request(r) => r,
        Message::Response(_) => panic!("expected a request"),
    }
}

fn rsp(m: &Message) -> &Response {
    match m {
        Message::Response(r) => r,
        Message::Request(_) => panic!("expected a response"),
    }
}

// ------------------------------------------------------------------------------ corpora

/// Key facts of each valid message, beyond "it parses".
fn check_valid(name: &str, m: &Message) {
    let h = m.headers();
    assert!(h.get("Call-ID").is_some(), "{name}: Call-ID");
    match name {
        "wsinv" => {
            let r = req(m);
            assert_eq!(r.method, Method::Invite);
            assert_eq!(r.uri.user.as_deref(), Some("vivekg"));
            assert_eq!(r.uri.host, "chair-dnrc.example.com");
            assert_eq!(r.uri.params.get("unknownparam"), Some(None));
            assert_eq!(r.to_hdr().expect("To").tag(), Some("1918181833n"));
            let from = r.from_hdr().expect("From");
            assert_eq!(from.tag(), Some("98asjd8"));
            assert_eq!(from.display_name().as_deref(), Some("J Rosenberg \\\""));
            assert_eq!(h.get("Max-Forwards"), Some("0068"));
            assert_eq!(
                r.cseq(),
                Some(CSeq {
                    seq: 9,
                    method: Method::Invite
                })
            );
            let vias = r.vias();
            assert_eq!(vias.len(), 3);
            assert_eq!(
                (vias[0].transport.as_str(), vias[0].host.as_str()),
                ("UDP", "192.0.2.2")
            );
            assert_eq!(vias[0].branch(), Some("390skdjuw"));
            assert_eq!(
                (vias[1].transport.as_str(), vias[1].branch()),
                ("TCP", Some("z9hG4bK9ikj8"))
            );
            assert_eq!(vias[2].host, "192.168.255.111");
            assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));
            assert_eq!(h.get("Subject"), Some(""));
            assert_eq!(
                h.get("NewFangledHeader"),
                Some("newfangled value continued newfangled value")
            );
            assert_eq!(h.get("UnknownHeaderWithUnusualValue"), Some(";;,,;;,;"));
            let c = r.contact().expect("Contact");
            assert_eq!(c.display_name().as_deref(), Some("Quoted string \"\""));
            assert_eq!(c.params.get("newparam"), Some(Some("newvalue")));
            assert_eq!(c.params.get("secondparam"), Some(None));
            assert_eq!(c.params.get("q"), Some(Some("0.33")));
            let route = r.routes("Route");
            assert_eq!(route.len(), 1);
            assert_eq!(route[0].uri.params.get("lr"), Some(None));
            assert_eq!(r.body.len(), 150);
        }
        "intmeth" => {
            let r = req(m);
            assert_eq!(
                r.method,
                Method::Other("!interesting-Method0123456789_*+`.%indeed'~".into())
            );
            assert_eq!(
                r.uri.user.as_deref(),
                Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
            );
            assert_eq!(
                r.uri.password.as_deref(),
                Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
            );
            assert_eq!(
                r.top_via().expect("Via").branch(),
                Some("z9hG4bK-.!%66*_+`'~")
            );
            let to = r.to_hdr().expect("To");
            assert_eq!(
                to.display_name().as_deref(),
                Some("BEL:\x07 NUL:\0 DEL:\x7f")
            );
            let from = r.from_hdr().expect("From");
            assert_eq!(
                from.display.as_deref(),
                Some("token1~` token2'+_ token3*%!.-")
            );
            assert_eq!(
                from.params.get("fromParam''~+*_!.-%"),
                Some(Some("\"работающий\""))
            );
            assert_eq!(from.tag(), Some("_token~1'+`*%!-."));
            assert_eq!(
                r.call_id(),
                Some("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{")
            );
            assert_eq!(h.get("extensionHeader-!.%*+_`'~"), Some("\u{feff}大停電"));
        }
        "esc01" => {
            let r = req(m);
            assert_eq!(
                r.uri.user_decoded().as_deref(),
                Some("sips:user@example.com")
            );
            assert_eq!(
                r.to_hdr().expect("To").uri.user_decoded().as_deref(),
                Some("user")
            );
            assert_eq!(
                r.from_hdr().expect("From").uri.user_decoded().as_deref(),
                Some("I have spaces")
            );
            assert_eq!(r.call_id(), Some("esc01.239409asdfakjkn23onasd0-3234"));
            assert_eq!(r.content_type(), Some("application/sdp"));
            let c = r.contact().expect("Contact");
            assert_eq!(c.uri.params.0.len(), 2);
        }
        "escnull" => {
            let r = req(m);
            assert_eq!(
                r.to_hdr().expect("To").uri.user_decoded().as_deref(),
                Some("null-\0-null")
            );
            assert_eq!(r.hdrs().list("Contact").len(), 2);
        }
        "esc02" => {
            let r = req(m);
            assert_eq!(r.method, Method::Other("RE%47IST%45R".into()));
            assert_eq!(r.hdrs().count("Contact"), 2, "C%6Fntact is not Contact");
            assert_eq!(
                r.hdrs().get("C%6Fntact"),
                Some("<sip:alias2@host2.example.com>")
            );
        }
        "lwsdisp" => {
            assert_eq!(
                req(m).from_hdr().expect("From").display.as_deref(),
                Some("caller")
            );
        }
        "longreq" => {
            let r = req(m);
            assert_eq!(r.vias().len(), 34);
            assert_eq!(r.to_hdr().expect("To").uri.port, Some(6000));
            let last = r.vias().pop().expect("Via");
            assert_eq!(last.params.get("received"), Some(Some("192.0.2.5")));
            assert_eq!(r.from_hdr().expect("From").tag().map(str::len), Some(155));
        }
        "dblreq" => {
            let r = req(m);
            assert_eq!(r.method, Method::Register);
            assert!(
                r.body.is_empty(),
                "bytes after Content-Length are dropped (§18.3)"
            );
        }
        "semiuri" => {
            let r = req(m);
            assert_eq!(r.uri.user.as_deref(), Some("user;par=u%40example.net"));
            assert_eq!(r.uri.host, "example.com");
            assert!(r.uri.params.0.is_empty());
            assert_eq!(r.hdrs().list("Accept").len(), 6);
        }
        "transports" => {
            let t: Vec<_> = req(m).vias().into_iter().map(|v| v.transport).collect();
            assert_eq!(t, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
        }
        "mpart01" => {
            let r = req(m);
            assert_eq!(r.method, Method::Message);
            assert!(r.body.contains(&0) && r.body.ends_with(b"--7a9cbec02ceef655--\r\n"));
            assert_eq!(r.top_via().expect("Via").params.get("rport"), Some(None));
        }
        "unreason" => {
            let r = rsp(m);
            assert_eq!(r.status, 200);
            assert!(r.reason.starts_with("= 2**3 * 5**2 но"));
        }
        "noreason" => {
            let r = rsp(m);
            assert_eq!((r.status, r.reason.as_str()), (100, ""));
        }
        "novelsc" => {
            let r = req(m);
            assert_eq!(r.uri.scheme, "soap.beep");
            assert_eq!(r.uri.opaque.as_deref(), Some("//192.0.2.103:3002"));
        }
        "unksm2" => {
            let r = req(m);
            assert_eq!(r.to_hdr().expect("To").uri.scheme, "isbn");
            assert_eq!(r.from_hdr().expect("From").uri.scheme, "http");
            assert_eq!(
                r.contact().expect("Contact").uri.opaque.as_deref(),
                Some("John_Smith")
            );
        }
        "cparam01" => {
            let c = req(m).contact().expect("Contact");
            assert!(
                c.params.has("unknownparam") && c.uri.params.0.is_empty(),
                "§20.10"
            );
        }
        "cparam02" => {
            let c = req(m).contact().expect("Contact");
            assert!(c.uri.params.has("unknownparam") && c.params.0.is_empty());
        }
        "regescrt" => {
            let c = req(m).contact().expect("Contact");
            assert_eq!(
                c.uri.headers.as_deref(),
                Some("Route=%3Csip:sip.example.com%3E")
            );
        }
        "inv2543" => {
            let r = req(m);
            assert_eq!(
                r.body.len(),
                105,
                "no Content-Length on UDP: the body is the rest"
            );
            assert_eq!(r.hdrs().get("Content-Length"), Some("105"));
            assert_eq!(r.top_via().expect("Via").branch(), None);
        }
        "zeromf" => assert_eq!(h.get("Max-Forwards"), Some("0")),
        "bcast" => assert_eq!(rsp(m).vias()[1].host, "255.255.255.255"),
        "badbranch" => assert_eq!(req(m).top_via().expect("Via").branch(), Some("z9hG4bK")),
        // RFC 5118
        "ipv6-good" => {
            let r = req(m);
            assert_eq!(r.uri.host, "[2001:db8::10]");
            assert_eq!(r.top_via().expect("Via").host, "[2001:db8::9:1]");
            assert_eq!(r.contact().expect("Contact").uri.host, "[2001:db8::1]");
        }
        "port-ambiguous" => {
            let r = req(m);
            assert_eq!(
                (r.uri.host.as_str(), r.uri.port),
                ("[2001:db8::10:5070]", None)
            );
        }
        "port-unambiguous" => {
            let r = req(m);
            assert_eq!(
                (r.uri.host.as_str(), r.uri.port),
                ("[2001:db8::10]", Some(5070))
            );
        }
        "via-received-param-with-delim" => {
            let v = rsp(m).top_via().expect("Via");
            assert_eq!((v.host.as_str(), v.port), ("[2001:db8::9:1]", Some(6050)));
            assert_eq!(v.params.get("received"), Some(Some("[2001:db8::9:255]")));
        }
        "via-received-param-no-delim" => {
            let v = rsp(m).top_via().expect("Via");
            assert_eq!(v.params.get("received"), Some(Some("2001:db8::9:255")));
        }
        "mult-ip-in-header" => {
            let hosts: Vec<_> = req(m).vias().into_iter().map(|v| v.host).collect();
            assert_eq!(hosts, ["[2001:db8::9:1]", "192.0.2.1", "[2001:db8::9:255]"]);
        }
        "ipv4-mapped-ipv6" => assert_eq!(req(m).uri.host, "[::ffff:192.0.2.10]"),
        "ipv6-bug-abnf-3-colons" => assert_eq!(req(m).uri.host, "[2001:db8:::192.0.2.1]"),
        "ipv6-correct-abnf-2-colons" => assert_eq!(req(m).uri.host, "[2001:db8::192.0.2.1]"),
        _ => {}
    }
}

#[test]
fn rfc4475_and_rfc5118_valid_messages_parse() {
    let mut total = 0;
    let mut failed = Vec::new();
    for dir in ["rfc4475/valid", "rfc5118/valid"] {
        let files = corpus(dir);
        let mut ok = 0;
        for (name, bytes) in &files {
            match parse(bytes) {
                Ok(m) => {
                    check_valid(name, &m);
                    ok += 1;
                }
                Err(e) => failed.push(format!("{dir}/{name}: {e}")),
            }
        }
        println!("{dir}: {ok} of {} valid accepted", files.len());
        total += files.len();
    }
    assert!(total >= 33, "corpus missing: {total} files");
    assert!(failed.is_empty(), "refused valid messages: {failed:#?}");
}

/// What we answer each invalid message with. A few of RFC 4475's messages are well-formed and
/// only wrong for a higher layer: the parser accepts them and the comment says who refuses them.
#[test]
fn rfc4475_and_rfc5118_invalid_messages_are_refused() {
    use ParseError as E;
    type Expect = fn(&Result<Message, ParseError>) -> bool;
    let malformed: Expect = |r| matches!(r, Err(E::Malformed { .. }));
    let accepted: Expect = |r| r.is_ok();
    let table: &[(&str, Expect)] = &[
        ("badinv01", malformed), // `;;,;,,` in Via, `;;;;` after Contact
        ("clerr", |r| {
            matches!(r, Err(E::ContentLength { declared: 9999, .. }))
        }),
        ("ncl", malformed),      // Content-Length: -999
        ("scalar02", malformed), // CSeq 2**65, Max-Forwards 300
        ("scalarlg", malformed), // response CSeq beyond 2**31
        ("quotbal", malformed),  // unterminated quoted display name
        ("ltgtruri", malformed), // <> around the Request-URI
        ("lwsruri", malformed),  // LWS inside the Request-URI
        ("lwsstart", malformed), // two SPs between Request-Line parts
        ("trws", malformed),     // SPs after the SIP version
        ("escruri", malformed),  // headers in the Request-URI
        ("baddate", malformed),  // Date not in GMT
        ("regbadct", malformed), // `?` in a Contact URI without <>
        ("badaspec", malformed), // spaces inside <>
        ("baddn", malformed),    // `,` in an unquoted display name
        (
            "badvers",
            |r| matches!(r, Err(E::BadVersion(v)) if v == "SIP/7.0"),
        ),
        ("mismatch01", |r| {
            matches!(r, Err(E::CSeqMethodMismatch { .. }))
        }),
        ("mismatch02", |r| {
            matches!(r, Err(E::CSeqMethodMismatch { .. }))
        }),
        ("bigcode", malformed), // status code 4294967301
        ("insuf", |r| matches!(r, Err(E::MissingHeader(_)))),
        ("multi01", malformed), // two CSeq, Call-ID, To, From
        ("mcl01", malformed),   // two Content-Length
        // Semantic only; the parser accepts them:
        ("unkscm", accepted),   // unknown Request-URI scheme: the UA answers 416
        ("bext01", accepted),   // unknown Require option: the UA answers 420
        ("invut", accepted),    // unknown Content-Type: the UA answers 415
        ("regaut01", accepted), // unknown Authorization scheme: a registrar answers 401
        ("sdp01", accepted),    // Accept excludes SDP: the UA answers 406/488
        // RFC 5118 §4.2: IPv6 address without brackets in the Request-URI.
        ("ipv6-bad", malformed),
    ];
    let mut checked = 0;
    let mut refused = 0;
    for dir in ["rfc4475/invalid", "rfc5118/invalid"] {
        for (name, bytes) in corpus(dir) {
            let (_, expect) = table
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("{name}: not in the table"));
            let r = parse(&bytes);
            assert!(expect(&r), "{dir}/{name}: got {r:?}");
            refused += usize::from(r.is_err());
            checked += 1;
        }
    }
    println!(
        "invalid: {refused} of {checked} refused by the parser, {} accepted for a higher layer to answer",
        checked - refused
    );
    assert_eq!(checked, table.len(), "every table entry has a file");
}

#[test]
fn valid_corpus_round_trips() {
    for dir in ["rfc4475/valid", "rfc5118/valid"] {
        for (name, bytes) in corpus(dir) {
            let m = parse(&bytes).expect("valid");
            let again = parse(&m.to_bytes()).unwrap_or_else(|e| panic!("{name}: reparse: {e}"));
            assert_eq!(again, m, "{name}");
        }
    }
}

#[test]
fn refused_requests_can_be_salvaged_for_a_400() {
    for name in [
        "badinv01",
        "lwsstart",
        "mismatch01",
        "quotbal",
        "baddn",
        "multi01",
    ] {
        let bytes =
            std::fs::read(data_dir("rfc4475/invalid").join(format!("{name}.sip"))).expect("file");
        if name == "badinv01" {
            // Its only Via is the broken one: nothing to answer to.
            assert_eq!(salvage(&bytes), None);
            continue;
        }
        let h = salvage(&bytes).unwrap_or_else(|| panic!("{name}: no Via salvaged"));
        assert!(
            h.get("Call-ID").is_some() && h.get("CSeq").is_some(),
            "{name}"
        );
        assert!(
            h.get("Max-Forwards").is_none(),
            "only the response headers are kept"
        );
    }
}

// ------------------------------------------------------------------------------ messages

const BASIC: &str = "INVITE sip:support@hammond.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pbx.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: <sip:support@hammond.example.com>\r\n\
From: \"Alice\" <sip:+15550100@pbx.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pbx.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@192.0.2.4>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\r\nv=0\n";

#[test]
fn parses_a_plain_invite() {
    let m = parse(BASIC.as_bytes()).expect("parses");
    let r = req(&m);
    assert_eq!(r.method, Method::Invite);
    assert_eq!(r.uri.user.as_deref(), Some("support"));
    assert_eq!(r.body, b"v=0\n");
    let via = r.top_via().expect("Via");
    assert_eq!(
        (via.host.as_str(), via.port, via.branch()),
        ("pbx.example.com", Some(5060), Some("z9hG4bK776asdhds"))
    );
    assert_eq!(via.params.get("rport"), Some(None));
    assert_eq!(
        r.from_hdr().expect("From").display_name().as_deref(),
        Some("Alice")
    );
    assert_eq!(r.cseq().expect("CSeq").seq, 314_159);
}

#[test]
fn content_length_is_checked_against_the_body() {
    let short = BASIC.replace("Content-Length: 4", "Content-Length: 5");
    assert_eq!(
        parse(short.as_bytes()),
        Err(ParseError::ContentLength {
            declared: 5,
            actual: 4
        })
    );
    let long = BASIC.replace("Content-Length: 4", "Content-Length: 2");
    assert_eq!(req(&parse(long.as_bytes()).expect("cut")).body, b"v=");
    let twice = BASIC.replace("Content-Length: 4\r\n", "Content-Length: 4\r\nl: 4\r\n");
    assert!(matches!(
        parse(twice.as_bytes()),
        Err(ParseError::Malformed { .. })
    ));
}

#[test]
fn leading_crlf_and_bare_lf_are_tolerated() {
    let m = parse(format!("\r\n\r\n{BASIC}").as_bytes()).expect("leading CRLF");
    assert_eq!(req(&m).method, Method::Invite);
    let lf = BASIC.replace("\r\n", "\n");
    assert_eq!(req(&parse(lf.as_bytes()).expect("bare LF")).body, b"v=0\n");
}

#[test]
fn mandatory_headers_and_versions() {
    for (name, line) in [
        ("Via", "Via: "),
        ("To", "To: "),
        ("From", "From: "),
        ("Call-ID", "Call-ID: "),
        ("CSeq", "CSeq: "),
    ] {
        let without: String = BASIC
            .split_inclusive("\r\n")
            .filter(|l| !l.starts_with(line))
            .collect();
        assert_eq!(
            parse(without.as_bytes()),
            Err(ParseError::MissingHeader(name)),
            "{name}"
        );
    }
    let no_mf: String = BASIC
        .split_inclusive("\r\n")
        .filter(|l| !l.starts_with("Max-Forwards"))
        .collect();
    assert!(
        parse(no_mf.as_bytes()).is_ok(),
        "Max-Forwards may be missing"
    );
    let v3 = BASIC.replace("SIP/2.0\r\n", "SIP/3.0\r\n");
    let e = parse(v3.as_bytes()).expect_err("version");
    assert_eq!(
        (e.clone(), e.status()),
        (ParseError::BadVersion("SIP/3.0".into()), 505)
    );
    let resp = "SIP/2.1 200 OK\r\n\r\n";
    assert!(matches!(
        parse(resp.as_bytes()),
        Err(ParseError::BadVersion(_))
    ));
}

#[test]
fn size_and_header_count_limits() {
    assert_eq!(
        parse(&vec![b'a'; MAX_DATAGRAM + 1]),
        Err(ParseError::TooLarge)
    );
    let many = BASIC.replacen(
        "Max-Forwards: 70\r\n",
        &"X-Pad: 1\r\n".repeat(MAX_HEADERS),
        1,
    );
    assert_eq!(parse(many.as_bytes()), Err(ParseError::TooManyHeaders));
}

#[test]
fn non_utf8_bytes_do_not_panic() {
    let mut b = BASIC.as_bytes().to_vec();
    let at = BASIC.find("Alice").expect("display");
    b[at] = 0xff;
    let m = parse(&b).expect("lossy display name");
    assert!(
        req(&m)
            .from_hdr()
            .expect("From")
            .display
            .expect("display")
            .contains('\u{fffd}')
    );
    let mut b = BASIC.as_bytes().to_vec();
    b[9] = 0xc3; // inside the Request-URI
    assert!(matches!(parse(&b), Err(ParseError::Malformed { .. })));
}

#[test]
fn response_parses_and_builds() {
    let m = parse(BASIC.as_bytes()).expect("parses");
    let mut resp = Response::to_request(req(&m), 180, reason_phrase(180));
    resp.headers.push("Contact", "<sip:support@192.0.2.9>");
    let again = parse(&resp.to_bytes()).expect("response parses");
    let r = rsp(&again);
    assert_eq!((r.status, r.reason.as_str()), (180, "Ringing"));
    assert_eq!(r.cseq(), req(&m).cseq());
    assert_eq!(r.hdrs().get("Content-Length"), Some("0"));
    for bad in [
        "SIP/2.0 99 Low\r\n",
        "SIP/2.0 700 High\r\n",
        "SIP/2.0 2000 Long\r\n",
        "SIP/2.0 20x Ok\r\n",
    ] {
        let msg = format!(
            "{bad}Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\nFrom: <sip:a@b>;tag=1\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n"
        );
        assert!(
            matches!(parse(msg.as_bytes()), Err(ParseError::Malformed { .. })),
            "{bad}"
        );
    }
}

// ------------------------------------------------------------------------------ productions

#[test]
fn uris() {
    let u = parse_uri(
        "sip:alice:secret@[2001:db8::1]:5061;transport=tcp;lr?Subject=hi&Priority=urgent",
    )
    .expect("uri");
    assert_eq!(u.scheme, "sip");
    assert_eq!(
        (u.user.as_deref(), u.password.as_deref()),
        (Some("alice"), Some("secret"))
    );
    assert_eq!((u.host.as_str(), u.port), ("[2001:db8::1]", Some(5061)));
    assert_eq!(u.params.get("transport"), Some(Some("tcp")));
    assert_eq!(u.params.get("LR"), Some(None));
    assert_eq!(u.headers.as_deref(), Some("Subject=hi&Priority=urgent"));
    assert_eq!(u.host_port(), "[2001:db8::1]:5061");
    assert_eq!(parse_uri(&u.to_string()), Ok(u));

    let u = parse_uri("SIPS:192.0.2.1").expect("host only");
    assert_eq!(
        (u.scheme.as_str(), u.user, u.host.as_str()),
        ("sips", None, "192.0.2.1")
    );
    let t = parse_uri("tel:+1-555-0100;phone-context=example.com").expect("tel");
    assert_eq!(
        (t.is_sip(), t.opaque.as_deref()),
        (false, Some("+1-555-0100;phone-context=example.com"))
    );
    assert_eq!(t.to_string(), "tel:+1-555-0100;phone-context=example.com");
    assert_eq!(
        parse_uri("sip:%61lice@x")
            .expect("escaped")
            .user_decoded()
            .as_deref(),
        Some("alice")
    );

    for bad in [
        "",
        "sip:",
        "sip:@host",
        "sip:a@",
        "sip:a b@host",
        "sip:host:99999",
        "sip:host:",
        "sip:[::1",
        "sip:[]",
        "sip:2001:db8::1",
        "sip:host;",
        "sip:host;;lr",
        "sip:host?",
        "sip:a%zz@host",
        "1sip:host",
        "sip:<host>",
        "tel:",
        "sip:host:5060x",
        "sip:ho\"st",
    ] {
        assert!(parse_uri(bad).is_err(), "{bad:?} should be refused");
    }
}

#[test]
fn vias() {
    let v = parse_via(
        "SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKx;rport;received=[2001:db8::9:255]",
    )
    .expect("via");
    assert_eq!(
        (v.transport.as_str(), v.host.as_str(), v.port),
        ("UDP", "[2001:db8::9:1]", Some(6050))
    );
    assert_eq!(v.params.get("rport"), Some(None));
    assert_eq!(v.params.get("received"), Some(Some("[2001:db8::9:255]")));
    let v = parse_via("sip / 2.0 / tcp  host.example.com : 5070 ; rport=5071 ; branch = z9hG4bKy")
        .expect("lws");
    assert_eq!(
        (v.transport.as_str(), v.port, v.branch()),
        ("TCP", Some(5070), Some("z9hG4bKy"))
    );
    assert_eq!(v.params.get("rport"), Some(Some("5071")));
    assert_eq!(parse_via(&v.to_string()), Ok(v));
    for bad in [
        "SIP/2.0/UDP",
        "SIP/2.0/UDPhost",
        "SIP/3.0/UDP h",
        "XIP/2.0/UDP h",
        "SIP/2.0/UDP h;;",
        "SIP/2.0/UDP h;branch=",
        "SIP/2.0/UDP h:x",
        "SIP/2.0/UDP h junk",
        "SIP/2.0 UDP h",
    ] {
        assert!(parse_via(bad).is_err(), "{bad:?} should be refused");
    }
}

#[test]
fn name_addrs() {
    let n = parse_name_addr(
        r#""Bob \"the\" Builder" <sip:bob@example.com;transport=tcp>;tag=a;expires=60"#,
    )
    .expect("quoted");
    assert_eq!(n.display_name().as_deref(), Some(r#"Bob "the" Builder"#));
    assert_eq!(n.uri.params.get("transport"), Some(Some("tcp")));
    assert_eq!(
        (n.tag(), n.params.get("expires")),
        (Some("a"), Some(Some("60")))
    );
    assert_eq!(parse_name_addr(&n.to_string()), Ok(n));

    let n = parse_name_addr("sip:bob@example.com;transport=tcp;tag=b").expect("addr-spec");
    assert!(
        n.uri.params.0.is_empty(),
        "§20.10: params of an addr-spec belong to the header"
    );
    assert_eq!(
        (n.params.get("transport"), n.tag()),
        (Some(Some("tcp")), Some("b"))
    );
    assert_eq!(parse_name_addr(&n.to_string()), Ok(n));

    let n = parse_name_addr("Bob  Builder<sip:bob@example.com>").expect("token display");
    assert_eq!(n.display.as_deref(), Some("Bob  Builder"));
    let n = parse_name_addr("José Müller <sip:jm@example.com>").expect("UTF-8 token display");
    assert_eq!(n.display_name().as_deref(), Some("José Müller"));
    let n = parse_name_addr("<tel:+15550100>").expect("tel");
    assert_eq!(n.uri.opaque.as_deref(), Some("+15550100"));

    for bad in [
        "\"open <sip:a@b>",
        "Bob, Jr <sip:a@b>",
        "< sip:a@b >",
        "<sip:a@b",
        "sip:a@b?x=y",
        "sip:a@b;tag=1 junk",
        "<sip:a@b>;",
        "<sip:a@b>;=x",
        "\"x\" sip:a@b",
    ] {
        assert!(parse_name_addr(bad).is_err(), "{bad:?} should be refused");
    }
}

#[test]
fn cseqs() {
    assert_eq!(
        parse_cseq("0009 INVITE"),
        Ok(CSeq {
            seq: 9,
            method: Method::Invite
        })
    );
    assert_eq!(
        parse_cseq(" 2147483647\tFOO ").map(|c| c.method),
        Ok(Method::Other("FOO".into()))
    );
    for bad in [
        "",
        "INVITE",
        "1",
        "1INVITE",
        "2147483648 INVITE",
        "-1 INVITE",
        "1 INVITE x",
        "99999999999 BYE",
    ] {
        assert!(parse_cseq(bad).is_err(), "{bad:?} should be refused");
    }
}

// ------------------------------------------------------------------------------ framing

#[test]
fn framing_on_streams() {
    let msg = BASIC.as_bytes();
    assert_eq!(frame(msg), Ok(Some(msg.len())));
    for cut in [0, 10, BASIC.find("\r\n\r\n").expect("end"), msg.len() - 1] {
        assert_eq!(frame(&msg[..cut]), Ok(None), "cut at {cut}");
    }
    let two = [msg, msg].concat();
    assert_eq!(frame(&two), Ok(Some(msg.len())));
    let keepalive = [b"\r\n\r\n".as_slice(), msg].concat();
    assert_eq!(frame(&keepalive), Ok(Some(msg.len() + 4)));
    assert_eq!(
        parse(&keepalive[..msg.len() + 4]).map(|m| m.headers().count("Via")),
        Ok(1)
    );
    assert_eq!(
        frame(b"\r\n\r\n"),
        Ok(Some(4)),
        "a bare keep-alive is a frame of its own"
    );
    let no_cl: String = BASIC
        .split_inclusive("\r\n")
        .filter(|l| !l.starts_with("Content-Length"))
        .collect();
    assert!(
        matches!(frame(no_cl.as_bytes()), Err(ParseError::Malformed { .. })),
        "§18.3"
    );
    let huge = BASIC.replace("Content-Length: 4", "Content-Length: 999999");
    assert_eq!(frame(huge.as_bytes()), Err(ParseError::TooLarge));
    assert_eq!(
        frame(&vec![b'a'; MAX_MESSAGE + 1]),
        Err(ParseError::TooLarge)
    );
}

#[test]
fn salvage_reads_what_it_can() {
    let broken = "INVITE  sip:x@y  SIP/2.0\r\nv: SIP/2.0/UDP pbx;branch=z9hG4bK1\r\n , SIP/2.0/TCP p2\r\nf: <sip:a@b>;tag=1\r\nt: <sip:c@d>\r\ni: abc\r\nCSeq: 1 INVITE\r\nX: y\r\nnonsense\r\n\r\n";
    let h = salvage(broken.as_bytes()).expect("salvaged");
    assert_eq!(h.list("Via").len(), 2, "folded Via kept");
    assert_eq!(
        (h.get("From"), h.get("To"), h.get("Call-ID")),
        (Some("<sip:a@b>;tag=1"), Some("<sip:c@d>"), Some("abc"))
    );
    assert_eq!(h.get("X"), None);
    assert_eq!(
        salvage(b"INVITE sip:x SIP/2.0\r\nTo: <sip:a@b>\r\n\r\n"),
        None
    );
    assert_eq!(salvage(b""), None);
}

// ------------------------------------------------------------------------------ properties

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9.!%*_+`'~-]{0,11}"
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,10}(\\.[a-z]{2,5}){0,2}",
        (0u8..=255, 0u8..=255).prop_map(|(a, b)| format!("192.0.{a}.{b}")),
        (0u16.., 0u16..).prop_map(|(a, b)| format!("[2001:db8::{a:x}:{b:x}]")),
    ]
}

fn uri() -> impl Strategy<Value = Uri> {
    (
        prop::option::of("[a-z0-9+_.-]{1,10}"),
        host(),
        prop::option::of(1u16..),
        prop::collection::vec(
            (
                "[a-z0-9-]{1,8}",
                prop::option::of("[a-zA-Z0-9._~:+$-]{1,8}"),
            ),
            0..3,
        ),
    )
        .prop_map(|(user, host, port, params)| Uri {
            scheme: "sip".into(),
            user,
            password: None,
            host,
            port,
            params: Params(params),
            headers: None,
            opaque: None,
        })
}

fn request() -> impl Strategy<Value = Request> {
    let methods = prop_oneof![
        Just(Method::Invite),
        Just(Method::Bye),
        Just(Method::Options),
        token().prop_map(|t| Method::from_token(&t)),
    ];
    (
        methods,
        uri(),
        (host(), token(), 0u32..(1 << 31), token()),
        prop::collection::vec(("X-[A-Za-z]{1,8}", "[ -~]{0,20}"), 0..4),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(method, uri, (vhost, branch, seq, tag), extra, body)| {
            let mut headers = Headers::default();
            headers.push("v", format!("SIP/2.0/UDP {vhost};branch=z9hG4bK{branch}"));
            headers.push("To", format!("<{uri}>"));
            headers.push(
                "From",
                format!("\"Caller \\\"x\\\"\" <sip:a@{vhost}>;tag={tag}"),
            );
            headers.push("i", format!("{branch}@{vhost}"));
            headers.push("CSeq", format!("{seq} {method}"));
            for (n, v) in extra {
                headers.push(&n, v.trim());
            }
            Request {
                method,
                uri,
                headers,
                body,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn generated_requests_round_trip(r in request()) {
        let bytes = r.to_bytes();
        let m = parse(&bytes).map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&bytes))))?;
        let got = req(&m);
        prop_assert_eq!(&got.method, &r.method);
        prop_assert_eq!(&got.uri, &r.uri);
        prop_assert_eq!(&got.body, &r.body);
        prop_assert_eq!(parse(&m.to_bytes()), Ok(m.clone()));
        prop_assert_eq!(frame(&bytes), Ok(Some(bytes.len())));
    }

    #[test]
    fn random_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(&b);
        let _ = frame(&b);
        let _ = salvage(&b);
    }

    #[test]
    fn mutated_corpus_never_panics(
        pick in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let files = all_corpus();
        let mut b = files[pick.index(files.len())].1.clone();
        for (at, byte, op) in edits {
            let i = at.index(b.len() + 1);
            match op {
                0 if i < b.len() => b[i] = byte,
                1 => b.insert(i, byte),
                _ if i < b.len() => { b.remove(i); }
                _ => {}
            }
        }
        if let Ok(m) = parse(&b) {
            // Whatever we accept, we can print and read back the same.
            prop_assert_eq!(parse(&m.to_bytes()), Ok(m));
        }
        let _ = frame(&b);
        let _ = salvage(&b);
        for cut in [b.len() / 3, b.len() / 2] {
            let _ = frame(&b[..cut]);
            let _ = parse(&b[..cut]);
        }
    }
}

#[test]
fn percent_decode_is_bytewise() {
    assert_eq!(percent_decode("a%41%2x%é%+1%"), "aA%2x%é%+1%");
    assert_eq!(percent_decode("null-%00-%e5%a4%a7"), "null-\0-大");
}
