//! WebDAV locks as every node keeps them (RFC 4918 §6): live locks read per user, a new lock
//! checked against the live ones and taken in one turn of the store, refreshed, released,
//! and broken by an administrator (console, command line). The WebDAV adapter speaks the
//! protocol; this is where the locks are kept.

use cells_store::{Store, StoredLock};

use crate::App;
use crate::error::Result;

/// The lock table of one server's database.
#[derive(Clone)]
pub struct Locks {
    store: Store,
}

impl App {
    pub fn locks(&self) -> Locks {
        Locks {
            store: self.store.clone(),
        }
    }
}

impl Locks {
    /// Every live lock, oldest first (the console's and the command line's lists).
    pub async fn all_live(&self) -> Result<Vec<StoredLock>> {
        Ok(self.store.all_live_dav_locks().await?)
    }

    /// The live locks a request of `user` can meet: theirs in personal files, and all in
    /// common files.
    pub async fn live(&self, user: &str) -> Result<Vec<StoredLock>> {
        Ok(self.store.live_dav_locks(user).await?)
    }

    /// Take `lock` unless `conflict` finds one among the live locks that forbids it (returned
    /// as `Err`): checked and written in one turn, so two nodes never grant conflicting locks.
    pub async fn add(
        &self,
        user: &str,
        lock: &StoredLock,
        conflict: impl FnOnce(&[StoredLock]) -> Option<StoredLock>,
    ) -> Result<Option<StoredLock>> {
        Ok(self.store.add_dav_lock(user, lock, conflict).await?)
    }

    /// A new timeout for lock `token`; `None` when it is gone.
    pub async fn refresh(
        &self,
        token: &str,
        timeout_seconds: Option<i64>,
        expires_at: Option<i64>,
    ) -> Result<Option<StoredLock>> {
        Ok(self
            .store
            .refresh_dav_lock(token, timeout_seconds, expires_at)
            .await?)
    }

    /// Release (or break) these locks.
    pub async fn delete(&self, tokens: &[String]) -> Result<()> {
        Ok(self.store.delete_dav_locks(tokens).await?)
    }
}

/// What a request that changes the tree shows of the WebDAV locks it holds.
#[derive(Clone, Debug, Default)]
pub enum LockProof {
    /// Being the lock's owner is enough: for protocols that cannot name a lock token (S3,
    /// SFTP, the console), and for WebDAV, whose adapter has already checked the `If` header
    /// against the token and its owner (RFC 4918 §10.4).
    #[default]
    Owner,
    /// The owner must also name the lock's token: REST, which carries it in an `If` header.
    Tokens(std::sync::Arc<[String]>),
}

/// What a change does to the path it names (RFC 4918 §7.4, §9.6–9.9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Replaces the content or properties of an existing resource: a lock on it, or a deep
    /// lock above it, is in the way.
    Content,
    /// Adds, removes or replaces the name itself (create, delete, move from or to): a lock on
    /// it, on anything below it, on its parent collection (a collection's lock, of any depth,
    /// protects its membership) or a deep lock further up is in the way.
    Membership,
}

/// A stored lock path (URL-encoded, workspace first) as decoded segments.
pub fn lock_segments(path: &str) -> Vec<Vec<u8>> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(crate::files::path::percent_decode)
        .collect()
}

/// The first lock among `live` (all in the target's namespace) that is in the way of `change`
/// at `target` for the user `login` showing `proof`. An exclusive lock must be held by the
/// caller; of shared locks, holding one is enough (RFC 4918 §6.2).
pub fn in_the_way<'a>(
    live: &'a [StoredLock],
    target: &[Vec<u8>],
    change: Change,
    login: &str,
    proof: &LockProof,
) -> Option<&'a StoredLock> {
    let holds = |lock: &StoredLock| {
        lock.principal.as_deref() == Some(login)
            && match proof {
                LockProof::Owner => true,
                LockProof::Tokens(tokens) => tokens.contains(&lock.token),
            }
    };
    let mut first_shared = None;
    let mut holds_shared = false;
    for lock in live {
        let segs = lock_segments(&lock.path);
        let reaches = if target.starts_with(&segs) {
            segs.len() == target.len()
                || lock.deep
                || (change == Change::Membership && segs.len() + 1 == target.len())
        } else {
            change == Change::Membership && segs.starts_with(target)
        };
        if !reaches {
            continue;
        }
        match (lock.shared, holds(lock)) {
            (false, false) => return Some(lock),
            (true, true) => holds_shared = true,
            (true, false) => {
                first_shared.get_or_insert(lock);
            }
            (false, true) => {}
        }
    }
    first_shared.filter(|_| !holds_shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(path: &str, principal: &str, shared: bool, deep: bool, token: &str) -> StoredLock {
        StoredLock {
            token: token.into(),
            namespace: String::new(),
            path: path.into(),
            principal: Some(principal.into()),
            owner: None,
            timeout_seconds: Some(60),
            expires_at: None,
            shared,
            deep,
            created_at: 0,
        }
    }

    fn segs(path: &str) -> Vec<Vec<u8>> {
        lock_segments(path)
    }

    #[test]
    fn a_lock_binds_everyone_but_its_owner() {
        let live = [lock("/common-files/a%20b.txt", "alice", false, false, "t1")];
        let target = segs("/common-files/a b.txt");
        for change in [Change::Content, Change::Membership] {
            assert!(in_the_way(&live, &target, change, "bob", &LockProof::Owner).is_some());
            assert!(in_the_way(&live, &target, change, "alice", &LockProof::Owner).is_none());
        }
        // On REST the owner names the token too.
        let none = LockProof::Tokens(Vec::new().into());
        let wrong = LockProof::Tokens(vec!["t2".to_string()].into());
        let right = LockProof::Tokens(vec!["t1".to_string()].into());
        assert!(in_the_way(&live, &target, Change::Content, "alice", &none).is_some());
        assert!(in_the_way(&live, &target, Change::Content, "alice", &wrong).is_some());
        assert!(in_the_way(&live, &target, Change::Content, "alice", &right).is_none());
        // Somebody else's request naming the token does not hold it.
        assert!(in_the_way(&live, &target, Change::Content, "bob", &right).is_some());
        // A sibling is free.
        let sibling = segs("/common-files/c.txt");
        assert!(in_the_way(&live, &sibling, Change::Membership, "bob", &LockProof::Owner).is_none());
    }

    #[test]
    fn depth_decides_what_a_folder_lock_covers() {
        let deep = [lock("/common-files/f", "alice", false, true, "t1")];
        let shallow = [lock("/common-files/f", "alice", false, false, "t1")];
        let child = segs("/common-files/f/x.txt");
        let grandchild = segs("/common-files/f/g/x.txt");
        let parent = segs("/common-files");
        let owner = LockProof::Owner;
        // Deep: everything below, content and names.
        assert!(in_the_way(&deep, &grandchild, Change::Content, "bob", &owner).is_some());
        assert!(in_the_way(&deep, &child, Change::Membership, "bob", &owner).is_some());
        // Shallow: the folder's own members (names), not their content.
        assert!(in_the_way(&shallow, &child, Change::Membership, "bob", &owner).is_some());
        assert!(in_the_way(&shallow, &child, Change::Content, "bob", &owner).is_none());
        assert!(in_the_way(&shallow, &grandchild, Change::Membership, "bob", &owner).is_none());
        // Removing or moving the parent meets the lock below it; writing to it does not.
        assert!(in_the_way(&shallow, &parent, Change::Membership, "bob", &owner).is_some());
        assert!(in_the_way(&shallow, &parent, Change::Content, "bob", &owner).is_none());
    }

    #[test]
    fn holding_one_shared_lock_is_enough() {
        let live = [
            lock("/common-files/s", "alice", true, false, "t1"),
            lock("/common-files/s", "carol", true, false, "t2"),
        ];
        let target = segs("/common-files/s");
        let owner = LockProof::Owner;
        assert!(in_the_way(&live, &target, Change::Content, "alice", &owner).is_none());
        assert!(in_the_way(&live, &target, Change::Content, "bob", &owner).is_some());
    }
}
