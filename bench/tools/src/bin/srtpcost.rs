//! srtpcost: what SRTP costs on the customer's leg, plain RTP and each SDES suite measured in
//! the same run, through the code the media clock runs (`RtpSession::write_frame` to send a
//! 20 ms PCMU frame, `RtpSession::accept` to take one). One *pair* is one packet each way: a
//! bridged call-second on the customer's leg is 50 pairs.
//!
//! The far end's packets are made (and, for SRTP, protected) before the clock starts, so only
//! Hammond's side is timed. Prints one JSON line per mode: ns per pair (CPU time of this
//! thread) and the CPU-ms per call-second it makes. For instruction counts, run it under
//! `valgrind --tool=callgrind` with a small `--pairs` and read the totals per mode
//! (`--only MODE`).
//!
//! Usage: `srtpcost [--pairs N] [--only plain|80|32]`; instructions per pair:
//! `valgrind --tool=callgrind --toggle-collect='*timed_loop*' srtpcost --pairs 10000 --only 80`
//! (the "Collected" total ÷ the pairs).

use std::net::SocketAddr;
use std::time::Duration;

use hammond::idgen::IdGen;
use hammond::media::g711::Codec;
use hammond::media::sdes::{MasterKey, Suite};
use hammond::media::sdp::{Direction, Negotiated, SrtpKeys};
use hammond::media::session::RtpSession;

fn negotiated(remote: SocketAddr, srtp: Option<(Suite, u8, u8)>) -> Negotiated {
    let key = |seed: u8| MasterKey::generate(|b| b.fill(seed));
    Negotiated {
        codec: Codec::Pcmu,
        dtmf_pt: Some(101),
        remote: Some(remote),
        direction: Direction::SendRecv,
        answer_sdp: String::new(),
        srtp: srtp.map(|(suite, local, remote)| SrtpKeys {
            suite,
            local: key(local),
            remote: key(remote),
            remote_mki: None,
        }),
    }
}

fn thread_cpu_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// The timed part, on its own for callgrind (`--toggle-collect='*timed_loop*'`): for each
/// incoming packet, one frame written (and protected) and one packet taken (and unprotected).
#[inline(never)]
fn timed_loop(
    hammond: &mut RtpSession,
    incoming: &[Vec<u8>],
    speech: &[u8],
    srtp: bool,
    phone: SocketAddr,
) -> usize {
    let now = hammond::clock::now();
    let mut buf = [0u8; 256];
    let mut scratch = [0u8; 1500];
    let mut taken = 0usize;
    for packet in incoming {
        let n = hammond.write_frame(&mut buf, speech, false, 1);
        std::hint::black_box(&buf[..n]);
        let scratch: &mut [u8] = if srtp { &mut scratch } else { &mut [] };
        if let Ok(inb) = hammond.accept(now, phone, packet, scratch) {
            taken += std::hint::black_box(inb.packet.payload.len());
        }
    }
    taken
}

/// Time `pairs` send+receive pairs on Hammond's side; ns of CPU per pair.
fn run(pairs: usize, suite: Option<Suite>) -> f64 {
    let ours: SocketAddr = "127.0.0.1:20000".parse().unwrap();
    let phone: SocketAddr = "127.0.0.1:30000".parse().unwrap();
    let now = hammond::clock::now();
    let mut hammond = RtpSession::new(
        now,
        &mut IdGen::seeded(1),
        &negotiated(phone, suite.map(|s| (s, 1, 2))),
        Some(Duration::from_secs(30)),
    );
    let mut far = RtpSession::new(
        now,
        &mut IdGen::seeded(2),
        &negotiated(ours, suite.map(|s| (s, 2, 1))),
        None,
    );
    let speech: Vec<u8> = (0..160u32).map(|i| (i * 37 % 251) as u8).collect();
    let mut buf = [0u8; 256];
    let incoming: Vec<Vec<u8>> = (0..pairs)
        .map(|_| {
            let n = far.write_frame(&mut buf, &speech, false, 1);
            buf[..n].to_vec()
        })
        .collect();
    let start = thread_cpu_ns();
    let taken = timed_loop(&mut hammond, &incoming, &speech, suite.is_some(), phone);
    let spent = thread_cpu_ns() - start;
    assert_eq!(taken, pairs * 160, "every packet authenticated and taken");
    spent as f64 / pairs as f64
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let pairs: usize = flag("--pairs")
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let only = flag("--only");
    let modes = [
        ("plain", None),
        ("80", Some(Suite::AesCm128HmacSha1_80)),
        ("32", Some(Suite::AesCm128HmacSha1_32)),
    ];
    // Warm up once (page faults, the crypto provider), then measure.
    run(1_000, Some(Suite::AesCm128HmacSha1_80));
    for (name, suite) in modes {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let ns = run(pairs, suite);
        println!(
            "{{\"mode\": \"{name}\", \"pairs\": {pairs}, \"ns_per_pair\": {ns:.0}, \"cpu_ms_per_call_second\": {:.4}}}",
            ns * 50.0 / 1e6
        );
    }
}
