//! The contract every `BlobStore` keeps, run on each: memory, local disk, and an object store
//! when `CELLS_TEST_BLOB_STORE` names one (`s3://BUCKET`, with `AWS_ENDPOINT_URL` and the
//! credentials in the environment; each run uses a prefix of its own).

use super::*;

/// A body of `size` bytes that is not all one value, sent in uneven chunks.
fn content(size: usize, seed: u8) -> Vec<u8> {
    (0..size)
        .map(|i| ((i * 31 + seed as usize) % 251) as u8)
        .collect()
}

fn body(data: &[u8]) -> ByteStream {
    let chunks: Vec<io::Result<Bytes>> = data
        .chunks(100_003)
        .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
        .collect();
    Box::pin(futures_util::stream::iter(chunks))
}

async fn read(blobs: &dyn BlobStore, id: &str, offset: u64, length: u64) -> Vec<u8> {
    let mut stream = blobs
        .stream(id, offset, length)
        .await
        .unwrap_or_else(|error| panic!("read {id} from {offset}, {length} bytes: {error:?}"));
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(
            &chunk.unwrap_or_else(|error| panic!("read {id} from {offset}, {length} bytes: {error:?}")),
        );
    }
    let via_reader = read_all(blobs.open(id, offset, length).await.unwrap())
        .await
        .unwrap();
    assert_eq!(out, via_reader, "stream and reader agree");
    out
}

/// Whether reading fails: at once, or in the stream (a store may find out only as it reads).
async fn fails(blobs: &dyn BlobStore, id: &str, offset: u64, length: u64) -> bool {
    let Ok(mut stream) = blobs.stream(id, offset, length).await else {
        return true;
    };
    while let Some(chunk) = stream.next().await {
        if chunk.is_err() {
            return true;
        }
    }
    false
}

/// Every store this run can reach, with what keeps it alive.
async fn stores() -> Vec<(Arc<dyn BlobStore>, tempfile::TempDir)> {
    let mut stores: Vec<(Arc<dyn BlobStore>, tempfile::TempDir)> = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    stores.push((
        Arc::new(MemoryBlobs::new(&dir.path().join("spool")).unwrap()),
        dir,
    ));
    let dir = tempfile::tempdir().unwrap();
    stores.push((
        Arc::new(LocalBlobs::open(&dir.path().join("blobs")).unwrap()),
        dir,
    ));
    if let Ok(url) = std::env::var("CELLS_TEST_BLOB_STORE") {
        let dir = tempfile::tempdir().unwrap();
        let bucket = url
            .strip_prefix("s3://")
            .expect("CELLS_TEST_BLOB_STORE is s3://BUCKET")
            .trim_end_matches('/');
        let db = cells_store::Store::open(&crate::config::sqlite_url(&dir.path().join("t.db")))
            .await
            .unwrap();
        let config = ObjectConfig {
            bucket: bucket.to_string(),
            prefix: format!("contract-{}", uuid::Uuid::new_v4()),
            spool: dir.path().join("spool"),
            timeout: std::time::Duration::from_secs(5),
            node: "contract-node".into(),
        };
        stores.push((Arc::new(ObjectBlobs::open(config, db).await.unwrap()), dir));
    }
    stores
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_read_back_exactly_in_any_range() {
    for (blobs, _keep) in stores().await {
        let blobs = blobs.as_ref();
        let name = blobs.name().to_string();
        // Small, and larger than an object store's part (a multipart upload).
        for size in [0usize, 11, 1 << 20, (20 << 20) + 7] {
            let data = content(size, 3);
            let written = blobs.put(body(&data), Md5When::Now).await.unwrap();
            assert_eq!(written.size, size as u64, "{name}");
            assert_eq!(written.md5, hex::encode(Md5::digest(&data)), "{name}");
            assert_eq!(read(blobs, &written.id, 0, size as u64).await, data, "{name}");
            if size > 10 {
                let (offset, length) = (size as u64 / 2 - 5, size as u64 / 3);
                let part = read(blobs, &written.id, offset, length).await;
                assert_eq!(part, &data[offset as usize..(offset + length) as usize], "{name}");
                assert!(
                    fails(blobs, &written.id, 1, size as u64).await,
                    "{name}: past the end"
                );
                let file = blobs.open_file(&written.id).await.unwrap();
                let at = file.read_at(1000, offset).await.unwrap();
                assert_eq!(
                    &at[..],
                    &data[offset as usize..offset as usize + 1000.min(size - offset as usize)]
                );
                let tail = file.read_at(64, size as u64 - 3).await.unwrap();
                assert_eq!(&tail[..], &data[size - 3..], "{name}: short only at the end");
                assert!(file.read_at(64, size as u64).await.unwrap().is_empty());
            }
            let id = written.id.clone();
            let hashed = tokio::task::block_in_place(|| blobs.md5_blocking(&id, &mut || {})).unwrap();
            assert_eq!(hashed, written.md5, "{name}");
        }
        assert!(fails(blobs, "../../etc/passwd", 0, 1).await, "{name}");
        assert!(fails(blobs, "parts:../../etc", 0, 1).await, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_and_concatenations_are_independent_blobs() {
    for (blobs, _keep) in stores().await {
        let blobs = blobs.as_ref();
        let name = blobs.name().to_string();
        let a = content((6 << 20) + 1, 1);
        let b = content(1000, 2);
        let first = blobs.put(body(&a), Md5When::Now).await.unwrap();
        let second = blobs.put(body(&b), Md5When::Now).await.unwrap();
        let (joined, size) = blobs
            .concat(&[first.id.clone(), second.id.clone()])
            .await
            .unwrap();
        assert_eq!(size, (a.len() + b.len()) as u64, "{name}");
        let copy = blobs.copy(&first.id).await.unwrap();
        let copy_of_joined = blobs.copy(&joined).await.unwrap();
        blobs.delete(&first.id).await.unwrap();
        blobs.delete(&first.id).await.unwrap();
        blobs.delete(&second.id).await.unwrap();
        let whole = [a.clone(), b.clone()].concat();
        assert_eq!(read(blobs, &joined, 0, size).await, whole, "{name}");
        let across = read(blobs, &joined, a.len() as u64 - 3, 10).await;
        assert_eq!(
            across,
            &whole[a.len() - 3..a.len() + 7],
            "{name}: across the parts' edge"
        );
        assert_eq!(read(blobs, &copy, 0, a.len() as u64).await, a, "{name}");
        blobs.delete(&joined).await.unwrap();
        assert_eq!(read(blobs, &copy_of_joined, 0, size).await, whole, "{name}");
        assert!(fails(blobs, &joined, 0, 1).await, "{name}: deleted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drafts_become_blobs_or_nothing() {
    for (blobs, _keep) in stores().await {
        let blobs = blobs.as_ref();
        let name = blobs.name().to_string();
        let base = blobs.put(body(b"hello world"), Md5When::Now).await.unwrap();
        let mut draft = blobs.draft(Some(&base.id)).await.unwrap();
        draft.write_at(Bytes::from_static(b"W"), 6).await.unwrap();
        draft.write_at(Bytes::from_static(b"!"), 13).await.unwrap();
        assert_eq!(
            &draft.reader().read_at(100, 0).await.unwrap()[..],
            b"hello World\0\0!"
        );
        draft.set_len(12).await.unwrap();
        let written = blobs.finish(draft, Md5When::Now).await.unwrap();
        assert_eq!(written.size, 12, "{name}");
        assert_eq!(read(blobs, &written.id, 0, 12).await, b"hello World\0", "{name}");
        assert_eq!(
            read(blobs, &base.id, 0, 11).await,
            b"hello world",
            "{name}: the source stays"
        );

        let mut abandoned = blobs.draft(None).await.unwrap();
        abandoned.write_at(Bytes::from_static(b"half"), 0).await.unwrap();
        drop(abandoned);
        let keep: HashSet<String> = [base.id.clone(), written.id.clone()].into();
        let report = blobs.sweep(&keep, None).await.unwrap();
        assert_eq!(report.orphan_blobs, 0, "{name}: an unfinished draft made no blob");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_removes_only_old_unnamed_blobs() {
    for (blobs, _keep) in stores().await {
        let blobs = blobs.as_ref();
        let name = blobs.name().to_string();
        let kept = blobs.put(body(b"kept"), Md5When::Now).await.unwrap();
        let orphan = blobs.put(body(&content(9 << 20, 5)), Md5When::Now).await.unwrap();
        let broken: ByteStream = Box::pin(futures_util::stream::iter(vec![
            Ok(Bytes::from(content(9 << 20, 6))),
            Err(io::Error::new(io::ErrorKind::ConnectionReset, "client went away")),
        ]));
        assert!(blobs.put(broken, Md5When::Now).await.is_err(), "{name}");
        let keep: HashSet<String> = [kept.id.clone()].into();
        let an_hour_ago = SystemTime::now() - std::time::Duration::from_secs(3600);
        let report = blobs.sweep(&keep, Some(an_hour_ago)).await.unwrap();
        assert_eq!(
            report.orphan_blobs, 0,
            "{name}: fresh blobs stay when an age is given"
        );
        let report = blobs.sweep(&keep, None).await.unwrap();
        assert_eq!(
            report.orphan_blobs, 1,
            "{name}: the orphan goes, the cut upload left nothing"
        );
        assert!(fails(blobs, &orphan.id, 0, 1).await, "{name}");
        assert_eq!(read(blobs, &kept.id, 0, 4).await, b"kept", "{name}");
    }
}
