//! Issue 16, the browser is the agent's phone, end to end in headless Debian Chromium with a
//! fake microphone (a WAV file with a 1 kHz tone). carol's `endpoint = "webrtc"`.
//!
//! - A callback: carol picks it up in the Home List; her page answers the agent leg itself; the
//!   customer (SIPp at the trunk, its RTP to a socket this test owns, which also sends a 600 Hz
//!   tone back) receives the browser's tone; the page receives the customer's audio (getStats:
//!   inbound-rtp packets and an audio level above 0); hanging up in the page sends BYE to the
//!   customer.
//! - A live caller pushed to carol rings in the page (Accept/Decline) and is answered there.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::browser::{Browser, CHROMEDRIVER, CHROMIUM, ChromeDriver, free_udp_port, which};
use crate::support::sipp::assert_ok;
use crate::support::{Hammond, Options, Sipp, http};

const CAROL: &str = "\n[[agents]]\nid = \"carol\"\nendpoint = \"webrtc\"\nqueues = [\"support\"]\ntoken = \"carol-secret\"\n";
/// The tone in the fake microphone.
const MIC_HZ: f64 = 1000.0;
/// The tone the customer sends.
const CUSTOMER_HZ: f64 = 600.0;
const WAIT: Duration = Duration::from_secs(30);

fn require_tools() {
    for bin in [CHROMIUM, CHROMEDRIVER, "sipp"] {
        assert!(
            Path::new(bin).exists() || which(bin),
            "{bin} is missing: apt-get install -y chromium chromium-driver sip-tester"
        );
    }
}

/// A 48 kHz mono WAV of a loud `hz` sine (Chromium loops it as the microphone).
fn tone_wav(path: &Path, hz: f64) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 48_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for n in 0..48_000 * 10 {
        let v = (2.0 * std::f64::consts::PI * hz * f64::from(n) / 48_000.0).sin() * 12_000.0;
        w.write_sample(v as i16).unwrap();
    }
    w.finalize().unwrap();
}

/// Chromium with a fake microphone playing `wav`, its permission granted, and loopback ICE.
fn phone_browser(driver: &ChromeDriver, wav: &Path) -> Browser {
    driver.session_with(&[
        "--use-fake-device-for-media-stream".into(),
        "--use-fake-ui-for-media-stream".into(),
        format!("--use-file-for-fake-audio-capture={}", wav.display()),
        "--allow-loopback-in-peer-connection".into(),
        "--autoplay-policy=no-user-gesture-required".into(),
    ])
}

fn sign_in(b: &Browser, base: &str, token: &str) {
    b.goto(base);
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
    b.wait_text("#phone-state", "Ready");
}

/// What the page's peer connection received: inbound-rtp packets and audio level.
fn page_inbound(b: &Browser) -> (u64, f64) {
    let v = b.js_async(
        "const done = arguments[arguments.length - 1];
         const pc = window.hammondPhone.pc;
         if (!pc) { done(null); return; }
         pc.getStats().then((r) => {
           let out = null;
           r.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'audio') out = s; });
           done(out && { packets: out.packetsReceived || 0, level: out.audioLevel || 0 });
         });",
    );
    (
        v["packets"].as_u64().unwrap_or(0),
        v["level"].as_f64().unwrap_or(0.0),
    )
}

/// A callback carol picked up in her page, in a call with two-way audio.
struct InCall {
    h: Hammond,
    customer: crate::support::sipp::Running,
    media: CustomerMedia,
    _driver: ChromeDriver,
    carol: Browser,
    id: i64,
    _dir: tempfile::TempDir,
}

fn callback_in_call() -> InCall {
    require_tools();
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("mic.wav");
    tone_wav(&wav, MIC_HZ);

    let trunk_port = free_udp_port();
    let media = CustomerMedia::start();
    let customer = Sipp::uas("customer_answers_rtp_sink.xml", trunk_port)
        .key("rtp_port", &media.port.to_string())
        .spawn();
    let h = Hammond::start(Options {
        trunk: Some(SocketAddr::from(([127, 0, 0, 1], trunk_port))),
        extra_config: CAROL.into(),
        ..Options::default()
    });
    let run = Sipp::uac("callback_info.xml", h.sip, "support")
        .key("key1", "1")
        .key("key2", "1")
        .run();
    assert_ok(&run);
    let list = http::get(
        h.http,
        "/api/v1/interactions?sub_type=callback",
        "carol-secret",
    );
    let id = list.body["interactions"][0]["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no callback interaction: {}", list.text));

    let driver = ChromeDriver::start();
    let carol = phone_browser(&driver, &wav);
    sign_in(&carol, &format!("http://{}/", h.http), "carol-secret");

    let accepted = Instant::now();
    carol
        .find(&format!("#rows tr[data-id='{id}'] button.pick"))
        .click();
    // Her own pick: the page answers without asking.
    carol.wait_text("#phone-state", "In call");
    carol.wait_js(
        "return !document.getElementById('workspace').hidden",
        "the workspace",
    );
    // Two-way audio: the customer hears the microphone's tone, the page gets the customer's.
    let start = Instant::now();
    let (packets, level) = loop {
        let (packets, level) = page_inbound(&carol);
        let heard = media.tone_power(MIC_HZ);
        if packets > 50 && level > 0.0 && heard > 0.5 {
            break (packets, level);
        }
        assert!(
            start.elapsed() < WAIT,
            "no two-way audio: page inbound {packets} packets, level {level}; customer's 1 kHz share {heard:.2} of {} packets",
            media.count()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    println!(
        "accept -> two-way audio: {:?}; page {packets} packets, level {level}",
        accepted.elapsed()
    );
    InCall {
        h,
        customer,
        media,
        _driver: driver,
        carol,
        id,
        _dir: dir,
    }
}

#[test]
fn a_browser_agent_takes_a_callback_with_two_way_audio_and_hangs_up() {
    let c = callback_in_call();
    c.carol.screenshot("browser-phone-in-call.png");
    assert_eq!(c.carol.text("#phone-hangup"), "Hang up");
    assert!(c.carol.text("#phone-timer").contains(':'));

    // Hang up in the page: BYE to the customer, who answers it (the scenario ends OK).
    c.carol.find("#phone-hangup").click();
    assert_ok(&c.customer.wait());
    c.carol.wait_text("#phone-state", "Ready");
    let d = wait_for(&c.h, c.id, "hung_up");
    assert_eq!(hung_up_by(&d), "the agent hung up");
    c.media.finish();
}

/// A closed tab mid-call is the agent's leg failing: no ICE consent from the browser, so
/// Hammond ends the call as it does for a SIP phone whose media stops, BYE to the customer.
#[test]
fn a_browser_tab_closed_mid_call_ends_the_call_like_a_failed_phone() {
    let c = callback_in_call();
    let closed = Instant::now();
    drop(c.carol);
    assert_ok(&c.customer.wait());
    let after = closed.elapsed();
    println!("tab closed -> BYE to the customer: {after:?}");
    assert!(
        after < Duration::from_secs(20),
        "BYE {after:?} after the tab closed"
    );
    let d = wait_for(&c.h, c.id, "hung_up");
    assert_eq!(hung_up_by(&d), "Hammond hung up");
    c.media.finish();
}

/// The text of the interaction's `hung_up` feed entry.
fn hung_up_by(d: &Value) -> String {
    d["feed"]
        .as_array()
        .and_then(|f| f.iter().find(|e| e["kind"] == "hung_up").cloned())
        .and_then(|e| e["text"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[test]
fn a_live_caller_pushed_to_a_browser_agent_rings_in_the_page_and_is_answered_there() {
    require_tools();
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("mic.wav");
    tone_wav(&wav, MIC_HZ);
    let h = Hammond::start(Options {
        extra_config: CAROL.into(),
        ..Options::default()
    });
    let driver = ChromeDriver::start();
    let carol = phone_browser(&driver, &wav);
    sign_in(&carol, &format!("http://{}/", h.http), "carol-secret");

    // A caller waits in the queue; carol becomes available and is offered the call.
    let caller = Sipp::uac("caller_waits.xml", h.sip, "support")
        .args(&["-d", "60000"])
        .spawn();
    let body = json!({"status": "available"}).to_string();
    let r = http::request(
        h.http,
        "PUT",
        "/api/v1/agents/carol/status",
        Some("carol-secret"),
        Some(&body),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    carol.wait_text("#phone-state", "Ringing");
    carol.wait_js(
        "return !document.getElementById('offer').hidden",
        "the incoming-call alert",
    );
    carol.screenshot("browser-phone-ringing.png");
    carol.find("#offer-accept").click();
    carol.wait_text("#phone-state", "In call");
    // (This SIPp caller sends no audio: two-way audio is the callback test's.)
    carol.wait_js(
        "return window.hammondPhone.pc && window.hammondPhone.pc.connectionState === 'connected'",
        "a connected peer connection",
    );
    let list = http::get(
        h.http,
        "/api/v1/interactions?status=connected",
        "carol-secret",
    );
    let i = &list.body["interactions"][0];
    assert_eq!(i["assigned_agent"], "carol", "{}", list.text);
    let id = i["id"].as_i64().unwrap();
    wait_for(&h, id, "bridged");
    carol.find("#phone-hangup").click();
    carol.wait_text("#phone-state", "Ready");
    wait_for(&h, id, "hung_up");
    drop(caller);
}

/// The interaction once its feed has an entry of `kind`.
fn wait_for(h: &Hammond, id: i64, kind: &str) -> Value {
    let start = Instant::now();
    loop {
        let d = http::get(
            h.http,
            &format!("/api/v1/interactions/{id}"),
            "carol-secret",
        );
        let has = d.body["feed"]
            .as_array()
            .is_some_and(|f| f.iter().any(|e| e["kind"] == kind));
        if has {
            return d.body;
        }
        assert!(start.elapsed() < WAIT, "no {kind} on the feed: {}", d.text);
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The customer's media: a socket that keeps what Hammond sends (PCMU) and, once Hammond has
/// sent something, answers with a [`CUSTOMER_HZ`] tone every 20 ms.
struct CustomerMedia {
    port: u16,
    got: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl CustomerMedia {
    fn start() -> Self {
        let sock = loop {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            if s.local_addr().unwrap().port().is_multiple_of(2) {
                break s;
            }
        };
        sock.set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        let port = sock.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, s) = (got.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut peer = None;
            let mut next = Instant::now();
            let (mut seq, mut ts, mut n) = (0u16, 0u32, 0u64);
            while !s.load(Ordering::Relaxed) {
                if let Ok((len, from)) = sock.recv_from(&mut buf)
                    && len > 12
                    && buf[1] & 0x7F == 0
                {
                    peer = Some(from);
                    g.lock().unwrap().push(buf[12..len].to_vec());
                }
                if let Some(to) = peer
                    && Instant::now() >= next
                {
                    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78];
                    p[2..4].copy_from_slice(&seq.to_be_bytes());
                    p[4..8].copy_from_slice(&ts.to_be_bytes());
                    for _ in 0..160 {
                        let v = (2.0 * std::f64::consts::PI * CUSTOMER_HZ * n as f64 / 8000.0)
                            .sin()
                            * 8000.0;
                        p.push(linear_to_ulaw(v as i16));
                        n += 1;
                    }
                    let _ = sock.send_to(&p, to);
                    seq = seq.wrapping_add(1);
                    ts = ts.wrapping_add(160);
                    next += Duration::from_millis(20);
                }
            }
        });
        Self {
            port,
            got,
            stop,
            thread: Some(thread),
        }
    }

    fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    /// The share of the last second's power at `hz` (Goertzel over each 20 ms frame).
    fn tone_power(&self, hz: f64) -> f64 {
        let got = self.got.lock().unwrap();
        let frames: Vec<f64> = got
            .iter()
            .rev()
            .take(50)
            .flat_map(|p| p.iter().map(|b| f64::from(ulaw_to_linear(*b))))
            .collect();
        if frames.len() < 160 * 10 {
            return 0.0;
        }
        let total: f64 = frames.iter().map(|x| x * x).sum::<f64>();
        if total < 1e3 * frames.len() as f64 {
            return 0.0;
        }
        let mut at = 0.0;
        for chunk in frames.chunks(160) {
            at += goertzel(chunk, hz, 8000.0);
        }
        // A pure tone's Goertzel power over N samples is about N/2 × its energy.
        (at * 2.0 / 160.0 / total).min(1.0)
    }

    fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for CustomerMedia {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn goertzel(x: &[f64], hz: f64, rate: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / rate;
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for v in x {
        let s = v + c * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - c * s1 * s2
}

fn ulaw_to_linear(u: u8) -> i16 {
    let u = !u;
    let t = ((i32::from(u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4);
    (if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }) as i16
}

fn linear_to_ulaw(s: i16) -> u8 {
    let mut x = i32::from(s);
    let sign = if x < 0 {
        x = -x;
        0x80
    } else {
        0
    };
    x = (x + 0x84).min(0x7FFF);
    let mut exp = 7;
    while exp > 0 && x & (0x4000 >> (7 - exp)) == 0 {
        exp -= 1;
    }
    let mantissa = (x >> (exp + 3)) & 0x0F;
    !(sign | (exp << 4) as u8 | mantissa as u8)
}

#[test]
fn ulaw_round_trips() {
    for s in [-30000i16, -1000, -1, 0, 1, 1000, 30000] {
        let back = ulaw_to_linear(linear_to_ulaw(s));
        assert!(
            (i32::from(back) - i32::from(s)).abs() <= i32::from(s).abs() / 16 + 8,
            "{s} -> {back}"
        );
    }
}
