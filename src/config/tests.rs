use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

fn no_env() -> HashMap<String, String> {
    HashMap::new()
}

fn env_of(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn parse(src: &str) -> Result<Config, ConfigErrors> {
    Config::from_toml(Path::new("t.toml"), src, &no_env())
}

fn errors(src: &str) -> Vec<Diagnostic> {
    match parse(src) {
        Ok(cfg) => panic!("expected errors, got {cfg:?}"),
        Err(ConfigErrors(d)) => d,
    }
}

/// The one diagnostic at `line:column`, whose message must contain `needle`.
#[track_caller]
fn assert_at(diags: &[Diagnostic], line: usize, column: usize, needle: &str) {
    let found = diags
        .iter()
        .find(|d| (d.line, d.column) == (line, column))
        .unwrap_or_else(|| panic!("no diagnostic at {line}:{column} in {diags:#?}"));
    assert!(
        found.message.contains(needle),
        "{found} should mention {needle:?}"
    );
}

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join(name)
}

#[test]
fn every_shipped_config_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            if let Err(e) = Config::load(&path, &no_env()) {
                panic!("{} does not load:\n{e}", path.display());
            }
            n += 1;
        }
    }
    assert!(
        n >= 2,
        "expected hammond.toml and dev.toml in {}",
        dir.display()
    );
}

#[test]
fn shipped_hammond_toml_spells_out_the_defaults() {
    let cfg = Config::load(&shipped("hammond.toml"), &no_env()).unwrap();
    // Everything but the example agent is exactly the built-in default.
    let defaults = Config::default();
    assert_eq!(
        Config {
            agents: Vec::new(),
            ..cfg.clone()
        },
        defaults
    );
    assert!(
        defaults.agents.is_empty(),
        "no agent exists unless configured"
    );
    assert_eq!(
        cfg.agents,
        vec![AgentConfig {
            id: "alice".into(),
            endpoint: "sip:alice@127.0.0.1:5070".into(),
            queues: vec!["support".into()],
            token: Secret::new("alice-secret"),
            role: super::Role::Agent,
        }]
    );
}

#[test]
fn defaults_are_the_documented_values() {
    let c = Config::default();
    assert_eq!(c, parse("").unwrap(), "an empty file gives the defaults");
    assert_eq!(
        c.sip.listen,
        "127.0.0.1:5060".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.sip.public_address, c.sip.listen.ip());
    assert_eq!(
        c.sip.trusted_sources,
        vec!["127.0.0.1/32".parse::<Cidr>().unwrap()]
    );
    assert_eq!(
        (c.sip.t1, c.sip.t2, c.sip.t4),
        (
            Duration::from_millis(500),
            Duration::from_secs(4),
            Duration::from_secs(5)
        )
    );
    assert_eq!(
        c.sip.user_agent,
        format!("Hammond/{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(c.sip.max_calls, 2000);
    assert_eq!(c.trunk.proxy.to_string(), "127.0.0.1:5090");
    assert_eq!(c.trunk.transport, Transport::Udp);
    assert_eq!(c.trunk.caller_id, "+15550100");
    assert_eq!(c.media.rtp_ports, 20000..=29999);
    assert_eq!(c.media.codecs, vec![Codec::Pcmu, Codec::Pcma]);
    assert_eq!(
        c.http.listen,
        "127.0.0.1:8080".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.http.max_body, 65536);
    assert_eq!(c.http.header_timeout, Duration::from_secs(10));
    assert_eq!(c.http.max_connections, 512);
    assert_eq!(c.store.url, "sqlite://data/hammond.db");
    assert!(c.store.is_sqlite());
    assert_eq!(c.store.event_retention, Duration::from_secs(7 * 24 * 3600));
    assert_eq!(c.queues_dir, Path::new("config/queues"));
    assert_eq!(c.prompts_dir, Path::new("prompts"));
    assert_eq!(c.data_dir, Path::new("data"));
    assert_eq!(c.shutdown.drain_timeout, Duration::from_secs(30));
}

#[test]
fn unknown_key_is_reported_at_its_place() {
    let d = errors("[sip]\nlisten = \"127.0.0.1:5060\"\n  listne = \"x\"\n");
    assert_eq!(d.len(), 1);
    assert_at(&d, 3, 3, "unknown field `listne`");
    assert!(d[0].to_string().starts_with("t.toml:3:3: "), "{}", d[0]);

    let d = errors("[sipp]\n");
    assert_at(&d, 1, 2, "unknown field `sipp`");
}

#[test]
fn toml_syntax_error_stops_early_with_a_place() {
    let d = errors("[sip]\nlisten = \"127.0.0.1:5060\n");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].line, 2, "{}", d[0]);
}

#[test]
fn bad_duration_is_reported_at_its_value() {
    let d = errors("[sip]\nt1 = \"500 parsecs\"\n");
    assert_at(&d, 2, 6, "sip.t1: unknown unit");
    let d = errors("[shutdown]\ndrain_timeout = 30\n");
    assert_at(&d, 2, 17, "write \"30s\"");
    let d = errors("[media]\nrtp_timeout = \"60\"\n");
    assert_at(&d, 2, 15, "has no unit");
    let d = errors("[sip]\nt1 = \"0ms\"\n");
    assert_at(&d, 2, 6, "longer than zero");
}

/// `[store] event_retention`: a duration (days allowed), checked with its place.
#[test]
fn event_retention_is_a_duration_checked_in_place() {
    let c = parse("[store]\nevent_retention = \"36h\"\n").unwrap();
    assert_eq!(c.store.event_retention, Duration::from_secs(36 * 3600));
    let c = parse("[store]\nevent_retention = \"30d\"\n").unwrap();
    assert_eq!(c.store.event_retention, Duration::from_secs(30 * 86_400));
    let d = errors("[store]\nurl = \"sqlite://x.db\"\nevent_retention = 7\n");
    assert_at(&d, 3, 19, "store.event_retention: a bare number");
    let d = errors("[store]\nevent_retention = \"0d\"\n");
    assert_at(&d, 2, 19, "longer than zero");
    let d = errors("[store]\nevent_retention = \"a week\"\n");
    assert_at(&d, 2, 19, "store.event_retention");
}

#[test]
fn media_io_is_auto_unless_epoll_is_asked_for() {
    let d = errors("[media]\nio = \"uring\"\n");
    assert_at(&d, 2, 6, "media.io: unknown media I/O \"uring\"");
}

#[test]
fn bad_cidr_is_reported_at_the_list_item() {
    let d = errors("[sip]\ntrusted_sources = [\"10.0.0.0/8\", \"10.0.0.0/40\"]\n");
    assert_eq!(d.len(), 1);
    assert_at(&d, 2, 34, "prefix length");
}

#[test]
fn odd_port_range_is_reported() {
    let d = errors("[media]\nrtp_ports = \"20001-29999\"\n");
    assert_eq!(d.len(), 1);
    assert_at(&d, 2, 13, "even port");
}

#[test]
fn duplicate_agent_id_is_reported_at_the_second() {
    let src = "\
[[agents]]
id = \"alice\"
endpoint = \"sip:alice@127.0.0.1:5070\"
token = \"a\"

[[agents]]
id = \"alice\"
endpoint = \"sip:alice@127.0.0.1:5071\"
token = \"b\"
";
    let d = errors(src);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_at(
        &d,
        7,
        6,
        "duplicate agent id \"alice\" (first defined on line 2)",
    );
}

#[test]
fn agent_checks() {
    let src = "\
[[agents]]
id = \"carol\"
endpoint = \"tel:+15551234567\"
queues = [\"support\", \"\"]

[[agents]]
id = \"dave\"
endpoint = \"sip:dave@127.0.0.1\"
token = \"same\"

[[agents]]
id = \"erin\"
endpoint = \"sip:erin@127.0.0.1\"
token = \"same\"

[[agents]]
endpoint = \"sip:nobody@127.0.0.1\"
";
    let d = errors(src);
    assert_at(
        &d,
        2,
        6,
        "has no API token: set `token` or HAMMOND_AGENT_CAROL_TOKEN",
    );
    assert_at(&d, 3, 12, "must start with \"sip:\"");
    assert_at(&d, 4, 22, "must not be empty");
    assert_at(&d, 14, 9, "same token as agent \"dave\"");
    assert!(
        d.iter().any(|x| x.message.contains("needs an `id`")),
        "{d:#?}"
    );
    assert!(
        !d.iter().any(|x| x.message.contains("same\"")),
        "tokens never appear in messages"
    );
}

/// Issue 17: `role` is `agent` (the default) or `supervisor`; anything else is an error at
/// the value.
#[test]
fn agent_roles() {
    let src = "\
[[agents]]
id = \"sam\"
endpoint = \"sip:sam@127.0.0.1\"
token = \"s\"
role = \"supervisor\"

[[agents]]
id = \"alice\"
endpoint = \"sip:alice@127.0.0.1\"
token = \"a\"
";
    let cfg = parse(src).unwrap();
    assert_eq!(cfg.agents[0].role, super::Role::Supervisor);
    assert_eq!(cfg.agents[1].role, super::Role::Agent);
    let d = errors(&src.replace("\"supervisor\"", "\"boss\""));
    assert_at(&d, 5, 8, "\"boss\" is not a role");
}

/// Issue 17: `[[webhooks]]` take an http(s) URL, known events (or `"*"`), a `whsec_`
/// secret (or its environment variable), and unique names; each mistake is reported at its
/// value.
#[test]
fn webhooks() {
    let src = "\
[[webhooks]]
url = \"https://crm.example.com:8443/hooks/hammond?x=1\"
events = [\"callback_requested\", \"interaction.closed\"]
secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"

[[webhooks]]
name = \"all\"
url = \"http://[::1]/h\"
events = [\"*\"]
";
    let env: std::collections::HashMap<String, String> = [(
        "HAMMOND_WEBHOOK_ALL_SECRET".to_owned(),
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned(),
    )]
    .into();
    let cfg = Config::from_toml(Path::new("t.toml"), src, &env).unwrap();
    let w = &cfg.webhooks[0];
    assert_eq!(w.name, "https://crm.example.com:8443/hooks/hammond?x=1");
    assert_eq!(
        (
            w.url.tls,
            w.url.host.as_str(),
            w.url.port,
            w.url.path.as_str()
        ),
        (true, "crm.example.com", 8443, "/hooks/hammond?x=1")
    );
    assert_eq!(w.events, ["callback_requested", "closed"]);
    let all = &cfg.webhooks[1];
    assert_eq!((all.url.host.as_str(), all.url.port), ("::1", 80));
    assert!(all.events.is_empty(), "* is every event");
    assert_eq!(all.url.to_string(), "http://[::1]:80/h");

    let bad = "\
[[webhooks]]
url = \"ftp://x\"
secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"

[[webhooks]]
url = \"http://x/\"
events = [\"hung_upp\"]
secret = \"s3cret\"

[[webhooks]]
url = \"http://y/\"
";
    let d = errors(bad);
    assert_at(&d, 2, 7, "http:// or https://");
    assert_at(&d, 7, 11, "unknown event \"hung_upp\"");
    assert_at(&d, 8, 10, "must start with \"whsec_\"");
    assert_at(&d, 11, 7, "has no `secret`");
    assert!(
        !d.iter().any(|x| x.message.contains("s3cret")),
        "secrets never appear"
    );
}

#[test]
fn several_errors_are_all_reported_in_file_order() {
    let src = "\
[sip]
listen = \"localhost:5060\"
trusted_sources = [\"not-an-ip\"]
t2 = \"4\"

[media]
rtp_ports = \"20000-70000\"
codecs = [\"PCMU\", \"G729\", \"pcmu\"]

[http]
max_body = \"lots\"

[store]
url = \"mysql://db\"
";
    let d = errors(src);
    let places: Vec<(usize, usize)> = d.iter().map(|x| (x.line, x.column)).collect();
    assert_eq!(
        places,
        vec![
            (2, 10),
            (3, 20),
            (4, 6),
            (7, 13),
            (8, 19),
            (8, 27),
            (11, 12),
            (14, 7)
        ],
        "{d:#?}"
    );
    assert_at(&d, 8, 27, "listed twice");
    let shown = ConfigErrors(d).to_string();
    assert_eq!(shown.lines().count(), 8);
    assert!(
        shown.starts_with("t.toml:2:10: sip.listen: invalid address"),
        "{shown}"
    );
}

#[test]
fn trunk_password_comes_from_env_and_never_prints() {
    let src = "[sip.trunk]\nusername = \"file-user\"\npassword = \"file-pass\"\n";
    let env = env_of(&[("HAMMOND_TRUNK_PASSWORD", "env-pass")]);
    let cfg = Config::from_toml(Path::new("t.toml"), src, &env).unwrap();
    assert_eq!(cfg.trunk.password.expose(), "env-pass");
    assert_eq!(cfg.trunk.username, "file-user");
    let shown = format!("{cfg:?}");
    assert!(
        !shown.contains("env-pass") && !shown.contains("file-pass"),
        "{shown}"
    );
    assert!(shown.contains("password: ***"), "{shown}");

    let env = env_of(&[("HAMMOND_TRUNK_USERNAME", "env-user")]);
    let cfg = Config::from_toml(Path::new("t.toml"), src, &env).unwrap();
    assert_eq!(
        (cfg.trunk.username.as_str(), cfg.trunk.password.expose()),
        ("env-user", "file-pass")
    );
}

#[test]
fn agent_token_comes_from_env() {
    let src = "[[agents]]\nid = \"front-desk\"\nendpoint = \"sip:fd@127.0.0.1\"\nqueues = [\"support\"]\n";
    let env = env_of(&[("HAMMOND_AGENT_FRONT_DESK_TOKEN", "t0k")]);
    let cfg = Config::from_toml(Path::new("t.toml"), src, &env).unwrap();
    assert!(cfg.agents[0].token.matches("t0k"));
    assert!(!format!("{cfg:?}").contains("t0k"));
}

#[test]
fn listen_addresses_come_from_env() {
    let env = env_of(&[
        ("HAMMOND_SIP_LISTEN", "0.0.0.0:5060"),
        ("HAMMOND_SIP_PUBLIC_ADDRESS", "192.0.2.10"),
        ("HAMMOND_HTTP_LISTEN", "[::]:8080"),
    ]);
    let cfg = Config::from_toml(Path::new("t.toml"), "", &env).unwrap();
    assert_eq!(
        cfg.sip.listen,
        "0.0.0.0:5060".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(cfg.sip.public_address.to_string(), "192.0.2.10");
    assert_eq!(cfg.http.listen, "[::]:8080".parse::<SocketAddr>().unwrap());

    let env = env_of(&[("HAMMOND_HTTP_LISTEN", "everywhere")]);
    let Err(ConfigErrors(d)) = Config::from_toml(Path::new("t.toml"), "", &env) else {
        panic!("a bad override is an error");
    };
    assert_at(
        &d,
        1,
        1,
        "environment variable HAMMOND_HTTP_LISTEN: invalid address",
    );
}

/// Containers on one host share its address, so each instance's RTP range and the store's URL
/// (with its password) come from the environment.
#[test]
fn rtp_ports_and_store_url_come_from_env() {
    let file = "[media]\nrtp_ports = \"20000-29999\"\n[store]\nurl = \"sqlite://data/h.db\"\n";
    let env = env_of(&[
        ("HAMMOND_MEDIA_RTP_PORTS", "21000-21999"),
        (
            "HAMMOND_STORE_URL",
            "postgres://hammond:pw@postgres/hammond",
        ),
    ]);
    let cfg = Config::from_toml(Path::new("t.toml"), file, &env).unwrap();
    assert_eq!(cfg.media.rtp_ports, 21000..=21999);
    assert_eq!(cfg.store.url, "postgres://hammond:pw@postgres/hammond");

    let env = env_of(&[("HAMMOND_MEDIA_RTP_PORTS", "21001-21999")]);
    let Err(ConfigErrors(d)) = Config::from_toml(Path::new("t.toml"), file, &env) else {
        panic!("a bad override is an error");
    };
    assert!(
        d.iter()
            .any(|e| e.to_string().contains("HAMMOND_MEDIA_RTP_PORTS")),
        "{d:?}"
    );
}

#[test]
fn wildcard_listen_needs_a_public_address() {
    let d = errors("[sip]\nlisten = \"0.0.0.0:5060\"\n");
    assert_at(&d, 2, 10, "sip.public_address: required");
    let cfg = parse("[sip]\nlisten = \"0.0.0.0:5060\"\npublic_address = \"192.0.2.10\"\n").unwrap();
    assert_eq!(cfg.sip.public_address.to_string(), "192.0.2.10");
    let d = errors("[sip]\npublic_address = \"0.0.0.0\"\n");
    assert_at(&d, 2, 18, "not 0.0.0.0");
    let env = env_of(&[("HAMMOND_SIP_PUBLIC_ADDRESS", "::")]);
    let Err(ConfigErrors(d)) = Config::from_toml(Path::new("t.toml"), "", &env) else {
        panic!("an unspecified public address is an error");
    };
    assert_at(
        &d,
        1,
        1,
        "HAMMOND_SIP_PUBLIC_ADDRESS: must be an address peers can reach",
    );
    let cfg = parse("[sip]\nlisten = \"192.0.2.7:5060\"\n").unwrap();
    assert_eq!(cfg.sip.public_address.to_string(), "192.0.2.7");
}

#[test]
fn typed_extras() {
    let src = "\
[sip]
t1 = \"1s\"
t2 = \"8s\"
max_requests_per_source = { count = 50, per = \"2s\" }
[sip.trunk]
proxy = \"pbx.example.com\"
transport = \"tcp\"
srtp = \"mandatory\"
[http]
max_body = 1048576
header_timeout = \"2s\"
max_connections = 64
[data]
dir = \"/var/lib/hammond\"
";
    let cfg = parse(src).unwrap();
    assert_eq!(
        cfg.sip.max_requests_per_source,
        RateLimit {
            count: 50,
            per: Duration::from_secs(2)
        }
    );
    assert_eq!(cfg.trunk.proxy.to_string(), "pbx.example.com:5060");
    assert_eq!(cfg.trunk.transport, Transport::Tcp);
    assert_eq!(cfg.trunk.srtp, SrtpMode::Mandatory);
    assert_eq!(cfg.http.max_body, 1 << 20);
    assert_eq!(cfg.http.header_timeout, Duration::from_secs(2));
    assert_eq!(cfg.http.max_connections, 64);
    assert_eq!(
        cfg.store.url, "sqlite:///var/lib/hammond/hammond.db",
        "the SQLite file follows data.dir"
    );

    let d = errors("[sip]\nt1 = \"5s\"\n");
    assert_at(&d, 2, 6, "must not be longer than sip.t2");
    let d = errors("[sip]\nmax_calls = 0\nmax_requests_per_source = { count = 10, per = 5 }\n");
    assert_at(&d, 2, 13, "out of range");
    assert_at(&d, 3, 47, "bare number");
    let d = errors(
        "[sip.trunk]
transport = \"sctp\"
caller_id = \"alice\"
srtp = \"yes\"
",
    );
    assert_at(&d, 2, 13, "unknown transport");
    assert_at(&d, 3, 13, "invalid caller ID");
    assert_at(
        &d,
        4,
        8,
        r#"unknown srtp mode "yes": use "off", "optional" or "mandatory""#,
    );
    let d = errors("[http]\nheader_timeout = \"0s\"\nmax_connections = 0\n");
    assert_at(&d, 2, 18, "http.header_timeout");
    assert_at(&d, 3, 19, "out of range");
}

#[test]
fn check_reports_a_missing_file() {
    let d = check(Path::new("/nonexistent/hammond.toml"));
    assert_eq!(d.len(), 1);
    assert!(d[0].message.contains("cannot read config file"), "{}", d[0]);
}

/// Issue 18: the TLS keys are checked where they are written: files readable and PEM, the key
/// the certificate's, all three `[sip]` keys together, `ca_file` only with TLS.
#[test]
fn tls_keys_are_checked_with_their_files() {
    let pki = super::tls::test_pki::make(&["hammond.example.com"]);
    let good = format!(
        "[sip]\ntls_listen = \"127.0.0.1:5061\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n[sip.trunk]\nproxy = \"carrier.example.com\"\ntransport = \"tls\"\nca_file = \"{}\"\n",
        pki.cert.display(),
        pki.key.display(),
        pki.ca.display()
    );
    let cfg = parse(&good).unwrap();
    let tls = cfg.sip.tls.expect("TLS listener");
    assert_eq!(tls.listen.to_string(), "127.0.0.1:5061");
    assert_eq!(tls.cert, pki.cert);
    assert_eq!(cfg.trunk.transport, Transport::Tls);
    assert_eq!(cfg.trunk.ca_file.as_deref(), Some(pki.ca.as_path()));
    assert_eq!(
        cfg.trunk.proxy.to_string(),
        "carrier.example.com:5061",
        "a TLS proxy without a port is on 5061"
    );

    // A key that is not the certificate's: reported at tls_key.
    let src = good.replace(
        &pki.key.display().to_string(),
        &pki.other_key.display().to_string(),
    );
    assert_at(&errors(&src), 4, 11, "does not match the certificate");
    // An unreadable certificate: at tls_cert. A CA file with no certificate: at ca_file.
    let src = good
        .replace(&pki.cert.display().to_string(), "/nonexistent/cert.pem")
        .replace(
            &pki.ca.display().to_string(),
            &pki.key.display().to_string(),
        );
    let d = errors(&src);
    assert_at(&d, 3, 12, "cannot read /nonexistent/cert.pem");
    assert_at(&d, 8, 11, "no certificate in");
    // A key file holding a certificate only.
    let src = good.replace(
        &format!("tls_key = \"{}\"", pki.key.display()),
        &format!("tls_key = \"{}\"", pki.cert.display()),
    );
    assert_at(&errors(&src), 4, 11, "no private key");

    let d = errors("[sip]\nlisten = \"127.0.0.1:5060\"\ntls_listen = \"127.0.0.1:5061\"\n");
    assert_at(&d, 3, 14, "needs sip.tls_cert and sip.tls_key");
    let d = errors(&format!("[sip]\ntls_cert = \"{}\"\n", pki.cert.display()));
    assert_at(&d, 2, 12, "only used with sip.tls_listen");
    let d = errors(&format!(
        "[sip.trunk]\ntransport = \"tcp\"\nca_file = \"{}\"\n",
        pki.ca.display()
    ));
    assert_at(&d, 3, 11, "only used with transport = \"tls\"");
    let src = good.replace(
        "tls_listen = \"127.0.0.1:5061\"",
        "tls_listen = \"127.0.0.1:5060\"",
    );
    let src = src.replace("[sip]\n", "[sip]\nlisten = \"127.0.0.1:5060\"\n");
    assert_at(&errors(&src), 3, 14, "give TLS its own port");
}

/// Issue 16: `endpoint = "webrtc"` makes the page the agent's phone; `[webrtc] address` is the
/// IP its ICE candidate names, checked like the other keys.
#[test]
fn webrtc_agents_and_address() {
    let src = "\
[webrtc]
address = \"192.0.2.20\"

[[agents]]
id = \"carol\"
endpoint = \"webrtc\"
queues = [\"support\"]
token = \"carol-secret\"
";
    let cfg = parse(src).unwrap();
    assert_eq!(cfg.agents[0].endpoint, "webrtc");
    assert_eq!(cfg.webrtc.address, Some("192.0.2.20".parse().unwrap()));
    assert_eq!(
        parse("").unwrap().webrtc.address,
        None,
        "default: [sip] public_address"
    );

    let d = errors("[webrtc]\naddress = \"browser.example\"\n");
    assert_at(&d, 2, 11, "webrtc.address: invalid IP address");
    let d = errors("[webrtc]\naddress = \"0.0.0.0\"\n");
    assert_at(
        &d,
        2,
        11,
        "webrtc.address: must be an address browsers can reach",
    );
    let d = errors("[webrtc]\nport = 5\n");
    assert_at(&d, 2, 1, "unknown field `port`");
    // Only the exact word: anything else is a SIP URI and checked as one.
    let d = errors("[[agents]]\nid = \"x\"\nendpoint = \"WebRTC\"\ntoken = \"t\"\n");
    assert_at(&d, 3, 12, "must start with \"sip:\"");
}

/// Issue 21: `[[api_clients]]` entries: rights known, queues required, tokens unique among
/// clients and agents, the token from the environment.
#[test]
fn api_clients_are_checked_and_take_their_token_from_env() {
    let src = "\
[[agents]]
id = \"alice\"
endpoint = \"sip:alice@127.0.0.1:5070\"
token = \"shared\"

[[api_clients]]
id = \"website\"
queues = [\"support\"]
rights = [\"create_callbacks\"]

[[api_clients]]
id = \"crm\"
rights = [\"delete_everything\"]
token = \"shared\"
";
    let d = errors(src);
    assert_at(
        &d,
        7,
        6,
        "has no token: set `token` or HAMMOND_API_CLIENT_WEBSITE_TOKEN",
    );
    assert_at(&d, 12, 6, "needs `queues`");
    assert_at(&d, 13, 11, "unknown right \"delete_everything\"");
    assert_at(&d, 14, 9, "same token as \"alice\"");
    let cfg = Config::from_toml(
        Path::new("t.toml"),
        &src[..src.find("[[api_clients]]\nid = \"crm\"").unwrap()],
        &env_of(&[("HAMMOND_API_CLIENT_WEBSITE_TOKEN", "from-env")]),
    )
    .unwrap();
    assert_eq!(
        cfg.api_clients,
        vec![ApiClientConfig {
            id: "website".into(),
            queues: vec!["support".into()],
            token: Secret::new("from-env"),
            rights: vec![ApiRight::CreateCallbacks],
        }]
    );
}
