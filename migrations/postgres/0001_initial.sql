-- Gatecast runtime state: destinations, virtual keys, config version, audit log.

CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE config_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO config_version (id, version) VALUES (1, 0);

CREATE TABLE destinations (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    type          TEXT NOT NULL,
    config        JSONB NOT NULL,
    enabled       BOOLEAN NOT NULL DEFAULT TRUE,
    privacy_mode  BOOLEAN NOT NULL DEFAULT FALSE,
    sampling_rate DOUBLE PRECISION NOT NULL DEFAULT 1.0,
    filters       JSONB NOT NULL,
    source        TEXT NOT NULL CHECK (source IN ('file', 'api')),
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE virtual_keys (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    key_hash   TEXT NOT NULL UNIQUE,
    prefix     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
-- Unique among active keys only, so a revoked key's name can be reused when rotating.
CREATE UNIQUE INDEX virtual_keys_active_name ON virtual_keys (name) WHERE revoked_at IS NULL;

CREATE TABLE audit_log (
    id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at     TIMESTAMPTZ NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail JSONB NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at DESC);
