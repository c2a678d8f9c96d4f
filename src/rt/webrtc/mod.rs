//! Agents whose phone is the Home List page (`[[agents]] endpoint = "webrtc"`, issue 16): the
//! shell between the page's signalling (HTTP API) and the call drivers' agent leg.
//!
//! Signalling, per call (one RTCPeerConnection per call; the page opens the microphone once,
//! at sign-in, and reuses it):
//! 1. The page holds `GET /api/v1/phone/events` open (SSE, the agent's bearer token). It is the
//!    phone's registration: an agent with no page open is unreachable (the leg fails at once,
//!    as a SIP phone that is not registered).
//! 2. A driver dials the agent ([`BrowserLeg::ring`]): the page hears `ringing` with the call's
//!    id, the number and whether it is pushed work (Accept/Decline) or the agent's own pick
//!    from the Home List (answered at once).
//! 3. The page answers with its complete offer (ICE gathering finished, no trickle):
//!    `POST /api/v1/phone/calls/{call}/answer {"sdp"}` → `{"sdp"}`, our answer with our one host
//!    candidate ([`peer`]). When DTLS-SRTP is up the leg is answered for the call core.
//! 4. `POST …/decline` while ringing, `POST …/hangup` in a call; Hammond's own hang-up or the
//!    end of a ring reaches the page as `ended`.
//!
//! For the call core the browser is one more agent leg: it rings, answers, fails (`603` on
//! decline, `480` with no page open, no status when the connection never came up), ends (the
//! page hung up) or times out (the connection was lost mid-call: a closed tab, a lost network,
//! the same [`LegEvent::MediaTimeout`] as a SIP phone whose RTP stops).

pub mod peer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{info, warn};

use self::peer::{PeerError, PeerEvent, PeerHandle};
use super::media_worker::Stream;
use super::services::Services;
use crate::call::{AgentCommand, LegEvent};
use crate::interaction::InteractionId;

/// Events a page may fall behind by before it is disconnected (it reconnects and resyncs).
const PAGE_BACKLOG: usize = 64;

/// Requests about one call not yet taken by its driver. A page sends one per button press and
/// the driver drains them every turn, so a full queue means a page flooding its own call: the
/// request is refused (409) rather than queued without end.
const PAGE_ACTIONS: usize = 8;

/// What the page hears on its phone stream (`event:` = the kind, `data:` = the JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PhoneEvent {
    /// Hammond calls the page. `pushed`: an offer the agent may decline; otherwise the
    /// agent's own accept, which the page answers at once.
    Ringing {
        call: u64,
        number: String,
        interaction: Option<InteractionId>,
        pushed: bool,
    },
    /// Media flows.
    Connected { call: u64 },
    /// The call is over for the page (`reason`: `hung_up`, `cancelled`, `lost`).
    Ended { call: u64, reason: &'static str },
}

impl PhoneEvent {
    /// The SSE `event:` name.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Ringing { .. } => "ringing",
            Self::Connected { .. } => "connected",
            Self::Ended { .. } => "ended",
        }
    }
}

/// What the page asked of one of its calls.
enum PageAction {
    Answer {
        offer: String,
        reply: oneshot::Sender<Result<String, PeerError>>,
    },
    Decline,
    HangUp,
    /// The page's Hold or Resume button.
    Agent(AgentCommand),
}

/// Why the page's request about a call was refused.
#[derive(Debug, thiserror::Error)]
pub enum PhoneError {
    #[error("no such call on this agent's phone")]
    NoSuchCall,
    #[error("the call is already answered")]
    AlreadyAnswered,
    #[error("the call has not yet acted on the page's last requests; try again")]
    Busy,
    #[error(transparent)]
    Peer(#[from] PeerError),
}

/// Every browser phone: the open pages and the calls ringing or up on them. Shared by the
/// call drivers (through `Services`) and the API.
#[derive(Default)]
pub struct Phones {
    inner: Mutex<Inner>,
    next_call: AtomicU64,
}

#[derive(Default)]
struct Inner {
    pages: HashMap<String, Page>,
    calls: HashMap<u64, Slot>,
}

struct Page {
    tx: broadcast::Sender<PhoneEvent>,
    /// Open event streams (a page in two tabs counts twice).
    open: usize,
}

struct Slot {
    agent: String,
    actions: mpsc::Sender<PageAction>,
}

/// An open phone stream; dropping it closes the page's registration.
pub struct PageStream {
    phones: Arc<Phones>,
    agent: String,
    pub events: broadcast::Receiver<PhoneEvent>,
}

impl Drop for PageStream {
    fn drop(&mut self) {
        let mut inner = self.phones.lock();
        if let Some(p) = inner.pages.get_mut(&self.agent) {
            p.open = p.open.saturating_sub(1);
        }
    }
}

impl Phones {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The agent's page connects its phone.
    pub fn open_page(self: &Arc<Self>, agent: &str) -> PageStream {
        let mut inner = self.lock();
        let page = inner.pages.entry(agent.to_owned()).or_insert_with(|| Page {
            tx: broadcast::channel(PAGE_BACKLOG).0,
            open: 0,
        });
        page.open += 1;
        PageStream {
            phones: self.clone(),
            agent: agent.to_owned(),
            events: page.tx.subscribe(),
        }
    }

    /// Whether `agent` has its page open.
    pub fn is_online(&self, agent: &str) -> bool {
        self.lock().pages.get(agent).is_some_and(|p| p.open > 0)
    }

    fn notify(&self, agent: &str, ev: PhoneEvent) {
        if let Some(p) = self.lock().pages.get(agent) {
            let _ = p.tx.send(ev);
        }
    }

    fn act(&self, agent: &str, call: u64, action: PageAction) -> Result<(), PhoneError> {
        let inner = self.lock();
        let slot = inner
            .calls
            .get(&call)
            .filter(|s| s.agent == agent)
            .ok_or(PhoneError::NoSuchCall)?;
        slot.actions.try_send(action).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => PhoneError::Busy,
            mpsc::error::TrySendError::Closed(_) => PhoneError::NoSuchCall,
        })
    }

    /// The page answers `call` with its `offer`; our answer comes back once the peer
    /// connection is built.
    pub async fn answer(
        &self,
        agent: &str,
        call: u64,
        offer: String,
    ) -> Result<String, PhoneError> {
        let (reply, answer) = oneshot::channel();
        self.act(agent, call, PageAction::Answer { offer, reply })?;
        answer
            .await
            .map_err(|_| PhoneError::NoSuchCall)?
            .map_err(Into::into)
    }

    /// The page declines a ringing call.
    pub fn decline(&self, agent: &str, call: u64) -> Result<(), PhoneError> {
        self.act(agent, call, PageAction::Decline)
    }

    /// The page puts its call on hold or takes it off (the call core decides what it means).
    pub fn hold(&self, agent: &str, call: u64, cmd: AgentCommand) -> Result<(), PhoneError> {
        self.act(agent, call, PageAction::Agent(cmd))
    }

    /// The page hangs up.
    pub fn hang_up(&self, agent: &str, call: u64) -> Result<(), PhoneError> {
        self.act(agent, call, PageAction::HangUp)
    }
}

/// The agent's leg when its phone is the browser: what `Legs` holds for it.
pub struct BrowserLeg {
    svc: Arc<Services>,
    call: u64,
    agent: String,
    actions: mpsc::Receiver<PageAction>,
    peer: Option<PeerHandle>,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ringing,
    /// The page answered; the connection is coming up.
    Connecting,
    Up,
    Over,
}

/// What [`BrowserLeg::poll`] found.
pub enum BrowserHappening {
    /// For the call core.
    Leg(LegEvent),
    /// The connection is up: the leg's media is this stream (then `Answered`).
    Answered(Arc<Stream>),
    /// The page asked for hold or resume.
    Agent(AgentCommand),
}

impl BrowserLeg {
    /// Ring `agent`'s page. `Err(event)`: the page is not open, and the core should hear
    /// `event` (a failed dial, as for a SIP phone that is not registered).
    pub fn ring(
        svc: &Arc<Services>,
        agent: &str,
        number: String,
        interaction: Option<InteractionId>,
        pushed: bool,
    ) -> Result<Self, LegEvent> {
        let phones = &svc.phones;
        if !phones.is_online(agent) {
            info!(agent, "browser phone not connected; the agent's leg fails");
            return Err(LegEvent::Failed {
                status: Some(480),
                cause: None,
            });
        }
        let call = phones.next_call.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, actions) = mpsc::channel(PAGE_ACTIONS);
        phones.lock().calls.insert(
            call,
            Slot {
                agent: agent.to_owned(),
                actions: tx,
            },
        );
        phones.notify(
            agent,
            PhoneEvent::Ringing {
                call,
                number,
                interaction,
                pushed,
            },
        );
        info!(agent, call, pushed, "ringing the browser phone");
        Ok(Self {
            svc: svc.clone(),
            call,
            agent: agent.to_owned(),
            actions,
            peer: None,
            state: State::Ringing,
        })
    }

    /// The next thing the page or the connection did.
    pub fn poll(&mut self, cx: &mut Context<'_>) -> Poll<BrowserHappening> {
        if self.state == State::Over {
            return Poll::Pending;
        }
        if let Some(peer) = self.peer.as_mut()
            && let Poll::Ready(ev) = peer.events.poll_recv(cx)
        {
            return Poll::Ready(match ev {
                Some(PeerEvent::Connected(stream)) => {
                    self.state = State::Up;
                    self.svc
                        .phones
                        .notify(&self.agent, PhoneEvent::Connected { call: self.call });
                    BrowserHappening::Answered(stream)
                }
                Some(PeerEvent::Lost) | None => {
                    let up = self.state == State::Up;
                    self.finish("lost");
                    BrowserHappening::Leg(if up {
                        LegEvent::MediaTimeout
                    } else {
                        LegEvent::Failed {
                            status: None,
                            cause: None,
                        }
                    })
                }
            });
        }
        while let Poll::Ready(Some(action)) = self.actions.poll_recv(cx) {
            match action {
                PageAction::Answer { offer, reply } => {
                    if self.state != State::Ringing {
                        let _ = reply.send(Err(PeerError::Offer("already answered".into())));
                        continue;
                    }
                    match peer::answer(&self.svc, &offer) {
                        Ok((handle, sdp)) => {
                            self.peer = Some(handle);
                            self.state = State::Connecting;
                            let _ = reply.send(Ok(sdp));
                            // Poll the new handle so its events wake this task.
                            cx.waker().wake_by_ref();
                        }
                        Err(e) => {
                            warn!(error = %e, "browser offer not answered");
                            let _ = reply.send(Err(e));
                        }
                    }
                }
                PageAction::Agent(cmd) => {
                    if self.state == State::Up {
                        return Poll::Ready(BrowserHappening::Agent(cmd));
                    }
                }
                PageAction::Decline | PageAction::HangUp => {
                    let up = self.state == State::Up;
                    self.finish("hung_up");
                    return Poll::Ready(BrowserHappening::Leg(if up {
                        LegEvent::Ended
                    } else {
                        LegEvent::Failed {
                            status: Some(603),
                            cause: None,
                        }
                    }));
                }
            }
        }
        Poll::Pending
    }

    /// Hammond hangs the leg up (CANCEL or BYE for a SIP phone). Idempotent.
    pub fn hang_up(&mut self) {
        let reason = if self.state == State::Up {
            "hung_up"
        } else {
            "cancelled"
        };
        self.finish(reason);
    }

    fn finish(&mut self, reason: &'static str) {
        if self.state == State::Over {
            return;
        }
        self.state = State::Over;
        // Dropping the handle closes the connection.
        self.peer = None;
        self.svc.phones.lock().calls.remove(&self.call);
        self.svc.phones.notify(
            &self.agent,
            PhoneEvent::Ended {
                call: self.call,
                reason,
            },
        );
    }
}

impl Drop for BrowserLeg {
    fn drop(&mut self) {
        self.hang_up();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_online_while_its_stream_is_open() {
        let phones = Arc::new(Phones::default());
        assert!(!phones.is_online("carol"));
        let a = phones.open_page("carol");
        let b = phones.open_page("carol");
        assert!(phones.is_online("carol"));
        drop(a);
        assert!(phones.is_online("carol"), "another tab still has it open");
        drop(b);
        assert!(
            !phones.is_online("carol"),
            "a closed tab is an unregistered phone"
        );
    }

    #[test]
    fn a_call_answers_only_to_its_own_agent() {
        let phones = Arc::new(Phones::default());
        let (tx, mut rx) = mpsc::channel(PAGE_ACTIONS);
        phones.lock().calls.insert(
            7,
            Slot {
                agent: "carol".into(),
                actions: tx,
            },
        );
        assert!(matches!(
            phones.hang_up("dave", 7),
            Err(PhoneError::NoSuchCall)
        ));
        assert!(matches!(
            phones.decline("carol", 8),
            Err(PhoneError::NoSuchCall)
        ));
        phones.decline("carol", 7).unwrap();
        assert!(matches!(rx.try_recv(), Ok(PageAction::Decline)));
    }

    /// A page pressing Hold faster than its call takes the presses is told so; nothing queues
    /// without end, and the call takes requests again once it has drained them.
    #[test]
    fn a_flooding_page_is_refused_not_queued() {
        let phones = Arc::new(Phones::default());
        let (tx, mut rx) = mpsc::channel(PAGE_ACTIONS);
        phones.lock().calls.insert(
            7,
            Slot {
                agent: "carol".into(),
                actions: tx,
            },
        );
        for _ in 0..PAGE_ACTIONS {
            phones.hold("carol", 7, AgentCommand::Hold).unwrap();
        }
        assert!(matches!(
            phones.hold("carol", 7, AgentCommand::Resume),
            Err(PhoneError::Busy)
        ));
        assert!(rx.try_recv().is_ok());
        phones.hang_up("carol", 7).unwrap();
        drop(rx);
        assert!(matches!(
            phones.hang_up("carol", 7),
            Err(PhoneError::NoSuchCall)
        ));
    }

    #[test]
    fn the_page_hears_events_by_kind() {
        let phones = Arc::new(Phones::default());
        let mut page = phones.open_page("carol");
        let ev = PhoneEvent::Ringing {
            call: 3,
            number: "15551234567".into(),
            interaction: Some(9),
            pushed: true,
        };
        phones.notify("carol", ev.clone());
        phones.notify("dave", PhoneEvent::Connected { call: 1 });
        let got = page.events.try_recv().unwrap();
        assert_eq!(got, ev);
        assert_eq!(got.kind(), "ringing");
        assert_eq!(
            serde_json::to_value(&got).unwrap(),
            serde_json::json!({"kind": "ringing", "call": 3, "number": "15551234567", "interaction": 9, "pushed": true})
        );
        assert!(page.events.try_recv().is_err(), "nothing of dave's");
    }
}
