//! Dead properties (WebDAV's client-set ones) and modification times of nodes (`Tree`).

use cells_store::{DeadProp, PropChange};

use super::path::TreePath;
use super::{Entry, Tree, require};
use crate::auth::permission::Access;
use crate::auth::principal::Principal;
use crate::error::Result;
use crate::locks::Change;

impl Tree {
    /// The dead (client-set) properties of a node the caller can see.
    pub async fn dead_props(&self, principal: &Principal, path: &TreePath) -> Result<(Entry, Vec<DeadProp>)> {
        let located = self.locate(principal, path).await?;
        require(self.decide(principal, &located, Access::Read), path, Access::Read)?;
        let props = self.store.list_props(located.node().id).await?;
        let mut entry = located.entry();
        self.settle(&mut entry).await?;
        Ok((entry, props))
    }

    /// Set and remove dead properties, all or none.
    pub async fn patch_props(
        &self,
        principal: &Principal,
        path: &TreePath,
        changes: &[PropChange],
    ) -> Result<()> {
        let located = self.locate(principal, path).await?;
        require(
            self.decide(principal, &located, Access::Write),
            path,
            Access::Write,
        )?;
        self.check_locks(principal, path, Change::Content).await?;
        Ok(self.store.patch_props(located.node().id, changes).await?)
    }

    /// Set a file's or folder's modification time.
    pub async fn set_mtime(&self, principal: &Principal, path: &TreePath, mtime: i64) -> Result<()> {
        let located = self.locate(principal, path).await?;
        require(
            self.decide(principal, &located, Access::Write),
            path,
            Access::Write,
        )?;
        self.check_locks(principal, path, Change::Content).await?;
        self.store.set_mtime(located.node().id, mtime).await?;
        Ok(())
    }
}
