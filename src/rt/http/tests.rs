//! The HTTP server over real sockets (real time: these wait on the kernel).

use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

fn limits(header_ms: u64, max: usize) -> HttpLimits {
    HttpLimits {
        header_timeout: Duration::from_millis(header_ms),
        max_connections: max,
        drain: Duration::from_millis(500),
    }
}

/// `/` answers "ok"; `/forever` streams a chunk every 50 ms and never ends.
fn app() -> Router {
    Router::new().route("/", get(|| async { "ok" })).route(
        "/forever",
        get(|| async {
            let ticks = tokio_stream::StreamExt::map(
                tokio_stream::wrappers::IntervalStream::new(tokio::time::interval(
                    Duration::from_millis(50),
                )),
                |_| Ok::<_, Infallible>(axum::body::Bytes::from_static(b"tick\n")),
            );
            axum::body::Body::from_stream(ticks)
        }),
    )
}

async fn start(limits: HttpLimits) -> (SocketAddr, CancellationToken, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(serve(listener, app(), limits, stop.clone()));
    (addr, stop, task)
}

/// Read until EOF (or reset) or `within`; `None` when the connection was still open then.
async fn read_to_close(s: &mut TcpStream, within: Duration) -> Option<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(String::from_utf8_lossy(&out).into_owned()),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

async fn get_root(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    read_to_close(&mut s, Duration::from_secs(5))
        .await
        .expect("answered and closed")
}

/// Slowloris: headers that never end are cut off after `header_timeout`, and so is a
/// connection that never sends anything.
#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let (addr, _stop, _task) = start(limits(300, 8)).await;
    let t0 = crate::clock::now();
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: 1")
        .await
        .unwrap();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert!(
        read_to_close(&mut slow, Duration::from_secs(3))
            .await
            .is_some(),
        "the slow client is still connected"
    );
    assert!(
        read_to_close(&mut silent, Duration::from_secs(3))
            .await
            .is_some()
    );
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(2),
        "{took:?}"
    );
    // Ordinary clients are served.
    assert!(get_root(addr).await.ends_with("ok"));
}

/// Past `max_connections` a new connection gets 503 and is closed; once one closes, there is
/// room again.
#[tokio::test]
async fn connections_past_the_cap_are_refused() {
    let (addr, _stop, _task) = start(limits(10_000, 3)).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    // Let the server accept them before the next one.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut extra = TcpStream::connect(addr).await.unwrap();
    let answer = read_to_close(&mut extra, Duration::from_secs(2))
        .await
        .expect("refused at once");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 503"),
        "{answer:?}"
    );
    if let Some((_, body)) = answer.split_once("\r\n\r\n") {
        assert!(answer.contains(&format!("Content-Length: {}\r\n", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).expect("JSON error body");
        assert_eq!(v["error"]["code"], "overloaded");
    }
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(get_root(addr).await.ends_with("ok"));
}

/// On stop, a connection that would stream for ever is dropped after the drain, so shutdown
/// finishes; an idle one is closed at once.
#[tokio::test]
async fn stop_ends_the_server_within_the_drain() {
    let (addr, stop, task) = start(limits(10_000, 8)).await;
    let mut endless = TcpStream::connect(addr).await.unwrap();
    endless
        .write_all(b"GET /forever HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    assert!(endless.read(&mut buf).await.unwrap() > 0);
    let _idle = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t0 = crate::clock::now();
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(3), task)
        .await
        .expect("serve returned")
        .unwrap();
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert!(
        read_to_close(&mut endless, Duration::from_secs(2))
            .await
            .is_some(),
        "the streaming connection was dropped"
    );
    assert!(TcpStream::connect(addr).await.is_err(), "still listening");
}
