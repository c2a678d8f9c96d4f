//! Start the real `hammond` binary on loopback with a config written to a temp dir, and wait
//! until it says it is ready. Ports are chosen by the OS (`:0`) and read back from its ready line.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How to configure the Hammond under test.
#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    /// Extra TOML appended to the generated service config.
    pub extra_config: String,
    /// Extra keys for its `[http]` table (the generated config has one already).
    pub http_extra: String,
    /// Extra keys for its `[sip]` table, one per line.
    pub sip_extra: String,
    /// Extra keys for its `[sip.trunk]` table, one per line (`srtp = "mandatory"`).
    pub trunk_extra: String,
    /// Extra queue files: (file name, contents), beside the shipped `config/queues/*`.
    pub queues: Vec<(String, String)>,
    /// Re-use this data dir (restart tests).
    pub data_dir: Option<PathBuf>,
    pub trunk: Option<SocketAddr>,
    /// The trunk's `proxy` as written (a host name, say), instead of `trunk`.
    pub trunk_proxy: Option<String>,
    /// Where alice's phone is (`sip:alice@127.0.0.1:PORT`); bob's is the next port.
    pub agent_port: Option<u16>,
    /// Extra environment for the process (`HAMMOND_*` overrides, e.g. trunk credentials).
    pub env: Vec<(String, String)>,
    /// `[media] io` (the default when empty: io_uring where the kernel allows it).
    pub media_io: &'static str,
    /// `[store] url` (default: a SQLite file in the data dir).
    pub store_url: Option<String>,
}

pub(crate) struct Hammond {
    child: Child,
    pub sip: SocketAddr,
    /// The SIP over TLS listener, when the config has `tls_listen`.
    pub sips: Option<SocketAddr>,
    pub http: SocketAddr,
    pub dir: tempfile::TempDir,
    pub data_dir: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
}

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// RTP ports per instance: tests hold a few calls at a time.
const RTP_PORTS: u16 = 64;

impl Hammond {
    pub(crate) fn start(opts: Options) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let queues = dir.path().join("queues");
        copy_dir(&repo().join("config/queues"), &queues);
        for (name, body) in &opts.queues {
            std::fs::write(queues.join(name), body).unwrap();
        }
        let data_dir = opts
            .data_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("data"));
        // Each instance gets its own slice of RTP ports, so parallel tests never collide.
        let base = super::ports::block(RTP_PORTS);
        let trunk = opts.trunk_proxy.clone().unwrap_or_else(|| {
            opts.trunk
                .map_or_else(|| "127.0.0.1:5090".to_owned(), |t| t.to_string())
        });
        let config = format!(
            r#"
[sip]
listen = "127.0.0.1:0"
trusted_sources = ["127.0.0.1/32"]
{sip_extra}
[sip.trunk]
proxy = "{trunk}"
caller_id = "+15550100"
{trunk_extra}
[media]
rtp_ports = "{base}-{end}"
io = "{media_io}"
[http]
listen = "127.0.0.1:0"
{http_extra}
[store]
url = "{store_url}"
[queues]
dir = "{queues}"
[prompts]
dir = "{prompts}"
[data]
dir = "{data}"
[[agents]]
id = "alice"
endpoint = "sip:alice@127.0.0.1:{alice_port}"
queues = ["support"]
token = "alice-secret"
[[agents]]
id = "bob"
endpoint = "sip:bob@127.0.0.1:{bob_port}"
queues = ["support"]
token = "bob-secret"
[[agents]]
id = "eve"
endpoint = "sip:eve@127.0.0.1:5072"
queues = ["sales"]
token = "eve-secret"
{extra}
"#,
            end = base + RTP_PORTS - 2,
            media_io = if opts.media_io.is_empty() {
                "auto"
            } else {
                opts.media_io
            },
            alice_port = opts.agent_port.unwrap_or(5070),
            bob_port = opts.agent_port.map_or(5071, |p| p + 1),
            store_url = opts
                .store_url
                .clone()
                .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("hammond.db").display())),
            queues = queues.display(),
            prompts = repo().join("prompts").display(),
            data = data_dir.display(),
            extra = opts.extra_config,
            http_extra = opts.http_extra,
            sip_extra = opts.sip_extra,
            trunk_extra = opts.trunk_extra,
        );
        let cfg = dir.path().join("hammond.toml");
        std::fs::write(&cfg, config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_hammond"))
            .args(["run", "--config"])
            .arg(&cfg)
            .env("RUST_LOG", "hammond=debug,info")
            .envs(opts.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hammond");
        let log = Arc::new(Mutex::new(Vec::new()));
        {
            let log = log.clone();
            let stderr = child.stderr.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    log.lock().unwrap().push(line);
                }
            });
        }
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(rest) = line.strip_prefix("hammond ready: ") {
                        let _ = tx.send(rest.to_owned());
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        let ready = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(r) => r,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "hammond did not become ready:\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
        };
        let field = |k: &str| -> SocketAddr {
            ready
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(k))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {k} in ready line {ready}"))
        };
        let sips = ready
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("sips="))
            .and_then(|v| v.parse().ok());
        Self {
            sip: field("sip="),
            sips,
            http: field("http="),
            child,
            dir,
            data_dir,
            log,
        }
    }

    /// Everything Hammond logged so far.
    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Wait until the log contains `needle`.
    pub(crate) fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The exit status once the process has exited, waiting up to `timeout`; `None` if it is
    /// still running then.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if start.elapsed() >= timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM and wait for the exit status.
    pub(crate) fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().unwrap()
    }
}

impl Drop for Hammond {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- hammond log ----\n{}", self.log());
        }
    }
}
