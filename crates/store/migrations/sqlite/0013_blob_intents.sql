-- Blob intents (issue 32): every write to a shared blob store (an object store) names the
-- object it is about to write before its first byte, with the node writing it and, for a
-- multipart upload, the store's upload id. The writing node refreshes `heartbeat`; the sweep
-- deletes no object a live intent names, and aborts the multipart uploads of dead ones, so it
-- never races a slow upload on another node. `completed` is when the object became whole: its
-- row commits right after, and the sweep removes an intent whose blob a row names; one that
-- completed long ago and was never named (a commit cut short) protects its object no more.
CREATE TABLE blob_intents (
    object_key TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    upload_id TEXT,
    heartbeat BIGINT NOT NULL,
    completed BIGINT
);
CREATE INDEX blob_intents_node ON blob_intents (node);
