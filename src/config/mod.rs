//! Configuration: the service config (`config/hammond.toml`) and the diagnostics every config
//! error carries. Queue files are compiled by [`crate::workflow::flow`]. PURE apart from reading
//! files.

pub mod diag;
