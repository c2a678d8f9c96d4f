//! Run a SIPp scenario from `tests/sipp/` against a Hammond and collect what happened.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use super::hammond::repo;

pub(crate) struct Sipp {
    cmd: Command,
    log_dir: tempfile::TempDir,
    /// A caller's number (`[caller]` in the scenarios): SIPp keeps the first `-key` of a name,
    /// so it is added last, when the run starts.
    caller: Option<String>,
}

pub(crate) struct SippRun {
    pub ok: bool,
    pub code: Option<i32>,
    /// Every SIP message SIPp sent or received.
    pub messages: String,
    pub errors: String,
    pub stdout: String,
}

impl SippRun {
    /// How many received messages start with `line` (e.g. `SIP/2.0 200 OK`).
    pub(crate) fn received(&self, start_line: &str) -> usize {
        // Blocks look like "----- date\nUDP message received [300] bytes :\n\nSIP/2.0 100 Trying".
        self.messages
            .split("\n-----")
            .filter_map(|block| block.split_once("message received"))
            .filter(|(_, rest)| {
                rest.lines()
                    .skip(1)
                    .find(|l| !l.trim().is_empty())
                    .is_some_and(|l| l.starts_with(start_line))
            })
            .count()
    }
}

impl Sipp {
    /// SIPp as a UAC calling `service@target` with `scenario` (file name under tests/sipp).
    pub(crate) fn uac(scenario: &str, target: SocketAddr, service: &str) -> Self {
        let log_dir = tempfile::tempdir().unwrap();
        let path = repo().join("tests/sipp").join(scenario);
        Self::uac_file(&path, log_dir, target, service)
    }

    /// SIPp as a UAC with a scenario template from `tests/sipp/`: every `{{NAME}}` is replaced by
    /// its value first (SIPp reads `play_pcap_audio` file names when it loads the scenario, so
    /// they cannot come from `-key`).
    pub(crate) fn uac_template(
        scenario: &str,
        target: SocketAddr,
        service: &str,
        subs: &[(&str, &str)],
    ) -> Self {
        let log_dir = tempfile::tempdir().unwrap();
        let path = fill_template(scenario, log_dir.path(), subs);
        Self::uac_file(&path, log_dir, target, service)
    }

    fn uac_file(
        path: &std::path::Path,
        log_dir: tempfile::TempDir,
        target: SocketAddr,
        service: &str,
    ) -> Self {
        let mut cmd = Command::new("sipp");
        let mp = free_media_port();
        cmd.arg(target.to_string())
            .arg("-sf")
            .arg(path)
            .args(["-s", service, "-m", "1", "-l", "1", "-i", "127.0.0.1"])
            .args(["-mp", &mp.to_string()])
            .args([
                "-nostdin",
                "-timeout",
                "40s",
                "-timeout_error",
                "-recv_timeout",
                "35000",
            ])
            .arg("-trace_msg")
            .arg("-message_file")
            .arg(log_dir.path().join("messages.log"))
            .arg("-trace_err")
            .arg("-error_file")
            .arg(log_dir.path().join("errors.log"));
        Self {
            cmd,
            log_dir,
            caller: Some("15551234567".to_owned()),
        }
    }

    /// SIPp as a UAS (a phone) on `port`, running `scenario` once.
    pub(crate) fn uas(scenario: &str, port: u16) -> Self {
        let log_dir = tempfile::tempdir().unwrap();
        let path = repo().join("tests/sipp").join(scenario);
        Self::uas_file(&path, log_dir, port)
    }

    /// SIPp as a UAS with a scenario template from `tests/sipp/` (see [`Sipp::uac_template`]).
    pub(crate) fn uas_template(scenario: &str, port: u16, subs: &[(&str, &str)]) -> Self {
        let log_dir = tempfile::tempdir().unwrap();
        let path = fill_template(scenario, log_dir.path(), subs);
        Self::uas_file(&path, log_dir, port)
    }

    fn uas_file(path: &std::path::Path, log_dir: tempfile::TempDir, port: u16) -> Self {
        let mut cmd = Command::new("sipp");
        let mp = free_media_port();
        cmd.arg("-sf")
            .arg(path)
            .args(["-p", &port.to_string(), "-m", "1", "-i", "127.0.0.1"])
            .args(["-mp", &mp.to_string()])
            .args(["-nostdin", "-timeout", "60s", "-timeout_error"])
            .arg("-trace_msg")
            .arg("-message_file")
            .arg(log_dir.path().join("messages.log"))
            .arg("-trace_err")
            .arg("-error_file")
            .arg(log_dir.path().join("errors.log"))
            .arg("-trace_logs")
            .arg("-log_file")
            .arg(log_dir.path().join("log.log"));
        Self {
            cmd,
            log_dir,
            caller: None,
        }
    }

    /// A caller calling from `number` instead of 15551234567.
    pub(crate) fn caller(mut self, number: &str) -> Self {
        self.caller = Some(number.to_owned());
        self
    }

    fn command(&mut self) -> &mut Command {
        if let Some(c) = self.caller.take() {
            self.cmd.args(["-key", "caller", &c]);
        }
        &mut self.cmd
    }

    /// Run in the background; collect the result with [`Running::wait`].
    pub(crate) fn spawn(mut self) -> Running {
        let child = self
            .command()
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run sipp");
        Running {
            child,
            log_dir: self.log_dir,
        }
    }

    pub(crate) fn arg(mut self, a: &str) -> Self {
        self.cmd.arg(a);
        self
    }

    pub(crate) fn args(mut self, a: &[&str]) -> Self {
        self.cmd.args(a);
        self
    }

    pub(crate) fn key(mut self, k: &str, v: &str) -> Self {
        self.cmd.args(["-key", k, v]);
        self
    }

    pub(crate) fn tcp(self) -> Self {
        self.args(&["-t", "t1"])
    }

    pub(crate) fn run(mut self) -> SippRun {
        let out = self
            .command()
            .output()
            .expect("run sipp (apt-get install sip-tester)");
        let read =
            |n: &str| std::fs::read_to_string(self.log_dir.path().join(n)).unwrap_or_default();
        SippRun {
            ok: out.status.success(),
            code: out.status.code(),
            messages: read("messages.log"),
            errors: read("errors.log"),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        }
    }

    pub(crate) fn log_path(&self) -> PathBuf {
        self.log_dir.path().to_owned()
    }
}

/// `scenario` from `tests/sipp/` with every `{{NAME}}` replaced, written into `dir`.
fn fill_template(scenario: &str, dir: &std::path::Path, subs: &[(&str, &str)]) -> PathBuf {
    let mut text = std::fs::read_to_string(repo().join("tests/sipp").join(scenario))
        .expect("read the scenario template");
    for (k, v) in subs {
        text = text.replace(&format!("{{{{{k}}}}}"), v);
    }
    assert!(!text.contains("{{"), "unfilled template slot in {scenario}");
    let path = dir.join(scenario);
    std::fs::write(&path, text).unwrap();
    path
}

/// A capture under `tests/data/rtp/` (made by `make_pcaps.py`), as an absolute path.
pub(crate) fn pcap(name: &str) -> String {
    repo()
        .join("tests/data/rtp")
        .join(name)
        .display()
        .to_string()
}

/// Assert a run passed, printing SIPp's view when it did not.
#[track_caller]
pub(crate) fn assert_ok(run: &SippRun) {
    assert!(
        run.ok,
        "sipp failed (exit {:?})\n--- errors ---\n{}\n--- messages ---\n{}",
        run.code, run.errors, run.messages
    );
}

/// A SIPp running in the background (a phone waiting for Hammond's INVITE).
pub(crate) struct Running {
    child: std::process::Child,
    log_dir: tempfile::TempDir,
}

impl Running {
    /// Stop it now (a caller left waiting when the test is done with it).
    pub(crate) fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub(crate) fn wait(self) -> SippRun {
        let out = self.child.wait_with_output().expect("sipp ran");
        let read =
            |n: &str| std::fs::read_to_string(self.log_dir.path().join(n)).unwrap_or_default();
        SippRun {
            ok: out.status.success(),
            code: out.status.code(),
            messages: read("messages.log"),
            errors: read("errors.log"),
            stdout: read("log.log"),
        }
    }
}

/// A UDP port free for a SIPp phone to listen on.
pub(crate) fn free_port() -> u16 {
    super::ports::one()
}

/// Two consecutive free UDP ports (alice's and bob's phones).
pub(crate) fn free_port_pair() -> u16 {
    super::ports::block(2)
}

/// SIPp's media port: it binds audio on it and video two above, so four are reserved.
fn free_media_port() -> u16 {
    super::ports::block(4)
}
