-- Small files' content kept in their node row: one durable write (the database's) per small
-- upload instead of a new blob file, its fsync and its folder's. NULL for folders and for
-- files whose content is a blob.
ALTER TABLE nodes ADD COLUMN data BLOB;
