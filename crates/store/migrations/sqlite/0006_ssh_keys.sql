-- SSH public keys users log in to SFTP with, as OpenSSH writes them (`ssh-ed25519 AAAA… comment`).
CREATE TABLE ssh_keys (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- `SHA256:…`, as `ssh-keygen -l` prints it.
    fingerprint  TEXT NOT NULL,
    public_key   TEXT NOT NULL,
    comment      TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    UNIQUE (user_id, fingerprint)
);
