//! Quotas on every write path: a write that grows a root (a user's personal files, a
//! workspace) with a quota holds its growth there first (`cells_store::quota`), and gives it
//! back once its rows count it. Whoever writes, the root written into is charged: a
//! workspace's quota for its files, the owner's for personal files.
//!
//! Uploads whose size is known when they start hold it then (`Write::size`), so that an
//! upload that cannot fit is refused before its first byte; the others are checked when they
//! commit, and what they wrote goes.

use cells_store::{Node, OverQuota};

use super::Tree;
use super::path::TreePath;
use crate::error::{Error, Result};

/// How long a hold lasts if its node dies before giving it back (a hold is given back when
/// its write ends in any way, a dropped request included): a crash keeps that space held for
/// at most this long.
const HOLD_SECONDS: i64 = 2 * 3600;

/// Space held below a root for one write; given back by `Tree::release`, or when dropped (a
/// request given up mid-upload), so that a client cannot keep a quota full by cutting its
/// uploads short.
#[derive(Debug, Default)]
pub struct Hold {
    id: Option<String>,
    /// How many bytes are held (0: none, the root has no quota or the write does not grow it).
    bytes: u64,
    /// The root has no quota: any growth is covered.
    unlimited: bool,
    store: Option<cells_store::Store>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        let (Some(id), Some(store)) = (self.id.take(), self.store.take()) else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = store.release_quota(&id).await {
                    tracing::warn!(%error, "could not give back a quota reservation");
                }
            });
        }
    }
}

impl Hold {
    /// Whether a growth of `bytes` is already covered by this hold.
    pub(super) fn covers(&self, bytes: u64) -> bool {
        bytes == 0 || self.unlimited || (self.id.is_some() && bytes <= self.bytes)
    }
}

/// "n bytes" in binary units, for messages.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

impl Tree {
    /// Hold `growth` bytes below `root` (the root of `path`'s workspace) if it has a quota;
    /// `InsufficientStorage` when they do not fit.
    pub(super) async fn hold(&self, root: &Node, path: &TreePath, growth: u64) -> Result<Hold> {
        if growth == 0 {
            return Ok(Hold::default());
        }
        let Some(quota) = self.store.quota_of_root(root).await? else {
            let mut hold = Hold::default();
            hold.unlimited = true;
            return Ok(hold);
        };
        match self
            .store
            .reserve_quota(root.id, quota, growth, HOLD_SECONDS)
            .await?
        {
            Ok(id) => Ok(Hold {
                id: Some(id),
                bytes: growth,
                unlimited: false,
                store: Some(self.store.clone()),
            }),
            Err(OverQuota { quota, used }) => Err(Error::InsufficientStorage(format!(
                "the quota of {} is {}; {} are used and this write needs {} more",
                path.workspace().as_str(),
                size(quota),
                size(used),
                size(growth)
            ))),
        }
    }

    /// Give back what `hold` held (its write committed, or failed).
    pub(super) async fn release(&self, mut hold: Hold) {
        if let Some(id) = hold.id.take()
            && let Err(error) = self.store.release_quota(&id).await
        {
            // It expires on its own; until then it only makes the quota stricter.
            tracing::warn!(%error, "could not give back a quota reservation");
        }
    }

    /// The bytes of files in the subtree of `node` (itself when it is a file).
    pub(super) async fn bytes_below(&self, node: &Node) -> Result<u64> {
        if !node.is_collection() {
            return Ok(node.size.max(0) as u64);
        }
        Ok(self.store.subtree_size(node.id).await?.max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_well() {
        assert_eq!(super::size(512), "512 B");
        assert_eq!(super::size(10 * 1024 * 1024 * 1024), "10.0 GiB");
        assert_eq!(super::size(1536), "1.5 KiB");
    }
}
