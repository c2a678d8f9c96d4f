//! Per-source request rate limiting, like Kamailio's `pike` module. PURE: time is a parameter.
//!
//! One token bucket per source IP (kept as a GCRA instant): it holds up to `count` tokens and refills at `count` per
//! `per`, so a source may burst `count` requests and then sustain `count / per`. The user agent
//! asks [`Pike::admit`] before it keeps state for a request that starts something new (an
//! out-of-dialog request or one naming an unknown dialog); retransmissions, ACKs, CANCELs and
//! in-dialog requests are never counted, so calls already up keep working under a flood.
//!
//! A source is an IPv4 address or an IPv6 /64 (one host usually holds a whole /64, so keying
//! on the full address would give it 2^64 buckets and let it fill the table alone). IPv4-mapped
//! IPv6 sources count as the IPv4 address. The user agent does not ask for trusted sources
//! (the PBX): spoofed traffic from its address must not push its calls into 503.
//!
//! Memory is bounded: a bucket that has been idle for `per` is full again, which is the same as
//! having no entry, so [`Pike::admit`] sweeps such entries every `per`. Past `max_sources`
//! tracked sources (a flood from spoofed addresses), new sources share one overflow bucket
//! instead of getting their own: memory stays fixed and the flood is still limited as a whole.
//! It must not read a clock or allocate per request beyond the one entry per tracked source.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// At most `count` requests per `per` from one source (`[sip] max_requests_per_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Burst size and requests per window, at least 1.
    pub count: u32,
    /// The refill window, longer than zero.
    pub per: Duration,
}

/// Sources tracked individually by default; past this they share the overflow bucket.
pub const MAX_SOURCES: usize = 65_536;

/// What [`Pike::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead (one token was taken).
    Admit,
    /// Over the limit: refuse (503) and tell the peer to retry after this many seconds.
    Refuse { retry_after: u32 },
}

/// The per-source limiter. Create one per user agent; feed every new request's source to
/// [`Pike::admit`] with the time it arrived.
///
/// Each bucket is kept in its GCRA form (the "virtual scheduling" of ITU-T I.371): one instant,
/// the theoretical arrival time `tat` of the next request at the sustained rate. A request at
/// `now` is admitted when `tat - now <= per - interval` (the bucket still holds a token), and
/// moves `tat` on by one `interval = per / count`. It is exactly a token bucket of `count`
/// tokens refilled at `count` per `per`, without fractions, and an entry whose `tat` has passed
/// is a full bucket, which is what makes idle entries safe to forget.
#[derive(Debug)]
pub struct Pike {
    /// Time one token takes to come back: `per / count`.
    interval: Duration,
    /// How far `tat` may run ahead of now: `per - interval` (a burst of `count`).
    tolerance: Duration,
    /// The sweep period: `per`.
    per: Duration,
    max_sources: usize,
    buckets: HashMap<IpAddr, Instant>,
    overflow: Option<Instant>,
    last_sweep: Option<Instant>,
    refused: u64,
}

impl Pike {
    /// A limiter tracking up to [`MAX_SOURCES`] sources.
    pub fn new(limit: Limit) -> Self {
        Self::with_max_sources(limit, MAX_SOURCES)
    }

    /// A limiter tracking up to `max_sources` sources individually (at least 1).
    pub fn with_max_sources(limit: Limit, max_sources: usize) -> Self {
        let per = limit.per.max(Duration::from_millis(1));
        let interval = per / limit.count.max(1);
        Self {
            interval,
            tolerance: per.saturating_sub(interval),
            per,
            max_sources: max_sources.max(1),
            buckets: HashMap::new(),
            overflow: None,
            last_sweep: None,
            refused: 0,
        }
    }

    /// Take a token for one request from `ip` arriving at `now`.
    pub fn admit(&mut self, now: Instant, ip: IpAddr) -> Verdict {
        self.sweep(now);
        let ip = bucket_of(ip);
        let (interval, tolerance) = (self.interval, self.tolerance);
        let tat = if let Some(t) = self.buckets.get_mut(&ip) {
            t
        } else if self.buckets.len() < self.max_sources {
            self.buckets.entry(ip).or_insert(now)
        } else {
            self.overflow.get_or_insert(now)
        };
        let start = (*tat).max(now);
        let ahead = start - now;
        if ahead <= tolerance {
            *tat = start + interval;
            Verdict::Admit
        } else {
            self.refused += 1;
            // A token is back once `tat - now` is down to the tolerance; §20.33 wants seconds.
            let wait = ahead - tolerance;
            let secs = wait.as_nanos().div_ceil(1_000_000_000).max(1);
            Verdict::Refuse {
                retry_after: u32::try_from(secs).unwrap_or(u32::MAX),
            }
        }
    }

    /// Sources tracked individually right now (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }

    /// Requests refused so far.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Forget every bucket that is full again (its `tat` has passed). Runs at most once per
    /// window, so its cost is spread over the requests of that window.
    fn sweep(&mut self, now: Instant) {
        if self
            .last_sweep
            .is_some_and(|t| now.saturating_duration_since(t) < self.per)
        {
            return;
        }
        self.last_sweep = Some(now);
        self.buckets.retain(|_, tat| *tat > now);
        if self.overflow.is_some_and(|tat| tat <= now) {
            self.overflow = None;
        }
    }
}

/// The bucket a source counts against: its IPv4 address (mapped ones unwrapped), or its
/// IPv6 /64.
pub fn bucket_of(ip: IpAddr) -> IpAddr {
    match crate::config::canonical_ip(ip) {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        v4 @ IpAddr::V4(_) => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + n))
    }

    fn limit(count: u32, per_ms: u64) -> Limit {
        Limit {
            count,
            per: Duration::from_millis(per_ms),
        }
    }

    #[test]
    fn a_burst_of_count_then_refusal_with_retry_after() {
        let t0 = crate::clock::now();
        let mut p = Pike::new(limit(5, 2000));
        for _ in 0..5 {
            assert_eq!(p.admit(t0, ip(1)), Verdict::Admit);
        }
        // One token comes back every 400 ms: retry after 1 s (rounded up).
        assert_eq!(p.admit(t0, ip(1)), Verdict::Refuse { retry_after: 1 });
        assert_eq!(p.refused(), 1);
        // Another source has its own bucket.
        assert_eq!(p.admit(t0, ip(2)), Verdict::Admit);
    }

    #[test]
    fn tokens_refill_at_count_per_window() {
        let t0 = crate::clock::now();
        let mut p = Pike::new(limit(10, 1000));
        for _ in 0..10 {
            assert_eq!(p.admit(t0, ip(1)), Verdict::Admit);
        }
        assert!(matches!(p.admit(t0, ip(1)), Verdict::Refuse { .. }));
        // 100 ms earns exactly one token.
        let t = t0 + Duration::from_millis(100);
        assert_eq!(p.admit(t, ip(1)), Verdict::Admit);
        assert!(matches!(p.admit(t, ip(1)), Verdict::Refuse { .. }));
        // Sustained at the rate (one per 100 ms) is fine for a long time.
        for i in 2..200 {
            let t = t0 + Duration::from_millis(100 * i);
            assert_eq!(p.admit(t, ip(1)), Verdict::Admit, "request {i}");
        }
    }

    #[test]
    fn retry_after_covers_a_slow_refill() {
        let t0 = crate::clock::now();
        let mut p = Pike::new(limit(1, 30_000));
        assert_eq!(p.admit(t0, ip(1)), Verdict::Admit);
        assert_eq!(p.admit(t0, ip(1)), Verdict::Refuse { retry_after: 30 });
        let t = t0 + Duration::from_secs(10);
        assert_eq!(p.admit(t, ip(1)), Verdict::Refuse { retry_after: 20 });
        assert_eq!(p.admit(t0 + Duration::from_secs(30), ip(1)), Verdict::Admit);
    }

    #[test]
    fn idle_sources_are_forgotten() {
        let t0 = crate::clock::now();
        let mut p = Pike::new(limit(3, 1000));
        for n in 0..1000 {
            p.admit(t0, ip(n));
        }
        assert_eq!(p.tracked(), 1000);
        // A window later, one new request sweeps every idle entry.
        p.admit(t0 + Duration::from_secs(1), ip(5000));
        assert_eq!(p.tracked(), 1);
    }

    #[test]
    fn memory_is_bounded_and_the_overflow_is_limited_as_one() {
        let t0 = crate::clock::now();
        let mut p = Pike::with_max_sources(limit(4, 1000), 100);
        let mut admitted = 0;
        for n in 0..10_000 {
            if p.admit(t0, ip(n)) == Verdict::Admit {
                admitted += 1;
            }
        }
        assert_eq!(p.tracked(), 100);
        // The first 100 sources got their first request through; the other 9,900 share 4 tokens.
        assert_eq!(admitted, 104);
        // A tracked source still has its own bucket.
        assert_eq!(p.admit(t0, ip(7)), Verdict::Admit);
    }

    /// Issue 19: one host with a /64 could take 2^64 buckets and fill the table; it gets one.
    /// A mapped IPv4 source shares its IPv4 address's bucket.
    #[test]
    fn ipv6_sources_are_bucketed_by_64_and_mapped_ipv4_by_address() {
        let t0 = crate::clock::now();
        let mut p = Pike::with_max_sources(limit(3, 1000), 100);
        let in_64 = |n: u64| {
            IpAddr::V6(Ipv6Addr::from(
                (0x2001_0db8_0000_0001_u128 << 64) | u128::from(n),
            ))
        };
        let mut admitted = 0;
        for n in 0..1000 {
            if p.admit(t0, in_64(n)) == Verdict::Admit {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 3, "one /64, one bucket");
        assert_eq!(p.tracked(), 1);
        // The next /64 is another source.
        let other = IpAddr::V6(Ipv6Addr::from(0x2001_0db8_0000_0002_u128 << 64));
        assert_eq!(p.admit(t0, other), Verdict::Admit);
        // ::ffff:10.0.0.9 and 10.0.0.9 are one host.
        let v4: IpAddr = "10.0.0.9".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.9".parse().unwrap();
        assert_eq!(p.admit(t0, v4), Verdict::Admit);
        assert_eq!(p.admit(t0, mapped), Verdict::Admit);
        assert_eq!(p.admit(t0, v4), Verdict::Admit);
        assert!(matches!(p.admit(t0, mapped), Verdict::Refuse { .. }));
        assert_eq!(p.tracked(), 3);
    }

    #[test]
    fn time_going_backwards_grants_nothing_extra() {
        let t0 = crate::clock::now() + Duration::from_secs(10);
        let mut p = Pike::new(limit(2, 1000));
        assert_eq!(p.admit(t0, ip(1)), Verdict::Admit);
        assert_eq!(p.admit(t0, ip(1)), Verdict::Admit);
        let earlier = t0 - Duration::from_secs(5);
        assert!(matches!(p.admit(earlier, ip(1)), Verdict::Refuse { .. }));
        assert_eq!(
            p.admit(t0 + Duration::from_millis(500), ip(1)),
            Verdict::Admit
        );
    }
}
