-- Groups of users, workspaces defined by administrators with rights per user, group or every
-- user, and optional quotas (bytes; NULL: none) on a user's personal files and on a workspace.
CREATE TABLE user_groups (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE group_members (
    group_id  TEXT NOT NULL REFERENCES user_groups(id) ON DELETE CASCADE,
    user_id   TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id);

-- A workspace's files hang below the root node named `root_key` (`nodes`, parent NULL).
CREATE TABLE workspaces (
    id           TEXT PRIMARY KEY,
    slug         TEXT NOT NULL UNIQUE,
    label        TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    root_key     TEXT NOT NULL UNIQUE,
    quota        BIGINT,
    created_at   BIGINT NOT NULL
);

-- Who may use a workspace: one user, one group, or (both NULL) every user.
CREATE TABLE workspace_grants (
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    user_id       TEXT REFERENCES users(id) ON DELETE CASCADE,
    group_id      TEXT REFERENCES user_groups(id) ON DELETE CASCADE,
    can_read      BIGINT NOT NULL,
    can_write     BIGINT NOT NULL,
    CHECK (user_id IS NULL OR group_id IS NULL)
);
CREATE UNIQUE INDEX workspace_grants_grantee
    ON workspace_grants (workspace_id, COALESCE(user_id, ''), COALESCE(group_id, ''));
CREATE INDEX workspace_grants_user ON workspace_grants (user_id);
CREATE INDEX workspace_grants_group ON workspace_grants (group_id);

ALTER TABLE users ADD COLUMN quota BIGINT;

-- Space promised to writes in progress (any node) whose size was known when they started,
-- counted against the quota of the root they write into until they commit or expire.
CREATE TABLE quota_reservations (
    id          TEXT PRIMARY KEY,
    root_id     TEXT NOT NULL,
    bytes       BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX quota_reservations_root ON quota_reservations (root_id);

-- `common-files` becomes an ordinary workspace, on the same root (no UUID changes), granted
-- read and write to every user as before.
INSERT INTO workspaces (id, slug, label, description, root_key, quota, created_at)
    VALUES ('00000000-0000-4000-8000-00000000c0f1', 'common-files', 'Common Files',
            'Files shared by every user', 'common-files', NULL, 0);
INSERT INTO workspace_grants (workspace_id, user_id, group_id, can_read, can_write)
    VALUES ('00000000-0000-4000-8000-00000000c0f1', NULL, NULL, 1, 1);
