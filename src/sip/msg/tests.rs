//! Parser tests: RFC 4475 / RFC 5118 corpora in `tests/data/sip`, unit cases per production,
//! round-trip and never-panic properties.

use super::parse::{parse_cseq, parse_name_addr, parse_via};
use super::*;
