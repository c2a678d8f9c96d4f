-- One rule for callback bookings, per queue and number: at most one pending (not closed)
-- callback (this unique index, so concurrent bookings, or several Hammond instances, cannot both
-- win), and the daily cap counted over the same queue and number (the index below it).
--
-- Databases from before this rule may hold duplicates: the oldest pending callback of each
-- queue and number is kept, the later ones are closed (completed, disposition "duplicate",
-- with a feed entry saying so) so the index can be built.
CREATE TEMP TABLE duplicate_callbacks AS
    SELECT i.id FROM interactions i
    WHERE i.sub_type = 'callback' AND i.status <> 'closed' AND EXISTS (
        SELECT 1 FROM interactions o
        WHERE o.queue = i.queue AND o.callback_number = i.callback_number
          AND o.sub_type = 'callback' AND o.status <> 'closed'
          AND (o.created_at < i.created_at OR (o.created_at = i.created_at AND o.id < i.id)));
INSERT INTO feed (interaction_id, at, kind, text, data)
    SELECT id, updated_at, 'closed',
           'closed: a later duplicate of a pending callback for the same number (upgrade)',
           '{"reason":"completed","from":"' || status || '","disposition":"duplicate"}'
    FROM interactions WHERE id IN (SELECT id FROM duplicate_callbacks);
UPDATE interactions
    SET status = 'closed', close_reason = 'completed', disposition = 'duplicate', leg = NULL,
        version = version + 1
    WHERE id IN (SELECT id FROM duplicate_callbacks);
DROP TABLE duplicate_callbacks;

CREATE UNIQUE INDEX interactions_pending_callback ON interactions (queue, callback_number)
    WHERE sub_type = 'callback' AND status <> 'closed';
DROP INDEX interactions_callback_number;
CREATE INDEX interactions_callback_bookings
    ON interactions (queue, callback_number, callback_requested_at);
