//! Value types and parsers for the service config: durations with units, byte sizes, RTP port
//! ranges, CIDR blocks, `host:port` targets, secrets, codecs.
//!
//! PURE: every parser takes a `&str` and returns `Result<_, String>` with a message fit for an
//! operator; the caller adds the file, line and column. Nothing here panics on input.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

/// Parse a duration written with its unit: `"500ms"`, `"30s"`, `"5m"`, `"1h"`, `"7d"`, or a sum
/// of such terms (`"1m30s"`, `"1h 5m"`).
///
/// The one duration parser: call it for every time value in the service config, a queue file or
/// on the command line, so that all of them accept the same forms and say the same things. A
/// bare number (`"30"`) is an error that tells the operator which unit to add; so is a negative,
/// fractional or overflowing value.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    const UNITS: &str = "units: ms, s, m, h, d";
    let t = s.trim();
    if t.is_empty() {
        return Err(format!(
            "empty duration: write a number with a unit, e.g. \"30s\" ({UNITS})"
        ));
    }
    let too_large = || format!("duration {s:?} is too large");
    let mut total_ms: u64 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (digits, after) = rest.split_at(split);
        if digits.is_empty() {
            return Err(format!(
                "invalid duration {s:?}: expected a whole number followed by a unit, e.g. \"30s\" ({UNITS})"
            ));
        }
        let n: u64 = digits.parse().map_err(|_| too_large())?;
        let after = after.trim_start();
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c.is_whitespace())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let unit_ms: u64 = match unit {
            "" => {
                return Err(format!(
                    "duration {s:?} has no unit: write \"{n}s\" for seconds or \"{n}ms\" for milliseconds ({UNITS})"
                ));
            }
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            other => {
                return Err(format!(
                    "unknown unit {other:?} in duration {s:?}: use ms, s, m, h or d (e.g. \"{n}s\")"
                ));
            }
        };
        total_ms = n
            .checked_mul(unit_ms)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(too_large)?;
        rest = next.trim_start();
    }
    Ok(Duration::from_millis(total_ms))
}

/// Parse a byte size: `"64KiB"`, `"1MiB"`, `"512B"`, `"10kB"` (decimal) or a plain count of bytes
/// (`"65536"`). Used for `http.max_body`.
pub fn parse_byte_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() {
        return Err(format!(
            "invalid size {s:?}: expected a whole number of bytes, optionally with a unit (B, KiB, MiB, GiB, kB, MB, GB)"
        ));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("size {s:?} is too large"))?;
    let mult: u64 = match unit.trim_start() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown unit {other:?} in size {s:?}: use B, KiB, MiB, GiB, kB, MB or GB"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// One of a fixed set of words: its value, or an error naming `what` and the words allowed
/// (`unknown transport "sctp": use "udp" or "tcp"`).
pub fn parse_choice<T: Copy>(s: &str, what: &str, choices: &[(&str, T)]) -> Result<T, String> {
    if let Some(&(_, v)) = choices.iter().find(|(word, _)| *word == s) {
        return Ok(v);
    }
    let words: Vec<String> = choices.iter().map(|(w, _)| format!("{w:?}")).collect();
    let allowed = match words.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => words.join(""),
    };
    Err(format!("unknown {what} {s:?}: use {allowed}"))
}

/// Parse an RTP port range `"A-B"`: `A` even (RTP uses even ports, RFC 3550 §11), `0 < A < B`,
/// both at most 65535.
pub fn parse_port_range(s: &str) -> Result<RangeInclusive<u16>, String> {
    let Some((a, b)) = s.split_once('-') else {
        return Err(format!(
            "invalid port range {s:?}: expected \"FIRST-LAST\", e.g. \"20000-29999\""
        ));
    };
    let port = |p: &str| -> Result<u32, String> {
        let p = p.trim();
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("invalid port {p:?} in range {s:?}"));
        }
        p.parse::<u32>()
            .ok()
            .filter(|&n| n <= u32::from(u16::MAX))
            .ok_or_else(|| format!("port {p} in range {s:?} is above 65535"))
    };
    let (a, b) = (port(a)?, port(b)?);
    if a == 0 {
        return Err(format!("port range {s:?} must not start at 0"));
    }
    if a % 2 != 0 {
        return Err(format!(
            "port range {s:?} must start on an even port (RTP uses even ports): try \"{}-{b}\"",
            a + 1
        ));
    }
    if a >= b {
        return Err(format!(
            "port range {s:?} is empty: the first port must be below the last"
        ));
    }
    // Both fit: checked against u16::MAX above.
    let (a, b) = (
        u16::try_from(a).map_err(|e| e.to_string())?,
        u16::try_from(b).map_err(|e| e.to_string())?,
    );
    Ok(a..=b)
}

/// An IPv4 or IPv6 network, `a.b.c.d/n` or `x::y/n`; an address alone is a single host (`/32`,
/// `/128`). Host bits after the prefix are ignored (`10.1.2.3/8` is `10.0.0.0/8`).
///
/// This is the one CIDR type: every source check (trusted PBX, rate limiter buckets) goes
/// through [`Cidr::contains`]. IPv4 has one spelling here: an IPv4-mapped IPv6 network
/// (`::ffff:10.0.0.5/128`, prefix 96 or longer) is stored as the IPv4 network it maps
/// (`10.0.0.5/32`), and mapped sources are compared as IPv4, so a dual-stack listener
/// (`[::]:5060`, which reports IPv4 peers as `::ffff:a.b.c.d`) and an IPv4 one agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Build a network from an address and a prefix length; `None` when the prefix is too long.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return None;
        }
        // `::ffff:a.b.c.d/96..128` is an IPv4 network in IPv6 spelling: keep it as IPv4.
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) if prefix >= 96 => v6
                .to_ipv4_mapped()
                .map_or((addr, prefix), |v4| (IpAddr::V4(v4), prefix - 96)),
            _ => (addr, prefix),
        };
        Some(Self {
            network: mask(addr, prefix),
            prefix,
        })
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length in bits.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is inside this network. Call it for every request source before keeping any
    /// state. An IPv4-mapped IPv6 source (`::ffff:a.b.c.d`, as a dual-stack socket reports it)
    /// matches the IPv4 network it maps to.
    /// An IPv6 network shorter than /96 (`::/0`, `2001:db8::/32`) never matches an IPv4 source:
    /// write IPv4 networks as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        ip.is_ipv4() == self.network.is_ipv4() && mask(ip, self.prefix) == self.network
    }
}

/// `ip` with an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) written as the IPv4 address it
/// maps. Key anything per source (trust, rate limits, a dialog's peer) on this form, so one
/// host is one key whether it reached a dual-stack socket or an IPv4 one.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
        }
        IpAddr::V6(a) => {
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & m))
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let (addr, prefix) = match t.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (t, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| {
            format!("invalid CIDR {s:?}: expected an IP address with an optional /prefix, e.g. \"10.0.0.0/8\"")
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|&p| p <= max).ok_or_else(|| {
                format!("invalid prefix length in CIDR {s:?}: expected 0 to {max}")
            })?,
        };
        Self::new(addr, prefix).ok_or_else(|| format!("invalid CIDR {s:?}"))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// A SIP target written `host:port`, `[v6]:port` or just `host` (port 5060). The host may be a
/// DNS name; the shell resolves it (`tokio::net::lookup_host(hp.to_string())`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl HostPort {
    /// The address when the host is an IP literal; `None` for a DNS name.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.host
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, self.port))
    }
}

impl FromStr for HostPort {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("invalid address {s:?}: expected \"host:port\", e.g. \"pbx.example.com:5060\"")
        };
        if let Ok(sa) = s.parse::<SocketAddr>() {
            return Ok(Self {
                host: sa.ip().to_string(),
                port: sa.port(),
            });
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Self {
                host: ip.to_string(),
                port: 5060,
            });
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
            None => (s, 5060),
        };
        let valid_name = !host.is_empty()
            && host.split('.').all(|l| {
                !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid_name || port == 0 {
            return Err(bad());
        }
        Ok(Self {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A password or token. `Debug` prints `***`, and there is no `Display`, so a secret cannot end
/// up in a log line by accident; call [`Secret::expose`] where the value is really needed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

/// The signing key of a Standard Webhooks secret: the bytes of the base64 after `whsec_`, 24 to
/// 64 of them as the spec asks.
pub fn webhook_key(secret: &str) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    let b64 = secret
        .strip_prefix("whsec_")
        .ok_or("must start with \"whsec_\" (a Standard Webhooks secret)")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| "the part after \"whsec_\" must be base64".to_owned())?;
    if !(24..=64).contains(&bytes.len()) {
        return Err(format!(
            "must hold 24 to 64 bytes once decoded, not {}",
            bytes.len()
        ));
    }
    Ok(bytes)
}

impl Secret {
    /// Wrap a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself: for computing a digest response, never for logging.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether no secret was configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Compare with a presented credential (a bearer token) in time that does not depend on
    /// where the first difference is. An empty secret never matches.
    pub fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        if a.is_empty() || a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Check that `uri` is a `sip:` URI with a host: `sip:[user@]host[:port][;params]`.
pub fn check_sip_uri(uri: &str) -> Result<(), String> {
    let bad =
        |why: &str| format!("invalid SIP URI {uri:?}: {why}, e.g. \"sip:alice@192.0.2.10:5060\"");
    let Some(rest) = uri.strip_prefix("sip:") else {
        return Err(bad("it must start with \"sip:\""));
    };
    let hostport = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let hostport = hostport.split([';', '?']).next().unwrap_or("");
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        hostport.split(':').next().unwrap_or("")
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(bad("it has no host"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_choice_is_one_of_its_words() {
        let modes = [("auto", 1), ("epoll", 2), ("poll", 3)];
        assert_eq!(parse_choice("epoll", "media I/O", &modes), Ok(2));
        assert_eq!(
            parse_choice("uring", "media I/O", &modes),
            Err(r#"unknown media I/O "uring": use "auto", "epoll" or "poll""#.to_owned())
        );
        assert_eq!(
            parse_choice("x", "transport", &[("udp", 0), ("tcp", 1)]),
            Err(r#"unknown transport "x": use "udp" or "tcp""#.to_owned())
        );
    }

    #[test]
    fn durations_need_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration(" 1h "), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        let e = parse_duration("30").unwrap_err();
        assert!(e.contains("no unit") && e.contains("\"30s\""), "{e}");
        assert!(
            parse_duration("3 days")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1.5s").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("1m30").unwrap_err().contains("no unit"));
        assert!(
            parse_duration("99999999999999999999s")
                .unwrap_err()
                .contains("too large")
        );
        assert!(
            parse_duration("18446744073709551615h")
                .unwrap_err()
                .contains("too large")
        );
    }

    /// The forms the workflow simulator's key times used (`"1m30s"`), now everywhere.
    #[test]
    fn durations_add_up_their_terms() {
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h 5m"), Ok(Duration::from_secs(3900)));
        assert_eq!(parse_duration("2s500ms"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("30 s"), Ok(Duration::from_secs(30)));
        assert!(
            parse_duration("5124095576030431h1h")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("64KiB"), Ok(65536));
        assert_eq!(parse_byte_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_byte_size("10kB"), Ok(10_000));
        assert_eq!(parse_byte_size("512"), Ok(512));
        assert!(parse_byte_size("64 parsecs").is_err());
        assert!(parse_byte_size("KiB").is_err());
    }

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_range("20000-29999"), Ok(20000..=29999));
        assert!(
            parse_port_range("20001-29999")
                .unwrap_err()
                .contains("even")
        );
        assert!(
            parse_port_range("30000-20000")
                .unwrap_err()
                .contains("empty")
        );
        assert!(parse_port_range("20000-20000").is_err());
        assert!(
            parse_port_range("20000-70000")
                .unwrap_err()
                .contains("65535")
        );
        assert!(parse_port_range("0-100").is_err());
        assert!(parse_port_range("20000").is_err());
        assert!(parse_port_range("a-b").is_err());
    }

    #[test]
    fn cidr_v4_and_v6() {
        let c: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert!(c.contains("10.200.0.1".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.9.9.9".parse().unwrap()));
        let host: Cidr = "192.0.2.7".parse().unwrap();
        assert_eq!(host.prefix(), 32);
        assert!(host.contains("192.0.2.7".parse().unwrap()));
        assert!(!host.contains("192.0.2.8".parse().unwrap()));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!v6.contains("2001:db9::5".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        assert_eq!("::1".parse::<Cidr>().unwrap().prefix(), 128);
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("10.0.0/8".parse::<Cidr>().is_err());
        assert!("pbx.example.com".parse::<Cidr>().is_err());
    }

    /// One spelling for IPv4: a mapped network is stored as IPv4 and matches both forms of
    /// its hosts, and nothing else of either family.
    #[test]
    fn cidr_mapped_networks_are_ipv4() {
        let mapped: Cidr = "::ffff:10.0.0.5/128".parse().unwrap();
        assert_eq!(mapped, "10.0.0.5/32".parse().unwrap());
        assert!(mapped.contains("10.0.0.5".parse().unwrap()));
        assert!(mapped.contains("::ffff:10.0.0.5".parse().unwrap()));
        assert!(!mapped.contains("10.0.0.6".parse().unwrap()));
        assert!(!mapped.contains("::ffff:192.0.2.1".parse().unwrap()));
        let all_v4: Cidr = "::ffff:0.0.0.0/96".parse().unwrap();
        assert_eq!(all_v4.to_string(), "0.0.0.0/0");
        // An IPv6 network does not take IPv4 sources, mapped or not.
        let any_v6: Cidr = "::/0".parse().unwrap();
        assert!(any_v6.contains("2001:db8::1".parse().unwrap()));
        assert!(!any_v6.contains("::ffff:192.0.2.1".parse().unwrap()));
        assert!(!any_v6.contains("192.0.2.1".parse().unwrap()));
        assert_eq!(
            canonical_ip("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn host_ports() {
        let hp: HostPort = "127.0.0.1:5090".parse().unwrap();
        assert_eq!(hp.socket_addr(), Some("127.0.0.1:5090".parse().unwrap()));
        let hp: HostPort = "PBX.example.com".parse().unwrap();
        assert_eq!((hp.host.as_str(), hp.port), ("pbx.example.com", 5060));
        assert_eq!(hp.socket_addr(), None);
        assert_eq!(
            "[::1]:5070".parse::<HostPort>().unwrap().to_string(),
            "[::1]:5070"
        );
        assert!("".parse::<HostPort>().is_err());
        assert!("pbx:notaport".parse::<HostPort>().is_err());
        assert!("bad host:5060".parse::<HostPort>().is_err());
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "***");
        assert!(s.matches("hunter2"));
        assert!(!s.matches("hunter3"));
        assert!(!s.matches("hunter"));
        assert!(!Secret::default().matches(""));
    }

    #[test]
    fn sip_uris() {
        assert!(check_sip_uri("sip:alice@127.0.0.1:5070").is_ok());
        assert!(check_sip_uri("sip:pbx.example.com;transport=tcp").is_ok());
        assert!(check_sip_uri("sip:bob@[2001:db8::1]:5060").is_ok());
        assert!(check_sip_uri("tel:+15551234567").is_err());
        assert!(check_sip_uri("sip:alice@").is_err());
        assert!(check_sip_uri("sip:").is_err());
    }
}
