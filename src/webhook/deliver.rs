//! Webhook delivery (tokio shell): one task per webhook walks the event log from its stored
//! cursor, POSTs each wanted event (signed, see [`super::sign`]), retries a failure with
//! [`super::backoff`], and stores the cursor past each event it is done with. See the module
//! above for the guarantees.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{Request, header};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::WebhookState;
use crate::config::{WebhookConfig, WebhookUrl};
use crate::store::{InteractionStore, StoredEvent};

/// Events read from the log at a time.
const PAGE: u32 = 100;
/// One attempt (connect, TLS, request, response head) may take this long.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// With nothing new heard, look at the log again this often anyway (a missed wake-up).
const IDLE_POLL: Duration = Duration::from_secs(5);
/// A store that fails is asked again after this long.
const STORE_RETRY: Duration = Duration::from_secs(1);
/// How long a hold on delivering a webhook lasts (several instances on one store: one
/// delivers); renewed well before, at every page and every few seconds while waiting.
const HOLD: Duration = Duration::from_secs(30);
/// Renew the hold when less than this is left; an instance without it looks this often.
const HOLD_RENEW: Duration = Duration::from_secs(10);

/// Every webhook's delivery state, shared with the wallboard.
#[derive(Debug, Default)]
pub struct Deliveries {
    states: Mutex<Vec<WebhookState>>,
}

impl Deliveries {
    /// Each webhook's state now.
    pub fn snapshot(&self) -> Vec<WebhookState> {
        self.states.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn update(&self, name: &str, f: impl FnOnce(&mut WebhookState)) {
        if let Ok(mut all) = self.states.lock()
            && let Some(s) = all.iter_mut().find(|s| s.name == name)
        {
            f(s);
        }
    }
}

/// Starts delivering to every webhook in `hooks` until `stop`. `tls` verifies `https://`
/// receivers.
pub fn spawn(
    store: Arc<dyn InteractionStore>,
    hooks: Vec<WebhookConfig>,
    tls: Arc<rustls::ClientConfig>,
    stop: CancellationToken,
) -> (Arc<Deliveries>, Vec<JoinHandle<()>>) {
    let deliveries = Arc::new(Deliveries {
        states: Mutex::new(
            hooks
                .iter()
                .map(|h| WebhookState {
                    name: h.name.clone(),
                    ..WebhookState::default()
                })
                .collect(),
        ),
    });
    let tasks = hooks
        .into_iter()
        .map(|hook| {
            let w = Worker {
                store: store.clone(),
                key: super::sign::SigningKey::parse(hook.secret.expose())
                    .expect("the config checked the secret"),
                hook,
                tls: tls.clone(),
                stop: stop.clone(),
                deliveries: deliveries.clone(),
            };
            tokio::spawn(w.run())
        })
        .collect();
    (deliveries, tasks)
}

struct Worker {
    store: Arc<dyn InteractionStore>,
    hook: WebhookConfig,
    key: super::sign::SigningKey,
    tls: Arc<rustls::ClientConfig>,
    stop: CancellationToken,
    deliveries: Arc<Deliveries>,
}

/// How one event ended.
enum Done {
    Delivered,
    GaveUp,
    Stopped,
    /// Another instance holds the webhook now (it goes on from the stored cursor).
    Lost,
}

impl Worker {
    async fn run(self) {
        let name = self.hook.name.clone();
        crate::metrics::webhook_retrying(&name, false);
        // Heard before the first read: an event committed in between wakes us.
        let mut heard = self.store.subscribe();
        let Some(mut cursor) = self.start().await else {
            return;
        };
        tracing::info!(webhook = %name, url = %self.hook.url, cursor, "webhook delivery started");
        let mut held_until: Option<std::time::Instant> = None;
        loop {
            // One instance delivers at a time: without the hold, wait for it.
            if !self.hold(&mut held_until).await {
                if self.pause(HOLD_RENEW).await {
                    return;
                }
                continue;
            }
            // Another instance may have moved the cursor while this one did not hold it.
            if let Ok(Some(stored)) = self.store.webhook_cursor(&name).await {
                cursor = cursor.max(stored);
            }
            let page = match self.store.events_since(cursor, PAGE).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(webhook = %name, error = %e, "webhook: event log not read");
                    if self.pause(STORE_RETRY).await {
                        return;
                    }
                    continue;
                }
            };
            if page.is_empty() {
                tokio::select! {
                    _ = heard.recv() => {}
                    () = tokio::time::sleep(IDLE_POLL) => {}
                    () = self.stop.cancelled() => return,
                }
                continue;
            }
            // Event ids are gap-free: a jump means the retention pruned events before this
            // webhook got to them (its receiver was down for longer than the retention).
            if let Some(first) = page.first()
                && cursor > 0
                && first.id > cursor + 1
            {
                let lost = first.id - cursor - 1;
                tracing::error!(webhook = %name, cursor, next = first.id, lost, "webhook: events pruned before delivery (receiver down past [store] event_retention)");
                crate::metrics::webhook_pruned(&name, u64::try_from(lost).unwrap_or(0));
            }
            let mut moved = false;
            for e in page {
                if !self.hold(&mut held_until).await {
                    // Lost the hold (a store outage long enough to lapse it): whoever has it
                    // goes on from the stored cursor.
                    break;
                }
                if self.wanted(&e.kind) {
                    match self.deliver(&e, &mut held_until).await {
                        Done::Delivered | Done::GaveUp => {}
                        done @ (Done::Stopped | Done::Lost) => {
                            // Not done with this one: the cursor stays before it.
                            if moved {
                                self.save(cursor).await;
                                moved = false;
                            }
                            if matches!(done, Done::Stopped) {
                                return;
                            }
                            break;
                        }
                    }
                    cursor = e.id;
                    self.save(cursor).await;
                    moved = false;
                } else {
                    cursor = e.id;
                    moved = true;
                }
            }
            if moved {
                self.save(cursor).await;
            }
        }
    }

    /// The stored cursor; a new webhook starts after the newest event (it is told of what
    /// happens from now on, not the whole history). `None` when stopped first.
    async fn start(&self) -> Option<i64> {
        loop {
            let r = match self.store.webhook_cursor(&self.hook.name).await {
                Ok(Some(c)) => Ok(c),
                Ok(None) => match self.store.event_bounds().await {
                    Ok(bounds) => {
                        let newest = bounds.map_or(0, |(_, n)| n);
                        self.store
                            .set_webhook_cursor(&self.hook.name, newest)
                            .await
                            .map(|()| newest)
                    }
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            match r {
                Ok(c) => {
                    self.deliveries.update(&self.hook.name, |s| s.cursor = c);
                    return Some(c);
                }
                Err(e) => {
                    tracing::warn!(webhook = %self.hook.name, error = %e, "webhook: cursor not read");
                    if self.pause(STORE_RETRY).await {
                        return None;
                    }
                }
            }
        }
    }

    /// Takes or renews the hold on delivering this webhook when less than [`HOLD_RENEW`] of it
    /// is left; whether this instance holds it.
    async fn hold(&self, until: &mut Option<std::time::Instant>) -> bool {
        let now = crate::clock::now();
        if until.is_some_and(|u| u > now + HOLD_RENEW) {
            return true;
        }
        let wall = crate::clock::wall();
        let lapse = wall + jiff::SignedDuration::try_from(HOLD).unwrap_or_default();
        match self.store.hold_webhook(&self.hook.name, lapse, wall).await {
            Ok(true) => {
                *until = Some(now + HOLD);
                true
            }
            Ok(false) => {
                *until = None;
                false
            }
            Err(e) => {
                tracing::warn!(webhook = %self.hook.name, error = %e, "webhook: hold not renewed");
                // Still ours until it lapses.
                until.is_some_and(|u| u > now)
            }
        }
    }

    fn wanted(&self, kind: &str) -> bool {
        self.hook.events.is_empty() || self.hook.events.iter().any(|k| k == kind)
    }

    /// Stores the cursor (retrying a failing store: moving on without it would deliver the
    /// events again after a restart, which is allowed, but a store that fails is worth a
    /// word).
    async fn save(&self, cursor: i64) {
        if let Err(e) = self.store.set_webhook_cursor(&self.hook.name, cursor).await {
            tracing::warn!(webhook = %self.hook.name, error = %e, cursor, "webhook: cursor not stored");
        }
        self.deliveries
            .update(&self.hook.name, |s| s.cursor = cursor);
    }

    /// `true` when stopped while waiting.
    async fn pause(&self, d: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(d) => false,
            () = self.stop.cancelled() => true,
        }
    }

    /// POSTs `e` until a 2xx, or until the retries run out.
    async fn deliver(&self, e: &StoredEvent, held: &mut Option<std::time::Instant>) -> Done {
        let name = &self.hook.name;
        let body = Bytes::from(body(e));
        let id = format!("evt_{}", e.id);
        let mut failures = 0u32;
        loop {
            let timestamp = crate::clock::wall().as_second();
            let signature = self.key.sign(&id, timestamp, &body);
            let attempt = tokio::time::timeout(
                ATTEMPT_TIMEOUT,
                post(
                    &self.hook.url,
                    &self.tls,
                    &id,
                    timestamp,
                    &signature,
                    body.clone(),
                ),
            );
            let outcome = tokio::select! {
                r = attempt => r.unwrap_or_else(|_| Err(format!("no answer within {ATTEMPT_TIMEOUT:?}"))),
                () = self.stop.cancelled() => return Done::Stopped,
            };
            match outcome {
                Ok(status) if (200..300).contains(&status) => {
                    crate::metrics::webhook_delivery(name, "delivered");
                    crate::metrics::webhook_retrying(name, false);
                    self.deliveries.update(name, |s| {
                        s.delivered += 1;
                        s.retrying = false;
                        s.last_error = None;
                    });
                    tracing::debug!(webhook = %name, event.id = e.id, kind = %e.kind, "webhook delivered");
                    return Done::Delivered;
                }
                other => {
                    let why = match other {
                        Ok(status) => format!("HTTP {status}"),
                        Err(e) => e,
                    };
                    failures += 1;
                    crate::metrics::webhook_delivery(name, "failed_attempt");
                    let next = super::backoff(failures);
                    tracing::warn!(webhook = %name, event.id = e.id, attempt = failures, error = %why, retry_in = ?next, "webhook delivery failed");
                    let retrying = next.is_some();
                    crate::metrics::webhook_retrying(name, retrying);
                    self.deliveries.update(name, |s| {
                        s.failed_attempts += 1;
                        s.retrying = retrying;
                        s.last_error = Some(why.clone());
                        if !retrying {
                            s.given_up += 1;
                        }
                    });
                    let Some(wait) = next else {
                        crate::metrics::webhook_delivery(name, "given_up");
                        tracing::error!(webhook = %name, event.id = e.id, "webhook: retries exhausted; event given up");
                        return Done::GaveUp;
                    };
                    // Wait, keeping the hold; give up the event to whoever holds it if lost.
                    let until = crate::clock::now() + wait;
                    loop {
                        let left = until.saturating_duration_since(crate::clock::now());
                        if left.is_zero() {
                            break;
                        }
                        if self.pause(left.min(HOLD_RENEW)).await {
                            return Done::Stopped;
                        }
                        if !self.hold(held).await {
                            return Done::Lost;
                        }
                    }
                }
            }
        }
    }
}

/// The Standard Webhooks payload: `{"type", "timestamp", "data"}`, `data` being the event
/// log's `{"interaction", "feed"}` with the event id.
pub fn body(e: &StoredEvent) -> String {
    // `kind` is a snake_case name and `at` an RFC 3339 time: neither needs escaping; `data`
    // is the JSON the store wrote.
    format!(
        r#"{{"type":"interaction.{}","timestamp":"{}","event_id":{},"data":{}}}"#,
        e.kind, e.at, e.id, e.data
    )
}

/// One POST; the response's status code.
async fn post(
    url: &WebhookUrl,
    tls: &Arc<rustls::ClientConfig>,
    id: &str,
    timestamp: i64,
    signature: &str,
    body: Bytes,
) -> Result<u16, String> {
    let tcp = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    if url.tls {
        let name = rustls::pki_types::ServerName::try_from(url.host.clone())
            .map_err(|e| format!("host name: {e}"))?;
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        send(stream, url, id, timestamp, signature, body).await
    } else {
        send(tcp, url, id, timestamp, signature, body).await
    }
}

async fn send<S>(
    stream: S,
    url: &WebhookUrl,
    id: &str,
    timestamp: i64,
    signature: &str,
    body: Bytes,
) -> Result<u16, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let conn = tokio::spawn(conn);
    let host = if url.host.contains(':') {
        format!("[{}]:{}", url.host, url.port)
    } else {
        format!("{}:{}", url.host, url.port)
    };
    let req = Request::post(url.path.as_str())
        .header(header::HOST, host)
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            header::USER_AGENT,
            concat!("hammond/", env!("CARGO_PKG_VERSION")),
        )
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(Full::new(body))
        .map_err(|e| format!("request: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let status = resp.status().as_u16();
    // The body is not read: the connection is dropped with it.
    drop(resp);
    conn.abort();
    Ok(status)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    use super::*;
    use crate::config::{Secret, WebhookUrl};
    use crate::interaction::{Event, HangupBy, Interaction};
    use crate::store::SqliteStore;

    /// A receiver answering 204 to everything, sending each request's body to the channel.
    async fn receiver() -> (u16, mpsc::UnboundedReceiver<String>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let n = s.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).into_owned();
                        if let Some((head, body)) = text.split_once("\r\n\r\n") {
                            let len: usize = head
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("content-length:")
                                        .map(|v| v.trim().parse().unwrap_or(0))
                                })
                                .unwrap_or(0);
                            if body.len() >= len {
                                let _ = tx.send(body[..len].to_owned());
                                let _ = s
                                    .write_all(
                                        b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
                                    )
                                    .await;
                                return;
                            }
                        }
                    }
                });
            }
        });
        (port, rx)
    }

    /// An `https://` receiver: the certificate is checked against the CA the client trusts,
    /// and the signed event arrives over TLS; a client that does not trust that CA delivers
    /// nothing.
    #[tokio::test]
    async fn https_receivers_get_events_over_verified_tls() {
        let pki = crate::config::tls::test_pki::make(&["localhost"]);
        let acceptor = crate::rt::sip_socket::tls::acceptor(&pki.cert, &pki.key).unwrap();
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let (tx, mut got) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = l.accept().await {
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let Ok(mut s) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = vec![0u8; 8192];
                    let mut text = String::new();
                    while !text.contains("}}") {
                        let n = s.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        text.push_str(&String::from_utf8_lossy(&buf[..n]));
                    }
                    let _ = tx.send(text);
                    let _ = s
                        .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                        .await;
                    let _ = s.shutdown().await;
                });
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn InteractionStore> = Arc::new(
            SqliteStore::open(&format!("sqlite://{}/h.db", dir.path().display()))
                .await
                .unwrap(),
        );
        let hook = |name: &str| WebhookConfig {
            name: name.into(),
            url: WebhookUrl::parse(&format!("https://localhost:{port}/h")).unwrap(),
            events: Vec::new(),
            secret: Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        };
        let stop = CancellationToken::new();
        let trusting = crate::rt::sip_socket::tls::client_config(Some(&pki.ca)).unwrap();
        let (ok, mut tasks) = spawn(
            store.clone(),
            vec![hook("trusting")],
            trusting,
            stop.clone(),
        );
        let system = crate::rt::sip_socket::tls::client_config(None).unwrap();
        let (refused, more) = spawn(
            store.clone(),
            vec![hook("distrusting")],
            system,
            stop.clone(),
        );
        tasks.extend(more);
        for name in ["trusting", "distrusting"] {
            while store.webhook_cursor(name).await.unwrap().is_none() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        store
            .create(Interaction::inbound("support", "1", crate::clock::wall()))
            .await
            .unwrap();
        let req = tokio::time::timeout(Duration::from_secs(10), got.recv())
            .await
            .expect("a delivery over TLS")
            .unwrap();
        assert!(req.starts_with("POST /h HTTP/1.1"), "{req}");
        assert!(req.contains("webhook-signature: v1,"), "{req}");
        assert!(req.contains(r#""type":"interaction.created""#), "{req}");
        // The other client does not trust the test CA: its attempt fails on the certificate.
        let start = crate::clock::now();
        while refused.snapshot()[0].last_error.is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no failed attempt"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let why = refused.snapshot()[0].last_error.clone().unwrap();
        assert!(why.starts_with("TLS:"), "{why}");
        assert_eq!(refused.snapshot()[0].delivered, 0);
        while ok.snapshot()[0].delivered == 0 {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no delivery counted"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(ok.snapshot()[0].delivered, 1);
        assert!(got.try_recv().is_err(), "one delivery only");
        stop.cancel();
        for t in tasks {
            t.await.unwrap();
        }
    }

    /// A new webhook starts after the newest event (no history replayed), and sends only the
    /// events it asked for, as `{"type": "interaction.<kind>", …, "data": {"interaction"}}`.
    #[tokio::test]
    async fn a_new_webhook_sends_the_events_it_asked_for_from_now_on() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn InteractionStore> = Arc::new(
            SqliteStore::open(&format!("sqlite://{}/h.db", dir.path().display()))
                .await
                .unwrap(),
        );
        let now = crate::clock::wall();
        let before = store
            .create(Interaction::inbound("support", "1", now))
            .await
            .unwrap();
        store
            .apply(before.id, Event::EnteredWorkflow, now)
            .await
            .unwrap();
        let (port, mut got) = receiver().await;
        let hook = WebhookConfig {
            name: "crm".into(),
            url: WebhookUrl::parse(&format!("http://127.0.0.1:{port}/h")).unwrap(),
            events: vec!["call_ended".into()],
            secret: Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        };
        let stop = CancellationToken::new();
        let tls = crate::rt::sip_socket::tls::client_config(None).unwrap();
        let (deliveries, tasks) = spawn(store.clone(), vec![hook], tls, stop.clone());
        // Until the cursor is stored, the worker has not started: events before it are history.
        while store.webhook_cursor("crm").await.unwrap().is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let after = store
            .create(Interaction::inbound("support", "2", now))
            .await
            .unwrap();
        for id in [before.id, after.id] {
            let e = Event::CallEnded {
                by: HangupBy::Caller,
                had_callback: false,
                voicemail: false,
                during: None,
            };
            store.apply(id, e, now).await.unwrap();
        }
        let mut bodies = Vec::new();
        for _ in 0..2 {
            let b = tokio::time::timeout(Duration::from_secs(10), got.recv())
                .await
                .expect("a delivery")
                .unwrap();
            bodies.push(serde_json::from_str::<serde_json::Value>(&b).unwrap());
        }
        assert!(
            bodies.iter().all(|b| b["type"] == "interaction.call_ended"),
            "{bodies:?}"
        );
        let ids: Vec<_> = bodies
            .iter()
            .map(|b| b["data"]["interaction"]["id"].clone())
            .collect();
        assert_eq!(
            ids,
            [serde_json::json!(before.id), serde_json::json!(after.id)]
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(300), got.recv())
                .await
                .is_err(),
            "nothing else: not the history, not the created event"
        );
        assert_eq!(deliveries.snapshot()[0].delivered, 2);
        stop.cancel();
        for t in tasks {
            t.await.unwrap();
        }
    }

    /// Events the retention pruned before a webhook got to them are counted (and the rest
    /// delivered): `hammond_webhook_deliveries_total{outcome="pruned"}`.
    #[tokio::test]
    async fn events_pruned_before_delivery_are_counted() {
        let handle = crate::metrics::install();
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn InteractionStore> = Arc::new(
            SqliteStore::open(&format!("sqlite://{}/h.db", dir.path().display()))
                .await
                .unwrap(),
        );
        let now = crate::clock::wall();
        for n in ["1", "2", "3", "4"] {
            store
                .create(Interaction::inbound("support", n, now))
                .await
                .unwrap();
        }
        // Delivered up to event 1; events 1-3 pruned (the newest always stays).
        store.set_webhook_cursor("pruned-test", 1).await.unwrap();
        let pruned = store
            .prune_events(now + jiff::SignedDuration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(pruned, 3);
        let (port, mut got) = receiver().await;
        let hook = WebhookConfig {
            name: "pruned-test".into(),
            url: WebhookUrl::parse(&format!("http://127.0.0.1:{port}/h")).unwrap(),
            events: Vec::new(),
            secret: Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        };
        let stop = CancellationToken::new();
        let tls = crate::rt::sip_socket::tls::client_config(None).unwrap();
        let (_deliveries, tasks) = spawn(store.clone(), vec![hook], tls, stop.clone());
        let b = tokio::time::timeout(Duration::from_secs(10), got.recv())
            .await
            .expect("the newest event is delivered")
            .unwrap();
        assert!(b.contains(r#""event_id":4"#), "{b}");
        let text = handle.render();
        assert!(
            text.contains(
                r#"hammond_webhook_deliveries_total{webhook="pruned-test",outcome="pruned"} 2"#
            ),
            "{text}"
        );
        stop.cancel();
        for t in tasks {
            t.await.unwrap();
        }
    }
}
