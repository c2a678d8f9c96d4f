//! The endpoint's table of TCP and TLS connections: the channel to each connection's task, the
//! pool of connections we opened (one per peer: `(proto, host, port)`), and the counts the
//! connection caps are checked against (all accepted connections, and accepted ones per
//! untrusted source: an IPv4 address or an IPv6 /64, as the rate limiter counts them).

use std::collections::HashMap;
use std::net::IpAddr;

use tokio::sync::mpsc;

use super::{Out, TcpLimits};
use crate::sip::pike;
use crate::sip::transport::{Connect, Link, Proto};

/// One connection as the endpoint sees it.
pub(super) struct Conn {
    /// `None` once the endpoint gave up on it (its peer was not reading); the entry stays
    /// until the task ends, so the counts stay right.
    tx: Option<mpsc::Sender<Out>>,
    pub(super) link: Link,
    /// Accepted from an untrusted source: the bucket it counts against.
    source: Option<IpAddr>,
    accepted: bool,
    /// A connection we opened: the peer it is pooled under.
    pub(super) pool: Option<Connect>,
}

/// Why a message could not be handed to a connection.
pub(super) enum Refused {
    /// The connection's queue is full: its peer is not reading.
    Full(Out),
    /// The connection has closed (or was never there).
    Gone(Out),
}

/// Why an accepted connection is turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cap {
    Global,
    PerSource,
}

#[derive(Default)]
pub(super) struct Conns {
    by_id: HashMap<u64, Conn>,
    pool: HashMap<(Proto, String, u16), u64>,
    per_source: HashMap<IpAddr, usize>,
    accepted: usize,
    next: u64,
}

impl Conns {
    /// May a connection from `ip` be accepted now? Trusted sources count against the global
    /// cap only.
    pub(super) fn admit(&self, ip: IpAddr, trusted: bool, limits: &TcpLimits) -> Result<(), Cap> {
        if self.accepted >= limits.max_connections {
            return Err(Cap::Global);
        }
        let bucket = pike::bucket_of(ip);
        if !trusted && self.per_source.get(&bucket).copied().unwrap_or(0) >= limits.max_per_source {
            return Err(Cap::PerSource);
        }
        Ok(())
    }

    /// Record an accepted connection; its link.
    pub(super) fn accepted(
        &mut self,
        proto: Proto,
        ip: IpAddr,
        trusted: bool,
        tx: mpsc::Sender<Out>,
    ) -> (u64, Link) {
        let source = (!trusted).then(|| pike::bucket_of(ip));
        if let Some(b) = source {
            *self.per_source.entry(b).or_default() += 1;
        }
        self.accepted += 1;
        self.insert(proto, tx, source, true, None)
    }

    /// Record a connection we are opening to `to`, pooled under it.
    pub(super) fn opened(&mut self, to: &Connect, tx: mpsc::Sender<Out>) -> (u64, Link) {
        let (id, link) = self.insert(to.proto, tx, None, false, Some(to.clone()));
        self.pool.insert(pool_key(to), id);
        (id, link)
    }

    fn insert(
        &mut self,
        proto: Proto,
        tx: mpsc::Sender<Out>,
        source: Option<IpAddr>,
        accepted: bool,
        pool: Option<Connect>,
    ) -> (u64, Link) {
        self.next += 1;
        let id = self.next;
        let link = match proto {
            Proto::Tls => Link::Tls(Some(id)),
            Proto::Tcp | Proto::Udp => Link::Tcp(Some(id)),
        };
        self.by_id.insert(
            id,
            Conn {
                tx: Some(tx),
                link,
                source,
                accepted,
                pool,
            },
        );
        (id, link)
    }

    pub(super) fn get(&self, id: u64) -> Option<&Conn> {
        self.by_id.get(&id)
    }

    /// The live pooled connection to `to`, if there is one.
    pub(super) fn pooled(&self, to: &Connect) -> Option<u64> {
        self.pool
            .get(&pool_key(to))
            .copied()
            .filter(|id| self.by_id.get(id).is_some_and(|c| c.tx.is_some()))
    }

    /// Hand `out` to connection `id`'s task.
    pub(super) fn send(&mut self, id: u64, out: Out) -> Result<(), Refused> {
        let Some(tx) = self.by_id.get(&id).and_then(|c| c.tx.as_ref()) else {
            return Err(Refused::Gone(out));
        };
        match tx.try_send(out) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(out)) => Err(Refused::Full(out)),
            Err(mpsc::error::TrySendError::Closed(out)) => {
                // The task has ended; its `Closed` is on the way. Nothing more goes to it.
                self.abandon(id);
                Err(Refused::Gone(out))
            }
        }
    }

    /// Stop using connection `id`: no more messages go to it and it leaves the pool. Its task
    /// ends once its queue is empty (the channel closes).
    pub(super) fn abandon(&mut self, id: u64) {
        if let Some(c) = self.by_id.get_mut(&id) {
            c.tx = None;
            if let Some(to) = &c.pool
                && self.pool.get(&pool_key(to)) == Some(&id)
            {
                self.pool.remove(&pool_key(to));
            }
        }
    }

    /// The task of connection `id` has ended.
    pub(super) fn closed(&mut self, id: u64) {
        self.abandon(id);
        let Some(c) = self.by_id.remove(&id) else {
            return;
        };
        if c.accepted {
            self.accepted -= 1;
        }
        if let Some(b) = c.source
            && let Some(n) = self.per_source.get_mut(&b)
        {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&b);
            }
        }
    }
}

fn pool_key(to: &Connect) -> (Proto, String, u16) {
    let (proto, host, port) = to.key();
    (proto, host.to_ascii_lowercase(), port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits(global: usize, per_source: usize) -> TcpLimits {
        TcpLimits {
            idle_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(10),
            max_connections: global,
            max_per_source: per_source,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Issue 18: a stranger gets `max_per_source` connections (one IPv6 /64 is one source);
    /// trusted sources only meet the global cap; a closed connection frees its slot.
    #[test]
    fn per_source_and_global_caps() {
        let l = limits(5, 2);
        let mut c = Conns::default();
        let (tx, _rx) = mpsc::channel(1);
        let a = c
            .accepted(Proto::Tcp, ip("2001:db8::1"), false, tx.clone())
            .0;
        c.accepted(Proto::Tls, ip("2001:db8::2"), false, tx.clone());
        assert_eq!(c.admit(ip("2001:db8::3"), false, &l), Err(Cap::PerSource));
        assert_eq!(c.admit(ip("2001:db8:0:1::3"), false, &l), Ok(()));
        assert_eq!(c.admit(ip("2001:db8::3"), true, &l), Ok(()));
        c.accepted(Proto::Tcp, ip("127.0.0.1"), true, tx.clone());
        c.accepted(Proto::Tcp, ip("127.0.0.1"), true, tx.clone());
        c.accepted(Proto::Tcp, ip("127.0.0.1"), true, tx.clone());
        assert_eq!(c.admit(ip("127.0.0.1"), true, &l), Err(Cap::Global));
        c.closed(a);
        assert_eq!(c.admit(ip("2001:db8::3"), false, &l), Ok(()));
    }

    /// Connections we open are pooled per peer (case-insensitive host) and leave the pool
    /// when abandoned or closed; they do not count against the accept caps.
    #[test]
    fn opened_connections_are_pooled_per_peer() {
        let mut c = Conns::default();
        let (tx, _rx) = mpsc::channel(1);
        let to = Connect {
            proto: Proto::Tls,
            host: "Trunk.Example.com".into(),
            port: 5061,
            resolved: None,
        };
        let (id, link) = c.opened(&to, tx);
        assert_eq!(link, Link::Tls(Some(id)));
        let same = Connect {
            host: "trunk.example.com".into(),
            ..to.clone()
        };
        assert_eq!(c.pooled(&same), Some(id));
        assert_eq!(
            c.pooled(&Connect {
                proto: Proto::Tcp,
                ..to.clone()
            }),
            None
        );
        assert_eq!(c.admit(ip("192.0.2.1"), false, &limits(1, 1)), Ok(()));
        c.abandon(id);
        assert_eq!(c.pooled(&to), None);
        c.closed(id);
        assert!(c.get(id).is_none());
    }
}
