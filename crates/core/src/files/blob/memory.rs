//! Blobs in memory, for unit tests of what sits above the store: the same contract as the
//! other stores (ids, ranges, copies, drafts, the sweep), with nothing durable.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use md5::{Digest, Md5};
use uuid::Uuid;

use super::sweep::{TempGuard, Writing};
use super::{
    BlobFile, BlobReader, BlobStore, ByteStream, DownloadStream, Draft, Md5When, ReadAt, Reading,
    SweepReport, WrittenBlob,
};

pub struct MemoryBlobs {
    blobs: Mutex<HashMap<String, (Bytes, SystemTime)>>,
    /// Drafts are spool files here, as with an object store.
    spool: PathBuf,
    writing: Arc<Writing>,
    name: String,
}

impl MemoryBlobs {
    /// An empty store whose drafts are spooled in `spool`.
    pub fn new(spool: &Path) -> io::Result<MemoryBlobs> {
        std::fs::create_dir_all(spool)?;
        Ok(MemoryBlobs {
            blobs: Mutex::default(),
            spool: spool.to_path_buf(),
            writing: Arc::default(),
            name: format!("memory:{}", Uuid::new_v4()),
        })
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Bytes, SystemTime)>> {
        self.blobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, id: &str) -> io::Result<Bytes> {
        self.map()
            .get(id)
            .map(|(data, _)| data.clone())
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such blob"))
    }

    fn insert(&self, data: Bytes) -> String {
        let id = Uuid::new_v4().to_string();
        self.map().insert(id.clone(), (data, SystemTime::now()));
        id
    }

    /// `length` bytes from `offset` of blob `id`; an error when it is shorter.
    fn range(&self, id: &str, offset: u64, length: u64) -> io::Result<Bytes> {
        let data = self.get(id)?;
        let end = offset.saturating_add(length);
        if end > data.len() as u64 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the blob is shorter than its node says",
            ));
        }
        Ok(data.slice(offset as usize..end as usize))
    }
}

struct InMemory(Bytes);

#[async_trait]
impl ReadAt for InMemory {
    async fn read_at(&self, length: usize, offset: u64) -> io::Result<Bytes> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(self.0.len());
        let end = start.saturating_add(length).min(self.0.len());
        Ok(self.0.slice(start..end))
    }
}

#[async_trait]
impl BlobStore for MemoryBlobs {
    async fn put(&self, mut body: ByteStream, _md5: Md5When) -> io::Result<WrittenBlob> {
        let mut data = BytesMut::new();
        while let Some(chunk) = body.next().await {
            data.extend_from_slice(&chunk?);
        }
        let data = data.freeze();
        let md5 = hex::encode(Md5::digest(&data));
        let size = data.len() as u64;
        Ok(WrittenBlob {
            id: self.insert(data),
            size,
            md5,
            inline: None,
        })
    }

    async fn open(&self, id: &str, offset: u64, length: u64) -> io::Result<BlobReader> {
        Ok(Box::pin(io::Cursor::new(self.range(id, offset, length)?)))
    }

    async fn stream(&self, id: &str, offset: u64, length: u64) -> io::Result<DownloadStream> {
        let data = self.range(id, offset, length)?;
        Ok(Box::pin(futures_util::stream::iter([Ok(data)])))
    }

    async fn copy(&self, id: &str) -> io::Result<String> {
        let data = self.get(id)?;
        Ok(self.insert(data))
    }

    async fn concat(&self, ids: &[String]) -> io::Result<(String, u64)> {
        let mut joined = BytesMut::new();
        for id in ids {
            joined.extend_from_slice(&self.get(id)?);
        }
        let size = joined.len() as u64;
        Ok((self.insert(joined.freeze()), size))
    }

    async fn open_file(&self, id: &str) -> io::Result<BlobFile> {
        Ok(BlobFile(Reading::Remote(Arc::new(InMemory(self.get(id)?)))))
    }

    async fn draft(&self, from: Option<&str>) -> io::Result<Draft> {
        let content = from.map(|id| self.get(id)).transpose()?.unwrap_or_default();
        let id = Uuid::new_v4().to_string();
        let path = self.spool.join(&id);
        let guard = TempGuard::new(path.clone(), &self.writing);
        let spool = path.clone();
        let file = tokio::task::spawn_blocking(move || -> io::Result<std::fs::File> {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&spool)?;
            file.write_all(&content)?;
            Ok(file)
        })
        .await
        .map_err(io::Error::other)??;
        Ok(Draft::new(file, id, path, guard, false))
    }

    async fn finish(&self, draft: Draft, _md5: Md5When) -> io::Result<WrittenBlob> {
        let settled = draft.settle().await?;
        let file = settled.file.clone();
        let data = tokio::task::spawn_blocking(move || -> io::Result<Vec<u8>> {
            use std::io::{Read, Seek};
            let mut data = Vec::new();
            let mut file = &*file;
            file.seek(io::SeekFrom::Start(0))?;
            file.read_to_end(&mut data)?;
            Ok(data)
        })
        .await
        .map_err(io::Error::other)??;
        let md5 = hex::encode(Md5::digest(&data));
        let size = data.len() as u64;
        self.map()
            .insert(settled.id.clone(), (Bytes::from(data), SystemTime::now()));
        // The spool file goes with the guard.
        drop(settled.guard);
        Ok(WrittenBlob {
            id: settled.id,
            size,
            md5,
            inline: None,
        })
    }

    fn md5_blocking(&self, id: &str, between: &mut dyn FnMut()) -> io::Result<String> {
        let data = self.get(id)?;
        between();
        Ok(hex::encode(Md5::digest(&data)))
    }

    async fn delete(&self, id: &str) -> io::Result<()> {
        self.map().remove(id);
        Ok(())
    }

    fn name(&self) -> &str {
        &self.name
    }

    async fn sweep(&self, keep: &HashSet<String>, before: Option<SystemTime>) -> io::Result<SweepReport> {
        let mut map = self.map();
        let count = map.len();
        map.retain(|id, (_, made)| keep.contains(id) || before.is_some_and(|before| *made >= before));
        Ok(SweepReport {
            temp_files: 0,
            orphan_blobs: count - map.len(),
        })
    }
}
