//! An RTP sink: a UDP socket the test owns, named in the SIPp caller's SDP, so the test sees
//! exactly what Hammond sends to a caller, with arrival times.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One received RTP packet.
#[derive(Debug, Clone)]
pub(crate) struct Packet {
    pub at: Instant,
    pub from: SocketAddr,
    pub pt: u8,
    pub marker: bool,
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
    pub payload: Vec<u8>,
}

impl Packet {
    fn parse(at: Instant, from: SocketAddr, b: &[u8]) -> Option<Self> {
        if b.len() < 12 || b[0] >> 6 != 2 {
            return None;
        }
        let cc = usize::from(b[0] & 0x0F);
        let start = 12 + 4 * cc;
        Some(Self {
            at,
            from,
            pt: b[1] & 0x7F,
            marker: b[1] & 0x80 != 0,
            seq: u16::from_be_bytes([b[2], b[3]]),
            ts: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
            payload: b.get(start..)?.to_vec(),
        })
    }
}

pub(crate) struct RtpSink {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Packet>>,
}

impl RtpSink {
    /// Bind an even loopback port (RTP convention) and start receiving.
    pub(crate) fn start() -> Self {
        let sock = loop {
            let s = UdpSocket::bind("127.0.0.1:0").expect("bind the RTP sink");
            if s.local_addr().unwrap().port().is_multiple_of(2) {
                break s;
            }
        };
        let port = sock.local_addr().unwrap().port();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut out = Vec::new();
            let mut buf = [0u8; 2048];
            while !flag.load(Ordering::Relaxed) {
                if let Ok((n, from)) = sock.recv_from(&mut buf)
                    && let Some(p) = Packet::parse(Instant::now(), from, &buf[..n])
                {
                    out.push(p);
                }
            }
            out
        });
        Self { port, stop, thread }
    }

    /// Stop receiving and return every packet, in arrival order.
    pub(crate) fn finish(self) -> Vec<Packet> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("RTP sink thread")
    }
}

/// Arrival spacing of consecutive packets, in milliseconds.
pub(crate) fn gaps_ms(packets: &[Packet]) -> Vec<f64> {
    packets
        .windows(2)
        .map(|w| w[1].at.duration_since(w[0].at).as_secs_f64() * 1000.0)
        .collect()
}

/// The `q` quantile (0..=1) of `values` (nearest rank).
pub(crate) fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    v[i.min(v.len() - 1)]
}
