//! Issue "Home List in the browser", end to end in a real browser: Debian's `chromium`, driven
//! over WebDriver by `chromedriver` (`apt-get install -y chromium chromium-driver`). A SIPp
//! caller books a callback; alice signs in, sees it as an Open Callback, picks it up and lands in
//! the workspace (Connected, the feed showing the callback request); bob's page, signed in
//! meanwhile, shows the row turn Connected without a reload. A SIPp UAS at the trunk plays the
//! customer's phone. Screenshots go to `target/artifacts/`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::hammond::repo;
use crate::support::sipp::assert_ok;
use crate::support::{Hammond, Options, Sipp, http};

pub(crate) const CHROMIUM: &str = "/usr/bin/chromium";
pub(crate) const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const WAIT: Duration = Duration::from_secs(20);

#[test]
fn pick_up_a_callback_in_the_browser() {
    for bin in [CHROMIUM, CHROMEDRIVER, "sipp"] {
        let found = Path::new(bin).exists() || which(bin);
        assert!(
            found,
            "{bin} is missing: apt-get install -y chromium chromium-driver sip-tester"
        );
    }
    // The customer's phone, at the trunk.
    let trunk_port = free_udp_port();
    let customer = CustomerPhone::start(trunk_port);
    // vic works the e2e queue, where callers may leave a voicemail (key 3).
    let mut e2e = crate::support::api::e2e_options();
    e2e.extra_config.push_str(
        "[[agents]]\nid = \"vic\"\nendpoint = \"sip:vic@127.0.0.1:5079\"\n\
         queues = [\"e2e\"]\ntoken = \"vic-secret\"\n",
    );
    let h = Hammond::start(Options {
        trunk: Some(SocketAddr::from(([127, 0, 0, 1], trunk_port))),
        ..e2e
    });

    // A caller books a callback on its own number (keys by SIP INFO).
    let run = Sipp::uac("callback_info.xml", h.sip, "support")
        .key("key1", "1")
        .key("key2", "1")
        .run();
    assert_ok(&run);
    let list = http::get(
        h.http,
        "/api/v1/interactions?sub_type=callback",
        "alice-secret",
    );
    assert_eq!(list.status, 200, "{}", list.text);
    let id = list.body["interactions"][0]["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no callback interaction: {}", list.text));

    let driver = ChromeDriver::start();
    let alice = driver.session();
    let bob = driver.session();
    // alice again, in a window whose live stream is cut: it will be too late.
    let stale = driver.session();
    let base = format!("http://{}/", h.http);
    for (b, token) in [
        (&alice, "alice-secret"),
        (&bob, "bob-secret"),
        (&stale, "alice-secret"),
    ] {
        b.goto(&base);
        b.wait_js(
            "return !document.getElementById('signin').hidden",
            "the sign-in form",
        );
        b.find("#token").send_keys(token);
        b.find("#signin-form button[type=submit]").click();
        b.wait_js(
            "return !document.getElementById('home').hidden",
            "the Home List",
        );
    }

    // alice: the row is an Open Callback and can be picked.
    let row = format!("#rows tr[data-id='{id}']");
    for b in [&alice, &bob, &stale] {
        b.wait_text(&format!("{row} .c-type"), "Callback");
        b.wait_text(&format!("{row} .c-status"), "Open");
        b.wait_text(&format!("{row} .c-customer"), "15551234567");
        b.wait_text("#conn", "Live");
    }
    // Marks bob's page: a reload would lose it.
    bob.js("window.__hammondNoReload = 42; return null");
    stale.js("state.es.close(); return null");
    alice.screenshot("home-list.png");

    alice.find(&format!("{row} button.pick")).click();
    alice.wait_js(
        "return !document.getElementById('workspace').hidden",
        "the workspace",
    );
    alice.wait_text("#ws-status", "Connected");
    alice.wait_text("#ws-type", "Callback");
    alice.wait_text("#ws-customer", "15551234567");
    alice.wait_text("#ws-agent", "you");
    alice.wait_js(
        "return document.querySelector(\"#feed li[data-kind='callback_requested']\") !== null",
        "the callback request in the feed",
    );
    let callout = alice.text("#feed-callback");
    assert!(
        callout.starts_with("Callback requested at") && callout.contains("15551234567"),
        "{callout}"
    );
    let tab = alice.find("#tab-feed").attr("aria-selected");
    assert_eq!(tab.as_deref(), Some("true"), "the Feed tab is selected");

    // bob: the same row turns Connected, live, and says why it cannot be picked.
    bob.wait_text(&format!("{row} .c-status"), "Connected");
    bob.wait_text(&format!("{row} .c-action"), "with alice");
    assert_eq!(
        bob.js(&format!(
            "return document.querySelector(\"{row} button.pick\") === null"
        )),
        json!(true),
        "a Connected row has no pick-up button"
    );
    assert_eq!(
        bob.js("return window.__hammondNoReload"),
        json!(42),
        "bob's page was reloaded"
    );
    // The stale window still offers the row; picking it up is refused plainly (409).
    stale.wait_text(&format!("{row} .c-status"), "Open");
    stale.find(&format!("{row} button.pick")).click();
    stale.wait_js(
        "return !document.getElementById('alert').hidden",
        "an alert after the 409",
    );
    let alert = stale.text("#alert-text");
    assert!(
        alert.starts_with(&format!(
            "Someone else was faster: interaction {id} can no longer be picked up."
        )),
        "{alert}"
    );
    stale.wait_text(&format!("{row} .c-status"), "Connected");
    assert!(
        stale.js("return document.getElementById('workspace').hidden") == json!(true),
        "a refused pick-up opens no workspace"
    );
    // The API agrees with what the pages show.
    let d = http::get(h.http, &format!("/api/v1/interactions/{id}"), "bob-secret");
    assert_eq!(d.body["status"], "connected", "{}", d.text);
    assert_eq!(d.body["assigned_agent"], "alice", "{}", d.text);

    // The accept dialled the customer at once: their phone got the INVITE, and the
    // workspace shows the progress.
    {
        let invite = customer.wait_invite(Duration::from_secs(10));
        assert_eq!(
            invite.as_deref(),
            Some("15551234567"),
            "the customer's phone got no callback INVITE for 15551234567:\n{}",
            customer.messages()
        );
        alice.wait_js(
            "return document.querySelector(\"#progress li[data-step='callback_dialling'].done\") !== null",
            "dialling in the call progress",
        );
    }
    alice.screenshot("workspace.png");
    bob.resize(420, 800);
    bob.screenshot("home-list-narrow.png");

    // Issue 21: a caller leaves a voicemail; vic opens it and the workspace's player has the
    // recording (fetched with the token, played from a Blob URL), seconds long.
    let run = Sipp::uac_template(
        "pcap_until_bye.xml",
        h.sip,
        "e2e",
        &[("PCAP", &crate::support::sipp::pcap("voicemail.pcap"))],
    )
    .run();
    assert_ok(&run);
    let vm = crate::support::api::wait_single(&h, "vic-secret", |d| d["sub_type"] == "voicemail");
    let vm_id = vm["id"].as_i64().unwrap();
    let vic = driver.session();
    vic.goto(&base);
    vic.wait_js(
        "return !document.getElementById('signin').hidden",
        "the sign-in form",
    );
    vic.find("#token").send_keys("vic-secret");
    vic.find("#signin-form button[type=submit]").click();
    vic.wait_text(&format!("#rows tr[data-id='{vm_id}'] .c-type"), "Voicemail");
    // Picking it up calls the caller back, and the button says so.
    vic.wait_text(
        &format!("#rows tr[data-id='{vm_id}'] button.pick"),
        "Call back",
    );
    // Listened to before anyone calls back: the row's Listen link, not Pick up (which dials).
    vic.find(&format!("#rows tr[data-id='{vm_id}'] a.listen"))
        .click();
    vic.wait_js(
        "return !document.getElementById('vm-box').hidden",
        "the voicemail player",
    );
    vic.wait_js(
        "const p = document.getElementById('vm-player'); \
         return p.src.startsWith('blob:') && p.readyState >= 1 && p.duration > 0",
        "the recording's duration in the player",
    );
    let secs = vic.js("return document.getElementById('vm-player').duration");
    assert!(
        secs.as_f64().is_some_and(|d| (1.0..10.0).contains(&d)),
        "the player's duration: {secs}"
    );
    // Nothing else shows a player: alice's callback has none.
    assert_eq!(
        alice.js("return document.getElementById('vm-box').hidden"),
        json!(true)
    );
    vic.screenshot("voicemail-player.png");
}

pub(crate) fn which(bin: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub(crate) fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port")
}

pub(crate) fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free TCP port")
}

pub(crate) fn artifacts() -> PathBuf {
    let dir = repo().join("target/artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// SIPp as the customer's phone (`tests/sipp/customer_uas.xml`), listening on the trunk port.
pub(crate) struct CustomerPhone {
    child: Child,
    dir: tempfile::TempDir,
}

impl CustomerPhone {
    pub(crate) fn start(port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let media = free_udp_port();
        let child = Command::new("sipp")
            .arg("-sf")
            .arg(repo().join("tests/sipp/customer_uas.xml"))
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-mp", &media.to_string(), "-m", "1", "-nostdin"])
            .args(["-timeout", "180s", "-trace_msg", "-message_file"])
            .arg(dir.path().join("messages.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sipp");
        Self { child, dir }
    }

    pub(crate) fn messages(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("messages.log")).unwrap_or_default()
    }

    /// The Request-URI user of the first INVITE received, waiting up to `timeout`.
    pub(crate) fn wait_invite(&self, timeout: Duration) -> Option<String> {
        let start = Instant::now();
        loop {
            let log = self.messages();
            let user = log
                .split("message received")
                .skip(1)
                .filter_map(|block| {
                    block
                        .lines()
                        .find(|l| !l.trim().is_empty() && !l.contains("bytes"))
                })
                .find_map(|line| {
                    let uri = line.trim().strip_prefix("INVITE sip:")?;
                    Some(uri.split(['@', ';', ' ']).next()?.to_owned())
                });
            if user.is_some() || start.elapsed() > timeout {
                return user;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for CustomerPhone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `chromedriver` on a free loopback port.
pub(crate) struct ChromeDriver {
    child: Child,
    addr: SocketAddr,
}

impl ChromeDriver {
    pub(crate) fn start() -> Self {
        let port = free_tcp_port();
        let mut child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        // Connect only once it listens: a connect to a port nobody listens on can, from the same
        // ephemeral range, connect to itself (TCP simultaneous open) and hang.
        let stdout = child.stdout.take().expect("chromedriver stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("started successfully") {
                    let _ = tx.send(());
                }
            }
        });
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let driver = Self { child, addr };
        rx.recv_timeout(WAIT).expect("chromedriver did not start");
        let start = Instant::now();
        loop {
            let r = wd_request(addr, "GET", "/status", None);
            if let Ok((200, v)) = &r
                && v["value"]["ready"] == true
            {
                return driver;
            }
            assert!(start.elapsed() < WAIT, "chromedriver did not start: {r:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A new browser (its own profile, so its own `sessionStorage`) at 1280×800.
    pub(crate) fn session(&self) -> Browser {
        self.session_with(&[])
    }

    /// [`Self::session`] with more Chromium switches (a fake microphone, say).
    pub(crate) fn session_with(&self, extra: &[String]) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-dev-shm-usage",
            "--window-size=1280,800",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .chain(extra.iter().cloned())
        .collect::<Vec<_>>();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let v = wd(self.addr, "POST", "/session", Some(caps));
        let id = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_owned();
        Browser {
            addr: self.addr,
            id,
            _profile: profile,
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One WebDriver session.
pub(crate) struct Browser {
    addr: SocketAddr,
    id: String,
    _profile: tempfile::TempDir,
}

pub(crate) struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

impl Browser {
    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        wd(
            self.addr,
            method,
            &format!("/session/{}{path}", self.id),
            body,
        )
    }

    pub(crate) fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    pub(crate) fn js(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// Runs `script` as an async WebDriver script (it calls `arguments[arguments.length - 1]`
    /// with its result).
    pub(crate) fn js_async(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/async",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    pub(crate) fn find(&self, css: &str) -> Element<'_> {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        );
        let id = v
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_owned();
        Element { browser: self, id }
    }

    /// The text of the first element matching `css` ("" when there is none).
    pub(crate) fn text(&self, css: &str) -> String {
        let script = format!(
            "const e = document.querySelector({}); return e ? e.textContent.trim() : ''",
            json!(css)
        );
        self.js(&script).as_str().unwrap_or_default().to_owned()
    }

    /// Waits until `css`'s text is `want`.
    #[track_caller]
    pub(crate) fn wait_text(&self, css: &str, want: &str) {
        let start = Instant::now();
        loop {
            let got = self.text(css);
            if got == want {
                return;
            }
            if start.elapsed() > WAIT {
                self.screenshot(&format!("failed-{}.png", self.id));
                panic!(
                    "{css} shows {got:?}, not {want:?}; page:\n{}",
                    self.text("main")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `script` returns true.
    #[track_caller]
    pub(crate) fn wait_js(&self, script: &str, what: &str) {
        let start = Instant::now();
        while self.js(script) != json!(true) {
            if start.elapsed() > WAIT {
                self.screenshot(&format!("failed-{}.png", self.id));
                panic!("no {what}; page:\n{}", self.text("body"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn resize(&self, width: u32, height: u32) {
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        );
    }

    pub(crate) fn screenshot(&self, name: &str) {
        let v = self.cmd("GET", "/screenshot", None);
        let png = base64_decode(v.as_str().unwrap_or_default()).expect("a base64 screenshot");
        assert!(png.starts_with(b"\x89PNG"), "screenshot is not a PNG");
        std::fs::write(artifacts().join(name), png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = wd_request(self.addr, "DELETE", &format!("/session/{}", self.id), None);
    }
}

impl Element<'_> {
    pub(crate) fn click(&self) {
        self.browser.cmd(
            "POST",
            &format!("/element/{}/click", self.id),
            Some(json!({})),
        );
    }

    pub(crate) fn send_keys(&self, text: &str) {
        self.browser.cmd(
            "POST",
            &format!("/element/{}/value", self.id),
            Some(json!({ "text": text })),
        );
    }

    fn attr(&self, name: &str) -> Option<String> {
        self.browser
            .cmd(
                "GET",
                &format!("/element/{}/attribute/{name}", self.id),
                None,
            )
            .as_str()
            .map(str::to_owned)
    }
}

/// A WebDriver command; panics on an error reply. Returns `value`.
#[track_caller]
fn wd(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> Value {
    match wd_request(addr, method, path, body) {
        Ok((200, v)) => v["value"].clone(),
        Ok((status, v)) => panic!("webdriver {method} {path}: {status} {v}"),
        Err(e) => panic!("webdriver {method} {path}: {e}"),
    }
}

/// One HTTP/1.1 request to chromedriver (`Connection: close`).
fn wd_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> std::io::Result<(u16, Value)> {
    let mut s = TcpStream::connect(addr)?;
    if s.local_addr()? == addr {
        return Err(std::io::Error::other("connected to itself"));
    }
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())?;
    // chromedriver answers `Connection: close` but may keep the socket open: read the head,
    // then exactly Content-Length bytes (or chunks until the last one).
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::Error::other("connection closed before the head"));
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let length = head.lines().find_map(|l| {
        l.strip_prefix("content-length:")
            .and_then(|v| v.trim().parse::<usize>().ok())
    });
    let chunked = head.contains("transfer-encoding: chunked");
    loop {
        let body = &raw[head_end..];
        let done = match length {
            Some(n) => body.len() >= n,
            None if chunked => body.windows(5).any(|w| w == b"0\r\n\r\n"),
            None => false,
        };
        if done {
            break;
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let body = String::from_utf8_lossy(&raw[head_end..]);
    let text = if chunked {
        http::dechunk(&body)
    } else {
        body.into_owned()
    };
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// Standard base64 (screenshots); `None` on a bad character.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[test]
fn base64_round_trip() {
    assert_eq!(base64_decode("aGFtbW9uZA==").unwrap(), b"hammond");
    assert_eq!(base64_decode("aGFtbW9u").unwrap(), b"hammon");
    assert_eq!(base64_decode("iVBORw0KGgo=").unwrap(), b"\x89PNG\r\n\x1a\n");
    assert!(base64_decode("a$b").is_none());
}
