//! A minimal blocking Server-Sent Events reader for `/api/v1/events`: a thread reads the
//! stream (chunked or not) and keeps every event it has seen, for the test to look at.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One event as received.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SseEvent {
    pub(crate) id: Option<i64>,
    pub(crate) kind: String,
    pub(crate) data: serde_json::Value,
}

/// An open event stream.
pub(crate) struct Sse {
    stream: TcpStream,
    events: Arc<Mutex<Vec<SseEvent>>>,
}

impl Sse {
    /// Opens the stream as the agent holding `token`, resuming after `last` when given.
    pub(crate) fn open(addr: SocketAddr, token: &str, last: Option<i64>) -> Self {
        let mut s = TcpStream::connect(addr).expect("connect to the API");
        let resume = last
            .map(|id| format!("Last-Event-ID: {id}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "GET /api/v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n{resume}\r\n"
        );
        s.write_all(req.as_bytes()).unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let reader = s.try_clone().unwrap();
        let seen = events.clone();
        std::thread::spawn(move || read_events(reader, &seen));
        Self { stream: s, events }
    }

    /// Every event so far.
    pub(crate) fn events(&self) -> Vec<SseEvent> {
        self.events.lock().unwrap().clone()
    }

    /// The events so far, once `done` holds of them (or after `timeout`: the caller's
    /// assertions then say what was missing).
    pub(crate) fn wait(
        &self,
        timeout: Duration,
        done: impl Fn(&[SseEvent]) -> bool,
    ) -> Vec<SseEvent> {
        let start = Instant::now();
        loop {
            let events = self.events();
            if done(&events) || start.elapsed() > timeout {
                return events;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sse {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

fn read_events(mut s: TcpStream, seen: &Mutex<Vec<SseEvent>>) {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    // The response head, then the body: dechunked when chunked.
    let mut head: Option<bool> = None;
    let mut body = Vec::new();
    let mut consumed = 0;
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        raw.extend_from_slice(&buf[..n]);
        if head.is_none() {
            let Some(end) = find(&raw, b"\r\n\r\n") else {
                continue;
            };
            let h = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            head = Some(h.contains("transfer-encoding: chunked"));
            raw.drain(..end + 4);
        }
        if head == Some(true) {
            // Whole chunks only: `<hex>\r\n<bytes>\r\n`.
            while let Some(line) = find(&raw, b"\r\n") {
                let size = String::from_utf8_lossy(&raw[..line]);
                let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
                    return;
                };
                if raw.len() < line + 2 + size + 2 {
                    break;
                }
                body.extend_from_slice(&raw[line + 2..line + 2 + size]);
                raw.drain(..line + 2 + size + 2);
            }
        } else {
            body.append(&mut raw);
        }
        // Whole events only: blocks ending with a blank line.
        while let Some(end) = find(&body[consumed..], b"\n\n") {
            let block = String::from_utf8_lossy(&body[consumed..consumed + end]).into_owned();
            consumed += end + 2;
            if let Some(e) = parse(&block) {
                seen.lock().unwrap().push(e);
            }
        }
    }
}

fn parse(block: &str) -> Option<SseEvent> {
    let (mut id, mut kind, mut data) = (None, String::from("message"), String::new());
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("id:") {
            id = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("event:") {
            kind = v.trim().to_owned();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.trim_start());
        }
    }
    // Comments (keep-alives) carry no data.
    (!data.is_empty()).then(|| SseEvent {
        id,
        kind,
        data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
