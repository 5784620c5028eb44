-- OpenID Connect provider: signing keys, clients, login sessions, grants, authorization codes,
-- refresh tokens and consents. Codes and refresh tokens are stored as SHA-256 hashes only.
CREATE TABLE signing_keys (
    kid             TEXT PRIMARY KEY,
    alg             TEXT NOT NULL,
    private_sealed  TEXT NOT NULL,
    public_jwk      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    retired_at      BIGINT,
    expires_at      BIGINT
);

CREATE TABLE oauth_clients (
    client_id                   TEXT PRIMARY KEY,
    client_name                 TEXT NOT NULL DEFAULT '',
    secret_hash                 TEXT,
    redirect_uris               TEXT NOT NULL DEFAULT '',
    grant_types                 TEXT NOT NULL DEFAULT '',
    response_types              TEXT NOT NULL DEFAULT '',
    scope                       TEXT NOT NULL DEFAULT '',
    token_endpoint_auth_method  TEXT NOT NULL,
    id_token_alg                TEXT NOT NULL DEFAULT 'RS256',
    skip_consent                BIGINT NOT NULL DEFAULT 0,
    post_logout_redirect_uris   TEXT NOT NULL DEFAULT '',
    created_at                  BIGINT NOT NULL
);

CREATE TABLE login_sessions (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    auth_time   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE oauth_grants (
    id          TEXT PRIMARY KEY,
    user_id     TEXT REFERENCES users(id) ON DELETE CASCADE,
    client_id   TEXT NOT NULL,
    scope       TEXT NOT NULL,
    session_id  TEXT,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX oauth_grants_revoked ON oauth_grants (revoked_at);
CREATE INDEX oauth_grants_session ON oauth_grants (session_id);

CREATE TABLE oauth_codes (
    code_hash       TEXT PRIMARY KEY,
    grant_id        TEXT NOT NULL REFERENCES oauth_grants(id) ON DELETE CASCADE,
    client_id       TEXT NOT NULL,
    redirect_uri    TEXT NOT NULL,
    code_challenge  TEXT,
    nonce           TEXT,
    scope           TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    auth_time       BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    used_at         BIGINT
);

CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    grant_id    TEXT NOT NULL REFERENCES oauth_grants(id) ON DELETE CASCADE,
    client_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    scope       TEXT NOT NULL,
    auth_time   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    rotated_at  BIGINT
);

CREATE TABLE consents (
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id   TEXT NOT NULL,
    scope       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id, scope)
);

-- Device authorization (RFC 8628): the device polls with device_code, the user approves the
-- user_code in a browser. status: pending, approved, denied, used.
CREATE TABLE device_codes (
    device_code_hash  TEXT PRIMARY KEY,
    user_code         TEXT NOT NULL UNIQUE,
    client_id         TEXT NOT NULL,
    scope             TEXT NOT NULL,
    expires_at        BIGINT NOT NULL,
    interval_seconds  BIGINT NOT NULL,
    last_poll_at      BIGINT,
    status            TEXT NOT NULL,
    user_id           TEXT REFERENCES users(id) ON DELETE CASCADE,
    auth_time         BIGINT,
    created_at        BIGINT NOT NULL
);

-- WebDAV dead properties (RFC 4918 §4): stored per node, so they follow renames and moves.
CREATE TABLE dead_props (
    node_id    TEXT NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    namespace  TEXT NOT NULL,
    name       TEXT NOT NULL,
    prefix     TEXT,
    xml        TEXT NOT NULL,
    PRIMARY KEY (node_id, namespace, name)
);
