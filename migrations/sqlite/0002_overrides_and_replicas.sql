-- Runtime overrides of a config-file destination's switches (NULL: the file's value applies);
-- the start-up sync from the file writes only the plain columns, so they survive restarts.
ALTER TABLE destinations ADD COLUMN privacy_mode_override INTEGER
    CHECK (privacy_mode_override IN (0, 1));
ALTER TABLE destinations ADD COLUMN enabled_override INTEGER
    CHECK (enabled_override IN (0, 1));

-- One row per running gateway: the config version it has applied and when it last said so,
-- so the CLI can tell when a change has reached every replica.
CREATE TABLE replicas (
    id              TEXT PRIMARY KEY NOT NULL,
    applied_version INTEGER NOT NULL,
    started_at      TEXT NOT NULL,
    last_seen       TEXT NOT NULL
);
