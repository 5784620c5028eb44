//! Blobs in an S3-compatible object store (AWS S3, MinIO, Garage, Ceph RGW), shared by every
//! node that names the same bucket and prefix, through `object_store` (Apache Arrow's client:
//! SigV4, path-style addressing for custom endpoints, multipart uploads, server-side copies,
//! retries; it was already our test client for the S3 gateway).
//!
//! Layout under `PREFIX/`: `store-id` (this store's name, made once), `blobs/<uuid>` (one
//! object per blob), and `parts/<uuid>/` for a blob made of others (an S3 multipart upload's
//! parts, or a copy of such a blob): its segments `00000000`, `00000001`, … made by
//! server-side copies, and `manifest` (their sizes, one per line), written last, so a parts
//! blob without a manifest is not one yet.
//!
//! Writes: a body of at most `PART` bytes is one PUT; a larger one is the store's own
//! multipart upload, two parts in flight while the next arrives, so memory stays at a few
//! parts whatever the size. Every write registers an intent (its object key, this node, and
//! the store's upload id once there is one) in the database before its first byte; this
//! node's heartbeat keeps its intents fresh. The sweep (on one node, under a lease) deletes
//! only objects older than its age that no row and no live intent names, and aborts the
//! multipart uploads of dead intents, so it never races a slow upload on another node.
//!
//! An upload is acknowledged only after the store acknowledged the object (PUT, or the
//! completion of the multipart upload) and then the row committed (the caller's part).
//!
//! SFTP writes at any offset go to a spool file on this node's disk (`DATA/spool/drafts`), uploaded
//! by `finish`: an in-place change of a large file costs its download into the spool at OPEN
//! and its upload at CLOSE. Reads at any offset (`open_file`) fetch `WINDOW` bytes at a time.
//!
//! A store that does not answer is answered "unavailable" at once while the server's watcher
//! sees it down (`ping`, `record_health`), like a database outage.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use md5::{Digest, Md5};
use object_store::aws::AmazonS3;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as Key;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use uuid::Uuid;

use super::sweep::{TempGuard, Writing};
use super::{
    BlobFile, BlobReader, BlobStore, ByteStream, DownloadStream, Draft, Md5When, Reading, SweepReport,
    WrittenBlob, unavailable,
};

mod client;
mod read;
mod sweep;

use read::{Direct, Piece, Received, RemoteFile, forward};

/// Where the store is and how long a call to it may take.
#[derive(Debug, Clone)]
pub struct ObjectConfig {
    pub bucket: String,
    /// A key prefix without slashes at its ends; empty for the whole bucket.
    pub prefix: String,
    /// This node's folder for SFTP drafts.
    pub spool: PathBuf,
    /// `--dependency-timeout`: connecting and each short call (HEAD, completion, manifest).
    pub timeout: Duration,
    /// This process among the nodes (the holder of its intents).
    pub node: String,
}

pub struct ObjectBlobs {
    inner: Arc<Inner>,
    spool: PathBuf,
    writing: Arc<Writing>,
    name: String,
    store: cells_store::Store,
    node: String,
    down: AtomicBool,
    runtime: tokio::runtime::Handle,
}

/// What reads need, shared with the open `BlobFile`s.
struct Inner {
    s3: AmazonS3,
    prefix: String,
    timeout: Duration,
    /// Manifests of parts blobs, which never change (bounded: cleared when full).
    manifests: Mutex<HashMap<String, Arc<Vec<u64>>>>,
}

/// Bodies up to this size are one PUT; larger ones are sent as parts of this size (the first
/// thousand; then larger, see `part_size`), which S3 requires to be at least 5 MiB.
const PART: usize = 8 << 20;
/// Parts of one upload sent at once while the next is received.
const IN_FLIGHT: usize = 2;
/// What a read at any offset fetches at once (`RemoteFile`).
const WINDOW: u64 = 4 << 20;
/// A server-side copy (CopyObject) takes at most 5 GiB; larger blobs are copied through this
/// node.
const COPY_LIMIT: u64 = 5 << 30;
/// An intent whose heartbeat is older than this is dead (its node stopped); nodes beat every
/// `HEARTBEAT` seconds.
pub const INTENT_LIFE: i64 = 90;
pub const HEARTBEAT: i64 = 15;
/// A whole object's row commits right after; an intent that completed this long ago without
/// one protects its object no more.
const COMMIT_GRACE: i64 = 600;
const MANIFEST_CACHE: usize = 4096;
/// The database setting that names the object store its files are in.
pub const OBJECT_STORE_SETTING: &str = "object_store";

/// The size of part `index` (from 0): `PART` for the first thousand, then growing, so that
/// S3's 10,000 parts hold over 400 GiB.
fn part_size(index: usize) -> usize {
    PART * (1 + index / 1000)
}

impl ObjectBlobs {
    /// Connect to the store named by `config` and the `AWS_*` variables, bound to the
    /// database `store` (`Inner::bind`).
    pub async fn open(config: ObjectConfig, store: cells_store::Store) -> anyhow::Result<ObjectBlobs> {
        use anyhow::Context as _;
        let s3 = client::connect(&config)?;
        let prefix = config.prefix.trim_matches('/').to_string();
        let inner = Inner {
            s3,
            prefix,
            timeout: config.timeout,
            manifests: Mutex::default(),
        };
        let url = match inner.prefix.is_empty() {
            true => format!("s3://{}", config.bucket),
            false => format!("s3://{}/{}", config.bucket, inner.prefix),
        };
        let name = inner.bind(&store, &url).await.with_context(|| {
            format!("cannot open the object store {url} (AWS_ENDPOINT_URL, the credentials, the bucket)")
        })?;
        std::fs::create_dir_all(&config.spool)
            .with_context(|| format!("cannot create the spool folder {}", config.spool.display()))?;
        Ok(ObjectBlobs {
            inner: Arc::new(inner),
            spool: config.spool,
            writing: Arc::default(),
            name,
            store,
            node: config.node,
            down: AtomicBool::new(false),
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// Refuse at once while the watcher sees the store down.
    fn check(&self) -> io::Result<()> {
        match self.down.load(Ordering::Acquire) {
            true => Err(unavailable("the object store does not answer")),
            false => Ok(()),
        }
    }

    /// Register an intent to write `key` before its first byte.
    async fn intend(&self, key: &Key) -> io::Result<Intent> {
        self.store
            .add_intent(key.as_ref(), &self.node)
            .await
            .map_err(database_error)?;
        Ok(Intent {
            store: self.store.clone(),
            key: key.as_ref().to_string(),
            ended: false,
        })
    }

    /// Write `body` to `key`: one PUT, or a multipart upload recorded in `intent`. Returns the
    /// size and MD5. On error nothing is left (a started multipart upload is aborted).
    async fn upload(&self, key: &Key, mut body: ByteStream, intent: &Intent) -> io::Result<(u64, String)> {
        let inner = &self.inner;
        let mut md5 = Md5::new();
        let mut size = 0u64;
        let mut buffer = BytesMut::new();
        let mut multipart: Option<Multipart> = None;
        let outcome = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                md5.update(&chunk);
                size += chunk.len() as u64;
                buffer.extend_from_slice(&chunk);
                loop {
                    let index = multipart.as_ref().map_or(0, |m| m.next);
                    if buffer.len() < part_size(index) {
                        break;
                    }
                    let part = buffer.split_to(part_size(index)).freeze();
                    if multipart.is_none() {
                        multipart = Some(Multipart::start(inner, key, intent).await?);
                    }
                    multipart
                        .as_mut()
                        .expect("just started")
                        .send(inner, key, part)
                        .await?;
                }
            }
            let data = buffer.split().freeze();
            match multipart.as_mut() {
                None => {
                    // A transfer, not a short call: as long as it takes (a stalled one is cut
                    // by the client's read timeout).
                    inner.store_error(inner.s3.put(key, PutPayload::from(data)).await)?;
                }
                Some(upload) => {
                    if !data.is_empty() {
                        upload.send(inner, key, data).await?;
                    }
                    let parts = upload.wait_all().await?;
                    // The store may assemble the object now: more than a short call.
                    let completing = inner.s3.complete_multipart(key, &upload.id, parts);
                    inner.store_error(completing.await)?;
                }
            }
            Ok::<_, io::Error>(())
        }
        .await;
        if let Err(error) = outcome {
            if let Some(upload) = multipart {
                upload.abort(inner, key).await;
            }
            return Err(error);
        }
        Ok((size, hex::encode(md5.finalize())))
    }

    /// Write all of `body` under a new blob id (`put`, and `finish` with the spool file).
    async fn put_as(&self, id: String, body: ByteStream) -> io::Result<WrittenBlob> {
        self.check()?;
        let key = self.inner.blob_key(&id)?;
        let intent = self.intend(&key).await?;
        let uploaded = self.upload(&key, body, &intent).await;
        match uploaded.is_ok() {
            // The object is whole; its row is not committed yet (see `Intent::keep`).
            true => intent.keep().await,
            // The upload was aborted; if that failed too, the sweep aborts it (see `Intent`).
            false => drop(intent),
        }
        let (size, md5) = uploaded?;
        Ok(WrittenBlob {
            id,
            size,
            md5,
            inline: None,
        })
    }

    /// A new parts blob holding `sources` one after the other, made by server-side copies.
    async fn assemble(&self, sources: Vec<(Key, u64)>) -> io::Result<(String, u64)> {
        let uuid = Uuid::new_v4().to_string();
        let folder = self.inner.parts_folder(&uuid);
        let intent = self.intend(&folder).await?;
        let inner = &self.inner;
        let pairs: Vec<(Key, Key)> = sources
            .iter()
            .enumerate()
            .map(|(index, (from, _))| (from.clone(), segment_key(&folder, index)))
            .collect();
        let copies = pairs.into_iter().map(|(from, to)| {
            let s3 = inner.s3.clone();
            async move { s3.copy(&from, &to).await.map_err(store_failure) }
        });
        let copied: io::Result<Vec<()>> = futures_util::stream::iter(copies).buffered(4).try_collect().await;
        let sizes: Vec<u64> = sources.iter().map(|(_, size)| *size).collect();
        let manifest: String = sizes.iter().map(|size| format!("{size}\n")).collect();
        let written = match copied {
            Ok(_) => {
                let key = Key::from(format!("{folder}/manifest"));
                inner.call(inner.s3.put(&key, PutPayload::from(manifest))).await
            }
            Err(error) => Err(error),
        };
        if let Err(error) = written {
            let _ = inner.delete_parts(&uuid).await;
            intent.done().await;
            return Err(error);
        }
        intent.keep().await;
        Ok((format!("{PARTS_ID}{uuid}"), sizes.iter().sum()))
    }

    /// The objects that hold blob `id`, in order, with their sizes.
    async fn segments(&self, id: &str) -> io::Result<Vec<(Key, u64)>> {
        self.inner.segments(id).await
    }
}

/// An intent being held. A write that made its object `keep`s it: the row that will name the
/// object is not committed yet, and until it is only the intent protects the object (an S3
/// object's time can be its upload's start, older than the sweep's age). The sweep removes it
/// once a row names the blob, and `delete` with the blob. A write that failed removes it
/// (`done`); dropped without either (the request was cut mid-upload), it is marked dead at
/// once, so that the next sweep aborts its multipart upload and removes what it wrote.
struct Intent {
    store: cells_store::Store,
    key: String,
    ended: bool,
}

impl Intent {
    /// The object is whole: the intent stays, with the time it completed (see above).
    async fn keep(mut self) {
        self.ended = true;
        if let Err(error) = self.store.complete_intent(&self.key).await {
            tracing::warn!(%error, "could not record a blob intent's completion");
        }
    }

    async fn record_upload(&self, upload_id: &str) -> io::Result<()> {
        self.store
            .set_intent_upload(&self.key, upload_id)
            .await
            .map_err(database_error)
    }

    /// The write ended: the object is complete, or gone. A row that cannot be removed now
    /// (the database is down) keeps the object from the sweep until this node stops.
    async fn done(mut self) {
        self.ended = true;
        if let Err(error) = self.store.remove_intent(&self.key).await {
            tracing::warn!(%error, "could not remove a blob intent; the sweep will");
        }
    }
}

impl Drop for Intent {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let (store, key) = (self.store.clone(), std::mem::take(&mut self.key));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = store.abandon_intent(&key).await {
                    tracing::warn!(%error, "could not mark a cut upload's intent dead");
                }
            });
        }
    }
}

/// A multipart upload in progress: up to `IN_FLIGHT` parts being sent.
struct Multipart {
    id: String,
    next: usize,
    done: Vec<PartId>,
    sending: std::collections::VecDeque<tokio::task::JoinHandle<io::Result<PartId>>>,
}

impl Multipart {
    async fn start(inner: &Inner, key: &Key, intent: &Intent) -> io::Result<Multipart> {
        let id = inner.call(inner.s3.create_multipart(key)).await?;
        if let Err(error) = intent.record_upload(&id).await {
            let _ = inner.s3.abort_multipart(key, &id).await;
            return Err(error);
        }
        Ok(Multipart {
            id,
            next: 0,
            done: Vec::new(),
            sending: Default::default(),
        })
    }

    /// Send the next part, after waiting for the oldest when `IN_FLIGHT` are on their way.
    async fn send(&mut self, inner: &Inner, key: &Key, data: Bytes) -> io::Result<()> {
        if self.sending.len() >= IN_FLIGHT {
            self.wait_one().await?;
        }
        let s3 = inner.s3.clone();
        let (key, id, index) = (key.clone(), self.id.clone(), self.next);
        self.next += 1;
        self.sending.push_back(tokio::spawn(async move {
            s3.put_part(&key, &id, index, PutPayload::from(data))
                .await
                .map_err(store_failure)
        }));
        Ok(())
    }

    async fn wait_one(&mut self) -> io::Result<()> {
        if let Some(sending) = self.sending.pop_front() {
            self.done.push(sending.await.map_err(io::Error::other)??);
        }
        Ok(())
    }

    async fn wait_all(&mut self) -> io::Result<Vec<PartId>> {
        while !self.sending.is_empty() {
            self.wait_one().await?;
        }
        Ok(std::mem::take(&mut self.done))
    }

    async fn abort(self, inner: &Inner, key: &Key) {
        for sending in &self.sending {
            sending.abort();
        }
        if let Err(error) = inner.s3.abort_multipart(key, &self.id).await {
            tracing::warn!(%error, "could not abort a multipart upload; the sweep will");
        }
    }
}

/// Ids of parts blobs start with this (as on local disk).
const PARTS_ID: &str = "parts:";

fn segment_key(folder: &Key, index: usize) -> Key {
    Key::from(format!("{folder}/{index:08}"))
}

impl Inner {
    fn key(&self, relative: &str) -> Key {
        match self.prefix.is_empty() {
            true => Key::from(relative),
            false => Key::from(format!("{}/{relative}", self.prefix)),
        }
    }

    /// The object of the single-object blob `id`; an error for anything not one of our ids.
    fn blob_key(&self, id: &str) -> io::Result<Key> {
        let uuid = Uuid::parse_str(id).map_err(|_| io::Error::new(io::ErrorKind::NotFound, "bad blob id"))?;
        Ok(self.key(&format!("blobs/{uuid}")))
    }

    fn parts_folder(&self, uuid: &str) -> Key {
        self.key(&format!("parts/{uuid}"))
    }

    /// The blob id an intent's key names (`PREFIX/blobs/<uuid>` or `PREFIX/parts/<uuid>`).
    fn id_of(&self, key: &str) -> Option<String> {
        let relative = match self.prefix.is_empty() {
            true => key,
            false => key.strip_prefix(&self.prefix)?.strip_prefix('/')?,
        };
        match relative.split_once('/')? {
            ("blobs", uuid) => Some(uuid.to_string()),
            ("parts", uuid) => Some(format!("{PARTS_ID}{uuid}")),
            _ => None,
        }
    }

    /// `PREFIX/store-id`, if the store has one. Errors keep the store's own words (start-up
    /// only: they name the endpoint and bucket).
    async fn read_store_id(&self) -> anyhow::Result<Option<String>> {
        let key = self.key("store-id");
        let timed_out = || anyhow::anyhow!("no answer within {:?}", self.timeout);
        match tokio::time::timeout(self.timeout, self.s3.get(&key))
            .await
            .map_err(|_| timed_out())?
        {
            Ok(found) => Ok(Some(read_name(found.bytes().await?)?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// This store's name, bound to the database `store` (see `OBJECT_STORE_SETTING`): the
    /// database is the authority, so that nodes starting together agree, and a store holding
    /// another database's files, or a database whose files are elsewhere, is refused.
    async fn bind(&self, store: &cells_store::Store, url: &str) -> anyhow::Result<String> {
        // The store first: a node that wrote `store-id` had recorded it in the database before.
        let existing = self.read_store_id().await?;
        let bound = store.find_setting(OBJECT_STORE_SETTING).await?;
        match (bound, existing) {
            (Some(bound), Some(existing)) if bound == existing => Ok(bound),
            (Some(bound), Some(existing)) => anyhow::bail!(
                "{url} is the object store {existing:?}, but this database's files are in {bound:?}: \
                 start every node with the same --blob-store"
            ),
            (Some(bound), None) => anyhow::bail!(
                "{url} holds no store-id, but this database's files are in the object store {bound:?}: \
                 wrong bucket or prefix?"
            ),
            (None, Some(existing)) => anyhow::bail!(
                "{url} already holds the files of another database (store-id {existing:?}): \
                 give this one a bucket or prefix of its own"
            ),
            (None, None) => {
                let name = store
                    .init_setting(OBJECT_STORE_SETTING, &format!("s3:{}", Uuid::new_v4()))
                    .await?;
                let key = self.key("store-id");
                let create = PutOptions {
                    mode: PutMode::Create,
                    ..PutOptions::default()
                };
                let put = self.s3.put_opts(&key, PutPayload::from(name.clone()), create);
                match tokio::time::timeout(self.timeout, put).await {
                    Err(_) => anyhow::bail!("no answer within {:?}", self.timeout),
                    Ok(Ok(_)) => Ok(name),
                    // Another node of this database wrote it first: the same name, or refused.
                    Ok(Err(
                        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
                    )) => match self.read_store_id().await? {
                        Some(existing) if existing == name => Ok(name),
                        other => anyhow::bail!("{url}: store-id {other:?} is not this database's {name:?}"),
                    },
                    Ok(Err(error)) => Err(error.into()),
                }
            }
        }
    }

    /// Await a short call to the store, at most `timeout` long.
    async fn call<T>(&self, call: impl Future<Output = object_store::Result<T>>) -> io::Result<T> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(done) => self.store_error(done),
            Err(_) => Err(unavailable("the object store did not answer in time")),
        }
    }

    fn store_error<T>(&self, result: object_store::Result<T>) -> io::Result<T> {
        result.map_err(store_failure)
    }

    /// The sizes of the segments of parts blob `uuid`.
    async fn manifest(&self, uuid: &str) -> io::Result<Arc<Vec<u64>>> {
        if let Some(found) = self.manifests.lock().unwrap_or_else(|e| e.into_inner()).get(uuid) {
            return Ok(found.clone());
        }
        let key = Key::from(format!("{}/manifest", self.parts_folder(uuid)));
        let text = self.call(self.s3.get(&key)).await?;
        let text = self.call(text.bytes()).await?;
        let sizes = std::str::from_utf8(&text)
            .ok()
            .and_then(|text| {
                text.lines()
                    .map(|line| line.parse::<u64>().ok())
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| io::Error::other("a parts manifest is not a list of sizes"))?;
        let sizes = Arc::new(sizes);
        let mut cache = self.manifests.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MANIFEST_CACHE {
            cache.clear();
        }
        cache.insert(uuid.to_string(), sizes.clone());
        Ok(sizes)
    }

    async fn segments(&self, id: &str) -> io::Result<Vec<(Key, u64)>> {
        match id.strip_prefix(PARTS_ID) {
            Some(uuid) => {
                let uuid = Uuid::parse_str(uuid)
                    .map_err(|_| io::Error::new(io::ErrorKind::NotFound, "bad blob id"))?
                    .to_string();
                let folder = self.parts_folder(&uuid);
                let sizes = self.manifest(&uuid).await?;
                Ok(sizes
                    .iter()
                    .enumerate()
                    .map(|(index, size)| (segment_key(&folder, index), *size))
                    .collect())
            }
            None => {
                let key = self.blob_key(id)?;
                let size = self.call(self.s3.head(&key)).await?.size;
                Ok(vec![(key, size)])
            }
        }
    }

    /// The objects holding `length` bytes from `offset` of a blob made of `segments`: each with
    /// the range to read in it. An error when the segments end before.
    fn pieces(segments: &[(Key, u64)], offset: u64, length: u64) -> io::Result<Vec<Piece>> {
        let spans = super::spans(segments.iter().map(|(_, size)| *size), offset, length)?;
        Ok(spans
            .into_iter()
            .map(|(index, from, to)| Piece {
                key: segments[index].0.clone(),
                from,
                to,
            })
            .collect())
    }

    /// A ranged GET of each piece in turn, as one stream. The first GET is answered before
    /// this returns, so that a missing object or a failing store is an error here, not a
    /// download cut after its headers promised the bytes. A task reads ahead of the consumer
    /// (one chunk queued), so the store and the client transfer at once.
    async fn read_pieces(self: &Arc<Self>, pieces: Vec<Piece>) -> io::Result<DownloadStream> {
        let mut pieces = pieces.into_iter().filter(|piece| piece.from < piece.to);
        let Some(first) = pieces.next() else {
            return Ok(Box::pin(futures_util::stream::empty()));
        };
        let opened = self.open_piece(&first).await?;
        let rest: Vec<Piece> = pieces.collect();
        if rest.is_empty() {
            // One object (every blob but a parts blob): its bytes straight through, no task.
            return Ok(Box::pin(Direct {
                stream: std::sync::Mutex::new(opened),
                left: (first.to - first.from) as i64,
                done: false,
            }));
        }
        let (sender, receiver) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(2);
        let inner = self.clone();
        tokio::spawn(async move {
            if !forward(opened, &first, &sender).await {
                return;
            }
            for piece in rest {
                let stream = match inner.open_piece(&piece).await {
                    Ok(stream) => stream,
                    Err(error) => {
                        let _ = sender.send(Err(error)).await;
                        return;
                    }
                };
                if !forward(stream, &piece, &sender).await {
                    return;
                }
            }
        });
        Ok(Box::pin(Received(receiver)))
    }

    /// The ranged GET of `piece`, once its headers came.
    async fn open_piece(&self, piece: &Piece) -> io::Result<BoxStream<'static, object_store::Result<Bytes>>> {
        let options = GetOptions {
            range: Some(GetRange::Bounded(piece.from..piece.to)),
            ..GetOptions::default()
        };
        Ok(self
            .call(self.s3.get_opts(&piece.key, options))
            .await?
            .into_stream())
    }

    async fn read_range(
        self: &Arc<Self>,
        segments: &[(Key, u64)],
        offset: u64,
        length: u64,
    ) -> io::Result<Bytes> {
        let mut stream = self.read_pieces(Self::pieces(segments, offset, length)?).await?;
        let mut data = BytesMut::with_capacity(length as usize);
        while let Some(chunk) = stream.next().await {
            data.extend_from_slice(&chunk?);
        }
        Ok(data.freeze())
    }

    /// Delete parts blob `uuid`: its manifest first (it is no blob from then on), then its
    /// segments.
    async fn delete_parts(&self, uuid: &str) -> io::Result<()> {
        let folder = self.parts_folder(uuid);
        let manifest = Key::from(format!("{folder}/manifest"));
        self.delete_key(&manifest).await?;
        self.manifests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uuid);
        let keys: Vec<Key> = self
            .s3
            .list(Some(&folder))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(store_failure)?;
        for key in keys {
            self.delete_key(&key).await?;
        }
        Ok(())
    }

    async fn delete_key(&self, key: &Key) -> io::Result<()> {
        match self.call(self.s3.delete(key)).await {
            Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        }
    }
}

fn read_name(bytes: Bytes) -> io::Result<String> {
    let name = String::from_utf8_lossy(&bytes).trim().to_string();
    match name.starts_with("s3:") {
        true => Ok(name),
        false => Err(io::Error::other(
            "store-id in the object store is not one cells made",
        )),
    }
}

/// The store's error as an `io::Error`: "not found" stays one; everything else (a refused
/// connection, a timeout, a server error, a refusal) is "unavailable": the node cannot use
/// the store now, whatever the cause, and it is logged once where it is answered.
fn store_failure(error: object_store::Error) -> io::Error {
    match error {
        object_store::Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, "no such object"),
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. } => {
            io::Error::new(io::ErrorKind::AlreadyExists, "the object exists")
        }
        other => {
            tracing::warn!(error = %other, "the object store failed");
            super::unavailable_because("the object store failed", other.to_string())
        }
    }
}

fn database_error(error: cells_store::StoreError) -> io::Error {
    match error.is_unreachable() {
        true => unavailable("the database does not answer"),
        false => io::Error::other(error),
    }
}

#[async_trait]
impl BlobStore for ObjectBlobs {
    async fn put(&self, body: ByteStream, _md5: Md5When) -> io::Result<WrittenBlob> {
        // Always hashed on the way: hashing later would read the whole object back.
        self.put_as(Uuid::new_v4().to_string(), body).await
    }

    async fn open(&self, id: &str, offset: u64, length: u64) -> io::Result<BlobReader> {
        let stream = self.stream(id, offset, length).await?;
        Ok(Box::pin(tokio_util::io::StreamReader::new(stream)))
    }

    async fn stream(&self, id: &str, offset: u64, length: u64) -> io::Result<DownloadStream> {
        self.check()?;
        if !id.starts_with(PARTS_ID) {
            // One ranged GET, no HEAD first: the caller's node knows the size, and a shorter
            // object ends the stream with an error (`read_pieces`).
            let piece = Piece {
                key: self.inner.blob_key(id)?,
                from: offset,
                to: offset.saturating_add(length),
            };
            return self.inner.read_pieces(vec![piece]).await;
        }
        let segments = self.segments(id).await?;
        let pieces = Inner::pieces(&segments, offset, length)?;
        self.inner.read_pieces(pieces).await
    }

    async fn copy(&self, id: &str) -> io::Result<String> {
        self.check()?;
        let segments = self.segments(id).await?;
        if id.starts_with(PARTS_ID) {
            return Ok(self.assemble(segments).await?.0);
        }
        let (from, size) = segments.into_iter().next().expect("one object");
        if size > COPY_LIMIT {
            let body: ByteStream = self.stream(id, 0, size).await?;
            return Ok(self.put_as(Uuid::new_v4().to_string(), body).await?.id);
        }
        let new = Uuid::new_v4().to_string();
        let to = self.inner.blob_key(&new)?;
        let intent = self.intend(&to).await?;
        let copied = self.inner.store_error(self.inner.s3.copy(&from, &to).await);
        match copied {
            Ok(()) => intent.keep().await,
            Err(_) => intent.done().await,
        }
        copied.map(|()| new)
    }

    async fn concat(&self, ids: &[String]) -> io::Result<(String, u64)> {
        self.check()?;
        let mut sources = Vec::new();
        for id in ids {
            sources.extend(self.segments(id).await?);
        }
        self.assemble(sources).await
    }

    async fn open_file(&self, id: &str) -> io::Result<BlobFile> {
        self.check()?;
        let segments = self.segments(id).await?;
        let size = segments.iter().map(|(_, size)| size).sum();
        Ok(BlobFile(Reading::Remote(Arc::new(RemoteFile {
            inner: self.inner.clone(),
            segments,
            size,
            window: tokio::sync::Mutex::new((0, Bytes::new())),
        }))))
    }

    async fn draft(&self, from: Option<&str>) -> io::Result<Draft> {
        self.check()?;
        let id = Uuid::new_v4().to_string();
        let path = self.spool.join(&id);
        let guard = TempGuard::new(path.clone(), &self.writing);
        let mut file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .await?;
        if let Some(from) = from {
            // An in-place change of a stored file starts from a copy of all of it.
            use tokio::io::AsyncWriteExt;
            let segments = self.segments(from).await?;
            let size = segments.iter().map(|(_, size)| size).sum();
            let mut stream = self.inner.read_pieces(Inner::pieces(&segments, 0, size)?).await?;
            while let Some(chunk) = stream.next().await {
                file.write_all(&chunk?).await?;
            }
            file.flush().await?;
        }
        Ok(Draft::new(file.into_std().await, id, path, guard, false))
    }

    async fn finish(&self, draft: Draft, _md5: Md5When) -> io::Result<WrittenBlob> {
        let settled = draft.settle().await?;
        let file = tokio::fs::File::open(&settled.path).await?;
        let body: ByteStream = Box::pin(tokio_util::io::ReaderStream::with_capacity(file, 1 << 20));
        let written = self.put_as(settled.id.clone(), body).await;
        // The spool file goes with its guard, uploaded or not.
        drop(settled);
        written
    }

    fn md5_blocking(&self, id: &str, between: &mut dyn FnMut()) -> io::Result<String> {
        self.runtime.block_on(async {
            let segments = self.segments(id).await?;
            let size = segments.iter().map(|(_, size)| size).sum();
            let stream = self.inner.read_pieces(Inner::pieces(&segments, 0, size)?).await?;
            super::md5_of(stream, between).await
        })
    }

    async fn delete(&self, id: &str) -> io::Result<()> {
        self.check()?;
        let intent_key = match id.strip_prefix(PARTS_ID) {
            Some(uuid) => match Uuid::parse_str(uuid) {
                Ok(uuid) => {
                    self.inner.delete_parts(&uuid.to_string()).await?;
                    self.inner.parts_folder(&uuid.to_string())
                }
                Err(_) => return Ok(()),
            },
            None => match self.inner.blob_key(id) {
                Ok(key) => {
                    self.inner.delete_key(&key).await?;
                    key
                }
                Err(_) => return Ok(()),
            },
        };
        // A blob deleted before a row named it (a failed commit) takes its intent along.
        if let Err(error) = self.store.remove_intent(intent_key.as_ref()).await {
            tracing::warn!(%error, "could not remove a deleted blob's intent");
        }
        Ok(())
    }

    fn name(&self) -> &str {
        &self.name
    }

    async fn sweep(&self, keep: &HashSet<String>, before: Option<SystemTime>) -> io::Result<SweepReport> {
        self.check()?;
        self.sweep_store(keep, before).await
    }

    async fn ping(&self) -> io::Result<()> {
        let key = self.inner.key("store-id");
        let wait = self.inner.timeout.min(Duration::from_secs(2));
        match tokio::time::timeout(wait, self.inner.s3.head(&key)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(unavailable(format!("the object store failed: {error}"))),
            Err(_) => Err(unavailable("the object store did not answer in time")),
        }
    }

    fn record_health(&self, answered: bool) -> bool {
        self.down.swap(!answered, Ordering::AcqRel) == answered
    }

    fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    async fn heartbeat(&self) -> io::Result<()> {
        self.store
            .beat_intents(&self.node)
            .await
            .map(|_| ())
            .map_err(database_error)
    }
}
