-- Personal and document access tokens. Only a SHA-256 of the secret part is kept.
CREATE TABLE tokens (
    id                  TEXT PRIMARY KEY,
    user_id             TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind                TEXT NOT NULL,
    label               TEXT NOT NULL DEFAULT '',
    secret_hash         TEXT NOT NULL,
    scopes              TEXT NOT NULL DEFAULT '',
    auto_refresh        BIGINT NOT NULL DEFAULT 0,
    expires_at          BIGINT NOT NULL,
    max_expires_at      BIGINT,
    created_at          BIGINT NOT NULL,
    created_by          TEXT NOT NULL,
    last_used_at        BIGINT,
    last_used_protocol  TEXT,
    last_used_address   TEXT
);
CREATE INDEX tokens_user ON tokens (user_id);
CREATE INDEX tokens_expires ON tokens (expires_at);
