-- A file committed before its MD5 was computed has etag '' until the server's ETag worker
-- (or the first reader who needs it) fills it in; this index finds them at start-up.
CREATE INDEX nodes_pending_etag ON nodes (id) WHERE kind = 'LEAF' AND etag = '';
