//! Issue 17, the wallboard in a real browser (chromium over WebDriver, as `browser.rs`): a
//! supervisor signs in at `/supervisor`; a SIPp caller enters the workflow and books a
//! callback, and an agent picks it up; every step shows on the tiles and the agent table
//! without a reload, and today's charts render with the call. Screenshots go to
//! `target/artifacts/` (the README's come from here).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::browser::{CHROMEDRIVER, CHROMIUM, ChromeDriver, CustomerPhone, free_udp_port, which};
use crate::support::sipp::assert_ok;
use crate::support::{Hammond, Options, Sipp, http};

/// A supervisor in no queue (sees them all).
pub(crate) const SUPERVISOR: &str = r#"
[[agents]]
id = "sam"
endpoint = "sip:sam@127.0.0.1:5079"
role = "supervisor"
token = "sam-secret"
"#;

#[test]
fn the_wallboard_follows_a_callback_live() {
    for bin in [CHROMIUM, CHROMEDRIVER, "sipp"] {
        assert!(
            Path::new(bin).exists() || which(bin),
            "{bin} is missing: apt-get install -y chromium chromium-driver sip-tester"
        );
    }
    let trunk_port = free_udp_port();
    let customer = CustomerPhone::start(trunk_port);
    let h = Hammond::start(Options {
        trunk: Some(SocketAddr::from(([127, 0, 0, 1], trunk_port))),
        // A webhook whose receiver is down: its failures show on the wallboard.
        extra_config: format!(
            "{SUPERVISOR}\n[[webhooks]]\nname = \"crm\"\nurl = \"http://127.0.0.1:{}/hooks\"\nevents = [\"*\"]\nsecret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n",
            crate::browser::free_tcp_port()
        ),
        ..Options::default()
    });
    // alice is available: the wallboard shows it.
    let r = http::request(
        h.http,
        "PUT",
        "/api/v1/agents/alice/status",
        Some("sam-secret"),
        Some(r#"{"status": "available"}"#),
    );
    assert_eq!(
        r.status, 200,
        "a supervisor sets alice's presence: {}",
        r.text
    );

    let driver = ChromeDriver::start();
    let sam = driver.session();
    sam.goto(&format!("http://{}/supervisor", h.http));
    sam.wait_js(
        "return !document.getElementById('signin').hidden",
        "the sign-in form",
    );
    sam.find("#token").send_keys("sam-secret");
    sam.find("#signin-form button[type=submit]").click();
    sam.wait_js(
        "return !document.getElementById('board').hidden",
        "the wallboard",
    );
    let tile = |key: &str| format!("#queues .tile[data-queue='support'][data-tile='{key}'] .v");
    sam.wait_text("#conn", "Live");
    sam.wait_text(&tile("in_workflow"), "0");
    sam.wait_text(&tile("open_callbacks"), "0");
    sam.wait_text(&tile("agents_available"), "1");
    sam.wait_text("#agent-rows tr[data-agent='alice'] .c-state", "available");
    // Marks the page: a reload would lose it.
    sam.js("window.__hammondNoReload = 17; return null");

    // A caller enters the workflow (keys by SIP INFO) and books a callback on its number.
    let caller = Sipp::uac("callback_info.xml", h.sip, "support")
        .key("key1", "1")
        .key("key2", "1")
        .spawn();
    sam.wait_text(&tile("in_workflow"), "1");
    sam.screenshot("wallboard-caller-in-workflow.png");
    assert_ok(&caller.wait());
    sam.wait_text(&tile("in_workflow"), "0");
    sam.wait_text(&tile("open_callbacks"), "1");
    sam.wait_text(&tile("callbacks_due"), "1");

    // alice picks it up: the callback is dialled at once, alice is busy with it.
    let list = http::get(
        h.http,
        "/api/v1/interactions?sub_type=callback",
        "sam-secret",
    );
    let id = list.body["interactions"][0]["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no callback: {}", list.text));
    let accepted = http::post(
        h.http,
        &format!("/api/v1/interactions/{id}/accept"),
        "alice-secret",
        "{}",
    );
    assert_eq!(accepted.status, 200, "{}", accepted.text);
    sam.wait_text(&tile("open_callbacks"), "0");
    sam.wait_text("#agent-rows tr[data-agent='alice'] .c-state", "busy");
    sam.wait_text(
        "#agent-rows tr[data-agent='alice'] .c-interaction",
        &format!("#{id} (support)"),
    );
    sam.wait_text(&tile("agents_busy"), "1");

    // Today's charts hold the call: offered in the calls chart, booked in the callbacks one.
    sam.wait_js(
        "return document.querySelector(\"#chart-calls rect[data-series='offered']\") !== null \
         && document.querySelector(\"#chart-callbacks rect[data-series='callbacks_booked']\") !== null",
        "today's call in the charts",
    );
    assert_eq!(
        sam.js("return window.__hammondNoReload"),
        json!(17),
        "the wallboard was reloaded"
    );
    let invite = customer.wait_invite(Duration::from_secs(10));
    assert_eq!(
        invite.as_deref(),
        Some("15551234567"),
        "{}",
        customer.messages()
    );
    // The webhook's receiver never answered: the wallboard says so.
    sam.wait_js(
        "return !document.getElementById('webhook-alert').hidden \
         && document.getElementById('webhook-alert').textContent.startsWith('Webhook crm: retrying')",
        "the failing webhook on the wallboard",
    );
    sam.screenshot("wallboard-webhook-failing.png");
    // The README's picture is of the board itself.
    sam.js("document.getElementById('webhook-alert').hidden = true; return null");
    sam.screenshot("wallboard.png");
    // A wall screen: the same board, larger.
    sam.resize(1920, 1080);
    sam.wait_text(&tile("open_callbacks"), "0");
    sam.screenshot("wallboard-1920.png");
}
