-- Gatecast runtime state: destinations, virtual keys, config version, audit log.
-- Timestamps are RFC 3339 text (what sqlx writes for chrono::DateTime<Utc>).

CREATE TABLE meta (
    name  TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE config_version (
    id      INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO config_version (id, version) VALUES (1, 0);

CREATE TABLE destinations (
    id            TEXT PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL UNIQUE,
    type          TEXT NOT NULL,
    config        TEXT NOT NULL,
    enabled       INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    privacy_mode  INTEGER NOT NULL DEFAULT 0 CHECK (privacy_mode IN (0, 1)),
    sampling_rate REAL NOT NULL DEFAULT 1.0,
    filters       TEXT NOT NULL,
    source        TEXT NOT NULL CHECK (source IN ('file', 'api')),
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

CREATE TABLE virtual_keys (
    id         TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    key_hash   TEXT NOT NULL UNIQUE,
    prefix     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
-- Unique among active keys only, so a revoked key's name can be reused when rotating.
CREATE UNIQUE INDEX virtual_keys_active_name ON virtual_keys (name) WHERE revoked_at IS NULL;

CREATE TABLE audit_log (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     TEXT NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
