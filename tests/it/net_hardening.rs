//! Issue 19 against the real binary, over real sockets: the HTTP server's slowloris defences
//! and body limit, and a SIGTERM that finishes (open event streams end, calls the drain left
//! get a BYE).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{Hammond, Options, http};

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
