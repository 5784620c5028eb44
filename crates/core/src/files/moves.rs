//! Deleting, moving and copying files and folders (`Tree`), each checked by the one decision.

use cells_store::{NewNode, Node, NodeId};

use super::path::TreePath;
use super::{Entry, Tree, require};
use crate::auth::permission::{Access, Decision};
use crate::auth::principal::Principal;
use crate::error::{Error, Result};

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
        let blobs = self.store.delete_subtree(located.node().id).await?;
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
        let (target_parent, existing) = self.locate_for_write(principal, to).await?;
        if existing.is_some() {
            return Err(Error::AlreadyExists(to.to_string()));
        }
        if target_parent.chain.iter().any(|n| n.id == source.node().id) {
            return Err(Error::invalid("target", format!("{to} is inside {from}")));
        }
        let name = to.name().expect("not a root");
        let node = self
            .store
            .move_node(source.node().id, target_parent.node().id, name)
            .await?;
        let mut entry = Entry {
            path: to.clone(),
            node,
        };
        self.settle(&mut entry).await?;
        Ok(entry)
    }

    /// Copy a file or a folder with everything below it to `to`, which must not exist. The
    /// copies are new nodes (new UUIDs) with their own blobs; the caller must be allowed to
    /// read all of the source (seeing it is not enough) and to write where it goes.
    pub async fn copy(&self, principal: &Principal, from: &TreePath, to: &TreePath) -> Result<Entry> {
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
        if existing.is_some() {
            return Err(Error::AlreadyExists(to.to_string()));
        }
        if target_parent.chain.iter().any(|n| n.id == source.node().id) {
            return Err(Error::invalid("target", format!("{to} is inside {from}")));
        }
        let name = to.name().expect("not a root");
        let mut created = Vec::new();
        let outcome = self
            .copy_node(source.node(), target_parent.node().id, name, &mut created)
            .await;
        match outcome {
            Ok(node) => {
                let mut entry = Entry {
                    path: to.clone(),
                    node,
                };
                self.settle(&mut entry).await?;
                Ok(entry)
            }
            Err(error) => {
                // Leave nothing half-copied behind.
                if let Some(top) = created.first()
                    && let Ok(blobs) = self.store.delete_subtree(*top).await
                {
                    self.forget_blobs(blobs).await;
                }
                Err(error)
            }
        }
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
