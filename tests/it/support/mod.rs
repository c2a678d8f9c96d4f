//! Test support: a real Hammond process and SIPp runs against it.

#![allow(dead_code)]

pub(crate) mod api;
pub(crate) mod baresip;
pub(crate) mod capture;
pub(crate) mod hammond;
pub(crate) mod http;
pub(crate) mod kamailio;
pub(crate) mod pg;
pub(crate) mod pki;
pub(crate) mod ports;
pub(crate) mod raw_sip;
pub(crate) mod rtp;
pub(crate) mod sipp;
pub(crate) mod sse;
pub(crate) mod tone;

pub(crate) use hammond::{Hammond, Options};
pub(crate) use sipp::Sipp;
