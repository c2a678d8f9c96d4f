//! RTP port allocation: even ports from `[media] rtp_ports` (RFC 3550 §11: RTP on even ports),
//! handed out round-robin so a port just released is not reused at once (late packets of the
//! old call would otherwise reach the new one).

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU32, Ordering};

use std::net::UdpSocket;

/// Most ports tried for one call.
const MAX_TRIES: u32 = 64;

#[derive(Debug)]
pub struct PortPool {
    ip: IpAddr,
    first: u16,
    /// Number of even ports in the range.
    slots: u32,
    cursor: AtomicU32,
}

#[derive(Debug, thiserror::Error)]
#[error("no free RTP port in {first}-{last} on {ip}")]
pub struct PortsExhausted {
    ip: IpAddr,
    first: u16,
    last: u32,
}

impl PortPool {
    pub fn new(ip: IpAddr, range: RangeInclusive<u16>) -> Self {
        let first = *range.start() + (*range.start() % 2);
        let slots = (u32::from(*range.end()).saturating_sub(u32::from(first))) / 2 + 1;
        Self {
            ip,
            first,
            slots,
            cursor: AtomicU32::new(0),
        }
    }

    /// The error for "no port could be had" (also used when registering a socket fails).
    pub fn exhausted(&self) -> PortsExhausted {
        PortsExhausted {
            ip: self.ip,
            first: self.first,
            last: u32::from(self.first) + self.slots * 2,
        }
    }

    /// Bind a non-blocking UDP socket on the next free even port. It is a std socket so the
    /// media clock can send on a clone of it while the call task receives on a tokio one.
    pub fn bind(&self) -> Result<UdpSocket, PortsExhausted> {
        // Ports are handed out in turn, so the ones after the cursor are the longest free: a
        // free one is found within a few tries unless the range is nearly full, and then a
        // bounded search (one bind(2) each) keeps a flood of INVITEs from eating the CPU.
        for _ in 0..self.slots.min(MAX_TRIES) {
            let slot = self.cursor.fetch_add(1, Ordering::Relaxed) % self.slots;
            let port = u32::from(self.first) + slot * 2;
            let Ok(port) = u16::try_from(port) else {
                continue;
            };
            if let Ok(sock) = UdpSocket::bind(SocketAddr::new(self.ip, port))
                && sock.set_nonblocking(true).is_ok()
            {
                return Ok(sock);
            }
        }
        Err(self.exhausted())
    }
}
