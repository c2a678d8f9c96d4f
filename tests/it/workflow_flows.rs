//! Issue "Timed workflow" end to end: SIPp callers move through the example queue.

use crate::support::sipp::assert_ok;
use crate::support::{Hammond, Options, Sipp, http};

/// The caller presses 1 (callback) then 1 (this number) by SIP INFO; Hammond reads the number
/// back, stores the callback, confirms and hangs up. The interaction is open/callback.
#[test]
fn callback_on_the_callers_number_by_info() {
    let h = Hammond::start(Options::default());
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
    let items = list.body["interactions"].as_array().expect("list").clone();
    assert_eq!(items.len(), 1, "{}", list.text);
    let i = &items[0];
    assert_eq!(i["status"], "open", "{i}");
    assert_eq!(i["sub_type"], "callback", "{i}");
    assert_eq!(i["callback"]["number"], "15551234567", "{i}");
    let id = i["id"].as_i64().unwrap();
    let detail = http::get(
        h.http,
        &format!("/api/v1/interactions/{id}"),
        "alice-secret",
    );
    let kinds: Vec<String> = detail.body["feed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
        .collect();
    for k in ["dtmf", "callback_requested"] {
        assert!(kinds.iter().any(|x| x == k), "feed lacks {k}: {kinds:?}");
    }
    let dtmf: Vec<&serde_json::Value> = detail.body["feed"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "dtmf")
        .collect();
    assert_eq!(dtmf.len(), 2, "{dtmf:?}");
    assert_eq!(dtmf[0]["method"], "info");
    assert_eq!(dtmf[0]["digit"], "1");
}
