//! The shipped deployment files (`Dockerfile`, `deploy/`), checked without Docker: the config
//! the compose file mounts passes `hammond check-config` with the environment compose gives each
//! instance, the instances differ only where the README says they may, the dispatcher list and
//! the health checks name the instances' ports, Kamailio accepts the compose command's defines,
//! and the image's health check keeps a Hammond whose queue reload was refused alive.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::hammond::repo;
use crate::support::kamailio;
use crate::support::{Hammond, Options, http};

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The lines of service `name`'s block in the compose file (indented under `services:`).
fn service<'a>(compose: &'a str, name: &str) -> Vec<&'a str> {
    let header = format!("  {name}:");
    compose
        .lines()
        .skip_while(|l| *l != header)
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with("    ") || l.starts_with("   #"))
        .collect()
}

/// Compose's `${VAR:?msg}` / `${VAR:-default}` / `${VAR}` filled from `vars` (else the default,
/// else empty).
fn interpolate(s: &str, vars: &BTreeMap<&str, &str>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let end = rest[at..].find('}').expect("closed ${") + at;
        let inner = &rest[at + 2..end];
        let (name, default) = match inner.find([':', '-']) {
            Some(i) if inner[i..].starts_with(":-") => (&inner[..i], &inner[i + 2..]),
            Some(i) => (&inner[..i], ""),
            None => (inner, ""),
        };
        out.push_str(vars.get(name).copied().unwrap_or(default));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// A site's answers to the compose file's questions.
fn site() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        ("HAMMOND_PUBLIC_IP", "192.0.2.10"),
        ("HAMMOND_PBX_NETS", "192.0.2.0/24,198.51.100.7/32"),
        ("HAMMOND_DB_PASSWORD", "s3cret"),
    ])
}

/// The `HAMMOND_*` environment compose gives service `name`.
fn environment(compose: &str, name: &str) -> BTreeMap<String, String> {
    let vars = site();
    service(compose, name)
        .iter()
        .skip_while(|l| l.trim() != "environment:")
        .skip(1)
        .take_while(|l| l.starts_with("      "))
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.trim().split_once(": "))
        .map(|(k, v)| (k.to_owned(), interpolate(v.trim_matches('"'), &vars)))
        .collect()
}

fn check_config(env: &BTreeMap<String, String>) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hammond"))
        .args(["check-config", "--config", "deploy/hammond.toml"])
        .current_dir(repo())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env)
        .output()
        .unwrap()
}

/// The port of an `address:port`.
fn port(addr: &str) -> &str {
    addr.rsplit_once(':').map(|(_, p)| p).unwrap_or_default()
}

#[test]
fn compose_instances_pass_check_config_and_differ_only_in_ports() {
    let compose = read("deploy/docker-compose.yml");
    let a = environment(&compose, "hammond-a");
    let b = environment(&compose, "hammond-b");
    for (name, env) in [("hammond-a", &a), ("hammond-b", &b)] {
        let out = check_config(env);
        assert!(
            out.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            env["HAMMOND_STORE_URL"].starts_with("postgres://hammond:s3cret@"),
            "{env:?}"
        );
    }
    // Only the ports differ.
    let differ: Vec<&String> = a.keys().filter(|k| a[*k] != b[*k]).collect();
    assert_eq!(
        differ,
        [
            "HAMMOND_HTTP_LISTEN",
            "HAMMOND_MEDIA_RTP_PORTS",
            "HAMMOND_SIP_LISTEN"
        ],
        "{a:?}\n{b:?}"
    );
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    // Kamailio's dispatcher list names both SIP ports; each health check asks its own HTTP port.
    let list = read("deploy/kamailio/dispatcher.list");
    for (name, env) in [("hammond-a", &a), ("hammond-b", &b)] {
        let sip = format!("sip:127.0.0.1:{}", port(&env["HAMMOND_SIP_LISTEN"]));
        assert!(
            list.lines()
                .any(|l| !l.starts_with('#') && l.contains(&sip)),
            "{sip} not in dispatcher.list"
        );
        let check = service(&compose, name)
            .into_iter()
            .find(|l| l.contains("\"alive\""))
            .expect("a health check");
        assert!(
            check.contains(&format!("127.0.0.1:{}", port(&env["HAMMOND_HTTP_LISTEN"]))),
            "{name}: {check}"
        );
    }
    // The RTP ranges do not overlap (both instances advertise the host's address).
    let range = |env: &BTreeMap<String, String>| -> (u32, u32) {
        let (lo, hi) = env["HAMMOND_MEDIA_RTP_PORTS"].split_once('-').unwrap();
        (lo.parse().unwrap(), hi.parse().unwrap())
    };
    let (ra, rb) = (range(&a), range(&b));
    assert!(ra.1 < rb.0 || rb.1 < ra.0, "{ra:?} {rb:?}");
}

/// The image's default config names no address of its own: without HAMMOND_SIP_PUBLIC_ADDRESS
/// it does not start (it used to advertise 127.0.0.1 in SDP), and it has no agent (no token
/// anyone knows).
#[test]
fn image_config_needs_a_public_address_and_has_no_example_agent() {
    let out = check_config(&BTreeMap::new());
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("HAMMOND_SIP_PUBLIC_ADDRESS"), "{text}");
    let cfg = read("deploy/hammond.toml");
    assert!(
        !cfg.lines()
            .any(|l| l.trim_start().starts_with("[[agents]]")),
        "an agent in the image's config"
    );
    assert!(!cfg.contains("secret\""), "a secret in the image's config");
    let dockerfile = read("Dockerfile");
    assert!(
        dockerfile.contains("COPY deploy/hammond.toml /etc/hammond/hammond.toml"),
        "the image's config"
    );
    assert!(
        !dockerfile.contains("COPY config/ ") && !dockerfile.contains("config/hammond.toml\"]"),
        "the example config is baked in"
    );
    assert!(dockerfile.contains("HEALTHCHECK"));
}

/// The compose file's Kamailio command (its `-A` defines, the site's answers filled in) and the
/// image's entrypoint define, on the shipped kamailio.cfg: `kamailio -c` accepts them.
#[test]
fn compose_kamailio_defines_pass_kamailio_check() {
    if kamailio::binary("deploy_files::compose_kamailio_defines_pass_kamailio_check").is_none() {
        return;
    }
    let compose = read("deploy/docker-compose.yml");
    let vars = site();
    let block = service(&compose, "kamailio");
    let args: Vec<String> = block
        .iter()
        .skip_while(|l| l.trim() != "command:")
        .skip(1)
        .take_while(|l| l.trim_start().starts_with("- "))
        .map(|l| {
            let v = l.trim_start().trim_start_matches("- ").trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            interpolate(&v.replace("\\\"", "\""), &vars)
        })
        .collect();
    let mut defines: Vec<String> = args
        .chunks(2)
        .map(|p| {
            assert_eq!(p[0], "-A", "{args:?}");
            p[1].clone()
        })
        .collect();
    assert!(
        defines
            .iter()
            .any(|d| d.starts_with("TRUSTED_NETS=\"192.0.2.0/24,")),
        "{defines:?}"
    );
    // The image's entrypoint names /etc/kamailio/dispatcher.list; here, the repository's copy.
    assert!(
        read("deploy/kamailio/Dockerfile")
            .contains("DISPATCHER_LIST=\\\"/etc/kamailio/dispatcher.list\\\"")
    );
    defines.push(format!(
        "DISPATCHER_LIST=\"{}\"",
        repo().join("deploy/kamailio/dispatcher.list").display()
    ));
    let out = kamailio::check(&defines).unwrap_or_else(|e| panic!("{defines:?}\n{e}"));
    assert!(out.contains("advertise 192.0.2.10:5060"), "{out}");
}

/// A queue file edited into one Hammond refuses: /healthz says so (503), and `hammond alive`,
/// the image's health check, still exits 0, so no orchestrator restarts the instance (and drops
/// its calls) over it. Once the process is gone, it exits 1.
#[test]
fn alive_holds_through_a_refused_queue_reload_and_fails_when_dead() {
    let mut h = Hammond::start(Options::default());
    std::fs::write(
        h.dir.path().join("queues").join("support.toml"),
        "this is not = = a queue file\n",
    )
    .unwrap();
    let start = Instant::now();
    loop {
        let r = http::request(h.http, "GET", "/healthz", None, None);
        if r.status == 503 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the refused reload never showed: {} {}\n{}",
            r.status,
            r.text,
            h.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let addr = h.http.to_string();
    let alive = || {
        Command::new(env!("CARGO_BIN_EXE_hammond"))
            .args(["alive", "--addr", &addr])
            .output()
            .unwrap()
    };
    let out = alive();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("503 "));
    h.kill9();
    assert!(!alive().status.success());
}
