//! Blobs on this node's disk: `<root>/<2 hex>/<uuid>`, temp files under `<root>/tmp`.
//!
//! Large uploads, copies and concatenations are written to a temp file and renamed into
//! place; small uploads and SFTP drafts are written at their final path directly, which no row
//! can name before the commit: one fsync instead of a rename and a synced directory.
//!
//! Because a blob never changes once written, a concatenation (an S3 multipart upload's parts)
//! and a copy copy no bytes: they are a *parts folder*, `parts:<uuid>`, of hard links to the
//! source files, whose contents follow one another in the order of their names. Completing a
//! 1 GiB upload is then a few hundred links, not 1 GiB written and fsynced again. A parts
//! folder's files are opened one at a time as a read reaches them, so a read that outlives
//! the folder (its node overwritten meanwhile) fails where a single file's open descriptor
//! would still serve the old content.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use md5::{Digest, Md5};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use uuid::Uuid;

use super::sweep::{self, TempGuard, Writing};
use super::{
    BlobFile, BlobReader, BlobStore, ByteStream, DownloadStream, Draft, HASH_ON_THE_WAY, Md5When, Reading,
    SweepReport, WrittenBlob,
};

/// Blobs as files under `<data>/blobs/<2 hex>/<uuid>`, temp files under `<data>/blobs/tmp`.
pub struct LocalBlobs {
    root: PathBuf,
    /// `store-id` in the folder: a UUID made once.
    name: String,
    /// Files being written now, which the sweep leaves alone.
    writing: Arc<Writing>,
}

/// Writes are gathered into buffers this large: one blocking-pool hop per MiB, not per chunk.
const WRITE_BUFFER: usize = 1 << 20;
const READ_BUFFER: usize = 256 * 1024;

impl LocalBlobs {
    pub fn open(root: &Path) -> io::Result<LocalBlobs> {
        std::fs::create_dir_all(root.join("tmp"))?;
        let id_file = root.join("store-id");
        let name = match std::fs::read_to_string(&id_file) {
            Ok(text) => text.trim().to_string(),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                let made = format!("file:{}", Uuid::new_v4());
                write_in_place(&id_file, made.as_bytes())?;
                made
            }
            Err(error) => return Err(error),
        };
        Ok(LocalBlobs {
            root: root.to_path_buf(),
            name,
            writing: Arc::default(),
        })
    }

    /// Where blob `id` lives; `None` for anything that is not one of our ids.
    fn path_of(&self, id: &str) -> Option<PathBuf> {
        let parsed = Uuid::parse_str(id).ok()?;
        let canonical = parsed.to_string();
        Some(self.root.join(&canonical[..2]).join(canonical))
    }

    /// What blob `id` is on disk.
    fn locate(&self, id: &str) -> io::Result<Location> {
        let bad = || io::Error::new(io::ErrorKind::NotFound, "bad blob id");
        match id.strip_prefix(PARTS_ID) {
            Some(uuid) => {
                let canonical = Uuid::parse_str(uuid).map_err(|_| bad())?.to_string();
                let name = format!("{canonical}{PARTS_SUFFIX}");
                Ok(Location::Parts(self.root.join(&canonical[..2]).join(name)))
            }
            None => self.path_of(id).map(Location::File).ok_or_else(bad),
        }
    }

    /// A new parts folder holding the contents of `sources` one after the other; its id and
    /// size.
    async fn link(&self, sources: Vec<Location>) -> io::Result<(String, u64)> {
        let uuid = Uuid::new_v4().to_string();
        let name = format!("{uuid}{PARTS_SUFFIX}");
        let temp = self.root.join("tmp").join(&name);
        let final_dir = self.root.join(&uuid[..2]).join(name);
        let size = tokio::task::spawn_blocking(move || link_parts(&sources, &temp, &final_dir))
            .await
            .map_err(io::Error::other)??;
        Ok((format!("{PARTS_ID}{uuid}"), size))
    }
}

/// Ids of parts folders start with this; the folder is `<2 hex>/<uuid>.parts`.
pub(super) const PARTS_ID: &str = "parts:";
pub(super) const PARTS_SUFFIX: &str = ".parts";

/// What a blob id names on disk.
enum Location {
    /// One file with the whole content.
    File(PathBuf),
    /// A parts folder: hard links to blob files, in the order of their names.
    Parts(PathBuf),
}

impl Location {
    /// The files that hold this blob's content, in order, with their sizes.
    fn files(&self) -> io::Result<Vec<(PathBuf, u64)>> {
        match self {
            Location::File(path) => Ok(vec![(path.clone(), std::fs::metadata(path)?.len())]),
            Location::Parts(dir) => {
                let mut names = std::fs::read_dir(dir)?
                    .map(|entry| entry.map(|entry| entry.file_name()))
                    .collect::<io::Result<Vec<_>>>()?;
                // The names are zero-padded positions.
                names.sort();
                names
                    .into_iter()
                    .map(|name| {
                        let path = dir.join(name);
                        let size = std::fs::metadata(&path)?.len();
                        Ok((path, size))
                    })
                    .collect()
            }
        }
    }
}

/// Build the parts folder `final_dir`: hard links to the files of `sources` in order, made in
/// `temp`, synced, then renamed into place (and that rename synced), so that a crash leaves
/// the whole folder or none of it. Nothing is left behind on failure.
fn link_parts(sources: &[Location], temp: &Path, final_dir: &Path) -> io::Result<u64> {
    let built = (|| -> io::Result<u64> {
        std::fs::create_dir(temp)?;
        let mut size = 0;
        let mut index = 0usize;
        for source in sources {
            for (file, length) in source.files()? {
                let link = temp.join(format!("{index:08}"));
                // Where the file system refuses (no hard links there, or too many to one
                // file: EMLINK), the bytes are copied and synced instead.
                if std::fs::hard_link(&file, &link).is_err() {
                    let mut copy = std::fs::File::create_new(&link)?;
                    io::copy(&mut std::fs::File::open(&file)?, &mut copy)?;
                    copy.sync_all()?;
                }
                size += length;
                index += 1;
            }
        }
        std::fs::File::open(temp)?.sync_all()?;
        install_blocking(temp, final_dir)?;
        Ok(size)
    })();
    if built.is_err() {
        let _ = std::fs::remove_dir_all(temp);
    }
    built
}

/// The pieces of a content made of `files` that hold `length` bytes from `offset`: each a
/// file, where to start in it and how much to read. An error when the files end before.
fn pieces(files: Vec<(PathBuf, u64)>, offset: u64, length: u64) -> io::Result<Vec<(PathBuf, u64, u64)>> {
    let spans = super::spans(files.iter().map(|(_, size)| *size), offset, length)?;
    Ok(spans
        .into_iter()
        .map(|(index, from, to)| (files[index].0.clone(), from, to - from))
        .collect())
}

/// `pieces` read one after the other, each file opened when the one before is done.
fn read_pieces(pieces: Vec<(PathBuf, u64, u64)>) -> DownloadStream {
    type State = (std::vec::IntoIter<(PathBuf, u64, u64)>, Option<DownloadStream>);
    let start: State = (pieces.into_iter(), None);
    Box::pin(futures_util::stream::unfold(
        start,
        |(mut pieces, mut current)| async move {
            loop {
                if let Some(stream) = current.as_mut() {
                    match stream.next().await {
                        Some(Ok(chunk)) => return Some((Ok(chunk), (pieces, current))),
                        // The download ends with its first error.
                        Some(Err(error)) => return Some((Err(error), (Vec::new().into_iter(), None))),
                        None => {}
                    }
                }
                let (path, offset, length) = pieces.next()?;
                match open_at(path, offset).await {
                    Ok(file) => current = Some(read_chunks(file, offset, length)),
                    Err(error) => return Some((Err(error), (Vec::new().into_iter(), None))),
                }
            }
        },
    ))
}

/// The file at `path`, positioned at `offset`.
async fn open_at(path: PathBuf, offset: u64) -> io::Result<std::fs::File> {
    tokio::task::spawn_blocking(move || -> io::Result<std::fs::File> {
        use std::io::Seek;
        let mut file = std::fs::File::open(path)?;
        file.seek(io::SeekFrom::Start(offset))?;
        Ok(file)
    })
    .await
    .map_err(io::Error::other)?
}

/// A blob on disk opened for reads at any offset (SFTP): one file, or the files of a parts
/// folder.
pub(super) enum LocalFile {
    One(Arc<std::fs::File>),
    Parts {
        /// Each file, where its content starts in the blob, and its size.
        parts: Vec<(PathBuf, u64, u64)>,
        /// The part read last, kept open for the next read (reads are mostly in order).
        current: std::sync::Mutex<Option<(usize, Arc<std::fs::File>)>>,
    },
}

impl From<Arc<std::fs::File>> for LocalFile {
    fn from(file: Arc<std::fs::File>) -> LocalFile {
        LocalFile::One(file)
    }
}

impl LocalFile {
    /// Up to `length` bytes from `offset`, fewer only at the end. Blocking: call it on the
    /// blocking pool.
    pub(super) fn read_full(&self, length: usize, offset: u64) -> io::Result<Bytes> {
        let mut buffer = vec![0; length];
        let mut filled = 0;
        while filled < length {
            match self.read_at(&mut buffer[filled..], offset + filled as u64)? {
                0 => break,
                read => filled += read,
            }
        }
        buffer.truncate(filled);
        Ok(Bytes::from(buffer))
    }

    /// Like `FileExt::read_at`: up to `buf.len()` bytes from `offset` (fewer where a part
    /// ends), 0 at the end.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let (parts, current) = match self {
            LocalFile::One(file) => return file.read_at(buf, offset),
            LocalFile::Parts { parts, current } => (parts, current),
        };
        let index = parts.partition_point(|(_, start, size)| start + size <= offset);
        let Some((path, start, size)) = parts.get(index) else {
            return Ok(0);
        };
        let file = {
            let mut current = current.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            match &*current {
                Some((open, file)) if *open == index => file.clone(),
                _ => {
                    let file = Arc::new(std::fs::File::open(path)?);
                    *current = Some((index, file.clone()));
                    file
                }
            }
        };
        let within = offset - start;
        let wanted = buf.len().min((size - within) as usize);
        file.read_at(&mut buf[..wanted], within)
    }
}

/// `length` bytes of the file at `path` from `offset`: from the page cache on this thread when
/// they are all there, else in one trip to the blocking pool (not one per open, read and end
/// of file).
async fn read_small(path: PathBuf, offset: u64, length: u64) -> io::Result<Vec<u8>> {
    if length <= CACHED_READ as u64
        && let Some(data) = read_cached(&path, offset, length as usize)
    {
        return Ok(data);
    }
    tokio::task::spawn_blocking(move || -> io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let mut data = vec![0; length as usize];
        std::fs::File::open(path)?.read_exact_at(&mut data, offset)?;
        Ok(data)
    })
    .await
    .map_err(io::Error::other)?
}

/// Reads up to this size are tried from the page cache on the async thread.
const CACHED_READ: usize = 64 * 1024;

/// The read of `read_small` when the kernel can serve it without waiting for the disk: the path
/// resolved from the dentry cache alone (`RESOLVE_CACHED`, Linux 5.12) and the bytes from the
/// page cache alone (`RWF_NOWAIT`, Linux 4.14). `None` for anything else (not cached, an older
/// kernel, a short file): the caller then reads on the blocking pool, which reports errors.
/// A request task never blocks on the disk, and a hot small file costs no thread hand-off.
fn read_cached(path: &Path, offset: u64, length: usize) -> Option<Vec<u8>> {
    use rustix::fs::{CWD, Mode, OFlags, ResolveFlags, openat2};
    use rustix::io::{ReadWriteFlags, preadv2};
    let flags = OFlags::RDONLY | OFlags::CLOEXEC;
    let fd = openat2(CWD, path, flags, Mode::empty(), ResolveFlags::CACHED).ok()?;
    let mut data = vec![0; length];
    let mut done = 0;
    while done < length {
        let mut buffer = [io::IoSliceMut::new(&mut data[done..])];
        let at = offset + done as u64;
        match preadv2(&fd, &mut buffer, at, ReadWriteFlags::NOWAIT) {
            Ok(0) | Err(_) => return None,
            Ok(read) => done += read,
        }
    }
    Some(data)
}

/// Downloads are read and sent in chunks this large (on this machine 512 KiB and 4 MiB were
/// both slower: the chunk is read into and sent from a cache-sized buffer).
const SEND_CHUNK: usize = 1 << 20;

/// `length` bytes of `file` from `offset`, each chunk read in the blocking pool while the one
/// before it is sent: one read straight into the buffer that goes out, with no copy between
/// (a `BufReader` over `tokio::fs::File` copies every byte twice before it is sent).
fn read_chunks(file: std::fs::File, offset: u64, length: u64) -> DownloadStream {
    fn read_chunk(file: Arc<std::fs::File>, len: usize) -> tokio::task::JoinHandle<io::Result<Bytes>> {
        tokio::task::spawn_blocking(move || {
            use std::io::Read;
            // Each read starts once the one before has been taken, so the file's own position
            // is where this chunk starts; `read_to_end` fills the buffer without zeroing it.
            let mut chunk = Vec::with_capacity(len);
            (&*file).take(len as u64).read_to_end(&mut chunk)?;
            if chunk.len() < len {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the blob is shorter than its node says",
                ));
            }
            Ok(Bytes::from(chunk))
        })
    }
    struct Chunks {
        file: Arc<std::fs::File>,
        /// Where the chunk after `ahead` starts, and where the range ends.
        at: u64,
        end: u64,
        ahead: Option<tokio::task::JoinHandle<io::Result<Bytes>>>,
    }
    impl Chunks {
        fn read_next(&mut self) {
            self.ahead = (self.at < self.end).then(|| {
                let len = (self.end - self.at).min(SEND_CHUNK as u64) as usize;
                let handle = read_chunk(self.file.clone(), len);
                self.at += len as u64;
                handle
            });
        }
    }
    let mut start = Chunks {
        file: Arc::new(file),
        at: offset,
        end: offset.saturating_add(length),
        ahead: None,
    };
    start.read_next();
    Box::pin(futures_util::stream::unfold(start, |mut chunks| async move {
        let chunk = match chunks.ahead.take()?.await {
            Ok(Ok(chunk)) => chunk,
            Ok(Err(error)) => return Some((Err(error), chunks)),
            Err(error) => return Some((Err(io::Error::other(error)), chunks)),
        };
        chunks.read_next();
        Some((Ok(chunk), chunks))
    }))
}

/// Create the new blob file `path` (and its folder, for the first blob of its prefix), for
/// writing in place.
fn create_in_place(path: &Path, read: bool) -> io::Result<std::fs::File> {
    let open = || {
        std::fs::OpenOptions::new()
            .read(read)
            .write(true)
            .create_new(true)
            .open(path)
    };
    match open() {
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir_all(path.parent().expect("blob paths have a parent"))?;
            open()
        }
        other => other,
    }
}

/// Sync the folder of the blob file `path`, so that its new name survives a crash (on ext4 the
/// file's own fsync already did, and this costs little).
fn sync_folder_of(path: &Path) -> io::Result<()> {
    std::fs::File::open(path.parent().expect("blob paths have a parent"))?.sync_all()
}

/// Write the new blob file `path` with `data`, in place and synced; on failure nothing is left.
fn write_in_place(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::io::Write as _;
    let mut file = create_in_place(path, false)?;
    let written = file
        .write_all(data)
        .and_then(|()| file.sync_all())
        .and_then(|()| sync_folder_of(path));
    if written.is_err() {
        let _ = std::fs::remove_file(path);
    }
    written
}

/// What the blob writer receives: data, then `End` once the whole body came. A body that
/// breaks off never sends `End`, and the writer then installs nothing.
enum Written {
    Data(Bytes),
    End,
}

/// A large blob's writer on the blocking pool: it writes each megabyte while the request task
/// receives the next, with a thread of its own that hashes and another that syncs (see
/// `start`), then syncs the rest and installs the blob. At most `WRITER_QUEUE` megabytes wait
/// in each queue. Its result is the MD5, or `None` for a body it stopped hashing
/// (`Md5When::Later`).
struct Writer {
    sender: tokio::sync::mpsc::Sender<Written>,
    task: tokio::task::JoinHandle<io::Result<Option<Md5>>>,
}

const WRITER_QUEUE: usize = 4;

/// Bytes a large blob's writer writes between two early syncs (see `Writer::start`).
pub(super) const EARLY_SYNC: u64 = 8 << 20;

impl Writer {
    /// Start writing to `temp`, installed as `final_path` at the end; hashing all of the body,
    /// or with `hash_limit` only a body of at most that many bytes.
    fn start(temp: PathBuf, final_path: PathBuf, hash_limit: Option<u64>) -> Writer {
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Written>(WRITER_QUEUE);
        let task = tokio::task::spawn_blocking(move || -> io::Result<Option<Md5>> {
            let written = (|| -> io::Result<Option<Md5>> {
                use std::io::Write as _;
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&temp)?;
                // Three threads share the work, so that on two cores the slowest of them sets
                // the pace, not their sum: this one writes, one hashes (MD5 runs at about the
                // speed of the copy into the page cache, and both are most of an upload's
                // CPU), and one makes the disk write while the body arrives: it fdatasyncs
                // the file each time another `EARLY_SYNC` bytes were written, so the final
                // fsync waits only for the tail. Without it the whole blob would wait in the
                // page cache for that fsync, after the last byte came. The syncer's error is
                // returned: it shares the file description, whose write-back error only one
                // fsync reports.
                let md5 = std::thread::scope(|scope| -> io::Result<Option<Md5>> {
                    let file = &file;
                    let (wrote, to_sync) = std::sync::mpsc::channel::<()>();
                    let syncer = scope.spawn(move || -> io::Result<()> {
                        while to_sync.recv().is_ok() {
                            while to_sync.try_recv().is_ok() {}
                            file.sync_data()?;
                        }
                        Ok(())
                    });
                    let (to_hash, hashing) = std::sync::mpsc::sync_channel::<Bytes>(WRITER_QUEUE);
                    let hasher = scope.spawn(move || {
                        let mut md5 = Md5::new();
                        for data in hashing {
                            md5.update(&data);
                        }
                        md5
                    });
                    let mut to_hash = Some(to_hash);
                    let received = (|| -> io::Result<()> {
                        let mut output = file;
                        let mut unsynced = 0;
                        let mut hashed = 0;
                        loop {
                            match receiver.blocking_recv() {
                                Some(Written::Data(data)) => {
                                    if let Some(hasher) = &to_hash {
                                        hashed += data.len() as u64;
                                        if hash_limit.is_some_and(|limit| hashed > limit) {
                                            // Left to `files::etags`, after the commit.
                                            to_hash = None;
                                        } else {
                                            // The hasher only stops when this loop does.
                                            let _ = hasher.send(data.clone());
                                        }
                                    }
                                    output.write_all(&data)?;
                                    unsynced += data.len() as u64;
                                    if unsynced >= EARLY_SYNC {
                                        // A syncer that stopped on an error reports it below.
                                        let _ = wrote.send(());
                                        unsynced = 0;
                                    }
                                }
                                Some(Written::End) => return Ok(()),
                                None => return Err(io::Error::other("the upload broke off")),
                            }
                        }
                    })();
                    drop(wrote);
                    let hashed_all = to_hash.take().is_some();
                    let panicked = |_| io::Error::other("a blob writer's thread panicked");
                    let synced = syncer.join().map_err(panicked)?;
                    let md5 = hasher.join().map_err(panicked)?;
                    received?;
                    synced?;
                    Ok(hashed_all.then_some(md5))
                })?;
                file.sync_all()?;
                drop(file);
                install_blocking(&temp, &final_path)?;
                Ok(md5)
            })();
            if written.is_err() {
                let _ = std::fs::remove_file(&temp);
            }
            written
        });
        Writer { sender, task }
    }

    /// Hand over data; a writer that stopped (a disk error) is reported by `finish`.
    async fn send(&mut self, message: Written) -> io::Result<()> {
        if self.sender.send(message).await.is_err() {
            return Err(self.failure().await);
        }
        Ok(())
    }

    async fn finish(self) -> io::Result<Option<Md5>> {
        drop(self.sender);
        self.task.await.map_err(io::Error::other)?
    }

    async fn failure(&mut self) -> io::Error {
        match (&mut self.task).await {
            Ok(Err(error)) => error,
            Ok(Ok(_)) => io::Error::other("the blob writer stopped early"),
            Err(error) => io::Error::other(error),
        }
    }
}

/// Feed all of `file`, from its start, to `hasher`, on the calling (blocking) thread, calling
/// `between` after each read (where the ETag worker gives way to requests).
fn hash_file(file: &std::fs::File, hasher: &mut Md5, between: &mut dyn FnMut()) -> io::Result<()> {
    use std::os::unix::fs::FileExt as _;
    let mut buffer = vec![0; READ_BUFFER];
    let mut offset = 0;
    loop {
        match file.read_at(&mut buffer, offset) {
            Ok(0) => return Ok(()),
            Ok(read) => {
                hasher.update(&buffer[..read]);
                offset += read as u64;
                between();
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
}

/// `install`, on the calling (blocking) thread: one hop to the blocking pool, not three.
fn install_blocking(temp: &Path, final_path: &Path) -> io::Result<()> {
    let dir = final_path.parent().expect("blob paths have a parent");
    // The blob's folder exists but for the first blob of its prefix.
    if let Err(error) = std::fs::rename(temp, final_path) {
        if error.kind() != io::ErrorKind::NotFound {
            return Err(error);
        }
        std::fs::create_dir_all(dir)?;
        std::fs::rename(temp, final_path)?;
    }
    std::fs::File::open(dir)?.sync_all()
}

#[async_trait]
impl BlobStore for LocalBlobs {
    async fn put(&self, mut body: ByteStream, hash: Md5When) -> io::Result<WrittenBlob> {
        let id = Uuid::new_v4().to_string();
        let temp_path = self.root.join("tmp").join(&id);
        let final_path = self.path_of(&id).expect("a fresh uuid is a valid id");
        let mut guard = TempGuard::new(temp_path.clone(), &self.writing);
        let mut size = 0u64;
        let mut buffer = BytesMut::new();
        // Started once the body outgrows the buffer: a writer on the blocking pool that hashes
        // and writes while the next megabytes arrive.
        let mut writer: Option<Writer> = None;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(error) => {
                    // Nothing is installed; wait until the writer has removed its temp file.
                    if let Some(writer) = writer {
                        let _ = writer.finish().await;
                    }
                    return Err(error);
                }
            };
            size += chunk.len() as u64;
            buffer.extend_from_slice(&chunk);
            if buffer.len() >= WRITE_BUFFER {
                let hash_limit = (hash == Md5When::Later).then_some(HASH_ON_THE_WAY);
                let writer = writer
                    .get_or_insert_with(|| Writer::start(temp_path.clone(), final_path.clone(), hash_limit));
                writer.send(Written::Data(buffer.split().freeze())).await?;
            }
        }
        let md5 = match writer {
            Some(mut writer) => {
                writer.send(Written::Data(buffer.freeze())).await?;
                writer.send(Written::End).await?;
                writer.finish().await?
            }
            // A small body: hash, write in place and sync in one blocking call.
            None => tokio::task::spawn_blocking(move || -> io::Result<Option<Md5>> {
                let mut md5 = Md5::new();
                md5.update(&buffer);
                write_in_place(&final_path, &buffer)?;
                Ok(Some(md5))
            })
            .await
            .map_err(io::Error::other)??,
        };
        guard.keep();
        Ok(WrittenBlob {
            id,
            size,
            md5: md5.map(|md5| hex::encode(md5.finalize())).unwrap_or_default(),
            inline: None,
        })
    }

    async fn open(&self, id: &str, offset: u64, length: u64) -> io::Result<BlobReader> {
        let path = match self.locate(id)? {
            Location::File(path) => path,
            Location::Parts(_) => {
                let stream = self.stream(id, offset, length).await?;
                return Ok(Box::pin(tokio_util::io::StreamReader::new(stream)));
            }
        };
        if length <= READ_BUFFER as u64 {
            let data = read_small(path, offset, length).await?;
            return Ok(Box::pin(io::Cursor::new(data)));
        }
        let mut file = tokio::fs::File::open(path).await?;
        if offset > 0 {
            file.seek(io::SeekFrom::Start(offset)).await?;
        }
        let reader = tokio::io::BufReader::with_capacity(READ_BUFFER, file.take(length));
        Ok(Box::pin(reader))
    }

    async fn stream(&self, id: &str, offset: u64, length: u64) -> io::Result<DownloadStream> {
        let path = match self.locate(id)? {
            Location::File(path) => path,
            parts @ Location::Parts(_) => {
                let pieces = tokio::task::spawn_blocking(move || pieces(parts.files()?, offset, length))
                    .await
                    .map_err(io::Error::other)??;
                return Ok(read_pieces(pieces));
            }
        };
        if length <= READ_BUFFER as u64 {
            let data = Bytes::from(read_small(path, offset, length).await?);
            return Ok(Box::pin(futures_util::stream::iter([Ok(data)])));
        }
        Ok(read_chunks(open_at(path, offset).await?, offset, length))
    }

    async fn copy(&self, id: &str) -> io::Result<String> {
        // A new name for the same immutable files: no byte is copied.
        let (id, _) = self.link(vec![self.locate(id)?]).await?;
        Ok(id)
    }

    async fn concat(&self, ids: &[String]) -> io::Result<(String, u64)> {
        let sources = ids
            .iter()
            .map(|id| self.locate(id))
            .collect::<io::Result<Vec<_>>>()?;
        self.link(sources).await
    }

    async fn open_file(&self, id: &str) -> io::Result<BlobFile> {
        let location = self.locate(id)?;
        let file = tokio::task::spawn_blocking(move || {
            Ok::<_, io::Error>(match location {
                Location::File(path) => LocalFile::One(Arc::new(std::fs::File::open(path)?)),
                parts @ Location::Parts(_) => {
                    let mut start = 0;
                    let parts = parts
                        .files()?
                        .into_iter()
                        .map(|(path, size)| {
                            start += size;
                            (path, start - size, size)
                        })
                        .collect();
                    LocalFile::Parts {
                        parts,
                        current: std::sync::Mutex::new(None),
                    }
                }
            })
        })
        .await
        .map_err(io::Error::other)??;
        Ok(BlobFile(Reading::Local(Arc::new(file))))
    }

    async fn draft(&self, from: Option<&str>) -> io::Result<Draft> {
        let source = from.map(|id| self.locate(id)).transpose()?;
        let id = Uuid::new_v4().to_string();
        // Written in place: no row can name this id before `finish` returns it.
        let path = self.path_of(&id).expect("a fresh uuid is a valid id");
        let guard = TempGuard::new(path.clone(), &self.writing);
        let temp = path.clone();
        let file = tokio::task::spawn_blocking(move || -> io::Result<std::fs::File> {
            let mut file = create_in_place(&temp, true)?;
            for (path, _) in source
                .map(|source| source.files())
                .transpose()?
                .unwrap_or_default()
            {
                io::copy(&mut std::fs::File::open(path)?, &mut file)?;
            }
            Ok(file)
        })
        .await
        .map_err(io::Error::other)??;
        Ok(Draft::new(file, id, path, guard, true))
    }

    async fn finish(&self, draft: Draft, md5: Md5When) -> io::Result<WrittenBlob> {
        let super::Settled {
            file,
            id,
            path,
            mut guard,
        } = draft.settle().await?;
        // Sync and hash if needed in one hop to the blocking pool.
        let (size, md5) = tokio::task::spawn_blocking(move || -> io::Result<(u64, String)> {
            file.sync_all()?;
            let size = file.metadata()?.len();
            let md5 = match md5 {
                Md5When::Now => {
                    let mut hasher = Md5::new();
                    hash_file(&file, &mut hasher, &mut || {})?;
                    hex::encode(hasher.finalize())
                }
                Md5When::Later => String::new(),
            };
            sync_folder_of(&path)?;
            Ok((size, md5))
        })
        .await
        .map_err(io::Error::other)??;
        guard.keep();
        Ok(WrittenBlob {
            id,
            size,
            md5,
            inline: None,
        })
    }

    fn md5_blocking(&self, id: &str, between: &mut dyn FnMut()) -> io::Result<String> {
        let mut hasher = Md5::new();
        for (path, _) in self.locate(id)?.files()? {
            hash_file(&std::fs::File::open(path)?, &mut hasher, between)?;
        }
        Ok(hex::encode(hasher.finalize()))
    }

    async fn delete(&self, id: &str) -> io::Result<()> {
        let removed = match self.locate(id) {
            Err(_) => return Ok(()),
            Ok(Location::File(path)) => tokio::fs::remove_file(path).await,
            Ok(Location::Parts(dir)) => tokio::fs::remove_dir_all(dir).await,
        };
        match removed {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn name(&self) -> &str {
        &self.name
    }

    async fn sweep(&self, keep: &HashSet<String>, before: Option<SystemTime>) -> io::Result<SweepReport> {
        let root = self.root.clone();
        let keep = keep.clone();
        let writing = self.writing.clone();
        tokio::task::spawn_blocking(move || sweep::sweep_dir(&root, &keep, &writing, before))
            .await
            .map_err(io::Error::other)?
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
