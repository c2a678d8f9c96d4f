//! Issue 19, operations: a store that refuses writes (here another process holds the SQLite
//! write lock; a full or read-only disk fails the same way, only at once) makes Hammond fail
//! fast and say so, instead of holding callers in silence.

use std::time::{Duration, Instant};

use crate::support::hammond::{Hammond, Options};
use crate::support::http;
use crate::support::sipp::{Sipp, assert_ok};

/// With the database locked: `/healthz` is 503 with a store problem (it used to check a read
/// only, and said ok), and a new call is refused 500 within a few seconds (its interaction
/// could not be recorded; it used to get only 100 Trying while the store retried). Once the
/// lock goes, both are healthy again.
#[test]
fn a_store_that_refuses_writes_fails_calls_fast_and_healthz_says_so() {
    let h = Hammond::start(Options::default());
    assert_eq!(
        http::request(h.http, "GET", "/healthz", None, None).status,
        200
    );
    let lock = rusqlite::Connection::open(h.data_dir.join("hammond.db")).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();

    let health = http::request(h.http, "GET", "/healthz", None, None);
    assert_eq!(health.status, 503, "{}", health.text);
    assert!(
        health.body["problems"][0]
            .as_str()
            .is_some_and(|p| p.starts_with("store: ")),
        "{}",
        health.text
    );

    let t0 = Instant::now();
    let run = Sipp::uac("refused_500.xml", h.sip, "support").run();
    let took = t0.elapsed();
    assert_ok(&run);
    assert!(
        took < Duration::from_secs(6),
        "the 500 took {took:?}\n{}",
        h.log()
    );

    drop(lock);
    assert_eq!(
        http::request(h.http, "GET", "/healthz", None, None).status,
        200
    );
}
