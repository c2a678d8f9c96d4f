-- Where a caller's voicemail recording is (written and synced before the interaction says
-- "voicemail"): the audio route (`GET /api/v1/interactions/{id}/voicemail`) serves this file and
-- no other, never a path taken from a request (SQLite's 0006).
ALTER TABLE interactions ADD COLUMN voicemail_path TEXT;
