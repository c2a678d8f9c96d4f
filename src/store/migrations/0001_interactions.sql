-- Interactions, their feed and the change-event log (SQLite; a PostgreSQL copy follows in pg/).
-- Times are microseconds since the Unix epoch, so ordering is numeric and portable.
CREATE TABLE interactions (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    queue               TEXT    NOT NULL,
    status              TEXT    NOT NULL,
    communication_type  TEXT    NOT NULL,
    sub_type            TEXT    NOT NULL,
    customer_number     TEXT    NOT NULL,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    assigned_agent      TEXT,
    callback_number     TEXT,
    callback_attempts   INTEGER NOT NULL DEFAULT 0,
    callback_not_before INTEGER,
    callback_requested_at INTEGER,
    leg                 TEXT,
    close_reason        TEXT,
    disposition         TEXT,
    version             INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX interactions_queue_status ON interactions (queue, status, created_at, id);
CREATE INDEX interactions_status ON interactions (status, created_at, id);
CREATE INDEX interactions_callback_number ON interactions (callback_number, callback_requested_at);

CREATE TABLE feed (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    interaction_id INTEGER NOT NULL REFERENCES interactions (id),
    at             INTEGER NOT NULL,
    kind           TEXT    NOT NULL,
    text           TEXT    NOT NULL,
    data           TEXT    NOT NULL
);
CREATE INDEX feed_interaction ON feed (interaction_id, id);

CREATE TABLE events (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    interaction_id INTEGER NOT NULL REFERENCES interactions (id),
    queue          TEXT    NOT NULL,
    at             INTEGER NOT NULL,
    kind           TEXT    NOT NULL,
    data           TEXT    NOT NULL
);
