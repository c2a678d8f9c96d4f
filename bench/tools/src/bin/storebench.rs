//! storebench: the store's cost per call, through the `InteractionStore` API only. Each of
//! `--tasks` concurrent tasks plays calls one after another, making the writes a call in the
//! setup scenario makes (create, entered workflow, `--notes` feed notes, call ended), until
//! `--calls` calls are done. Reports calls/s, and the process's CPU time (user + system, every
//! thread: the sqlx worker included, from `getrusage`) per call and per write.
//!
//!   storebench [--db FILE|postgres://…] [--calls 5000] [--tasks 64] [--notes 2]
//!
//! Prints one JSON object on stdout. A database file is removed first (a PostgreSQL database
//! should be empty; the server's own CPU is not in the figures).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hammond::interaction::{Event, HangupBy, Interaction, Note};
use hammond::store::InteractionStore;
use hammond_bench::pct;

fn arg(args: &[String], k: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == k)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_owned())
}

/// User + system CPU of this process (all threads).
fn cpu() -> Duration {
    // SAFETY: getrusage fills one rusage struct through a valid pointer.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

async fn one_call(store: &dyn InteractionStore, n: usize, notes: usize, lat: &mut Vec<Duration>) {
    let now = jiff::Timestamp::now;
    let t = Instant::now();
    let it = store
        .create(Interaction::inbound("bench", &format!("1555{n:07}"), now()))
        .await
        .expect("create");
    lat.push(t.elapsed());
    let mut events = vec![Event::EnteredWorkflow];
    for k in 0..notes {
        events.push(Event::Note(Note::WorkflowStep {
            kind: "prompt",
            text: format!("played prompt {k}"),
        }));
    }
    events.push(Event::CallEnded {
        by: HangupBy::Caller,
        had_callback: false,
        voicemail: false,
        during: Some("bench".into()),
    });
    for e in events {
        let t = Instant::now();
        store.apply(it.id, e, now()).await.expect("apply");
        lat.push(t.elapsed());
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let db = arg(&args, "--db", "/tmp/hammond-storebench.db");
    let calls: usize = arg(&args, "--calls", "5000").parse().expect("--calls");
    let tasks: usize = arg(&args, "--tasks", "64").parse().expect("--tasks");
    let notes: usize = arg(&args, "--notes", "2").parse().expect("--notes");
    let url = if db.starts_with("postgres") {
        db.clone()
    } else {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{db}{suffix}"));
        }
        format!("sqlite://{db}")
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let out = rt.block_on(async move {
        let store = hammond::store::open(&url, "storebench")
            .await
            .expect("open store");
        let next = Arc::new(AtomicUsize::new(0));
        let (c0, t0) = (cpu(), Instant::now());
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let (store, next) = (store.clone(), next.clone());
            handles.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= calls {
                        return lat;
                    }
                    one_call(store.as_ref(), n, notes, &mut lat).await;
                }
            }));
        }
        let mut lat = Vec::new();
        for h in handles {
            lat.extend(h.await.expect("task"));
        }
        let (wall, used) = (t0.elapsed(), cpu() - c0);
        lat.sort_unstable();
        let writes = calls * (notes + 3);
        let ms = |d: Duration| (d.as_secs_f64() * 1e5).round() / 100.0;
        serde_json::json!({
            "calls": calls,
            "tasks": tasks,
            "writes": writes,
            "wall_s": (wall.as_secs_f64() * 1000.0).round() / 1000.0,
            "calls_per_s": (calls as f64 / wall.as_secs_f64()).round(),
            "cpu_s": (used.as_secs_f64() * 1000.0).round() / 1000.0,
            "cpu_us_per_call": (used.as_secs_f64() * 1e6 / calls as f64).round(),
            "cpu_us_per_write": (used.as_secs_f64() * 1e6 / writes as f64).round(),
            "write_p50_ms": ms(pct(&lat, 0.5)),
            "write_p99_ms": ms(pct(&lat, 0.99)),
        })
    });
    println!("{out}");
}
