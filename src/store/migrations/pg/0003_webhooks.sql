-- Webhook delivery (issue 17): how far each configured webhook has got through the event log
-- (see ../0004_webhooks.sql). Shared by the instances: whichever delivers moves it.
CREATE TABLE webhook_cursors (
    webhook    TEXT PRIMARY KEY,
    last_event BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
