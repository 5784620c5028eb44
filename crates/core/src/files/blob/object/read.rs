//! Reading an object store's blobs: a range streamed from one object (`Direct`) or from the
//! objects of a parts blob one after another (`forward` into `Received`), and a blob read at any
//! offset, a window at a time (`RemoteFile`, for SFTP).

use std::io;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use object_store::path::Path as Key;

use super::super::ReadAt;
use super::{Inner, WINDOW, store_failure};

/// Send `piece`'s bytes from `stream`; false when the download ended (an error sent, or the
/// consumer gone).
pub(super) async fn forward(
    mut stream: BoxStream<'static, object_store::Result<Bytes>>,
    piece: &Piece,
    sender: &tokio::sync::mpsc::Sender<io::Result<Bytes>>,
) -> bool {
    let mut got = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(store_failure);
        if let Ok(chunk) = &chunk {
            got += chunk.len() as u64;
        }
        let failed = chunk.is_err();
        if sender.send(chunk).await.is_err() || failed {
            return false;
        }
    }
    if got != piece.to - piece.from {
        let short = io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the object is shorter than its blob",
        );
        let _ = sender.send(Err(short)).await;
        return false;
    }
    true
}

/// A channel's receiving end as a download stream (`Send + Sync`, which the store's own
/// stream is not).
pub(super) struct Received(pub(super) tokio::sync::mpsc::Receiver<io::Result<Bytes>>);

impl futures_util::Stream for Received {
    type Item = io::Result<Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// One object's range as a download stream, straight from the store's stream: `Sync` (which
/// the store's stream is not) through a mutex never locked, since polling holds the only
/// reference; an object that ends before or after the range is an error, as in `forward`.
pub(super) struct Direct {
    pub(super) stream: std::sync::Mutex<BoxStream<'static, object_store::Result<Bytes>>>,
    /// Bytes still to come (negative: more came than the range holds).
    pub(super) left: i64,
    pub(super) done: bool,
}

impl futures_util::Stream for Direct {
    type Item = io::Result<Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        let stream = this.stream.get_mut().unwrap_or_else(|e| e.into_inner());
        match std::task::ready!(stream.as_mut().poll_next(cx)) {
            Some(Ok(chunk)) => {
                this.left -= chunk.len() as i64;
                if this.left < 0 {
                    this.done = true;
                    return Poll::Ready(Some(Err(io::Error::other("the object is longer than its blob"))));
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Some(Err(error)) => {
                this.done = true;
                Poll::Ready(Some(Err(store_failure(error))))
            }
            None => {
                this.done = true;
                match this.left {
                    0 => Poll::Ready(None),
                    _ => Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the object is shorter than its blob",
                    )))),
                }
            }
        }
    }
}

/// A range of one object: bytes `from..to` of `key`.
pub(super) struct Piece {
    pub(super) key: Key,
    pub(super) from: u64,
    pub(super) to: u64,
}

/// A blob in the store read at any offset (SFTP): `WINDOW` bytes fetched at once and kept
/// for the reads that follow.
pub(super) struct RemoteFile {
    pub(super) inner: Arc<Inner>,
    pub(super) segments: Vec<(Key, u64)>,
    pub(super) size: u64,
    pub(super) window: tokio::sync::Mutex<(u64, Bytes)>,
}

#[async_trait]
impl ReadAt for RemoteFile {
    async fn read_at(&self, length: usize, offset: u64) -> io::Result<Bytes> {
        if offset >= self.size || length == 0 {
            return Ok(Bytes::new());
        }
        let end = (offset + length as u64).min(self.size);
        let mut window = self.window.lock().await;
        let (start, data) = &*window;
        if *start <= offset && end <= start + data.len() as u64 {
            return Ok(data.slice((offset - start) as usize..(end - start) as usize));
        }
        let fetch = (end - offset).max(WINDOW).min(self.size - offset);
        let data = self.inner.read_range(&self.segments, offset, fetch).await?;
        let slice = data.slice(..(end - offset) as usize);
        *window = (offset, data);
        Ok(slice)
    }
}
