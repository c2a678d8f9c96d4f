//! Fuzz `sip::msg::{parse, frame, salvage}`: none may panic, and whatever `parse` accepts must
//! print (`to_bytes`) and parse back to the same message.
//!
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run sip_msg -- -max_total_time=300` from the repository root;
//! the seed corpus `fuzz/corpus/sip_msg` is a copy of `tests/data/sip/**/*.sip`
//! (`fuzz/seed-corpus.sh` refreshes it).
#![no_main]

use hammond::sip::msg::{frame, parse, salvage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = parse(data) {
        let again = parse(&m.to_bytes()).expect("a parsed message parses again once printed");
        assert_eq!(again, m, "print/parse round trip");
    }
    if let Ok(Some(n)) = frame(data) {
        assert!(n <= data.len(), "frame longer than the buffer");
        let _ = parse(&data[..n]);
    }
    let _ = salvage(data);
});
