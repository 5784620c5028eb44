//! File content: immutable blobs behind one trait, `BlobStore`, with three implementations:
//! local disk (`local`, the default), an S3-compatible object store (`object`) and memory
//! (`memory`, for unit tests).
//!
//! A blob is written durably under a new id before the caller commits the node row that
//! points at it, so a crash at any moment leaves either the old content or the new, never half
//! a file. A blob no row points at (a crash before the commit) is removed by the sweep. Blobs
//! never change once written: a copy or a concatenation (an S3 multipart upload's parts) is a
//! new blob, made where the store can without reading the bytes back (hard links on disk,
//! server-side copies in an object store).
//!
//! Nothing here hands out a `std::fs` type: reads are streams, readers or `BlobFile` (reads
//! at any offset), and writes at any offset (SFTP) go to a `Draft`, which is a spool file on
//! this node's disk whatever the store: written in place on local disk, uploaded whole by
//! `finish` to an object store.

use std::collections::HashSet;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use md5::{Digest, Md5};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The body of an upload, whatever protocol it came from.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;
/// A download: a blob's content, or a range of it, as chunks to send as they are.
pub type DownloadStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send + Sync>>;
/// A blob's content, or a range of it.
pub type BlobReader = Pin<Box<dyn AsyncRead + Send + Sync>>;

/// What a finished write produced.
#[derive(Debug, Clone)]
pub struct WrittenBlob {
    pub id: String,
    pub size: u64,
    /// Hex MD5 of the content: the ETag (as S3 computes it for single-part objects); `""`
    /// from `finish` with `Md5When::Later`, to be computed after the commit (`files::etags`).
    pub md5: String,
    /// The content itself when it is kept in the node's row (`files::inline`), not a blob.
    pub inline: Option<Bytes>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub temp_files: usize,
    pub orphan_blobs: usize,
}

/// When `BlobStore::put` and `BlobStore::finish` compute a blob's MD5.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Md5When {
    /// Before the call returns: `put` hashes on the way, `finish` reads the draft back.
    #[default]
    Now,
    /// After the commit: the node is committed with etag `""`, and `files::etags` hashes the
    /// blob (see there why). `finish` does not hash at all; `put` still hashes a body of at
    /// most `HASH_ON_THE_WAY` bytes as it comes, which costs next to nothing, and leaves the
    /// MD5 out only for a larger one.
    Later,
}

/// The largest body `put` with `Md5When::Later` still hashes on the way (see there). It is a
/// few tens of milliseconds of CPU; beyond it, hashing is about half of a large upload's CPU
/// (MD5 runs at ~790 MB/s here, on one of two cores the upload needs).
pub const HASH_ON_THE_WAY: u64 = 16 << 20;

#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Write all of `body` to a new blob, durably, hashed as `md5` says. On any error nothing
    /// is left behind.
    async fn put(&self, body: ByteStream, md5: Md5When) -> io::Result<WrittenBlob>;
    /// Read `length` bytes from `offset` (the whole blob with `offset` 0 and `length` = size).
    async fn open(&self, id: &str, offset: u64, length: u64) -> io::Result<BlobReader>;
    /// The same bytes as `open`, as chunks to send as they are (downloads).
    async fn stream(&self, id: &str, offset: u64, length: u64) -> io::Result<DownloadStream>;
    /// A new blob with the same content as `id`, written as durably as `put`.
    async fn copy(&self, id: &str) -> io::Result<String>;
    /// A new blob holding the blobs `ids` one after the other, written as durably as `put`
    /// (an S3 multipart upload's parts). Returns its id and size; its content is not hashed.
    async fn concat(&self, ids: &[String]) -> io::Result<(String, u64)>;
    /// Blob `id` for reads at any offset (SFTP).
    async fn open_file(&self, id: &str) -> io::Result<BlobFile>;
    /// A new blob written at any offset (SFTP): empty, or a copy of blob `from`. Nothing of it
    /// is visible until `finish`; dropped unfinished, it is removed.
    async fn draft(&self, from: Option<&str>) -> io::Result<Draft>;
    /// Make `draft` a blob, written as durably as `put`, hashed as `md5` says.
    async fn finish(&self, draft: Draft, md5: Md5When) -> io::Result<WrittenBlob>;
    /// The hex MD5 of blob `id`, read on the calling thread (a blocking one), calling
    /// `between` between reads.
    fn md5_blocking(&self, id: &str, between: &mut dyn FnMut()) -> io::Result<String>;
    /// Remove a blob; a missing blob is not an error.
    async fn delete(&self, id: &str) -> io::Result<()>;
    /// A name for this store that stays the same across restarts, shared by every node that
    /// uses the same store (the name of its sweep's lease).
    fn name(&self) -> &str;
    /// Remove temp files and every blob not in `keep`, when last modified before `before`
    /// (`None`: whatever their age), except what is being written now (on this node, or on
    /// any node for a shared store: see `object`).
    async fn sweep(&self, keep: &HashSet<String>, before: Option<SystemTime>) -> io::Result<SweepReport>;
    /// Whether the store answers now (the server's watcher; `/healthz`). A local disk always
    /// does: its faults are answered where they happen.
    async fn ping(&self) -> io::Result<()> {
        Ok(())
    }
    /// Record what the watcher saw (see `ping`); returns whether that changed the state. A
    /// store that is known down refuses every operation at once as unavailable.
    fn record_health(&self, _answered: bool) -> bool {
        false
    }
    /// Whether the last ping failed.
    fn is_down(&self) -> bool {
        false
    }
    /// Refresh this node's intents (a shared store's writes in progress, see `object`).
    async fn heartbeat(&self) -> io::Result<()> {
        Ok(())
    }
}

/// The error of a store that does not answer (an object store down or unreachable): rendered
/// "unavailable" by every protocol, like a database outage (`error::Error::Unavailable`). Its
/// message is for clients; `detail` (the store's own words, naming its endpoint) only for logs
/// and `Debug`.
#[derive(Debug)]
pub struct StoreUnavailable {
    message: String,
    detail: String,
}

impl std::fmt::Display for StoreUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StoreUnavailable {}

impl StoreUnavailable {
    /// The store's own words, for an operator.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

/// An `io::Error` that says the store does not answer.
pub fn unavailable(message: impl Into<String>) -> io::Error {
    unavailable_because(message, String::new())
}

/// `unavailable`, with the cause kept for logs.
pub fn unavailable_because(message: impl Into<String>, detail: impl Into<String>) -> io::Error {
    io::Error::other(StoreUnavailable {
        message: message.into(),
        detail: detail.into(),
    })
}

/// Whether `error` came from `unavailable`.
pub fn is_unavailable(error: &io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.is::<StoreUnavailable>())
}

/// A blob being written at any offset (SFTP): a spool file on this node's disk that no row
/// names until `BlobStore::finish` makes it a blob. On local disk it is written in place
/// under its blob id (and synced early, see `write_at`); for an object store it is uploaded
/// by `finish`. Dropped unfinished, it is removed.
pub struct Draft {
    file: Arc<std::fs::File>,
    id: String,
    path: PathBuf,
    guard: TempGuard,
    /// Sync while it is written (it becomes the blob itself), or not (it is a spool file).
    early_sync: bool,
    /// Bytes written since the last early sync started (see `wrote`).
    unsynced: u64,
    syncing: Option<tokio::task::JoinHandle<io::Result<()>>>,
    sync_error: Option<io::Error>,
}

/// What `finish` takes from a draft once its early syncs are done.
struct Settled {
    file: Arc<std::fs::File>,
    id: String,
    path: PathBuf,
    guard: TempGuard,
}

impl Draft {
    fn new(file: std::fs::File, id: String, path: PathBuf, guard: TempGuard, early_sync: bool) -> Draft {
        Draft {
            file: Arc::new(file),
            id,
            path,
            guard,
            early_sync,
            unsynced: 0,
            syncing: None,
            sync_error: None,
        }
    }

    /// Write `data` at `offset` (past the end, the gap reads as zeros).
    pub async fn write_at(&mut self, data: Bytes, offset: u64) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let file = self.file.clone();
        let length = data.len() as u64;
        tokio::task::spawn_blocking(move || file.write_all_at(&data, offset))
            .await
            .map_err(io::Error::other)??;
        self.wrote(length);
        Ok(())
    }

    /// Truncate or extend to `size` bytes.
    pub async fn set_len(&self, size: u64) -> io::Result<()> {
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || file.set_len(size))
            .await
            .map_err(io::Error::other)?
    }

    /// What was written so far, for reads at any offset (an SFTP handle open for writing).
    pub fn reader(&self) -> BlobFile {
        BlobFile(Reading::Local(Arc::new(local::LocalFile::from(
            self.file.clone(),
        ))))
    }

    /// Count `bytes` more written to the file. Each time another `EARLY_SYNC` bytes were, an
    /// fdatasync starts on the blocking pool (unless the last one still runs), so the disk
    /// writes while the rest arrives and `finish` waits only for the tail, as a `put` does
    /// (`local::Writer::start`). A failed one fails `finish`: it shares the file description,
    /// whose write-back error only one fsync reports.
    fn wrote(&mut self, bytes: u64) {
        use futures_util::FutureExt as _;
        if !self.early_sync {
            return;
        }
        self.unsynced += bytes;
        if self.unsynced < local::EARLY_SYNC {
            return;
        }
        if let Some(syncing) = self.syncing.take() {
            if !syncing.is_finished() {
                self.syncing = Some(syncing);
                return;
            }
            if let Some(Err(error) | Ok(Err(error))) = syncing
                .now_or_never()
                .map(|joined| joined.map_err(io::Error::other))
            {
                self.sync_error.get_or_insert(error);
            }
        }
        self.unsynced = 0;
        let file = self.file.clone();
        self.syncing = Some(tokio::task::spawn_blocking(move || file.sync_data()));
    }

    /// Wait for the early sync still running; its error, or an earlier one, is the draft's.
    async fn settle(self) -> io::Result<Settled> {
        let Draft {
            file,
            id,
            path,
            guard,
            syncing,
            sync_error,
            ..
        } = self;
        if let Some(syncing) = syncing {
            syncing.await.map_err(io::Error::other)??;
        }
        if let Some(error) = sync_error {
            return Err(error);
        }
        Ok(Settled {
            file,
            id,
            path,
            guard,
        })
    }
}

/// A blob opened for reads at any offset (SFTP).
pub struct BlobFile(Reading);

enum Reading {
    /// A file on this node's disk (or the files of a parts folder).
    Local(Arc<local::LocalFile>),
    /// Anything else: an object store's ranged reads, memory.
    Remote(Arc<dyn ReadAt>),
}

/// Reads at any offset of a blob that is not a local file.
#[async_trait]
trait ReadAt: Send + Sync {
    /// Up to `length` bytes from `offset`, fewer only at the end.
    async fn read_at(&self, length: usize, offset: u64) -> io::Result<Bytes>;
}

impl BlobFile {
    /// Up to `length` bytes from `offset`, fewer only at the end of the blob (none past it).
    pub async fn read_at(&self, length: usize, offset: u64) -> io::Result<Bytes> {
        match &self.0 {
            Reading::Remote(remote) => remote.read_at(length, offset).await,
            Reading::Local(file) => {
                let file = file.clone();
                tokio::task::spawn_blocking(move || file.read_full(length, offset))
                    .await
                    .map_err(io::Error::other)?
            }
        }
    }
}

/// A stream that yields one `Bytes` (for small bodies built in memory).
pub fn bytes_stream(bytes: Bytes) -> ByteStream {
    Box::pin(futures_util::stream::once(async move { Ok(bytes) }))
}

/// Read a whole blob range into memory (small files only: tests, previews).
pub async fn read_all(mut reader: BlobReader) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    reader.read_to_end(&mut out).await?;
    Ok(out)
}

/// Where `length` bytes from `offset` are in a content made of pieces of `sizes`, one after
/// the other: each piece's index and the range to read in it (`from..to`). An error when the
/// pieces end before (a node that says more than its blob holds).
fn spans(
    sizes: impl IntoIterator<Item = u64>,
    offset: u64,
    length: u64,
) -> io::Result<Vec<(usize, u64, u64)>> {
    let end = offset.saturating_add(length);
    let mut spans = Vec::new();
    let mut start = 0;
    for (index, size) in sizes.into_iter().enumerate() {
        let piece_end = start + size;
        if piece_end > offset && start < end {
            spans.push((index, offset.max(start) - start, end.min(piece_end) - start));
        }
        start = piece_end;
    }
    if start < end {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the blob is shorter than its node says",
        ));
    }
    Ok(spans)
}

/// The hex MD5 of everything `stream` yields.
async fn md5_of(mut stream: DownloadStream, between: &mut dyn FnMut()) -> io::Result<String> {
    let mut hasher = Md5::new();
    while let Some(chunk) = stream.next().await {
        hasher.update(&chunk?);
        between();
    }
    Ok(hex::encode(hasher.finalize()))
}

mod local;
mod memory;
mod object;
mod sweep;
pub use local::LocalBlobs;
pub use memory::MemoryBlobs;
pub use object::{HEARTBEAT, OBJECT_STORE_SETTING, ObjectBlobs, ObjectConfig};
use sweep::TempGuard;
#[cfg(test)]
mod contract;
