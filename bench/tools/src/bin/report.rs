//! report: turn bench/run's results file (one JSON object a line:
//! `{"scenario": "...", "step": "...", "result": {...}}`) into one table, with each step's
//! verdict against the targets. `report FILE` prints the table; `report --check KIND FILE`
//! reads one result on stdin-less FILE and exits 0 if that step meets its target (used by
//! bench/run to stop a ramp).

use serde_json::Value;

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// Scenario 1 target: p99 |spacing − 20 ms| ≤ 1 ms, p99.9 ≤ 5 ms, no loss, every call up.
fn media_ok(r: &Value) -> bool {
    let rtp = &r["rtp"];
    r["answered"] == r["calls"]
        && r["remote_bye"] == 0
        && f(&rtp["abs_dev_ms"]["p99"]) <= 1.0
        && f(&rtp["abs_dev_ms"]["p999"]) <= 5.0
        && rtp["lost"] == 0
        && r["udp_socket_drops"] == 0
        && rtp["calls_without_rtp"] == 0
        && rtp["spacings"].as_u64().unwrap_or(0) > 0
}

/// Scenario 2 target: no failed call and no retransmission.
fn setup_ok(r: &Value) -> bool {
    let rt = &r["retransmissions"];
    r["answered"] == r["calls"]
        && r["failed"].as_object().is_none_or(|m| m.is_empty())
        && rt["invite"] == 0
        && rt["ok_200"] == 0
        && rt["bye"] == 0
}

fn cpu(r: &Value, name: &str) -> String {
    format!("{:.1}%", f(&r["procs"][name]["cpu_pct"]))
}

fn row(scenario: &str, r: &Value) -> (String, &'static str) {
    let rtp = &r["rtp"];
    let sp = &rtp["spacing_ms"];
    let dev = &rtp["abs_dev_ms"];
    let media = format!(
        "spacing p50/p99/p99.9/max {:.2}/{:.2}/{:.2}/{:.2} ms, |dev| p99/p99.9 {:.2}/{:.2} ms, lost {}, late {}, pkt/s {:.2}-{:.2}",
        f(&sp["p50"]),
        f(&sp["p99"]),
        f(&sp["p999"]),
        f(&sp["max"]),
        f(&dev["p99"]),
        f(&dev["p999"]),
        rtp["lost"],
        rtp["late_over_40ms"],
        f(&rtp["pps_per_stream"]["min"]),
        f(&rtp["pps_per_stream"]["max"]),
    );
    let procs = |names: &[&str]| {
        names
            .iter()
            .filter(|n| !r["procs"][**n].is_null())
            .map(|n| format!("{n} {}", cpu(r, n)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mem = |name: &str| {
        let p = &r["procs"][name];
        let idle = f(&p["rss_idle_kib"]);
        let peak = f(&p["rss_peak_kib"]);
        let n = f(&r["calls"]);
        format!(
            "RSS {:.1}→{:.1} MiB ({:.1} KiB/call)",
            idle / 1024.0,
            peak / 1024.0,
            (peak - idle) / n
        )
    };
    let udp = format!(
        "UDP drops on our sockets {} (host RcvbufErrors {})",
        r["udp_socket_drops"], r["udp_rcvbuf_errors"]
    );
    match scenario {
        "concurrent" => {
            let ok = media_ok(r);
            (
                format!(
                    "{}/{} up; {}; {}; {media}; {udp}",
                    r["answered"],
                    r["calls"],
                    procs(&["hammond", "callgen"]),
                    mem("hammond")
                ),
                if ok { "PASS" } else { "FAIL" },
            )
        }
        "setup" => {
            let ok = setup_ok(r);
            (
                format!(
                    "{}/{} answered, failed {}, retrans {}, INVITE→200 p50/p99/max {}/{}/{} ms; {}; {udp}",
                    r["answered"],
                    r["calls"],
                    r["failed"],
                    r["retransmissions"],
                    r["setup_ms"]["p50"],
                    r["setup_ms"]["p99"],
                    r["setup_ms"]["max"],
                    procs(&["hammond", "callgen"])
                ),
                if ok { "PASS" } else { "FAIL" },
            )
        }
        "dtmf" => {
            let d = &r["dtmf_to_prompt_ms"];
            let ok = d["n"] == r["calls"];
            (
                format!(
                    "key → next prompt p50/p99/max {}/{}/{} ms over {} keys; {udp}",
                    d["p50"], d["p99"], d["max"], d["n"]
                ),
                if ok { "ok" } else { "MISSING" },
            )
        }
        "cost" => {
            let name = if r["procs"]["sipp"].is_null() {
                "hammond"
            } else {
                "sipp"
            };
            let n = f(&r["calls"]);
            let per = f(&r["procs"][name]["cpu_pct"]) / 100.0 / n * 1000.0;
            (
                format!(
                    "{name}: {} at {} calls = {per:.3} CPU-ms per call-second; {}; lost {}; {udp}",
                    cpu(r, name),
                    r["calls"],
                    mem(name),
                    rtp["lost"]
                ),
                "",
            )
        }
        "homelist" => {
            let s = |k: &str| {
                let v = &r[k];
                if v.is_null() {
                    String::new()
                } else {
                    format!(
                        "{k} p50/p99 {}/{} ms{}; ",
                        v["p50_ms"],
                        v["p99_ms"],
                        if v["rows"].is_null() {
                            String::new()
                        } else {
                            format!(" ({} rows)", v["rows"])
                        }
                    )
                }
            };
            (
                format!(
                    "{}{}{}{}{}{}{}",
                    s("list_default_page"),
                    s("list_1000"),
                    s("list_open_callbacks"),
                    s("accept"),
                    s("accept_to_invite"),
                    s("callback_confirm_write"),
                    s("create")
                ),
                "",
            )
        }
        _ => (r.to_string(), ""),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--check") {
        let kind = args.get(2).cloned().unwrap_or_default();
        let text =
            std::fs::read_to_string(args.get(3).cloned().unwrap_or_default()).unwrap_or_default();
        let r: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let ok = match kind.as_str() {
            "concurrent" => media_ok(&r),
            "setup" => setup_ok(&r),
            "smoke" => {
                r["answered"] == r["calls"]
                    && r["remote_bye"] == 0
                    && r["rtp"]["lost"] == 0
                    && r["rtp"]["calls_without_rtp"] == 0
                    && r["rtp"]["spacings"].as_u64().unwrap_or(0) > 0
            }
            _ => false,
        };
        std::process::exit(if ok { 0 } else { 1 });
    }
    let Some(path) = args.get(1) else {
        eprintln!(
            "usage: report RESULTS.jsonl | report --check concurrent|setup|smoke RESULT.json"
        );
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(path).unwrap_or_default();
    println!("| scenario | step | figures | verdict |");
    println!("|---|---|---|---|");
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let scenario = v["scenario"].as_str().unwrap_or("?");
        let step = v["step"].as_str().unwrap_or("");
        let (figures, verdict) = row(scenario, &v["result"]);
        println!("| {scenario} | {step} | {figures} | {verdict} |");
    }
}
