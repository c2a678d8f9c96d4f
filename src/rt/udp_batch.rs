//! The few socket calls the media thread needs that std does not offer: an epoll set it polls
//! without blocking, and `recvmmsg` to take every queued datagram of a socket in one system
//! call.
//!
//! Every `unsafe` block here is a plain system call on file descriptors we own, with buffers
//! that outlive the call; the wrappers are safe to use.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A level-triggered epoll set of sockets waiting to be read, polled with a zero timeout: the
/// media thread decides when it looks, so packets never wake it one by one.
pub struct Epoll {
    fd: OwnedFd,
    ready: Vec<libc::epoll_event>,
}

impl Epoll {
    pub fn new(capacity: usize) -> io::Result<Self> {
        // SAFETY: epoll_create1 takes no pointers; a non-negative result is a new fd we own.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            // SAFETY: `fd` was just created and nothing else owns it.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            // SAFETY: epoll_event is plain data; all-zero is a valid value.
            ready: vec![unsafe { zeroed() }; capacity.max(1)],
        })
    }

    /// Watch `sock` for readable data, reported with `token`.
    pub fn add(&self, sock: &UdpSocket, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: both fds are open; `ev` lives across the call.
        let rc = unsafe {
            libc::epoll_ctl(
                self.fd.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                sock.as_raw_fd(),
                &raw mut ev,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Stop watching `sock`.
    pub fn remove(&self, sock: &UdpSocket) {
        // SAFETY: both fds are open; DEL ignores the event pointer (non-null for old kernels).
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        unsafe {
            libc::epoll_ctl(
                self.fd.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                sock.as_raw_fd(),
                &raw mut ev,
            );
        }
    }

    /// The tokens of the sockets that have data now (never blocks).
    pub fn ready_now(&mut self) -> impl Iterator<Item = u64> + '_ {
        let cap = i32::try_from(self.ready.len()).unwrap_or(i32::MAX);
        // SAFETY: `ready` has room for `cap` events and outlives the call.
        let n = unsafe { libc::epoll_wait(self.fd.as_raw_fd(), self.ready.as_mut_ptr(), cap, 0) };
        let n = usize::try_from(n).unwrap_or(0);
        self.ready[..n].iter().map(|ev| ev.u64)
    }
}

/// Datagrams taken per `recvmmsg`: a 20 ms stream rarely has more than one waiting.
const BATCH: usize = 4;
/// Room per datagram: more than any RTP packet a PBX sends; longer ones are dropped.
const DATAGRAM: usize = 1500;

/// Buffers for receiving up to [`BATCH`] datagrams with one system call.
pub struct RecvBatch {
    bufs: Box<[[u8; DATAGRAM]; BATCH]>,
    lens: [usize; BATCH],
    from: [Option<SocketAddr>; BATCH],
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self {
            bufs: Box::new([[0; DATAGRAM]; BATCH]),
            lens: [0; BATCH],
            from: [None; BATCH],
        }
    }
}

impl RecvBatch {
    /// Take what is queued on `sock` without blocking: the number of datagrams read (0 when
    /// none). Errors (an ICMP error queued on a connected socket) count as nothing read.
    pub fn recv(&mut self, sock: &UdpSocket) -> usize {
        // SAFETY: plain data; zero is valid for all of these.
        let mut names: [libc::sockaddr_storage; BATCH] = unsafe { zeroed() };
        let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for i in 0..BATCH {
            iovs[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: DATAGRAM,
            };
            msgs[i].msg_hdr.msg_name = (&raw mut names[i]).cast();
            msgs[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            msgs[i].msg_hdr.msg_iov = &raw mut iovs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every pointer in `msgs` points into `names`, `iovs` and `self.bufs`, which
        // outlive the call; the lengths match the buffers.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        let n = usize::try_from(n).unwrap_or(0);
        for i in 0..n {
            let truncated = msgs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            self.lens[i] = if truncated {
                0
            } else {
                msgs[i].msg_len as usize
            };
            self.from[i] = sockaddr_to_std(&names[i]);
        }
        n
    }

    /// Datagram `i` of the last [`Self::recv`]: its source and bytes (None if unusable).
    pub fn get(&self, i: usize) -> Option<(SocketAddr, &[u8])> {
        let from = self.from.get(i).copied().flatten()?;
        let len = *self.lens.get(i)?;
        (len > 0).then(|| (from, &self.bufs[i][..len]))
    }
}

pub fn sockaddr_to_std(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is big enough for.
            let sin = unsafe { &*std::ptr::from_ref(ss).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &*std::ptr::from_ref(ss).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (UdpSocket, UdpSocket) {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.set_nonblocking(true).unwrap();
        (a, b)
    }

    #[test]
    fn epoll_reports_only_sockets_with_data_and_recvmmsg_takes_them_all() {
        let (a, b) = pair();
        let (c, _) = pair();
        let mut ep = Epoll::new(8).unwrap();
        ep.add(&a, 1).unwrap();
        ep.add(&c, 2).unwrap();
        assert_eq!(ep.ready_now().count(), 0);
        for i in 0..6u8 {
            b.send_to(&[i; 3], a.local_addr().unwrap()).unwrap();
        }
        let mut spins = 0;
        while ep.ready_now().count() == 0 && spins < 1000 {
            spins += 1;
            std::thread::yield_now();
        }
        assert_eq!(ep.ready_now().collect::<Vec<_>>(), vec![1]);
        let mut batch = RecvBatch::default();
        assert_eq!(batch.recv(&a), BATCH);
        let (from, bytes) = batch.get(0).unwrap();
        assert_eq!(from, b.local_addr().unwrap());
        assert_eq!(bytes, &[0, 0, 0]);
        assert_eq!(batch.recv(&a), 2);
        assert_eq!(batch.get(1).unwrap().1, &[5, 5, 5]);
        assert_eq!(batch.recv(&a), 0, "drained, never blocks");
        ep.remove(&a);
        b.send_to(&[9], a.local_addr().unwrap()).unwrap();
        assert_eq!(
            ep.ready_now().count(),
            0,
            "removed sockets are not reported"
        );
    }
}
