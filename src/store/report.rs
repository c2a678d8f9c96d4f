//! What reports read from the store (`GET /api/v1/stats`, the CSV export, the wallboard's
//! charts): the interactions that arrived in a time window, each with the two feed times its
//! outcome needs (when it was first bridged, when it closed). One query for both backends; only
//! the placeholders differ. The figures themselves are computed from these rows in
//! [`crate::interaction`]-level pure code (`api::stats`), so the JSON, the CSV and the charts
//! cannot disagree.
//!
//! The rows are chosen by arrival (`created_at` in `[from, to)`): an interval report by
//! arrival, as contact centres read them (an interaction counts in the interval it arrived in,
//! with its outcome so far). The statuses and queues are spelled out in the `WHERE` so both
//! databases can walk the `(queue, status, created_at, id)` index rather than the table.

use jiff::Timestamp;

use super::Error;
use super::row::{Columns, row_to_interaction, ts, us};
use crate::interaction::{Interaction, InteractionId};

/// Most rows one [`crate::store::InteractionStore::report`] call returns; page with
/// [`ReportQuery::after`].
pub const MAX_REPORT_PAGE: u32 = 5_000;

/// The window and queues of a report page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportQuery {
    /// The queues (an empty list matches nothing).
    pub queues: Vec<String>,
    /// Arrivals from this time on…
    pub from: Timestamp,
    /// …and before this one.
    pub to: Timestamp,
    /// Continue after this (arrival, id) (the last row of the previous page).
    pub after: Option<(Timestamp, InteractionId)>,
    /// Page size, capped at [`MAX_REPORT_PAGE`].
    pub limit: u32,
}

/// One interaction as reports see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRow {
    /// The interaction as stored now.
    pub interaction: Interaction,
    /// When caller (or customer) and agent were first bridged: answered.
    pub bridged_at: Option<Timestamp>,
    /// When it closed.
    pub closed_at: Option<Timestamp>,
}

/// The report query with `queues` placeholders for the queue list, the window and the
/// cursor, numbered by `param` (`?` for SQLite, `$n` for PostgreSQL).
pub(crate) fn sql(queues: usize, cursor: bool, mut param: impl FnMut() -> String) -> String {
    let list: Vec<String> = (0..queues).map(|_| param()).collect();
    let mut sql = format!(
        concat!(
            "SELECT ",
            base_cols!(),
            "(SELECT MIN(f.at) FROM feed f WHERE f.interaction_id = i.id AND f.kind = 'bridged') \
             AS bridged_at, \
             (SELECT MAX(f.at) FROM feed f WHERE f.interaction_id = i.id AND f.kind = 'closed') \
             AS closed_at \
             FROM interactions i WHERE i.queue IN ({}) \
             AND i.status IN ('open', 'bot', 'connected', 'closed') \
             AND i.created_at >= {} AND i.created_at < {}"
        ),
        list.join(", "),
        param(),
        param()
    );
    if cursor {
        let (a, b, c) = (param(), param(), param());
        sql.push_str(&format!(
            " AND (i.created_at > {a} OR (i.created_at = {b} AND i.id > {c}))"
        ));
    }
    sql.push_str(&format!(" ORDER BY i.created_at, i.id LIMIT {}", param()));
    sql
}

/// The values bound to [`sql`]'s placeholders after the queues, in order.
pub(crate) fn binds(q: &ReportQuery) -> Vec<i64> {
    let mut v = vec![us(q.from), us(q.to)];
    if let Some((at, id)) = q.after {
        v.extend([us(at), us(at), id]);
    }
    v.push(i64::from(q.limit.clamp(1, MAX_REPORT_PAGE)));
    v
}

/// A row of [`sql`].
pub(crate) fn row(r: &impl Columns) -> Result<ReportRow, Error> {
    let (interaction, _) = row_to_interaction(r)?;
    Ok(ReportRow {
        interaction,
        bridged_at: r
            .int("bridged_at")?
            .map(|v| ts(v, "bridged_at"))
            .transpose()?,
        closed_at: r
            .int("closed_at")?
            .map(|v| ts(v, "closed_at"))
            .transpose()?,
    })
}
