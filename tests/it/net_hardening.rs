//! Issue 19 against the real binary, over real sockets: the HTTP server's slowloris defences
//! and body limit, and a SIGTERM that finishes (open event streams end, calls the drain left
//! get a BYE).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::sipp::assert_ok;
use crate::support::{Hammond, Options, Sipp, http};

/// Read until the server closes the connection (EOF or reset), for up to `within`. `None`:
/// still open then.
fn read_to_close(s: &mut TcpStream, within: Duration) -> Option<String> {
    s.set_read_timeout(Some(within)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let start = Instant::now();
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(String::from_utf8_lossy(&out).into_owned()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None;
            }
            Err(_) => return Some(String::from_utf8_lossy(&out).into_owned()),
        }
        if start.elapsed() >= within {
            return None;
        }
    }
}

/// `[http] header_timeout`, `max_connections` and `max_body` hold over real sockets: a client
/// that never finishes its headers is cut off, connections past the cap are refused at once,
/// and a body over the configured `max_body` (not a built-in 16 KiB) gets a 413 JSON error.
#[test]
fn http_cuts_slow_clients_caps_connections_and_honours_max_body() {
    let h = Hammond::start(Options {
        http_extra: "max_body = \"1KiB\"\nheader_timeout = \"1s\"\nmax_connections = 4\n".into(),
        ..Options::default()
    });
    // Four idle connections fill the cap; the fifth is refused at once.
    let held: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(h.http).unwrap())
        .collect();
    thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    let mut fifth = TcpStream::connect(h.http).unwrap();
    let answer = read_to_close(&mut fifth, Duration::from_millis(700))
        .expect("the connection past the cap is still open");
    assert!(
        t0.elapsed() < Duration::from_millis(700),
        "{:?}",
        t0.elapsed()
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 503"),
        "{answer}"
    );
    // The held ones never sent a header: cut off after header_timeout.
    for mut s in held {
        assert!(
            read_to_close(&mut s, Duration::from_secs(3)).is_some(),
            "an idle connection outlived header_timeout"
        );
    }
    // Slowloris: headers started and never finished.
    let mut slow = TcpStream::connect(h.http).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: 1")
        .unwrap();
    let t0 = Instant::now();
    assert!(
        read_to_close(&mut slow, Duration::from_secs(4)).is_some(),
        "the slow client is still connected"
    );
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    // Room again for ordinary requests; the body limit is the configured one.
    assert_eq!(
        http::request(h.http, "GET", "/healthz", None, None).status,
        200
    );
    let big = format!(r#"{{"disposition":"{}"}}"#, "x".repeat(2048));
    let r = http::post(h.http, "/api/v1/interactions/1/close", "alice-secret", &big);
    assert_eq!(r.status, 413, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "payload_too_large", "{}", r.text);
    let small = format!(r#"{{"disposition":"{}"}}"#, "x".repeat(900));
    let r = http::post(
        h.http,
        "/api/v1/interactions/1/close",
        "alice-secret",
        &small,
    );
    assert_ne!(r.status, 413, "{}", r.text);
}

/// Open `/api/v1/events` as alice; returns the connection once the response has started.
fn open_event_stream(to: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(to).unwrap();
    s.write_all(
        b"GET /api/v1/events HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer alice-secret\r\n\r\n",
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "stream closed early");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    s
}

/// SIGTERM with an agent's event stream open and a caller who never hangs up: the stream
/// ends, the caller gets a BYE once `drain_timeout` has passed (the config says the rest are
/// hung up), and the process exits 0 within the drain plus a few seconds. Before, the stream
/// held the HTTP server's graceful shutdown for ever and the call got no BYE.
#[test]
fn sigterm_ends_event_streams_and_hangs_up_what_the_drain_left() {
    let mut h = Hammond::start(Options {
        extra_config: "[shutdown]\ndrain_timeout = \"2s\"\n".into(),
        ..Options::default()
    });
    let sip = h.sip;
    let caller = thread::spawn(move || Sipp::uac("hammond_hangs_up.xml", sip, "support").run());
    let start = Instant::now();
    loop {
        let r = http::get(h.http, "/api/v1/interactions?status=bot", "alice-secret");
        if r.body["interactions"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the call never reached the workflow:\n{}",
            h.log()
        );
        thread::sleep(Duration::from_millis(50));
    }
    let mut events = open_event_stream(h.http);
    let sent = Command::new("kill")
        .args(["-TERM", &h.pid().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let t0 = Instant::now();
    assert!(
        read_to_close(&mut events, Duration::from_secs(5)).is_some(),
        "the event stream stayed open after SIGTERM"
    );
    let status = h.wait_exit(Duration::from_secs(10));
    let took = t0.elapsed();
    let status = status.unwrap_or_else(|| panic!("still running 10 s after SIGTERM:\n{}", h.log()));
    assert!(status.success(), "exit {status:?}\n{}", h.log());
    assert!(
        took >= Duration::from_secs(2),
        "left before the drain: {took:?}"
    );
    assert!(took < Duration::from_secs(7), "{took:?}");
    let run = caller.join().unwrap();
    assert_ok(&run);
    assert_eq!(run.received("BYE "), 1, "{}", run.messages);
    assert!(
        h.log().contains("hanging up the calls still up"),
        "{}",
        h.log()
    );
}
