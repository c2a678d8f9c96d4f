//! The media thread's io_uring: one system call per tick submits every frame that tick sends
//! and collects everything that arrived, instead of a system call per packet (`send`, and
//! `epoll_wait` + `recvmmsg` per ready socket).
//!
//! The ring is set up for a single thread that runs its own completions (`DEFER_TASKRUN`): a
//! packet arriving only queues work, done at the media thread's next [`Uring::enter`], so
//! arrivals never wake the thread or interrupt a tick. Where io_uring is not allowed (an old
//! kernel, a container's seccomp profile), [`Uring::new`] fails and the thread uses epoll.
//!
//! Each socket has one multishot receive armed for as long as it is watched: the kernel
//! receives every datagram into a buffer it takes from a ring of buffers we provide, and the
//! buffer comes back to the ring once the datagram is delivered ([`Uring::recycle`]). Sends copy
//! the frame into a pooled buffer released on completion (loopback and LAN sends complete at
//! submission; one that waits for socket buffer space keeps its buffer until it completes).

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::io;
use std::mem::{size_of, zeroed};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::{BufRingEntry, RecvMsgOut};
use io_uring::{IoUring, cqueue, opcode, squeue, types};

use super::udp_batch::sockaddr_to_std;

/// `struct io_uring_recvmsg_out`, which starts every provided buffer a datagram lands in.
#[repr(C)]
struct RecvMsgHeader {
    namelen: u32,
    controllen: u32,
    payloadlen: u32,
    flags: u32,
}

/// Room per sent datagram: a frame (longer datagrams are the caller's to send otherwise).
pub const SEND_BUF: usize = crate::media::leg::MAX_PACKET;

/// Provided receive buffers (a power of two): the kernel takes one per datagram when it runs
/// our receives, at each [`Uring::enter`], so a tick's arrivals (375 at 1,500 calls) plus those
/// waiting for a busy leg. When they run out the receive pauses until the next tick; nothing
/// is lost while the socket's own buffer has room.
const RECV_BUFS: u16 = 1024;
/// Each holds the kernel's header, the source address and a datagram of up to 980 bytes (an
/// RTP packet of 60 ms of G.711 is 492). Longer datagrams are dropped.
const RECV_BUF: usize = 1024;
/// The provided buffers' group.
const BGID: u16 = 0;

/// Submission entries: a tick's sends and re-arms. When full, the ring is entered early.
const SQ_ENTRIES: u32 = 4096;
/// Completion entries: several ticks' worth, so completions never overflow.
const CQ_ENTRIES: u32 = 32_768;

/// Slots in the ring's file table at most (streams beyond it name their socket by
/// descriptor). The kernel refuses a table larger than the open-file limit.
const FIXED_FILES: u32 = 32_768;

/// What a completion was for, in the top bits of its user data.
const KIND_SHIFT: u32 = 62;
const RECV: u64 = 0;
const SEND: u64 = 1;
const CANCEL: u64 = 2;
const INDEX: u64 = (1 << KIND_SHIFT) - 1;

/// `IORING_ENTER_GETEVENTS`: run the deferred completions even when not waiting for any.
const ENTER_GETEVENTS: u32 = 1;

/// One watched socket.
struct RecvSlot {
    /// The template the multishot receive was armed with (name length: the source address).
    hdr: libc::msghdr,
    fd: RawFd,
    /// The socket is in the ring's file table at the slot's index (no file lookup per
    /// operation).
    fixed: bool,
    /// The multishot receive is in the kernel.
    armed: bool,
    /// Asked to stop: report [`Completion::Stopped`] once nothing is in the kernel.
    stopping: bool,
}

/// A slot that no longer has a receive in the kernel (after [`Uring::stop`]): its socket is the
/// caller's again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped(pub usize);

/// A datagram received on slot `idx`, in buffer `bid` until [`Uring::recycle`]d.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    pub idx: usize,
    bid: u16,
    len: u32,
}

/// The ring of buffers the kernel receives into. Both allocations are raw memory, not Rust
/// values: the kernel writes into the buffers behind our back, and we only ever read a buffer
/// it has handed over (through a raw pointer) until we give it back.
struct BufRing {
    entries: *mut BufRingEntry,
    layout: Layout,
    bufs: *mut u8,
    bufs_layout: Layout,
    tail: u16,
}

impl BufRing {
    fn new() -> io::Result<Self> {
        let layout =
            Layout::from_size_align(usize::from(RECV_BUFS) * size_of::<BufRingEntry>(), 4096)
                .map_err(io::Error::other)?;
        // SAFETY: the layout has a non-zero size.
        let entries = unsafe { alloc_zeroed(layout) }.cast::<BufRingEntry>();
        let bufs_layout = Layout::from_size_align(usize::from(RECV_BUFS) * RECV_BUF, 64)
            .map_err(io::Error::other)?;
        // SAFETY: as above.
        let bufs = unsafe { alloc_zeroed(bufs_layout) };
        if entries.is_null() || bufs.is_null() {
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        }
        let mut ring = Self {
            entries,
            layout,
            bufs,
            bufs_layout,
            tail: 0,
        };
        for bid in 0..RECV_BUFS {
            ring.put(bid);
        }
        ring.publish();
        Ok(ring)
    }

    /// Hand buffer `bid` to the kernel (visible at the next [`Self::publish`]).
    fn put(&mut self, bid: u16) {
        let at = usize::from(self.tail & (RECV_BUFS - 1));
        // SAFETY: `at` is within the ring's RECV_BUFS entries; the buffer lies within `bufs`,
        // which lives as long as the ring.
        unsafe {
            let e = &mut *self.entries.add(at);
            e.set_addr(self.bufs.add(usize::from(bid) * RECV_BUF) as u64);
            e.set_len(RECV_BUF as u32);
            e.set_bid(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // SAFETY: the tail field lies in the first entry, which `entries` points to; the kernel
        // reads it concurrently, hence the atomic release store.
        unsafe {
            let tail = BufRingEntry::tail(self.entries).cast_mut();
            AtomicU16::from_ptr(tail).store(self.tail, Ordering::Release);
        }
    }

    /// Buffer `bid`'s first `len` bytes: valid while the kernel has handed it over (between
    /// its completion and [`Self::put`]), which is how the callers use it.
    fn buf(&self, bid: u16, len: u32) -> &[u8] {
        let bid = usize::from(bid.min(RECV_BUFS - 1));
        // SAFETY: within the allocation; the kernel does not write a buffer it handed over.
        unsafe {
            std::slice::from_raw_parts(self.bufs.add(bid * RECV_BUF), (len as usize).min(RECV_BUF))
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; the ring that used it is gone (it is
        // dropped first, see `Uring`'s field order).
        unsafe {
            dealloc(self.entries.cast(), self.layout);
            dealloc(self.bufs, self.bufs_layout);
        }
    }
}

pub struct Uring {
    // Dropped first: the kernel lets go of the buffers before they are freed.
    ring: IoUring,
    bufs: BufRing,
    /// Slots in the ring's file table (0: none).
    fixed_files: u32,
    slots: Vec<Option<Box<RecvSlot>>>,
    // Boxed: the kernel holds a pointer to a buffer until its send completes, and a growing
    // Vec moves what it holds inline.
    #[allow(clippy::vec_box)]
    send_bufs: Vec<Box<[u8; SEND_BUF]>>,
    free_send_bufs: Vec<usize>,
    arrivals: Vec<Arrival>,
    stopped: Vec<Stopped>,
    /// Scratch for the raw completions of one [`Self::enter`].
    cqes: Vec<(u64, i32, u32)>,
}

impl Uring {
    pub fn new() -> io::Result<Self> {
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_cqsize(CQ_ENTRIES)
            .build(SQ_ENTRIES)?;
        let bufs = BufRing::new()?;
        // SAFETY: the ring of entries is page-aligned, RECV_BUFS long, and outlives the
        // registration (`bufs` is dropped after `ring`).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                bufs.entries as u64,
                RECV_BUFS,
                BGID,
                0,
            )?;
        }
        // A file table, so operations name a slot instead of looking the socket up each time.
        // Without it every send looks its socket up (`fget`): 2–3 % of the thread at 1,000 calls.
        let table = u32::try_from(super::fd_limit::current())
            .unwrap_or(u32::MAX)
            .min(FIXED_FILES);
        let fixed_files = match ring.submitter().register_files_sparse(table) {
            Ok(()) => table,
            Err(e) => {
                tracing::warn!(error = %e, slots = table, "io_uring file table refused: each packet looks its socket up");
                0
            }
        };
        Ok(Self {
            ring,
            bufs,
            fixed_files,
            slots: Vec::new(),
            send_bufs: Vec::new(),
            free_send_bufs: Vec::new(),
            arrivals: Vec::new(),
            stopped: Vec::new(),
            cqes: Vec::new(),
        })
    }

    /// Start receiving on `fd` as slot `idx` (a slot not in use).
    pub fn watch(&mut self, idx: usize, fd: RawFd) {
        if self.slots.len() <= idx {
            self.slots.resize_with(idx + 1, || None);
        }
        // SAFETY: plain data; all-zero is a valid value.
        let mut hdr: libc::msghdr = unsafe { zeroed() };
        // Room for the source address in each buffer: IPv4 or IPv6.
        hdr.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        let fixed = u32::try_from(idx).is_ok_and(|i| i < self.fixed_files)
            && self
                .ring
                .submitter()
                .register_files_update(idx as u32, &[fd])
                .is_ok();
        self.slots[idx] = Some(Box::new(RecvSlot {
            hdr,
            fd,
            fixed,
            armed: false,
            stopping: false,
        }));
        self.arm(idx);
    }

    fn arm(&mut self, idx: usize) {
        let Some(slot) = self.slots.get_mut(idx).and_then(Option::as_deref_mut) else {
            return;
        };
        if slot.armed || slot.stopping {
            return;
        }
        let recv = if slot.fixed {
            opcode::RecvMsgMulti::new(types::Fixed(idx as u32), &raw const slot.hdr, BGID)
        } else {
            opcode::RecvMsgMulti::new(types::Fd(slot.fd), &raw const slot.hdr, BGID)
        };
        let entry = recv.build().user_data(RECV << KIND_SHIFT | idx as u64);
        slot.armed = true;
        self.push(&entry);
    }

    /// An arrival's source and bytes (`None` if it is unusable: truncated, no address).
    pub fn datagram(&self, a: &Arrival) -> Option<(SocketAddr, &[u8])> {
        let hdr = &self.slots.get(a.idx)?.as_deref()?.hdr;
        let buf = self.bufs.buf(a.bid, a.len);
        let out = RecvMsgOut::parse(buf, hdr).ok()?;
        if out.is_payload_truncated() || out.is_name_data_truncated() {
            return None;
        }
        // SAFETY: plain data; all-zero is a valid value.
        let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
        let name = out.name_data();
        let n = name.len().min(size_of::<libc::sockaddr_storage>());
        // SAFETY: `n` bytes fit in both.
        unsafe {
            std::ptr::copy_nonoverlapping(name.as_ptr(), (&raw mut ss).cast::<u8>(), n);
        }
        // The payload follows the kernel's header and the name (no control data asked for).
        let start = size_of::<RecvMsgHeader>() + hdr.msg_namelen as usize;
        let payload = buf.get(start..start + out.payload_data().len())?;
        Some((sockaddr_to_std(&ss)?, payload))
    }

    /// Done with an arrival: its buffer goes back to the kernel.
    pub fn recycle(&mut self, a: Arrival) {
        self.bufs.put(a.bid);
        self.bufs.publish();
    }

    /// Stop receiving on slot `idx`. [`Stopped`] follows once the kernel has let go of the
    /// slot (at the next [`Self::enter`], or a later one). Arrivals already taken stay valid
    /// until recycled.
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
        self.stopped.push(Stopped(idx));
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
            // SAFETY: every buffer an entry points to (a slot's header, a send buffer, the
            // provided buffers) is boxed and kept until the entry's last completion is taken.
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
    /// every completion (see [`Self::take`]). Never blocks.
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
        cqes.extend(
            self.ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        for &(data, result, flags) in &cqes {
            #[allow(clippy::cast_possible_truncation)]
            let idx = (data & INDEX) as usize;
            match data >> KIND_SHIFT {
                SEND => self.free_send_bufs.push(idx),
                RECV => self.received(idx, result, flags),
                _ => {}
            }
        }
        cqes.clear();
        self.cqes = cqes;
    }

    fn received(&mut self, idx: usize, result: i32, flags: u32) {
        if let Some(bid) = cqueue::buffer_select(flags) {
            match u32::try_from(result) {
                Ok(len) if self.slots.get(idx).is_some_and(Option::is_some) => {
                    self.arrivals.push(Arrival { idx, bid, len });
                }
                _ => {
                    self.bufs.put(bid);
                    self.bufs.publish();
                }
            }
        }
        if cqueue::more(flags) {
            return;
        }
        // The multishot receive ended: asked to (stop), or out of buffers, or an error.
        let Some(slot) = self.slots.get_mut(idx).and_then(Option::as_deref_mut) else {
            return;
        };
        slot.armed = false;
        if slot.stopping {
            self.release(idx);
        } else {
            self.arm(idx);
        }
    }

    /// Move the datagrams and stopped slots taken since the last call into `arrivals` and
    /// `stopped`.
    pub fn take(&mut self, arrivals: &mut Vec<Arrival>, stopped: &mut Vec<Stopped>) {
        arrivals.append(&mut self.arrivals);
        stopped.append(&mut self.stopped);
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

    /// A datagram on the non-blocking `sock`, waiting up to about a second for it.
    fn recv_from_within(sock: &UdpSocket, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
        for _ in 0..1000 {
            if let Ok(r) = sock.recv_from(buf) {
                return Some(r);
            }
            pause();
        }
        None
    }

    fn socket() -> UdpSocket {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_nonblocking(true).unwrap();
        s
    }

    /// Enter until something arrives or stops (arrivals on loopback are immediate, but run
    /// as deferred work).
    fn next(ring: &mut Uring) -> (Vec<Arrival>, Vec<Stopped>) {
        let (mut arrivals, mut stopped) = (Vec::new(), Vec::new());
        for _ in 0..1000 {
            ring.enter().unwrap();
            ring.take(&mut arrivals, &mut stopped);
            if !arrivals.is_empty() || !stopped.is_empty() {
                return (arrivals, stopped);
            }
            pause();
        }
        panic!("nothing arrived");
    }

    #[test]
    fn receives_every_datagram_with_its_source_until_stopped() {
        let Some(mut ring) = ring() else { return };
        let (ours, peer) = (socket(), socket());
        ring.watch(3, ours.as_raw_fd());
        ring.enter().unwrap();
        let (mut a, mut s) = (Vec::new(), Vec::new());
        ring.take(&mut a, &mut s);
        assert!(a.is_empty() && s.is_empty(), "nothing arrived yet");
        let to = ours.local_addr().unwrap();
        peer.send_to(b"one", to).unwrap();
        peer.send_to(b"two", to).unwrap();
        let mut got = Vec::new();
        while got.len() < 2 {
            let (arrivals, _) = next(&mut ring);
            for arrival in arrivals {
                assert_eq!(arrival.idx, 3);
                let (from, bytes) = ring.datagram(&arrival).unwrap();
                assert_eq!(from, peer.local_addr().unwrap());
                got.push(bytes.to_vec());
                ring.recycle(arrival);
            }
        }
        assert_eq!(got, vec![b"one".to_vec(), b"two".to_vec()]);
        // Buffers go round: far more datagrams than buffers, 64 at a time (a socket's
        // receive buffer holds a few hundred).
        let mut n = 0;
        for i in 0..3 * usize::from(RECV_BUFS) {
            peer.send_to(&i.to_be_bytes(), to).unwrap();
            while i % 64 == 63 && n <= i {
                let (arrivals, _) = next(&mut ring);
                for a in arrivals {
                    let (_, bytes) = ring.datagram(&a).unwrap();
                    assert_eq!(bytes, n.to_be_bytes(), "in order, none lost");
                    n += 1;
                    ring.recycle(a);
                }
            }
        }
        ring.stop(3);
        assert_eq!(next(&mut ring).1, vec![Stopped(3)]);
    }

    #[test]
    fn sends_on_a_connected_socket() {
        let Some(mut ring) = ring() else { return };
        let (ours, peer) = (socket(), socket());
        ours.connect(peer.local_addr().unwrap()).unwrap();
        ring.send(0, ours.as_raw_fd(), b"frame");
        ring.flush().unwrap();
        let mut buf = [0; 16];
        let (n, from) = recv_from_within(&peer, &mut buf).expect("the frame arrived");
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
        assert_eq!(next(&mut ring).1, vec![Stopped(0)]);
        peer.send_to(b"later", ours.local_addr().unwrap()).unwrap();
        let mut buf = [0; 16];
        let (n, _) = recv_from_within(&ours, &mut buf).expect("queued for the socket's owner");
        assert_eq!(&buf[..n], b"later");
    }
}
