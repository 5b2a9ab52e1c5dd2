-- Runtime overrides of a config-file destination's switches (NULL: the file's value applies);
-- the start-up sync from the file writes only the plain columns, so they survive restarts.
ALTER TABLE destinations
    ADD COLUMN privacy_mode_override BOOLEAN,
    ADD COLUMN enabled_override BOOLEAN;

-- One row per running gateway: the config version it has applied and when it last said so,
-- so the CLI can tell when a change has reached every replica.
CREATE TABLE replicas (
    id              TEXT PRIMARY KEY,
    applied_version BIGINT NOT NULL,
    started_at      TIMESTAMPTZ NOT NULL,
    last_seen       TIMESTAMPTZ NOT NULL
);
