//! The PURE layers stay pure: no runtime, sockets, async or clock reads (STYLE §1, §3).
//! Shell code lives in `src/rt`, `src/api`, `src/store`, `src/app.rs`, `src/cli.rs`.

use std::path::Path;

use crate::support::hammond::repo;

const PURE: &[&str] = &[
    "src/call",
    "src/sip",
    "src/media",
    "src/workflow",
    "src/interaction",
    "src/config",
    "src/queue",
];
const FORBIDDEN: &[&str] = &[
    "tokio",
    "async fn",
    "UdpSocket",
    "TcpStream",
    "Instant::now",
    "SystemTime::now",
    "thread_rng",
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn pure_modules_mention_no_runtime_sockets_or_clocks() {
    let mut offences = Vec::new();
    for dir in PURE {
        let mut files = Vec::new();
        rust_files(&repo().join(dir), &mut files);
        assert!(!files.is_empty(), "{dir} has no files");
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for word in FORBIDDEN {
                    if code.contains(word) {
                        offences.push(format!("{}:{}: {word}", f.display(), n + 1));
                    }
                }
            }
        }
    }
    assert!(
        offences.is_empty(),
        "PURE modules reach for the shell:\n{}",
        offences.join("\n")
    );
}

/// Every prompt id a shipped queue file uses exists in `prompts/manifest.toml` (STYLE §4).
#[test]
fn shipped_queue_files_and_configs_load() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hammond"))
        .args(["check-config", "--config"])
        .arg(repo().join("config/hammond.toml"))
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
