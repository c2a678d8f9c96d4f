//! Fuzz `api::range::byte_range`: the `Range` header of any client, against bodies of several
//! lengths. It may not panic, and a range it grants lies inside the body, first byte first.
//!
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run http_range -- -max_total_time=120` from the repository
//! root; the seed corpus `fuzz/corpus/http_range` holds what players send and edge cases.
#![no_main]

use hammond::api::range::byte_range;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let header = String::from_utf8_lossy(data);
    for len in [0, 1, 2, 44, 4096, u64::MAX] {
        if let Ok(Some((first, last))) = byte_range(&header, len) {
            assert!(first <= last && last < len, "{header:?} of {len}: {first}-{last}");
        }
    }
});
