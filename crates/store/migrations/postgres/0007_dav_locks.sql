-- WebDAV locks (RFC 4918 §6), shared by every node of a cluster.
CREATE TABLE dav_locks (
    token            TEXT PRIMARY KEY,
    -- Whose view of the tree the path is in: a user id for personal files (each user's
    -- /personal-files is their own), '' for the shared common files.
    namespace        TEXT NOT NULL,
    -- The locked resource, URL-encoded, below the /dav prefix.
    path             TEXT NOT NULL,
    principal        TEXT,
    -- The client's DAV:owner element, as XML.
    owner            TEXT,
    -- The timeout the client was granted, in seconds; NULL for Infinite.
    timeout_seconds  BIGINT,
    expires_at       BIGINT,
    shared           BIGINT NOT NULL,
    deep             BIGINT NOT NULL,
    -- Microseconds: the order in which locks were taken.
    created_at       BIGINT NOT NULL
);
CREATE INDEX dav_locks_namespace ON dav_locks (namespace, expires_at);

-- One row that every LOCK updates first, so that taking a lock (check, then insert) runs one
-- at a time across nodes: a write lock on SQLite, a row lock on PostgreSQL.
CREATE TABLE dav_lock_turn (
    id  BIGINT PRIMARY KEY,
    n   BIGINT NOT NULL
);
INSERT INTO dav_lock_turn (id, n) VALUES (1, 0);
