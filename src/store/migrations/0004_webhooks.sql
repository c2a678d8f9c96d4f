-- Webhook delivery (issue 17): how far each configured webhook has got through the event log.
-- The event log is the outbox (every lifecycle change is written there in the transaction
-- that makes it); a webhook's cursor moves past an event once it was delivered, or given up on
-- after its retries, so a restart resumes where delivery stood.
CREATE TABLE webhook_cursors (
    webhook    TEXT PRIMARY KEY,
    last_event INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
