-- One row that `/healthz` rewrites: proof that the store takes a write now (a database that
-- answers reads may still refuse writes: locked by another process, disk full, read-only).
CREATE TABLE heartbeat (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL
);
