//! homelist: seed a store with interactions through the `store` API (timing the
//! callback-confirmation write, which is on disk before it returns), then time the Home List and
//! accept over HTTP.
//!
//!   homelist seed --db FILE|postgres://… [--n 10000] [--callbacks 300] [--voicemails 100] [--queue support]
//!   homelist http --addr HOST:PORT [--token alice-secret] [--gets 300] [--accepts 100]
//!
//! Prints one JSON object on stdout.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use hammond::interaction::{Event, HangupBy, Interaction};
use hammond_bench::pct;

fn arg(args: &[String], k: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == k)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_owned())
}

fn summary(mut v: Vec<Duration>) -> serde_json::Value {
    v.sort_unstable();
    let ms = |d: Duration| (d.as_secs_f64() * 1e5).round() / 100.0;
    serde_json::json!({
        "n": v.len(),
        "p50_ms": ms(pct(&v, 0.5)),
        "p99_ms": ms(pct(&v, 0.99)),
        "max_ms": ms(pct(&v, 1.0)),
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let out = match args.get(1).map(String::as_str) {
        Some("seed") => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(seed(&args))
        }
        Some("http") => http(&args),
        _ => {
            eprintln!(
                "usage: homelist seed --db FILE [--n N] [--callbacks M] [--voicemails V] | homelist http --addr A"
            );
            std::process::exit(2);
        }
    };
    println!("{out}");
}

async fn seed(args: &[String]) -> serde_json::Value {
    let db = arg(args, "--db", "bench-home.db");
    let n: usize = arg(args, "--n", "10000").parse().expect("--n");
    let callbacks: usize = arg(args, "--callbacks", "300")
        .parse()
        .expect("--callbacks");
    let voicemails: usize = arg(args, "--voicemails", "100")
        .parse()
        .expect("--voicemails");
    let queue = arg(args, "--queue", "support");
    let url = if db.starts_with("postgres") {
        db.clone()
    } else {
        format!("sqlite://{db}")
    };
    let store = hammond::store::open(&url, "homelist-seed")
        .await
        .expect("open store");
    let base = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(2);
    let t0 = Instant::now();
    let mut create = Vec::with_capacity(n);
    let mut confirm = Vec::with_capacity(callbacks);
    // Every (n / callbacks)-th caller books a callback, the next one of those leaves a
    // voicemail (the accept step takes voicemails: a ringing inbound cannot be accepted); the
    // rest stay open inbound.
    let every = n.checked_div(callbacks).map_or(usize::MAX, |e| e.max(1));
    let vm_every = n.checked_div(voicemails).map_or(usize::MAX, |e| e.max(2));
    let mut left = 0;
    for i in 0..n {
        let at = base + jiff::SignedDuration::from_millis(i as i64 * 500);
        let number = format!("1555{:07}", i);
        let t = Instant::now();
        let it = store
            .create(Interaction::inbound(&queue, &number, at))
            .await
            .expect("create");
        create.push(t.elapsed());
        if i % vm_every == 1 && left < voicemails {
            left += 1;
            store
                .apply(it.id, Event::EnteredWorkflow, at)
                .await
                .expect("enter");
            store
                .apply(
                    it.id,
                    Event::CallEnded {
                        by: HangupBy::Caller,
                        had_callback: false,
                        voicemail: true,
                        during: Some("bench".into()),
                    },
                    at,
                )
                .await
                .expect("voicemail");
        } else if i % every == 0 && confirm.len() < callbacks {
            store
                .apply(it.id, Event::EnteredWorkflow, at)
                .await
                .expect("enter");
            // The write the caller waits on before hearing "your callback is booked".
            let t = Instant::now();
            store
                .apply(
                    it.id,
                    Event::CallbackRequested {
                        number: number.clone(),
                        not_before: None,
                    },
                    at,
                )
                .await
                .expect("callback");
            confirm.push(t.elapsed());
            store
                .apply(
                    it.id,
                    Event::CallEnded {
                        by: HangupBy::Hammond,
                        had_callback: true,
                        voicemail: false,
                        during: Some("bench".into()),
                    },
                    at,
                )
                .await
                .expect("end");
        }
    }
    serde_json::json!({
        "interactions": n,
        "seed_s": (t0.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        "create": summary(create),
        "callback_confirm_write": summary(confirm),
    })
}

/// One HTTP/1.1 request on a kept-alive connection; returns (status, body).
fn request(conn: &mut TcpStream, method: &str, path: &str, token: &str) -> (u16, Vec<u8>) {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
        if method == "POST" { 2 } else { 0 },
        if method == "POST" { "{}" } else { "" }
    );
    conn.write_all(req.as_bytes()).expect("write");
    let mut buf = Vec::with_capacity(1 << 16);
    let mut chunk = [0u8; 65536];
    loop {
        let n = conn.read(&mut chunk).expect("read");
        assert!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = conn.read(&mut chunk).expect("read body");
                assert!(n > 0, "connection closed in body");
                buf.extend_from_slice(&chunk[..n]);
            }
            return (status, buf[end + 4..end + 4 + len].to_vec());
        }
    }
}

/// The ids of up to `limit` open interactions of `sub_type`, oldest first (the Home List order).
fn open_ids(conn: &mut TcpStream, token: &str, sub_type: &str, limit: usize) -> Vec<i64> {
    let (_, body) = request(
        conn,
        "GET",
        &format!("/api/v1/interactions?status=open&sub_type={sub_type}&limit={limit}"),
        token,
    );
    let list: serde_json::Value = serde_json::from_slice(&body).expect("json");
    list["interactions"]
        .as_array()
        .map(|a| a.iter().filter_map(|i| i["id"].as_i64()).collect())
        .unwrap_or_default()
}

fn http(args: &[String]) -> serde_json::Value {
    let addr = arg(args, "--addr", "127.0.0.1:8080");
    let token = arg(args, "--token", "alice-secret");
    let gets: usize = arg(args, "--gets", "300").parse().expect("--gets");
    let accepts: usize = arg(args, "--accepts", "100").parse().expect("--accepts");
    let mut conn = TcpStream::connect(&addr).expect("connect");
    conn.set_nodelay(true).ok();
    let mut out = serde_json::Map::new();
    // The 1000-row page costs ~10x the default one: time it a fifth as often.
    for (name, path, count) in [
        ("list_default_page", "/api/v1/interactions", gets),
        (
            "list_1000",
            "/api/v1/interactions?limit=1000",
            gets.div_ceil(5),
        ),
        (
            "list_open_callbacks",
            "/api/v1/interactions?status=open&sub_type=callback",
            gets,
        ),
    ] {
        let mut v = Vec::with_capacity(count);
        let mut rows = 0;
        for _ in 0..count {
            let t = Instant::now();
            let (st, body) = request(&mut conn, "GET", path, &token);
            v.push(t.elapsed());
            assert_eq!(st, 200, "GET {path}");
            rows = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|j| j["interactions"].as_array().map(Vec::len))
                .unwrap_or(0);
        }
        let mut s = summary(v);
        s["rows"] = rows.into();
        out.insert(name.into(), s);
    }
    // Accept the oldest open voicemails, one at a time (an open inbound call is still ringing:
    // not for the Home List to take).
    let ids = open_ids(&mut conn, &token, "voicemail", accepts);
    let mut v = Vec::with_capacity(ids.len());
    let mut refused = 0;
    for id in ids {
        let t = Instant::now();
        let (st, _) = request(
            &mut conn,
            "POST",
            &format!("/api/v1/interactions/{id}/accept"),
            &token,
        );
        v.push(t.elapsed());
        if st != 200 {
            refused += 1;
        }
    }
    let mut s = summary(v);
    s["not_200"] = refused.into();
    out.insert("accept".into(), s);
    if let Some(trunk) = args
        .iter()
        .position(|a| a == "--trunk-listen")
        .map(|i| args[i + 1].clone())
    {
        let n: usize = arg(args, "--callback-accepts", "50")
            .parse()
            .expect("--callback-accepts");
        out.insert(
            "accept_to_invite".into(),
            accept_to_invite(&mut conn, &token, &trunk, n),
        );
    }
    serde_json::Value::Object(out)
}

/// Issue 6's figure: from sending the accept of an open callback to the customer's INVITE
/// arriving at the trunk (a UDP socket of ours). The first INVITE of each new Call-ID counts;
/// Timer A retransmissions and the agent's legs are ignored.
fn accept_to_invite(conn: &mut TcpStream, token: &str, trunk: &str, n: usize) -> serde_json::Value {
    use std::collections::HashSet;
    use std::net::UdpSocket;
    use std::sync::mpsc;
    let sock = UdpSocket::bind(trunk).expect("bind the trunk socket");
    let (tx, rx) = mpsc::channel::<Instant>();
    std::thread::spawn(move || {
        let mut seen = HashSet::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = sock.recv(&mut buf) {
            let at = Instant::now();
            let text = String::from_utf8_lossy(&buf[..n]);
            if !text.starts_with("INVITE ") {
                continue;
            }
            let call_id = text
                .lines()
                .find_map(|l| l.strip_prefix("Call-ID:"))
                .unwrap_or("")
                .trim()
                .to_owned();
            if seen.insert(call_id) && tx.send(at).is_err() {
                return;
            }
        }
    });
    let ids = open_ids(conn, token, "callback", n);
    let mut v = Vec::with_capacity(ids.len());
    let mut missing = 0;
    for id in ids {
        let t = Instant::now();
        let (st, _) = request(
            conn,
            "POST",
            &format!("/api/v1/interactions/{id}/accept"),
            token,
        );
        if st != 200 {
            missing += 1;
            continue;
        }
        match rx.recv_timeout(Duration::from_secs(2)) {
            Ok(at) => v.push(at.saturating_duration_since(t)),
            Err(_) => missing += 1,
        }
    }
    let mut s = summary(v);
    s["no_invite"] = missing.into();
    s
}
