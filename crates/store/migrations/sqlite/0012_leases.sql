-- Leases: background work that must run once across the nodes sharing this database (issue
-- 31: the sweep of a blob store, one sweeper per store). A lease is held by one node until
-- it expires; another node takes it only then.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
