//! The process's open-file limit.
//!
//! Every call in the workflow holds an RTP socket (two while bridged), so the usual soft limit
//! of 1,024 descriptors would refuse calls long before `sip.max_calls`. Servers raise the soft
//! limit to the hard one at start; so does Hammond.

use tracing::{debug, warn};

/// Raise the soft limit on open files to the hard limit, and return the soft limit in force.
pub fn raise() -> u64 {
    let Some(mut lim) = get() else {
        return 1024;
    };
    if lim.rlim_cur < lim.rlim_max {
        let want = lim.rlim_max;
        lim.rlim_cur = want;
        // SAFETY: setrlimit(2) reads `lim`, which lives across the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const lim) } == 0 {
            debug!(
                open_files = want,
                "open-file limit raised to the hard limit"
            );
        } else {
            warn!(
                error = %std::io::Error::last_os_error(),
                "open-file limit not raised"
            );
        }
    }
    current()
}

/// The soft limit on open files now.
pub fn current() -> u64 {
    get().map_or(1024, |l| l.rlim_cur)
}

fn get() -> Option<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) writes only `lim`, which lives across the call.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) } == 0).then_some(lim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raises_the_soft_limit_to_the_hard_one() {
        let soft = raise();
        let lim = get().expect("getrlimit");
        assert_eq!(soft, lim.rlim_cur);
        assert_eq!(lim.rlim_cur, lim.rlim_max);
    }
}
