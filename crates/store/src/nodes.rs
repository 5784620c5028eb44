//! The file tree: nodes with a stable UUID, a parent and a name, under workspace roots.
//!
//! A root is a node without parent; its name is its key (`common-files`, or `personal:<user id>`
//! with `owner_id` set). Rename and move change `parent_id`/`name` only, so a node's UUID never
//! changes. Names are unique per parent (exact bytes, no case folding); the caller validates them.

use crate::ids::{NodeId, UserId};
use bytes::Bytes;
use sqlx::FromRow;

use crate::{Result, Returned, Store, StoreError, now, on_conflict};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Collection,
    Leaf,
}

impl NodeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Collection => "COLLECTION",
            NodeKind::Leaf => "LEAF",
        }
    }
}

#[derive(Debug, Clone, FromRow)]
struct NodeRow {
    id: String,
    parent_id: Option<String>,
    name: String,
    kind: String,
    size: i64,
    mtime: i64,
    etag: String,
    blob_id: Option<String>,
    owner_id: Option<String>,
    meta: Option<String>,
    /// Selected by single-node lookups only (see `Node::data`).
    #[sqlx(default)]
    data: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: NodeId,
    pub parent_id: Option<NodeId>,
    pub name: String,
    pub kind: NodeKind,
    pub size: i64,
    pub mtime: i64,
    pub etag: String,
    pub blob_id: Option<String>,
    /// Set on personal roots only.
    pub owner_id: Option<UserId>,
    /// A file's content metadata (S3 `Content-Type`, `x-amz-meta-*`) as JSON, when given.
    pub meta: Option<String>,
    /// A small file's content, kept in its row instead of a blob, when the query that found
    /// the node read it: `walk` does (one trip for the path and the bytes of a small file);
    /// `walk_to_write`, listings and writes do not (`find_data` reads it then).
    pub data: Option<Bytes>,
}

impl Node {
    pub fn is_collection(&self) -> bool {
        self.kind == NodeKind::Collection
    }
}

impl TryFrom<NodeRow> for Node {
    type Error = StoreError;
    fn try_from(row: NodeRow) -> Result<Node> {
        let corrupt = |what: &str| {
            StoreError::Database(sqlx::Error::Decode(
                format!("nodes.{what} of {} is invalid", row.id).into(),
            ))
        };
        let node = |text: &str, what: &str| NodeId::parse(text).ok_or_else(|| corrupt(what));
        Ok(Node {
            id: node(&row.id, "id")?,
            parent_id: row
                .parent_id
                .as_deref()
                .map(|p| node(p, "parent_id"))
                .transpose()?,
            owner_id: row
                .owner_id
                .as_deref()
                .map(|o| UserId::parse(o).ok_or_else(|| corrupt("owner_id")))
                .transpose()?,
            kind: match row.kind.as_str() {
                "COLLECTION" => NodeKind::Collection,
                "LEAF" => NodeKind::Leaf,
                _ => return Err(corrupt("kind")),
            },
            name: row.name,
            size: row.size,
            mtime: row.mtime,
            etag: row.etag,
            blob_id: row.blob_id,
            meta: row.meta,
            data: row.data.map(Bytes::from),
        })
    }
}

pub struct NewNode<'a> {
    pub parent_id: NodeId,
    pub name: &'a str,
    pub kind: NodeKind,
    pub size: i64,
    pub etag: &'a str,
    pub blob_id: Option<&'a str>,
    pub mtime: i64,
    pub meta: Option<&'a str>,
    /// The content itself, for a small file kept in its row.
    pub data: Option<&'a [u8]>,
}

/// New content for an existing file.
#[derive(Debug, Clone, Copy)]
pub struct Content<'a> {
    pub blob_id: &'a str,
    pub size: i64,
    pub etag: &'a str,
    pub mtime: i64,
    pub meta: Option<&'a str>,
    /// The content itself, for a small file kept in its row; `None` clears what it had.
    pub data: Option<&'a [u8]>,
}

const COLUMNS: &str = "id, parent_id, name, kind, size, mtime, etag, blob_id, owner_id, meta";

/// `COLUMNS` of the `nodes` table in a query that joins others.
fn qualified_columns() -> String {
    COLUMNS
        .split(", ")
        .map(|c| format!("nodes.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The ids of a node and of everything below it.
const SUBTREE: &str = "WITH RECURSIVE sub(id) AS (SELECT id FROM nodes WHERE id = $1 \
                       UNION ALL SELECT n.id FROM nodes n JOIN sub ON n.parent_id = sub.id)";

/// A row of `qualified_columns()` (then `data` if `with_data`) read by `local_reads`.
fn local_row(row: &rusqlite::Row<'_>, with_data: bool) -> rusqlite::Result<NodeRow> {
    Ok(NodeRow {
        id: row.get(0)?,
        parent_id: row.get(1)?,
        name: row.get(2)?,
        kind: row.get(3)?,
        size: row.get(4)?,
        mtime: row.get(5)?,
        etag: row.get(6)?,
        blob_id: row.get(7)?,
        owner_id: row.get(8)?,
        meta: row.get(9)?,
        data: if with_data { row.get(10)? } else { None },
    })
}

fn convert(rows: Vec<NodeRow>) -> Result<Vec<Node>> {
    rows.into_iter().map(Node::try_from).collect()
}

impl Store {
    /// The root named `key`, created on first use.
    pub async fn ensure_root(&self, key: &str, owner: Option<UserId>) -> Result<Node> {
        if let Some(root) = self.find_root(key).await? {
            return Ok(root);
        }
        let inserted = sqlx::query(
            "INSERT INTO nodes (id, parent_id, name, kind, size, mtime, etag, owner_id, created_at) \
             VALUES ($1, NULL, $2, 'COLLECTION', 0, $3, '', $4, $3)",
        )
        .bind(NodeId::random().to_string())
        .bind(key)
        .bind(now())
        .bind(owner.map(|o| o.to_string()))
        .execute(self.pool())
        .await
        .map_err(on_conflict);
        // Another process may have created it between our read and our insert.
        match inserted {
            Ok(_) | Err(StoreError::Conflict(_)) => {}
            Err(other) => return Err(other),
        }
        self.find_root(key).await?.ok_or(StoreError::NotFound)
    }

    pub async fn find_root(&self, key: &str) -> Result<Option<Node>> {
        let row: Option<NodeRow> = sqlx::query_as(sql!(
            "SELECT {COLUMNS} FROM nodes WHERE parent_id IS NULL AND name = $1"
        ))
        .bind(key)
        .fetch_optional(self.pool())
        .await?;
        row.map(Node::try_from).transpose()
    }

    pub async fn find_node(&self, id: NodeId) -> Result<Option<Node>> {
        let row: Option<NodeRow> = sqlx::query_as(sql!("SELECT {COLUMNS} FROM nodes WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await?;
        row.map(Node::try_from).transpose()
    }

    /// Walk `names` down from `root`. Returns the nodes found, root first; the walk stops at the
    /// first missing name, so a result shorter than `names.len() + 1` means "not found there".
    pub async fn walk(&self, root: &Node, names: &[&str]) -> Result<Vec<Node>> {
        self.walk_reading(root, names, true).await
    }

    /// `walk` without the content kept in the rows (`Node::data` stays `None`), for a writer
    /// that is about to replace it.
    pub async fn walk_to_write(&self, root: &Node, names: &[&str]) -> Result<Vec<Node>> {
        self.walk_reading(root, names, false).await
    }

    async fn walk_reading(&self, root: &Node, names: &[&str], with_data: bool) -> Result<Vec<Node>> {
        let mut chain = Vec::with_capacity(names.len() + 1);
        chain.push(root.clone());
        if names.is_empty() {
            return Ok(chain);
        }
        // One round trip for the whole path: the wanted names by depth, followed from the
        // root as far as they exist.
        let wanted = (0..names.len())
            .map(|i| format!("({}, CAST(${} AS TEXT))", i + 1, i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        let query = format!(
            "WITH RECURSIVE wanted(depth, name) AS (VALUES {wanted}), \
             walk(depth, id) AS ( \
                SELECT 0, CAST($1 AS TEXT) \
                UNION ALL SELECT walk.depth + 1, nodes.id FROM walk \
                JOIN wanted ON wanted.depth = walk.depth + 1 \
                JOIN nodes ON nodes.parent_id = walk.id AND nodes.name = wanted.name) \
             SELECT {}{} FROM walk JOIN nodes ON nodes.id = walk.id \
             WHERE walk.depth > 0 ORDER BY walk.depth",
            qualified_columns(),
            if with_data { ", nodes.data" } else { "" }
        );
        let root_id = root.id.to_string();
        let local = self.local.as_ref().and_then(|local| {
            local.read(|connection| {
                // `?N` is SQLite's numbered parameter; `$N` would be a name, numbered in the
                // order of appearance.
                let mut statement = connection.prepare_cached(&query.replace('$', "?"))?;
                let values = std::iter::once(root_id.as_str()).chain(names.iter().copied());
                let rows = statement.query_map(rusqlite::params_from_iter(values), |row| {
                    local_row(row, with_data)
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
        });
        let rows = match local {
            Some(rows) => rows,
            None => {
                let mut statement = sqlx::query_as::<_, NodeRow>(sqlx::AssertSqlSafe(query)).bind(root_id);
                for name in names {
                    statement = statement.bind(*name);
                }
                statement.fetch_all(self.pool()).await?
            }
        };
        for row in rows {
            chain.push(row.try_into()?);
        }
        Ok(chain)
    }

    /// The node and its ancestors, root first; empty when the node does not exist.
    pub async fn ancestry(&self, id: NodeId) -> Result<Vec<Node>> {
        let rows: Vec<NodeRow> = sqlx::query_as(sql!(
            "WITH RECURSIVE up(id, parent_id, depth) AS ( \
                SELECT id, parent_id, 0 FROM nodes WHERE id = $1 \
                UNION ALL SELECT n.id, n.parent_id, up.depth + 1 FROM nodes n \
                JOIN up ON n.id = up.parent_id) \
             SELECT {} FROM nodes JOIN up ON nodes.id = up.id ORDER BY up.depth DESC",
            qualified_columns()
        ))
        .bind(id.to_string())
        .fetch_all(self.pool())
        .await?;
        convert(rows)
    }

    pub async fn list_children(&self, parent: NodeId) -> Result<Vec<Node>> {
        let mut nodes = self
            .nodes_as_json("FROM nodes WHERE parent_id = $1", parent)
            .await?;
        nodes.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        Ok(nodes)
    }

    /// Every node below `id` (not `id` itself), in no particular order: one query for a
    /// recursive listing.
    pub async fn list_subtree(&self, id: NodeId) -> Result<Vec<Node>> {
        self.nodes_as_json(
            &format!("{SUBTREE} SELECT {{}} FROM nodes WHERE id IN (SELECT id FROM sub) AND id <> $1"),
            id,
        )
        .await
    }

    /// The nodes a listing query selects, fetched as one JSON array in one row: a folder of
    /// 10,000 files costs one row through the driver instead of 10,000 (each row crosses
    /// threads in sqlx's SQLite driver). `from` is the query after its select list, or a whole
    /// query with `{}` where the select list goes; `$1` is `id`.
    async fn nodes_as_json(&self, from: &str, id: NodeId) -> Result<Vec<Node>> {
        let fields = qualified_columns();
        // The one difference between the backends here: the names of the JSON functions.
        let select = match self.backend() {
            crate::Backend::Sqlite => format!("json_group_array(json_array({fields}))"),
            crate::Backend::Postgres => format!("CAST(json_agg(json_build_array({fields})) AS TEXT)"),
        };
        let query = if from.contains("{}") {
            from.replacen("{}", &select, 1)
        } else {
            format!("SELECT {select} {from}")
        };
        let (json,): (Option<String>,) = sqlx::query_as(sqlx::AssertSqlSafe(query))
            .bind(id.to_string())
            .fetch_one(self.pool())
            .await?;
        let Some(json) = json else {
            return Ok(Vec::new()); // PostgreSQL aggregates no row to NULL
        };
        type Fields = (
            String,
            Option<String>,
            String,
            String,
            i64,
            i64,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<Fields> = serde_json::from_str(&json)
            .map_err(|e| StoreError::Database(sqlx::Error::Decode(format!("a node listing: {e}").into())))?;
        rows.into_iter()
            .map(
                |(id, parent_id, name, kind, size, mtime, etag, blob_id, owner_id, meta)| {
                    Node::try_from(NodeRow {
                        id,
                        parent_id,
                        name,
                        kind,
                        size,
                        mtime,
                        etag,
                        blob_id,
                        owner_id,
                        meta,
                        data: None,
                    })
                },
            )
            .collect()
    }

    /// Insert a node; `Conflict` when the parent already has a child of that name.
    pub async fn create_node(&self, new: NewNode<'_>) -> Result<Node> {
        let (parent_id, name, kind) = (new.parent_id.to_string(), new.name.to_string(), new.kind);
        let (size, mtime, etag) = (new.size, new.mtime, new.etag.to_string());
        let (blob_id, meta) = (new.blob_id.map(str::to_string), new.meta.map(str::to_string));
        let data = new.data.map(<[u8]>::to_vec);
        let row: NodeRow = self
            .group_write(move |conn| {
                Box::pin(async move {
                    sqlx::query_as(sql!(
                        "INSERT INTO nodes (id, parent_id, name, kind, size, mtime, etag, blob_id, \
                         owner_id, created_at, meta, data) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9, $10, $11) RETURNING {COLUMNS}"
                    ))
                    .bind(NodeId::random().to_string())
                    .bind(parent_id)
                    .bind(name)
                    .bind(kind.as_str())
                    .bind(size)
                    .bind(mtime)
                    .bind(etag)
                    .bind(blob_id)
                    .bind(now())
                    .bind(meta)
                    .bind(data)
                    .fetch_all(conn)
                    .await
                    .map_err(on_conflict)?
                    .row()
                })
            })
            .await?;
        row.try_into()
    }

    /// `replace_content` in one statement, when the file still holds `expected` (the blob the
    /// caller read): `None` when it no longer does (moved on, deleted, or a folder now), and
    /// the caller then takes the transactional way.
    pub async fn replace_content_if(
        &self,
        id: NodeId,
        expected: &str,
        content: Content<'_>,
    ) -> Result<Option<Node>> {
        let (blob_id, size, etag) = (
            content.blob_id.to_string(),
            content.size,
            content.etag.to_string(),
        );
        let (mtime, meta, expected) = (
            content.mtime,
            content.meta.map(str::to_string),
            expected.to_string(),
        );
        let data = content.data.map(<[u8]>::to_vec);
        let row: Option<NodeRow> = self
            .group_write(move |conn| {
                Box::pin(async move {
                    let row = sqlx::query_as(sql!(
                        "UPDATE nodes SET blob_id = $2, size = $3, etag = $4, mtime = $5, meta = $6, \
                         data = $8 WHERE id = $1 AND kind = 'LEAF' AND blob_id = $7 RETURNING {COLUMNS}"
                    ))
                    .bind(id.to_string())
                    .bind(blob_id)
                    .bind(size)
                    .bind(etag)
                    .bind(mtime)
                    .bind(meta)
                    .bind(expected)
                    .bind(data)
                    .fetch_all(conn)
                    .await?
                    .optional_row();
                    Ok(row)
                })
            })
            .await?;
        row.map(Node::try_from).transpose()
    }

    /// Point an existing file at new content (and its metadata, `None` clearing the old).
    /// Returns the updated node and the blob it replaced (to delete after the commit).
    /// `NotFound` if the node is gone or is a folder.
    pub async fn replace_content(&self, id: NodeId, content: Content<'_>) -> Result<(Node, Option<String>)> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool().begin().await?;
        // A write first, so SQLite takes the write lock now (waiting its turn) rather than
        // failing with BUSY when this read transaction writes below; on PostgreSQL it locks
        // the row. It changes nothing, so it returns the blob being replaced.
        let old: Option<(Option<String>,)> = sqlx::query_as(
            "UPDATE nodes SET mtime = mtime WHERE id = $1 AND kind = 'LEAF' RETURNING blob_id",
        )
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let Some((old_blob,)) = old else {
            return Err(StoreError::NotFound);
        };
        let row: NodeRow = sqlx::query_as(sql!(
            "UPDATE nodes SET blob_id = $2, size = $3, etag = $4, mtime = $5, meta = $6, data = $7 \
             WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(id.to_string())
        .bind(content.blob_id)
        .bind(content.size)
        .bind(content.etag)
        .bind(content.mtime)
        .bind(content.meta)
        .bind(content.data)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((row.try_into()?, old_blob))
    }

    /// The content kept in the row of file `id`, while its content is still `blob_id` (the
    /// one the caller saw): `None` once it has changed, or when it is a blob's.
    pub async fn find_data(&self, id: NodeId, blob_id: &str) -> Result<Option<Bytes>> {
        let row: Option<(Option<Vec<u8>>,)> =
            sqlx::query_as("SELECT data FROM nodes WHERE id = $1 AND blob_id = $2")
                .bind(id.to_string())
                .bind(blob_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.and_then(|(data,)| data).map(Bytes::from))
    }

    /// Move and/or rename a node. The caller makes sure `new_parent` is not inside the node.
    pub async fn move_node(&self, id: NodeId, new_parent: NodeId, new_name: &str) -> Result<Node> {
        let _turn = self.write_turn().await;
        let row: Option<NodeRow> = sqlx::query_as(sql!(
            "UPDATE nodes SET parent_id = $2, name = $3 WHERE id = $1 AND parent_id IS NOT NULL \
             RETURNING {COLUMNS}"
        ))
        .bind(id.to_string())
        .bind(new_parent.to_string())
        .bind(new_name)
        .fetch_all(self.pool())
        .await
        .map_err(on_conflict)?
        .optional_row();
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// Set a node's modification time (seconds).
    pub async fn set_mtime(&self, id: NodeId, mtime: i64) -> Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query("UPDATE nodes SET mtime = $2 WHERE id = $1")
            .bind(id.to_string())
            .bind(mtime)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Files whose MD5 ETag is still to compute (etag `''`, see `set_etag`), with their blob.
    pub async fn pending_etags(&self) -> Result<Vec<(NodeId, String)>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, blob_id FROM nodes WHERE kind = 'LEAF' AND etag = '' AND blob_id IS NOT NULL",
        )
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|(id, blob)| {
                let id = NodeId::parse(&id).ok_or_else(|| {
                    StoreError::Database(sqlx::Error::Decode(format!("nodes.id {id} is invalid").into()))
                })?;
                Ok((id, blob))
            })
            .collect()
    }

    /// Record the MD5 ETag of file `id`, committed without one (etag `''`), if it still holds
    /// `blob_id`: content written since has its own. Returns whether the row changed.
    pub async fn set_etag(&self, id: NodeId, blob_id: &str, etag: &str) -> Result<bool> {
        let _turn = self.write_turn().await;
        let done = sqlx::query(
            "UPDATE nodes SET etag = $3 WHERE id = $1 AND kind = 'LEAF' AND blob_id = $2 AND etag = ''",
        )
        .bind(id.to_string())
        .bind(blob_id)
        .bind(etag)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Delete a node and everything below it. Returns the blob ids they referenced, for the
    /// caller to remove after the commit. Roots cannot be deleted this way.
    pub async fn delete_subtree(&self, id: NodeId) -> Result<Vec<String>> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool().begin().await?;
        // Write lock first (see `replace_content`).
        sqlx::query("UPDATE nodes SET mtime = mtime WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        let blobs: Vec<(String,)> = sqlx::query_as(sql!(
            "{SUBTREE} SELECT blob_id FROM nodes WHERE id IN (SELECT id FROM sub) \
             AND blob_id IS NOT NULL"
        ))
        .bind(id.to_string())
        .fetch_all(&mut *tx)
        .await?;
        let is_inner: Option<(i64,)> =
            sqlx::query_as("SELECT 1 FROM nodes WHERE id = $1 AND parent_id IS NOT NULL")
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        if is_inner.is_none() {
            return Err(StoreError::NotFound);
        }
        sqlx::query(sql!(
            "DELETE FROM nodes WHERE id IN ({SUBTREE} SELECT id FROM sub)"
        ))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(blobs.into_iter().map(|(blob,)| blob).collect())
    }

    /// Delete file `id` if it still holds `blob_id`: a placeholder nobody wrote to since it
    /// was made. Returns whether it went.
    pub async fn delete_leaf_if(&self, id: NodeId, blob_id: &str) -> Result<bool> {
        let _turn = self.write_turn().await;
        let done = sqlx::query("DELETE FROM nodes WHERE id = $1 AND kind = 'LEAF' AND blob_id = $2")
            .bind(id.to_string())
            .bind(blob_id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Total size of the files below a node (the node included).
    pub async fn subtree_size(&self, id: NodeId) -> Result<i64> {
        // SUM of BIGINT is NUMERIC on PostgreSQL: cast back for one decoder on both backends.
        let (total,): (i64,) = sqlx::query_as(sql!(
            "{SUBTREE} SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM nodes \
             WHERE id IN (SELECT id FROM sub) AND kind = 'LEAF'"
        ))
        .bind(id.to_string())
        .fetch_one(self.pool())
        .await?;
        Ok(total)
    }

    /// Every blob id a node or an S3 upload part refers to: what the blob store must keep
    /// (a node whose content is in its row refers to no blob).
    pub async fn referenced_blobs(&self) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT blob_id FROM nodes WHERE blob_id IS NOT NULL AND data IS NULL \
             UNION ALL SELECT blob_id FROM s3_parts",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|(blob,)| blob).collect())
    }
}
