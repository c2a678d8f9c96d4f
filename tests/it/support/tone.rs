//! A phone's media for tests that listen to what Hammond sends: keep its PCMU, answer with a
//! tone, and measure a tone's share of the last second (Goertzel).

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A phone's media: a socket that keeps what Hammond sends (PCMU) and, once Hammond has sent
/// something, answers with a tone every 20 ms.
pub(crate) struct ToneMedia {
    pub(crate) port: u16,
    got: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ToneMedia {
    /// Bound on an even port; it sends a `hz` tone once Hammond's first packet came.
    pub(crate) fn start(hz: f64) -> Self {
        let sock = loop {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            if s.local_addr().unwrap().port().is_multiple_of(2) {
                break s;
            }
        };
        sock.set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        let port = sock.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, s) = (got.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut peer = None;
            let mut next = Instant::now();
            let (mut seq, mut ts, mut n) = (0u16, 0u32, 0u64);
            while !s.load(Ordering::Relaxed) {
                if let Ok((len, from)) = sock.recv_from(&mut buf)
                    && len > 12
                    && buf[1] & 0x7F == 0
                {
                    peer = Some(from);
                    g.lock().unwrap().push(buf[12..len].to_vec());
                }
                if let Some(to) = peer
                    && Instant::now() >= next
                {
                    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78];
                    p[2..4].copy_from_slice(&seq.to_be_bytes());
                    p[4..8].copy_from_slice(&ts.to_be_bytes());
                    for _ in 0..160 {
                        let v =
                            (2.0 * std::f64::consts::PI * hz * n as f64 / 8000.0).sin() * 8000.0;
                        p.push(linear_to_ulaw(v as i16));
                        n += 1;
                    }
                    let _ = sock.send_to(&p, to);
                    seq = seq.wrapping_add(1);
                    ts = ts.wrapping_add(160);
                    next += Duration::from_millis(20);
                }
            }
        });
        Self {
            port,
            got,
            stop,
            thread: Some(thread),
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    /// The share of the last second's power at `hz` (Goertzel over each 20 ms frame).
    pub(crate) fn tone_power(&self, hz: f64) -> f64 {
        let got = self.got.lock().unwrap();
        let frames: Vec<f64> = got
            .iter()
            .rev()
            .take(50)
            .flat_map(|p| p.iter().map(|b| f64::from(ulaw_to_linear(*b))))
            .collect();
        if frames.len() < 160 * 10 {
            return 0.0;
        }
        let total: f64 = frames.iter().map(|x| x * x).sum::<f64>();
        if total < 1e3 * frames.len() as f64 {
            return 0.0;
        }
        let mut at = 0.0;
        for chunk in frames.chunks(160) {
            at += goertzel(chunk, hz, 8000.0);
        }
        // A pure tone's Goertzel power over N samples is about N/2 × its energy.
        (at * 2.0 / 160.0 / total).min(1.0)
    }

    /// The last second's mean power (PCMU silence is about 0; a prompt is thousands).
    pub(crate) fn power(&self) -> f64 {
        let got = self.got.lock().unwrap();
        let samples: Vec<f64> = got
            .iter()
            .rev()
            .take(50)
            .flat_map(|p| p.iter().map(|b| f64::from(ulaw_to_linear(*b))))
            .collect();
        if samples.is_empty() {
            return 0.0;
        }
        samples.iter().map(|x| x * x).sum::<f64>() / samples.len() as f64
    }

    pub(crate) fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ToneMedia {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn goertzel(x: &[f64], hz: f64, rate: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / rate;
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for v in x {
        let s = v + c * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - c * s1 * s2
}

fn ulaw_to_linear(u: u8) -> i16 {
    let u = !u;
    let t = ((i32::from(u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4);
    (if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }) as i16
}

fn linear_to_ulaw(s: i16) -> u8 {
    let mut x = i32::from(s);
    let sign = if x < 0 {
        x = -x;
        0x80
    } else {
        0
    };
    x = (x + 0x84).min(0x7FFF);
    let mut exp = 7;
    while exp > 0 && x & (0x4000 >> (7 - exp)) == 0 {
        exp -= 1;
    }
    let mantissa = (x >> (exp + 3)) & 0x0F;
    !(sign | (exp << 4) as u8 | mantissa as u8)
}

#[test]
fn ulaw_round_trips() {
    for s in [-30000i16, -1000, -1, 0, 1, 1000, 30000] {
        let back = ulaw_to_linear(linear_to_ulaw(s));
        assert!(
            (i32::from(back) - i32::from(s)).abs() <= i32::from(s).abs() / 16 + 8,
            "{s} -> {back}"
        );
    }
}
