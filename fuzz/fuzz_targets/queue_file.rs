//! Fuzz `workflow::flow::compile`, the queue-file compiler: any text (TOML or not) must give a
//! `Flow` or diagnostics, never a panic, and every diagnostic must point inside the file.
//!
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run queue_file -- -max_total_time=300` from the repository
//! root; the seed corpus `fuzz/corpus/queue_file` holds `config/queues/*.toml` and
//! `tests/data/queues/*.toml` (`fuzz/seed-corpus.sh` refreshes it).
#![no_main]

use std::path::Path;

use hammond::workflow::flow::{PromptCatalog, compile};
use libfuzzer_sys::fuzz_target;

/// Knows every prompt id, so the compiler goes past the prompt checks.
struct AnyPrompt;

impl PromptCatalog for AnyPrompt {
    fn contains(&self, _id: &str) -> bool {
        true
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("queues/fuzz.toml");
    if let Err(diags) = compile(path, src, &AnyPrompt) {
        assert!(!diags.is_empty(), "an error without a diagnostic");
        let lines = src.split('\n').count();
        for d in &diags {
            assert!(d.line >= 1 && d.line <= lines, "{d} is outside the file");
            assert!(d.column >= 1, "{d} has column 0");
            let _ = d.to_string();
        }
    }
    let _ = compile(path, src, &std::collections::HashSet::<String>::new());
});
