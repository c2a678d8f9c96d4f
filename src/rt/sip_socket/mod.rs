//! The SIP endpoint task: UDP and TCP on `[sip] listen`, TLS on `[sip] tls_listen`, driving the
//! sans-IO [`UserAgent`](crate::sip::ua::UserAgent) per its run-loop contract, and handing its
//! events to whoever owns the calls (the [`EventSink`]).
//!
//! TCP and TLS: one small task per connection ([`conn`]) frames messages, answers keep-alives
//! and reports idleness; the endpoint keeps the table ([`pool`]) and decides. It
//! - accepts within a global cap and a cap per untrusted source;
//! - closes an idle connection only when no dialog uses it ([`UserAgent::holds`]), and counts
//!   CRLF keep-alives as activity only from trusted sources and on connections it opened;
//! - sends each message on the connection the user agent names; when that one is gone, or
//!   for a dialled leg that names none, on the pooled connection to the message's
//!   [`Transmit::connect`] target, opened (and for TLS, handshaken) when there is none;
//! - reports messages it could not deliver to the user agent
//!   ([`UserAgent::handle_transport_error`]), so a dial to a trunk that refuses the connection
//!   or presents an untrusted certificate fails at once, with the reason.

mod conn;
mod pool;
pub mod tls;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use self::pool::{Cap, Conns, Refused};
use crate::clock;
use crate::pii::Pii;
use crate::sip::msg::MAX_DATAGRAM;
use crate::sip::transport::{Connect, Proto, Transmit, TransportError, TxnKey};
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

/// TCP and TLS limits (hardening).
#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    /// After this long without a SIP message a connection no dialog uses is closed.
    pub idle_timeout: Duration,
    /// A connection must deliver a complete message within this time of its first byte, and
    /// an accepted TLS connection finish its handshake within it.
    pub header_timeout: Duration,
    /// Accepted connections at once.
    pub max_connections: usize,
    /// Accepted connections at once from one untrusted source (IPv4 address or IPv6 /64).
    pub max_per_source: usize,
}

impl Default for TcpLimits {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
            max_per_source: 16,
        }
    }
}

/// How the endpoint runs its connections: limits, and the TLS client config for connections it
/// opens (`None`: TLS destinations fail at once).
#[derive(Clone, Default)]
pub struct Streams {
    pub limits: TcpLimits,
    pub tls_client: Option<Arc<rustls::ClientConfig>>,
}

/// Bound sockets, ready to run. Binding is separate from running so `hammond run` fails fast
/// (and tests learn the ports) before anything is spawned.
pub struct SipSockets {
    pub udp: UdpSocket,
    pub tcp: TcpListener,
    /// `[sip] tls_listen` and its acceptor, when configured.
    pub tls: Option<(TcpListener, TlsAcceptor)>,
}

impl SipSockets {
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        // With port 0 the OS picks a free UDP port, which may be taken for TCP: try again.
        let attempts = if addr.port() == 0 { 20 } else { 1 };
        let mut last = None;
        for _ in 0..attempts {
            let udp = bind_udp(addr, SIP_SOCKET_BUFFER)?;
            match TcpListener::bind(udp.local_addr()?).await {
                Ok(tcp) => {
                    return Ok(Self {
                        udp,
                        tcp,
                        tls: None,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no port for both UDP and TCP")))
    }

    /// Listen for SIP over TLS on `addr` too.
    pub async fn bind_tls(
        &mut self,
        addr: SocketAddr,
        acceptor: TlsAcceptor,
    ) -> std::io::Result<()> {
        self.tls = Some((TcpListener::bind(addr).await?, acceptor));
        Ok(())
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.udp.local_addr()
    }

    /// The TLS listener's address, when there is one.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().and_then(|(l, _)| l.local_addr().ok())
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

/// What connection tasks tell the endpoint.
enum Inbound {
    Message(Peer, Vec<u8>),
    /// No SIP message for the idle timeout: close it unless a dialog uses it.
    Idle(u64),
    /// Messages a connection never delivered (it could not be opened, or closed first).
    Undelivered(Vec<TxnKey>, TransportError),
    Closed(u64),
}

/// What the endpoint tells a connection task.
enum Out {
    /// Write a message; the transaction that sent it, if any, for failure reports.
    Send(Wire, Option<TxnKey>),
    /// Send a CRLF keep-alive (RFC 5626 §4.4.1) and expect a pong.
    Ping,
    /// Close, unless a message arrived since the task reported idle.
    CloseIfIdle,
}

/// Messages framed by connection readers, waiting for the endpoint. A full queue makes the
/// readers wait, so a flooding peer is slowed at its own socket (TCP backpressure), not
/// buffered here.
const TCP_INBOUND_QUEUE: usize = 1024;
/// Messages waiting to be written to one connection. A peer that lets this many pile up is not
/// reading: its connection is closed rather than buffered without limit.
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
    streams: Streams,
    shutdown: CancellationToken,
) {
    let SipSockets { udp, tcp, tls } = sockets;
    let (in_tx, mut in_rx) = mpsc::channel::<Inbound>(TCP_INBOUND_QUEUE);
    let mut ep = Endpoint {
        conns: Conns::default(),
        in_tx,
        streams,
    };
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];

    loop {
        while let Some(t) = ua.poll_transmit() {
            count_response(&t.bytes);
            if t.peer.link == Link::Udp {
                if let Err(e) = udp.send_to(&t.bytes, t.peer.addr).await {
                    warn!(peer = %t.peer.addr, error = %e, "SIP send failed");
                }
            } else {
                ep.transmit(t, &mut ua);
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
                ep.accept(stream, from, None, &ua);
            },
            r = accept_tls(tls.as_ref()) => if let Ok((stream, from, acceptor)) = r {
                ep.accept(stream, from, Some(acceptor), &ua);
            },
            Some(inb) = in_rx.recv() => ep.inbound(inb, &mut ua),
            Some(cmd) = commands.recv() => ua.handle_command(clock::now(), cmd),
            () = sleep_until(deadline) => ua.handle_timeout(clock::now()),
            () = shutdown.cancelled() => break,
        }
    }
}

async fn accept_tls(
    tls: Option<&(TcpListener, TlsAcceptor)>,
) -> std::io::Result<(TcpStream, SocketAddr, TlsAcceptor)> {
    match tls {
        Some((listener, acceptor)) => {
            let (stream, from) = listener.accept().await?;
            Ok((stream, from, acceptor.clone()))
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// The endpoint's connection side: the table, and how to start connection tasks.
struct Endpoint {
    conns: Conns,
    in_tx: mpsc::Sender<Inbound>,
    streams: Streams,
}

impl Endpoint {
    /// Take an accepted connection (TLS when `acceptor` is given), within the caps.
    fn accept(
        &mut self,
        stream: TcpStream,
        from: SocketAddr,
        acceptor: Option<TlsAcceptor>,
        ua: &UserAgent,
    ) {
        let limits = self.streams.limits;
        let trusted = ua.is_trusted(from.ip());
        if let Err(cap) = self.conns.admit(from.ip(), trusted, &limits) {
            let which = match cap {
                Cap::Global => "sip.tcp_max_connections",
                Cap::PerSource => "sip.tcp_max_connections_per_source",
            };
            warn!(peer = %Pii(from.ip()), cap = which, "SIP connection refused: at its cap");
            return;
        }
        let proto = if acceptor.is_some() {
            Proto::Tls
        } else {
            Proto::Tcp
        };
        let (out_tx, mut out_rx) = mpsc::channel(TCP_OUTBOUND_QUEUE);
        let (id, link) = self.conns.accepted(proto, from.ip(), trusted, out_tx);
        let _ = stream.set_nodelay(true);
        let ctx = conn::Ctx {
            id,
            peer: Peer { addr: from, link },
            in_tx: self.in_tx.clone(),
            limits,
            pings_count: trusted,
        };
        tokio::spawn(async move {
            match acceptor {
                None => conn::run(&ctx, stream, &mut out_rx).await,
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await
                    {
                        Ok(Ok(tls)) => conn::run(&ctx, tls, &mut out_rx).await,
                        Ok(Err(e)) => {
                            debug!(peer = %Pii(from.ip()), error = %e, "TLS handshake from a peer failed");
                        }
                        Err(_) => debug!(peer = %Pii(from.ip()), "TLS handshake timeout"),
                    }
                }
            }
            finish(&ctx.in_tx, id, out_rx, TransportError::Connect).await;
        });
    }

    /// Start a connection to `to`, pooled under it; messages queue until it is up.
    fn open(&mut self, to: Connect) -> u64 {
        let (out_tx, mut out_rx) = mpsc::channel(TCP_OUTBOUND_QUEUE);
        let (id, link) = self.conns.opened(&to, out_tx);
        let in_tx = self.in_tx.clone();
        let streams = self.streams.clone();
        tokio::spawn(async move {
            let error = match tls::open(&to, streams.tls_client.as_ref()).await {
                Ok((opened, addr)) => {
                    debug!(conn = id, proto = %to.proto, host = %to.host, "connected");
                    let ctx = conn::Ctx {
                        id,
                        peer: Peer { addr, link },
                        in_tx: in_tx.clone(),
                        limits: streams.limits,
                        pings_count: true,
                    };
                    match opened {
                        tls::Opened::Tcp(s) => conn::run(&ctx, s, &mut out_rx).await,
                        tls::Opened::Tls(s) => conn::run(&ctx, s, &mut out_rx).await,
                    }
                    TransportError::Connect
                }
                Err((error, detail)) => {
                    warn!(
                        proto = %to.proto,
                        host = %to.host,
                        port = to.port,
                        error = %error,
                        detail = %detail,
                        "SIP connection failed"
                    );
                    error
                }
            };
            finish(&in_tx, id, out_rx, error).await;
        });
        id
    }

    /// Send `t` over TCP or TLS: on its named connection while that is open, else on the
    /// pooled (or a new) connection to its `connect` target.
    fn transmit(&mut self, t: Transmit, ua: &mut UserAgent) {
        let Transmit {
            peer,
            bytes,
            connect,
            txn,
        } = t;
        let mut out = Out::Send(bytes, txn);
        if let Some(id) = peer.link.conn() {
            match self.conns.send(id, out) {
                Ok(()) => return,
                Err(Refused::Full(o)) => {
                    warn!(conn = id, "SIP peer is not reading; closing its connection");
                    self.conns.abandon(id);
                    undelivered(ua, o, TransportError::Connect);
                    return;
                }
                Err(Refused::Gone(o)) => out = o,
            }
        }
        let Some(to) = connect else {
            debug!(link = ?peer.link, "connection gone; message dropped");
            return;
        };
        let id = match self.conns.pooled(&to) {
            Some(id) => id,
            None => self.open(to),
        };
        if let Err(Refused::Full(o) | Refused::Gone(o)) = self.conns.send(id, out) {
            warn!(
                conn = id,
                "SIP connection cannot take more; message dropped"
            );
            undelivered(ua, o, TransportError::Connect);
        }
    }

    fn inbound(&mut self, inb: Inbound, ua: &mut UserAgent) {
        match inb {
            Inbound::Message(peer, bytes) => ua.handle_message(clock::now(), peer, &bytes),
            Inbound::Idle(id) => {
                let Some(c) = self.conns.get(id) else {
                    return;
                };
                let verdict = if !ua.holds(c.link, c.pool.as_ref()) {
                    Some(Out::CloseIfIdle)
                } else if c.pool.is_some() {
                    // A dialog uses a connection we opened: keep it (and any NAT binding on
                    // the way) alive, and learn early if the peer has gone.
                    Some(Out::Ping)
                } else {
                    // The peer opened it and a call uses it: it stays, however long the call
                    // is silent; keeping it alive is the peer's business (RFC 5626 §4.4).
                    None
                };
                if let Some(out) = verdict {
                    let _ = self.conns.send(id, out);
                }
            }
            Inbound::Undelivered(txns, error) => {
                for txn in txns {
                    ua.handle_transport_error(clock::now(), &txn, error);
                }
            }
            Inbound::Closed(id) => self.conns.closed(id),
        }
    }
}

/// A message that will not go out: tell its transaction.
fn undelivered(ua: &mut UserAgent, out: Out, error: TransportError) {
    if let Out::Send(_, Some(txn)) = out {
        ua.handle_transport_error(clock::now(), &txn, error);
    }
}

/// A connection task has ended: whatever is still queued was never delivered.
async fn finish(
    in_tx: &mpsc::Sender<Inbound>,
    id: u64,
    mut out_rx: mpsc::Receiver<Out>,
    error: TransportError,
) {
    out_rx.close();
    let mut txns = Vec::new();
    while let Ok(out) = out_rx.try_recv() {
        if let Out::Send(_, Some(txn)) = out {
            txns.push(txn);
        }
    }
    if !txns.is_empty() {
        let _ = in_tx.send(Inbound::Undelivered(txns, error)).await;
    }
    let _ = in_tx.send(Inbound::Closed(id)).await;
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
