//! TODO: filled in by its issue.
pub mod queue_watch;
