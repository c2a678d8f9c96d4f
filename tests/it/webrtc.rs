//! Issue 16, the browser is the agent's phone, end to end in headless Debian Chromium with a
//! fake microphone (a WAV file with a 1 kHz tone). carol's `endpoint = "webrtc"`.
//!
//! - A callback: carol picks it up in the Home List; her page answers the agent leg itself; the
//!   customer (SIPp at the trunk, its RTP to a socket this test owns, which also sends a 600 Hz
//!   tone back) receives the browser's tone; the page receives the customer's audio (getStats:
//!   inbound-rtp packets and an audio level above 0); hanging up in the page sends BYE to the
//!   customer.
//! - A live caller pushed to carol rings in the page (Accept/Decline) and is answered there.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::browser::{Browser, CHROMEDRIVER, CHROMIUM, ChromeDriver, free_udp_port, which};
use crate::support::sipp::assert_ok;
use crate::support::tone::ToneMedia;
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
    media: ToneMedia,
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
    let media = ToneMedia::start(CUSTOMER_HZ);
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

    // Hold in the page: the customer hears the queue's hold music (not silence, and not the
    // microphone); Resume brings the microphone back.
    c.carol.find("#phone-hold").click();
    c.carol.wait_text("#phone-state", "On hold");
    wait_for(&c.h, c.id, "on_hold");
    c.carol
        .wait_text("#progress-note", "On hold: the customer hears hold music.");
    wait_media(&c.media, "the hold music", |m| {
        m.tone_power(MIC_HZ) < 0.3 && m.power() > 1e6
    });
    c.carol.find("#phone-hold").click();
    c.carol.wait_text("#phone-state", "In call");
    wait_for(&c.h, c.id, "resumed");
    wait_media(&c.media, "the microphone after resume", |m| {
        m.tone_power(MIC_HZ) > 0.5
    });

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
    // The trunk rings and never answers: the callback below stays ringing while the page is
    // on the live call.
    let trunk_port = free_udp_port();
    let trunk = Sipp::uas("phone_no_answer.xml", trunk_port).spawn();
    let h = Hammond::start(Options {
        trunk: Some(SocketAddr::from(([127, 0, 0, 1], trunk_port))),
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

    // A callback booked now is due, and carol is available, but on a call: it is not pushed.
    let run = Sipp::uac("callback_info.xml", h.sip, "support")
        .key("key1", "1")
        .key("key2", "1")
        .run();
    assert_ok(&run);
    let list = http::get(
        h.http,
        "/api/v1/interactions?sub_type=callback&status=open",
        "carol-secret",
    );
    let cb = list.body["interactions"][0]["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no open callback: {}", list.text));
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !carol
            .js("return !document.getElementById('waiting').hidden")
            .as_bool()
            .unwrap_or(true),
        "the router pushed a callback to carol on a call"
    );
    // Taken by carol elsewhere (another tab, the API) while the page is on the call: the page
    // shows it waiting, with Decline, and keeps the call it is on.
    let r = http::post(
        h.http,
        &format!("/api/v1/interactions/{cb}/accept"),
        "carol-secret",
        "{}",
    );
    assert_eq!(r.status, 200, "{}", r.text);
    carol.wait_js(
        "return !document.getElementById('waiting').hidden",
        "the call-waiting alert",
    );
    assert_eq!(carol.text("#phone-state"), "In call");
    carol.find("#waiting-decline").click();
    carol.wait_js(
        "return document.getElementById('waiting').hidden",
        "the call-waiting alert gone",
    );
    // Declined: the callback's agent leg failed, the customer's ringing is cancelled, and the
    // callback is open again, uncounted.
    wait_for(&h, cb, "agent_unreachable");
    assert_ok(&trunk.wait());
    assert_eq!(carol.text("#phone-state"), "In call");

    carol.find("#phone-hangup").click();
    carol.wait_text("#phone-state", "Ready");
    wait_for(&h, id, "hung_up");
    drop(caller);
}

/// Wait (up to 10 s) until what the customer hears satisfies `ok`.
fn wait_media(media: &ToneMedia, what: &str, ok: impl Fn(&ToneMedia) -> bool) {
    let start = Instant::now();
    while !ok(media) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the customer never heard {what}: 1 kHz share {:.2}, power {:.0}",
            media.tone_power(MIC_HZ),
            media.power()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
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
