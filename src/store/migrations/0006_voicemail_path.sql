-- Where a caller's voicemail recording is (written and synced before the interaction says
-- "voicemail"): the audio route (`GET /api/v1/interactions/{id}/voicemail`) serves this file and
-- no other, never a path taken from a request. Voicemails recorded before this column stay
-- NULL: their path is only on the feed, and the route answers 404 for them.
ALTER TABLE interactions ADD COLUMN voicemail_path TEXT;
