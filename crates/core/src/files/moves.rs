//! Deleting, moving and copying files and folders (`Tree`), each checked by the one decision.

use cells_store::{NewNode, Node, NodeId};

use super::path::TreePath;
use super::{Entry, Tree, require};
use crate::auth::permission::{Access, Decision};
use crate::auth::principal::Principal;
use crate::error::{Error, Result};
use crate::locks::Change;

/// The root under which folder copies are built (`Tree::copy`); no path reaches it.
const STAGING_ROOT_KEY: &str = "staging";

/// A folder copy being built in staging: removed when dropped before it was moved into place
/// (an error, or the request dropped because its client gave up).
struct Staged {
    tree: Tree,
    /// Nodes made so far, the top one first; cleared once in place.
    created: Vec<NodeId>,
}

impl Drop for Staged {
    fn drop(&mut self) {
        let Some(top) = self.created.first().copied() else {
            return;
        };
        let tree = self.tree.clone();
        // Dropped futures cannot wait: the removal runs on its own (or, with the runtime
        // gone, with the next sweep).
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            match tree.store.delete_subtree(top).await {
                Ok(blobs) => tree.forget_blobs(blobs).await,
                Err(error) => tracing::warn!(%error, "a cut folder copy stays in staging until the sweep"),
            }
        });
    }
}

impl Tree {
    /// Delete a file or a folder with everything below it.
    pub async fn delete(&self, principal: &Principal, path: &TreePath) -> Result<Entry> {
        if path.is_root() {
            return Err(Error::Forbidden(format!(
                "{path} is a workspace and cannot be deleted"
            )));
        }
        let located = self.locate(principal, path).await?;
        require(
            self.decide(principal, &located, Access::Write),
            path,
            Access::Write,
        )?;
        self.check_locks(principal, path, Change::Membership).await?;
        let id = located.node().id;
        let blobs = match self.store.delete_subtree(id).await {
            // A full disk leaves SQLite no room for its log: give it the space kept back for
            // this (`space`), once, and delete again.
            Err(error) if error.is_disk_full() && self.space.as_ref().is_some_and(|s| s.release()) => {
                self.store.delete_subtree(id).await?
            }
            other => other?,
        };
        self.forget_blobs(blobs).await;
        Ok(located.entry())
    }

    /// Rename and/or move `from` to `to`. The node keeps its UUID. `to` must not exist.
    pub async fn rename(&self, principal: &Principal, from: &TreePath, to: &TreePath) -> Result<Entry> {
        if from.is_root() || to.is_root() {
            return Err(Error::Forbidden("workspaces cannot be renamed or moved".into()));
        }
        let source = self.locate(principal, from).await?;
        require(
            self.decide(principal, &source, Access::Write),
            from,
            Access::Write,
        )?;
        self.check_locks(principal, from, Change::Membership).await?;
        let (target_parent, existing) = self.locate_for_write(principal, to).await?;
        if existing.is_some() {
            return Err(Error::AlreadyExists(to.to_string()));
        }
        if target_parent.chain.iter().any(|n| n.id == source.node().id) {
            return Err(Error::invalid("target", format!("{to} is inside {from}")));
        }
        let name = to.name().expect("not a root");
        let same_root = source.chain[0].id == target_parent.chain[0].id;
        // Out of its root, a file is read by whoever moved it (into their personal files,
        // say): a move there needs the right to read all of it, as a copy does, so that a
        // drop box or a write-only scope cannot take out what it may not read.
        if !same_root && self.decide(principal, &source, Access::Read) != Decision::Allow {
            return Err(Error::Forbidden(format!(
                "this credential may not read all of {from}, so it may not move it elsewhere"
            )));
        }
        // A move into another root (another workspace, or personal files) brings its bytes
        // to that root's quota.
        let hold = if same_root {
            Default::default()
        } else {
            let bytes = self.bytes_below(source.node()).await?;
            self.hold(&target_parent.chain[0], to, bytes).await?
        };
        let moved = self
            .store
            .move_node(source.node().id, target_parent.node().id, name)
            .await;
        self.release(hold).await;
        let mut entry = Entry {
            path: to.clone(),
            node: moved?,
        };
        self.settle(&mut entry).await?;
        Ok(entry)
    }

    /// Copy a file or a folder with everything below it to `to`, which must not exist. The
    /// copies are new nodes (new UUIDs) with their own blobs; the caller must be allowed to
    /// read all of the source (seeing it is not enough) and to write where it goes.
    pub async fn copy(&self, principal: &Principal, from: &TreePath, to: &TreePath) -> Result<Entry> {
        self.copy_over(principal, from, to, false)
            .await
            .map(|(entry, _)| entry)
    }

    /// `copy`, replacing what is at `to` when `replace` (WebDAV's `Overwrite: T`): the copy is
    /// complete before the old `to` goes. Returns whether something was replaced.
    pub async fn copy_over(
        &self,
        principal: &Principal,
        from: &TreePath,
        to: &TreePath,
        replace: bool,
    ) -> Result<(Entry, bool)> {
        if to.is_root() {
            return Err(Error::Conflict(format!("{to} is a workspace")));
        }
        let source = self.locate(principal, from).await?;
        let decision = self.decide(principal, &source, Access::Read);
        if decision != Decision::Allow {
            require(decision, from, Access::Read)?;
            return Err(Error::Forbidden(format!(
                "this credential may not read all of {from}"
            )));
        }
        let (target_parent, existing) = self.locate_for_write(principal, to).await?;
        match &existing {
            Some(_) if !replace => return Err(Error::AlreadyExists(to.to_string())),
            // Replacing removes the name's current holder: a change of membership.
            Some(_) => self.check_locks(principal, to, Change::Membership).await?,
            None => {}
        }
        if target_parent.chain.iter().any(|n| n.id == source.node().id) {
            return Err(Error::invalid("target", format!("{to} is inside {from}")));
        }
        self.check_space()?;
        // The copy's bytes, less what it replaces, held in the target root's quota until the
        // copy is in place.
        let mut growth = self.bytes_below(source.node()).await?;
        if let Some(old) = &existing {
            growth = growth.saturating_sub(self.bytes_below(old).await?);
        }
        let hold = self.hold(&target_parent.chain[0], to, growth).await?;
        let copied = self
            .copy_in_place(source.node(), &target_parent, existing, to)
            .await;
        self.release(hold).await;
        copied
    }

    /// The copy of `copy_over`, once checked.
    async fn copy_in_place(
        &self,
        source: &Node,
        target_parent: &super::Located,
        existing: Option<Node>,
        to: &TreePath,
    ) -> Result<(Entry, bool)> {
        let name = to.name().expect("not a root");
        let replaced = existing.is_some();
        let remove_existing = || async {
            if let Some(old) = &existing {
                let blobs = self.store.delete_subtree(old.id).await?;
                self.forget_blobs(blobs).await;
            }
            Ok::<(), Error>(())
        };
        if !source.is_collection() {
            // One file: one row, in place at once.
            remove_existing().await?;
            let mut created = Vec::new();
            let node = self
                .copy_node(source, target_parent.node().id, name, &mut created)
                .await?;
            return Ok((self.copied(to, node).await?, replaced));
        }
        // A folder is copied under a staging root no path reaches, then moved into place in
        // one statement: readers see the whole copy or nothing, and a copy cut short (an
        // error, a client that gave up, a crash) leaves nothing at the target, so that a retry
        // works. What it left in staging goes at once (`Staged`), or with the sweep.
        let staging = self.store.ensure_root(STAGING_ROOT_KEY, None).await?;
        let mut staged = Staged {
            tree: self.clone(),
            created: Vec::new(),
        };
        // When it was staged, for the sweep: `<unix seconds>-<uuid>`.
        let staged_name = format!("{}-{}", cells_store::now(), uuid::Uuid::new_v4());
        let top = self
            .copy_node(source, staging.id, &staged_name, &mut staged.created)
            .await?;
        remove_existing().await?;
        let node = match self.store.move_node(top.id, target_parent.node().id, name).await {
            Ok(node) => node,
            Err(cells_store::StoreError::Conflict(_)) => return Err(Error::AlreadyExists(to.to_string())),
            Err(other) => return Err(other.into()),
        };
        staged.created.clear();
        Ok((self.copied(to, node).await?, replaced))
    }

    async fn copied(&self, to: &TreePath, node: Node) -> Result<Entry> {
        let mut entry = Entry {
            path: to.clone(),
            node,
        };
        self.settle(&mut entry).await?;
        Ok(entry)
    }

    /// Remove what copies cut short left in staging (`copy`): everything there when `before`
    /// is `None` (a single process at start-up), else what was staged before it (unix seconds).
    pub async fn sweep_staging(&self, before: Option<i64>) -> Result<usize> {
        let Some(staging) = self.store.find_root(STAGING_ROOT_KEY).await? else {
            return Ok(0);
        };
        let mut removed = 0;
        for child in self.store.list_children(staging.id).await? {
            let staged_at = child
                .name
                .split_once('-')
                .and_then(|(seconds, _)| seconds.parse::<i64>().ok())
                .unwrap_or(0);
            if before.is_none_or(|before| staged_at < before) {
                let blobs = self.store.delete_subtree(child.id).await?;
                self.forget_blobs(blobs).await;
                removed += 1;
            }
        }
        Ok(removed)
    }

    async fn copy_node(
        &self,
        source: &Node,
        parent: NodeId,
        name: &str,
        created: &mut Vec<NodeId>,
    ) -> Result<Node> {
        let content = match &source.blob_id {
            Some(_) => Some(self.copy_content(source).await?),
            None => None,
        };
        let node = self
            .store
            .create_node(NewNode {
                parent_id: parent,
                name,
                kind: source.kind,
                size: source.size,
                etag: &source.etag,
                blob_id: content.as_ref().map(|c| c.id.as_str()),
                mtime: source.mtime,
                meta: source.meta.as_deref(),
                data: content.as_ref().and_then(|c| c.inline.as_deref()),
            })
            .await;
        let node = match node {
            Ok(node) => node,
            Err(error) => {
                self.forget_blobs(content.into_iter().map(|c| c.id).collect())
                    .await;
                return Err(error.into());
            }
        };
        created.push(node.id);
        // A copy of a file whose ETag is still pending gets one the same way (a copied blob
        // is a new id).
        if let Some(copied) = content
            .as_ref()
            .filter(|c| c.inline.is_none() && source.etag.is_empty())
        {
            self.etags.queue(node.id, &copied.id);
        }
        if source.is_collection() {
            for child in self.store.list_children(source.id).await? {
                Box::pin(self.copy_node(&child, node.id, &child.name, created)).await?;
            }
        }
        Ok(node)
    }
}
