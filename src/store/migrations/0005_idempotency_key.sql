-- The `Idempotency-Key` of a callback requested through the API (`POST /api/v1/callbacks`),
-- scoped by its client (`<client>:<key>`): a request that repeats it gets the interaction the
-- first one created, and nothing is written twice.
ALTER TABLE interactions ADD COLUMN idempotency_key TEXT;
CREATE UNIQUE INDEX interactions_idempotency_key ON interactions (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
