//! PURE: the one byte range an HTTP `Range` header asks of a body (RFC 9110 §14), for the
//! voicemail player's seeks. Its own module so the fuzzer can reach it (`fuzz/fuzz_targets/
//! http_range.rs`): it reads a header any client sends.

/// A `Range` that asks only for bytes past the end (RFC 9110 §15.5.17: 416).
#[derive(Debug, PartialEq, Eq)]
pub struct Unsatisfiable;

/// The one byte range `header` asks of a `len`-byte body, as `(first, last)` inclusive:
/// `Ok(None)` to send it whole (not a bytes range, several ranges, or malformed: RFC 9110
/// §14.2 lets a server ignore what it does not serve), `Err` when the range starts past the
/// end (or is a suffix of zero bytes).
pub fn byte_range(header: &str, len: u64) -> Result<Option<(u64, u64)>, Unsatisfiable> {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let parse = |s: &str| s.parse::<u64>().ok();
    match (a.is_empty(), b.is_empty()) {
        // `bytes=-n`: the last n bytes.
        (true, false) => match parse(b) {
            Some(0) => Err(Unsatisfiable),
            Some(_) if len == 0 => Err(Unsatisfiable),
            Some(n) => Ok(Some((len.saturating_sub(n), len - 1))),
            None => Ok(None),
        },
        (false, _) => {
            let Some(first) = parse(a) else {
                return Ok(None);
            };
            let last = if b.is_empty() {
                Some(u64::MAX)
            } else {
                parse(b)
            };
            match last {
                Some(last) if last < first => Ok(None),
                Some(_) if first >= len => Err(Unsatisfiable),
                Some(last) => Ok(Some((first, last.min(len - 1)))),
                None => Ok(None),
            }
        }
        (true, true) => Ok(None),
    }
}
