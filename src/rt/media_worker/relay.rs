//! Bridged streams on the media thread: what arrives on one is re-originated on the other's
//! stream ([`MediaLeg::relay`](crate::media::leg::MediaLeg::relay)) and sent on its socket.

use std::net::SocketAddr;
use std::time::Instant;

use super::{Entry, Io, Worker, send, send_socket};
use crate::media::bridge::OneWay;
use crate::rt::udp_batch::RecvBatch;

/// One side of a bridge: where this stream's arrivals go.
pub(super) struct Bridge {
    /// The peer's slot and generation.
    peer: usize,
    generation: u32,
    /// This stream's direction of the relay (its arrivals → the peer's stream).
    way: OneWay,
}

impl Worker {
    /// The slot `idx` is bridged to.
    pub(super) fn peer_of(&self, idx: usize) -> Option<usize> {
        let entry = self.entries.get(idx)?.as_ref()?;
        entry.bridge.as_ref().map(|b| b.peer)
    }

    /// Bridge slots `a` and `b` (each leaving any other bridge first).
    pub(super) fn bridge(&mut self, a: usize, b: usize) {
        if a == b || self.peer_of(a) == Some(b) {
            return;
        }
        self.unbridge_slot(a);
        self.unbridge_slot(b);
        let Some((x, y)) = two(&mut self.entries, a, b) else {
            return;
        };
        x.bridge = Some(Bridge {
            peer: b,
            generation: y.generation,
            way: OneWay::new(),
        });
        y.bridge = Some(Bridge {
            peer: a,
            generation: x.generation,
            way: OneWay::new(),
        });
        sync_mode(x);
        sync_mode(y);
    }

    /// End slot `idx`'s bridge, if it has one: both sides go back to their players.
    pub(super) fn unbridge_slot(&mut self, idx: usize) {
        let Some(entry) = self.entries.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        let Some(bridge) = entry.bridge.take() else {
            return;
        };
        sync_mode(entry);
        let generation = entry.generation;
        if let Some(peer) = self.entries.get_mut(bridge.peer).and_then(Option::as_mut)
            && peer.generation == bridge.generation
            && peer
                .bridge
                .as_ref()
                .is_some_and(|b| b.peer == idx && b.generation == generation)
        {
            peer.bridge = None;
            sync_mode(peer);
        }
    }
}

/// Room for a relayed packet: any datagram the receive buffers hold.
pub(super) const RELAY_BUF: usize = 1500;

/// What relaying one arrival came to.
pub(super) enum Relayed {
    /// One of the two legs is held by its call task: try again next tick.
    Busy,
    /// Dropped (wrong source, not RTP, a payload not relayed, the peer not sending).
    Nothing,
    /// `n` bytes of the relay buffer go to `dest` on slot `peer`'s socket.
    Send {
        peer: usize,
        n: usize,
        dest: SocketAddr,
    },
}

/// Relay a datagram that arrived on bridged slot `idx` onto its peer's stream, written into
/// `out`.
pub(super) fn relay(
    entries: &mut [Option<Entry>],
    idx: usize,
    now: Instant,
    from: SocketAddr,
    bytes: &[u8],
    out: &mut [u8],
) -> Relayed {
    let Some(peer) = entries
        .get(idx)
        .and_then(Option::as_ref)
        .and_then(|e| e.bridge.as_ref())
        .map(|b| b.peer)
    else {
        return Relayed::Nothing;
    };
    let Some((src, dst)) = two(entries, idx, peer) else {
        return Relayed::Nothing;
    };
    let Some(bridge) = src.bridge.as_mut() else {
        return Relayed::Nothing;
    };
    if bridge.generation != dst.generation || dst.leaving {
        return Relayed::Nothing;
    }
    let (Some(mut a), Some(mut b)) = (src.stream.try_leg(), dst.stream.try_leg()) else {
        return Relayed::Busy;
    };
    // Bridged a moment ago, while a leg was busy: the players stop now.
    a.set_bridged(true);
    b.set_bridged(true);
    match a.relay(now, from, bytes, &mut bridge.way, &mut b, out) {
        Some((n, dest)) => Relayed::Send { peer, n, dest },
        None => Relayed::Nothing,
    }
}

/// Relay everything waiting on bridged slot `idx`'s ready socket (epoll). With a leg busy,
/// nothing is read: the socket stays ready and is read next tick.
pub(super) fn relay_ready(
    entries: &mut [Option<Entry>],
    batch: &mut RecvBatch,
    idx: usize,
    now: Instant,
) {
    let Some(peer) = entries
        .get(idx)
        .and_then(Option::as_ref)
        .and_then(|e| e.bridge.as_ref())
        .map(|b| b.peer)
    else {
        return;
    };
    let Some((src, dst)) = two(entries, idx, peer) else {
        return;
    };
    let Some(bridge) = src.bridge.as_mut() else {
        return;
    };
    if bridge.generation != dst.generation || dst.leaving {
        return;
    }
    let (Some(mut a), Some(mut b)) = (src.stream.try_leg(), dst.stream.try_leg()) else {
        return;
    };
    a.set_bridged(true);
    b.set_bridged(true);
    let n = batch.recv(&src.sock);
    let mut out = [0u8; RELAY_BUF];
    for i in 0..n {
        if let Some((from, bytes)) = batch.get(i)
            && !super::webrtc::divert(src.sideband.as_ref(), from, bytes)
            && let Some((len, dest)) = a.relay(now, from, bytes, &mut bridge.way, &mut b, &mut out)
        {
            send_socket(&dst.sock, &mut dst.connected, &out[..len], dest);
        }
    }
}

/// Send `bytes` on slot `idx`'s socket.
pub(super) fn send_to_slot(
    io: &mut Io,
    entries: &mut [Option<Entry>],
    idx: usize,
    bytes: &[u8],
    dest: SocketAddr,
) {
    if let Some(e) = entries.get_mut(idx).and_then(Option::as_mut) {
        send(io, idx, &e.sock, &mut e.connected, bytes, dest);
    }
}

/// Slots `i` and `j` (two different ones in use), both at once.
pub(super) fn two(
    entries: &mut [Option<Entry>],
    i: usize,
    j: usize,
) -> Option<(&mut Entry, &mut Entry)> {
    if i == j || i.max(j) >= entries.len() {
        return None;
    }
    let (low, high) = entries.split_at_mut(i.max(j));
    let (x, y) = (low[i.min(j)].as_mut()?, high[0].as_mut()?);
    Some(if i < j { (x, y) } else { (y, x) })
}

/// Put the leg's mode in line with the entry's bridge, unless its call task holds it (then
/// its next frame does).
pub(super) fn sync_mode(entry: &Entry) {
    if let Some(mut leg) = entry.stream.try_leg() {
        leg.set_bridged(entry.bridge.is_some());
    }
}
