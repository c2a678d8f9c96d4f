//! Fuzz `media::sdp`: `SessionDescription::parse` of any text, then `negotiate` against what
//! Hammond accepts (PCMU/PCMA + telephone-event) and `accept_answer` of the same text as an
//! answer to our own offer. None may panic; a negotiated answer must itself parse.
//!
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run sdp -- -max_total_time=300` from the repository root;
//! the seed corpus `fuzz/corpus/sdp` holds the SDP bodies of `tests/data/sip` plus a few
//! hand-written offers (`fuzz/seed-corpus.sh` refreshes it).
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use hammond::idgen::IdGen;
use hammond::media::sdp::{
    LocalMedia, LocalOrigin, SessionDescription, accept_answer, build_offer, negotiate,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let local = LocalMedia::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 20000);
    let mut ids = IdGen::seeded(1);
    let mut origin = LocalOrigin::new(&mut ids);
    if let Ok(offer) = SessionDescription::parse(&text) {
        for m in &offer.media {
            let _ = offer.connection_for(m);
            let _ = offer.direction_for(m);
            let _ = m.telephone_event_pt();
            let _ = m.g711_codecs().count();
        }
        if let Ok(n) = negotiate(&offer, &local, &mut origin) {
            SessionDescription::parse(&n.answer_sdp).expect("our own answer parses");
        }
    }
    let ours = build_offer(&local, &mut origin);
    let _ = accept_answer(&ours, &text);
});
