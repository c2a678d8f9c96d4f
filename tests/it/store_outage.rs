//! Issue 19, operations: a store that refuses writes (here another process holds the SQLite
//! write lock; a full or read-only disk fails the same way, only at once) makes Hammond fail
//! fast and say so, instead of holding callers in silence; a PostgreSQL outage (issue 20) never
//! confirms a callback, and Hammond reconnects by itself.

use std::time::{Duration, Instant};

use crate::support::hammond::{Hammond, Options};
use crate::support::http;
use crate::support::pg::{PgDb, PgProxy, PgTlsServer};
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

    // Issue 17: the refused write is counted, for the store-writes-failing alert.
    let metrics = http::request(h.http, "GET", "/metrics", None, None).text;
    let failures: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hammond_store_write_failures_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no write failure counter:\n{metrics}"));
    assert!(failures >= 1.0, "{failures}");

    drop(lock);
    assert_eq!(
        http::request(h.http, "GET", "/healthz", None, None).status,
        200
    );
}

/// Issue 20, item 4: PostgreSQL goes away (here a front between Hammond and the server is cut).
/// A call in progress keeps playing (its caller is not hung up on); a caller who books a
/// callback during the outage is never told it is booked: it hears an apology and keeps
/// waiting; `/healthz` says 503 with a store problem; new calls are refused fast. When the
/// server is back, Hammond reconnects by itself: healthy again, and a booking goes through.
#[test]
fn a_postgresql_outage_never_confirms_a_callback_and_hammond_reconnects_by_itself() {
    let Some(db) = PgDb::new(
        "store_outage::a_postgresql_outage_never_confirms_a_callback_and_hammond_reconnects_by_itself",
    ) else {
        return;
    };
    let proxy = PgProxy::start(&db);
    let h = Hammond::start(Options {
        store_url: Some(proxy.url()),
        ..Options::default()
    });
    let health = || http::request(h.http, "GET", "/healthz", None, None);
    assert_eq!(health().status, 200, "{}", health().text);

    // Two callers in the workflow before the outage; one asks for a callback in it.
    let talking = Sipp::uac("caller_waits.xml", h.sip, "support")
        .args(&["-d", "12000"])
        .spawn();
    let booking = Sipp::uac("callback_then_waits.xml", h.sip, "support")
        .args(&["-d", "4000"])
        .key("key1", "1")
        .key("key2", "1")
        .spawn();
    std::thread::sleep(Duration::from_millis(2000));
    proxy.cut();
    let t0 = Instant::now();
    loop {
        let r = health();
        if r.status == 503 {
            assert!(r.text.contains("store"), "{}", r.text);
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "still {}", r.text);
        std::thread::sleep(Duration::from_millis(200));
    }
    let refused = Sipp::uac("refused_500.xml", h.sip, "support").run();
    assert_ok(&refused);
    assert!(
        t0.elapsed() < Duration::from_secs(16),
        "the 500 took too long"
    );

    // The booking caller was not hung up on (no "booked, goodbye"): it heard the apology and
    // stayed 10 s more, then hung up itself; the other caller's call went on to its end.
    let booking = booking.wait();
    assert_ok(&booking);
    assert_ok(&talking.wait());
    assert!(h.log().contains("callback not stored"), "{}", h.log());

    proxy.restore();
    let t1 = Instant::now();
    while health().status != 200 {
        assert!(
            t1.elapsed() < Duration::from_secs(20),
            "not reconnected: {}\n{}",
            health().text,
            h.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
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
    assert_eq!(
        list.body["interactions"].as_array().unwrap().len(),
        1,
        "{}",
        list.text
    );
}

/// A database on another host is reached over TLS: `[store] url` with `sslmode=verify-full`
/// and the server's CA in `sslrootcert` (a server of the test's own, on a loopback TCP port,
/// with a certificate from a test CA). Hammond starts, is healthy, stores a booking, and every
/// connection it holds to the server is encrypted.
#[test]
fn a_postgresql_store_over_tls_with_the_servers_certificate_checked() {
    let pki = crate::support::pki::make("Hammond test database CA", &["127.0.0.1"]);
    let Some(server) = PgTlsServer::start(
        "store_outage::a_postgresql_store_over_tls_with_the_servers_certificate_checked",
        &pki,
    ) else {
        return;
    };
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/postgres?sslmode=verify-full&sslrootcert={}",
        server.port,
        pki.ca.display()
    );
    let h = Hammond::start(Options {
        store_url: Some(url),
        ..Options::default()
    });
    let health = http::request(h.http, "GET", "/healthz", None, None);
    assert_eq!(health.status, 200, "{}", health.text);
    let run = Sipp::uac("callback_info.xml", h.sip, "support")
        .key("key1", "1")
        .key("key2", "1")
        .run();
    assert_ok(&run);
    let ssl = server.query(
        "SELECT s.ssl::text FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.client_addr IS NOT NULL",
    );
    assert!(!ssl.is_empty(), "Hammond holds no TCP connection");
    assert!(ssl.iter().all(|s| s == "true"), "{ssl:?}");
    let booked = server.query("SELECT status FROM interactions WHERE sub_type = 'callback'");
    assert_eq!(booked, ["open"]);
}
