//! The user agent core: every SIP message in and out of Hammond passes through here. PURE.
//!
//! It owns the transactions (§17) and dialogs (§12) of all calls and applies the policy a PBX
//! expects of a queue endpoint: 403 to untrusted INVITEs before any state is kept, 404/416/420/
//! 483/501 as RFC 3261 asks, OPTIONS answered, CANCEL → 200 + 487, BYE/INFO/re-INVITE in
//! dialogs, 481 for unknown ones, and outbound calls (UAC) for callbacks and agents.
//!
//! Sources are checked, not just identifiers: a request in a dialog (BYE, INFO, re-INVITE,
//! NOTIFY, ACK) is taken only from a hop of that dialog (where its INVITE came from or where
//! we send, its remote target, its route set's first hop) or a trusted source, and a CANCEL
//! only from the hop that sent the INVITE; others get a stateless 403 (an ACK is dropped).
//!
//! # Run loop (the shell's contract, as in str0m)
//! After every `handle_*` call, drain [`UserAgent::poll_transmit`] and [`UserAgent::poll_event`]
//! completely, then sleep until [`UserAgent::poll_timeout`] or the next input. Spurious
//! `handle_timeout` calls are harmless.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::auth;
use super::dialog::{Dialog, DialogKey};
use super::msg::{
    self, HeaderViews, Headers, Message, Method, NameAddr, Params, Request, Response, Uri,
    reason_phrase,
};
use super::pike::{self, Pike, Verdict};
use super::transport::Connect;
pub use super::transport::{Link, Peer, Proto, TlsError, Transmit, TransportError, TxnKey};
use super::txn::{
    InviteClient, InviteServer, NonInviteClient, NonInviteServer, TimerValues, TxnOutput, Wire,
};
use crate::config::{Cidr, canonical_ip};
use crate::idgen::IdGen;

/// Methods we answer (Allow header, §20.5).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY";

/// Hammond's handle for one call leg, inbound or outbound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

/// Why a call leg ended, for the feed and the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// The peer sent BYE.
    RemoteBye,
    /// We sent BYE (its response, or its timeout, closes the leg).
    LocalBye,
    /// Our 2xx was never acknowledged (Timer H): we hang up (§13.3.1.4).
    AckTimeout,
    /// The caller cancelled before the answer.
    Cancelled,
    /// We refused the call with this status.
    Rejected(u16),
}

/// What the user agent reports to the shell. Past tense: these have happened.
#[derive(Debug, Clone)]
pub enum SipEvent {
    /// A new INVITE passed policy; 100 Trying has been sent. Answer with a command.
    IncomingCall {
        call: CallId,
        invite: Box<Request>,
        source: SocketAddr,
    },
    /// The ACK for our 2xx arrived.
    CallConfirmed { call: CallId },
    /// The caller cancelled before the answer (200 to CANCEL and 487 already sent).
    CallCancelled { call: CallId },
    /// A leg is over; forget it.
    CallEnded { call: CallId, reason: EndReason },
    /// A re-INVITE arrived (hold/unhold, address change); answer with `Command::AnswerReInvite`.
    ReInvite { call: CallId, sdp: Vec<u8> },
    /// An INFO arrived in the dialog (already answered 200): DTMF relay and the like.
    InfoReceived {
        call: CallId,
        content_type: String,
        body: Vec<u8>,
    },
    /// An outbound leg got a provisional (180/183, with early-media SDP if any).
    Progress {
        call: CallId,
        status: u16,
        sdp: Vec<u8>,
    },
    /// An outbound leg was answered (ACK sent).
    Answered { call: CallId, sdp: Vec<u8> },
    /// An outbound leg failed: final status, 408 for a timeout, or 503 when the INVITE could
    /// not be delivered (§8.1.3.1), then with the transport's `cause`.
    Failed {
        call: CallId,
        status: u16,
        cause: Option<TransportError>,
    },
    /// The peer answered our REFER (202 accepted, else refused).
    ReferResponse { call: CallId, status: u16 },
    /// A NOTIFY for our REFER: the status line of the sipfrag (RFC 3515 §2.4.5).
    ReferNotify { call: CallId, status: u16 },
}

/// What the shell asks of the user agent. Imperative.
#[derive(Debug, Clone)]
pub enum Command {
    /// 180 Ringing on an incoming call.
    Ring { call: CallId },
    /// 200 OK with this SDP answer.
    Answer { call: CallId, sdp: Vec<u8> },
    /// Refuse an unanswered incoming call.
    Reject { call: CallId, status: u16 },
    /// End a leg: BYE when answered, CANCEL when dialling, reject when ringing.
    Hangup { call: CallId },
    /// Answer a re-INVITE with the session as it now is.
    AnswerReInvite { call: CallId, sdp: Vec<u8> },
    /// Blind transfer (RFC 3515).
    Refer { call: CallId, target: String },
    /// A new outbound leg.
    Dial(Box<Dial>),
}

/// An outbound call (callback to a customer, or the agent's phone).
#[derive(Debug, Clone)]
pub struct Dial {
    pub call: CallId,
    /// Request-URI, e.g. `sip:15551234567@127.0.0.1:5090`.
    pub target: Uri,
    /// Where to send it (the trunk proxy or the agent's endpoint).
    pub next_hop: SocketAddr,
    /// The transport to it. TCP and TLS legs share one connection per next hop.
    pub transport: Proto,
    /// The next hop's host as configured (a DNS name or an IP literal): TLS checks the
    /// server's certificate against it and sends it as SNI.
    pub hop_host: String,
    /// Caller ID: From's user part (and P-Asserted-Identity).
    pub from_user: String,
    pub sdp: Vec<u8>,
    /// Extra headers (e.g. an auto-answer hint for the agent's phone).
    pub extra_headers: Vec<(String, String)>,
    /// Digest credentials for a 401/407 challenge (RFC 3261 §22.2); `None` fails on challenge.
    pub credentials: Option<(String, String)>,
}

/// Policy and identity the user agent applies.
#[derive(Debug, Clone)]
pub struct UaConfig {
    /// The address we put in Via and Contact (UDP and TCP).
    pub local: SocketAddr,
    /// The address of our TLS listener, for Via and Contact of TLS messages; without one
    /// (`None`), TLS messages name `local` and peers must reuse our connections.
    pub local_tls: Option<SocketAddr>,
    /// Value of User-Agent/Server.
    pub user_agent: String,
    pub timers: TimerValues,
    /// Who may send INVITE; others get 403 before any state is kept. Compared with
    /// [`Cidr::contains`], so IPv4-mapped sources of a dual-stack listener match IPv4 networks.
    pub trusted: Vec<Cidr>,
    /// Most calls at once; past it new INVITEs get 503 with Retry-After.
    pub max_calls: usize,
    /// Per-source flood control (`[sip] max_requests_per_source`): past it, new out-of-dialog
    /// requests get 503 with Retry-After; `None` disables it.
    pub per_source: Option<pike::Limit>,
}

/// Server transactions are matched by branch, sent-by and method (§17.2.3; ACK and CANCEL
/// match the INVITE's, which is why the method is INVITE for them).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ServerKey {
    branch: String,
    sent_by: String,
    method: Method,
}

#[derive(Debug)]
enum ServerTxn {
    Invite { txn: InviteServer, call: CallId },
    NonInvite(NonInviteServer),
}

#[derive(Debug)]
enum ClientTxn {
    Invite {
        txn: Box<InviteClient>,
        call: CallId,
        request: Box<Request>,
    },
    NonInvite {
        txn: NonInviteClient,
        call: Option<CallId>,
        method: Method,
    },
}

/// Where one call leg is. States hold only what is valid in them.
#[derive(Debug)]
enum LegState {
    /// Inbound, not answered: its INVITE transaction and the request (for responses).
    Ringing {
        invite: Box<Request>,
        txn: ServerKey,
    },
    /// Inbound, 2xx sent, waiting for the ACK. `bye_pending`: hang up once it arrives (§15).
    Answering { txn: ServerKey, bye_pending: bool },
    /// Outbound, INVITE in flight. `invite` is kept to answer one digest challenge with.
    Dialling {
        branch: String,
        invite: Box<Request>,
        credentials: Option<(String, String)>,
        challenged: bool,
        /// We hung up: a 2xx that crosses the CANCEL is ACKed and hung up (§9.1), not reported.
        cancelled: bool,
        /// The CANCEL went out. It may only once a provisional response arrived (§9.1), so a
        /// hang-up before one sends it when the first one arrives.
        cancel_sent: bool,
    },
    /// Either direction, answered and acknowledged.
    Confirmed,
    /// BYE sent, waiting for its response.
    Ending,
}

/// Where a transaction's messages go: the peer (and the connection it used) and, for TCP and
/// TLS, where to connect when that connection is gone (see [`super::transport`]).
#[derive(Debug, Clone)]
struct Hop {
    peer: Peer,
    connect: Option<Connect>,
}

impl Hop {
    /// Responses to a request that arrived from `peer`; `headers` holds the request's top Via
    /// (stamped with `received`), or a response's copy of it (§18.2.2).
    fn for_response(peer: Peer, headers: &Headers) -> Self {
        if peer.link == Link::Udp {
            // Nothing to reconnect (and no Via to parse on the busiest path).
            return Self {
                peer,
                connect: None,
            };
        }
        let connect = headers
            .list("Via")
            .first()
            .and_then(|v| msg::parse_via(v).ok())
            .and_then(|via| Connect::for_response(peer.link.proto(), &via));
        Self { peer, connect }
    }

    fn transmit(&self, bytes: Wire, txn: Option<TxnKey>) -> Transmit {
        Transmit {
            peer: self.peer,
            bytes,
            connect: self.connect.clone(),
            txn,
        }
    }
}

#[derive(Debug)]
struct Leg {
    state: LegState,
    dialog: Dialog,
    /// Where the INVITE came from (inbound) or went (outbound).
    peer: Peer,
    /// Outbound TCP/TLS legs: the next hop we dialled, whose pooled connection carries every
    /// request of the leg. `None` for inbound legs (and UDP).
    dialled: Option<Connect>,
    /// Inbound: the INVITE's CSeq; outbound: ours (for the 2xx ACK).
    invite_cseq: u32,
    /// A re-INVITE waiting for our answer.
    reinvite: Option<(ServerKey, Request)>,
}

impl Leg {
    /// Where the leg's requests go (§12.2.1.1). A dialled leg keeps to its next hop; a leg the
    /// peer started answers on the peer's connection and, once that is gone, connects to the
    /// first Route, else the remote target (the peer's Contact).
    fn hop(&self) -> Hop {
        let connect = self.dialled.clone().or_else(|| {
            let target = self
                .dialog
                .route_set
                .first()
                .map(|r| &r.uri)
                .or(self.dialog.remote_target.as_ref())?;
            Connect::to_uri(self.peer.link.proto(), target)
        });
        Hop {
            peer: self.peer,
            connect,
        }
    }

    /// May `ip` (canonical: IPv4-mapped written as IPv4) send requests in this leg's dialog?
    /// Only the hops the dialog already involves: where its INVITE came from or where we send
    /// its requests, the peer's Contact (its remote target) and the first hop of its route set.
    /// A DNS name in the target or route cannot be checked here and matches nothing.
    fn is_peer(&self, ip: IpAddr) -> bool {
        let literal = |host: &str| {
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|h| canonical_ip(h) == ip)
        };
        canonical_ip(self.peer.addr.ip()) == ip
            || self
                .dialog
                .remote_target
                .as_ref()
                .is_some_and(|u| literal(&u.host))
            || self
                .dialog
                .route_set
                .first()
                .is_some_and(|r| literal(&r.uri.host))
    }
}

/// Deadline owners in the timer heap.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum TimerOwner {
    Server(String, String, String),
    Client(String),
    /// The branch of an INVITE we cancelled: forget it if no final response came by then.
    CancelGiveUp(String),
}

/// The sans-IO SIP user agent. See the module docs for the run loop.
pub struct UserAgent {
    cfg: UaConfig,
    ids: IdGen,
    servers: HashMap<ServerKey, (ServerTxn, Hop)>,
    clients: HashMap<String, (ClientTxn, Hop)>,
    legs: HashMap<CallId, Leg>,
    dialogs: HashMap<DialogKey, CallId>,
    next_call: u64,
    timers: BinaryHeap<Reverse<(Instant, TimerOwner)>>,
    /// The deadline each transaction has in `timers`: a transaction is pushed again only when
    /// its deadline moves, so a flood of retransmissions (each drains its transaction) cannot
    /// grow the heap. Entries whose deadline moved stay in the heap until they fire, harmlessly.
    scheduled: HashMap<TimerOwner, Instant>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<SipEvent>,
    pike: Option<Pike>,
}

impl UserAgent {
    pub fn new(cfg: UaConfig, ids: IdGen) -> Self {
        Self {
            pike: cfg.per_source.map(Pike::new),
            cfg,
            ids,
            servers: HashMap::new(),
            clients: HashMap::new(),
            legs: HashMap::new(),
            dialogs: HashMap::new(),
            next_call: 1,
            timers: BinaryHeap::new(),
            scheduled: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Calls (legs) currently known, for overload control and metrics.
    pub fn active_legs(&self) -> usize {
        self.legs.len()
    }

    /// Requests refused by the per-source rate limiter so far.
    pub fn rate_limited(&self) -> u64 {
        self.pike.as_ref().map_or(0, Pike::refused)
    }

    /// Live transactions, for leak checks in tests.
    pub fn active_transactions(&self) -> usize {
        self.servers.len() + self.clients.len()
    }

    /// Entries in the timer heap (live deadlines plus ones that moved and have not fired yet),
    /// for memory checks in tests and metrics.
    pub fn timer_entries(&self) -> usize {
        self.timers.len()
    }

    /// A fresh handle for an outbound leg, to pass in [`Command::Dial`].
    pub fn new_call_id(&mut self) -> CallId {
        let id = CallId(self.next_call);
        self.next_call += 1;
        id
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<SipEvent> {
        self.events.pop_front()
    }

    /// The earliest transaction deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// Fire every deadline due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, owner))) = self.timers.peek().cloned() {
            if at > now {
                break;
            }
            self.timers.pop();
            if self.scheduled.get(&owner) == Some(&at) {
                self.scheduled.remove(&owner);
            }
            match owner {
                TimerOwner::Server(branch, sent_by, method) => {
                    let key = ServerKey {
                        branch,
                        sent_by,
                        method: Method::from_token(&method),
                    };
                    if let Some((txn, _)) = self.servers.get_mut(&key) {
                        match txn {
                            ServerTxn::Invite { txn, .. } => txn.handle_timeout(now),
                            ServerTxn::NonInvite(txn) => txn.handle_timeout(now),
                        }
                        self.drain_server(now, &key);
                    }
                }
                TimerOwner::Client(branch) => {
                    if let Some((txn, _)) = self.clients.get_mut(&branch) {
                        match txn {
                            ClientTxn::Invite { txn, .. } => txn.handle_timeout(now),
                            ClientTxn::NonInvite { txn, .. } => txn.handle_timeout(now),
                        }
                        self.drain_client(now, &branch);
                    }
                }
                TimerOwner::CancelGiveUp(branch) => self.give_up_cancelled(&branch),
            }
        }
    }

    /// Does a call still need this connection: a leg that came on it (`link`), or a dialled leg
    /// whose pooled connection it is (`pool`)? The shell closes an idle connection only when
    /// not, so a call silent for longer than the idle timeout keeps the connection its BYE
    /// will need. Call it when a connection has been idle; it walks every leg.
    pub fn holds(&self, link: Link, pool: Option<&Connect>) -> bool {
        self.legs.values().any(|leg| {
            (link.conn().is_some() && leg.peer.link == link)
                || leg
                    .dialled
                    .as_ref()
                    .zip(pool)
                    .is_some_and(|(a, b)| a.key() == b.key())
        })
    }

    /// The shell could not deliver a message of client transaction `txn` (no connection, the
    /// TLS handshake failed). §8.1.3.1: that is a 503 from the far end, at once, instead of a
    /// 32 s wait for Timer B; the leg's event carries the `cause` so the feed can say which.
    pub fn handle_transport_error(&mut self, now: Instant, txn: &TxnKey, cause: TransportError) {
        let _ = now;
        let Some((client, _)) = self.clients.remove(&txn.0) else {
            return;
        };
        self.scheduled.remove(&TimerOwner::Client(txn.0.clone()));
        let failed = |call| SipEvent::Failed {
            call,
            status: 503,
            cause: Some(cause),
        };
        match client {
            ClientTxn::Invite { call, .. } => {
                if self.forget_leg(call) {
                    self.events.push_back(failed(call));
                }
            }
            ClientTxn::NonInvite {
                call: Some(call),
                method,
                ..
            } => match method {
                // Our BYE cannot be delivered: the leg is over on our side all the same.
                Method::Bye => self.end_leg(call, EndReason::LocalBye),
                Method::Refer => self
                    .events
                    .push_back(SipEvent::ReferResponse { call, status: 503 }),
                // The INVITE it cancels is beyond reach too: give the leg up.
                Method::Cancel => {
                    if let Some(branch) = txn.0.strip_suffix("/cancel") {
                        self.clients.remove(branch);
                    }
                    if self.forget_leg(call) {
                        self.events.push_back(failed(call));
                    }
                }
                _ => {}
            },
            ClientTxn::NonInvite { call: None, .. } => {}
        }
    }

    /// One datagram or one framed TCP message from `peer`.
    pub fn handle_message(&mut self, now: Instant, peer: Peer, bytes: &[u8]) {
        match msg::parse(bytes) {
            Ok(Message::Request(req)) => self.handle_request(now, peer, req),
            Ok(Message::Response(rsp)) => self.handle_response(now, rsp),
            Err(err) => {
                // Only requests get an answer; a broken response is dropped (§8.1.3.1 is silent).
                if bytes.starts_with(b"SIP/") {
                    return;
                }
                // Garbage counts against its source too; past the limit it is dropped unanswered.
                if let Some(p) = self.pike.as_mut()
                    && p.admit(now, peer.addr.ip()) != Verdict::Admit
                {
                    return;
                }
                // The peer matches a response by its Via and CSeq (§17.1.3): without them an
                // answer is only noise, so nothing is sent.
                let Some(headers) = msg::salvage(bytes)
                    .filter(|h| h.get("Via").is_some() && h.get("CSeq").is_some())
                else {
                    return;
                };
                let mut rsp = Response {
                    status: err.status(),
                    reason: reason_phrase(err.status()).to_owned(),
                    headers,
                    body: Vec::new(),
                };
                rsp.reason = format!("{} ({err})", reason_phrase(err.status()));
                rsp.reason.retain(|c| c != '\r' && c != '\n');
                self.stamp_via(&mut rsp.headers, peer);
                self.add_server_headers(&mut rsp.headers);
                self.send(peer, rsp.to_bytes().into());
            }
        }
    }

    /// A command from the shell or a call task.
    pub fn handle_command(&mut self, now: Instant, cmd: Command) {
        match cmd {
            Command::Ring { call } => self.respond_invite(now, call, 180, Vec::new()),
            Command::Answer { call, sdp } => self.respond_invite(now, call, 200, sdp),
            Command::Reject { call, status } => self.respond_invite(now, call, status, Vec::new()),
            Command::Hangup { call } => self.hangup(now, call),
            Command::AnswerReInvite { call, sdp } => self.answer_reinvite(now, call, sdp),
            Command::Refer { call, target } => self.refer(now, call, &target),
            Command::Dial(dial) => self.dial(now, *dial),
        }
    }

    // ---- requests ---------------------------------------------------------------------------

    fn handle_request(&mut self, now: Instant, peer: Peer, mut req: Request) {
        let Some(via) = req.top_via() else { return };
        let branch = via.branch().unwrap_or_default().to_owned();
        let sent_by = format!("{}:{}", via.host, via.port.unwrap_or(5060));
        // §18.2.1 / RFC 3581: record where it really came from, so responses find their way.
        self.stamp_via(&mut req.headers, peer);

        if req.method == Method::Ack {
            self.handle_ack(now, peer, &req, &branch, &sent_by);
            return;
        }
        let key = ServerKey {
            branch: branch.clone(),
            sent_by: sent_by.clone(),
            method: req.method.clone(),
        };
        if let Some((txn, _)) = self.servers.get_mut(&key) {
            // A retransmission: the transaction repeats its last response.
            match txn {
                ServerTxn::Invite { txn, .. } => txn.handle_retransmission(),
                ServerTxn::NonInvite(txn) => txn.handle_retransmission(),
            }
            self.drain_server(now, &key);
            return;
        }
        if req.method == Method::Cancel {
            self.handle_cancel(now, peer, &req, key);
            return;
        }
        // Flood control (like Kamailio's pike): only requests that would start something new
        // count, so retransmissions (above) and requests in live dialogs from their peers
        // always get through.
        // Trusted sources (the PBX) are never limited: spoofed packets from its address must
        // not be able to push its calls into 503. `max_calls` and overload control cover it.
        let dialog_peer = self.is_dialog_peer(&req, peer);
        let trusted = self.is_trusted(peer.addr.ip());
        if !dialog_peer
            && !trusted
            && let Some(p) = self.pike.as_mut()
            && let Verdict::Refuse { retry_after } = p.admit(now, peer.addr.ip())
        {
            self.reply_stateless(
                peer,
                &req,
                503,
                Some(("Retry-After", retry_after.to_string())),
            );
            return;
        }
        // Trust first: nothing is kept for an INVITE from outside `trusted_sources`. A
        // re-INVITE from the peer of its dialog (a callback's trunk) is not a new call.
        if req.method == Method::Invite && !dialog_peer && !trusted {
            self.reply_stateless(peer, &req, 403, None);
            return;
        }
        if let Some(status) = self.precheck(&req) {
            let extra = match status {
                420 => Some((
                    "Unsupported",
                    req.headers.get("Require").unwrap_or_default().to_owned(),
                )),
                501 | 405 => Some(("Allow", ALLOW.to_owned())),
                415 => Some(("Accept", "application/sdp".to_owned())),
                _ => None,
            };
            self.reply_stateless(peer, &req, status, extra);
            return;
        }
        let in_dialog = req.to_hdr().and_then(|t| t.tag().map(str::to_owned));
        match in_dialog {
            Some(tag) => self.handle_in_dialog(now, peer, req, key, tag),
            None => self.handle_out_of_dialog(now, peer, req, key),
        }
    }

    /// Does `req` carry a To tag naming one of our dialogs, and come from that dialog's peer
    /// (see `Leg::is_peer`)?
    fn is_dialog_peer(&self, req: &Request, peer: Peer) -> bool {
        let Some(tag) = req.to_hdr().and_then(|t| t.tag().map(str::to_owned)) else {
            return false;
        };
        let dkey = DialogKey {
            call_id: req.call_id().unwrap_or_default().to_owned(),
            local_tag: tag,
        };
        self.dialogs
            .get(&dkey)
            .and_then(|call| self.legs.get(call))
            .is_some_and(|leg| leg.is_peer(canonical_ip(peer.addr.ip())))
    }

    /// May `peer` act on `call`'s dialog: its peer, or a trusted source (the PBX may send a
    /// BYE from another of its addresses)?
    fn may_act_on(&self, call: CallId, peer: Peer) -> bool {
        let ip = canonical_ip(peer.addr.ip());
        self.legs.get(&call).is_some_and(|leg| leg.is_peer(ip)) || self.is_trusted(ip)
    }

    /// Checks every request passes before any transaction is made (§8.2.1–8.2.2, §16.3).
    fn precheck(&self, req: &Request) -> Option<u16> {
        if !req.uri.is_sip() && req.uri.scheme != "tel" {
            return Some(416);
        }
        if req
            .headers
            .get("Max-Forwards")
            .is_some_and(|v| v.trim() == "0")
        {
            return Some(483);
        }
        // We implement no extension a peer could require (§8.2.2.3).
        if req
            .headers
            .get("Require")
            .is_some_and(|v| !v.trim().is_empty())
        {
            return Some(420);
        }
        match req.method {
            Method::Invite
            | Method::Bye
            | Method::Options
            | Method::Info
            | Method::Refer
            | Method::Notify
            | Method::Ack
            | Method::Cancel => None,
            Method::Register
            | Method::Subscribe
            | Method::Publish
            | Method::Message
            | Method::Update
            | Method::Prack => Some(405),
            Method::Other(_) => Some(501),
        }
        .or_else(|| (req.method == Method::Invite).then(|| invite_body_check(req))?)
    }

    fn handle_out_of_dialog(&mut self, now: Instant, peer: Peer, req: Request, key: ServerKey) {
        match req.method {
            Method::Invite => {
                if self.legs.len() >= self.cfg.max_calls {
                    self.reply_stateless(peer, &req, 503, Some(("Retry-After", "5".to_owned())));
                    return;
                }
                let call = self.new_call_id();
                let local_tag = self.ids.token(12);
                let Some(dialog) = Dialog::new_uas(&req, local_tag) else {
                    self.reply_stateless(peer, &req, 400, None);
                    return;
                };
                let invite_cseq = req.cseq().map_or(1, |c| c.seq);
                let txn = InviteServer::new(peer.link.transport(), self.cfg.timers);
                self.servers.insert(
                    key.clone(),
                    (
                        ServerTxn::Invite { txn, call },
                        Hop::for_response(peer, &req.headers),
                    ),
                );
                self.dialogs.insert(dialog.key(), call);
                self.legs.insert(
                    call,
                    Leg {
                        state: LegState::Ringing {
                            invite: Box::new(req.clone()),
                            txn: key,
                        },
                        dialog,
                        peer,
                        dialled: None,
                        invite_cseq,
                        reinvite: None,
                    },
                );
                // §17.2.1: 100 Trying at once, so the PBX stops retransmitting.
                self.respond_invite(now, call, 100, Vec::new());
                self.events.push_back(SipEvent::IncomingCall {
                    call,
                    invite: Box::new(req),
                    source: peer.addr,
                });
            }
            Method::Options => {
                let mut rsp = self.response(&req, 200, true);
                rsp.headers.push("Allow", ALLOW);
                rsp.headers.push(
                    "Accept",
                    "application/sdp, application/dtmf-relay, application/dtmf",
                );
                self.respond_non_invite(now, peer, key, rsp);
            }
            // BYE, INFO, REFER, NOTIFY outside a dialog (§12.2.2).
            _ => {
                let rsp = self.response(&req, 481, true);
                self.respond_non_invite(now, peer, key, rsp);
            }
        }
    }

    fn handle_in_dialog(
        &mut self,
        now: Instant,
        peer: Peer,
        req: Request,
        key: ServerKey,
        tag: String,
    ) {
        let dkey = DialogKey {
            call_id: req.call_id().unwrap_or_default().to_owned(),
            local_tag: tag,
        };
        let Some(&call) = self.dialogs.get(&dkey) else {
            let rsp = self.response(&req, 481, false);
            self.respond_any(now, peer, key, rsp);
            return;
        };
        // Knowing a dialog's Call-ID and tags is not enough to end or steer it: the request
        // must come from a hop of the dialog or a trusted source. Checked before the CSeq, so
        // a forged request cannot push the peer's CSeq space ahead either. No state is kept.
        if !self.may_act_on(call, peer) {
            self.reply_stateless(peer, &req, 403, None);
            return;
        }
        let leg = self
            .legs
            .get_mut(&call)
            .expect("dialog index points at a live leg");
        if !leg.dialog.accept_remote_cseq(&req) {
            let rsp = self.response(&req, 500, false);
            self.respond_any(now, peer, key, rsp);
            return;
        }
        match req.method {
            Method::Bye => {
                let rsp = self.response(&req, 200, false);
                self.respond_non_invite(now, peer, key, rsp);
                self.end_leg(call, EndReason::RemoteBye);
            }
            Method::Info => {
                let rsp = self.response(&req, 200, false);
                self.respond_non_invite(now, peer, key, rsp);
                self.events.push_back(SipEvent::InfoReceived {
                    call,
                    content_type: req.content_type().unwrap_or_default().to_owned(),
                    body: req.body,
                });
            }
            Method::Invite => {
                let busy = leg.reinvite.is_some() || !matches!(leg.state, LegState::Confirmed);
                if busy {
                    // §14.2: a re-INVITE while one is pending gets 491 (500 if ours is pending).
                    let rsp = self.response(&req, 491, false);
                    let txn = InviteServer::new(peer.link.transport(), self.cfg.timers);
                    self.servers.insert(
                        key.clone(),
                        (
                            ServerTxn::Invite { txn, call },
                            Hop::for_response(peer, &req.headers),
                        ),
                    );
                    self.server_respond(now, &key, rsp);
                    return;
                }
                if let Some(c) = req.contact() {
                    leg.dialog.remote_target = Some(c.uri);
                }
                leg.reinvite = Some((key.clone(), req.clone()));
                let txn = InviteServer::new(peer.link.transport(), self.cfg.timers);
                self.servers.insert(
                    key.clone(),
                    (
                        ServerTxn::Invite { txn, call },
                        Hop::for_response(peer, &req.headers),
                    ),
                );
                let trying = self.response(&req, 100, false);
                self.server_respond(now, &key, trying);
                self.events.push_back(SipEvent::ReInvite {
                    call,
                    sdp: req.body,
                });
            }
            Method::Notify => {
                let rsp = self.response(&req, 200, false);
                self.respond_non_invite(now, peer, key, rsp);
                if let Some(status) = sipfrag_status(&req.body) {
                    self.events
                        .push_back(SipEvent::ReferNotify { call, status });
                }
            }
            Method::Options => {
                let mut rsp = self.response(&req, 200, false);
                rsp.headers.push("Allow", ALLOW);
                self.respond_non_invite(now, peer, key, rsp);
            }
            Method::Refer => {
                // We never accept transfers from the PBX side: the workflow decides.
                let rsp = self.response(&req, 603, false);
                self.respond_non_invite(now, peer, key, rsp);
            }
            Method::Ack | Method::Cancel => {}
            Method::Register
            | Method::Subscribe
            | Method::Update
            | Method::Prack
            | Method::Message
            | Method::Publish
            | Method::Other(_) => {
                let mut rsp = self.response(&req, 501, false);
                rsp.headers.push("Allow", ALLOW);
                self.respond_non_invite(now, peer, key, rsp);
            }
        }
    }

    fn handle_ack(&mut self, now: Instant, peer: Peer, req: &Request, branch: &str, sent_by: &str) {
        // ACK for a non-2xx: same branch as the INVITE (§17.2.3).
        let key = ServerKey {
            branch: branch.to_owned(),
            sent_by: sent_by.to_owned(),
            method: Method::Invite,
        };
        if let Some((ServerTxn::Invite { txn, .. }, _)) = self.servers.get_mut(&key)
            && txn.has_final()
        {
            txn.handle_ack(now);
            self.drain_server(now, &key);
            // It may also be the ACK of a 2xx sent by this same transaction (its own branch
            // is reused by some peers); fall through to the dialog check.
        }
        // ACK for a 2xx: its own transaction, matched to the dialog (§13.2.2.4).
        let Some(tag) = req.to_hdr().and_then(|t| t.tag().map(str::to_owned)) else {
            return;
        };
        let dkey = DialogKey {
            call_id: req.call_id().unwrap_or_default().to_owned(),
            local_tag: tag,
        };
        let Some(&call) = self.dialogs.get(&dkey) else {
            return;
        };
        // A forged ACK must not confirm a call (and start its media): dropped unanswered.
        if !self.may_act_on(call, peer) {
            return;
        }
        let Some(leg) = self.legs.get_mut(&call) else {
            return;
        };
        if let LegState::Answering { txn, bye_pending } = &leg.state {
            let (txn, bye_pending) = (txn.clone(), *bye_pending);
            leg.state = LegState::Confirmed;
            if let Some((ServerTxn::Invite { txn: t, .. }, _)) = self.servers.get_mut(&txn) {
                t.handle_ack(now);
            }
            self.drain_server(now, &txn);
            self.events.push_back(SipEvent::CallConfirmed { call });
            if bye_pending {
                self.hangup(now, call);
            }
        } else {
            // ACK of an answered re-INVITE: find its transaction by the dialog's pending key.
            let keys: Vec<ServerKey> = self
                .servers
                .iter()
                .filter(|(_, (t, _))| matches!(t, ServerTxn::Invite { call: c, .. } if *c == call))
                .map(|(k, _)| k.clone())
                .collect();
            for k in keys {
                if let Some((ServerTxn::Invite { txn, .. }, _)) = self.servers.get_mut(&k)
                    && txn.has_final()
                {
                    txn.handle_ack(now);
                }
                self.drain_server(now, &k);
            }
        }
    }

    fn handle_cancel(&mut self, now: Instant, peer: Peer, req: &Request, key: ServerKey) {
        let invite_key = ServerKey {
            method: Method::Invite,
            ..key.clone()
        };
        let target = match self.servers.get(&invite_key) {
            Some((ServerTxn::Invite { call, txn }, from)) => {
                Some((*call, txn.has_final(), canonical_ip(from.peer.addr.ip())))
            }
            _ => None,
        };
        // §9.2: a CANCEL comes from the hop that sent the INVITE; from anyone else it is a
        // forgery, refused without touching the call.
        if let Some((_, _, from)) = target
            && from != canonical_ip(peer.addr.ip())
            && !self.is_trusted(peer.addr.ip())
        {
            self.reply_stateless(peer, req, 403, None);
            return;
        }
        let target = target.map(|(call, answered, _)| (call, answered));
        let Some((call, answered)) = target else {
            // §9.2: no matching transaction → 481.
            let rsp = self.response(req, 481, true);
            self.respond_non_invite(now, peer, key, rsp);
            return;
        };
        let mut ok = Response::to_request(req, 200, "OK");
        if let Some(leg) = self.legs.get(&call) {
            set_to_tag(&mut ok.headers, &leg.dialog.local_tag);
        }
        self.add_server_headers(&mut ok.headers);
        self.respond_non_invite(now, peer, key, ok);
        if !answered {
            self.respond_invite(now, call, 487, Vec::new());
            self.events.push_back(SipEvent::CallCancelled { call });
        }
    }

    // ---- responses we send -----------------------------------------------------------------

    /// A response to `req` from us: Server header, and a To tag where the request had none
    /// (§8.2.6.2) when `add_tag`.
    fn response(&mut self, req: &Request, status: u16, add_tag: bool) -> Response {
        let mut rsp = Response::to_request(req, status, reason_phrase(status));
        if add_tag && status > 100 && req.to_hdr().is_some_and(|t| t.tag().is_none()) {
            let tag = self.ids.token(12);
            set_to_tag(&mut rsp.headers, &tag);
        }
        self.add_server_headers(&mut rsp.headers);
        rsp
    }

    fn add_server_headers(&self, headers: &mut Headers) {
        headers.push("Server", self.cfg.user_agent.clone());
    }

    /// A response that keeps no state (403 to strangers, 4xx from prechecks, 503 overload).
    fn reply_stateless(
        &mut self,
        peer: Peer,
        req: &Request,
        status: u16,
        extra: Option<(&str, String)>,
    ) {
        let mut rsp = self.response(req, status, true);
        if let Some((name, value)) = extra {
            rsp.headers.push(name, value);
        }
        self.send(peer, rsp.to_bytes().into());
    }

    fn respond_non_invite(&mut self, now: Instant, peer: Peer, key: ServerKey, rsp: Response) {
        let txn = NonInviteServer::new(peer.link.transport(), self.cfg.timers);
        self.servers.insert(
            key.clone(),
            (
                ServerTxn::NonInvite(txn),
                Hop::for_response(peer, &rsp.headers),
            ),
        );
        self.server_respond(now, &key, rsp);
    }

    /// Answer a request that failed a dialog check: INVITEs get an INVITE transaction.
    fn respond_any(&mut self, now: Instant, peer: Peer, key: ServerKey, rsp: Response) {
        if key.method == Method::Invite {
            let txn = InviteServer::new(peer.link.transport(), self.cfg.timers);
            self.servers.insert(
                key.clone(),
                (
                    ServerTxn::Invite {
                        txn,
                        call: CallId(0),
                    },
                    Hop::for_response(peer, &rsp.headers),
                ),
            );
            self.server_respond(now, &key, rsp);
        } else {
            self.respond_non_invite(now, peer, key, rsp);
        }
    }

    fn server_respond(&mut self, now: Instant, key: &ServerKey, rsp: Response) {
        let status = rsp.status;
        let bytes: Wire = rsp.to_bytes().into();
        if let Some((txn, _)) = self.servers.get_mut(key) {
            match txn {
                ServerTxn::Invite { txn, .. } => txn.respond(now, status, bytes),
                ServerTxn::NonInvite(txn) => txn.respond(now, status, bytes),
            }
        }
        self.drain_server(now, key);
    }

    /// Send a response on an incoming call's INVITE transaction.
    fn respond_invite(&mut self, now: Instant, call: CallId, status: u16, sdp: Vec<u8>) {
        let Some(proto) = self.legs.get(&call).map(|l| l.peer.link.proto()) else {
            return;
        };
        let contact = self.contact(proto);
        let Some(leg) = self.legs.get_mut(&call) else {
            return;
        };
        let LegState::Ringing { invite, txn } = &leg.state else {
            return;
        };
        let (invite, txn) = (invite.clone(), txn.clone());
        let mut rsp = Response::to_request(&invite, status, reason_phrase(status));
        if status > 100 {
            set_to_tag(&mut rsp.headers, &leg.dialog.local_tag);
        }
        if (101..300).contains(&status) {
            // §12.1.1: copy Record-Route; give our Contact.
            for rr in invite.headers.get_all("Record-Route") {
                rsp.headers.push("Record-Route", rr.to_owned());
            }
            rsp.headers.push("Contact", contact);
        }
        if status == 200 {
            rsp.headers.push("Allow", ALLOW);
            rsp.headers.push("Content-Type", "application/sdp");
            rsp.body = sdp;
            leg.state = LegState::Answering {
                txn: txn.clone(),
                bye_pending: false,
            };
        } else if status >= 300 {
            let reason = if status == 487 {
                EndReason::Cancelled
            } else {
                EndReason::Rejected(status)
            };
            self.add_server_headers(&mut rsp.headers);
            self.server_respond(now, &txn, rsp);
            self.end_leg(call, reason);
            return;
        }
        self.add_server_headers(&mut rsp.headers);
        self.server_respond(now, &txn, rsp);
    }

    fn answer_reinvite(&mut self, now: Instant, call: CallId, sdp: Vec<u8>) {
        let Some(proto) = self.legs.get(&call).map(|l| l.peer.link.proto()) else {
            return;
        };
        let contact = self.contact(proto);
        let Some(leg) = self.legs.get_mut(&call) else {
            return;
        };
        let Some((key, req)) = leg.reinvite.take() else {
            return;
        };
        let mut rsp = Response::to_request(&req, 200, "OK");
        rsp.headers.push("Contact", contact);
        rsp.headers.push("Content-Type", "application/sdp");
        rsp.body = sdp;
        self.add_server_headers(&mut rsp.headers);
        self.server_respond(now, &key, rsp);
    }

    // ---- requests we send ------------------------------------------------------------------

    fn hangup(&mut self, now: Instant, call: CallId) {
        let Some(leg) = self.legs.get_mut(&call) else {
            return;
        };
        match &mut leg.state {
            LegState::Ringing { .. } => self.respond_invite(now, call, 480, Vec::new()),
            LegState::Answering { bye_pending, .. } => *bye_pending = true,
            LegState::Confirmed => {
                leg.state = LegState::Ending;
                self.send_in_dialog(now, call, Method::Bye, None, Vec::new());
            }
            LegState::Dialling {
                branch,
                cancelled,
                cancel_sent,
                ..
            } => {
                *cancelled = true;
                let proceeding = matches!(
                    self.clients.get(branch.as_str()),
                    Some((ClientTxn::Invite { txn, .. }, _)) if txn.is_proceeding()
                );
                if proceeding && !*cancel_sent {
                    *cancel_sent = true;
                    let branch = branch.clone();
                    self.cancel(now, call, &branch);
                }
            }
            LegState::Ending => {}
        }
    }

    fn refer(&mut self, now: Instant, call: CallId, target: &str) {
        let refer_to = format!("<{target}>");
        let referred_by = format!("<sip:hammond@{}>", self.cfg.local);
        self.send_in_dialog(
            now,
            call,
            Method::Refer,
            Some(vec![
                ("Refer-To".to_owned(), refer_to),
                ("Referred-By".to_owned(), referred_by),
            ]),
            Vec::new(),
        );
    }

    fn send_in_dialog(
        &mut self,
        now: Instant,
        call: CallId,
        method: Method,
        extra: Option<Vec<(String, String)>>,
        body: Vec<u8>,
    ) {
        let branch = self.ids.branch();
        let Some(proto) = self.legs.get(&call).map(|l| l.peer.link.proto()) else {
            return;
        };
        let (via, contact) = (self.via(proto, &branch), self.contact(proto));
        let Some(leg) = self.legs.get_mut(&call) else {
            return;
        };
        let mut req = leg.dialog.request(method, via, Some(&contact));
        for (n, v) in extra.into_iter().flatten() {
            req.headers.push(&n, v);
        }
        req.body = body;
        req.headers.push("User-Agent", self.cfg.user_agent.clone());
        let hop = leg.hop();
        self.start_client(now, branch, hop, call, req);
    }

    fn dial(&mut self, now: Instant, d: Dial) {
        let branch = self.ids.branch();
        let call_id = format!("{}@hammond", self.ids.token(20));
        let from_tag = self.ids.token(12);
        let host = self.cfg.local;
        let mut local = NameAddr {
            display: None,
            uri: Uri {
                scheme: "sip".into(),
                user: Some(d.from_user.clone()),
                password: None,
                host: host.ip().to_string(),
                port: Some(host.port()),
                params: Params::default(),
                headers: None,
                opaque: None,
            },
            params: Params::default(),
        };
        local.params.set("tag", Some(from_tag));
        let remote = NameAddr {
            display: None,
            uri: d.target.clone(),
            params: Params::default(),
        };
        let dialog = Dialog::new_uac(call_id, local, remote, 1);
        let peer = Peer {
            addr: d.next_hop,
            link: Link::any(d.transport),
        };
        // A TCP or TLS leg names no connection: every leg to this next hop shares the shell's
        // pooled one, which is opened again whenever it has closed.
        let dialled = (d.transport != Proto::Udp).then(|| Connect {
            proto: d.transport,
            host: d
                .hop_host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: d.next_hop.port(),
            resolved: Some(d.next_hop),
        });
        let mut headers = Headers::default();
        headers.push("Via", self.via(d.transport, &branch));
        headers.push("Max-Forwards", "70");
        headers.push("From", dialog.local_uri.to_string());
        headers.push("To", dialog.remote_uri.to_string());
        headers.push("Call-ID", dialog.call_id.clone());
        headers.push("CSeq", "1 INVITE");
        headers.push("Contact", self.contact(d.transport));
        headers.push(
            "P-Asserted-Identity",
            format!("<sip:{}@{}>", d.from_user, host.ip()),
        );
        headers.push("Allow", ALLOW);
        headers.push("User-Agent", self.cfg.user_agent.clone());
        for (n, v) in &d.extra_headers {
            headers.push(n, v.clone());
        }
        headers.push("Content-Type", "application/sdp");
        let req = Request {
            method: Method::Invite,
            uri: d.target,
            headers,
            body: d.sdp,
        };
        self.dialogs.insert(dialog.key(), d.call);
        self.legs.insert(
            d.call,
            Leg {
                state: LegState::Dialling {
                    branch: branch.clone(),
                    invite: Box::new(req.clone()),
                    credentials: d.credentials,
                    challenged: false,
                    cancelled: false,
                    cancel_sent: false,
                },
                dialog,
                peer,
                dialled: dialled.clone(),
                invite_cseq: 1,
                reinvite: None,
            },
        );
        let hop = Hop {
            peer,
            connect: dialled,
        };
        self.start_client(now, branch, hop, d.call, req);
    }

    /// Start a client transaction for `req` (INVITE or not) to `hop`, keyed by `key`.
    fn start_client(&mut self, now: Instant, key: String, hop: Hop, call: CallId, req: Request) {
        let bytes: Wire = req.to_bytes().into();
        let (transport, timers) = (hop.peer.link.transport(), self.cfg.timers);
        let txn = if req.method == Method::Invite {
            ClientTxn::Invite {
                txn: Box::new(InviteClient::new(now, bytes, transport, timers)),
                call,
                request: Box::new(req),
            }
        } else {
            ClientTxn::NonInvite {
                txn: NonInviteClient::new(now, bytes, transport, timers),
                call: Some(call),
                method: req.method,
            }
        };
        self.clients.insert(key.clone(), (txn, hop));
        self.drain_client(now, &key);
    }

    /// CANCEL an outbound INVITE (§9.1): same branch, Request-URI, Call-ID, From, To, CSeq number.
    fn cancel(&mut self, now: Instant, call: CallId, invite_branch: &str) {
        let Some((ClientTxn::Invite { request, .. }, hop)) = self.clients.get(invite_branch) else {
            return;
        };
        let hop = hop.clone();
        let mut headers = Headers::default();
        for name in ["Via", "From", "To", "Call-ID"] {
            if let Some(v) = request.headers.get(name) {
                headers.push(name, v.to_owned());
            }
        }
        headers.push("Max-Forwards", "70");
        // §9.1: the CANCEL's CSeq number is the INVITE's (2 after a digest challenge).
        let seq = request.cseq().map_or(1, |c| c.seq);
        headers.push("CSeq", format!("{seq} CANCEL"));
        let req = Request {
            method: Method::Cancel,
            uri: request.uri.clone(),
            headers,
            body: Vec::new(),
        };
        let key = format!("{invite_branch}/cancel");
        self.start_client(now, key, hop, call, req);
        // §9.1: a far end that never answers the INVITE with a final response after this
        // (its Timer B stopped at the first provisional) is given up on after 64·T1.
        let at = now + self.cfg.timers.t1x64();
        self.timers.push(Reverse((
            at,
            TimerOwner::CancelGiveUp(invite_branch.to_owned()),
        )));
    }

    // ---- responses we receive --------------------------------------------------------------

    fn handle_response(&mut self, now: Instant, rsp: Response) {
        let Some(via) = rsp.top_via() else { return };
        let Some(cseq) = rsp.cseq() else { return };
        let mut branch = via.branch().unwrap_or_default().to_owned();
        if cseq.method == Method::Cancel {
            branch.push_str("/cancel");
        }
        let Some((txn, _)) = self.clients.get_mut(&branch) else {
            // A 2xx retransmitted after the transaction ended: ACK it again via the dialog.
            if cseq.method == Method::Invite && (200..300).contains(&rsp.status) {
                self.ack_2xx(now, &rsp);
            }
            return;
        };
        match txn {
            ClientTxn::Invite { txn, request, .. } => {
                let ack = non_2xx_ack(request, &rsp);
                txn.handle_response(now, rsp.status, || ack.to_bytes().into());
            }
            ClientTxn::NonInvite { txn, .. } => txn.handle_response(now, rsp.status),
        }
        self.drain_client_with(now, &branch, Some(&rsp));
    }

    fn ack_2xx(&mut self, now: Instant, rsp: &Response) {
        let Some(from) = rsp.from_hdr() else { return };
        let dkey = DialogKey {
            call_id: rsp.call_id().unwrap_or_default().to_owned(),
            local_tag: from.tag().unwrap_or_default().to_owned(),
        };
        let Some(&call) = self.dialogs.get(&dkey) else {
            return;
        };
        let branch = self.ids.branch();
        let Some(proto) = self.legs.get(&call).map(|l| l.peer.link.proto()) else {
            return;
        };
        let via = self.via(proto, &branch);
        let Some(leg) = self.legs.get_mut(&call) else {
            return;
        };
        leg.dialog.update_from_response(rsp);
        let ack = leg.dialog.ack(leg.invite_cseq, via);
        let hop = leg.hop();
        let _ = now;
        self.transmits
            .push_back(hop.transmit(ack.to_bytes().into(), None));
    }

    // ---- plumbing --------------------------------------------------------------------------

    fn drain_server(&mut self, now: Instant, key: &ServerKey) {
        let _ = now;
        let Some((txn, hop)) = self.servers.get_mut(key) else {
            return;
        };
        let hop = hop.clone();
        let mut outs = Vec::new();
        let (deadline, call) = match txn {
            ServerTxn::Invite { txn, call } => {
                while let Some(o) = txn.poll_output() {
                    outs.push(o);
                }
                (txn.poll_timeout(), Some(*call))
            }
            ServerTxn::NonInvite(txn) => {
                while let Some(o) = txn.poll_output() {
                    outs.push(o);
                }
                (txn.poll_timeout(), None)
            }
        };
        for o in outs {
            match o {
                TxnOutput::Transmit(bytes) => self.transmits.push_back(hop.transmit(bytes, None)),
                TxnOutput::AckTimeout => {
                    if let Some(call) = call {
                        self.ack_timeout(now, call, key);
                    }
                }
                TxnOutput::Terminated => {
                    self.servers.remove(key);
                }
                TxnOutput::Response { .. } | TxnOutput::Timeout => {}
            }
        }
        let owner = TimerOwner::Server(
            key.branch.clone(),
            key.sent_by.clone(),
            key.method.to_string(),
        );
        let deadline = deadline.filter(|_| self.servers.contains_key(key));
        self.schedule(owner, deadline);
    }

    /// Keep `owner`'s deadline in the heap: pushed once per distinct deadline, forgotten when
    /// the transaction has none (or is gone).
    fn schedule(&mut self, owner: TimerOwner, deadline: Option<Instant>) {
        match deadline {
            Some(at) => {
                if self.scheduled.get(&owner) != Some(&at) {
                    self.scheduled.insert(owner.clone(), at);
                    self.timers.push(Reverse((at, owner)));
                }
            }
            None => {
                self.scheduled.remove(&owner);
            }
        }
    }

    /// Timer H fired for an answered call: we never got the ACK, so we hang up (§13.3.1.4).
    fn ack_timeout(&mut self, now: Instant, call: CallId, key: &ServerKey) {
        let Some(leg) = self.legs.get_mut(&call) else {
            return;
        };
        if matches!(&leg.state, LegState::Answering { txn, .. } if txn == key) {
            leg.state = LegState::Confirmed;
            self.hangup(now, call);
            self.end_leg(call, EndReason::AckTimeout);
        }
    }

    fn drain_client(&mut self, now: Instant, branch: &str) {
        self.drain_client_with(now, branch, None);
    }

    fn drain_client_with(&mut self, now: Instant, branch: &str, rsp: Option<&Response>) {
        let Some((txn, hop)) = self.clients.get_mut(branch) else {
            return;
        };
        let hop = hop.clone();
        let mut outs = Vec::new();
        let (deadline, call, method) = match txn {
            ClientTxn::Invite { txn, call, .. } => {
                while let Some(o) = txn.poll_output() {
                    outs.push(o);
                }
                (txn.poll_timeout(), Some(*call), Method::Invite)
            }
            ClientTxn::NonInvite { txn, call, method } => {
                while let Some(o) = txn.poll_output() {
                    outs.push(o);
                }
                (txn.poll_timeout(), *call, method.clone())
            }
        };
        for o in outs {
            match o {
                TxnOutput::Transmit(bytes) => self
                    .transmits
                    .push_back(hop.transmit(bytes, Some(TxnKey(branch.to_owned())))),
                TxnOutput::Response { status } => {
                    if let (Some(call), Some(rsp)) = (call, rsp) {
                        self.client_response(now, call, &method, status, rsp);
                    }
                }
                TxnOutput::Timeout => {
                    if let Some(call) = call {
                        self.client_timeout(call, &method);
                    }
                }
                TxnOutput::Terminated => {
                    self.clients.remove(branch);
                }
                TxnOutput::AckTimeout => {}
            }
        }
        let deadline = deadline.filter(|_| self.clients.contains_key(branch));
        self.schedule(TimerOwner::Client(branch.to_owned()), deadline);
    }

    fn client_response(
        &mut self,
        now: Instant,
        call: CallId,
        method: &Method,
        status: u16,
        rsp: &Response,
    ) {
        match method {
            Method::Invite => {
                let Some(leg) = self.legs.get_mut(&call) else {
                    // Answered after we gave up (CANCEL crossed the 200): ACK, then BYE.
                    return;
                };
                if (100..200).contains(&status)
                    && let LegState::Dialling {
                        branch,
                        cancelled: true,
                        cancel_sent: cancel_sent @ false,
                        ..
                    } = &mut leg.state
                {
                    // Hung up before the far end answered at all: the CANCEL waited for this
                    // (§9.1).
                    *cancel_sent = true;
                    let branch = branch.clone();
                    self.cancel(now, call, &branch);
                    return;
                }
                let cancelled = matches!(
                    leg.state,
                    LegState::Dialling {
                        cancelled: true,
                        ..
                    }
                );
                match status {
                    100 => {}
                    // Nobody waits for news of a leg we hung up.
                    101..=199 if cancelled => {}
                    101..=199 => {
                        leg.dialog.update_from_response(rsp);
                        self.events.push_back(SipEvent::Progress {
                            call,
                            status,
                            sdp: rsp.body.clone(),
                        });
                    }
                    200..=299 => {
                        let was_dialling = matches!(leg.state, LegState::Dialling { .. });
                        leg.state = LegState::Confirmed;
                        // The dialog is keyed by our tag; the remote tag and target come now.
                        self.ack_2xx(now, rsp);
                        if cancelled {
                            // The answer crossed our CANCEL: nobody wants this leg any more.
                            self.hangup(now, call);
                        } else if was_dialling {
                            self.events.push_back(SipEvent::Answered {
                                call,
                                sdp: rsp.body.clone(),
                            });
                        }
                    }
                    401 | 407 if !cancelled && self.answer_challenge(now, call, rsp) => {}
                    _ => {
                        self.events.push_back(SipEvent::Failed {
                            call,
                            status,
                            cause: None,
                        });
                        self.forget_leg(call);
                    }
                }
            }
            Method::Bye if status >= 200 => {
                self.end_leg(call, EndReason::LocalBye);
            }
            Method::Refer if status >= 200 => {
                self.events
                    .push_back(SipEvent::ReferResponse { call, status });
            }
            _ => {}
        }
    }

    /// Answer a 401/407 to our INVITE once: the same INVITE with CSeq + 1, a new branch and
    /// the digest credentials (§22.2). `false` when there is nothing to answer with.
    fn answer_challenge(&mut self, now: Instant, call: CallId, rsp: &Response) -> bool {
        let header = if rsp.status == 401 {
            "WWW-Authenticate"
        } else {
            "Proxy-Authenticate"
        };
        let challenge = rsp.headers.get_all(header).find_map(auth::parse_challenge);
        let branch = self.ids.branch();
        let cnonce = self.ids.token(16);
        let Some(proto) = self.legs.get(&call).map(|l| l.peer.link.proto()) else {
            return false;
        };
        let via = self.via(proto, &branch);
        let Some(leg) = self.legs.get_mut(&call) else {
            return false;
        };
        let LegState::Dialling {
            invite,
            credentials: Some((user, pass)),
            challenged: challenged @ false,
            ..
        } = &mut leg.state
        else {
            return false;
        };
        let Some(challenge) = challenge else {
            return false;
        };
        let mut req = (**invite).clone();
        let uri = req.uri.to_string();
        let value = auth::authorization(
            &challenge,
            &auth::Credentials {
                username: user,
                password: pass,
                method: "INVITE",
                uri: &uri,
                cnonce: &cnonce,
                nc: 1,
            },
        );
        let seq = leg.invite_cseq + 1;
        req.headers.set("Via", via);
        req.headers.set("CSeq", format!("{seq} INVITE"));
        let auth_header = if rsp.status == 401 {
            "Authorization"
        } else {
            "Proxy-Authorization"
        };
        req.headers.set(auth_header, value);
        *challenged = true;
        **invite = req.clone();
        if let LegState::Dialling { branch: b, .. } = &mut leg.state {
            *b = branch.clone();
        }
        leg.invite_cseq = seq;
        leg.dialog.local_cseq = seq;
        let hop = leg.hop();
        self.start_client(now, branch.clone(), hop, call, req);
        true
    }

    /// 64·T1 after our CANCEL and still no final response to the INVITE: the far end is gone
    /// or broken. End the transaction and the leg as if it had answered 487.
    fn give_up_cancelled(&mut self, branch: &str) {
        let Some((ClientTxn::Invite { txn, call, .. }, _)) = self.clients.get(branch) else {
            return;
        };
        if !txn.is_proceeding() {
            // Completed or accepted: its own timers finish it.
            return;
        }
        let call = *call;
        self.clients.remove(branch);
        if self.forget_leg(call) {
            self.events.push_back(SipEvent::Failed {
                call,
                status: 487,
                cause: None,
            });
        }
    }

    fn client_timeout(&mut self, call: CallId, method: &Method) {
        match method {
            Method::Invite if self.legs.contains_key(&call) => {
                self.events.push_back(SipEvent::Failed {
                    call,
                    status: 408,
                    cause: Some(TransportError::NoResponse),
                });
                self.forget_leg(call);
            }
            Method::Bye => self.end_leg(call, EndReason::LocalBye),
            Method::Refer => self
                .events
                .push_back(SipEvent::ReferResponse { call, status: 408 }),
            _ => {}
        }
    }

    fn end_leg(&mut self, call: CallId, reason: EndReason) {
        if self.forget_leg(call) {
            self.events.push_back(SipEvent::CallEnded { call, reason });
        }
    }

    fn forget_leg(&mut self, call: CallId) -> bool {
        match self.legs.remove(&call) {
            Some(leg) => {
                self.dialogs.remove(&leg.dialog.key());
                true
            }
            None => false,
        }
    }

    /// A stateless response: on the request's own connection, or nowhere once it is gone.
    fn send(&mut self, peer: Peer, bytes: Wire) {
        self.transmits.push_back(Transmit {
            peer,
            bytes,
            connect: None,
            txn: None,
        });
    }

    /// Is `ip` in `trusted_sources`? The shell asks too: trusted peers' keep-alives hold their
    /// connections, and they are not held to the per-source connection cap.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.cfg.trusted.iter().any(|net| net.contains(ip))
    }

    /// Our sent-by for `proto` (§18.1.1): the TLS listener's address for TLS when there is one.
    fn local_for(&self, proto: Proto) -> SocketAddr {
        match proto {
            Proto::Tls => self.cfg.local_tls.unwrap_or(self.cfg.local),
            Proto::Udp | Proto::Tcp => self.cfg.local,
        }
    }

    /// A Via for a request we send over `proto`, with `branch` (§8.1.1.7, RFC 3581 rport).
    fn via(&self, proto: Proto, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};branch={branch};rport",
            proto.via_name(),
            self.local_for(proto)
        )
    }

    /// Our Contact for a dialog over `proto` (§8.1.1.8): where the peer reaches us on that
    /// transport, `;transport=tcp|tls` unless UDP.
    fn contact(&self, proto: Proto) -> String {
        let at = self.local_for(proto);
        match proto.uri_param() {
            Some(t) => format!("<sip:hammond@{at};transport={t}>"),
            None => format!("<sip:hammond@{at}>"),
        }
    }

    /// RFC 3581 §4 / RFC 3261 §18.2.1: add `received` (and fill `rport`) on the top Via.
    fn stamp_via(&self, headers: &mut Headers, peer: Peer) {
        let Some(pos) = headers
            .0
            .iter()
            .position(|h| h.name.eq_ignore_ascii_case("Via"))
        else {
            return;
        };
        let value = headers.0[pos].value.clone();
        let mut parts: Vec<&str> = msg::split_list(&value).collect();
        let Some(top) = parts.first().copied() else {
            return;
        };
        let Ok(mut via) = msg::parse_via(top) else {
            return;
        };
        via.params.set("received", Some(peer.addr.ip().to_string()));
        if via.params.has("rport") {
            via.params.set("rport", Some(peer.addr.port().to_string()));
        }
        let stamped = via.to_string();
        parts[0] = &stamped;
        headers.0[pos].value = parts.join(", ");
    }
}

/// The ACK for a non-2xx final (§17.1.1.3): the INVITE's Request-URI, top Via, From, Call-ID,
/// Route and CSeq number, and the response's To (with its tag).
fn non_2xx_ack(invite: &Request, rsp: &Response) -> Request {
    let mut headers = Headers::default();
    if let Some(v) = invite.headers.list("Via").first() {
        headers.push("Via", (*v).to_owned());
    }
    headers.push("Max-Forwards", "70");
    for name in ["From", "Call-ID"] {
        if let Some(v) = invite.headers.get(name) {
            headers.push(name, v.to_owned());
        }
    }
    if let Some(to) = rsp.headers.get("To") {
        headers.push("To", to.to_owned());
    }
    let seq = invite.cseq().map_or(1, |c| c.seq);
    headers.push("CSeq", format!("{seq} ACK"));
    for r in invite.headers.get_all("Route") {
        headers.push("Route", r.to_owned());
    }
    Request {
        method: Method::Ack,
        uri: invite.uri.clone(),
        headers,
        body: Vec::new(),
    }
}

/// An INVITE's offer must be SDP we can read (§8.2.3: else 415), and the answer we would send
/// must be acceptable to the caller (§21.4.7: an Accept without SDP → 406).
fn invite_body_check(req: &Request) -> Option<u16> {
    if !req.body.is_empty() {
        let media = req
            .content_type()
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if !matches!(
            media.as_str(),
            "application/sdp" | "multipart/mixed" | "multipart/alternative"
        ) {
            return Some(415);
        }
    }
    let accept = req.headers.get_all("Accept").collect::<Vec<_>>();
    if accept.iter().all(|v| v.trim().is_empty()) {
        return None;
    }
    let takes_sdp = accept.iter().flat_map(|v| v.split(',')).any(|range| {
        let media = range.split(';').next().unwrap_or_default().trim();
        ["application/sdp", "application/*", "*/*"]
            .iter()
            .any(|m| media.eq_ignore_ascii_case(m))
    });
    (!takes_sdp).then_some(406)
}

/// Put `tag` on the To header of a response.
fn set_to_tag(headers: &mut Headers, tag: &str) {
    if let Some(h) = headers
        .0
        .iter_mut()
        .find(|h| h.name.eq_ignore_ascii_case("To"))
    {
        if let Ok(mut to) = msg::parse_name_addr(&h.value) {
            if to.tag().is_none() {
                to.params.set("tag", Some(tag.to_owned()));
                h.value = to.to_string();
            }
        } else if !h.value.contains(";tag=") {
            h.value = format!("{};tag={tag}", h.value);
        }
    }
}

/// The status code of a `message/sipfrag` body: `SIP/2.0 200 OK`.
fn sipfrag_status(body: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(body).ok()?;
    let line = text.lines().next()?;
    let mut parts = line.split_whitespace();
    (parts.next()? == "SIP/2.0").then_some(())?;
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod stream_tests;
#[cfg(test)]
mod tests;
