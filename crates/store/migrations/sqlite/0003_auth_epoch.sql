-- A counter bumped, in the same transaction, by every change that can end a credential's
-- validity (revocation, lock, deletion, password or profile change, failed login). Servers
-- poll it to know when their credential caches must be dropped.
CREATE TABLE auth_epoch (
    id     BIGINT PRIMARY KEY,
    value  BIGINT NOT NULL
);
INSERT INTO auth_epoch (id, value) VALUES (1, 0);
