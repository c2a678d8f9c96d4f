//! Issue 17, webhooks end to end: an HTTP receiver here verifies every Standard Webhooks
//! signature (its own HMAC-SHA256, not Hammond's code) and records what arrives. It refuses
//! deliveries (500) while a caller books a callback, Hammond is killed (SIGKILL) while it
//! retries, the receiver recovers, Hammond restarts on the same store, and an agent takes the
//! callback through to the end: the receiver has every event of the callback's life at least
//! once, each signed.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::dialer_flows::{accept_as_alice, wait_status};
use crate::support::sipp::{assert_ok, free_port, free_port_pair};
use crate::support::{Hammond, Options, Sipp, http};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One delivery the receiver accepted.
#[derive(Debug, Clone)]
struct Delivery {
    id: String,
    kind: String,
    interaction: i64,
}

#[derive(Default)]
struct Seen {
    delivered: Vec<Delivery>,
    refused: usize,
    bad_signatures: Vec<String>,
}

/// A webhook receiver on a free loopback port.
struct Receiver {
    addr: SocketAddr,
    failing: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
}

impl Receiver {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let failing = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (f, s) = (failing.clone(), seen.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().map_while(Result::ok) {
                let (f, s) = (f.clone(), s.clone());
                std::thread::spawn(move || serve(conn, &f, &s));
            }
        });
        Self {
            addr,
            failing,
            seen,
        }
    }

    fn kinds_for(&self, interaction: i64) -> Vec<String> {
        let seen = self.seen.lock().unwrap();
        seen.delivered
            .iter()
            .filter(|d| d.interaction == interaction)
            .map(|d| d.kind.clone())
            .collect()
    }

    #[track_caller]
    fn wait_for(&self, what: &str, done: impl Fn(&Seen) -> bool) {
        let start = Instant::now();
        while !done(&self.seen.lock().unwrap()) {
            if start.elapsed() > Duration::from_secs(30) {
                let seen = self.seen.lock().unwrap();
                panic!(
                    "no {what}: refused {}, delivered {:?}",
                    seen.refused, seen.delivered
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn serve(conn: TcpStream, failing: &AtomicBool, seen: &Mutex<Seen>) {
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut headers = HashMap::new();
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() || !line.starts_with("POST /hooks/hammond ") {
        return;
    }
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.trim_end().split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let status = {
        let mut s = seen.lock().unwrap();
        match verify(&headers, &body) {
            Err(why) => {
                s.bad_signatures.push(why);
                "400 Bad Request"
            }
            Ok(_) if failing.load(Ordering::SeqCst) => {
                s.refused += 1;
                "500 Internal Server Error"
            }
            Ok(d) => {
                s.delivered.push(d);
                "204 No Content"
            }
        }
    };
    let mut conn = conn;
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
}

/// Standard Webhooks verification, written from the spec: HMAC-SHA256 under the base64-decoded
/// secret of `{id}.{timestamp}.{body}`, a `v1,` signature, a timestamp within five minutes.
fn verify(headers: &HashMap<String, String>, body: &[u8]) -> Result<Delivery, String> {
    let id = headers.get("webhook-id").ok_or("no webhook-id")?;
    let ts = headers
        .get("webhook-timestamp")
        .ok_or("no webhook-timestamp")?;
    let sig = headers
        .get("webhook-signature")
        .ok_or("no webhook-signature")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let t: i64 = ts.parse().map_err(|_| format!("timestamp {ts}"))?;
    if (now - t).abs() > 300 {
        return Err(format!("timestamp {t} is {}s off", now - t));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64.decode(SECRET.trim_start_matches("whsec_")).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    let want = format!("v1,{}", b64.encode(mac.finalize().into_bytes()));
    if !sig.split(' ').any(|s| s == want) {
        return Err(format!("bad signature {sig} for {id}"));
    }
    if headers.get("content-type").map(String::as_str) != Some("application/json") {
        return Err("not JSON".into());
    }
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let kind = v["type"]
        .as_str()
        .and_then(|t| t.strip_prefix("interaction."))
        .ok_or_else(|| format!("no type in {v}"))?
        .to_owned();
    if v["timestamp"].as_str().is_none() {
        return Err(format!("no timestamp in {v}"));
    }
    Ok(Delivery {
        id: id.clone(),
        kind,
        interaction: v["data"]["interaction"]["id"].as_i64().unwrap_or(-1),
    })
}

#[test]
fn a_receiver_gets_every_signed_event_of_a_callback_across_a_kill_and_restart() {
    let rx = Receiver::start();
    let trunk_port = free_port();
    let agent_port = free_port_pair();
    let data = tempfile::tempdir().unwrap();
    let opts = Options {
        trunk: Some(SocketAddr::from(([127, 0, 0, 1], trunk_port))),
        agent_port: Some(agent_port),
        data_dir: Some(data.path().to_owned()),
        extra_config: format!(
            "[[webhooks]]\nname = \"crm\"\nurl = \"http://{}/hooks/hammond\"\nevents = [\"*\"]\nsecret = \"{SECRET}\"\n",
            rx.addr
        ),
        ..Options::default()
    };
    let mut h = Hammond::start(opts.clone());

    // The receiver is down while the caller books: Hammond retries the first event.
    rx.failing.store(true, Ordering::SeqCst);
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
        .unwrap_or_else(|| panic!("an open callback: {}", list.text));
    rx.wait_for("a retried delivery", |s| s.refused >= 2);
    let metrics = http::get(h.http, "/metrics", "alice-secret").text;
    assert!(
        metrics.contains(r#"hammond_webhook_retrying{webhook="crm"} 1"#),
        "the failing receiver shows in /metrics:\n{metrics}"
    );
    assert!(
        metrics.contains(
            r#"hammond_webhook_deliveries_total{webhook="crm",outcome="failed_attempt"}"#
        ),
        "{metrics}"
    );
    // Killed mid-delivery: nothing was delivered yet.
    h.kill9();
    assert!(rx.kinds_for(id).is_empty());

    // The receiver is back; Hammond restarts on the same store and resumes from its cursor.
    rx.failing.store(false, Ordering::SeqCst);
    let h = Hammond::start(opts);
    rx.wait_for("the booking's events after the restart", |s| {
        s.delivered
            .iter()
            .any(|d| d.interaction == id && d.kind == "call_ended")
    });

    // The rest of the callback's life: alice takes it, both phones answer, the customer
    // hangs up.
    let customer = Sipp::uas("phone_answers_then_hangs_up.xml", trunk_port).spawn();
    let alice = Sipp::uas("phone_answers_waits_bye.xml", agent_port).spawn();
    std::thread::sleep(Duration::from_millis(300));
    accept_as_alice(&h, id);
    assert_ok(&customer.wait());
    assert_ok(&alice.wait());
    let done = wait_status(&h, id, "closed");
    assert_eq!(done["status"], "closed", "{done}");
    let life = [
        "created",
        "entered_workflow",
        "callback_requested",
        "call_ended",
        "accepted",
        "dialling",
        "ringing",
        "answered",
        "bridged",
        "hung_up",
    ];
    rx.wait_for("every event of the callback's life", |s| {
        life.iter().all(|k| {
            s.delivered
                .iter()
                .any(|d| d.interaction == id && d.kind == *k)
        })
    });
    let seen = rx.seen.lock().unwrap();
    assert!(seen.bad_signatures.is_empty(), "{:?}", seen.bad_signatures);
    // In order, and each event once (the same webhook-id would be a redelivery).
    let ids: Vec<&str> = seen.delivered.iter().map(|d| d.id.as_str()).collect();
    let numbers: Vec<i64> = ids
        .iter()
        .map(|i| i.trim_start_matches("evt_").parse().unwrap())
        .collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
}
