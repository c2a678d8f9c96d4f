//! Kamailio (Debian's 5.6) in front of Hammond instances on loopback, running the shipped
//! `deploy/kamailio/kamailio.cfg` itself: only its defines differ (the listen port, the
//! dispatcher list, shorter timers), given with `-A` as an operator would.
//!
//! Without a `kamailio` binary a test says on the terminal that it was skipped, unless `CI` is
//! set: then it fails (`scripts/test` installs it).

use std::io::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::hammond::repo;

/// Debian installs it in /usr/sbin, which a user's PATH may lack.
const DEBIAN_BINARY: &str = "/usr/sbin/kamailio";

/// The Kamailio binary: on the PATH, else Debian's.
fn program() -> &'static str {
    let on_path = Command::new("kamailio")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if on_path { "kamailio" } else { DEBIAN_BINARY }
}

/// The Kamailio binary, or `None` (said on the terminal) when it is missing outside CI.
pub(crate) fn binary(case: &str) -> Option<&'static str> {
    let found = Command::new(program())
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Some(program());
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run the Kamailio tests: apt-get install kamailio (scripts/test does)"
    );
    // Past the test harness's capture: a skipped test must not look like a pass.
    let _ = writeln!(
        std::io::stderr(),
        "{case}: SKIPPED (no kamailio: apt-get install kamailio)"
    );
    None
}

/// The shipped config with `defines` (`NAME=VALUE`, as `kamailio -A` takes them), checked with
/// `kamailio -c`: `Err` carries Kamailio's complaint.
pub(crate) fn check(defines: &[String]) -> Result<String, String> {
    let mut cmd = Command::new(program());
    cmd.arg("-c").arg("-f").arg(cfg_path());
    for d in defines {
        cmd.arg("-A").arg(d);
    }
    let out = cmd.output().expect("run kamailio -c");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

fn cfg_path() -> std::path::PathBuf {
    repo().join("deploy/kamailio/kamailio.cfg")
}

/// A running Kamailio; stopped (its whole process group) when dropped.
pub(crate) struct Kamailio {
    child: Child,
    /// Where callers send their requests.
    pub sip: SocketAddr,
    dir: tempfile::TempDir,
    log: Arc<Mutex<Vec<String>>>,
}

impl Kamailio {
    /// Kamailio on a free loopback port dispatching over `instances` (dispatcher set 1, as
    /// `deploy/kamailio/dispatcher.list` writes it), pinging them every second and failing over
    /// after `fr_timeout_ms` without a reply. Waits until it answers an OPTIONS.
    pub(crate) fn start(instances: &[SocketAddr], fr_timeout_ms: u32) -> Self {
        Self::start_with(instances, fr_timeout_ms, 1, &[])
    }

    /// As [`Kamailio::start`], pinging every `ping_interval_s` seconds (a test that needs the
    /// failure route, not the pings, to find a dead instance pings rarely), with more defines
    /// (`NAME=VALUE`).
    pub(crate) fn start_with(
        instances: &[SocketAddr],
        fr_timeout_ms: u32,
        ping_interval_s: u32,
        extra: &[&str],
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("dispatcher.list");
        let lines: String = instances
            .iter()
            .enumerate()
            .map(|(i, a)| format!("1 sip:{a} 0 0 duid=hammond-{i}\n"))
            .collect();
        std::fs::write(&list, lines).unwrap();
        let port = super::ports::one();
        let sip = SocketAddr::from(([127, 0, 0, 1], port));
        let mut defines = vec![
            format!("LISTEN=udp:{sip}"),
            format!("DISPATCHER_LIST=\"{}\"", list.display()),
            format!("FR_TIMEOUT={fr_timeout_ms}"),
            format!("PING_INTERVAL={ping_interval_s}"),
            "CHILDREN=2".to_owned(),
            "LOG_LEVEL=2".to_owned(),
        ];
        defines.extend(extra.iter().map(|d| (*d).to_owned()));
        let mut cmd = Command::new(program());
        cmd.args(["-DD", "-E", "-m", "64", "-M", "8"])
            .arg("-f")
            .arg(cfg_path())
            .arg("-Y")
            .arg(dir.path())
            .arg("-P")
            .arg(dir.path().join("kamailio.pid"))
            .arg("-w")
            .arg(dir.path());
        for d in &defines {
            cmd.arg("-A").arg(d);
        }
        // Its own process group: Kamailio forks workers, and the group is stopped at the end.
        let mut child = cmd
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kamailio");
        let log = Arc::new(Mutex::new(Vec::new()));
        {
            let log = log.clone();
            let stderr = child.stderr.take().unwrap();
            std::thread::spawn(move || {
                use std::io::BufRead as _;
                for line in std::io::BufReader::new(stderr)
                    .lines()
                    .map_while(Result::ok)
                {
                    log.lock().unwrap().push(line);
                }
            });
        }
        let k = Self {
            child,
            sip,
            dir,
            log,
        };
        k.wait_ready();
        k
    }

    /// Sends OPTIONS to the proxy itself until it answers 200 (10 s at most).
    fn wait_ready(&self) {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let local = sock.local_addr().unwrap();
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        for n in 0.. {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "kamailio did not answer OPTIONS:\n{}",
                self.log()
            );
            let req = format!(
                "OPTIONS sip:{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-ready{n};rport\r\n\
                 From: <sip:test@{local}>;tag=t{n}\r\nTo: <sip:{sip}>\r\nCall-ID: ready-{n}@test\r\n\
                 CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
                sip = self.sip
            );
            let _ = sock.send_to(req.as_bytes(), self.sip);
            if let Ok((len, _)) = sock.recv_from(&mut buf)
                && buf[..len].starts_with(b"SIP/2.0 200")
            {
                return;
            }
        }
    }

    /// Everything Kamailio logged so far.
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
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        // SIGTERM: the main process stops its workers and reaps them; the whole group is
        // killed only if that takes too long.
        let pid = self.child.id().to_string();
        let quiet = |args: &[&str]| {
            let _ = Command::new("kill")
                .args(args)
                .stderr(Stdio::null())
                .status();
        };
        quiet(&["-TERM", &pid]);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        quiet(&["-KILL", "--", &format!("-{pid}")]);
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- kamailio log ----\n{}", self.log());
        }
        let _ = &self.dir;
    }
}
