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
        // Ports are handed out in turn, so the one at the cursor is the longest free. If it is
        // taken, something holds a run of ports there (another program on the host, whose
        // sockets may even move through the range as fast as the cursor): look across the
        // whole range rather than at the next ports. The search is bounded (one bind(2) per
        // try), so a flood of INVITEs cannot eat the CPU.
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        let stride = (self.slots / MAX_TRIES).max(1) | 1;
        for i in 0..self.slots.min(MAX_TRIES) {
            let slot = start.wrapping_add(i.wrapping_mul(stride)) % self.slots;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// Another program holding the ports right after the cursor (more than a search's worth)
    /// does not make the pool refuse calls while the rest of the range is free.
    #[test]
    fn a_run_of_ports_held_elsewhere_is_stepped_over() {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let pool = PortPool::new(ip, 41_000..=41_999);
        // 100 even ports from the start of the range: more than MAX_TRIES in a row.
        let held: Vec<UdpSocket> = (0..100)
            .filter_map(|i| UdpSocket::bind(SocketAddr::new(ip, 41_000 + 2 * i)).ok())
            .collect();
        assert!(held.len() > 64, "the test needs the ports free");
        for _ in 0..10 {
            let sock = pool.bind().expect("a free port elsewhere in the range");
            let port = sock.local_addr().expect("bound").port();
            assert!(
                (41_000..=41_999).contains(&port) && port.is_multiple_of(2),
                "{port}"
            );
        }
    }
}
