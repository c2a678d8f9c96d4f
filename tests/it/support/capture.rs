//! What crosses the loopback interface, as a packet capture sees it: every UDP datagram on
//! `lo`, with its addresses, from an `AF_PACKET` socket (so the test sees the wire, not what a
//! peer chose to report). Needs root or `CAP_NET_RAW`, as `scripts/test` and CI run.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// One UDP datagram seen on `lo`.
#[derive(Debug, Clone)]
pub(crate) struct Datagram {
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub payload: Vec<u8>,
}

pub(crate) struct Capture {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Datagram>>,
}

/// `PACKET_OUTGOING`: loopback shows each packet leaving and arriving; keep the arrival.
const PACKET_OUTGOING: u8 = 4;

fn open_lo() -> OwnedFd {
    let proto = (libc::ETH_P_IP as u16).to_be();
    // SAFETY: plain system calls on a socket this function owns; every struct is zeroed and
    // sized as the kernel expects.
    unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM, i32::from(proto));
        assert!(
            fd >= 0,
            "a packet capture needs root or CAP_NET_RAW: {}",
            std::io::Error::last_os_error()
        );
        let fd = OwnedFd::from_raw_fd(fd);
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = libc::if_nametoindex(c"lo".as_ptr()) as i32;
        let r = libc::bind(
            fd.as_raw_fd(),
            (&raw const sll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        );
        assert_eq!(r, 0, "bind to lo: {}", std::io::Error::last_os_error());
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 50_000,
        };
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        );
        // Other tests' traffic crosses lo too: room for bursts while this thread is descheduled.
        let room: libc::c_int = 8 << 20;
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&raw const room).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        );
        fd
    }
}

/// An IPv4 packet's UDP datagram, if it is one.
fn udp(ip: &[u8]) -> Option<Datagram> {
    let ihl = usize::from(ip.first()? & 0x0F) * 4;
    if ip[0] >> 4 != 4 || *ip.get(9)? != 17 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
    let addr = |at: usize| Ipv4Addr::new(ip[at], ip[at + 1], ip[at + 2], ip[at + 3]);
    let u = ip.get(ihl..total)?;
    let port = |at: usize| u16::from_be_bytes([u[at], u[at + 1]]);
    Some(Datagram {
        src: SocketAddrV4::new(addr(12), port(0)),
        dst: SocketAddrV4::new(addr(16), port(2)),
        payload: u.get(8..)?.to_vec(),
    })
}

impl Capture {
    /// Start capturing UDP on `lo`.
    pub(crate) fn start() -> Self {
        let fd = open_lo();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut out = Vec::new();
            let mut buf = vec![0u8; 65_536];
            while !flag.load(Ordering::Relaxed) {
                // SAFETY: `buf` and `from` outlive the call and their sizes are passed.
                let (n, from) = unsafe {
                    let mut from: libc::sockaddr_ll = std::mem::zeroed();
                    let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
                    let n = libc::recvfrom(
                        fd.as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        0,
                        (&raw mut from).cast(),
                        &mut len,
                    );
                    (n, from)
                };
                let Ok(n) = usize::try_from(n) else { continue };
                if from.sll_pkttype == PACKET_OUTGOING {
                    continue;
                }
                out.extend(udp(&buf[..n]));
            }
            out
        });
        Self { stop, thread }
    }

    /// Stop and return what was seen, in order.
    pub(crate) fn stop(self) -> Vec<Datagram> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("capture thread")
    }
}
