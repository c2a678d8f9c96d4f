//! webrtcbench (issue 16): Hammond's CPU per bridged browser call against a bridged SIP-phone
//! call, in the same run, and the set-up time from the page's accept to two-way audio.
//!
//! One Hammond (release, pinned by the caller of this tool) has N SIP-phone agents (`sip-i`,
//! all answered by one SIPp UAS that streams PCMU with `rtp_stream`) and N browser agents
//! (`web-i`, `endpoint = "webrtc"`, each driven here by a Rust WebRTC client: webrtc-rs's
//! sans-IO `rtc` as the offering side, full ICE, DTLS client, PCMU at 20 ms). Phases alternate
//! kinds (sip, web, web, sip, …): the phase's agents go available, N SIPp callers (streaming
//! PCMU) call the `support` queue, the router pushes each to an agent, and once all N are
//! bridged Hammond's CPU (utime + stime from /proc) is read over `--measure` seconds. Both
//! directions carry audio in both kinds, so the difference is the browser leg's own work
//! (ICE consent and the DTLS handshake in the peer connection's task, SRTP both ways on the
//! media thread with the keys the handshake exported).
//!
//! Usage: `webrtcbench --hammond PATH --sipp-dir bench/sipp --queues config/queues
//!   --prompts prompts [--calls N] [--measure S] [--rounds R] [--hammond-cpu C]`
//! Prints one JSON line per phase and a summary line.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hammond_bench::{cpu_ticks, pct, ticks_per_sec};
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::RTCPeerConnectionBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_PCMU, MediaEngine};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UdpSocket};

#[derive(Clone)]
struct Args {
    hammond: String,
    sipp_dir: String,
    queues: String,
    prompts: String,
    calls: usize,
    measure: u64,
    rounds: usize,
    hammond_cpu: String,
}

fn args() -> Args {
    let mut a = Args {
        hammond: "target/release/hammond".into(),
        sipp_dir: "bench/sipp".into(),
        queues: "config/queues".into(),
        prompts: "prompts".into(),
        calls: 50,
        measure: 20,
        rounds: 2,
        hammond_cpu: "0".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--hammond" => a.hammond = v,
            "--sipp-dir" => a.sipp_dir = v,
            "--queues" => a.queues = v,
            "--prompts" => a.prompts = v,
            "--calls" => a.calls = v.parse().expect("--calls"),
            "--measure" => a.measure = v.parse().expect("--measure"),
            "--rounds" => a.rounds = v.parse().expect("--rounds"),
            "--hammond-cpu" => a.hammond_cpu = v,
            _ => panic!("unknown argument {k}"),
        }
    }
    a
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Start Hammond with N agents of each kind; returns the process and its HTTP and SIP addresses.
fn start_hammond(
    a: &Args,
    dir: &std::path::Path,
    uas_port: u16,
) -> (Child, SocketAddr, SocketAddr) {
    let sip_port = free_port();
    let http_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = format!(
        "[sip]\nlisten = \"127.0.0.1:{sip_port}\"\nmax_calls = 20000\n[sip.trunk]\nproxy = \"127.0.0.1:{uas_port}\"\n\
         [media]\nrtp_ports = \"30000-39999\"\n[http]\nlisten = \"127.0.0.1:{http_port}\"\nmax_connections = 4096\n\
         [queues]\ndir = \"{}\"\n[prompts]\ndir = \"{}\"\n[data]\ndir = \"{}\"\n",
        a.queues,
        a.prompts,
        dir.join("data").display()
    );
    for i in 0..a.calls {
        cfg += &format!(
            "[[agents]]\nid = \"sip-{i}\"\nendpoint = \"sip:agent{i}@127.0.0.1:{uas_port}\"\nqueues = [\"support\"]\ntoken = \"t-sip-{i}\"\n\
             [[agents]]\nid = \"web-{i}\"\nendpoint = \"webrtc\"\nqueues = [\"support\"]\ntoken = \"t-web-{i}\"\n"
        );
    }
    let path = dir.join("hammond.toml");
    std::fs::write(&path, cfg).unwrap();
    let mut child = Command::new("taskset")
        .args(["-c", &a.hammond_cpu, &a.hammond, "run", "--config"])
        .arg(&path)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("hammond.log")).unwrap())
        .spawn()
        .expect("start hammond");
    let out = child.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(out));
    let ready = lines
        .find(|l| l.as_ref().is_ok_and(|l| l.starts_with("hammond ready")))
        .expect("hammond did not start")
        .unwrap();
    eprintln!("{ready}");
    std::thread::spawn(move || for _ in lines {});
    (
        child,
        SocketAddr::from(([127, 0, 0, 1], http_port)),
        SocketAddr::from(([127, 0, 0, 1], sip_port)),
    )
}

/// One HTTP/1.1 request (`Connection: close`); the reply's status and body.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect to the API");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, rest.to_owned())
}

/// What the browser clients measured.
#[derive(Default)]
struct Stats {
    /// POST answer → first RTP from Hammond, per call (ms).
    setup_ms: Mutex<Vec<f64>>,
    rx: AtomicU64,
    tx: AtomicU64,
    up: AtomicUsize,
}

/// One browser agent: its phone stream, answering every call that rings.
async fn browser_agent(http_addr: SocketAddr, id: String, token: String, stats: Arc<Stats>) {
    let mut s = TcpStream::connect(http_addr).await.expect("phone stream");
    let req = format!(
        "GET /api/v1/phone/events HTTP/1.1\r\nHost: {http_addr}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut lines = BufReader::new(s).lines();
    let mut event = String::new();
    let mut calls: HashMap<u64, tokio::sync::oneshot::Sender<()>> = HashMap::new();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(e) = line.strip_prefix("event:") {
            event = e.trim().to_owned();
        } else if let Some(d) = line.strip_prefix("data:") {
            let v: serde_json::Value = serde_json::from_str(d.trim()).unwrap_or_default();
            let call = v["call"].as_u64().unwrap_or(0);
            match event.as_str() {
                "ringing" => {
                    let (stop, stopped) = tokio::sync::oneshot::channel();
                    calls.insert(call, stop);
                    tokio::spawn(browser_call(
                        http_addr,
                        token.clone(),
                        call,
                        stats.clone(),
                        stopped,
                    ));
                }
                "ended" => {
                    calls.remove(&call);
                }
                _ => {}
            }
        }
    }
    eprintln!("phone stream of {id} ended");
}

fn pcmu() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_PCMU.to_owned(),
            clock_rate: 8000,
            channels: 1,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vec![],
        },
        payload_type: 0,
    }
}

/// One call in a browser: offer, answer from Hammond, ICE + DTLS, then PCMU every 20 ms
/// until Hammond ends the call.
async fn browser_call(
    http_addr: SocketAddr,
    token: String,
    call: u64,
    stats: Arc<Stats>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = sock.local_addr().unwrap();
    let mut engine = MediaEngine::default();
    engine.register_codec(pcmu(), RtpCodecKind::Audio).unwrap();
    let now = Instant::now();
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_setting_engine(SettingEngineBuilder::new().build())
        .with_media_engine(engine)
        .with_interceptor_registry(Registry::new())
        .build(now)
        .unwrap();
    let ssrc: u32 = rand_u32(call);
    let sender = pc
        .add_track(MediaStreamTrack::new(
            "page".into(),
            "page-audio".into(),
            "page-audio".into(),
            RtpCodecKind::Audio,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: pcmu().rtp_codec,
                ..Default::default()
            }],
        ))
        .unwrap();
    let cand = CandidateHostConfig {
        base_config: CandidateConfig {
            network: "udp".into(),
            address: local.ip().to_string(),
            port: local.port(),
            component: 1,
            ..Default::default()
        },
        ..Default::default()
    }
    .new_candidate_host()
    .unwrap();
    pc.add_local_candidate(RTCIceCandidate::from(&cand).to_json().unwrap())
        .unwrap();
    let offer = pc.create_offer(None).unwrap();
    pc.set_local_description(Instant::now(), offer).unwrap();
    let sdp = pc.local_description().unwrap().sdp;
    let accepted = Instant::now();
    let body = serde_json::json!({ "sdp": sdp }).to_string();
    let (status, reply) = http(
        http_addr,
        "POST",
        &format!("/api/v1/phone/calls/{call}/answer"),
        &token,
        &body,
    )
    .await;
    if status != 200 {
        eprintln!("answer {call}: {status} {reply}");
        return;
    }
    let v: serde_json::Value = serde_json::from_str(&reply).unwrap();
    let answer = RTCSessionDescription::answer(v["sdp"].as_str().unwrap().to_owned()).unwrap();
    pc.set_remote_description(Instant::now(), answer).unwrap();

    let mut buf = vec![0u8; 1500];
    let mut connected = false;
    let mut first_rx = false;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let (mut seq, mut ts) = (0u16, 0u32);
    let payload: Vec<u8> = (0..160u32).map(|n| ((n * 37) % 200) as u8 + 20).collect();
    loop {
        while let Some(out) = pc.poll_write() {
            let _ = sock.send_to(&out.message, out.transport.peer_addr).await;
        }
        while let Some(ev) = pc.poll_event() {
            if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) = ev {
                match s {
                    RTCPeerConnectionState::Connected => {
                        connected = true;
                        stats.up.fetch_add(1, Ordering::Relaxed);
                    }
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                        if connected {
                            stats.up.fetch_sub(1, Ordering::Relaxed);
                        }
                        return;
                    }
                    _ => {}
                }
            }
        }
        while let Some(TaggedRTCMessage { message, .. }) = pc.poll_read() {
            if let RTCMessage::RtpPacket(..) = message {
                stats.rx.fetch_add(1, Ordering::Relaxed);
                if !first_rx {
                    first_rx = true;
                    let ms = accepted.elapsed().as_secs_f64() * 1000.0;
                    stats.setup_ms.lock().unwrap().push(ms);
                }
            }
        }
        let wake = pc
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        tokio::select! {
            _ = &mut stopped => break,
            r = sock.recv_from(&mut buf) => if let Ok((n, peer)) = r {
                let _ = pc.handle_read(TaggedBytesMut {
                    now: Instant::now(),
                    transport: TransportContext {
                        local_addr: local,
                        peer_addr: peer,
                        ecn: None,
                        transport_protocol: TransportProtocol::UDP,
                    },
                    message: BytesMut::from(&buf[..n]),
                });
            },
            _ = tick.tick(), if connected => {
                let packet = rtc::rtp::Packet {
                    header: rtc::rtp::header::Header {
                        version: 2,
                        payload_type: 0,
                        sequence_number: seq,
                        timestamp: ts,
                        ssrc,
                        ..Default::default()
                    },
                    payload: bytes::Bytes::from(payload.clone()),
                };
                seq = seq.wrapping_add(1);
                ts = ts.wrapping_add(160);
                if let Some(mut s) = pc.rtp_sender(sender)
                    && s.write_rtp(Instant::now(), packet).is_ok()
                {
                    stats.tx.fetch_add(1, Ordering::Relaxed);
                }
            }
            () = tokio::time::sleep_until(wake.into()) => {
                let _ = pc.handle_timeout(Instant::now());
            }
        }
    }
    let _ = pc.close();
    while let Some(out) = pc.poll_write() {
        let _ = sock.send_to(&out.message, out.transport.peer_addr).await;
    }
    if connected {
        stats.up.fetch_sub(1, Ordering::Relaxed);
    }
}

fn rand_u32(seed: u64) -> u32 {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xDEAD_BEEF;
    x ^= x >> 29;
    x as u32 | 1
}

async fn set_presence(http_addr: SocketAddr, kind: &str, n: usize, status: &str) {
    for i in 0..n {
        let (code, body) = http(
            http_addr,
            "PUT",
            &format!("/api/v1/agents/{kind}-{i}/status"),
            &format!("t-{kind}-{i}"),
            &format!("{{\"status\": \"{status}\"}}"),
        )
        .await;
        assert_eq!(code, 200, "{body}");
    }
}

async fn connected_count(http_addr: SocketAddr) -> usize {
    let (status, body) = http(
        http_addr,
        "GET",
        "/api/v1/interactions?status=connected",
        "t-sip-0",
        "",
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    if status != 200 || v.is_null() {
        eprintln!("interactions: {status} {}", &body[..body.len().min(300)]);
    }
    v["interactions"].as_array().map_or(0, Vec::len)
}

/// Children killed when the run ends (or panics).
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a = args();
    let dir = std::env::temp_dir().join(format!("webrtcbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let uas_port = free_port();
    let (hammond, http_addr, sip_addr) = start_hammond(&a, &dir, uas_port);
    let pid = hammond.id();
    let mut procs = Procs(vec![hammond]);
    // The SIP phones (and the trunk, unused): answer at once and stream PCMU.
    let uas = Command::new("sipp")
        .current_dir(&a.sipp_dir)
        .args([
            "-sf",
            "phone_streams.xml",
            "-i",
            "127.0.0.1",
            "-p",
            &uas_port.to_string(),
        ])
        .args(["-mp", "40000", "-nostdin", "-m", "1000000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp uas");
    procs.0.push(uas);
    let stats = Arc::new(Stats::default());
    for i in 0..a.calls {
        tokio::spawn(browser_agent(
            http_addr,
            format!("web-{i}"),
            format!("t-web-{i}"),
            stats.clone(),
        ));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tps = ticks_per_sec();
    let mut per_kind: HashMap<&str, Vec<f64>> = HashMap::new();
    for round in 0..a.rounds {
        let order: [&str; 2] = if round % 2 == 0 {
            ["sip", "web"]
        } else {
            ["web", "sip"]
        };
        for kind in order {
            set_presence(http_addr, kind, a.calls, "available").await;
            let hold_ms = (a.measure + 30) * 1000;
            let started = Instant::now();
            let mut callers = Command::new("sipp")
                .current_dir(&a.sipp_dir)
                .args([
                    "-sf",
                    "caller_streams.xml",
                    &sip_addr.to_string(),
                    "-s",
                    "support",
                ])
                .args(["-i", "127.0.0.1", "-p", &free_port().to_string()])
                .args([
                    "-m",
                    &a.calls.to_string(),
                    "-r",
                    "20",
                    "-d",
                    &hold_ms.to_string(),
                ])
                .args([
                    "-mp",
                    "46000",
                    "-nostdin",
                    "-trace_err",
                    "-error_file",
                    "/tmp/webrtcbench-callers.err",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("sipp callers");
            // Bridged: wait until the count stops growing (the router may leave a caller or two
            // waiting: it is measured with what is up).
            let (mut n, mut stable) = (0, Instant::now());
            while started.elapsed() < Duration::from_secs(45) {
                let now_n = connected_count(http_addr).await;
                if now_n != n {
                    (n, stable) = (now_n, Instant::now());
                }
                if n >= a.calls || (n > 0 && stable.elapsed() > Duration::from_secs(4)) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            assert!(n > 0, "{kind}: nothing bridged");
            tokio::time::sleep(Duration::from_secs(1)).await;
            let (rx0, tx0) = (
                stats.rx.load(Ordering::Relaxed),
                stats.tx.load(Ordering::Relaxed),
            );
            let c0 = cpu_ticks(pid).unwrap();
            let t0 = Instant::now();
            tokio::time::sleep(Duration::from_secs(a.measure)).await;
            let c1 = cpu_ticks(pid).unwrap();
            let secs = t0.elapsed().as_secs_f64();
            let n_end = connected_count(http_addr).await;
            let n = n.min(n_end);
            let cpu_ms = (c1 - c0) as f64 / tps * 1000.0;
            let per_call_second = cpu_ms / (n as f64 * secs);
            let (rx, tx) = (
                stats.rx.load(Ordering::Relaxed) - rx0,
                stats.tx.load(Ordering::Relaxed) - tx0,
            );
            per_kind.entry(kind).or_default().push(per_call_second);
            println!(
                "{}",
                serde_json::json!({
                    "round": round, "kind": kind, "bridged": n, "secs": secs,
                    "hammond_cpu_pct": cpu_ms / secs / 10.0,
                    "cpu_ms_per_call_second": per_call_second,
                    "browser_rtp_pps_in": rx as f64 / secs, "browser_rtp_pps_out": tx as f64 / secs,
                })
            );
            set_presence(http_addr, kind, a.calls, "away").await;
            let _ = callers.wait();
            let t = Instant::now();
            while connected_count(http_addr).await > 0 && t.elapsed() < Duration::from_secs(30) {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
    let mut setup = stats.setup_ms.lock().unwrap().clone();
    setup.sort_by(f64::total_cmp);
    let mean = |v: &Vec<f64>| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (sip, web) = (
        mean(per_kind.get("sip").unwrap_or(&vec![])),
        mean(per_kind.get("web").unwrap_or(&vec![])),
    );
    println!(
        "{}",
        serde_json::json!({
            "summary": true, "calls": a.calls,
            "sip_cpu_ms_per_call_second": per_kind.get("sip"),
            "web_cpu_ms_per_call_second": per_kind.get("web"),
            "ratio_web_over_sip": web / sip,
            "accept_to_audio_ms": {"n": setup.len(), "p50": pct(&setup, 0.5), "p99": pct(&setup, 0.99), "max": pct(&setup, 1.0)},
        })
    );
    drop(procs);
    let _ = std::fs::remove_dir_all(&dir);
}
