//! Reading a stored interaction back, the same from every connection (sqlx's SQLite and
//! PostgreSQL rows, rusqlite's): both schemas store times as microseconds since the epoch and
//! every integer as a 64-bit one, so one mapping serves them all.

use jiff::Timestamp;

use super::Error;
use crate::interaction::{
    Callback, CloseReason, CommunicationType, Interaction, Leg, Status, SubType,
};

pub(crate) fn us(t: Timestamp) -> i64 {
    t.as_microsecond()
}

pub(crate) fn ts(v: i64, column: &'static str) -> Result<Timestamp, Error> {
    Timestamp::from_microsecond(v).map_err(|_| Error::Corrupt {
        column,
        value: v.to_string(),
    })
}

/// A result row, from whichever connection.
pub(crate) trait Columns {
    fn int(&self, column: &'static str) -> Result<Option<i64>, Error>;
    fn text(&self, column: &'static str) -> Result<Option<String>, Error>;

    /// A column that must not be NULL.
    fn int_not_null(&self, column: &'static str) -> Result<i64, Error> {
        self.int(column)?.ok_or_else(|| null(column))
    }

    /// A column that must not be NULL.
    fn text_not_null(&self, column: &'static str) -> Result<String, Error> {
        self.text(column)?.ok_or_else(|| null(column))
    }
}

fn null(column: &'static str) -> Error {
    Error::Corrupt {
        column,
        value: "NULL".into(),
    }
}

pub(crate) fn parse<T>(
    r: &impl Columns,
    column: &'static str,
    f: fn(&str) -> Option<T>,
) -> Result<T, Error> {
    let s = r.text_not_null(column)?;
    f(&s).ok_or(Error::Corrupt { column, value: s })
}

fn parse_opt<T>(
    r: &impl Columns,
    column: &'static str,
    f: fn(&str) -> Option<T>,
) -> Result<Option<T>, Error> {
    r.text(column)?
        .map(|s| f(&s).ok_or(Error::Corrupt { column, value: s }))
        .transpose()
}

/// The interaction in `r` (the columns of `base_cols!`) and its version.
pub(crate) fn row_to_interaction(r: &impl Columns) -> Result<(Interaction, i64), Error> {
    let callback = match r.text("callback_number")? {
        Some(number) => Some(Callback {
            number,
            attempts: u32::try_from(r.int_not_null("callback_attempts")?).unwrap_or(0),
            not_before: r
                .int("callback_not_before")?
                .map(|v| ts(v, "callback_not_before"))
                .transpose()?,
            requested_at: r
                .int("callback_requested_at")?
                .map(|v| ts(v, "callback_requested_at"))
                .transpose()?,
        }),
        None => None,
    };
    let i = Interaction {
        id: r.int_not_null("id")?,
        queue: r.text_not_null("queue")?,
        status: parse(r, "status", Status::parse)?,
        communication_type: parse(r, "communication_type", CommunicationType::parse)?,
        sub_type: parse(r, "sub_type", SubType::parse)?,
        customer_number: r.text_not_null("customer_number")?,
        created_at: ts(r.int_not_null("created_at")?, "created_at")?,
        updated_at: ts(r.int_not_null("updated_at")?, "updated_at")?,
        assigned_agent: r.text("assigned_agent")?,
        callback,
        leg: parse_opt(r, "leg", Leg::parse)?,
        close_reason: parse_opt(r, "close_reason", CloseReason::parse)?,
        disposition: r.text("disposition")?,
        voicemail_path: r.text("voicemail_path")?.map(std::path::PathBuf::from),
    };
    Ok((i, r.int_not_null("version")?))
}
