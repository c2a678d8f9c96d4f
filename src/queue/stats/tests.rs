use super::*;
use crate::interaction::{Callback, Leg};

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap()
}

fn arrived(id: i64, queue: &str, at: i64) -> Interaction {
    let mut i = Interaction::inbound(queue, "+15550001", t(at));
    i.id = id;
    i
}

fn closed(mut i: Interaction, reason: CloseReason) -> Interaction {
    i.status = Status::Closed;
    i.close_reason = Some(reason);
    i
}

fn callback(mut i: Interaction) -> Interaction {
    i.sub_type = SubType::Callback;
    i.callback = Some(Callback {
        number: "15551234567".into(),
        attempts: 0,
        not_before: None,
        requested_at: Some(i.created_at),
    });
    i
}

fn outcome(i: &Interaction, bridged: Option<i64>) -> Outcome<'_> {
    Outcome {
        interaction: i,
        bridged_at: bridged.map(t),
        closed_at: None,
    }
}

/// Each outcome lands in its bucket of arrival and in the totals; the service level counts
/// the bridged within target over the settled ones; waits fall in their bins.
#[test]
fn figures_by_arrival_bucket() {
    let queues = [("support".to_owned(), Duration::from_secs(60))];
    let mut s = Stats::new(t(0), t(1800), Duration::from_secs(900), &queues);
    assert_eq!(s.queues[0].buckets.len(), 2);
    let answered_fast = closed(arrived(1, "support", 10), CloseReason::Completed);
    let answered_slow = closed(arrived(2, "support", 20), CloseReason::Completed);
    let abandoned = closed(arrived(3, "support", 30), CloseReason::Abandoned);
    let pending = callback(arrived(4, "support", 950));
    let mut done = callback(arrived(5, "support", 960));
    done.status = Status::Connected;
    done.leg = Some(Leg::Bridged);
    let failed = closed(
        callback(arrived(6, "support", 970)),
        CloseReason::CallbackFailed,
    );
    let elsewhere = arrived(7, "sales", 10);
    let late = arrived(8, "support", 1800);
    for o in [
        outcome(&answered_fast, Some(40)),
        outcome(&answered_slow, Some(200)),
        outcome(&abandoned, None),
        outcome(&pending, None),
        outcome(&done, Some(1960)),
        outcome(&failed, None),
        outcome(&elsewhere, Some(11)),
        outcome(&late, None),
    ] {
        s.add(&o);
    }
    let q = &s.queues[0];
    let first = &q.buckets[0].figures;
    assert_eq!(q.buckets[0].start, t(0));
    assert_eq!(q.buckets[1].start, t(900));
    assert_eq!(
        (
            first.offered,
            first.bridged,
            first.abandoned,
            first.within_target
        ),
        (3, 2, 1, 1)
    );
    // 30 s and 180 s waits: one below 60 s, one below 300 s.
    assert_eq!(first.wait_bins, [0, 1, 0, 1, 0, 0, 0]);
    assert_eq!(first.longest_wait_secs, Some(180));
    assert_eq!(first.average_wait_secs, Some(105.0));
    assert_eq!(first.service_level, Some(1.0 / 3.0));
    let second = &q.buckets[1].figures;
    assert_eq!(
        (
            second.callbacks_booked,
            second.callbacks_completed,
            second.callbacks_failed,
            second.callbacks_open
        ),
        (3, 1, 1, 1)
    );
    assert_eq!(second.wait_bins[WAIT_BINS.len()], 0, "1000 s is below 3600");
    assert_eq!(second.wait_bins[5], 1);
    assert_eq!(
        q.totals.offered, 6,
        "the other queue and the late one are not counted"
    );
    assert_eq!(s.totals, q.totals);
}

#[test]
fn labels_say_how_it_ended_or_stands() {
    let c = closed(arrived(1, "support", 0), CloseReason::Abandoned);
    assert_eq!(outcome(&c, None).label(), "abandoned");
    assert_eq!(outcome(&c, Some(5)).label(), "answered");
    let cb = callback(arrived(2, "support", 0));
    assert_eq!(outcome(&cb, None).label(), "callback_pending");
    assert_eq!(outcome(&cb, Some(5)).label(), "called_back");
    assert_eq!(outcome(&arrived(3, "support", 0), None).label(), "waiting");
}

#[test]
fn bucket_counts_round_up() {
    let m = Duration::from_secs(900);
    assert_eq!(buckets_in(t(0), t(900), m), 1);
    assert_eq!(buckets_in(t(0), t(901), m), 2);
    assert_eq!(buckets_in(t(0), t(0), m), 1);
    assert_eq!(buckets_in(t(0), t(86_400), m), 96);
}
