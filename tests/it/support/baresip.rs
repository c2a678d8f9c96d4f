//! baresip (Debian's package) as a customer's phone: a real SIP UA with SDES-SRTP (its `srtp`
//! module, libre's SRTP stack), run headless. It answers every call at once
//! (`answermode=auto`), sends a WAV file as its microphone (`aufile`), plays what it hears to
//! ALSA's null device, and its `sndfile` filter keeps what it decoded in a WAV file, so the
//! test can tell whether it could decrypt Hammond's audio.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) struct Baresip {
    child: Child,
    dir: tempfile::TempDir,
    log: Arc<Mutex<Vec<String>>>,
    /// Where it takes SIP over UDP.
    pub sip: SocketAddr,
    /// Where it takes SIP over TLS (with a certificate: baresip listens on the next port).
    pub sips: Option<SocketAddr>,
    /// Its RTP ports (`rtp_ports`), first and last.
    pub rtp: (u16, u16),
}

/// What a baresip run left behind.
pub(crate) struct Stopped {
    pub log: String,
    /// The audio it decoded from each call (`sndfile`'s `*-dec.wav`), as samples.
    pub decoded: Vec<Vec<i16>>,
}

impl Baresip {
    /// A phone for `user` on `sip_port` with media encryption `mediaenc` (`srtp-mand`,
    /// `srtp`, or empty for none), speaking `source` (8 kHz mono 16-bit WAV).
    pub(crate) fn start(user: &str, sip_port: u16, mediaenc: &str, source: &Path) -> Self {
        Self::start_with(user, sip_port, mediaenc, source, None)
    }

    /// The same, and once ready it calls `dial` (a SIP URI).
    pub(crate) fn start_with(
        user: &str,
        sip_port: u16,
        mediaenc: &str,
        source: &Path,
        dial: Option<&str>,
    ) -> Self {
        Self::start_full(user, sip_port, mediaenc, source, dial, None)
    }

    /// A phone that also takes SIP over TLS on `sip_port + 1`, presenting `certificate` (a
    /// PEM file with the certificate and then its key, as baresip's `sip_certificate` takes).
    pub(crate) fn start_tls(
        user: &str,
        sip_port: u16,
        mediaenc: &str,
        source: &Path,
        certificate: &Path,
    ) -> Self {
        Self::start_full(user, sip_port, mediaenc, source, None, Some(certificate))
    }

    fn start_full(
        user: &str,
        sip_port: u16,
        mediaenc: &str,
        source: &Path,
        dial: Option<&str>,
        certificate: Option<&Path>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let rtp_first = super::ports::block(8);
        let rtp = (rtp_first, rtp_first + 7);
        let snd = dir.path().join("snd");
        std::fs::create_dir_all(&snd).unwrap();
        let config = format!(
            "poll_method epoll\n\
             net_interface 127.0.0.1\n\
             sip_listen 127.0.0.1:{sip_port}\n\
             sip_trans_def udp\n\
             audio_player alsa,null\n\
             audio_alert alsa,null\n\
             audio_source aufile,{source}\n\
             rtp_ports {a}-{b}\n\
             snd_path {snd}\n\
             module_path /usr/lib/baresip/modules\n\
             module g711.so\n\
             module aufile.so\n\
             module alsa.so\n\
             module sndfile.so\n\
             module srtp.so\n\
             module_app account.so\n\
             module_app menu.so\n",
            source = source.display(),
            a = rtp.0,
            b = rtp.1,
            snd = snd.display(),
        );
        let config = match certificate {
            Some(pem) => format!("{config}sip_certificate {}\n", pem.display()),
            None => config,
        };
        std::fs::write(dir.path().join("config"), config).unwrap();
        let enc = if mediaenc.is_empty() {
            String::new()
        } else {
            format!(";mediaenc={mediaenc}")
        };
        std::fs::write(
            dir.path().join("accounts"),
            format!(
                "<sip:{user}@127.0.0.1>;regint=0;answermode=auto;audio_codecs=PCMU,PCMA{enc}\n"
            ),
        )
        .unwrap();
        let mut cmd = Command::new("baresip");
        cmd.arg("-f").arg(dir.path()).arg("-v");
        if let Some(uri) = dial {
            cmd.arg("-e").arg(format!("/dial {uri}"));
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("baresip is installed (scripts/test installs the Debian package)");
        let log = Arc::new(Mutex::new(Vec::new()));
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    log.lock().unwrap().push(line);
                }
            });
        }
        let b = Self {
            child,
            dir,
            log,
            sip: SocketAddr::from(([127, 0, 0, 1], sip_port)),
            sips: certificate.map(|_| SocketAddr::from(([127, 0, 0, 1], sip_port + 1))),
            rtp,
        };
        assert!(
            b.wait_for_log("baresip is ready", Duration::from_secs(10)),
            "baresip did not start:\n{}",
            b.log()
        );
        b
    }

    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub(crate) fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.log.lock().unwrap().iter().any(|l| l.contains(needle)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Stop it (SIGTERM: its WAV dumps are closed) and collect what it left.
    pub(crate) fn stop(mut self) -> Stopped {
        // SAFETY: signals the child this struct owns.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        while self.child.try_wait().ok().flatten().is_none() {
            if start.elapsed() > Duration::from_secs(5) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let decoded = dumps(&self.dir.path().join("snd"));
        Stopped {
            log: self.log(),
            decoded,
        }
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The samples of every `*-dec.wav` under `dir`.
fn dumps(dir: &Path) -> Vec<Vec<i16>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .filter(|p| p.to_string_lossy().ends_with("-dec.wav"))
        .filter_map(|p| {
            let r = hound::WavReader::open(p).ok()?;
            Some(r.into_samples::<i16>().map_while(Result::ok).collect())
        })
        .collect()
}
