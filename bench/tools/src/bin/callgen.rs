//! callgen: a SIP caller generator with its own RTP sink, for bench/run.
//!
//! Each call: INVITE (UDP, Timer A retransmits) → 200 → ACK → hold → BYE. The offer's SDP
//! points at one RTP socket per call, owned by the call; every datagram is stamped by the
//! kernel on arrival (`SO_TIMESTAMPNS`), so the spacing we report is the spacing on the wire,
//! not our own scheduling delay. Optionally each caller sends 20 ms PCMU silence and presses a
//! key (RFC 4733) at a given time after answer; then we measure key → first packet of the next
//! prompt (recognised by the payload of that prompt's first non-silent frame, loaded from --prompts;
//! barge-in switches prompts without a silence, so the marker bit is not a reliable cue).
//!
//! Prints one JSON object on stdout. Usage: `callgen --help`.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hammond::media::rtp::{RtpHeader, RtpPacket, write_packet};
use hammond_bench::{cpu_ticks, now_ns, pct, rss_kib, ticks_per_sec, udp_errors, udp_socket_drops};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

const HELP: &str = "callgen --sip HOST:PORT [--service bench] [--calls N] [--cps R]
  [--hold-ms MS] [--hold-after-ramp] [--rtp-base PORT] [--send-rtp] [--dtmf-at-ms MS]
  [--inband] [--watch NAME=PID ...] [--settle-ms MS] [--prompts DIR] [--next-prompt ID]
--hold-after-ramp: every call stays up until all calls are set up, then --hold-ms more
(scenario 1); otherwise each call holds --hold-ms from its own answer (setup rate).
--inband: the key at --dtmf-at-ms is a 100 ms DTMF tone in the audio, not RFC 4733 events.";

#[derive(Debug, Clone)]
struct Args {
    sip: SocketAddr,
    service: String,
    calls: usize,
    cps: f64,
    hold_ms: u64,
    hold_after_ramp: bool,
    rtp_base: u16,
    send_rtp: bool,
    dtmf_at_ms: Option<u64>,
    /// The key is a tone in the audio (in-band) rather than RFC 4733 events.
    inband: bool,
    watch: Vec<(String, u32)>,
    settle_ms: u64,
    /// With --dtmf-at-ms: the prompt the key should start, recognised by its first
    /// non-silent 20 ms frame: (frame index in the prompt, PCMU payload).
    next_prompt: Option<(u32, Vec<u8>)>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        sip: "127.0.0.1:5060".parse().unwrap(),
        service: "bench".into(),
        calls: 10,
        cps: 50.0,
        hold_ms: 5000,
        hold_after_ramp: false,
        rtp_base: 12000,
        send_rtp: false,
        dtmf_at_ms: None,
        inband: false,
        watch: Vec::new(),
        settle_ms: 1000,
        next_prompt: None,
    };
    let mut prompts_dir = "prompts".to_owned();
    let mut next_id = "callback_menu".to_owned();
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or(format!("{k} needs a value"));
        match k.as_str() {
            "--sip" => a.sip = v()?.parse().map_err(|e| format!("--sip: {e}"))?,
            "--service" => a.service = v()?,
            "--calls" => a.calls = v()?.parse().map_err(|e| format!("--calls: {e}"))?,
            "--cps" => a.cps = v()?.parse().map_err(|e| format!("--cps: {e}"))?,
            "--hold-ms" => a.hold_ms = v()?.parse().map_err(|e| format!("--hold-ms: {e}"))?,
            "--hold-after-ramp" => a.hold_after_ramp = true,
            "--rtp-base" => a.rtp_base = v()?.parse().map_err(|e| format!("--rtp-base: {e}"))?,
            "--send-rtp" => a.send_rtp = true,
            "--dtmf-at-ms" => {
                a.dtmf_at_ms = Some(v()?.parse().map_err(|e| format!("--dtmf-at-ms: {e}"))?)
            }
            "--inband" => a.inband = true,
            "--settle-ms" => a.settle_ms = v()?.parse().map_err(|e| format!("--settle-ms: {e}"))?,
            "--watch" => {
                let s = v()?;
                let (n, p) = s.split_once('=').ok_or("--watch NAME=PID")?;
                a.watch.push((
                    n.to_owned(),
                    p.parse().map_err(|e| format!("--watch: {e}"))?,
                ));
            }
            "--prompts" => prompts_dir = v()?,
            "--next-prompt" => next_id = v()?,
            "-h" | "--help" => return Err(HELP.into()),
            other => return Err(format!("unknown argument {other}\n{HELP}")),
        }
    }
    if a.dtmf_at_ms.is_some() {
        let lib = hammond::media::prompts::PromptLibrary::load(std::path::Path::new(&prompts_dir))
            .map_err(|e| format!("--prompts {prompts_dir}: {e}"))?;
        let p = lib.get(&next_id).ok_or(format!("no prompt {next_id}"))?;
        let bytes = p.payload(hammond::media::g711::Codec::Pcmu);
        let quiet = |f: &[u8]| f.iter().all(|b| matches!(b, 0xFC..=0xFF | 0x7C..=0x7F));
        a.next_prompt = bytes
            .chunks_exact(160)
            .enumerate()
            .find(|(_, f)| !quiet(f))
            .map(|(i, f)| (i as u32, f.to_vec()));
        if a.next_prompt.is_none() {
            return Err(format!("prompt {next_id} is silent"));
        }
    }
    Ok(a)
}

/// What the SIP receiver hands a call.
#[derive(Debug)]
enum SipIn {
    Response {
        code: u16,
        method: String,
        to: String,
        contact: Option<String>,
        /// Record-Route, as the proxies in between wrote it (top first).
        record_route: Vec<String>,
        body: String,
    },
    RemoteBye,
}

struct Shared {
    args: Args,
    sip: Arc<UdpSocket>,
    local_sip: SocketAddr,
    calls: Mutex<HashMap<String, mpsc::UnboundedSender<SipIn>>>,
    /// Window in which spacing is recorded (ns, CLOCK_REALTIME); 0 = not yet known.
    win_start: AtomicI64,
    win_end: AtomicI64,
    /// Calls set up or failed so far.
    settled: AtomicUsize,
    /// With --hold-after-ramp: when every call hangs up (ns); 0 = not yet known.
    end_at: AtomicI64,
}

/// Per-call outcome.
#[derive(Debug, Default)]
struct CallResult {
    fail: Option<String>,
    setup_ns: Option<i64>,
    invite_retrans: u32,
    ok_retrans: u32,
    bye_retrans: u32,
    remote_bye: bool,
    packets: u64,
    in_window: u64,
    lost: u64,
    late: u64,
    spacing_us: Vec<u32>,
    pps: Option<f64>,
    dtmf_ns: Option<i64>,
}

fn header<'a>(msg: &'a str, names: &[&str]) -> Option<&'a str> {
    for line in msg.split("\r\n").skip(1) {
        if line.is_empty() {
            break;
        }
        if let Some((n, v)) = line.split_once(':')
            && names.iter().any(|x| n.trim().eq_ignore_ascii_case(x))
        {
            return Some(v.trim());
        }
    }
    None
}

fn all_headers<'a>(msg: &'a str, names: &[&str]) -> Vec<&'a str> {
    let mut out = Vec::new();
    for line in msg.split("\r\n").skip(1) {
        if line.is_empty() {
            break;
        }
        if let Some((n, v)) = line.split_once(':')
            && names.iter().any(|x| n.trim().eq_ignore_ascii_case(x))
        {
            out.push(v.trim());
        }
    }
    out
}

async fn sip_receiver(sh: Arc<Shared>) {
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, from)) = sh.sip.recv_from(&mut buf).await else {
            continue;
        };
        let Ok(msg) = std::str::from_utf8(&buf[..n]) else {
            continue;
        };
        let Some(call_id) = header(msg, &["call-id", "i"]) else {
            continue;
        };
        let first = msg.split("\r\n").next().unwrap_or("");
        let tx = sh.calls.lock().unwrap().get(call_id).cloned();
        if let Some(rest) = first.strip_prefix("SIP/2.0 ") {
            let code: u16 = rest.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            let method = header(msg, &["cseq"])
                .and_then(|c| c.split_whitespace().nth(1))
                .unwrap_or("")
                .to_owned();
            let body = msg.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
            if let Some(tx) = tx {
                let _ = tx.send(SipIn::Response {
                    code,
                    method,
                    to: header(msg, &["to", "t"]).unwrap_or("").to_owned(),
                    contact: header(msg, &["contact", "m"]).map(str::to_owned),
                    record_route: all_headers(msg, &["record-route"])
                        .iter()
                        .flat_map(|v| v.split(','))
                        .map(|r| r.trim().to_owned())
                        .collect(),
                    body,
                });
            }
        } else {
            let method = first.split(' ').next().unwrap_or("");
            if method == "ACK" {
                continue;
            }
            // Answer every request 200 (BYE, INFO, OPTIONS) and tell the call about a BYE.
            let mut rsp = String::from("SIP/2.0 200 OK\r\n");
            for v in all_headers(msg, &["via", "v"]) {
                rsp.push_str(&format!("Via: {v}\r\n"));
            }
            for (name, keys) in [
                ("From", &["from", "f"][..]),
                ("To", &["to", "t"][..]),
                ("Call-ID", &["call-id", "i"][..]),
                ("CSeq", &["cseq"][..]),
            ] {
                if let Some(v) = header(msg, keys) {
                    rsp.push_str(&format!("{name}: {v}\r\n"));
                }
            }
            rsp.push_str("Content-Length: 0\r\n\r\n");
            let _ = sh.sip.send_to(rsp.as_bytes(), from).await;
            if method == "BYE"
                && let Some(tx) = tx
            {
                let _ = tx.send(SipIn::RemoteBye);
            }
        }
    }
}

/// Enable kernel receive timestamps on a socket.
fn enable_timestamps(sock: &UdpSocket) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: valid fd, pointer to a c_int of the given size.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&raw const one).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn set_rcvbuf(fd: i32, bytes: libc::c_int) {
    // SAFETY: valid fd, pointer to a c_int of the given size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&raw const bytes).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// One non-blocking `recvmsg`: (length, kernel arrival time in ns).
fn recv_stamped(fd: i32, buf: &mut [u8]) -> io::Result<(usize, i64)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cmsg = [0u64; 16];
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr().cast();
    msg.msg_controllen = size_of_val(&cmsg) as _;
    // SAFETY: msg points at live buffers for the duration of the call.
    let n = unsafe { libc::recvmsg(fd, &raw mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut at = None;
    // SAFETY: walking the control buffer the kernel filled, with the libc CMSG macros.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&raw const msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                at = Some(ts.tv_sec * 1_000_000_000 + ts.tv_nsec);
            }
            c = libc::CMSG_NXTHDR(&raw const msg, c);
        }
    }
    Ok((n as usize, at.unwrap_or_else(now_ns)))
}

/// Receive-side statistics of the stream Hammond sends one call.
#[derive(Default)]
struct Sink {
    packets: u64,
    in_window: u64,
    first_ext_seq: Option<u64>,
    max_ext_seq: u64,
    last_seq: u16,
    cycles: u64,
    last_at: Option<i64>,
    first_at: i64,
    spacing_us: Vec<u32>,
    late: u64,
    key_at: Option<i64>,
    dtmf_ns: Option<i64>,
}

impl Sink {
    fn on_packet(
        &mut self,
        at: i64,
        pkt: &RtpPacket<'_>,
        win: (i64, i64),
        next: Option<&(u32, Vec<u8>)>,
    ) {
        self.packets += 1;
        // Extended sequence number (RFC 3550 A.1, simplified: no probation).
        let ext = match self.first_ext_seq {
            None => {
                self.first_ext_seq = Some(u64::from(pkt.seq));
                self.first_at = at;
                u64::from(pkt.seq)
            }
            Some(_) => {
                if pkt.seq < self.last_seq && self.last_seq.wrapping_sub(pkt.seq) > 0x8000 {
                    self.cycles += 1 << 16;
                }
                self.cycles + u64::from(pkt.seq)
            }
        };
        self.last_seq = pkt.seq;
        self.max_ext_seq = self.max_ext_seq.max(ext);
        if let Some(prev) = self.last_at {
            let (ws, we) = win;
            if ws > 0 && prev >= ws && (we == 0 || at <= we) {
                let d = at - prev;
                self.spacing_us
                    .push((d / 1000).clamp(0, i64::from(u32::MAX)) as u32);
                self.in_window += 1;
                if d > 40_000_000 {
                    self.late += 1;
                }
            }
        }
        self.last_at = Some(at);
        if let (Some(k), None, Some((idx, frame))) = (self.key_at, self.dtmf_ns, next)
            && at > k
            && pkt.payload == frame.as_slice()
        {
            // The prompt's first packet went out `idx` frames before this one.
            self.dtmf_ns = Some(at - k - i64::from(*idx) * 20_000_000);
        }
    }
}

struct Call {
    sh: Arc<Shared>,
    idx: usize,
    call_id: String,
    from_tag: String,
    to: String,
    remote_target: String,
    /// The dialog's route set (RFC 3261 §12.1.2: the 2xx's Record-Route, reversed): a call
    /// through a proxy (Kamailio) sends its ACK and BYE by it.
    route: Vec<String>,
    rtp: UdpSocket,
    rtp_port: u16,
    remote_rtp: Option<SocketAddr>,
    te_pt: u8,
    seq: u16,
    ts: u32,
    ssrc: u32,
    res: CallResult,
    sink: Sink,
}

fn branch() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "z9hG4bK-cg{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Call {
    fn invite(&self, br: &str) -> String {
        let a = &self.sh.args;
        let l = self.sh.local_sip;
        let sdp = format!(
            "v=0\r\no=callgen {i} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {p} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n",
            i = self.idx,
            p = self.rtp_port
        );
        format!(
            "INVITE sip:{svc}@{r} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch={br};rport\r\n\
             From: <sip:1555{num:07}@{l}>;tag={tag}\r\nTo: <sip:{svc}@{r}>\r\nCall-ID: {cid}\r\n\
             CSeq: 1 INVITE\r\nContact: <sip:1555{num:07}@{l}>\r\nMax-Forwards: 70\r\n\
             Content-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{sdp}",
            svc = a.service,
            r = a.sip,
            num = self.idx,
            tag = self.from_tag,
            cid = self.call_id,
            len = sdp.len(),
        )
    }

    fn in_dialog(&self, method: &str, cseq: u32) -> String {
        let l = self.sh.local_sip;
        let routes: String = self.route.iter().map(|r| format!("Route: {r}\r\n")).collect();
        format!(
            "{method} {target} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch={br};rport\r\n\
             From: <sip:1555{num:07}@{l}>;tag={tag}\r\nTo: {to}\r\nCall-ID: {cid}\r\n\
             CSeq: {cseq} {method}\r\n{routes}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            target = self.remote_target,
            br = branch(),
            num = self.idx,
            tag = self.from_tag,
            to = self.to,
            cid = self.call_id,
        )
    }

    async fn send_sip(&self, msg: &str) {
        let _ = self.sh.sip.send_to(msg.as_bytes(), self.sh.args.sip).await;
    }

    fn drain_rtp(&mut self, buf: &mut [u8]) {
        let fd = self.rtp.as_raw_fd();
        let win = (
            self.sh.win_start.load(Ordering::Relaxed),
            self.sh.win_end.load(Ordering::Relaxed),
        );
        while let Ok((n, at)) = self
            .rtp
            .try_io(Interest::READABLE, || recv_stamped(fd, buf))
        {
            if let Ok(p) = RtpPacket::parse(&buf[..n]) {
                self.sink
                    .on_packet(at, &p, win, self.sh.args.next_prompt.as_ref());
            }
        }
    }

    /// One 20 ms frame from the caller: a DTMF packet while a key is being sent, else silence.
    fn send_frame(&mut self, key_frame: Option<u32>) {
        let Some(dest) = self.remote_rtp else { return };
        let mut buf = [0u8; 200];
        // PCMU audio: silence, or key '1' in-band.
        let audio = |buf: &mut [u8], payload: &[u8]| {
            let h = RtpHeader {
                pt: 0,
                marker: false,
                seq: self.seq,
                ts: self.ts,
                ssrc: self.ssrc,
            };
            write_packet(buf, &h, payload)
        };
        let n = match key_frame {
            Some(f) if self.sh.args.inband => {
                // Key '1' in the audio: 697 Hz + 1209 Hz, each about −10 dBm0, for 5 frames.
                let mut pcmu = [0u8; 160];
                for (i, out) in pcmu.iter_mut().enumerate() {
                    let t = f64::from(f * 160 + i as u32) / 8000.0;
                    let tau = std::f64::consts::TAU;
                    let v = 5000.0 * ((tau * 697.0 * t).sin() + (tau * 1209.0 * t).sin());
                    *out = hammond::media::g711::ulaw_encode(v as i16);
                }
                audio(&mut buf, &pcmu)
            }
            Some(f) => {
                // RFC 4733: 4 frames of event '1' growing in duration, then 3 end packets, all
                // with the event's start timestamp; marker on the first.
                let end = f >= 4;
                let dur = ((f.min(4) + 1) * 160) as u16;
                let d = dur.to_be_bytes();
                let payload = [1u8, if end { 0x80 | 10 } else { 10 }, d[0], d[1]];
                let h = RtpHeader {
                    pt: self.te_pt,
                    marker: f == 0,
                    seq: self.seq,
                    ts: self.ts.wrapping_sub(f * 160),
                    ssrc: self.ssrc,
                };
                write_packet(&mut buf, &h, &payload)
            }
            None => audio(&mut buf, &[0xFF; 160]),
        };
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(160);
        let _ = self.rtp.try_send_to(&buf[..n], dest);
    }
}

fn parse_sdp(body: &str) -> (Option<SocketAddr>, u8) {
    let mut ip = None;
    let mut port = None;
    let mut te = 101;
    for l in body.lines() {
        let l = l.trim();
        if let Some(c) = l.strip_prefix("c=IN IP4 ") {
            ip = c.trim().parse::<std::net::IpAddr>().ok();
        } else if let Some(m) = l.strip_prefix("m=audio ") {
            port = m
                .split_whitespace()
                .next()
                .and_then(|p| p.parse::<u16>().ok());
        } else if let Some(r) = l.strip_prefix("a=rtpmap:")
            && r.to_ascii_lowercase().contains("telephone-event")
        {
            te = r
                .split_whitespace()
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(101);
        }
    }
    (ip.zip(port).map(|(i, p)| SocketAddr::new(i, p)), te)
}

fn settle(sh: &Shared) {
    let n = sh.settled.fetch_add(1, Ordering::SeqCst) + 1;
    // Hold-after-ramp mode measures from here; setup-rate mode measures the whole ramp.
    if n == sh.args.calls && sh.args.hold_after_ramp {
        let now = now_ns();
        let end = now + sh.args.hold_ms as i64 * 1_000_000;
        sh.end_at.store(end, Ordering::SeqCst);
        sh.win_end.store(end - 50_000_000, Ordering::SeqCst);
        sh.win_start
            .store(now + sh.args.settle_ms as i64 * 1_000_000, Ordering::SeqCst);
    }
}

/// Callers' RTP ports are `--rtp-base` + 2·(call index modulo this): 12000–19998 by default,
/// clear of Hammond's `rtp_ports` in the bench (20000–31999). Counting on past it wrapped
/// the port number into Hammond's range, and at 1,000 calls/s the callers' sockets then
/// moved through it as fast as Hammond's round-robin cursor, which found no free port.
const RTP_PORT_SPAN: usize = 4000;

async fn run_call(sh: Arc<Shared>, idx: usize) -> CallResult {
    let port =
        u16::try_from(usize::from(sh.args.rtp_base) + 2 * (idx % RTP_PORT_SPAN)).unwrap_or(0);
    // Our port, or (taken by someone else) any free one: the SDP names the port we got.
    let bound = match UdpSocket::bind(("127.0.0.1", port)).await {
        Ok(s) => Ok(s),
        Err(_) => UdpSocket::bind(("127.0.0.1", 0)).await,
    };
    let rtp = match bound {
        Ok(s) => s,
        Err(e) => {
            settle(&sh);
            return CallResult {
                fail: Some(format!("rtp bind: {e}")),
                ..CallResult::default()
            };
        }
    };
    let _ = enable_timestamps(&rtp);
    set_rcvbuf(rtp.as_raw_fd(), 256 * 1024);
    let port = rtp.local_addr().map_or(port, |a| a.port());
    let call_id = format!("cg{}-{idx}@127.0.0.1", std::process::id());
    let (tx, mut rx) = mpsc::unbounded_channel();
    sh.calls.lock().unwrap().insert(call_id.clone(), tx);
    let mut c = Call {
        sh: sh.clone(),
        idx,
        from_tag: format!("cgtag{idx}"),
        to: String::new(),
        remote_target: String::new(),
        route: Vec::new(),
        call_id: call_id.clone(),
        rtp,
        rtp_port: port,
        remote_rtp: None,
        te_pt: 101,
        seq: 1000,
        ts: 0,
        ssrc: 0x4000_0000 | idx as u32,
        res: CallResult::default(),
        sink: Sink::default(),
    };
    let res = drive(&mut c, &mut rx).await;
    sh.calls.lock().unwrap().remove(&call_id);
    res
}

#[derive(PartialEq)]
enum Phase {
    Inviting,
    Up,
    Byeing,
}

async fn drive(c: &mut Call, rx: &mut mpsc::UnboundedReceiver<SipIn>) -> CallResult {
    let sh = c.sh.clone();
    let args = &sh.args;
    let t0 = now_ns();
    let br = branch();
    let invite = c.invite(&br);
    c.send_sip(&invite).await;
    let mut phase = Phase::Inviting;
    let mut interval = Duration::from_millis(500);
    let mut next_retx = Some(Instant::now() + interval);
    let mut give_up = Some(Instant::now() + Duration::from_secs(32));
    let mut hang_up_at: Option<Instant> = None;
    let mut key_at: Option<Instant> = None;
    let mut key_frame: Option<u32> = None;
    let mut bye = String::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let ticking = args.send_rtp || args.dtmf_at_ms.is_some();
    let mut buf = vec![0u8; 2048];
    let mut settled = false;
    loop {
        // With --hold-after-ramp the hang-up time is known only once every call is up.
        if phase == Phase::Up && hang_up_at.is_none() {
            let end = sh.end_at.load(Ordering::SeqCst);
            if end != 0 {
                let wait = (end - now_ns()).max(0) as u64;
                hang_up_at = Some(Instant::now() + Duration::from_nanos(wait));
            }
        }
        let mut wake = Instant::now() + Duration::from_secs(3600);
        for t in [give_up, next_retx, hang_up_at, key_at]
            .into_iter()
            .flatten()
        {
            wake = wake.min(t);
        }
        if phase == Phase::Up && hang_up_at.is_none() {
            wake = wake.min(Instant::now() + Duration::from_millis(100));
        }
        tokio::select! {
            m = rx.recv() => match m {
                None => break,
                Some(SipIn::RemoteBye) => {
                    c.res.remote_bye = true;
                    if phase == Phase::Inviting && !settled { settle(&sh); }
                    break;
                }
                Some(SipIn::Response { code, method, to, contact, record_route, body }) => {
                    match (method.as_str(), code) {
                        ("INVITE", 100..=199) if phase == Phase::Inviting => {
                            next_retx = None;
                        }
                        ("INVITE", 200..=299) => {
                            if phase != Phase::Inviting {
                                // A retransmitted 200: our ACK was late or lost.
                                c.res.ok_retrans += 1;
                                let ack = c.in_dialog("ACK", 1);
                                c.send_sip(&ack).await;
                                continue;
                            }
                            c.res.setup_ns = Some(now_ns() - t0);
                            c.to = to;
                            c.route = record_route.into_iter().rev().collect();
                            c.remote_target = contact
                                .and_then(|v| {
                                    let s = v.find('<')? + 1;
                                    let e = v[s..].find('>')? + s;
                                    Some(v[s..e].to_owned())
                                })
                                .unwrap_or_else(|| format!("sip:{}@{}", args.service, args.sip));
                            let (r, te) = parse_sdp(&body);
                            c.remote_rtp = r;
                            c.te_pt = te;
                            let ack = c.in_dialog("ACK", 1);
                            c.send_sip(&ack).await;
                            phase = Phase::Up;
                            next_retx = None;
                            give_up = None;
                            settled = true;
                            settle(&sh);
                            if !args.hold_after_ramp {
                                hang_up_at = Some(Instant::now() + Duration::from_millis(args.hold_ms));
                            }
                            if let Some(ms) = args.dtmf_at_ms {
                                key_at = Some(Instant::now() + Duration::from_millis(ms));
                            }
                        }
                        ("INVITE", _) if phase == Phase::Inviting => {
                            // Non-2xx final: ACK it (same branch) and give up.
                            let l = sh.local_sip;
                            let ack = format!(
                                "ACK sip:{svc}@{r} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch={br};rport\r\n\
                                 From: <sip:1555{num:07}@{l}>;tag={tag}\r\nTo: {to}\r\nCall-ID: {cid}\r\n\
                                 CSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
                                svc = args.service, r = args.sip, num = c.idx, tag = c.from_tag,
                                cid = c.call_id);
                            c.send_sip(&ack).await;
                            c.res.fail = Some(format!("INVITE {code}"));
                            settle(&sh);
                            break;
                        }
                        ("BYE", 200..=699) if phase == Phase::Byeing => break,
                        _ => {}
                    }
                }
            },
            r = c.rtp.readable() => {
                if r.is_ok() { c.drain_rtp(&mut buf); }
            },
            _ = tick.tick(), if ticking && phase == Phase::Up => {
                if let Some(f) = key_frame {
                    c.send_frame(Some(f));
                    // RFC 4733: 7 packets; in-band: 5 frames of tone (100 ms).
                    let last = if args.inband { 4 } else { 6 };
                    key_frame = if f >= last { None } else { Some(f + 1) };
                } else if args.send_rtp {
                    c.send_frame(None);
                } else {
                    c.ts = c.ts.wrapping_add(160);
                }
            },
            () = sleep_until(wake) => {
                let now = Instant::now();
                if give_up.is_some_and(|g| now >= g) {
                    c.res.fail = Some(match phase {
                        Phase::Inviting => "INVITE timeout".to_owned(),
                        _ => "BYE timeout".to_owned(),
                    });
                    if phase == Phase::Inviting { settle(&sh); }
                    break;
                }
                if key_at.is_some_and(|k| now >= k) {
                    key_at = None;
                    c.sink.key_at = Some(now_ns());
                    c.send_frame(Some(0));
                    key_frame = Some(1);
                }
                if next_retx.is_some_and(|t| now >= t) {
                    match phase {
                        Phase::Inviting => { c.res.invite_retrans += 1; c.send_sip(&invite).await; }
                        Phase::Byeing => { c.res.bye_retrans += 1; c.send_sip(&bye).await; }
                        Phase::Up => {}
                    }
                    interval = (interval * 2).min(Duration::from_secs(4));
                    next_retx = Some(now + interval);
                }
                if phase == Phase::Up && hang_up_at.is_some_and(|t| now >= t) {
                    bye = c.in_dialog("BYE", 2);
                    c.send_sip(&bye).await;
                    phase = Phase::Byeing;
                    hang_up_at = None;
                    give_up = Some(now + Duration::from_secs(32));
                    interval = Duration::from_millis(500);
                    next_retx = Some(now + interval);
                }
            }
        }
    }
    let s = std::mem::take(&mut c.sink);
    let mut res = std::mem::take(&mut c.res);
    res.packets = s.packets;
    res.in_window = s.in_window;
    if let Some(first) = s.first_ext_seq {
        let expected = s.max_ext_seq - first + 1;
        res.lost = expected.saturating_sub(s.packets);
        if let Some(last) = s.last_at
            && last > s.first_at
        {
            res.pps = Some((s.packets - 1) as f64 / ((last - s.first_at) as f64 / 1e9));
        }
    }
    res.late = s.late;
    res.spacing_us = s.spacing_us;
    res.dtmf_ns = s.dtmf_ns;
    res
}

fn ms(ns: i64) -> f64 {
    (ns as f64 / 1e4).round() / 100.0
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let out = rt.block_on(run(args));
    println!("{out}");
}

async fn run(args: Args) -> serde_json::Value {
    let std_sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind sip");
    set_rcvbuf(std_sock.as_raw_fd(), 8 << 20);
    std_sock.set_nonblocking(true).expect("nonblocking");
    let sip = Arc::new(UdpSocket::from_std(std_sock).expect("sip socket"));
    let local_sip = sip.local_addr().expect("local addr");
    let sh = Arc::new(Shared {
        args: args.clone(),
        sip,
        local_sip,
        calls: Mutex::new(HashMap::new()),
        win_start: AtomicI64::new(0),
        win_end: AtomicI64::new(0),
        settled: AtomicUsize::new(0),
        end_at: AtomicI64::new(0),
    });
    tokio::spawn(sip_receiver(sh.clone()));
    let udp0 = udp_errors();
    let me = std::process::id();
    let mut watch = args.watch.clone();
    watch.push(("callgen".into(), me));
    let idle_rss: Vec<u64> = watch
        .iter()
        .map(|(_, p)| rss_kib(*p).unwrap_or(0))
        .collect();

    // CPU and RSS over the measuring window, sampled from /proc.
    let mon = {
        let sh = sh.clone();
        let watch = watch.clone();
        tokio::spawn(async move {
            loop {
                let s = sh.win_start.load(Ordering::SeqCst);
                if s != 0 && now_ns() >= s {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let t0 = now_ns();
            let c0: Vec<u64> = watch
                .iter()
                .map(|(_, p)| cpu_ticks(*p).unwrap_or(0))
                .collect();
            let mut peak = vec![0u64; watch.len()];
            loop {
                for (i, (_, p)) in watch.iter().enumerate() {
                    peak[i] = peak[i].max(rss_kib(*p).unwrap_or(0));
                }
                let e = sh.win_end.load(Ordering::SeqCst);
                if e != 0 && now_ns() >= e - 100_000_000 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let pids: Vec<u32> = watch.iter().map(|(_, p)| *p).collect();
            let drops = udp_socket_drops(&pids);
            let t1 = now_ns();
            let c1: Vec<u64> = watch
                .iter()
                .map(|(_, p)| cpu_ticks(*p).unwrap_or(0))
                .collect();
            let secs = (t1 - t0) as f64 / 1e9;
            let cpu: Vec<f64> = c0
                .iter()
                .zip(&c1)
                .map(|(a, b)| (b - a) as f64 / ticks_per_sec() / secs * 100.0)
                .collect();
            (secs, cpu, peak, drops)
        })
    };

    let start = Instant::now();
    if !args.hold_after_ramp {
        // Setup-rate mode: the window is the whole ramp (plus the last calls' hold).
        sh.win_start.store(now_ns(), Ordering::SeqCst);
    }
    let mut handles = Vec::with_capacity(args.calls);
    for i in 0..args.calls {
        let at = start + Duration::from_secs_f64(i as f64 / args.cps);
        sleep_until(at).await;
        handles.push(tokio::spawn(run_call(sh.clone(), i)));
    }
    if !args.hold_after_ramp {
        sh.win_end
            .store(now_ns() + args.hold_ms as i64 * 1_000_000, Ordering::SeqCst);
    }
    let mut results = Vec::with_capacity(args.calls);
    for h in handles {
        results.push(h.await.unwrap_or_default());
    }
    let (win_secs, cpu, peak, drops) = mon.await.unwrap_or((0.0, vec![], vec![], 0));
    let udp1 = udp_errors();

    let mut fails: HashMap<String, usize> = HashMap::new();
    let mut setup: Vec<i64> = Vec::new();
    let mut spacing: Vec<u32> = Vec::new();
    let mut dtmf: Vec<i64> = Vec::new();
    let mut pps: Vec<f64> = Vec::new();
    let (mut ir, mut or, mut br, mut rb, mut pk, mut lost, mut late, mut silent) =
        (0, 0, 0, 0, 0u64, 0u64, 0u64, 0);
    for r in &results {
        if let Some(f) = &r.fail {
            *fails.entry(f.clone()).or_default() += 1;
        }
        setup.extend(r.setup_ns);
        spacing.extend_from_slice(&r.spacing_us);
        dtmf.extend(r.dtmf_ns);
        pps.extend(r.pps);
        ir += r.invite_retrans;
        or += r.ok_retrans;
        br += r.bye_retrans;
        rb += usize::from(r.remote_bye);
        pk += r.packets;
        lost += r.lost;
        late += r.late;
        if r.setup_ns.is_some() && r.packets == 0 {
            silent += 1;
        }
    }
    setup.sort_unstable();
    spacing.sort_unstable();
    dtmf.sort_unstable();
    pps.sort_by(f64::total_cmp);
    let mut dev: Vec<u32> = spacing.iter().map(|s| s.abs_diff(20_000)).collect();
    dev.sort_unstable();
    let us = |v: u32| f64::from(v) / 1000.0;
    let procs: serde_json::Map<String, serde_json::Value> = watch
        .iter()
        .enumerate()
        .map(|(i, (n, _))| {
            (
                n.clone(),
                serde_json::json!({
                    "cpu_pct": cpu.get(i).map(|c| (c * 10.0).round() / 10.0),
                    "rss_idle_kib": idle_rss[i],
                    "rss_peak_kib": peak.get(i),
                }),
            )
        })
        .collect();
    let answered = setup.len();
    serde_json::json!({
        "calls": args.calls,
        "cps": args.cps,
        "answered": answered,
        "failed": fails,
        "remote_bye": rb,
        "setup_ms": {"p50": ms(pct(&setup, 0.5)), "p99": ms(pct(&setup, 0.99)), "max": ms(pct(&setup, 1.0))},
        "retransmissions": {"invite": ir, "ok_200": or, "bye": br},
        "rtp": {
            "packets": pk, "spacings": spacing.len(), "lost": lost, "late_over_40ms": late,
            "calls_without_rtp": silent,
            "spacing_ms": {"p50": us(pct(&spacing, 0.5)), "p99": us(pct(&spacing, 0.99)),
                           "p999": us(pct(&spacing, 0.999)), "max": us(pct(&spacing, 1.0))},
            "abs_dev_ms": {"p99": us(pct(&dev, 0.99)), "p999": us(pct(&dev, 0.999)), "max": us(pct(&dev, 1.0))},
            "pps_per_stream": {"min": pps.first(), "p50": pct(&pps, 0.5), "max": pps.last()},
        },
        "dtmf_to_prompt_ms": {"n": dtmf.len(), "p50": ms(pct(&dtmf, 0.5)), "p99": ms(pct(&dtmf, 0.99)), "max": ms(pct(&dtmf, 1.0))},
        "window_s": (win_secs * 10.0).round() / 10.0,
        "procs": procs,
        "udp_socket_drops": drops,
        "udp_rcvbuf_errors": udp1.0.saturating_sub(udp0.0),
        "udp_in_errors": udp1.1.saturating_sub(udp0.1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(seq: u16, payload: &[u8]) -> RtpPacket<'_> {
        RtpPacket {
            pt: 0,
            marker: false,
            seq,
            ts: u32::from(seq) * 160,
            ssrc: 1,
            payload,
        }
    }

    #[test]
    fn sink_counts_loss_across_wrap_and_spacing_in_window_only() {
        let mut s = Sink::default();
        let ms = 1_000_000;
        let win = (100 * ms, 0);
        // seq 65534, 65535, (0 lost), 1 — arrivals 20 ms apart; the first falls before the window.
        for (i, seq) in [65534u16, 65535, 1].into_iter().enumerate() {
            let at = 90 * ms + i as i64 * 20 * ms + if seq == 1 { 20 * ms } else { 0 };
            s.on_packet(at, &pkt(seq, &[0xFF; 160]), win, None);
        }
        assert_eq!(s.packets, 3);
        let expected = s.max_ext_seq - s.first_ext_seq.unwrap() + 1;
        assert_eq!(expected - s.packets, 1, "one packet lost over the wrap");
        // Only the spacing whose first packet is inside the window counts: 110 → 150 ms.
        assert_eq!(s.spacing_us, vec![40_000]);
        assert_eq!(s.late, 0, "40 ms is not over 40 ms");
    }

    #[test]
    fn sink_times_key_to_the_next_prompt_frame() {
        let mut s = Sink::default();
        let frame = vec![0x10u8; 160];
        let next = (2u32, frame.clone());
        s.key_at = Some(1_000);
        s.on_packet(500, &pkt(1, &frame), (0, 0), Some(&next));
        assert_eq!(s.dtmf_ns, None, "before the key");
        s.on_packet(2_000, &pkt(2, &[0xFF; 160]), (0, 0), Some(&next));
        assert_eq!(s.dtmf_ns, None, "silence is not the prompt");
        s.on_packet(50_000_000, &pkt(3, &frame), (0, 0), Some(&next));
        // The matched frame is the prompt's third: its first packet left 40 ms earlier.
        assert_eq!(s.dtmf_ns, Some(50_000_000 - 1_000 - 40_000_000));
    }

    #[test]
    fn sdp_answer_gives_media_address_and_event_type() {
        let sdp = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 20002 RTP/AVP 0 96\r\n\
                   a=rtpmap:96 telephone-event/8000\r\n";
        let (addr, te) = parse_sdp(sdp);
        assert_eq!(addr, Some("127.0.0.1:20002".parse().unwrap()));
        assert_eq!(te, 96);
    }
}
