//! The timed workflow: what a caller hears and can do while waiting in a queue.
//!
//! PURE (no tokio, sockets or clocks; time comes in as `now`):
//! - [`flow`]: queue files (`config/queues/*.toml`) compiled into validated [`Flow`]s, with
//!   `file:line:column` diagnostics, and the [`QueueSet`] that routes a Request-URI user to one.
//! - [`engine`]: the sans-IO interpreter of one call's flow: `handle_event` / `handle_timeout`
//!   in, `poll_action` / `poll_timeout` out.
//! - [`numbers`]: callback number rules. [`hours`]: business hours in a time zone.
//! - [`retry`]: retry rules by dial outcome. [`window`]: the calling window in the customer's
//!   time zone (from the number, by a table generated from libphonenumber's).
//! - [`simulate`]: a dry run of a flow in virtual time, for operators.
//!
//! The tokio side (hot reload of the queue directory) is `crate::rt::queue_watch`.

pub mod engine;
pub mod flow;
pub mod hours;
pub mod numbers;
mod phone_zones;
pub mod retry;
pub mod simulate;
pub mod slots;
pub mod window;

pub use engine::{Action, CallContext, Engine, HangupReason, PlayItem, Refusal, Step, WfEvent};
pub use flow::{Flow, PromptCatalog, QueueSet, compile, load_dir};
pub use simulate::{PromptDurations, parse_keys, simulate};

#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) mod test_support {
    use super::flow::{Flow, compile};
    use std::path::Path;

    /// Every prompt id the engine may play, and every id the shipped library holds (queue
    /// files may name queue-specific prompts): what a test catalog holds.
    pub(crate) static CATALOG: std::sync::LazyLock<std::collections::HashSet<String>> =
        std::sync::LazyLock::new(|| {
            let manifest: toml::Table = include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/prompts/manifest.toml"
            ))
            .parse()
            .expect("the shipped manifest parses");
            super::flow::FIXED_PROMPTS
                .iter()
                .chain(super::flow::DIGIT_PROMPTS.iter())
                .map(|s| (*s).to_owned())
                .chain(manifest.keys().cloned())
                .collect()
        });

    pub(crate) const SUPPORT_TOML: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/queues/support.toml"
    ));

    /// The shipped `support` queue.
    pub(crate) fn support_flow() -> Flow {
        compile(
            Path::new("config/queues/support.toml"),
            SUPPORT_TOML,
            &*CATALOG,
        )
        .expect("support.toml compiles")
    }
}

/// The prompt library answers the workflow's questions about prompts: which ids exist (queue
/// file validation) and how long each lasts (`hammond simulate`).
mod prompt_glue {
    use std::time::Duration;

    use super::flow::PromptCatalog;
    use super::simulate::PromptDurations;
    use crate::media::prompts::PromptLibrary;

    impl PromptCatalog for PromptLibrary {
        fn contains(&self, id: &str) -> bool {
            Self::contains(self, id)
        }
    }

    impl PromptDurations for PromptLibrary {
        fn duration(&self, id: &str) -> Option<Duration> {
            self.get(id).map(|p| p.duration())
        }
        fn text(&self, id: &str) -> Option<String> {
            self.get(id).map(|p| p.text.clone())
        }
    }
}
