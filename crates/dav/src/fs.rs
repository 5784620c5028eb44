//! The file tree as a WebDAV filesystem (dav-server's `GuardedFileSystem`): every call goes
//! through `files::Tree` with the request's `Principal`, so WebDAV decides no permission itself.
//!
//! `/` lists the workspaces. A PUT streams into `Tree::write` as it arrives (atomic commit on
//! flush; a cut connection aborts it and leaves nothing); a file over 16 MiB gets its MD5
//! after the commit (`files::etags`), and until then shows no ETag to a request that neither
//! compares one nor asks for `getetag`. A GET reads the blob from the requested offset.
//! `getetag` holds the entity-tag with its quotes, as the `ETag` header does (`EtagUse`).

use std::io::SeekFrom;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes};
use cells_core::records::{DeadProp, PropChange};
use dav_server::davpath::DavPath;
use dav_server::fs::{
    DavDirEntry, DavFile, DavMetaData, DavProp, FsError, FsFuture, FsResult, FsStream, GuardedFileSystem,
    OpenOptions, ReadDirMeta,
};
use futures_util::{FutureExt, StreamExt};
use http::StatusCode;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use cells_core::SharedApp;
use cells_core::auth::principal::Principal;
use cells_core::error::Error;
use cells_core::files::blob::{DownloadStream, Md5When};
use cells_core::files::path::TreePath;
use cells_core::files::{Entry, Tree, Write};

/// Namespace of our own live properties (the node UUID), as ownCloud clients expect it.
pub const OC_NAMESPACE: &str = "http://owncloud.org/ns";

/// One per request (see `dav::serve`): its clones, which dav-server makes within the
/// request, share the listing cache, and nothing cached outlives the request that checked it.
#[derive(Clone)]
pub struct CellsFs {
    pub app: SharedApp,
    /// `app.tree`, settling pending ETags (`files::etags`) only for a request that compares
    /// entity tags or lists them: otherwise a file whose MD5 is still being computed shows no
    /// ETag (see `dav::serve`).
    tree: Tree,
    /// Entity tags given to dav-server with their quotes (`EtagUse::Listed`).
    quoted: bool,
    /// What the last `read_dir` of this request found: each child's entry and dead properties
    /// by path, so the per-entry property calls of a PROPFIND cost no query.
    listing: Listing,
    /// Files this request found readable (by `metadata`), for `open` to use without a second
    /// resolution of the same path.
    readable: Arc<std::sync::Mutex<std::collections::HashMap<String, Entry>>>,
}

type Listing = Arc<std::sync::Mutex<std::collections::HashMap<String, (Entry, Vec<DeadProp>)>>>;

/// What one request does with entity tags, which decides how `CellsFs` gives them.
///
/// dav-server takes `DavMetaData::etag` bare: it adds the quotes to the `ETag` header and to
/// the tag it compares, but writes it as it is into `getetag`, which RFC 4918 §15.6 defines as
/// the entity-tag of RFC 7232 §2.3, quotes included (Apache and `rclone serve` quote it, and a
/// client may echo it into `If-Match`). A PROPFIND uses it only there: its conditions are
/// evaluated before dav-server sees it (`precondition`), with the tag `propfind` quotes too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtagUse {
    /// Sent in headers only: bare, and a pending one stays hidden.
    Sent,
    /// Compared with the request's (`If-Match`, `If`, ...): bare, pending ones computed.
    Compared,
    /// Written into `getetag` by a PROPFIND: quoted, pending ones computed.
    Listed,
}

impl CellsFs {
    /// The filesystem of one request, on `tree` (the request's: `Tree::remembering`).
    pub fn new(app: SharedApp, tree: &Tree, etags: EtagUse) -> CellsFs {
        let tree = match etags {
            EtagUse::Sent => tree.without_etags(),
            EtagUse::Compared | EtagUse::Listed => tree.clone(),
        };
        CellsFs {
            app,
            tree,
            quoted: etags == EtagUse::Listed,
            listing: Default::default(),
            readable: Default::default(),
        }
    }

    fn listed(&self, path: &TreePath) -> Option<(Entry, Vec<DeadProp>)> {
        self.listing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&path.to_string())
            .cloned()
    }

    async fn props_of(&self, principal: &Principal, path: &TreePath) -> FsResult<(Entry, Vec<DeadProp>)> {
        match self.listed(path) {
            Some(found) => Ok(found),
            None => self.tree.dead_props(principal, path).await.map_err(fs_error),
        }
    }
}

fn fs_error(error: Error) -> FsError {
    match error {
        Error::NotFound(_) => FsError::NotFound,
        Error::Forbidden(_) | Error::Unauthenticated(_) | Error::AccountLocked | Error::Throttled(_) => {
            FsError::Forbidden
        }
        // dav-server answers 409 to a PUT on Exists (RFC 4918 §9.7.1: a missing collection on
        // the way), and 405 to other methods.
        Error::Conflict(_) | Error::AlreadyExists(_) | Error::IsFolder(_) | Error::ParentMissing(_) => {
            FsError::Exists
        }
        Error::Locked(_) => {
            crate::fault::note(crate::fault::Fault::Locked);
            FsError::Forbidden
        }
        Error::Unavailable(_) => {
            crate::fault::note(crate::fault::Fault::Unavailable);
            FsError::GeneralFailure
        }
        Error::InsufficientStorage(_) => FsError::InsufficientStorage,
        Error::Invalid { .. } => FsError::Forbidden,
        Error::TooLarge(_) | Error::FileTooLarge(_) => FsError::TooLarge,
        Error::RangeNotSatisfiable(_) => FsError::GeneralFailure,
        Error::Internal(cause) => {
            tracing::error!(error = ?cause, "WebDAV internal error");
            FsError::GeneralFailure
        }
    }
}

/// `None` for `/` (the list of workspaces), else the tree path; names that are not valid
/// UTF-8 or not valid names are "not found".
fn tree_path(path: &DavPath) -> FsResult<Option<TreePath>> {
    let text = std::str::from_utf8(path.as_bytes()).map_err(|_| FsError::NotFound)?;
    if text.trim_matches('/').is_empty() {
        return Ok(None);
    }
    TreePath::parse(text).map(Some).map_err(|e| match e {
        Error::Invalid { .. } => FsError::Forbidden,
        _ => FsError::NotFound,
    })
}

fn required(path: &DavPath) -> FsResult<TreePath> {
    tree_path(path)?.ok_or(FsError::Forbidden)
}

/// The content hash for files (`""` while it is still being computed: `files::etags`);
/// folders get one from their id and time.
pub fn etag_of(node: &cells_core::records::Node) -> String {
    if node.is_collection() {
        format!("{}-{:x}", node.id.uuid().simple(), node.mtime)
    } else {
        node.etag.clone()
    }
}

#[derive(Debug, Clone)]
pub struct Meta {
    len: u64,
    modified: SystemTime,
    is_dir: bool,
    etag: Option<String>,
}

impl Meta {
    fn of(entry: &Entry) -> Meta {
        let node = &entry.node();
        Meta {
            len: node.size as u64,
            modified: UNIX_EPOCH + Duration::from_secs(node.mtime.max(0) as u64),
            is_dir: node.is_collection(),
            // None while pending: dav-server then sends no ETag header (RFC 7232 §2.3 makes
            // it optional), and compares no entity tag against an empty one.
            etag: Some(etag_of(node)).filter(|etag| !etag.is_empty()),
        }
    }

    /// `of`, with the entity tag quoted when `quoted` (`EtagUse::Listed`).
    fn in_request(entry: &Entry, quoted: bool) -> Meta {
        let mut meta = Meta::of(entry);
        if quoted {
            meta.etag = meta.etag.map(|etag| format!("\"{etag}\""));
        }
        meta
    }

    fn root() -> Meta {
        Meta {
            len: 0,
            modified: UNIX_EPOCH,
            is_dir: true,
            etag: None,
        }
    }
}

impl DavMetaData for Meta {
    fn len(&self) -> u64 {
        self.len
    }
    fn modified(&self) -> FsResult<SystemTime> {
        Ok(self.modified)
    }
    fn is_dir(&self) -> bool {
        self.is_dir
    }
    fn etag(&self) -> Option<String> {
        self.etag.clone()
    }
}

struct DirEntry {
    name: Vec<u8>,
    meta: Meta,
}

impl DavDirEntry for DirEntry {
    fn name(&self) -> Vec<u8> {
        self.name.clone()
    }
    fn metadata(&'_ self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let meta = self.meta.clone();
        async move { Ok(Box::new(meta) as Box<dyn DavMetaData>) }.boxed()
    }
}

impl GuardedFileSystem<Principal> for CellsFs {
    fn open<'a>(
        &'a self,
        path: &'a DavPath,
        options: OpenOptions,
        principal: &'a Principal,
    ) -> FsFuture<'a, Box<dyn DavFile>> {
        async move {
            let path = required(path)?;
            let tree = &self.tree;
            if options.write {
                if options.append {
                    return Err(FsError::NotImplemented);
                }
                let existing = tree.stat(principal, &path).await;
                match &existing {
                    Ok(entry) if entry.node().is_collection() => return Err(FsError::Forbidden),
                    Ok(_) if options.create_new => return Err(FsError::Exists),
                    Err(Error::NotFound(_)) if !options.create && !options.create_new => {
                        return Err(FsError::NotFound);
                    }
                    Ok(_) | Err(Error::NotFound(_)) => {}
                    Err(_) => return Err(FsError::Forbidden),
                }
                if !tree.can_write_at(principal, &path).await.map_err(fs_error)? {
                    return Err(FsError::Forbidden);
                }
                return Ok(
                    Box::new(WriteFile::start(self.app.clone(), principal.clone(), path)) as Box<dyn DavFile>,
                );
            }
            let known = self
                .readable
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&path.to_string());
            let entry = match known {
                Some(entry) => entry,
                None => tree.readable(principal, &path).await.map_err(fs_error)?,
            };
            if entry.node().is_collection() {
                return Err(FsError::Forbidden);
            }
            Ok(Box::new(ReadFile {
                app: self.app.clone(),
                entry,
                offset: 0,
                body: None,
                chunk: Bytes::new(),
            }) as Box<dyn DavFile>)
        }
        .boxed()
    }

    fn read_dir<'a>(
        &'a self,
        path: &'a DavPath,
        _meta: ReadDirMeta,
        principal: &'a Principal,
    ) -> FsFuture<'a, FsStream<Box<dyn DavDirEntry>>> {
        async move {
            let tree = &self.tree;
            let entries: Vec<Entry> = match tree_path(path)? {
                None => tree.workspaces(principal).await.map_err(fs_error)?,
                Some(path) => {
                    let (folder, children) = tree.list(principal, &path).await.map_err(fs_error)?;
                    if !folder.node().is_collection() {
                        return Err(FsError::Forbidden);
                    }
                    let mut props: std::collections::HashMap<cells_core::records::NodeId, Vec<DeadProp>> =
                        Default::default();
                    for (node, prop) in tree.children_props(&folder).await.map_err(fs_error)? {
                        props.entry(node).or_default().push(prop);
                    }
                    let mut listing = self.listing.lock().unwrap_or_else(|e| e.into_inner());
                    listing.clear();
                    for child in &children {
                        let own = props.remove(&child.node().id).unwrap_or_default();
                        listing.insert(child.path().to_string(), (child.clone(), own));
                    }
                    children
                }
            };
            let items: Vec<FsResult<Box<dyn DavDirEntry>>> = entries
                .iter()
                .map(|entry| {
                    let name = entry
                        .path()
                        .name()
                        .unwrap_or(entry.path().workspace().as_str())
                        .as_bytes()
                        .to_vec();
                    Ok(Box::new(DirEntry {
                        name,
                        meta: Meta::in_request(entry, self.quoted),
                    }) as Box<dyn DavDirEntry>)
                })
                .collect();
            Ok(Box::pin(futures_util::stream::iter(items)) as FsStream<Box<dyn DavDirEntry>>)
        }
        .boxed()
    }

    fn metadata<'a>(
        &'a self,
        path: &'a DavPath,
        principal: &'a Principal,
    ) -> FsFuture<'a, Box<dyn DavMetaData>> {
        async move {
            match tree_path(path)? {
                None => Ok(Box::new(Meta::root()) as Box<dyn DavMetaData>),
                Some(path) => {
                    let (entry, readable) =
                        self.tree.stat_access(principal, &path).await.map_err(fs_error)?;
                    let meta = Meta::in_request(&entry, self.quoted);
                    if readable && !entry.node().is_collection() {
                        self.readable
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(path.to_string(), entry);
                    }
                    Ok(Box::new(meta) as Box<dyn DavMetaData>)
                }
            }
        }
        .boxed()
    }

    fn create_dir<'a>(&'a self, path: &'a DavPath, principal: &'a Principal) -> FsFuture<'a, ()> {
        async move {
            let path = required(path)?;
            match self.tree.create_folder(principal, &path, false).await {
                Ok(_) => Ok(()),
                // RFC 4918 §9.3.1: a missing parent is 409, which dav-server gives on NotFound.
                Err(Error::AlreadyExists(_)) => Err(FsError::Exists),
                Err(Error::ParentMissing(_) | Error::Conflict(_)) => Err(FsError::NotFound),
                Err(other) => Err(fs_error(other)),
            }
        }
        .boxed()
    }

    fn remove_dir<'a>(&'a self, path: &'a DavPath, principal: &'a Principal) -> FsFuture<'a, ()> {
        async move {
            self.app
                .tree
                .delete(principal, &required(path)?)
                .await
                .map(|_| ())
                .map_err(fs_error)
        }
        .boxed()
    }

    fn remove_file<'a>(&'a self, path: &'a DavPath, principal: &'a Principal) -> FsFuture<'a, ()> {
        async move {
            self.app
                .tree
                .delete(principal, &required(path)?)
                .await
                .map(|_| ())
                .map_err(fs_error)
        }
        .boxed()
    }

    fn rename<'a>(
        &'a self,
        from: &'a DavPath,
        to: &'a DavPath,
        principal: &'a Principal,
    ) -> FsFuture<'a, ()> {
        async move {
            let (from, to) = (required(from)?, required(to)?);
            self.app
                .tree
                .rename(principal, &from, &to)
                .await
                .map(|_| ())
                .map_err(fs_error)
        }
        .boxed()
    }

    fn copy<'a>(&'a self, from: &'a DavPath, to: &'a DavPath, principal: &'a Principal) -> FsFuture<'a, ()> {
        async move {
            let (from, to) = (required(from)?, required(to)?);
            // dav-server copies folders itself, file by file; an existing target was removed
            // by it first when Overwrite allows.
            self.app
                .tree
                .copy(principal, &from, &to)
                .await
                .map(|_| ())
                .map_err(fs_error)
        }
        .boxed()
    }

    fn set_modified<'a>(
        &'a self,
        path: &'a DavPath,
        tm: SystemTime,
        principal: &'a Principal,
    ) -> FsFuture<'a, ()> {
        async move {
            let seconds = tm
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            self.app
                .tree
                .set_mtime(principal, &required(path)?, seconds)
                .await
                .map_err(fs_error)
        }
        .boxed()
    }

    fn have_props<'a>(
        &'a self,
        _path: &'a DavPath,
        _principal: &'a Principal,
    ) -> std::pin::Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        Box::pin(std::future::ready(true))
    }

    fn patch_props<'a>(
        &'a self,
        path: &'a DavPath,
        patch: Vec<(bool, DavProp)>,
        principal: &'a Principal,
    ) -> FsFuture<'a, Vec<(StatusCode, DavProp)>> {
        async move {
            let path = required(path)?;
            let mut changes = Vec::new();
            let mut statuses = Vec::new();
            for (is_set, prop) in patch {
                let namespace = prop.namespace.clone().unwrap_or_default();
                // Our live property cannot be written.
                let status = if namespace == OC_NAMESPACE && prop.name == "id" {
                    StatusCode::FORBIDDEN
                } else if is_set {
                    let xml = prop
                        .xml
                        .as_deref()
                        .map(|x| String::from_utf8_lossy(x).into_owned())
                        .unwrap_or_default();
                    let prop = DeadProp {
                        namespace,
                        name: prop.name.clone(),
                        prefix: prop.prefix.clone(),
                        xml,
                    };
                    changes.push(PropChange::Set(prop));
                    StatusCode::OK
                } else {
                    changes.push(PropChange::Remove {
                        namespace,
                        name: prop.name.clone(),
                    });
                    StatusCode::OK
                };
                statuses.push((status, DavProp { xml: None, ..prop }));
            }
            // RFC 4918 §9.2: all or nothing. One refusal fails the rest with 424.
            if statuses.iter().any(|(s, _)| *s != StatusCode::OK) {
                return Ok(statuses
                    .into_iter()
                    .map(|(s, p)| {
                        (
                            if s == StatusCode::OK {
                                StatusCode::FAILED_DEPENDENCY
                            } else {
                                s
                            },
                            p,
                        )
                    })
                    .collect());
            }
            self.app
                .tree
                .patch_props(principal, &path, &changes)
                .await
                .map_err(fs_error)?;
            Ok(statuses)
        }
        .boxed()
    }

    fn get_props<'a>(
        &'a self,
        path: &'a DavPath,
        do_content: bool,
        principal: &'a Principal,
    ) -> FsFuture<'a, Vec<DavProp>> {
        async move {
            let Some(path) = tree_path(path)? else {
                return Ok(Vec::new());
            };
            let (entry, props) = self.props_of(principal, &path).await?;
            let mut out: Vec<DavProp> = props
                .into_iter()
                .map(|p| DavProp {
                    name: p.name,
                    prefix: p.prefix,
                    namespace: Some(p.namespace).filter(|n| !n.is_empty()),
                    xml: do_content.then(|| p.xml.into_bytes()),
                })
                .collect();
            // `oc:id` is named in PROPNAME answers, and sent when asked for (`get_prop`); an
            // ALLPROP leaves it out, as RFC 4918 §9.1 allows for live properties it does not
            // define: dav-server would parse it back for every entry of a listing.
            if !do_content {
                out.push(uuid_prop(&entry, false));
            }
            Ok(out)
        }
        .boxed()
    }

    fn get_prop<'a>(
        &'a self,
        path: &'a DavPath,
        prop: DavProp,
        principal: &'a Principal,
    ) -> FsFuture<'a, Vec<u8>> {
        async move {
            let Some(path) = tree_path(path)? else {
                return Err(FsError::NotFound);
            };
            let (entry, props) = self.props_of(principal, &path).await?;
            let namespace = prop.namespace.clone().unwrap_or_default();
            if namespace == OC_NAMESPACE && prop.name == "id" {
                return uuid_prop(&entry, true).xml.ok_or(FsError::NotFound);
            }
            props
                .into_iter()
                .find(|p| p.namespace == namespace && p.name == prop.name)
                .map(|p| p.xml.into_bytes())
                .ok_or(FsError::NotFound)
        }
        .boxed()
    }

    fn get_quota<'a>(&'a self, principal: &'a Principal) -> FsFuture<'a, (u64, Option<u64>)> {
        // The top of the tree (what our own PROPFIND leaves to dav-server): the user's
        // personal files and their quota.
        async move {
            let personal = TreePath::root(cells_core::files::path::WorkspaceName::PersonalFiles);
            self.tree.usage(principal, &personal).await.map_err(fs_error)
        }
        .boxed()
    }
}

/// `oc:id`: the node UUID, to scope a token with (ownCloud clients read the same name).
fn uuid_prop(entry: &Entry, do_content: bool) -> DavProp {
    DavProp {
        name: "id".into(),
        prefix: Some("oc".into()),
        namespace: Some(OC_NAMESPACE.into()),
        xml: do_content
            .then(|| format!("<oc:id xmlns:oc=\"{OC_NAMESPACE}\">{}</oc:id>", entry.node().id).into_bytes()),
    }
}

/// A file open for reading, from an offset. The read right was checked when it was opened,
/// in this request; the blob is then read directly.
struct ReadFile {
    app: SharedApp,
    entry: Entry,
    offset: u64,
    /// The content from `offset`, and what is left of the chunk it last gave.
    body: Option<DownloadStream>,
    chunk: Bytes,
}

impl std::fmt::Debug for ReadFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReadFile({}, at {})", self.entry.path(), self.offset)
    }
}

impl DavFile for ReadFile {
    fn metadata(&'_ mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let meta = Meta::of(&self.entry);
        async move { Ok(Box::new(meta) as Box<dyn DavMetaData>) }.boxed()
    }

    fn write_buf(&'_ mut self, _buf: Box<dyn Buf + Send>) -> FsFuture<'_, ()> {
        async { Err(FsError::Forbidden) }.boxed()
    }

    fn write_bytes(&'_ mut self, _buf: Bytes) -> FsFuture<'_, ()> {
        async { Err(FsError::Forbidden) }.boxed()
    }

    fn read_bytes(&'_ mut self, count: usize) -> FsFuture<'_, Bytes> {
        async move {
            let size = self.entry.node().size as u64;
            if self.offset >= size || count == 0 {
                return Ok(Bytes::new());
            }
            if self.body.is_none() {
                if self.entry.node().is_collection() {
                    return Err(FsError::Forbidden);
                }
                let body = self
                    .app
                    .tree
                    .stream_content(self.entry.node(), self.offset, size - self.offset)
                    .await;
                self.body = Some(body.map_err(|_| FsError::GeneralFailure)?);
            }
            if self.chunk.is_empty()
                && let Some(body) = self.body.as_mut()
            {
                self.chunk = match body.next().await {
                    Some(chunk) => chunk.map_err(|_| FsError::GeneralFailure)?,
                    None => return Ok(Bytes::new()),
                };
            }
            // Never more than asked: dav-server sends what it gets as the requested range.
            let part = self.chunk.split_to(count.min(self.chunk.len()));
            self.offset += part.len() as u64;
            Ok(part)
        }
        .boxed()
    }

    fn seek(&'_ mut self, pos: SeekFrom) -> FsFuture<'_, u64> {
        async move {
            let size = self.entry.node().size;
            let target = match pos {
                SeekFrom::Start(n) => n as i64,
                SeekFrom::End(n) => size + n,
                SeekFrom::Current(n) => self.offset as i64 + n,
            };
            if target < 0 {
                return Err(FsError::GeneralFailure);
            }
            if target as u64 != self.offset {
                self.offset = target as u64;
                self.body = None;
                self.chunk = Bytes::new();
            }
            Ok(self.offset)
        }
        .boxed()
    }

    fn flush(&'_ mut self) -> FsFuture<'_, ()> {
        async { Ok(()) }.boxed()
    }
}

type Chunk = std::io::Result<Bytes>;

/// A file open for writing: chunks stream into `Tree::write`, which commits on `flush`.
/// Dropped without `flush` (the client went away), the upload is aborted: nothing is kept.
struct WriteFile {
    path: TreePath,
    sender: Option<mpsc::Sender<Chunk>>,
    task: Option<JoinHandle<Result<Entry, Error>>>,
    written: u64,
    committed: Option<Entry>,
}

impl std::fmt::Debug for WriteFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WriteFile({}, {} bytes)", self.path, self.written)
    }
}

impl WriteFile {
    fn start(app: SharedApp, principal: Principal, path: TreePath) -> WriteFile {
        let (sender, mut receiver) = mpsc::channel::<Chunk>(8);
        let body = futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx));
        let task_path = path.clone();
        // A large file's MD5 is computed after the commit (`files::etags`), not on the way: it
        // would be half of the upload's CPU.
        let options = Write {
            md5: Md5When::Later,
            ..Write::default()
        };
        let task = tokio::spawn(async move {
            app.tree
                .write(&principal, &task_path, Box::pin(body), &options)
                .await
        });
        WriteFile {
            path,
            sender: Some(sender),
            task: Some(task),
            written: 0,
            committed: None,
        }
    }

    async fn send(&mut self, bytes: Bytes) -> FsResult<()> {
        self.written += bytes.len() as u64;
        let sender = self.sender.as_ref().ok_or(FsError::GeneralFailure)?;
        if sender.send(Ok(bytes)).await.is_err() {
            // The writer stopped early: its error comes out at flush.
            return self.finish().await.map(|_| ());
        }
        Ok(())
    }

    async fn finish(&mut self) -> FsResult<Entry> {
        if let Some(entry) = &self.committed {
            return Ok(entry.clone());
        }
        self.sender = None;
        let task = self.task.take().ok_or(FsError::GeneralFailure)?;
        let entry = task
            .await
            .map_err(|_| FsError::GeneralFailure)?
            .map_err(fs_error)?;
        self.committed = Some(entry.clone());
        Ok(entry)
    }
}

impl Drop for WriteFile {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            // Never flushed: stop the upload before it can see a clean end of stream.
            task.abort();
            if let Some(sender) = self.sender.take() {
                let _ = sender.try_send(Err(std::io::Error::other("the upload was interrupted")));
            }
        }
    }
}

impl DavFile for WriteFile {
    fn metadata(&'_ mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        async move {
            let meta = match &self.committed {
                Some(entry) => Meta::of(entry),
                None => Meta {
                    len: self.written,
                    modified: SystemTime::now(),
                    is_dir: false,
                    etag: None,
                },
            };
            Ok(Box::new(meta) as Box<dyn DavMetaData>)
        }
        .boxed()
    }

    fn write_buf(&'_ mut self, mut buf: Box<dyn Buf + Send>) -> FsFuture<'_, ()> {
        async move {
            let bytes = buf.copy_to_bytes(buf.remaining());
            self.send(bytes).await
        }
        .boxed()
    }

    fn write_bytes(&'_ mut self, buf: Bytes) -> FsFuture<'_, ()> {
        async move { self.send(buf).await }.boxed()
    }

    fn read_bytes(&'_ mut self, _count: usize) -> FsFuture<'_, Bytes> {
        async { Err(FsError::Forbidden) }.boxed()
    }

    fn seek(&'_ mut self, pos: SeekFrom) -> FsFuture<'_, u64> {
        // Streaming writes only: staying in place is all we can do.
        let here = self.written;
        async move {
            match pos {
                SeekFrom::Start(n) if n == here => Ok(here),
                SeekFrom::Current(0) => Ok(here),
                _ => Err(FsError::NotImplemented),
            }
        }
        .boxed()
    }

    fn flush(&'_ mut self) -> FsFuture<'_, ()> {
        async move { self.finish().await.map(|_| ()) }.boxed()
    }
}
