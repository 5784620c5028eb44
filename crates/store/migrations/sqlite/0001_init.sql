-- Users, the file tree and server settings. Portable subset: TEXT ids, BIGINT booleans and unix seconds.
CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    login          TEXT NOT NULL UNIQUE,
    display_name   TEXT NOT NULL DEFAULT '',
    email          TEXT NOT NULL DEFAULT '',
    profile        TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    locked         BIGINT NOT NULL DEFAULT 0,
    failed_logins  BIGINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

CREATE TABLE nodes (
    id          TEXT PRIMARY KEY,
    parent_id   TEXT REFERENCES nodes(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    size        BIGINT NOT NULL DEFAULT 0,
    mtime       BIGINT NOT NULL,
    etag        TEXT NOT NULL DEFAULT '',
    blob_id     TEXT,
    owner_id    TEXT REFERENCES users(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX nodes_parent_name ON nodes (parent_id, name);
CREATE UNIQUE INDEX nodes_root_name ON nodes (name) WHERE parent_id IS NULL;
CREATE INDEX nodes_blob ON nodes (blob_id);

CREATE TABLE settings (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
