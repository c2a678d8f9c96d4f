//! Helpers shared by the bench tools: the wall clock in nanoseconds (the same clock the kernel
//! stamps received datagrams with), percentiles, and CPU / RSS of a process from `/proc`.

use std::io;

/// CLOCK_REALTIME in nanoseconds: comparable with `SO_TIMESTAMPNS` receive stamps.
pub fn now_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// The `q` quantile (0..=1) of sorted values (nearest rank); 0 when empty.
pub fn pct<T: Copy + Default>(sorted: &[T], q: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// User + system CPU time of `pid` in clock ticks (`/proc/<pid>/stat` fields 14 and 15).
pub fn cpu_ticks(pid: u32) -> io::Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces: fields start after the last ')'.
    let rest = s
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| io::Error::other("bad stat"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14 → index 11.
    let ut: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
    let st: u64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(ut + st)
}

/// Clock ticks per second.
pub fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

/// Resident set size of `pid` in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> io::Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// UDP `RcvbufErrors` and `InErrors` from `/proc/net/snmp`.
pub fn udp_errors() -> (u64, u64) {
    let Ok(s) = std::fs::read_to_string("/proc/net/snmp") else {
        return (0, 0);
    };
    let lines: Vec<&str> = s.lines().filter(|l| l.starts_with("Udp:")).collect();
    if lines.len() < 2 {
        return (0, 0);
    }
    let names: Vec<&str> = lines[0].split_whitespace().collect();
    let vals: Vec<&str> = lines[1].split_whitespace().collect();
    let get = |k: &str| {
        names
            .iter()
            .position(|n| *n == k)
            .and_then(|i| vals.get(i))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (get("RcvbufErrors"), get("InErrors"))
}

/// Datagrams the kernel dropped on the UDP sockets `pids` hold open now (the `drops` column of
/// `/proc/net/udp{,6}`), so a shared machine's other traffic does not count against us.
pub fn udp_socket_drops(pids: &[u32]) -> u64 {
    let mut inodes = std::collections::HashSet::new();
    for pid in pids {
        let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for e in dir.flatten() {
            if let Ok(l) = std::fs::read_link(e.path())
                && let Some(n) = l
                    .to_str()
                    .and_then(|s| s.strip_prefix("socket:["))
                    .and_then(|s| s.strip_suffix(']'))
                    .and_then(|s| s.parse::<u64>().ok())
            {
                inodes.insert(n);
            }
        }
    }
    let mut drops = 0;
    for f in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(s) = std::fs::read_to_string(f) else {
            continue;
        };
        for line in s.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
            if let (Some(ino), Some(d)) = (cols.get(9), cols.last())
                && ino.parse::<u64>().is_ok_and(|i| inodes.contains(&i))
            {
                drops += d.parse::<u64>().unwrap_or(0);
            }
        }
    }
    drops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<u32> = (1..=1000).collect();
        assert_eq!(pct(&v, 0.5), 500);
        assert_eq!(pct(&v, 0.99), 990);
        assert_eq!(pct(&v, 0.999), 999);
        assert_eq!(pct(&v, 1.0), 1000);
        assert_eq!(pct::<u32>(&[], 0.5), 0);
    }

    #[test]
    fn own_process_is_visible() {
        let me = std::process::id();
        assert!(rss_kib(me).unwrap() > 0);
        assert!(cpu_ticks(me).is_ok());
    }
}
