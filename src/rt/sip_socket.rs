//! The SIP endpoint task: UDP and TCP on `[sip] listen`, driving the sans-IO
//! [`UserAgent`](crate::sip::ua::UserAgent) per its run-loop contract, and handing its events
//! to whoever owns the calls (the [`EventSink`]).
//!
//! TCP: one small task per connection frames messages by Content-Length
//! ([`crate::sip::msg::frame`]), enforces an idle timeout, a header timeout (slowloris) and a
//! connection cap, and answers CRLF keep-alives (RFC 5626 §4.4.1).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::clock;
use crate::sip::msg::{self, MAX_DATAGRAM};
use crate::sip::txn::Wire;
use crate::sip::ua::{Command, Link, Peer, SipEvent, UserAgent};

/// Receives the user agent's events; implemented by the call manager.
pub trait EventSink: Send {
    /// Called for every event, in order, from the endpoint task. Must not block.
    fn dispatch(&mut self, event: SipEvent, ua: &UaHandle);
}

/// A cloneable way to send commands to the user agent from any task.
#[derive(Debug, Clone)]
pub struct UaHandle {
    tx: mpsc::UnboundedSender<Command>,
    next_call: Arc<AtomicU64>,
}

impl UaHandle {
    pub fn send(&self, cmd: Command) {
        // The endpoint outlives every call task; a failed send means we are shutting down.
        let _ = self.tx.send(cmd);
    }

    /// A fresh id for an outbound leg. Ids from here never collide with the user agent's own,
    /// which count up from 1: these count down from `u64::MAX`.
    pub fn new_call_id(&self) -> crate::sip::ua::CallId {
        crate::sip::ua::CallId(self.next_call.fetch_sub(1, Ordering::Relaxed))
    }
}

/// TCP limits (hardening).
#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    pub idle_timeout: Duration,
    /// A connection must deliver a complete message within this time of its first byte.
    pub header_timeout: Duration,
    pub max_connections: usize,
}

impl Default for TcpLimits {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}

/// Bound sockets, ready to run. Binding is separate from running so `hammond run` fails fast
/// (and tests learn the ports) before anything is spawned.
pub struct SipSockets {
    pub udp: UdpSocket,
    pub tcp: TcpListener,
}

impl SipSockets {
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        // With port 0 the OS picks a free UDP port, which may be taken for TCP: try again.
        let attempts = if addr.port() == 0 { 20 } else { 1 };
        let mut last = None;
        for _ in 0..attempts {
            let udp = bind_udp(addr, SIP_SOCKET_BUFFER)?;
            match TcpListener::bind(udp.local_addr()?).await {
                Ok(tcp) => return Ok(Self { udp, tcp }),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no port for both UDP and TCP")))
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.udp.local_addr()
    }
}

/// Kernel buffer for the SIP UDP socket: a burst of a thousand BYEs (a shift change, a flood)
/// must queue rather than be dropped and retransmitted. SIPp needs the same under load.
const SIP_SOCKET_BUFFER: usize = 4 * 1024 * 1024;

/// A non-blocking UDP socket with the given send and receive buffer sizes (the kernel may cap
/// them at `net.core.rmem_max`; that is not an error).
pub fn bind_udp(addr: SocketAddr, buffer: usize) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let _ = sock.set_recv_buffer_size(buffer);
    let _ = sock.set_send_buffer_size(buffer);
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    UdpSocket::from_std(sock.into())
}

enum Inbound {
    Message(Peer, Vec<u8>),
    Closed(u64),
}

/// Messages framed by TCP readers, waiting for the endpoint. A full queue makes the readers
/// wait, so a flooding peer is slowed at its own socket (TCP backpressure), not buffered here.
const TCP_INBOUND_QUEUE: usize = 1024;
/// Messages waiting to be written to one TCP connection. A peer that lets this many pile up
/// is not reading: its connection is closed rather than buffered without limit.
const TCP_OUTBOUND_QUEUE: usize = 64;

/// Create the command channel first, so call managers can hold a handle before the loop runs.
pub fn ua_channel() -> (UaHandle, mpsc::UnboundedReceiver<Command>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        UaHandle {
            tx,
            next_call: Arc::new(AtomicU64::new(u64::MAX)),
        },
        rx,
    )
}

/// Run the endpoint until `shutdown` fires.
pub async fn run(
    sockets: SipSockets,
    mut ua: UserAgent,
    handle: UaHandle,
    mut commands: mpsc::UnboundedReceiver<Command>,
    mut sink: impl EventSink,
    limits: TcpLimits,
    shutdown: CancellationToken,
) {
    let SipSockets { udp, tcp } = sockets;
    let (in_tx, mut in_rx) = mpsc::channel::<Inbound>(TCP_INBOUND_QUEUE);
    let mut conns: HashMap<u64, mpsc::Sender<Wire>> = HashMap::new();
    let open_conns = Arc::new(AtomicU64::new(0));
    let mut next_conn = 1u64;
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];

    loop {
        while let Some(t) = ua.poll_transmit() {
            count_response(&t.bytes);
            match t.peer.link {
                Link::Udp => {
                    if let Err(e) = udp.send_to(&t.bytes, t.peer.addr).await {
                        warn!(peer = %t.peer.addr, error = %e, "SIP send failed");
                    }
                }
                Link::Tcp(id) => match conns.get(&id).map(|tx| tx.try_send(t.bytes)) {
                    Some(Ok(())) => {}
                    Some(Err(mpsc::error::TrySendError::Full(_))) => {
                        warn!(conn = id, "TCP peer is not reading; closing its connection");
                        conns.remove(&id);
                    }
                    Some(Err(mpsc::error::TrySendError::Closed(_))) | None => {
                        debug!(conn = id, "TCP connection gone; message dropped");
                    }
                },
            }
        }
        while let Some(ev) = ua.poll_event() {
            sink.dispatch(ev, &handle);
        }
        let deadline = ua.poll_timeout();
        tokio::select! {
            r = udp.recv_from(&mut buf) => match r {
                Ok((n, from)) if n <= MAX_DATAGRAM => {
                    if n > 4 || !buf[..n].iter().all(|b| b.is_ascii_whitespace()) {
                        ua.handle_message(clock::now(), Peer { addr: from, link: Link::Udp }, &buf[..n]);
                    }
                }
                Ok((_, from)) => debug!(peer = %from, "oversized datagram dropped"),
                // ICMP port unreachable surfaces here on some systems: not fatal.
                Err(e) => debug!(error = %e, "UDP receive error"),
            },
            r = tcp.accept() => if let Ok((stream, from)) = r {
                if open_conns.load(Ordering::Relaxed) as usize >= limits.max_connections {
                    warn!(peer = %from, "TCP connection cap reached; refusing");
                    drop(stream);
                } else {
                    let id = next_conn;
                    next_conn += 1;
                    open_conns.fetch_add(1, Ordering::Relaxed);
                    let (out_tx, out_rx) = mpsc::channel(TCP_OUTBOUND_QUEUE);
                    conns.insert(id, out_tx);
                    let in_tx = in_tx.clone();
                    let open = open_conns.clone();
                    tokio::spawn(async move {
                        connection(id, stream, from, in_tx.clone(), out_rx, limits).await;
                        open.fetch_sub(1, Ordering::Relaxed);
                        let _ = in_tx.send(Inbound::Closed(id)).await;
                    });
                }
            },
            Some(inb) = in_rx.recv() => match inb {
                Inbound::Message(peer, bytes) => ua.handle_message(clock::now(), peer, &bytes),
                Inbound::Closed(id) => { conns.remove(&id); }
            },
            Some(cmd) = commands.recv() => ua.handle_command(clock::now(), cmd),
            () = sleep_until(deadline) => ua.handle_timeout(clock::now()),
            () = shutdown.cancelled() => break,
        }
    }
}

async fn sleep_until(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// One TCP connection: frame inbound messages, write outbound ones, time out idle peers.
async fn connection(
    id: u64,
    mut stream: TcpStream,
    from: SocketAddr,
    in_tx: mpsc::Sender<Inbound>,
    mut out_rx: mpsc::Receiver<Wire>,
    limits: TcpLimits,
) {
    let peer = Peer {
        addr: from,
        link: Link::Tcp(id),
    };
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    let mut partial_since: Option<tokio::time::Instant> = None;
    loop {
        let idle = tokio::time::sleep(limits.idle_timeout);
        let header_deadline = async {
            match partial_since {
                Some(t) => tokio::time::sleep_until(t + limits.header_timeout).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = stream.read(&mut chunk) => {
                let n = match r { Ok(0) | Err(_) => return, Ok(n) => n };
                buf.extend_from_slice(&chunk[..n]);
                loop {
                    // RFC 5626 §4.4.1: a double-CRLF ping gets a single-CRLF pong.
                    if buf.starts_with(b"\r\n\r\n") {
                        buf.drain(..4);
                        if stream.write_all(b"\r\n").await.is_err() { return; }
                        continue;
                    }
                    match msg::frame(&buf) {
                        Ok(Some(len)) => {
                            let bytes: Vec<u8> = buf.drain(..len).collect();
                            let trimmed = trim_leading_crlf(&bytes);
                            if !trimmed.is_empty()
                                && in_tx.send(Inbound::Message(peer, trimmed.to_vec())).await.is_err()
                            {
                                return;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            debug!(conn = id, error = %e, "unframeable TCP stream; closing");
                            // Let the user agent answer 400 if it can read a Via.
                            let _ = in_tx.send(Inbound::Message(peer, std::mem::take(&mut buf))).await;
                            return;
                        }
                    }
                }
                partial_since = if buf.iter().all(|b| *b == b'\r' || *b == b'\n') {
                    None
                } else {
                    partial_since.or_else(|| Some(clock::now().into()))
                };
            }
            out = out_rx.recv() => match out {
                Some(bytes) => if stream.write_all(&bytes).await.is_err() { return; },
                // The endpoint dropped us (a peer not reading what we send).
                None => return,
            },
            () = idle => { debug!(conn = id, "TCP idle timeout"); return; }
            () = header_deadline => { debug!(conn = id, "TCP header timeout"); return; }
        }
    }
}

fn trim_leading_crlf(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| *c != b'\r' && *c != b'\n')
        .unwrap_or(b.len());
    &b[start..]
}

/// `hammond_sip_responses_total{code}` for every response we send.
fn count_response(bytes: &[u8]) {
    // Each code's counter is looked up once: a labelled look-up per response showed in the
    // set-up profile.
    static COUNTERS: [OnceLock<metrics::Counter>; 600] = [const { OnceLock::new() }; 600];
    let Some(code) = bytes
        .strip_prefix(b"SIP/2.0 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|c| std::str::from_utf8(c).ok())
        .and_then(|c| c.parse::<usize>().ok())
    else {
        return;
    };
    if let Some(counter) = code.checked_sub(100).and_then(|i| COUNTERS.get(i)) {
        counter
            .get_or_init(|| crate::metrics::sip_responses(code))
            .increment(1);
    }
}
