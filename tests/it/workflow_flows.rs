//! Issue "Timed workflow" end to end: SIPp callers move through the example queue.

use std::process::Command;
use std::time::Duration;

use crate::support::api::{self, E2E_TOKEN, e2e_options};
use crate::support::hammond::repo;
use crate::support::sipp::{assert_ok, pcap};
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
    // The metrics saw the keys and the responses.
    let m = http::request(h.http, "GET", "/metrics", None, None).text;
    assert!(
        m.contains("hammond_dtmf_digits_total{method=\"info\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("hammond_sip_responses_total{code=\"180\"}"),
        "{m}"
    );
    assert!(m.contains("hammond_interactions"), "{m}");
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

/// 1 (callback), 2 (another number), 15557654321, #, then 1 to confirm, as RFC 4733 events from
/// a capture: the callback is stored for the entered number, not the caller ID.
#[test]
fn callback_on_another_number() {
    let h = Hammond::start(e2e_options());
    let run = Sipp::uac_template(
        "pcap_until_bye.xml",
        h.sip,
        "e2e",
        &[("PCAP", &pcap("rfc4733_other_number.pcap"))],
    )
    .run();
    assert_ok(&run);
    let d = api::wait_single(&h, E2E_TOKEN, |d| d["status"] == "open");
    assert_eq!(d["sub_type"], "callback", "{d:#}");
    assert_eq!(d["callback"]["number"], "15557654321", "{d:#}");
    assert_eq!(d["customer_number"], "15551234567", "{d:#}");
    let keys: String = api::dtmf(&d).iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, "1215557654321#1", "{d:#}");
    let entered = api::feed_of(&d, "number_entered");
    assert_eq!(entered.len(), 1, "{d:#}");
    assert!(
        entered[0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("15557654321"),
        "{d:#}"
    );
}

/// A second callback request for a number that already has one pending: the caller hears
/// "already scheduled" and is hung up on; still only one pending callback.
#[test]
fn duplicate_callback_is_refused() {
    let h = Hammond::start(e2e_options());
    for _ in 0..2 {
        let run = Sipp::uac("callback_info.xml", h.sip, "e2e")
            .key("key1", "1")
            .key("key2", "1")
            .run();
        assert_ok(&run);
    }
    let start = std::time::Instant::now();
    let (first, second) = loop {
        let all = api::list(&h, E2E_TOKEN, "");
        assert_eq!(all.len(), 2, "{all:#?}");
        let d: Vec<_> = all
            .iter()
            .map(|i| api::detail(&h, E2E_TOKEN, i["id"].as_i64().unwrap()))
            .collect();
        if api::closed_reason(&d[1]).is_some() || start.elapsed() > Duration::from_secs(5) {
            break (d[0].clone(), d[1].clone());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(first["status"], "open", "{first:#}");
    assert_eq!(first["sub_type"], "callback", "{first:#}");
    assert_eq!(second["status"], "closed", "{second:#}");
    assert_ne!(second["sub_type"], "callback", "{second:#}");
    let refused = api::feed_of(&second, "callback_refused");
    assert_eq!(refused.len(), 1, "{second:#}");
    assert!(
        refused[0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("already"),
        "{second:#}"
    );
    let pending = api::list(&h, E2E_TOKEN, "sub_type=callback&status=open");
    assert_eq!(pending.len(), 1, "{pending:#?}");
}

/// The caller hangs up in the middle of entering another number: the interaction closes
/// `abandoned` and the feed says where.
#[test]
fn caller_hangs_up_before_confirming() {
    let h = Hammond::start(e2e_options());
    let run = Sipp::uac_template(
        "pcap_then_hangup.xml",
        h.sip,
        "e2e",
        &[
            ("PCAP", &pcap("rfc4733_entry_abandoned.pcap")),
            ("PAUSE_MS", "4500"),
        ],
    )
    .run();
    assert_ok(&run);
    let d = api::wait_single(&h, E2E_TOKEN, |d| d["status"] == "closed");
    assert_eq!(
        api::closed_reason(&d).as_deref(),
        Some("abandoned"),
        "{d:#}"
    );
    assert_ne!(d["sub_type"], "callback", "{d:#}");
    let ended = api::feed_of(&d, "call_ended");
    assert_eq!(ended.len(), 1, "{d:#}");
    assert_eq!(ended[0]["during"], "callback number entry", "{d:#}");
    assert!(
        ended[0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("callback number entry"),
        "{d:#}"
    );
}

/// 3 = voicemail: after the beep the caller's audio (from a capture) is recorded for the
/// queue's 3 s maximum, Hammond says goodbye and hangs up, and a playable WAV is left.
#[test]
fn voicemail_leaves_a_playable_wav() {
    let h = Hammond::start(e2e_options());
    let run = Sipp::uac_template(
        "pcap_until_bye.xml",
        h.sip,
        "e2e",
        &[("PCAP", &pcap("voicemail.pcap"))],
    )
    .run();
    assert_ok(&run);
    let d = api::wait_single(&h, E2E_TOKEN, |d| d["status"] != "bot");
    assert_eq!(d["sub_type"], "voicemail", "{d:#}");
    assert_eq!(d["status"], "open", "{d:#}");
    let id = d["id"].as_i64().unwrap();
    let path = h.data_dir.join("voicemail").join(format!("{id}.wav"));
    let start = std::time::Instant::now();
    while !path.exists() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let wav = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(wav.len() > 44, "{} bytes", wav.len());
    assert_eq!(&wav[0..4], b"RIFF");
    assert_eq!(&wav[8..12], b"WAVE");
    assert_eq!(&wav[12..16], b"fmt ");
    let u16_at = |i: usize| u16::from_le_bytes([wav[i], wav[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([wav[i], wav[i + 1], wav[i + 2], wav[i + 3]]);
    assert_eq!(u16_at(20), 1, "PCM");
    assert_eq!(u16_at(22), 1, "mono");
    assert_eq!(u32_at(24), 8000, "8 kHz");
    assert_eq!(u16_at(34), 16, "16-bit");
    assert_eq!(u32_at(4) as usize, wav.len() - 8, "RIFF size");
    // The data chunk: ~3 s (the queue's max_length) of the caller's audio, not silence.
    let data = wav
        .windows(4)
        .position(|w| w == b"data")
        .expect("a data chunk");
    let len = u32_at(data + 4) as usize;
    let samples: Vec<i16> = wav[data + 8..data + 8 + len]
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    let secs = samples.len() as f64 / 8000.0;
    assert!((2.0..=3.5).contains(&secs), "{secs:.2} s recorded");
    let loud = samples.iter().filter(|s| s.unsigned_abs() > 1000).count();
    assert!(
        loud > samples.len() / 4,
        "the recording holds the caller's audio ({loud} of {} samples loud)",
        samples.len()
    );
    // Issue 21: the queue's agents hear it through the API, byte for byte.
    let (head, served) = raw_get(
        h.http,
        &format!("/api/v1/interactions/{id}/voicemail"),
        E2E_TOKEN,
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: audio/wav"),
        "{head}"
    );
    assert!(
        served == wav,
        "the API serves the recorded file ({} bytes, {} on disk)",
        served.len(),
        wav.len()
    );
}

/// `GET path` with a bearer token, answered whole: the head (status line and headers) and the
/// body's bytes (binary bodies: `http::get` reads text).
fn raw_get(addr: std::net::SocketAddr, path: &str, token: &str) -> (String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let split = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&all[..split]).into_owned();
    (head, all[split + 4..].to_vec())
}

/// An offer that lists PCMA first is answered with PCMA.
#[test]
fn pcma_first_offer_is_answered_with_pcma() {
    let h = Hammond::start(Options::default());
    let sink = crate::support::rtp::RtpSink::start();
    let run = Sipp::uac("rtp_sink.xml", h.sip, "support")
        .key("rtp_port", &sink.port.to_string())
        .key("codecs", "8 0 101")
        .run();
    drop(sink.finish());
    assert_ok(&run);
    let answer = run
        .messages
        .split("\n-----")
        .find(|b| {
            b.contains("message received") && b.contains("SIP/2.0 200 OK") && b.contains("m=audio")
        })
        .expect("a 200 OK with SDP");
    let m = answer
        .lines()
        .find(|l| l.starts_with("m=audio"))
        .unwrap_or_default();
    assert!(
        m.ends_with("RTP/AVP 8 101") || m.ends_with("RTP/AVP 8"),
        "{m}"
    );
}

/// An offer with no codec Hammond speaks (G.729 only) is refused with 488, and nothing is kept.
#[test]
fn no_common_codec_is_refused_488() {
    let h = Hammond::start(Options::default());
    let run = Sipp::uac("no_common_codec.xml", h.sip, "support").run();
    assert_ok(&run);
    assert_eq!(run.received("SIP/2.0 488"), 1, "{}", run.messages);
    assert_eq!(run.received("SIP/2.0 180"), 0, "{}", run.messages);
    assert!(api::list(&h, "alice-secret", "").is_empty());
}

/// `hammond check-config` on a config whose queue directory holds a broken file: exit 1 and a
/// `file:line:column` diagnostic.
#[test]
fn check_config_reports_file_line_column() {
    let dir = tempfile::tempdir().unwrap();
    let queues = dir.path().join("queues");
    std::fs::create_dir_all(&queues).unwrap();
    std::fs::copy(
        repo().join("config/queues/support.toml"),
        queues.join("support.toml"),
    )
    .unwrap();
    std::fs::copy(
        repo().join("tests/data/queues/broken_syntax.toml"),
        queues.join("broken_syntax.toml"),
    )
    .unwrap();
    let cfg = dir.path().join("hammond.toml");
    std::fs::write(
        &cfg,
        format!(
            "[queues]\ndir = \"{}\"\n[prompts]\ndir = \"{}\"\n",
            queues.display(),
            repo().join("prompts").display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hammond"))
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    let want = format!("{}:2:1:", queues.join("broken_syntax.toml").display());
    assert!(text.contains(&want), "expected {want} in:\n{text}");
    // The good queue is not blamed.
    assert!(!text.contains("support.toml"), "{text}");
}

/// `hammond simulate --queue support --keys 35s:1,38s:1`: greeting, menu, callback menu, the
/// caller ID read back, the callback stored and confirmed, then Hammond hangs up.
#[test]
fn simulate_prints_a_sane_transcript() {
    let out = Command::new(env!("CARGO_BIN_EXE_hammond"))
        .current_dir(repo())
        .args(["simulate", "--config", "config/hammond.toml"])
        .args(["--queue", "support", "--keys", "35s:1,38s:1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let order = [
        "answered (200 OK)",
        "hears greeting",
        "hears menu",
        "00:35                caller presses 1",
        "hears callback_menu",
        "00:38                caller presses 1",
        "hears number_is",
        "callback requested for",
        "callback stored",
        "hears callback_confirmed",
        "Hammond hangs up",
    ];
    let mut at = 0;
    for needle in order {
        let i = text[at..]
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} missing (or out of order) in:\n{text}"));
        at += i + needle.len();
    }
    // Nothing happens after the hang-up.
    assert!(!text[at..].contains("hears"), "{text}");
}

/// 0 = transfer to the operator: Hammond sends REFER to the PBX (the SIPp caller), which
/// accepts (202) and reports success (NOTIFY `SIP/2.0 200 OK`); Hammond hangs up and the
/// interaction closes `transferred`.
#[test]
fn transfer_by_refer_closes_transferred() {
    let h = Hammond::start(e2e_options());
    let run = Sipp::uac("transfer_refer.xml", h.sip, "e2e").run();
    assert_ok(&run);
    let d = api::wait_single(&h, E2E_TOKEN, |d| d["status"] == "closed");
    assert_eq!(
        api::closed_reason(&d).as_deref(),
        Some("transferred"),
        "{d:#}"
    );
    assert_eq!(api::dtmf(&d), vec![("0".to_owned(), "info".to_owned())]);
    assert_eq!(api::feed_of(&d, "transfer_started").len(), 1, "{d:#}");
}

/// Issue 21: every `hammond check-config` / `hammond simulate` command the README and the
/// shipped queue files show is run as written (from the repository root) and succeeds; the
/// one in `support.toml` once said `--until`, a flag that does not exist.
#[test]
fn every_command_the_readme_and_shipped_files_show_runs() {
    let mut files = vec![repo().join("README.md")];
    for e in std::fs::read_dir(repo().join("config/queues")).unwrap() {
        files.push(e.unwrap().path());
    }
    let mut ran = 0;
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for line in text.lines() {
            let line = line.trim_start_matches(['#', ' ']);
            if !(line.starts_with("hammond check-config") || line.starts_with("hammond simulate")) {
                continue;
            }
            // The command without its trailing comment, split as a shell would (quotes).
            let cmd = line.split(" #").next().unwrap_or(line);
            let mut args: Vec<String> = Vec::new();
            let mut quoted = false;
            let mut cur = String::new();
            for c in cmd.chars() {
                match c {
                    '"' => quoted = !quoted,
                    ' ' if !quoted => {
                        if !cur.is_empty() {
                            args.push(std::mem::take(&mut cur));
                        }
                    }
                    c => cur.push(c),
                }
            }
            if !cur.is_empty() {
                args.push(cur);
            }
            let out = Command::new(env!("CARGO_BIN_EXE_hammond"))
                .current_dir(repo())
                .args(&args[1..])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: `{cmd}` failed:\n{}{}",
                f.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            ran += 1;
        }
    }
    assert!(ran >= 3, "found only {ran} commands");
}

/// The command lines of the README's `sh` blocks, as written: comments and blank lines aside.
fn readme_shell_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let mut out = Vec::new();
    let mut in_sh = false;
    for line in readme.lines() {
        if let Some(tag) = line.strip_prefix("```") {
            in_sh = !in_sh && matches!(tag.trim(), "sh" | "bash" | "shell" | "console");
            continue;
        }
        let cmd = line.split(" # ").next().unwrap_or(line).trim();
        if in_sh && !cmd.is_empty() && !cmd.starts_with('#') {
            out.push(cmd.to_owned());
        }
    }
    out
}

/// A command line split as a shell would (single and double quotes; no expansions).
fn shell_words(cmd: &str) -> Vec<String> {
    let (mut words, mut cur, mut quote) = (Vec::new(), String::new(), None);
    for c in cmd.chars() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ' ') => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            (_, c) => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// Issue 21: every command the README's shell blocks show is run by a test. The quick start
/// and "Try it" run here as written, against the shipped `config/hammond.toml`: `cargo run
/// --release -- run …` as the binary it builds (this test's), on ports of its own and in a
/// directory of its own (`config/` and `prompts/` linked in, so `data/` is not the
/// repository's); the `sipp` caller, and `curl` for the Home List, which shows that call.
/// `check-config` and `simulate` run in `every_command_the_readme_and_shipped_files_show_runs`;
/// `./scripts/test` is what CI runs (`.ci/run`, checked here); the Docker deployment needs
/// Docker, and `deploy_files.rs` checks the files it uses without it. A command the README
/// gains fails this test until a test runs it.
#[test]
fn the_readmes_quick_start_and_try_it_commands_run() {
    let cmds = readme_shell_commands();
    let (mut start, mut sipp, mut curl) = (None, None, None);
    for c in &cmds {
        if c.starts_with("cargo run --release -- run ") {
            start = Some(c.clone());
        } else if c.starts_with("sipp ") {
            sipp = Some(c.clone());
        } else if c.starts_with("curl ") {
            curl = Some(c.clone());
        } else if c == "./scripts/test" {
            let ci = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
            assert!(ci.lines().any(|l| l.trim() == "./scripts/test"), "{ci}");
        } else {
            let elsewhere = c.starts_with("hammond check-config ")
                || c.starts_with("hammond simulate ")
                || c.starts_with("export HAMMOND_")
                || c.starts_with("$EDITOR deploy/")
                || c.starts_with("docker compose -f deploy/docker-compose.yml ");
            assert!(elsewhere, "the README shows `{c}`, which no test runs");
        }
    }
    let (start, sipp, curl) = (
        start.expect("the README's quick start"),
        sipp.expect("the README's sipp caller"),
        curl.expect("the README's curl"),
    );

    // `cargo run --release -- run --config config/hammond.toml`.
    let dir = tempfile::tempdir().unwrap();
    for d in ["config", "prompts"] {
        std::os::unix::fs::symlink(repo().join(d), dir.path().join(d)).unwrap();
    }
    let args: Vec<String> = start
        .split_once(" -- ")
        .map(|(_, a)| shell_words(a))
        .unwrap();
    let rtp = crate::support::ports::block(64);
    let mut child = Command::new(env!("CARGO_BIN_EXE_hammond"))
        .current_dir(dir.path())
        .args(&args)
        .env("HAMMOND_SIP_LISTEN", "127.0.0.1:0")
        .env("HAMMOND_HTTP_LISTEN", "127.0.0.1:0")
        .env("HAMMOND_MEDIA_RTP_PORTS", format!("{rtp}-{}", rtp + 62))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let _child = Kill(child);
    // Read on to the end, so its later output never meets a closed pipe.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
            if line.starts_with("hammond ready: ") {
                let _ = tx.send(line);
            }
        }
    });
    let ready = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("hammond ready on the shipped config");
    let addr = |name: &str| -> String {
        ready
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name}= in {ready:?}"))
            .to_owned()
    };
    let (sip, web) = (addr("sip"), addr("http"));

    // `sipp 127.0.0.1:5060 -sf tests/sipp/caller_hangs_up.xml …`, to this instance, from a
    // SIP and media port of its own.
    let mut words = shell_words(&sipp.replace("127.0.0.1:5060", &sip));
    let (port, media) = (
        crate::support::ports::one(),
        crate::support::ports::block(4),
    );
    words.extend(
        [
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-mp",
            &media.to_string(),
        ]
        .map(str::to_owned),
    );
    let out = Command::new(&words[0])
        .current_dir(repo())
        .args(&words[1..])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "`{sipp}` failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // `curl -H 'Authorization: Bearer alice-secret' http://127.0.0.1:8080/api/v1/interactions`:
    // the Home List has that caller.
    let words = shell_words(&curl.replace("127.0.0.1:8080", &web));
    let out = Command::new(&words[0])
        .args(&words[1..])
        .args(["--silent", "--show-error", "--fail"])
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "`{curl}` failed: {body}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    let items = list["interactions"].as_array().expect("a list");
    assert_eq!(items.len(), 1, "{list:#}");
    assert_eq!(items[0]["customer_number"], "15551234567", "{list:#}");
    assert_eq!(items[0]["queue"], "support", "{list:#}");
}
