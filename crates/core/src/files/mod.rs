//! The file tree operations every protocol shares: locate, stat, list, create, write, read,
//! move, delete, each checked by `auth::permission::decide` before it happens.
//!
//! Adapters (REST, WebDAV, S3, SFTP) parse their request into a `TreePath` and call these;
//! they never join user input onto a filesystem path and never decide permissions themselves.

pub mod blob;
pub mod etags;
pub mod inline;
mod moves;
pub mod path;
mod props;
pub mod quota;
pub mod space;
mod writes;

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use cells_store::{DeadProp, NewNode, Node, NodeId, NodeKind, Store, StoreError, UserId};

use crate::auth::permission::{Access, Decision, Workspace, decide};
use crate::auth::principal::Principal;
use crate::error::{Error, Result};
use crate::locks::{Change, LockProof, in_the_way};
use blob::{BlobStore, ByteStream, DownloadStream, Draft, Md5When, WrittenBlob};
use path::{TreePath, WorkspaceName};

/// A node as the caller sees it: where it is, and what it is. Made only by `Tree`, which
/// checked that the caller may see it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub(crate) path: TreePath,
    pub(crate) node: Node,
}

impl Entry {
    /// The path the caller reaches it by.
    pub fn path(&self) -> &TreePath {
        &self.path
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    pub fn into_node(self) -> Node {
        self.node
    }

    /// The entry without the content bytes of a small file that its walk brought along, for
    /// a holder that keeps it long (an SFTP handle) and must not keep the bytes with it.
    pub fn without_data(mut self) -> Entry {
        self.node.data = None;
        self
    }
}

/// A path resolved down to an existing node.
struct Located {
    workspace: Workspace,
    path: TreePath,
    /// The nodes from the workspace root down to the target.
    chain: Vec<Node>,
}

impl Located {
    fn node(&self) -> &Node {
        self.chain.last().expect("a chain holds at least the root")
    }

    fn ids(&self) -> Vec<NodeId> {
        self.chain.iter().map(|n| n.id).collect()
    }

    fn entry(&self) -> Entry {
        Entry {
            path: self.path.clone(),
            node: self.node().clone(),
        }
    }
}

/// Options of `Tree::write` and `Tree::commit_blob`.
#[derive(Debug, Default)]
pub struct Write<'a> {
    /// Content metadata to keep with the file (JSON); `None` clears what it had.
    pub meta: Option<&'a str>,
    /// Create missing parent folders instead of refusing with `Conflict`.
    pub create_parents: bool,
    /// Hex MD5 the content must have (S3 `Content-MD5`); a mismatch stores nothing and is
    /// `Invalid` with the field `Content-MD5`.
    pub expect_md5: Option<String>,
    /// Commit a small file (kept in its node's row) with deferred durability
    /// (`Store::deferred`: on disk within 50 ms, not before the call returns). A file with a
    /// blob is committed durably whatever this says: its blob is synced first anyway.
    pub deferred: bool,
    /// When a large body's MD5 is computed (`BlobStore::put`): `Later` commits it with etag
    /// `""`, for `etags` to fill in. Ignored with `expect_md5`, which needs it now.
    pub md5: Md5When,
    /// The body's size when it is known before it arrives (`Content-Length`): held in the
    /// quota before the first byte (`quota`).
    pub size: Option<u64>,
}

#[derive(Clone)]
pub struct Tree {
    store: Store,
    blobs: Arc<dyn BlobStore>,
    etags: Arc<etags::Etags>,
    /// Whether entries handed out have their ETag (`settle`): all but SFTP's, which has no
    /// use for it, and WebDAV's when the request shows or compares none (`without_etags`).
    settle_etags: bool,
    /// Workspace roots by key. A root's id never changes (a personal root goes only with its
    /// user), so resolving a path does not read it again on every request.
    roots: Arc<std::sync::Mutex<std::collections::HashMap<String, Node>>>,
    /// The largest file any write may leave (`max-file-size`), however it is written:
    /// streamed, extended by truncate or a write past the end, concatenated, copied.
    max_file_size: u64,
    /// What the requests through this tree show of the WebDAV locks they hold (`proving`).
    proof: LockProof,
    /// The disk space kept back for deletes (`keep_space`).
    space: Option<Arc<space::Space>>,
    /// Workspaces resolved by this request (`remembering`), by slug.
    resolved: Option<Arc<std::sync::Mutex<Resolved>>>,
}

/// Workspaces a request resolved, by slug: the root and what decides who may use it.
type Resolved = std::collections::HashMap<String, (Node, Workspace)>;

/// Why a body stream was cut: it outgrew `max_file_size` (told apart from other I/O errors).
#[derive(Debug)]
struct FileTooLarge;

impl std::fmt::Display for FileTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the file is larger than the largest allowed")
    }
}

impl std::error::Error for FileTooLarge {}

/// Why a request body stopped before its end: the client closed the connection, stalled past
/// the idle timeout, or sent a malformed chunk. Its fault, answered 400 (issue 31): adapters
/// wrap their body's errors with `body_error`.
#[derive(Debug)]
struct BodyCut(String);

impl std::fmt::Display for BodyCut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the request body was cut short ({})", self.0)
    }
}

impl std::error::Error for BodyCut {}

/// An error of the request body being read, as the `ByteStream` error that `Tree` writes
/// answer `Invalid` (400) instead of an internal error.
pub fn body_error(cause: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, BodyCut(cause.to_string()))
}

/// The root key of a user's personal files.
pub fn personal_root_key(user: UserId) -> String {
    format!("personal:{user}")
}

/// How old a leftover must be before the sweep while serving removes it: a blob is named by
/// its row within seconds of its last write (the database's timeout at most), and what is
/// still being written is registered (`blob::LocalBlobs`) and never removed.
pub const SWEEP_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// How old (seconds) a folder copy left in staging must be before a sweep removes it: a copy
/// in progress on another node is not disturbed, and one cut short on this node went at once.
const STAGING_AGE: i64 = 6 * 3600;

/// How long a node holds a blob store's sweep lease: longer than a sweep takes, so that the
/// node that swept sweeps again next time, and another takes over when it is gone.
const SWEEP_LEASE_SECONDS: i64 = 900;

/// Turn a refusal into the error the caller sees.
fn require(decision: Decision, what: &TreePath, access: Access) -> Result<Decision> {
    match (decision, access) {
        (Decision::Allow, _) | (Decision::Traverse, Access::Read) => Ok(decision),
        (Decision::NotFound, _) => Err(Error::NotFound(format!("{what} does not exist"))),
        _ => Err(Error::Forbidden(format!(
            "this credential may not {} {what}",
            verb(access)
        ))),
    }
}

fn verb(access: Access) -> &'static str {
    match access {
        Access::Read => "read",
        Access::Write => "write to",
    }
}

impl Tree {
    pub fn new(store: Store, blobs: Arc<dyn BlobStore>) -> Tree {
        let etags = Arc::new(etags::Etags::start(store.clone(), blobs.clone()));
        Tree {
            store,
            blobs,
            etags,
            settle_etags: true,
            roots: Arc::default(),
            max_file_size: u64::MAX,
            proof: LockProof::Owner,
            space: None,
            resolved: None,
        }
    }

    /// The same tree for one request that resolves many paths of the same workspaces (a
    /// WebDAV request: its checks, then dav-server's calls per entry of a listing): each
    /// workspace's grants are read once in it.
    pub fn remembering(&self) -> Tree {
        Tree {
            resolved: Some(Arc::default()),
            ..self.clone()
        }
    }

    fn remembered(&self, slug: &str) -> Option<(Node, Workspace)> {
        let memo = self.resolved.as_ref()?;
        memo.lock().unwrap_or_else(|e| e.into_inner()).get(slug).cloned()
    }

    fn remember(&self, slug: &str, root: &Node, workspace: &Workspace) {
        if let Some(memo) = &self.resolved {
            let mut memo = memo.lock().unwrap_or_else(|e| e.into_inner());
            if memo.len() < 10_000 {
                memo.insert(slug.to_string(), (root.clone(), workspace.clone()));
            }
        }
    }

    /// The same tree for requests that show `proof` of the WebDAV locks they hold (REST: the
    /// lock tokens of its `If` header).
    pub fn proving(&self, proof: LockProof) -> Tree {
        Tree {
            proof,
            ..self.clone()
        }
    }

    /// Refuse (`Locked`) a change at `path` that a WebDAV lock the caller does not hold is
    /// in the way of (RFC 4918 §7): a lock binds every protocol, on every node, as the locks
    /// are read from the database each time. A personal path meets the locks of its owner's
    /// namespace, a common one the shared locks (as `dav::locks` stores them).
    pub(crate) async fn check_locks(
        &self,
        principal: &Principal,
        path: &TreePath,
        change: Change,
    ) -> Result<()> {
        let namespace = match path.workspace() {
            WorkspaceName::PersonalFiles => principal.user_id().to_string(),
            WorkspaceName::Slug(_) => String::new(),
        };
        let live = self.store.live_dav_locks_in(&namespace).await?;
        if live.is_empty() {
            return Ok(());
        }
        let mut target = vec![path.workspace().as_str().as_bytes().to_vec()];
        target.extend(path.names().iter().map(|n| n.as_bytes().to_vec()));
        let Some(lock) = in_the_way(&live, &target, change, principal.login(), &self.proof) else {
            return Ok(());
        };
        let holder = if lock.principal.as_deref() == Some(principal.login()) {
            "your own WebDAV lock: name its token in an If header"
        } else {
            "a WebDAV lock held by another client: wait for its UNLOCK or expiry"
        };
        Err(Error::Locked(format!("{path} is locked by {holder}")))
    }

    /// The same tree, refusing writes while the disk of `space` is nearly full.
    pub fn keep_space(self, space: Arc<space::Space>) -> Tree {
        Tree {
            space: Some(space),
            ..self
        }
    }

    /// `InsufficientStorage` when a write should not start now (`space`).
    pub fn check_space(&self) -> Result<()> {
        match &self.space {
            Some(space) => space.check(),
            None => Ok(()),
        }
    }

    /// Free space on the blobs' disk, when it is known (`/healthz`, `/metrics`).
    pub fn free_space(&self) -> Option<u64> {
        self.space.as_ref().and_then(|space| space.free())
    }

    /// Give back the space kept for deletes if there is room again (background jobs).
    pub fn restore_space(&self) {
        if let Some(space) = &self.space {
            space.restore();
        }
    }

    /// The same tree, refusing files larger than `max` bytes.
    pub fn limit_file_size(self, max: u64) -> Tree {
        Tree {
            max_file_size: max,
            ..self
        }
    }

    /// `FileTooLarge` when a file of `size` bytes may not be: checked before work that would
    /// make one (an SFTP truncate or write past the end), and at every commit.
    pub fn check_file_size(&self, size: u64) -> Result<()> {
        if size > self.max_file_size {
            return Err(Error::FileTooLarge(self.max_file_size));
        }
        Ok(())
    }

    /// `body`, cut with an error once it outgrows the largest file allowed, so that an
    /// oversized upload stops at the limit instead of filling the disk first.
    fn limited(&self, body: ByteStream) -> ByteStream {
        use futures_util::StreamExt;
        let max = self.max_file_size;
        if max == u64::MAX {
            return body;
        }
        let mut seen = 0u64;
        Box::pin(body.map(move |chunk| {
            let chunk = chunk?;
            seen = seen.saturating_add(chunk.len() as u64);
            if seen > max {
                return Err(std::io::Error::other(FileTooLarge));
            }
            Ok(chunk)
        }))
    }

    /// Our error for a failed write of a body cut by `limited`, else the I/O error.
    fn written_error(&self, error: std::io::Error) -> Error {
        let inner = error.get_ref();
        if inner.is_some_and(|inner| inner.downcast_ref::<FileTooLarge>().is_some()) {
            Error::FileTooLarge(self.max_file_size)
        } else if let Some(cut) = inner.and_then(|inner| inner.downcast_ref::<BodyCut>()) {
            Error::invalid("body", cut.to_string())
        } else {
            error.into()
        }
    }

    /// The same tree, handing out entries whose ETag may still be `""` (`etags`): for SFTP,
    /// which never shows one, so that listing or opening a file just uploaded does not wait
    /// for its hash.
    pub fn without_etags(&self) -> Tree {
        Tree {
            settle_etags: false,
            ..self.clone()
        }
    }

    /// Fill in the ETag of `entry` if it is a file committed without one (`etags`), hashing
    /// its blob now rather than waiting for the worker.
    async fn settle(&self, entry: &mut Entry) -> Result<()> {
        let node = &mut entry.node;
        if !self.settle_etags || node.is_collection() || !node.etag.is_empty() {
            return Ok(());
        }
        let Some(blob) = node.blob_id.clone().filter(|blob| !inline::is_inline(blob)) else {
            return Ok(());
        };
        let blobs = self.blobs.clone();
        let hashed = blob.clone();
        let md5 = tokio::task::spawn_blocking(move || blobs.md5_blocking(&hashed, &mut || {}))
            .await
            .map_err(Error::internal)??;
        self.store.set_etag(node.id, &blob, &md5).await?;
        node.etag = md5;
        Ok(())
    }

    async fn settle_all(&self, entries: &mut [Entry]) -> Result<()> {
        for entry in entries {
            self.settle(entry).await?;
        }
        Ok(())
    }

    pub fn blobs(&self) -> &Arc<dyn BlobStore> {
        &self.blobs
    }

    /// The root node of a workspace, and what decides who may use it, as `principal` finds it
    /// now: a workspace's grants are read on every call, so that a revoked grant or a left
    /// group holds at the next request. `NotFound` when there is no such workspace.
    async fn root(&self, principal: &Principal, workspace: &WorkspaceName) -> Result<(Node, Workspace)> {
        // Every path operation starts here: with the database known down, it is refused at
        // once (an SFTP session open before the outage included).
        self.store.answering()?;
        match workspace {
            WorkspaceName::PersonalFiles => {
                let owner = principal.user_id;
                let root = self.root_node(&personal_root_key(owner), Some(owner)).await?;
                Ok((root, Workspace::Personal { owner }))
            }
            WorkspaceName::Slug(slug) => {
                if let Some(found) = self.remembered(slug) {
                    return Ok(found);
                }
                // The same answer as for a path the caller may not see (`locate`).
                let missing = || Error::NotFound(format!("{slug} does not exist"));
                let Some((found, grants)) = self.store.workspace_for(slug, principal.user_id).await? else {
                    return Err(missing());
                };
                let root = self.workspace_root(&found.root_key).await?.ok_or_else(missing)?;
                let workspace = Workspace::Shared {
                    grants: grants.into(),
                };
                self.remember(slug, &root, &workspace);
                Ok((root, workspace))
            }
        }
    }

    /// A workspace's root node: made with the workspace and gone with it, so never made
    /// here, except `common-files`'s, which a server made on first use before workspaces
    /// existed (and a new database's migration does not make).
    async fn workspace_root(&self, key: &str) -> Result<Option<Node>> {
        if let Some(root) = self.roots.lock().unwrap_or_else(|e| e.into_inner()).get(key) {
            return Ok(Some(root.clone()));
        }
        if key == path::COMMON_FILES {
            return self.root_node(key, None).await.map(Some);
        }
        let Some(root) = self.store.find_root(key).await? else {
            return Ok(None);
        };
        let mut roots = self.roots.lock().unwrap_or_else(|e| e.into_inner());
        if roots.len() > 100_000 {
            roots.clear();
        }
        roots.insert(key.to_string(), root.clone());
        Ok(Some(root))
    }

    /// The root node named `key`, made on first use. A root's id never changes (a personal
    /// root goes only with its user, a workspace's with the workspace), so it is kept.
    async fn root_node(&self, key: &str, owner: Option<UserId>) -> Result<Node> {
        if let Some(root) = self.roots.lock().unwrap_or_else(|e| e.into_inner()).get(key) {
            return Ok(root.clone());
        }
        let root = self.store.ensure_root(key, owner).await?;
        let mut roots = self.roots.lock().unwrap_or_else(|e| e.into_inner());
        if roots.len() > 100_000 {
            roots.clear();
        }
        roots.insert(key.to_string(), root.clone());
        Ok(root)
    }

    /// Forget a cached root (its workspace was deleted).
    pub fn forget_root_key(&self, key: &str) {
        self.roots.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }

    /// Forget a cached personal root (its user was deleted).
    pub fn forget_root(&self, user: UserId) {
        self.roots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&personal_root_key(user));
    }

    /// Resolve `path` to its nodes. `NotFound` when any part is missing or invisible.
    async fn locate(&self, principal: &Principal, path: &TreePath) -> Result<Located> {
        let (root, workspace) = self
            .root(principal, &path.workspace)
            .await
            .map_err(|error| match error {
                // Said of the whole path, as for a path the caller may not see.
                Error::NotFound(_) => Error::NotFound(format!("{path} does not exist")),
                other => other,
            })?;
        let chain = self.store.walk(&root, &path.name_refs()).await?;
        let located = Located {
            workspace,
            path: path.clone(),
            chain,
        };
        if located.chain.len() != path.names.len() + 1 {
            // Say "not found" whether or not the caller could see the part that exists.
            return Err(Error::NotFound(format!("{path} does not exist")));
        }
        Ok(located)
    }

    fn decide(&self, principal: &Principal, located: &Located, access: Access) -> Decision {
        decide(principal, &located.workspace, &located.ids(), access)
    }

    /// The workspaces `principal` can see (the top of the tree): `personal-files`, then the
    /// workspaces granted to the user, by slug (one query for all of them).
    pub async fn workspaces(&self, principal: &Principal) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        let (personal, workspace) = self.root(principal, &WorkspaceName::PersonalFiles).await?;
        let mut candidates = vec![(WorkspaceName::PersonalFiles, personal, workspace)];
        for (found, grants) in self.store.workspaces_reaching(principal.user_id).await? {
            let Some(root) = self.workspace_root(&found.root_key).await? else {
                continue;
            };
            let workspace = Workspace::Shared {
                grants: grants.into(),
            };
            self.remember(&found.slug, &root, &workspace);
            candidates.push((WorkspaceName::Slug(found.slug), root, workspace));
        }
        for (name, root, workspace) in candidates {
            if decide(principal, &workspace, &[root.id], Access::Read).is_visible() {
                out.push(Entry {
                    path: TreePath::root(name),
                    node: root,
                });
            }
        }
        Ok(out)
    }

    pub async fn stat(&self, principal: &Principal, path: &TreePath) -> Result<Entry> {
        let located = self.locate(principal, path).await?;
        require(self.decide(principal, &located, Access::Read), path, Access::Read)?;
        let mut entry = located.entry();
        self.settle(&mut entry).await?;
        Ok(entry)
    }

    /// What `principal` may do on `path` (for clients that show it, like WebDAV permissions).
    pub async fn can_write(&self, principal: &Principal, path: &TreePath) -> Result<bool> {
        let located = self.locate(principal, path).await?;
        Ok(self.decide(principal, &located, Access::Write) == Decision::Allow)
    }

    /// What the files of `path`'s workspace take, and its quota if it has one (WebDAV's
    /// `quota-used-bytes` and `quota-available-bytes`, RFC 4331; the console).
    pub async fn usage(&self, principal: &Principal, path: &TreePath) -> Result<(u64, Option<u64>)> {
        let top = TreePath::root(path.workspace().clone());
        let located = self.locate(principal, &top).await?;
        require(self.decide(principal, &located, Access::Read), &top, Access::Read)?;
        let root = &located.chain[0];
        let quota = self.store.quota_of_root(root).await?;
        let used = self.store.subtree_size(root.id).await?.max(0) as u64;
        Ok((used, quota))
    }

    /// `stat`, and whether `principal` may also read the content (not only see it), from one
    /// resolution of the path.
    pub async fn stat_access(&self, principal: &Principal, path: &TreePath) -> Result<(Entry, bool)> {
        let located = self.locate(principal, path).await?;
        let decision = self.decide(principal, &located, Access::Read);
        require(decision, path, Access::Read)?;
        let mut entry = located.entry();
        self.settle(&mut entry).await?;
        Ok((entry, decision == Decision::Allow))
    }

    /// The file at `path` if `principal` may read its content (not just see it); the caller
    /// then reads the blob directly, without resolving the path again.
    pub async fn readable(&self, principal: &Principal, path: &TreePath) -> Result<Entry> {
        let located = self.locate(principal, path).await?;
        let decision = self.decide(principal, &located, Access::Read);
        if decision != Decision::Allow {
            require(decision, path, Access::Read)?;
            return Err(Error::Forbidden(format!("this credential may not read {path}")));
        }
        let mut entry = located.entry();
        self.settle(&mut entry).await?;
        Ok(entry)
    }

    /// The dead properties of every child of a folder `principal` may list (one query).
    pub async fn children_props(&self, folder: &Entry) -> Result<Vec<(NodeId, DeadProp)>> {
        Ok(self.store.list_children_props(folder.node.id).await?)
    }

    /// The dead properties of an entry already resolved for `principal`.
    pub async fn own_props(&self, entry: &Entry) -> Result<Vec<DeadProp>> {
        Ok(self.store.list_props(entry.node.id).await?)
    }

    /// Whether `principal` may read all of `path` (not just see it on the way to a scope).
    pub async fn can_read(&self, principal: &Principal, path: &TreePath) -> Result<bool> {
        let located = self.locate(principal, path).await?;
        Ok(self.decide(principal, &located, Access::Read) == Decision::Allow)
    }

    /// Whether `principal` may write a file at `path` (overwrite it, or create it in its
    /// folder). A missing folder is `NotFound`.
    pub async fn can_write_at(&self, principal: &Principal, path: &TreePath) -> Result<bool> {
        match self.write_target(principal, path).await {
            Ok(_) => Ok(true),
            Err(Error::Forbidden(_)) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// What is at `path` now (a file, a folder, or nothing), once `principal` may write a file
    /// there (`Forbidden` otherwise): one lookup for SFTP's OPEN. A missing folder on the way
    /// is `NotFound`.
    pub async fn write_target(&self, principal: &Principal, path: &TreePath) -> Result<Option<Entry>> {
        match self.locate_for_write(principal, path).await {
            // No `settle`: its one caller is SFTP, which shows no ETag.
            Ok((_, existing)) => Ok(existing.map(|node| Entry {
                path: path.clone(),
                node,
            })),
            Err(error @ Error::ParentMissing(_)) => Err(Error::NotFound(error.to_string())),
            Err(other) => Err(other),
        }
    }

    /// Whether `principal` could write a file at `path`, creating missing parent folders on
    /// the way: the right to write is checked where the path stops existing. Nothing is
    /// created (an S3 multipart upload checks this when it starts).
    pub async fn can_create_at(&self, principal: &Principal, path: &TreePath) -> Result<bool> {
        let mut target = path.clone();
        loop {
            match self.locate_for_write(principal, &target).await {
                Ok((_, Some(existing))) if existing.is_collection() && target == *path => {
                    return Err(Error::IsFolder(path.to_string()));
                }
                Ok((_, Some(existing))) if !existing.is_collection() && target != *path => {
                    return Err(Error::Conflict(format!("{target} is a file, not a folder")));
                }
                Ok(_) => return Ok(true),
                Err(Error::Forbidden(_)) => return Ok(false),
                Err(Error::ParentMissing(_)) => {
                    target = target.parent().expect("a named path has a parent");
                }
                Err(other) => return Err(other),
            }
        }
    }

    /// A folder and the children `principal` can see, sorted by name.
    pub async fn list(&self, principal: &Principal, path: &TreePath) -> Result<(Entry, Vec<Entry>)> {
        let located = self.locate(principal, path).await?;
        require(self.decide(principal, &located, Access::Read), path, Access::Read)?;
        let folder = located.entry();
        if !folder.node.is_collection() {
            return Ok((folder, Vec::new()));
        }
        let mut ids = located.ids();
        let mut children = Vec::new();
        for child in self.store.list_children(folder.node.id).await? {
            ids.push(child.id);
            if decide(principal, &located.workspace, &ids, Access::Read).is_visible() {
                children.push(Entry {
                    path: path.child_of_stored(&child.name),
                    node: child,
                });
            }
            ids.pop();
        }
        self.settle_all(&mut children).await?;
        Ok((folder, children))
    }

    /// Everything below a folder that `principal` can see, at any depth (one query). Entries
    /// come in no particular order.
    pub async fn list_recursive(&self, principal: &Principal, path: &TreePath) -> Result<Vec<Entry>> {
        let located = self.locate(principal, path).await?;
        require(self.decide(principal, &located, Access::Read), path, Access::Read)?;
        if !located.node().is_collection() {
            return Ok(Vec::new());
        }
        let mut children: std::collections::HashMap<NodeId, Vec<Node>> = std::collections::HashMap::new();
        for node in self.store.list_subtree(located.node().id).await? {
            if let Some(parent) = node.parent_id {
                children.entry(parent).or_default().push(node);
            }
        }
        let mut out = Vec::new();
        // Depth first with the chain of ids the permission check needs; an invisible folder
        // hides everything below it.
        let mut ids = located.ids();
        let mut stack: Vec<(usize, TreePath, Node)> = Vec::new();
        let push_children =
            |stack: &mut Vec<(usize, TreePath, Node)>,
             depth: usize,
             parent: &TreePath,
             id: NodeId,
             children: &mut std::collections::HashMap<NodeId, Vec<Node>>| {
                for child in children.remove(&id).unwrap_or_default() {
                    stack.push((depth, parent.child_of_stored(&child.name), child));
                }
            };
        push_children(&mut stack, ids.len(), path, located.node().id, &mut children);
        while let Some((depth, child_path, node)) = stack.pop() {
            ids.truncate(depth);
            ids.push(node.id);
            if !decide(principal, &located.workspace, &ids, Access::Read).is_visible() {
                continue;
            }
            if node.is_collection() {
                push_children(&mut stack, ids.len(), &child_path, node.id, &mut children);
            }
            out.push(Entry {
                path: child_path,
                node,
            });
        }
        self.settle_all(&mut out).await?;
        Ok(out)
    }

    /// Copy one file's content to `to`, replacing what is there (S3 CopyObject). The caller
    /// must be allowed to read the source's content and to write `to`. `meta`: the copy's
    /// metadata, `None` to keep the source's.
    pub async fn copy_file(
        &self,
        principal: &Principal,
        from: &TreePath,
        to: &TreePath,
        meta: Option<Option<&str>>,
        create_parents: bool,
    ) -> Result<Entry> {
        let source = self.readable(principal, from).await?;
        if source.node.is_collection() {
            return Err(Error::IsFolder(from.to_string()));
        }
        // Check the target before copying any byte.
        let options = Write {
            meta: meta.unwrap_or(source.node.meta.as_deref()),
            create_parents,
            ..Write::default()
        };
        self.locate_for_write_creating(principal, to, &options).await?;
        self.check_space()?;
        let written = self.copy_content(&source.node).await?;
        self.commit_blob(principal, to, written, None, &options).await
    }

    /// Create a folder. With `recursive`, missing parents are created too; an existing
    /// folder at `path` is then returned as it is.
    pub async fn create_folder(
        &self,
        principal: &Principal,
        path: &TreePath,
        recursive: bool,
    ) -> Result<Entry> {
        let Some(name) = path.name() else {
            return Err(Error::Conflict(format!(
                "{path} is a workspace and always exists"
            )));
        };
        let parent_path = path.parent().expect("a named path has a parent");
        let parent = match self.locate(principal, &parent_path).await {
            Ok(parent) => parent,
            Err(Error::NotFound(_)) if recursive => {
                Box::pin(self.create_folder(principal, &parent_path, true)).await?;
                self.locate(principal, &parent_path).await?
            }
            Err(other) => return Err(other),
        };
        self.check_parent(principal, &parent)?;
        self.check_locks(principal, path, Change::Membership).await?;
        self.check_space()?;
        let created = self
            .store
            .create_node(NewNode {
                parent_id: parent.node().id,
                name,
                kind: NodeKind::Collection,
                size: 0,
                etag: "",
                blob_id: None,
                mtime: cells_store::now(),
                meta: None,
                data: None,
            })
            .await;
        match created {
            Ok(node) => Ok(Entry {
                path: path.clone(),
                node,
            }),
            Err(StoreError::Conflict(_)) => {
                let existing = self.stat(principal, path).await?;
                if recursive && existing.node.is_collection() {
                    Ok(existing)
                } else {
                    Err(Error::AlreadyExists(path.to_string()))
                }
            }
            Err(other) => Err(other.into()),
        }
    }

    /// The parent must be a folder the caller may write into.
    fn check_parent(&self, principal: &Principal, parent: &Located) -> Result<()> {
        require(
            self.decide(principal, parent, Access::Write),
            &parent.path,
            Access::Write,
        )?;
        if !parent.node().is_collection() {
            return Err(Error::Conflict(format!(
                "{} is a file, not a folder",
                parent.path
            )));
        }
        Ok(())
    }

    /// Open a file for reading: the entry and `length` bytes from `offset`.
    pub async fn open(
        &self,
        principal: &Principal,
        path: &TreePath,
        range: Option<(u64, u64)>,
    ) -> Result<(Entry, DownloadStream)> {
        let entry = self.readable(principal, path).await?;
        if entry.node.is_collection() {
            return Err(Error::IsFolder(path.to_string()));
        }
        let size = entry.node.size as u64;
        let (offset, length) = range.unwrap_or((0, size));
        let body = self.stream_content(&entry.node, offset, length).await?;
        Ok((entry, body))
    }

    /// `length` bytes of file `node`'s content from `offset`, as a download. The caller has
    /// checked that it may read them (`readable`).
    pub async fn stream_content(&self, node: &Node, offset: u64, length: u64) -> Result<DownloadStream> {
        let Some(blob) = node.blob_id.as_deref() else {
            return Err(Error::IsFolder(node.name.clone()));
        };
        match self.inline_data(node).await? {
            Some(data) => Ok(inline::stream(&data, offset, length)?),
            None => Ok(self.blobs.stream(blob, offset, length).await?),
        }
    }

    /// The content of file `node` when it is kept in its row (`inline`); `None` when it is a
    /// blob's (or `node` is a folder). Read from the database unless the lookup that found
    /// `node` brought it along.
    pub async fn inline_data(&self, node: &Node) -> Result<Option<Bytes>> {
        let Some(blob) = node.blob_id.as_deref().filter(|blob| inline::is_inline(blob)) else {
            return Ok(None);
        };
        if let Some(data) = &node.data {
            return Ok(Some(data.clone()));
        }
        match self.store.find_data(node.id, blob).await? {
            Some(data) => Ok(Some(data)),
            // Overwritten or deleted since the caller looked it up.
            None => Err(Error::Conflict(format!(
                "{} changed while it was being read; retry",
                node.name
            ))),
        }
    }

    /// A new, independent copy of file `node`'s content, as durable as an upload and with
    /// the same ETag: the blob copied, or the row's bytes carried over.
    async fn copy_content(&self, node: &Node) -> Result<WrittenBlob> {
        let Some(blob) = node.blob_id.as_deref() else {
            return Err(Error::IsFolder(node.name.clone()));
        };
        let (id, inline) = match self.inline_data(node).await? {
            Some(data) => (inline::new_id(), Some(data)),
            None => (self.blobs.copy(blob).await?, None),
        };
        Ok(WrittenBlob {
            id,
            size: node.size.max(0) as u64,
            md5: node.etag.clone(),
            inline,
        })
    }

    /// A draft (SFTP's writes at any offset) holding file `node`'s content, or an empty one.
    pub async fn draft_of(&self, node: Option<&Node>) -> Result<Draft> {
        self.check_space()?;
        let Some(node) = node else {
            return Ok(self.blobs.draft(None).await?);
        };
        let Some(data) = self.inline_data(node).await? else {
            return Ok(self.blobs.draft(node.blob_id.as_deref()).await?);
        };
        let mut draft = self.blobs.draft(None).await?;
        draft.write_at(data, 0).await?;
        Ok(draft)
    }

    /// Find a node by UUID, as `principal` sees it (its path is the caller's view of it).
    pub async fn stat_by_id(&self, principal: &Principal, id: NodeId) -> Result<Entry> {
        self.store.answering()?;
        let chain = self.store.ancestry(id).await?;
        let not_found = || Error::NotFound(format!("no node {id}"));
        let root = chain.first().ok_or_else(not_found)?;
        let (name, workspace) = match root.owner_id {
            Some(owner) => (WorkspaceName::PersonalFiles, Workspace::Personal { owner }),
            None => {
                // A workspace's root; anything else (staging) is no place of anyone's.
                let found = self
                    .store
                    .find_workspace_by_root(&root.name)
                    .await?
                    .ok_or_else(not_found)?;
                let (_, grants) = self
                    .store
                    .workspace_for(&found.slug, principal.user_id)
                    .await?
                    .ok_or_else(not_found)?;
                (
                    WorkspaceName::Slug(found.slug),
                    Workspace::Shared {
                        grants: grants.into(),
                    },
                )
            }
        };
        let ids: Vec<NodeId> = chain.iter().map(|n| n.id).collect();
        if !decide(principal, &workspace, &ids, Access::Read).is_visible() {
            return Err(not_found());
        }
        let names = chain[1..].iter().map(|n| n.name.clone()).collect();
        let node = chain.last().expect("not empty").clone();
        let mut entry = Entry {
            path: TreePath {
                workspace: name,
                names,
            },
            node,
        };
        self.settle(&mut entry).await?;
        Ok(entry)
    }

    /// Remove blobs no node points at any more (content kept in a row went with it). Failures
    /// are logged: `sweep` catches them.
    pub async fn forget_blobs(&self, ids: Vec<String>) {
        for id in ids.into_iter().filter(|id| !inline::is_inline(id)) {
            if let Err(error) = self.blobs.delete(&id).await {
                tracing::warn!(blob = %id, %error, "could not delete an unused blob");
            }
        }
    }

    /// Queue the files whose ETag is still pending (left by a stop or a crash). One node of a
    /// cluster does it (`App::lead`): on every node it would be the same work done N times.
    pub async fn queue_pending_etags(&self) -> Result<usize> {
        let pending = self.store.pending_etags().await?;
        let count = pending.len();
        for (node, blob) in pending {
            self.etags.queue(node, &blob);
        }
        Ok(count)
    }

    /// Clean the blob store of temp files and orphans. Run before serving.
    ///
    /// On SQLite this process is the only writer, so every leftover goes. A PostgreSQL
    /// database may be shared by nodes that are writing right now, so only leftovers older
    /// than an hour are removed there.
    pub async fn sweep(&self) -> Result<blob::SweepReport> {
        let staged_before = match self.store.backend() {
            cells_store::Backend::Sqlite => None,
            cells_store::Backend::Postgres => Some(cells_store::now() - STAGING_AGE),
        };
        self.sweep_staging(staged_before).await?;
        let keep: HashSet<String> = self.store.referenced_blobs().await?.into_iter().collect();
        let before = match self.store.backend() {
            cells_store::Backend::Sqlite => None,
            cells_store::Backend::Postgres => {
                Some(std::time::SystemTime::now() - std::time::Duration::from_secs(3600))
            }
        };
        Ok(self.blobs.sweep(&keep, before).await?)
    }

    /// The sweep while serving, on the node that holds this blob store's lease (`holder`):
    /// temp files and orphan blobs older than `SWEEP_AGE`, except what is being written now.
    /// `None` when another node holds the lease.
    pub async fn sweep_while_serving(&self, holder: &str) -> Result<Option<blob::SweepReport>> {
        let lease = format!("sweep:{}", self.blobs.name());
        if !self.store.take_lease(&lease, holder, SWEEP_LEASE_SECONDS).await? {
            return Ok(None);
        }
        self.sweep_staging(Some(cells_store::now() - STAGING_AGE)).await?;
        let keep: HashSet<String> = self.store.referenced_blobs().await?.into_iter().collect();
        let before = std::time::SystemTime::now() - SWEEP_AGE;
        Ok(Some(self.blobs.sweep(&keep, Some(before)).await?))
    }
}
