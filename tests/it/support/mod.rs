//! Test support: a real Hammond process and SIPp runs against it.

#![allow(dead_code)]

pub mod hammond;
pub mod sipp;

pub use hammond::{Hammond, Options};
pub use sipp::{Sipp, SippRun};
