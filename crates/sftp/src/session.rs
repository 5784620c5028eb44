//! One SFTP session: packets read off the SSH channel, answered in order against the file
//! tree as the session's credential sees it. Requests are handled one at a time; clients
//! pipeline them (OpenSSH keeps 64 in flight), so the channel stays full.
//!
//! Every request first re-checks the login's credential (a cache hit, about a microsecond):
//! a token revoked, a password changed or an account locked while a session is open is
//! refused on the session's next request, which ends the session.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::budget::Budget;
use super::packet::{self, Attrs, Code, Name, Request};
use cells_core::SharedApp;
use cells_core::auth::Client;
use cells_core::auth::principal::Principal;
use cells_core::error::Error;
use cells_core::files::blob::{BlobFile, BlobStore, Draft, Md5When, bytes_stream};
use cells_core::files::path::TreePath;
use cells_core::files::{Entry, Tree, Write};
use cells_core::records::NodeId;

/// Open handles per session; more is refused with a clear status (OpenSSH's client keeps a
/// few; a client holding hundreds is leaking them).
pub const MAX_HANDLES: usize = 256;
/// Directory entries per READDIR reply.
const NAMES_PER_READDIR: usize = 128;
/// Replies are sent once this much is waiting, or when no request is waiting.
const FLUSH_AT: usize = 512 * 1024;
/// Requests read ahead of the one being answered: at most this many, of at most this many
/// bytes in all (OpenSSH's client keeps 64 requests of up to 255 KiB in flight).
const QUEUED_PACKETS: usize = 1024;
const QUEUED_BYTES: usize = 16 << 20;

/// Who the session runs as: the login and the credential it authenticated with, re-checked
/// on every request.
#[derive(Clone)]
pub struct Login {
    pub login: String,
    pub credential: Credential,
    pub client: Client,
}

#[derive(Clone)]
pub enum Credential {
    /// The password, or a personal or OAuth access token of the login.
    Secret(String),
    /// A registered SSH public key, by fingerprint.
    SshKey(String),
}

/// What a path names: the root that lists the workspaces, or a place in the tree.
enum Target {
    Root,
    Tree(TreePath),
}

enum Handle {
    Read {
        entry: Box<Entry>,
        content: Stored,
    },
    Write(Box<Upload>),
    /// A folder listing, and the bytes of memory it was counted for.
    Dir {
        names: VecDeque<Name>,
        held: usize,
    },
}

/// Where a file opened for reading has its content.
enum Stored {
    /// A blob, read at any offset.
    File(Arc<BlobFile>),
    /// A small file's content, kept in its row (`files::inline`) and read at OPEN, while the
    /// session's and the server's budgets allow.
    Memory(Bytes),
    /// A small file's content, read from its row at each READ (over budget).
    Row,
}

/// The most an upload keeps in memory before it moves to a draft file, and the most all the
/// uploads and small files read of a session keep (so `MAX_HANDLES` open files cost no more
/// than this).
const MEMORY_UPLOAD: usize = 256 * 1024;
const SESSION_MEMORY: usize = 1024 * 1024;
/// The most the folder listings of a session hold, estimated; one listing of any size is
/// always allowed while the server's budget (`budget::SERVER_MEMORY`) has room.
const LISTING_MEMORY: usize = 16 << 20;

struct Session {
    app: SharedApp,
    /// `app.tree` without ETags (`Tree::without_etags`): SFTP shows none.
    tree: Tree,
    login: Login,
    principal: Principal,
    handles: HashMap<u32, Handle>,
    next_handle: u32,
    /// Bytes of this session's uploads and small files read held in memory, at most
    /// `SESSION_MEMORY`.
    in_memory: usize,
    /// Bytes held by open folder listings, mostly at most `LISTING_MEMORY`.
    listed: usize,
    /// The server's budget, and what this session took of it (given back when it ends).
    budget: Arc<Budget>,
    from_budget: usize,
    out: BytesMut,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.budget.give(self.from_budget);
    }
}

/// What the reader task hands over.
enum Incoming {
    Packet {
        kind: u8,
        body: Bytes,
        /// Its share of `QUEUED_BYTES`, given back once it has been answered.
        _permit: OwnedSemaphorePermit,
    },
    /// A packet longer than `MAX_PACKET`, skipped whole (bounded memory): its id and length.
    Oversized { id: u32, len: usize },
    /// A zero length: not even a type byte, nothing to answer and nothing to trust after it.
    Garbage,
}

/// Serve one SFTP session on `stream` until the client closes it or its credential stops
/// being valid. `ending` runs after the last reply and before the end of the stream: the SSH
/// adapter sends the `exit-status` there (RFC 4254 §6.10), which restic and OpenSSH's `sftp`
/// check when they close.
///
/// Packets are read by a task of their own, so that the channel is always drained: russh
/// stops reading the connection (window adjustments included) when a channel's queue is
/// full, so a server that stopped reading while it waited to write (the client's window
/// full of large READ replies) would wait forever.
pub async fn run<S>(
    app: SharedApp,
    login: Login,
    principal: Principal,
    stream: S,
    budget: Arc<Budget>,
    ending: impl Future<Output = ()>,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (reader, mut writer) = tokio::io::split(stream);
    let (sender, mut incoming) = mpsc::channel(QUEUED_PACKETS);
    let queued = Arc::new(Semaphore::new(QUEUED_BYTES));
    let reading = tokio::spawn(read_packets(reader, sender, queued));
    let mut session = Session {
        tree: app.tree.without_etags(),
        app,
        login,
        principal,
        handles: HashMap::new(),
        next_handle: 1,
        in_memory: 0,
        listed: 0,
        budget,
        from_budget: 0,
        out: BytesMut::with_capacity(FLUSH_AT * 2),
    };
    let mut initialized = false;
    let outcome = async {
        loop {
            let next = match incoming.try_recv() {
                Ok(next) => next,
                Err(TryRecvError::Empty) => {
                    // Nothing else waiting: send what is ready before waiting for more.
                    session.flush(&mut writer).await?;
                    if session.drained() {
                        break;
                    }
                    let app = session.app.clone();
                    let next = tokio::select! {
                        next = incoming.recv() => next,
                        // Shutting down while idle with nothing open: end the session now.
                        () = app.draining(), if session.handles.is_empty() => break,
                        // Past the shutdown deadline: end it whatever is open.
                        () = app.cutting() => break,
                    };
                    match next {
                        Some(next) => next,
                        None => break,
                    }
                }
                Err(TryRecvError::Disconnected) => break,
            };
            let go_on = match next {
                Incoming::Garbage => false,
                Incoming::Oversized { id, len } => {
                    let message = format!(
                        "packet of {len} bytes is larger than the {} accepted",
                        packet::MAX_PACKET
                    );
                    packet::status(&mut session.out, id, Code::BadMessage, &message);
                    true
                }
                Incoming::Packet { kind, body, .. } if !initialized => {
                    initialized = true;
                    session.init(kind, body)
                }
                Incoming::Packet { kind, body, .. } => session.handle(kind, body).await,
            };
            if !go_on {
                break;
            }
            if session.out.len() >= FLUSH_AT {
                session.flush(&mut writer).await?;
            }
        }
        session.flush(&mut writer).await
    }
    .await;
    reading.abort();
    session.abandon_uploads().await;
    ending.await;
    let _ = writer.shutdown().await;
    outcome
}

/// Read packets off the channel into `sender`, until the client closes it.
async fn read_packets<R: AsyncRead + Unpin>(
    reader: R,
    sender: mpsc::Sender<Incoming>,
    budget: Arc<Semaphore>,
) -> io::Result<()> {
    let mut reader = BufReader::with_capacity(packet::MAX_PACKET, reader);
    loop {
        let len = match reader.read_u32().await {
            Ok(len) => len as usize,
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(error) => return Err(error),
        };
        let next = if len == 0 {
            Incoming::Garbage
        } else if len > packet::MAX_PACKET {
            let mut head = [0u8; 5];
            reader.read_exact(&mut head).await?;
            let id = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
            let rest = (len - head.len()) as u64;
            let skipped = tokio::io::copy(&mut (&mut reader).take(rest), &mut tokio::io::sink()).await?;
            if skipped < rest {
                return Ok(());
            }
            Incoming::Oversized { id, len }
        } else {
            let permit = budget
                .clone()
                .acquire_many_owned(len as u32)
                .await
                .map_err(io::Error::other)?;
            // Read into spare capacity: zeroing the buffer first cost 2.6 % of a large put.
            let mut body = BytesMut::with_capacity(len);
            while body.len() < len {
                let wanted = len - body.len();
                if reader.read_buf(&mut (&mut body).limit(wanted)).await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
            let kind = body[0];
            Incoming::Packet {
                kind,
                body: body.freeze().slice(1..),
                _permit: permit,
            }
        };
        let last = matches!(next, Incoming::Garbage);
        if sender.send(next).await.is_err() || last {
            return Ok(());
        }
    }
}

impl Session {
    /// Whether the server is shutting down and this session holds nothing open: it ends.
    fn drained(&self) -> bool {
        self.app.is_draining() && self.handles.is_empty()
    }

    /// Send the replies written so far.
    async fn flush<W: AsyncWrite + Unpin>(&mut self, writer: &mut W) -> io::Result<()> {
        if !self.out.is_empty() {
            writer.write_all(&self.out).await?;
            writer.flush().await?;
            self.out.clear();
        }
        Ok(())
    }

    /// The first packet: INIT, answered with our version and extensions; anything else ends
    /// the session (§4).
    fn init(&mut self, kind: u8, body: Bytes) -> bool {
        if kind != packet::INIT || Request::parse(kind, body).is_err() {
            return false;
        }
        packet::version(
            &mut self.out,
            &[
                ("posix-rename@openssh.com", b"1"),
                ("limits@openssh.com", b"1"),
                ("fsync@openssh.com", b"1"),
            ],
        );
        true
    }

    /// Answer one request; `false` ends the session.
    async fn handle(&mut self, kind: u8, body: Bytes) -> bool {
        let request = match Request::parse(kind, body) {
            Ok(request) => request,
            Err(malformed) => {
                let id = malformed.id.unwrap_or(0);
                packet::status(&mut self.out, id, Code::BadMessage, "malformed packet");
                return true;
            }
        };
        let id = request_id(&request);
        if self.app.is_draining() && matches!(request, Request::Open { .. } | Request::Opendir { .. }) {
            // Shutting down: what is open finishes, nothing new starts.
            let message = "the server is shutting down; reconnect in a moment";
            packet::status(&mut self.out, id, Code::Failure, message);
            return true;
        }
        if let Err(error) = self.recheck().await {
            if let Error::Unavailable(_) = error {
                // An outage is no reason to end the session: this request fails, the next
                // one after the recovery works.
                let (code, message) = status_of(&error);
                packet::status(&mut self.out, id, code, &message);
                return true;
            }
            let message = format!("{error}; this session is closed");
            packet::status(&mut self.out, id, Code::PermissionDenied, &message);
            return false;
        }
        if let Err(error) = self.answer(request).await {
            let (code, message) = status_of(&error);
            packet::status(&mut self.out, id, code, &message);
        }
        true
    }

    /// The credential the session opened with, checked again (see the module docs).
    async fn recheck(&mut self) -> cells_core::error::Result<()> {
        let login = &self.login;
        let auth = &self.app.auth;
        self.principal = match &login.credential {
            Credential::Secret(secret) => {
                auth.authenticate_password(&login.login, secret, login.client)
                    .await?
            }
            Credential::SshKey(fingerprint) => {
                auth.authenticate_ssh_key(&login.login, fingerprint, login.client)
                    .await?
            }
        };
        Ok(())
    }

    async fn answer(&mut self, request: Request) -> cells_core::error::Result<()> {
        match request {
            Request::Init { .. } => Err(Error::invalid("INIT", "was already sent")),
            Request::Open { id, path, flags, .. } => {
                let target = self.target(&path)?;
                // Before the open: what it holds (memory, a file) would be lost past the limit.
                self.room_for_a_handle()?;
                let handle = self.open(target, flags).await?;
                let number = self.add_handle(handle)?;
                packet::handle(&mut self.out, id, number.to_string().as_bytes());
                Ok(())
            }
            Request::Close { id, handle } => {
                let handle = self
                    .handles
                    .remove(&parse_handle(&handle)?)
                    .ok_or_else(bad_handle)?;
                match handle {
                    Handle::Write(upload) => {
                        self.in_memory -= upload.in_memory();
                        self.commit(*upload).await?;
                    }
                    Handle::Read {
                        content: Stored::Memory(data),
                        ..
                    } => {
                        self.in_memory -= data.len();
                        self.give_back(data.len());
                    }
                    Handle::Dir { held, .. } => {
                        self.listed -= held;
                        self.give_back(held);
                    }
                    Handle::Read { .. } => {}
                }
                self.ok(id)
            }
            Request::Read {
                id,
                handle,
                offset,
                len,
            } => self.read(id, &handle, offset, len).await,
            Request::Write {
                id,
                handle,
                offset,
                data,
            } => {
                self.write(&handle, offset, data).await?;
                self.ok(id)
            }
            Request::Stat { id, path } | Request::Lstat { id, path } => {
                let attrs = match self.target(&path)? {
                    Target::Root => self.root_attrs(),
                    Target::Tree(path) => attrs_of(&self.tree.stat(&self.principal, &path).await?),
                };
                packet::attrs(&mut self.out, id, &attrs);
                Ok(())
            }
            Request::Fstat { id, handle } => {
                let attrs = match self.handles.get(&parse_handle(&handle)?).ok_or_else(bad_handle)? {
                    Handle::Read { entry, .. } => attrs_of(entry),
                    Handle::Write(upload) => Attrs {
                        size: Some(upload.size),
                        permissions: Some(FILE_MODE),
                        times: Some(times(upload.mtime.unwrap_or_else(cells_core::records::now))),
                        ..Attrs::default()
                    },
                    Handle::Dir { .. } => self.root_attrs(),
                };
                packet::attrs(&mut self.out, id, &attrs);
                Ok(())
            }
            Request::Setstat { id, path, attrs } => {
                match self.target(&path)? {
                    Target::Root => {}
                    Target::Tree(path) => self.setstat(&path, &attrs).await?,
                }
                self.ok(id)
            }
            Request::Fsetstat { id, handle, attrs } => {
                let number = parse_handle(&handle)?;
                match self.handles.get_mut(&number).ok_or_else(bad_handle)? {
                    Handle::Write(upload) => {
                        if let Some((_, mtime)) = attrs.times {
                            upload.mtime = Some(i64::from(mtime));
                        }
                        if let Some(size) = attrs.size {
                            self.tree.check_file_size(size)?;
                            let freed = upload.in_memory();
                            let draft = upload.draft(self.tree.blobs()).await?;
                            self.in_memory -= freed;
                            draft.set_len(size).await?;
                            upload.size = size;
                        }
                    }
                    Handle::Read { entry, .. } => {
                        let path = entry.path().clone();
                        self.setstat(&path, &attrs).await?;
                    }
                    Handle::Dir { .. } => {}
                }
                self.ok(id)
            }
            Request::Opendir { id, path } => {
                self.room_for_a_handle()?;
                let names = self.list(self.target(&path)?).await?;
                let held: usize = names
                    .iter()
                    .map(|name| name.filename.len() + name.longname.len() + std::mem::size_of::<Name>())
                    .sum();
                if self.listed > 0 && self.listed + held > LISTING_MEMORY {
                    return Err(Error::Conflict(
                        "too many folder listings are open in this session; close some first".into(),
                    ));
                }
                if !self.take(held) {
                    return Err(Error::Conflict("the server is busy; try again later".into()));
                }
                self.listed += held;
                let handle = Handle::Dir {
                    names: names.into(),
                    held,
                };
                let number = match self.add_handle(handle) {
                    Ok(number) => number,
                    Err(error) => {
                        self.listed -= held;
                        self.give_back(held);
                        return Err(error);
                    }
                };
                packet::handle(&mut self.out, id, number.to_string().as_bytes());
                Ok(())
            }
            Request::Readdir { id, handle } => {
                let number = parse_handle(&handle)?;
                let Some(Handle::Dir { names, .. }) = self.handles.get_mut(&number) else {
                    return Err(bad_handle());
                };
                if names.is_empty() {
                    packet::status(&mut self.out, id, Code::Eof, "end of folder");
                } else {
                    let batch: Vec<Name> = names.drain(..names.len().min(NAMES_PER_READDIR)).collect();
                    packet::names(&mut self.out, id, &batch);
                }
                Ok(())
            }
            Request::Remove { id, path } => {
                let path = self.tree_path(&path)?;
                let entry = self.tree.stat(&self.principal, &path).await?;
                if entry.node().is_collection() {
                    return Err(Error::Conflict(format!("{path} is a folder; use rmdir")));
                }
                self.tree.delete(&self.principal, &path).await?;
                self.ok(id)
            }
            Request::Mkdir { id, path } => {
                let path = self.tree_path(&path)?;
                self.tree.create_folder(&self.principal, &path, false).await?;
                self.ok(id)
            }
            Request::Rmdir { id, path } => {
                let path = self.tree_path(&path)?;
                let (folder, children) = self.tree.list(&self.principal, &path).await?;
                if !folder.node().is_collection() {
                    return Err(Error::Conflict(format!("{path} is not a folder")));
                }
                if !children.is_empty() {
                    return Err(Error::Conflict(format!("folder {path} is not empty")));
                }
                self.tree.delete(&self.principal, &path).await?;
                self.ok(id)
            }
            Request::Realpath { id, path } => {
                let path = normalize(&path)?;
                let name = Name {
                    filename: path.clone(),
                    longname: path,
                    attrs: Attrs::default(),
                };
                packet::names(&mut self.out, id, &[name]);
                Ok(())
            }
            Request::Rename { id, from, to } => {
                // Version 3 rename refuses an existing target (as OpenSSH's server does).
                let (from, to) = (self.tree_path(&from)?, self.tree_path(&to)?);
                self.tree.rename(&self.principal, &from, &to).await?;
                self.ok(id)
            }
            Request::Readlink { id } | Request::Symlink { id } => {
                packet::status(
                    &mut self.out,
                    id,
                    Code::OpUnsupported,
                    "symbolic links are not supported",
                );
                Ok(())
            }
            Request::Extended { id, name, data } => self.extended(id, &name, data).await,
            Request::Unknown { id } => {
                packet::status(&mut self.out, id, Code::OpUnsupported, "unknown request type");
                Ok(())
            }
        }
    }

    fn ok(&mut self, id: u32) -> cells_core::error::Result<()> {
        packet::status(&mut self.out, id, Code::Ok, "ok");
        Ok(())
    }

    /// Take `bytes` of the server's budget for this session.
    fn take(&mut self, bytes: usize) -> bool {
        let taken = self.budget.take(bytes);
        if taken {
            self.from_budget += bytes;
        }
        taken
    }

    fn give_back(&mut self, bytes: usize) {
        self.budget.give(bytes);
        self.from_budget -= bytes;
    }

    fn room_for_a_handle(&self) -> cells_core::error::Result<()> {
        if self.handles.len() >= MAX_HANDLES {
            return Err(Error::Conflict(format!(
                "too many open handles (at most {MAX_HANDLES}); close some first"
            )));
        }
        Ok(())
    }

    fn add_handle(&mut self, handle: Handle) -> cells_core::error::Result<u32> {
        self.room_for_a_handle()?;
        // Numbers are never reused, so a handle used after its CLOSE is refused.
        let number = self.next_handle;
        self.next_handle = self.next_handle.wrapping_add(1);
        self.handles.insert(number, handle);
        Ok(number)
    }

    fn target(&self, path: &[u8]) -> cells_core::error::Result<Target> {
        let path = normalize(path)?;
        if path == "/" {
            return Ok(Target::Root);
        }
        Ok(Target::Tree(TreePath::parse(&path)?))
    }

    fn tree_path(&self, path: &[u8]) -> cells_core::error::Result<TreePath> {
        match self.target(path)? {
            Target::Root => Err(Error::Forbidden(
                "/ lists the workspaces and cannot change".into(),
            )),
            Target::Tree(path) => Ok(path),
        }
    }

    fn root_attrs(&self) -> Attrs {
        Attrs {
            size: Some(0),
            permissions: Some(FOLDER_MODE),
            times: Some(times(self.app.started_at)),
            ..Attrs::default()
        }
    }

    async fn open(&mut self, target: Target, flags: u32) -> cells_core::error::Result<Handle> {
        let Target::Tree(path) = target else {
            return Err(Error::Conflict("/ is a folder".into()));
        };
        let tree = &self.tree;
        if flags & packet::OPEN_WRITE == 0 {
            let entry = tree.readable(&self.principal, &path).await?;
            let Some(blob) = entry.node().blob_id.clone() else {
                return Err(Error::IsFolder(path.to_string()));
            };
            let inline = tree.inline_data(entry.node()).await?;
            // The handle keeps the entry for FSTAT, not the bytes the walk brought along: those
            // are kept only in `Stored::Memory`, within the budgets, and as a copy of their own
            // (a slice would keep the whole buffer it came from).
            let entry = entry.without_data();
            let content = match inline {
                Some(data)
                    if self.in_memory + data.len() <= SESSION_MEMORY && self.budget.take(data.len()) =>
                {
                    self.from_budget += data.len();
                    self.in_memory += data.len();
                    Stored::Memory(Bytes::copy_from_slice(&data))
                }
                Some(_) => Stored::Row,
                None => Stored::File(Arc::new(tree.blobs().open_file(&blob).await?)),
            };
            return Ok(Handle::Read {
                entry: Box::new(entry),
                content,
            });
        }
        self.open_for_writing(path, flags).await
    }

    async fn read(&mut self, id: u32, handle: &[u8], offset: u64, len: u32) -> cells_core::error::Result<()> {
        let (file, size) = match self.handles.get(&parse_handle(handle)?).ok_or_else(bad_handle)? {
            Handle::Read { entry, content } => match content {
                Stored::File(file) => (file.clone(), entry.node().size.max(0) as u64),
                Stored::Memory(data) => {
                    reply_from_memory(&mut self.out, id, data, offset, len);
                    return Ok(());
                }
                Stored::Row => {
                    let data = self.tree.inline_data(entry.node()).await?.unwrap_or_default();
                    reply_from_memory(&mut self.out, id, &data, offset, len);
                    return Ok(());
                }
            },
            Handle::Write(upload) => match &upload.content {
                Written::Memory(buffer) => {
                    reply_from_memory(&mut self.out, id, buffer, offset, len);
                    return Ok(());
                }
                Written::Draft(draft) => (Arc::new(draft.reader()), upload.size),
            },
            Handle::Dir { .. } => return Err(Error::Conflict("this handle is a folder".into())),
        };
        if offset >= size {
            packet::status(&mut self.out, id, Code::Eof, "end of file");
            return Ok(());
        }
        let len = (len.min(packet::MAX_DATA) as u64).min(size - offset) as usize;
        let data = file.read_at(len, offset).await?;
        if data.is_empty() {
            packet::status(&mut self.out, id, Code::Eof, "end of file");
            return Ok(());
        }
        let _ = packet::data(&mut self.out, id, data.len(), |buf| {
            buf.copy_from_slice(&data);
            Ok::<_, std::convert::Infallible>(data.len())
        });
        Ok(())
    }

    /// SETSTAT: the modification time, and a new size (truncate or extend); permissions and
    /// owners have no meaning here and are accepted as they are.
    async fn setstat(&self, path: &TreePath, attrs: &Attrs) -> cells_core::error::Result<()> {
        let tree = &self.tree;
        if let Some(size) = attrs.size {
            let entry = tree.stat(&self.principal, path).await?;
            if entry.node().is_collection() {
                return Err(Error::IsFolder(path.to_string()));
            }
            if size != entry.node().size.max(0) as u64 {
                tree.check_file_size(size)?;
                if !tree.can_write_at(&self.principal, path).await? {
                    return Err(Error::Forbidden(format!("this credential may not write {path}")));
                }
                let draft = tree.draft_of(Some(entry.node())).await?;
                draft.set_len(size).await?;
                let written = tree.blobs().finish(draft, Md5When::Later).await?;
                tree.commit_blob(&self.principal, path, written, None, &Write::default())
                    .await?;
            }
        }
        if let Some((_, mtime)) = attrs.times {
            tree.set_mtime(&self.principal, path, i64::from(mtime)).await?;
        }
        Ok(())
    }
}

/// An SFTP path made absolute (relative paths start at `/`) with `.` and `..` resolved;
/// `..` never goes above `/`.
fn normalize(path: &[u8]) -> cells_core::error::Result<String> {
    let text = std::str::from_utf8(path).map_err(|_| Error::invalid("path", "is not UTF-8"))?;
    let mut parts: Vec<&str> = Vec::new();
    for segment in text.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            name => parts.push(name),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

fn parse_handle(handle: &[u8]) -> cells_core::error::Result<u32> {
    std::str::from_utf8(handle)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(bad_handle)
}

fn bad_handle() -> Error {
    Error::invalid("handle", "is not open (never opened, or already closed)")
}

fn request_id(request: &Request) -> u32 {
    match request {
        Request::Init { .. } => 0,
        Request::Open { id, .. }
        | Request::Close { id, .. }
        | Request::Read { id, .. }
        | Request::Write { id, .. }
        | Request::Lstat { id, .. }
        | Request::Fstat { id, .. }
        | Request::Setstat { id, .. }
        | Request::Fsetstat { id, .. }
        | Request::Opendir { id, .. }
        | Request::Readdir { id, .. }
        | Request::Remove { id, .. }
        | Request::Mkdir { id, .. }
        | Request::Rmdir { id, .. }
        | Request::Realpath { id, .. }
        | Request::Stat { id, .. }
        | Request::Rename { id, .. }
        | Request::Readlink { id }
        | Request::Symlink { id }
        | Request::Extended { id, .. }
        | Request::Unknown { id } => *id,
    }
}

/// An error in SFTP terms (§7): the status code and a message for the user.
fn status_of(error: &Error) -> (Code, String) {
    let code = match error {
        Error::NotFound(_) => Code::NoSuchFile,
        Error::ParentMissing(_) => Code::NoSuchFile,
        Error::Forbidden(_) | Error::Unauthenticated(_) | Error::AccountLocked | Error::Throttled(_) => {
            Code::PermissionDenied
        }
        Error::Internal(cause) => {
            tracing::warn!(error = %cause, "sftp request failed");
            Code::Failure
        }
        // SFTP v3 has no codes for these (v6's LOCK_CONFLICT and NO_SPACE_ON_FILESYSTEM are
        // not in the version clients speak): FAILURE, with the reason first in the message.
        Error::Locked(message) => return (Code::Failure, format!("locked: {message}")),
        Error::Unavailable(_) => return (Code::Failure, format!("temporarily unavailable: {error}")),
        Error::InsufficientStorage(message) => return (Code::Failure, format!("no space left: {message}")),
        _ => Code::Failure,
    };
    (code, error.to_string())
}

/// Answer READ `id` of `len` bytes from `offset` out of `content` held in memory: DATA, or
/// EOF from its end on.
fn reply_from_memory(out: &mut BytesMut, id: u32, content: &[u8], offset: u64, len: u32) {
    let start = usize::try_from(offset).unwrap_or(usize::MAX).min(content.len());
    let end = start
        .saturating_add(len.min(packet::MAX_DATA) as usize)
        .min(content.len());
    if start == end {
        packet::status(out, id, Code::Eof, "end of file");
        return;
    }
    let data = &content[start..end];
    let _ = packet::data(out, id, data.len(), |buf| {
        buf.copy_from_slice(data);
        Ok::<_, std::convert::Infallible>(data.len())
    });
}

mod extended;
mod listing;
mod upload;
use listing::{FILE_MODE, FOLDER_MODE, attrs_of, times};
use upload::{Upload, Written};
#[cfg(test)]
mod tests;
