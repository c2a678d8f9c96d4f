//! What every call task shares: config, prompts, the store, the user agent's command handle,
//! RTP ports and the id generator.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::config::{Config, SrtpMode};
use crate::idgen::IdGen;
use crate::media::prompts::PromptLibrary;
use crate::media::sdp::{LocalCrypto, LocalMedia, SrtpPolicy};
use crate::queue::estimate::Estimator;
use crate::rt::agents::Agents;
use crate::rt::connected::ConnectedCalls;
use crate::rt::legs::LegRegistry;
use crate::rt::live::LiveCalls;
use crate::rt::media_worker::MediaClock;
use crate::rt::ports::PortPool;
use crate::rt::queue_watch::QueueRegistry;
use crate::rt::sip_socket::UaHandle;
use crate::rt::webrtc::Phones;
use crate::store::InteractionStore;

pub struct Services {
    pub cfg: Arc<Config>,
    pub prompts: Arc<PromptLibrary>,
    pub store: Arc<dyn InteractionStore>,
    pub ua: UaHandle,
    pub ports: PortPool,
    pub queues: Arc<QueueRegistry>,
    /// Which task owns each SIP leg.
    pub legs: LegRegistry,
    /// Live callers the router may offer to agents.
    pub live: LiveCalls,
    /// Agents and their presence (shared with the API).
    pub agents: Arc<Agents>,
    /// Calls up for connected interactions (shared with the API, whose close hangs them up).
    pub connected: Arc<ConnectedCalls>,
    /// Browser agents' phones (shared with the API, which signals them).
    pub phones: Arc<Phones>,
    /// Recent handling times, for estimated waits.
    pub estimator: Mutex<Estimator>,
    /// The thread that sends every call's 20 ms frames.
    pub media: MediaClock,
    /// The address we advertise in SDP.
    pub media_ip: IpAddr,
    ids: Mutex<IdGen>,
    active: AtomicUsize,
}

impl Services {
    pub fn new(
        cfg: Arc<Config>,
        prompts: Arc<PromptLibrary>,
        store: Arc<dyn InteractionStore>,
        ua: UaHandle,
        queues: Arc<QueueRegistry>,
        agents: Arc<Agents>,
        ids: IdGen,
    ) -> std::io::Result<Self> {
        let media_ip = cfg.sip.public_address;
        let bind_ip = cfg.sip.listen.ip();
        let media = MediaClock::start(cfg.media.io)?;
        Ok(Self {
            ports: PortPool::new(bind_ip, cfg.media.rtp_ports.clone()),
            cfg,
            prompts,
            store,
            ua,
            queues,
            legs: LegRegistry::default(),
            live: LiveCalls::default(),
            agents,
            connected: Arc::default(),
            phones: Arc::default(),
            estimator: Mutex::new(Estimator::default()),
            media,
            media_ip,
            ids: Mutex::new(ids),
            active: AtomicUsize::new(0),
        })
    }

    /// The id generator (held briefly; never across an await).
    pub fn ids(&self) -> MutexGuard<'_, IdGen> {
        self.ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Our side of an SDP exchange on `port`, with the configured codecs.
    pub fn local_media(&self, port: u16) -> LocalMedia {
        let mut local = LocalMedia::new(self.media_ip, port);
        local.codecs = self.cfg.media.codecs.clone();
        local
    }

    /// Our SDES side of a leg under `policy` (`None` when off): fresh keys from the OS RNG,
    /// never from the seeded id generator (a known seed must not give known keys).
    pub fn local_crypto(&self, policy: SrtpPolicy) -> Option<LocalCrypto> {
        (policy != SrtpPolicy::Off).then(|| LocalCrypto::new(policy, os_random))
    }

    /// The SRTP policy of the customer's leg, from `[sip.trunk] srtp`.
    pub fn trunk_srtp(&self) -> SrtpPolicy {
        match self.cfg.trunk.srtp {
            SrtpMode::Off => SrtpPolicy::Off,
            SrtpMode::Optional => SrtpPolicy::Optional,
            SrtpMode::Mandatory => SrtpPolicy::Mandatory,
        }
    }
}

/// Fill `buf` from the OS RNG (through ring, which the SRTP library already brings).
fn os_random(buf: &mut [u8]) {
    static RNG: std::sync::LazyLock<Option<Arc<dyn rtc_srtp::crypto::RTCCryptoProvider>>> =
        std::sync::LazyLock::new(|| rtc_srtp::crypto::default_provider().ok());
    RNG.as_ref()
        .and_then(|p| p.random().fill(buf).ok())
        .expect("the OS random number generator is available");
}

/// Counts a call as active while it lives (for draining and the metrics gauge).
pub struct ActiveGuard(Arc<Services>);

impl Services {
    /// Calls in progress.
    pub fn active_calls(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Mark a call active until the guard drops.
    pub fn track(self: &Arc<Self>) -> ActiveGuard {
        self.active.fetch_add(1, Ordering::Relaxed);
        crate::metrics::set_active_calls(self.active_calls());
        ActiveGuard(self.clone())
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
        crate::metrics::set_active_calls(self.0.active_calls());
    }
}

impl Services {
    /// Estimated wait for position `position` of `queue`, if history allows an honest one.
    pub fn estimated_wait(&self, queue: &str, position: u32) -> Option<std::time::Duration> {
        let serving = self
            .agents
            .all()
            .iter()
            .filter(|a| a.queues.iter().any(|q| q == queue))
            .count();
        self.estimator
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .estimate(queue, position, serving)
    }

    /// The caller ID our outbound legs for `queue` present: the queue's, else the trunk's.
    pub fn caller_id_for(&self, queue: &str) -> String {
        self.queues
            .current()
            .get(queue)
            .and_then(|f| f.callback.caller_id.clone())
            .unwrap_or_else(|| self.cfg.trunk.caller_id.clone())
    }

    /// Record a finished conversation's length for `queue`'s estimates.
    pub fn record_handling(&self, queue: &str, handling: std::time::Duration) {
        self.estimator
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .record(queue, handling);
    }
}
