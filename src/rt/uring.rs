//! The media thread's io_uring: one system call per tick submits every frame that tick sends
//! and every receive it re-arms, and collects what arrived, instead of a system call per packet
//! (`send`, and `epoll_wait` + `recvmmsg` per ready socket). At 75,000 packets a second each
//! way, the per-call entry, file lookup and copy of arguments were a fifth of the thread's CPU.
//!
//! The ring is set up for a single thread that runs its own completions (`DEFER_TASKRUN`): a
//! packet arriving only queues work, done at the media thread's next [`Uring::enter`], so
//! arrivals never wake the thread or interrupt a tick. Where io_uring is not allowed (an old
//! kernel, a container's seccomp profile), [`Uring::new`] fails and the thread uses epoll.
//!
//! Every receive has its own buffer (in [`RecvSlot`], boxed: the kernel writes into it until the
//! completion arrives, so it never moves); sends copy the frame into a pooled buffer released on
//! completion. Loopback and LAN sends complete at submission; one that has to wait for socket
//! buffer space keeps its buffer until it completes.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::SocketAddr;
use std::os::fd::RawFd;

use io_uring::{IoUring, opcode, squeue, types};

use super::udp_batch::sockaddr_to_std;

/// Room per received datagram: more than any RTP packet a PBX sends; longer ones are dropped.
const DATAGRAM: usize = 1500;
/// Room per sent datagram.
const SEND_BUF: usize = crate::media::leg::MAX_PACKET;

/// Submission entries: a tick's sends and re-arms. When full, the ring is entered early.
const SQ_ENTRIES: u32 = 4096;
/// Completion entries: several ticks' worth, so completions never overflow.
const CQ_ENTRIES: u32 = 32_768;

/// Slots in the ring's file table (streams beyond it name their socket by descriptor).
const FIXED_FILES: u32 = 32_768;

/// What a completion was for, in the top bits of its user data.
const KIND_SHIFT: u32 = 62;
const RECV: u64 = 0;
const SEND: u64 = 1;
const CANCEL: u64 = 2;
const INDEX: u64 = (1 << KIND_SHIFT) - 1;

/// `IORING_RECVSEND_POLL_FIRST`: arm the poll without trying the receive first.
const RECVSEND_POLL_FIRST: u16 = 1;

/// `IORING_ENTER_GETEVENTS`: run the deferred completions even when not waiting for any.
const ENTER_GETEVENTS: u32 = 1;

/// A receive's buffer and message header: where the kernel writes while the receive is armed.
struct RecvSlot {
    hdr: libc::msghdr,
    iov: libc::iovec,
    from: libc::sockaddr_storage,
    buf: [u8; DATAGRAM],
    fd: RawFd,
    /// The socket is in the ring's file table at the slot's index (no file lookup per
    /// operation).
    fixed: bool,
    /// A receive is in the kernel.
    armed: bool,
    /// Asked to stop: report [`Completion::Stopped`] once nothing is in the kernel.
    stopping: bool,
    /// The last datagram received (length), not yet taken.
    received: Option<usize>,
}

/// What the last [`Uring::enter`] brought, per slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// Slot `0` received a datagram: read it with [`Uring::datagram`], then [`Uring::rearm`].
    Received(usize),
    /// Slot `0` no longer has a receive in the kernel (after [`Uring::stop`]): its socket is
    /// the caller's again.
    Stopped(usize),
}

pub struct Uring {
    ring: IoUring,
    /// The ring has a file table of [`FIXED_FILES`] slots.
    fixed_files: bool,
    slots: Vec<Option<Box<RecvSlot>>>,
    // Boxed: the kernel holds a pointer to a buffer until its send completes, and a growing
    // Vec moves what it holds inline.
    #[allow(clippy::vec_box)]
    send_bufs: Vec<Box<[u8; SEND_BUF]>>,
    free_send_bufs: Vec<usize>,
    /// Completions taken from the ring, for the worker to go through.
    done: Vec<Completion>,
    /// Scratch for the raw completions of one [`Self::enter`].
    cqes: Vec<(u64, i32)>,
}

impl Uring {
    pub fn new() -> io::Result<Self> {
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_cqsize(CQ_ENTRIES)
            .build(SQ_ENTRIES)?;
        // A file table, so operations name a slot instead of looking the socket up each time.
        let fixed_files = ring.submitter().register_files_sparse(FIXED_FILES).is_ok();
        Ok(Self {
            fixed_files,
            ring,
            slots: Vec::new(),
            send_bufs: Vec::new(),
            free_send_bufs: Vec::new(),
            done: Vec::new(),
            cqes: Vec::new(),
        })
    }

    /// Start receiving on `fd` into slot `idx` (a slot not in use).
    pub fn watch(&mut self, idx: usize, fd: RawFd) {
        if self.slots.len() <= idx {
            self.slots.resize_with(idx + 1, || None);
        }
        // SAFETY: plain data; all-zero is a valid value for each field.
        let mut slot = Box::new(RecvSlot {
            hdr: unsafe { zeroed() },
            iov: unsafe { zeroed() },
            from: unsafe { zeroed() },
            buf: [0; DATAGRAM],
            fd,
            fixed: false,
            armed: false,
            stopping: false,
            received: None,
        });
        slot.iov.iov_base = slot.buf.as_mut_ptr().cast();
        slot.iov.iov_len = DATAGRAM;
        slot.hdr.msg_iov = &raw mut slot.iov;
        slot.hdr.msg_iovlen = 1;
        slot.hdr.msg_name = (&raw mut slot.from).cast();
        slot.fixed = self.fixed_files
            && u32::try_from(idx).is_ok_and(|i| i < FIXED_FILES)
            && self
                .ring
                .submitter()
                .register_files_update(idx as u32, &[fd])
                .is_ok();
        self.slots[idx] = Some(slot);
        self.rearm(idx);
    }

    /// The datagram slot `idx` received (its source and bytes), if it has one not yet taken.
    pub fn datagram(&self, idx: usize) -> Option<(SocketAddr, &[u8])> {
        let slot = self.slots.get(idx)?.as_deref()?;
        let len = slot.received?;
        Some((sockaddr_to_std(&slot.from)?, &slot.buf[..len]))
    }

    /// Done with slot `idx`'s datagram: receive the next one.
    pub fn rearm(&mut self, idx: usize) {
        let Some(slot) = self.slots.get_mut(idx).and_then(Option::as_deref_mut) else {
            return;
        };
        slot.received = None;
        if slot.armed || slot.stopping {
            return;
        }
        slot.hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        slot.hdr.msg_flags = 0;
        // Poll first: the datagram is rarely there already, and trying first costs a failed
        // receive per packet.
        let recv = if slot.fixed {
            opcode::RecvMsg::new(types::Fixed(idx as u32), &raw mut slot.hdr)
        } else {
            opcode::RecvMsg::new(types::Fd(slot.fd), &raw mut slot.hdr)
        };
        let entry = recv
            .ioprio(RECVSEND_POLL_FIRST)
            .build()
            .user_data(RECV << KIND_SHIFT | idx as u64);
        slot.armed = true;
        self.push(&entry);
    }

    /// Stop receiving on slot `idx`. [`Completion::Stopped`] follows once the kernel has let go
    /// of the slot (at the next [`Self::enter`], or a later one).
    pub fn stop(&mut self, idx: usize) {
        let Some(slot) = self.slots.get_mut(idx).and_then(Option::as_deref_mut) else {
            return;
        };
        slot.stopping = true;
        if slot.armed {
            let entry = opcode::AsyncCancel::new(RECV << KIND_SHIFT | idx as u64)
                .build()
                .user_data(CANCEL << KIND_SHIFT | idx as u64);
            self.push(&entry);
        } else {
            self.release(idx);
        }
    }

    /// Forget slot `idx` (nothing of it is in the kernel any more) and report it stopped.
    fn release(&mut self, idx: usize) {
        if let Some(slot) = self.slots.get_mut(idx).and_then(Option::take)
            && slot.fixed
        {
            let _ = self
                .ring
                .submitter()
                .register_files_update(idx as u32, &[-1]);
        }
        self.done.push(Completion::Stopped(idx));
    }

    /// Queue `bytes` to go out on slot `idx`'s connected socket `fd` at the next
    /// [`Self::enter`].
    pub fn send(&mut self, idx: usize, fd: RawFd, bytes: &[u8]) {
        let fixed = self
            .slots
            .get(idx)
            .and_then(Option::as_deref)
            .is_some_and(|s| s.fixed);
        let n = bytes.len().min(SEND_BUF);
        let b = self.free_send_bufs.pop().unwrap_or_else(|| {
            self.send_bufs.push(Box::new([0; SEND_BUF]));
            self.send_bufs.len() - 1
        });
        let buf = &mut self.send_bufs[b];
        buf[..n].copy_from_slice(&bytes[..n]);
        #[allow(clippy::cast_possible_truncation)]
        let send = if fixed {
            opcode::Send::new(types::Fixed(idx as u32), buf.as_ptr(), n as u32)
        } else {
            opcode::Send::new(types::Fd(fd), buf.as_ptr(), n as u32)
        };
        let entry = send.build().user_data(SEND << KIND_SHIFT | b as u64);
        self.push(&entry);
    }

    fn push(&mut self, entry: &squeue::Entry) {
        loop {
            // SAFETY: every buffer an entry points to (a slot's header and buffer, a send
            // buffer) is boxed and kept until the entry's completion is taken.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return;
            }
            // Full: hand the queue to the kernel now.
            if let Err(e) = self.enter() {
                tracing::warn!(error = %e, "io_uring submit failed");
                return;
            }
        }
    }

    /// Submit what is queued, if anything is.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.ring.submission().is_empty() {
            return Ok(());
        }
        self.enter()
    }

    /// Submit what is queued, let the kernel finish the receives that have data, and take
    /// every completion (see [`Self::completions`]). Never blocks.
    pub fn enter(&mut self) -> io::Result<()> {
        let queued = u32::try_from(self.ring.submission().len()).unwrap_or(u32::MAX);
        // SAFETY: no signal mask or timeout argument is passed.
        let entered = unsafe {
            self.ring
                .submitter()
                .enter::<libc::sigset_t>(queued, 0, ENTER_GETEVENTS, None)
        };
        if let Err(e) = entered
            && e.raw_os_error() != Some(libc::EBUSY)
            && e.raw_os_error() != Some(libc::EINTR)
        {
            return Err(e);
        }
        self.reap();
        Ok(())
    }

    fn reap(&mut self) {
        let mut cqes = std::mem::take(&mut self.cqes);
        cqes.extend(self.ring.completion().map(|c| (c.user_data(), c.result())));
        for &(data, result) in &cqes {
            #[allow(clippy::cast_possible_truncation)]
            let idx = (data & INDEX) as usize;
            match data >> KIND_SHIFT {
                SEND => self.free_send_bufs.push(idx),
                RECV => self.received(idx, result),
                _ => {}
            }
        }
        cqes.clear();
        self.cqes = cqes;
    }

    fn received(&mut self, idx: usize, result: i32) {
        let Some(slot) = self.slots.get_mut(idx).and_then(Option::as_deref_mut) else {
            return;
        };
        slot.armed = false;
        let truncated = slot.hdr.msg_flags & libc::MSG_TRUNC != 0;
        let got = usize::try_from(result).ok().filter(|_| !truncated);
        if slot.stopping {
            // A datagram that beat the cancel is dropped: one frame, as a bridge starts.
            self.release(idx);
        } else if let Some(len) = got {
            slot.received = Some(len);
            self.done.push(Completion::Received(idx));
        } else {
            // An error (an ICMP error queued on a connected socket) or a datagram too long:
            // nothing to deliver, listen again.
            self.rearm(idx);
        }
    }

    /// The completions taken since the last call.
    pub fn completions(&mut self) -> std::vec::Drain<'_, Completion> {
        self.done.drain(..)
    }
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    use super::*;

    /// The ring, unless this kernel or sandbox refuses io_uring (the media thread then uses
    /// epoll, tested on its own).
    fn ring() -> Option<Uring> {
        match Uring::new() {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("io_uring unavailable here ({e}): skipped");
                None
            }
        }
    }

    /// A plain test thread, no runtime to block.
    #[allow(clippy::disallowed_methods)]
    fn pause() {
        std::thread::sleep(Duration::from_millis(1));
    }

    fn socket() -> UdpSocket {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_nonblocking(true).unwrap();
        s
    }

    /// Enter until a completion comes (arrivals on loopback are immediate, but run as
    /// deferred work).
    fn next(ring: &mut Uring) -> Completion {
        for _ in 0..1000 {
            ring.enter().unwrap();
            if let Some(c) = ring.completions().next() {
                return c;
            }
            pause();
        }
        panic!("no completion");
    }

    #[test]
    fn receives_one_datagram_per_arm_with_its_source() {
        let Some(mut ring) = ring() else { return };
        let (ours, peer) = (socket(), socket());
        ring.watch(3, ours.as_raw_fd());
        ring.enter().unwrap();
        assert_eq!(ring.completions().count(), 0, "nothing arrived yet");
        peer.send_to(b"one", ours.local_addr().unwrap()).unwrap();
        peer.send_to(b"two", ours.local_addr().unwrap()).unwrap();
        assert_eq!(next(&mut ring), Completion::Received(3));
        let (from, bytes) = ring.datagram(3).unwrap();
        assert_eq!((from, bytes), (peer.local_addr().unwrap(), &b"one"[..]));
        ring.enter().unwrap();
        assert_eq!(
            ring.completions().count(),
            0,
            "not re-armed: the next one waits"
        );
        ring.rearm(3);
        assert!(ring.datagram(3).is_none(), "taken");
        assert_eq!(next(&mut ring), Completion::Received(3));
        assert_eq!(ring.datagram(3).unwrap().1, b"two");
    }

    #[test]
    fn sends_on_a_connected_socket() {
        let Some(mut ring) = ring() else { return };
        let (ours, peer) = (socket(), socket());
        ours.connect(peer.local_addr().unwrap()).unwrap();
        ring.send(0, ours.as_raw_fd(), b"frame");
        ring.flush().unwrap();
        let mut buf = [0; 16];
        let mut got = None;
        for _ in 0..1000 {
            if let Ok(r) = peer.recv_from(&mut buf) {
                got = Some(r);
                break;
            }
            pause();
        }
        let (n, from) = got.expect("the frame arrived");
        assert_eq!(
            (&buf[..n], from),
            (&b"frame"[..], ours.local_addr().unwrap())
        );
    }

    #[test]
    fn stopping_hands_the_socket_back_with_later_datagrams_queued() {
        let Some(mut ring) = ring() else { return };
        let (ours, peer) = (socket(), socket());
        ring.watch(0, ours.as_raw_fd());
        ring.enter().unwrap();
        ring.stop(0);
        assert_eq!(next(&mut ring), Completion::Stopped(0));
        peer.send_to(b"later", ours.local_addr().unwrap()).unwrap();
        let mut buf = [0; 16];
        let mut n = None;
        for _ in 0..1000 {
            if let Ok(k) = ours.recv(&mut buf) {
                n = Some(k);
                break;
            }
            pause();
        }
        assert_eq!(&buf[..n.expect("queued for the socket's owner")], b"later");
        // A slot with nothing armed stops at once.
        ring.watch(1, ours.as_raw_fd());
        peer.send_to(b"x", ours.local_addr().unwrap()).unwrap();
        assert_eq!(next(&mut ring), Completion::Received(1));
        ring.stop(1);
        assert_eq!(
            ring.completions().collect::<Vec<_>>(),
            vec![Completion::Stopped(1)]
        );
    }
}
