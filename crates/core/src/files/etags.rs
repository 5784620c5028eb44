//! MD5 ETags computed after the commit, for the files SFTP and WebDAV write without hashing.
//!
//! Every protocol shows a file's MD5 somewhere: S3 as its ETag (clients such as rclone check a
//! download against it), WebDAV as `ETag` and `getetag`, REST as `etag`. But hashing on the
//! way costs an upload a large part of the server's CPU: 1.3 s of 4.7 s for 1 GiB over SFTP
//! here, beside the decryption and the copy into the page cache; over WebDAV, MD5 (~790 MB/s
//! on one core) is what limits a large PUT on two cores. So a file that SFTP writes through a
//! draft (`BlobStore::finish` with `Md5When::Later`), or a WebDAV PUT of more than
//! `blob::HASH_ON_THE_WAY` bytes (`BlobStore::put` with `Md5When::Later`), is committed with
//! etag `""`, and queued here: a thread of its own reads the blob back, hashes it and records
//! the ETag (`Store::set_etag`, which only fills in a `""` of that same blob).
//!
//! The thread works while the server is otherwise idle. A low CPU priority is not enough:
//! hashing during a download slowed an SFTP get of 1 GiB from ~420 to ~300 MB/s here at nice 19,
//! and as much under `SCHED_IDLE` (the two vCPUs share more than the scheduler sees). So
//! between reads it measures what the rest of the process used (`Gate`), and while that is over
//! a tenth of a core it waits; after a second of waiting it reads on for one `SAMPLE` (about
//! 5% of a core on a server that is never idle), so that it still ends.
//!
//! No client sees a wrong ETag: the `Tree` that REST and S3 read through hashes a file whose
//! ETag is still `""` itself before it answers (`Tree::settle`), and so does WebDAV for a
//! request that compares entity tags or asks for `getetag` (`dav::serve`). Any other WebDAV
//! request, like every SFTP one, sees such a file without an ETag (RFC 7232 §2.3 makes it
//! optional) until it is computed. Files still pending at a stop or a crash are queued again
//! at the next start, and hourly, by one node of a cluster (`Tree::queue_pending_etags`).

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cells_store::{NodeId, Store};

use super::blob::BlobStore;

/// A file whose ETag is to compute: its node and the blob it held when it was queued.
struct Job {
    node: NodeId,
    blob: String,
}

/// The queue of the ETag worker (see the module doc). Dropping every handle stops it.
pub struct Etags {
    jobs: mpsc::Sender<Job>,
}

/// The worker's CPU priority: the lowest nice value Linux has.
const NICE: i32 = 19;
/// How often the worker looks at what the rest of the server uses.
const SAMPLE: Duration = Duration::from_millis(50);
/// How long it waits before looking again when the server is busy.
const PAUSE: Duration = Duration::from_millis(100);
/// The longest it waits before reading on for one `SAMPLE`, so that a server never idle still
/// gets its ETags.
const LONGEST_WAIT: Duration = Duration::from_secs(1);

impl Etags {
    /// Start the worker. Outside a Tokio runtime there is none (readers then hash for
    /// themselves). The files still pending from before come through `Tree::queue_pending_etags`.
    pub fn start(store: Store, blobs: Arc<dyn BlobStore>) -> Etags {
        let (jobs, queue) = mpsc::channel::<Job>();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Etags { jobs };
        };
        let (done, mut hashed) = tokio::sync::mpsc::unbounded_channel::<(Job, String)>();
        let spawned = std::thread::Builder::new()
            .name("cells-etags".into())
            .spawn(move || hash_all(&*blobs, &queue, &done));
        if let Err(error) = spawned {
            tracing::warn!(%error, "no ETag worker: files written over SFTP are hashed when first read");
            return Etags { jobs };
        }
        runtime.spawn(async move {
            // Writes happen here, on the runtime, not on the worker's thread: it stops when
            // the runtime does, and it must not block a runtime that is going away.
            while let Some((job, md5)) = hashed.recv().await {
                if let Err(error) = store.set_etag(job.node, &job.blob, &md5).await {
                    tracing::warn!(node = %job.node, %error, "could not record a file's ETag");
                }
            }
        });
        Etags { jobs }
    }

    /// Compute the ETag of file `node`, just committed with content `blob` and etag `""`.
    pub fn queue(&self, node: NodeId, blob: &str) {
        // A worker that is gone leaves the file to its first reader (`Tree::settle`).
        let _ = self.jobs.send(Job {
            node,
            blob: blob.to_string(),
        });
    }
}

/// The worker thread: hash each queued blob, hand the result to the recording task.
fn hash_all(
    blobs: &dyn BlobStore,
    queue: &mpsc::Receiver<Job>,
    done: &tokio::sync::mpsc::UnboundedSender<(Job, String)>,
) {
    lower_priority();
    let mut gate = Gate::new();
    loop {
        let job = match queue.try_recv() {
            Ok(job) => job,
            Err(mpsc::TryRecvError::Empty) => {
                let Ok(job) = queue.recv() else { return };
                // What the server did while the worker slept says nothing of now.
                gate = Gate::new();
                job
            }
            Err(mpsc::TryRecvError::Disconnected) => return,
        };
        match blobs.md5_blocking(&job.blob, &mut || gate.pass()) {
            Ok(md5) => {
                if done.send((job, md5)).is_err() {
                    return;
                }
            }
            // Overwritten or deleted since it was queued: nothing to record.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => tracing::warn!(node = %job.node, %error, "could not hash a file for its ETag"),
        }
    }
}

/// Where the worker waits while the rest of the server is busy (see the module doc).
struct Gate {
    /// When `others` was read.
    sampled: Instant,
    /// CPU time of the process but this thread, then.
    others: Duration,
    /// How long the worker has waited since its last read.
    waited: Duration,
}

impl Gate {
    fn new() -> Gate {
        Gate {
            sampled: Instant::now(),
            others: others_cpu(),
            waited: Duration::ZERO,
        }
    }

    /// Return when the worker may do its next read.
    fn pass(&mut self) {
        loop {
            let now = Instant::now();
            let window = now - self.sampled;
            if window < SAMPLE {
                return;
            }
            let others = others_cpu();
            let busy = (others.saturating_sub(self.others)) * 10 > window;
            self.sampled = now;
            self.others = others;
            if !busy || self.waited >= LONGEST_WAIT {
                self.waited = Duration::ZERO;
                return;
            }
            std::thread::sleep(PAUSE);
            self.waited += PAUSE;
        }
    }
}

/// The CPU time this process has used, but the calling thread.
fn others_cpu() -> Duration {
    use rustix::time::{ClockId, clock_gettime};
    let time = |clock| {
        let spec = clock_gettime(clock);
        Duration::new(
            spec.tv_sec.max(0) as u64,
            spec.tv_nsec.clamp(0, 999_999_999) as u32,
        )
    };
    time(ClockId::ProcessCPUTime).saturating_sub(time(ClockId::ThreadCPUTime))
}

/// Give this thread (only: on Linux a nice value is per thread) the lowest CPU priority.
fn lower_priority() {
    let thread = rustix::thread::gettid();
    if let Err(error) = rustix::process::setpriority_process(Some(thread), NICE) {
        tracing::debug!(%error, "the ETag worker runs at normal priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::blob::LocalBlobs;
    use cells_store::{NewNode, NodeKind};
    use md5::{Digest, Md5};

    /// A file node committed without its MD5.
    fn leaf<'a>(parent: NodeId, name: &'a str, blob: &'a str) -> NewNode<'a> {
        NewNode {
            parent_id: parent,
            name,
            kind: NodeKind::Leaf,
            size: 300_000,
            etag: "",
            blob_id: Some(blob),
            mtime: 0,
            meta: None,
            data: None,
        }
    }

    /// A file committed with etag `""` before a start gets its MD5 from the worker once the
    /// node leading the cluster's jobs queues it (`Tree::queue_pending_etags`), without any
    /// reader asking; content written since is left alone.
    #[tokio::test]
    async fn pending_etags_are_filled_in_after_a_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&crate::config::sqlite_url(&dir.path().join("cells.db")))
            .await
            .unwrap();
        let blobs: Arc<dyn BlobStore> = Arc::new(LocalBlobs::open(&dir.path().join("blobs")).unwrap());
        let content = vec![7u8; 300_000];
        let body: crate::files::blob::ByteStream = Box::pin(futures_util::stream::iter([Ok(
            bytes::Bytes::from(content.clone()),
        )]));
        let written = blobs.put(body, crate::files::blob::Md5When::Now).await.unwrap();
        let root = store.ensure_root("common-files", None).await.unwrap();
        let node = store
            .create_node(leaf(root.id, "a.bin", &written.id))
            .await
            .unwrap();
        let missing = "00000000-0000-4000-8000-000000000000";
        let gone = store
            .create_node(leaf(root.id, "gone.bin", missing))
            .await
            .unwrap();

        let tree = crate::files::Tree::new(store.clone(), blobs.clone());
        assert_eq!(tree.queue_pending_etags().await.unwrap(), 2);
        let expected = hex::encode(Md5::digest(&content));
        let mut etag = String::new();
        for _ in 0..1200 {
            etag = store.find_node(node.id).await.unwrap().unwrap().etag;
            if !etag.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        assert_eq!(etag, expected);
        // A blob that is gone has no MD5 to record; its row stays pending, for a reader to
        // fail on like any read of missing content.
        assert_eq!(store.find_node(gone.id).await.unwrap().unwrap().etag, "");
        // `set_etag` only fills in a pending ETag of the same blob.
        assert!(!store.set_etag(node.id, &written.id, "0123").await.unwrap());
        assert!(!store.set_etag(gone.id, &written.id, "0123").await.unwrap());
    }
}
