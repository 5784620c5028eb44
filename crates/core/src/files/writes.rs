//! Writing a file: whole content from a stream, a blob written beforehand, or an empty file
//! made in place. Every write locates its parent and checks the right to write once, and
//! commits in one statement, so readers see the old content or the new, never a part.

use bytes::Bytes;
use cells_store::{Content, NewNode, Node, NodeId, NodeKind, Store, StoreError};

use super::blob::{ByteStream, Md5When, WrittenBlob};
use super::path::TreePath;
use super::quota::Hold;
use super::{Entry, Located, Tree, Write, inline, require};
use crate::auth::permission::{Access, decide};
use crate::auth::principal::Principal;
use crate::error::{Error, Result};
use crate::locks::Change;

impl Tree {
    /// Write a file's whole content from `body`, atomically: readers see the old content
    /// until the new one is complete and durable. The node keeps its UUID when overwritten.
    pub async fn put(&self, principal: &Principal, path: &TreePath, body: ByteStream) -> Result<Entry> {
        self.write(principal, path, body, &Write::default()).await
    }

    /// `put` with the options of object protocols (S3): metadata, and missing parent folders
    /// created on the way (S3 keys have no folders to create first).
    pub async fn write(
        &self,
        principal: &Principal,
        path: &TreePath,
        body: ByteStream,
        options: &Write<'_>,
    ) -> Result<Entry> {
        let (parent, existing) = self.locate_for_write_creating(principal, path, options).await?;
        self.write_located(path, parent, existing, body, options).await
    }

    /// Write the whole content of node `id`, a file opened for writing at `opened` (SFTP's
    /// CLOSE): where it is now, if it was renamed meanwhile. `None` when it was deleted (what
    /// was written goes, as with POSIX's unlinked files).
    pub async fn write_node(
        &self,
        principal: &Principal,
        opened: &TreePath,
        id: NodeId,
        body: ByteStream,
        options: &Write<'_>,
    ) -> Result<Option<Entry>> {
        let Some((path, parent, node)) = self.locate_node_for_write(principal, opened, id).await? else {
            return Ok(None);
        };
        self.write_located(&path, parent, Some(node), body, options)
            .await
            .map(Some)
    }

    /// `commit_blob` for node `id` opened at `opened` (see `write_node`); the blob is deleted
    /// when the node is gone.
    pub async fn commit_blob_to_node(
        &self,
        principal: &Principal,
        opened: &TreePath,
        id: NodeId,
        written: WrittenBlob,
        options: &Write<'_>,
    ) -> Result<Option<Entry>> {
        let located = match self.locate_node_for_write(principal, opened, id).await {
            Ok(Some(found)) => found,
            other => {
                self.forget_blobs(vec![written.id]).await;
                return other.map(|_| None);
            }
        };
        let (path, parent, node) = located;
        self.commit_written(
            &path,
            &parent,
            Some(node),
            written,
            None,
            options,
            Hold::default(),
        )
        .await
        .map(Some)
    }

    /// Where node `id`, opened at `opened`, is now, checked for writing: its path, its parent
    /// and itself. One walk when it is still there (the usual case); found by its id when it
    /// was renamed; `None` when it was deleted.
    async fn locate_node_for_write(
        &self,
        principal: &Principal,
        opened: &TreePath,
        id: NodeId,
    ) -> Result<Option<(TreePath, Located, Node)>> {
        match self.locate_for_write(principal, opened).await {
            Ok((parent, Some(node))) if node.id == id => return Ok(Some((opened.clone(), parent, node))),
            Ok(_) | Err(Error::ParentMissing(_) | Error::NotFound(_)) => {}
            Err(other) => return Err(other),
        }
        let path = match self.stat_by_id(principal, id).await {
            Ok(entry) => entry.path,
            Err(Error::NotFound(_)) => return Ok(None),
            Err(other) => return Err(other),
        };
        match self.locate_for_write(principal, &path).await? {
            (parent, Some(node)) if node.id == id => Ok(Some((path, parent, node))),
            // Moved again in between: as good as gone for this handle.
            _ => Ok(None),
        }
    }

    async fn write_located(
        &self,
        path: &TreePath,
        parent: Located,
        existing: Option<Node>,
        body: ByteStream,
        options: &Write<'_>,
    ) -> Result<Entry> {
        self.check_space()?;
        // A size known before the first byte is held in the quota now: an upload that cannot
        // fit is refused before it is sent.
        let held = match options.size {
            Some(size) => {
                self.hold(
                    &parent.chain[0],
                    path,
                    size.saturating_sub(size_of(existing.as_ref())),
                )
                .await?
            }
            None => Hold::default(),
        };
        let written = match self.receive(body, options).await {
            Ok(written) => written,
            Err(error) => {
                self.release(held).await;
                return Err(error);
            }
        };
        self.commit_written(path, &parent, existing, written, None, options, held)
            .await
    }

    /// The whole body, as a blob (or a row's bytes when small), its MD5 checked if expected.
    async fn receive(&self, body: ByteStream, options: &Write<'_>) -> Result<WrittenBlob> {
        let body = self.limited(body);
        let taken = inline::take(body).await.map_err(|e| self.written_error(e))?;
        let written = match taken {
            inline::Body::Small(data) => inline::written(data),
            inline::Body::Large(body) => {
                let md5 = match options.expect_md5 {
                    Some(_) => Md5When::Now,
                    None => options.md5,
                };
                self.blobs
                    .put(body, md5)
                    .await
                    .map_err(|e| self.written_error(e))?
            }
        };
        if let Some(expected) = &options.expect_md5
            && !expected.eq_ignore_ascii_case(&written.md5)
        {
            self.forget_blobs(vec![written.id]).await;
            return Err(Error::invalid(
                "Content-MD5",
                "does not match the content received",
            ));
        }
        Ok(written)
    }

    /// Create an empty file at `path` if nothing is there, atomically on every node: the
    /// store's one name per folder decides between concurrent creators, and the loser gets
    /// `AlreadyExists`. What a WebDAV LOCK of an unmapped URL makes (RFC 4918 §7.3) and what
    /// an SFTP open with CREAT makes before its content arrives.
    pub async fn create_empty(&self, principal: &Principal, path: &TreePath) -> Result<Entry> {
        let (parent, existing) = self.locate_for_write(principal, path).await?;
        if existing.is_some() {
            return Err(Error::AlreadyExists(path.to_string()));
        }
        self.check_space()?;
        let name = path.name().expect("checked by locate_for_write");
        let written = inline::written(Bytes::new());
        // Deferred durability (on disk within 50 ms, committed and seen by all at once): an
        // empty name lost to a crash is what the interrupted upload would have left anyway,
        // and a durable commit here would double the fsyncs of every new SFTP file.
        let created = self
            .store
            .deferred()
            .create_node(NewNode {
                parent_id: parent.node().id,
                name,
                kind: NodeKind::Leaf,
                size: 0,
                etag: &written.md5,
                blob_id: Some(&written.id),
                mtime: cells_store::now(),
                meta: None,
                data: written.inline.as_deref(),
            })
            .await;
        match created {
            Ok(node) => Ok(Entry {
                path: path.clone(),
                node,
            }),
            Err(StoreError::Conflict(_)) => Err(Error::AlreadyExists(path.to_string())),
            Err(other) => Err(other.into()),
        }
    }

    /// Remove a file made by `create_empty` if it is still that empty file (nobody wrote to
    /// it since): what an SFTP upload that never reached CLOSE leaves behind. Returns whether
    /// it went.
    pub async fn discard_created(&self, created: &Entry) -> Result<bool> {
        let Some(blob) = created.node.blob_id.as_deref() else {
            return Ok(false);
        };
        Ok(self.store.delete_leaf_if(created.node.id, blob).await?)
    }

    /// Commit a blob written beforehand (an S3 multipart upload's concatenated parts, a copy)
    /// as the content of `path`, with `etag` instead of the blob's MD5 when given. The blob is
    /// deleted if the commit fails.
    pub async fn commit_blob(
        &self,
        principal: &Principal,
        path: &TreePath,
        written: WrittenBlob,
        etag: Option<&str>,
        options: &Write<'_>,
    ) -> Result<Entry> {
        let located = self.locate_for_write_creating(principal, path, options).await;
        let (parent, existing) = match located {
            Ok(found) => found,
            Err(error) => {
                self.forget_blobs(vec![written.id]).await;
                return Err(error);
            }
        };
        self.commit_written(path, &parent, existing, written, etag, options, Hold::default())
            .await
    }

    pub(super) async fn locate_for_write_creating(
        &self,
        principal: &Principal,
        path: &TreePath,
        options: &Write<'_>,
    ) -> Result<(Located, Option<Node>)> {
        let located = match self.locate_for_write(principal, path).await {
            Err(Error::ParentMissing(_)) if options.create_parents => {
                let parent = path.parent().expect("a named path has a parent");
                self.create_folder(principal, &parent, true).await?;
                self.locate_for_write(principal, path).await?
            }
            other => other?,
        };
        if let Some(existing) = &located.1
            && existing.is_collection()
        {
            return Err(Error::IsFolder(path.to_string()));
        }
        Ok(located)
    }

    /// Commit `written` at `path`, charged to the quota of its root: `held` covers what it
    /// grows the root by, or the growth is held now (refused, the blob goes).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn commit_written(
        &self,
        path: &TreePath,
        parent: &Located,
        existing: Option<Node>,
        written: WrittenBlob,
        etag: Option<&str>,
        options: &Write<'_>,
        held: Hold,
    ) -> Result<Entry> {
        if let Err(error) = self.check_file_size(written.size) {
            self.release(held).await;
            self.forget_blobs(vec![written.id]).await;
            return Err(error);
        }
        let growth = written.size.saturating_sub(size_of(existing.as_ref()));
        let hold = if held.covers(growth) {
            held
        } else {
            self.release(held).await;
            match self.hold(&parent.chain[0], path, growth).await {
                Ok(hold) => hold,
                Err(error) => {
                    self.forget_blobs(vec![written.id]).await;
                    return Err(error);
                }
            }
        };
        let mut hold = hold;
        let committed = self
            .commit_written_held(path, parent, existing, written, etag, options, &mut hold)
            .await;
        self.release(hold).await;
        committed
    }

    #[allow(clippy::too_many_arguments)]
    async fn commit_written_held(
        &self,
        path: &TreePath,
        parent: &Located,
        existing: Option<Node>,
        written: WrittenBlob,
        etag: Option<&str>,
        options: &Write<'_>,
        hold: &mut Hold,
    ) -> Result<Entry> {
        let store = match written.inline {
            Some(_) if options.deferred => self.store.deferred(),
            _ => self.store.clone(),
        };
        let size = match i64::try_from(written.size) {
            Ok(size) => size,
            Err(error) => {
                self.forget_blobs(vec![written.id]).await;
                return Err(Error::internal(error));
            }
        };
        let content = Content {
            blob_id: &written.id,
            size,
            etag: etag.unwrap_or(&written.md5),
            mtime: cells_store::now(),
            meta: options.meta,
            data: written.inline.as_deref(),
        };
        let committed = self
            .commit_content(&store, path, parent, existing, content, hold)
            .await;
        match &committed {
            Ok(entry) if content.etag.is_empty() && written.inline.is_none() => {
                self.etags.queue(entry.node.id, &written.id);
            }
            Ok(_) => {}
            Err(_) => self.forget_blobs(vec![written.id.clone()]).await,
        }
        committed
    }

    /// Parent of `path` checked for writing, and the node already at `path` if any.
    pub(super) async fn locate_for_write(
        &self,
        principal: &Principal,
        path: &TreePath,
    ) -> Result<(Located, Option<Node>)> {
        if path.is_root() {
            return Err(Error::Conflict(format!("{path} is a workspace, not a file")));
        }
        let parent_path = path.parent().expect("a named path has a parent");
        // One walk down to the file itself: the parent, and whatever is there now.
        let (root, workspace) = self
            .root(principal, &path.workspace)
            .await
            .map_err(|error| match error {
                Error::NotFound(_) => Error::NotFound(format!("{path} does not exist")),
                other => other,
            })?;
        let mut chain = self.store.walk_to_write(&root, &path.name_refs()).await?;
        let existing = if chain.len() == path.names.len() + 1 {
            chain.pop()
        } else {
            None
        };
        if chain.len() != path.names.len() {
            return Err(Error::ParentMissing(parent_path.to_string()));
        }
        let parent = Located {
            workspace,
            path: parent_path.clone(),
            chain,
        };
        match &existing {
            Some(node) => {
                let mut ids = parent.ids();
                ids.push(node.id);
                require(
                    decide(principal, &parent.workspace, &ids, Access::Write),
                    path,
                    Access::Write,
                )?;
                if !parent.node().is_collection() {
                    return Err(Error::Conflict(format!("{parent_path} is a file")));
                }
            }
            None => self.check_parent(principal, &parent)?,
        }
        let change = match existing {
            Some(_) => Change::Content,
            None => Change::Membership,
        };
        self.check_locks(principal, path, change).await?;
        Ok((parent, existing))
    }

    pub(super) async fn commit_content(
        &self,
        store: &Store,
        path: &TreePath,
        parent: &Located,
        existing: Option<Node>,
        content: Content<'_>,
        hold: &mut Hold,
    ) -> Result<Entry> {
        let name = path.name().expect("checked by locate_for_write");
        // The usual overwrite: the file still has the content we saw, swapped in one statement.
        if let Some(node) = &existing
            && let Some(old_blob) = node.blob_id.as_deref()
            && let Some(updated) = store.replace_content_if(node.id, old_blob, content).await?
        {
            self.forget_blobs(vec![old_blob.to_string()]).await;
            return Ok(Entry {
                path: path.clone(),
                node: updated,
            });
        }
        // The file seen when the growth was held changed or went meanwhile: its size no
        // longer offsets this one's, so the whole size is held (a deletion and a new write
        // in between must not let both fit).
        let whole = content.size.max(0) as u64;
        if existing.is_some() && !hold.covers(whole) {
            let more = self.hold(&parent.chain[0], path, whole).await?;
            let held = std::mem::replace(hold, more);
            self.release(held).await;
        }
        let mut target = existing.map(|n| n.id);
        // Two attempts: a concurrent writer may create or delete the node between our look and
        // our write; the second attempt sees what it did.
        for _ in 0..2 {
            match target {
                Some(id) => match store.replace_content(id, content).await {
                    Ok((node, old_blob)) => {
                        self.forget_blobs(old_blob.into_iter().collect()).await;
                        return Ok(Entry {
                            path: path.clone(),
                            node,
                        });
                    }
                    Err(StoreError::NotFound) => target = None,
                    Err(other) => return Err(other.into()),
                },
                None => {
                    let created = store
                        .create_node(NewNode {
                            parent_id: parent.node().id,
                            name,
                            kind: NodeKind::Leaf,
                            size: content.size,
                            etag: content.etag,
                            blob_id: Some(content.blob_id),
                            mtime: content.mtime,
                            meta: content.meta,
                            data: content.data,
                        })
                        .await;
                    match created {
                        Ok(node) => {
                            return Ok(Entry {
                                path: path.clone(),
                                node,
                            });
                        }
                        Err(StoreError::Conflict(_)) => {
                            let again = self.store.walk_to_write(parent.node(), &[name]).await?;
                            match again.get(1) {
                                Some(node) if !node.is_collection() => target = Some(node.id),
                                _ => return Err(Error::IsFolder(path.to_string())),
                            }
                        }
                        Err(other) => return Err(other.into()),
                    }
                }
            }
        }
        Err(Error::Conflict(format!(
            "{path} changed during the upload; retry"
        )))
    }
}

/// The size of the file a write replaces (0: none).
fn size_of(existing: Option<&Node>) -> u64 {
    existing.map_or(0, |node| node.size.max(0) as u64)
}
