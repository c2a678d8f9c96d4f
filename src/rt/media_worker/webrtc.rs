//! Browser legs on the media thread (issue 16): their socket carries STUN, DTLS, SRTP and SRTCP
//! on one port (RFC 7983). The thread keeps the SRTP for the stream's leg, whose SRTP contexts
//! were keyed from the DTLS handshake (see `webrtc::peer`), and hands STUN and DTLS to the
//! call's peer connection task over the stream's [`Sideband`]: a few datagrams a second (ICE
//! consent, a DTLS retransmission or alert), against 50 RTP packets a second each way that now
//! cross no task and no extra socket.
//!
//! SRTCP is dropped here: no interceptor of the peer connection reads reports (G.711 at 20 ms
//! adapts to nothing), so decrypting them anywhere would be work for nothing.

use std::net::SocketAddr;

use tokio::sync::mpsc;

use crate::media::demux::{Kind, classify};

/// A datagram for a browser leg's peer connection.
#[derive(Debug)]
pub struct SideDatagram {
    pub from: SocketAddr,
    pub bytes: Vec<u8>,
}

/// Where a browser stream's STUN and DTLS go: its peer connection's task.
pub type Sideband = mpsc::Sender<SideDatagram>;

/// Datagrams the sideband holds. A browser sends a consent check every 2.5 s and DTLS only
/// in the handshake (already over) or at the end: a full queue is a flood, whose excess is
/// dropped here (STUN and DTLS retransmit), and the media thread never waits.
pub const SIDEBAND_DEPTH: usize = 32;

/// Whether the datagram is not the leg's: on a stream with a sideband, STUN and DTLS are sent
/// on it and RTCP or anything unknown is dropped (`true`: the caller is done with it). RTP, and
/// everything on a stream without a sideband, is the leg's (`false`).
pub(super) fn divert(sideband: Option<&Sideband>, from: SocketAddr, bytes: &[u8]) -> bool {
    let Some(side) = sideband else {
        return false;
    };
    match classify(bytes) {
        Kind::Rtp => false,
        Kind::Stun | Kind::Dtls => {
            // Full (a flood) or closed (the call is over): dropped.
            let _ = side.try_send(SideDatagram {
                from,
                bytes: bytes.to_vec(),
            });
            true
        }
        Kind::Rtcp | Kind::Other => true,
    }
}
