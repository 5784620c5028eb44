-- S3 gateway: object metadata, multipart uploads and per-token S3 secrets.

-- Content-Type and x-amz-meta-* of a file, as JSON; NULL when none were given. Any new content
-- (from any protocol) replaces it.
ALTER TABLE nodes ADD COLUMN meta TEXT;

-- A token's own S3 secret access key, sealed with the data directory's master key.
ALTER TABLE tokens ADD COLUMN s3_secret TEXT;

-- An S3 multipart upload in progress. Nothing of it is visible in the tree until it completes.
CREATE TABLE s3_uploads (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    object_key  TEXT NOT NULL,
    meta        TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX s3_uploads_user ON s3_uploads (user_id, object_key);
CREATE INDEX s3_uploads_created ON s3_uploads (created_at);

-- Its parts: each one a blob of its own, concatenated on completion.
CREATE TABLE s3_parts (
    upload_id    TEXT NOT NULL REFERENCES s3_uploads(id) ON DELETE CASCADE,
    part_number  BIGINT NOT NULL,
    blob_id      TEXT NOT NULL,
    size         BIGINT NOT NULL,
    etag         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);
