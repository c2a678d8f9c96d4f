//! Fuzz `media::sdes`: `CryptoAttr::parse` of any `a=crypto` value, and `redact` of any text.
//! Neither may panic; a parsed line written back must parse to the same line, and redacted
//! text must hold no key that parsed.
//!
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run sdes -- -max_total_time=300` from the repository root;
//! the seed corpus `fuzz/corpus/sdes` holds RFC 4568's examples and what phones send
//! (`fuzz/seed-corpus.sh` refreshes it).
#![no_main]

use hammond::media::sdes::{CryptoAttr, redact};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(a) = CryptoAttr::parse(&text) {
        let mut again = String::new();
        a.write_value(&mut again);
        assert_eq!(CryptoAttr::parse(&again).as_ref(), Ok(&a), "round trip");
        assert!(!redact(&again).contains(again.split("inline:").nth(1).unwrap_or("\0")));
    }
    let _ = redact(&text);
});
