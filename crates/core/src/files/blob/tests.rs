//! Unit tests of `blob::local` (the contract every store keeps is in `contract`).

use super::*;
use crate::files::blob::{bytes_stream, read_all};

#[tokio::test]
async fn put_open_delete_and_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = LocalBlobs::open(dir.path()).unwrap();
    let written = blobs
        .put(bytes_stream(Bytes::from_static(b"hello world")), Md5When::Now)
        .await
        .unwrap();
    assert_eq!(written.size, 11);
    assert_eq!(written.md5, "5eb63bbbe01eeed093cb22bb8f5acdc3");
    let all = read_all(blobs.open(&written.id, 0, 11).await.unwrap())
        .await
        .unwrap();
    assert_eq!(all, b"hello world");
    let range = read_all(blobs.open(&written.id, 6, 3).await.unwrap())
        .await
        .unwrap();
    assert_eq!(range, b"wor");

    let orphan = blobs
        .put(bytes_stream(Bytes::from_static(b"orphan")), Md5When::Now)
        .await
        .unwrap();
    std::fs::write(dir.path().join("tmp").join("half-written"), b"x").unwrap();
    let keep: HashSet<String> = [written.id.clone()].into();
    let an_hour_ago = SystemTime::now() - std::time::Duration::from_secs(3600);
    let report = blobs.sweep(&keep, Some(an_hour_ago)).await.unwrap();
    assert_eq!(
        report,
        SweepReport::default(),
        "fresh files are kept when an age is given"
    );
    let report = blobs.sweep(&keep, None).await.unwrap();
    assert_eq!(
        report,
        SweepReport {
            temp_files: 1,
            orphan_blobs: 1
        }
    );
    assert!(blobs.open(&orphan.id, 0, 1).await.is_err());
    assert!(blobs.open(&written.id, 0, 1).await.is_ok());

    let copied = blobs.copy(&written.id).await.unwrap();
    assert_ne!(copied, written.id);
    assert_eq!(
        read_all(blobs.open(&copied, 0, 11).await.unwrap()).await.unwrap(),
        b"hello world"
    );
    blobs.delete(&written.id).await.unwrap();
    blobs.delete(&written.id).await.unwrap();
    assert!(blobs.open(&copied, 0, 1).await.is_ok(), "a copy is independent");
    assert!(blobs.open("../../etc/passwd", 0, 1).await.is_err());
}

#[tokio::test]
async fn failed_stream_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = LocalBlobs::open(dir.path()).unwrap();
    let body: ByteStream = Box::pin(futures_util::stream::iter(vec![
        Ok(Bytes::from_static(b"partial")),
        Err(io::Error::new(io::ErrorKind::ConnectionReset, "client went away")),
    ]));
    assert!(blobs.put(body, Md5When::Now).await.is_err());
    assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
}

/// Files under the blob root other than temp files: installed blobs and drafts.
fn blob_files(root: &Path) -> usize {
    std::fs::read_dir(root)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != "tmp" && e.path().is_dir())
        .map(|e| std::fs::read_dir(e.path()).unwrap().count())
        .sum()
}

/// A draft is written in place: finished, it is a blob with its content hashed; dropped
/// unfinished (a client gone mid-write), nothing of it is left.
#[tokio::test]
async fn drafts_become_blobs_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = LocalBlobs::open(dir.path()).unwrap();
    let base = blobs
        .put(bytes_stream(Bytes::from_static(b"hello world")), Md5When::Now)
        .await
        .unwrap();

    let mut draft = blobs.draft(Some(&base.id)).await.unwrap();
    draft.write_at(Bytes::from_static(b"W"), 6).await.unwrap();
    let written = blobs.finish(draft, Md5When::Now).await.unwrap();
    assert_eq!(written.size, 11);
    assert_eq!(written.md5, hex::encode(Md5::digest(b"hello World")));
    let all = read_all(blobs.open(&written.id, 0, 11).await.unwrap())
        .await
        .unwrap();
    assert_eq!(all, b"hello World");
    let base_now = read_all(blobs.open(&base.id, 0, 11).await.unwrap())
        .await
        .unwrap();
    assert_eq!(base_now, b"hello world", "the draft's source is untouched");
    assert_eq!(blob_files(dir.path()), 2);

    let mut abandoned = blobs.draft(None).await.unwrap();
    abandoned.write_at(Bytes::from_static(b"half"), 0).await.unwrap();
    drop(abandoned);
    assert_eq!(blob_files(dir.path()), 2, "an unfinished draft leaves nothing");
    assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
}

/// A hot small file is read on the calling thread; what the fast path cannot serve
/// (missing, shorter than asked) is left to the blocking pool, which reports it.
#[test]
fn cached_reads_serve_only_what_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hot");
    std::fs::write(&path, b"hello world").unwrap();
    assert_eq!(read_cached(&path, 6, 5).as_deref(), Some(&b"world"[..]));
    assert_eq!(read_cached(&path, 6, 6), None, "past the end");
    assert_eq!(read_cached(&dir.path().join("missing"), 0, 1), None);
}

/// Downloads in chunks: the whole blob and a range give exactly the bytes asked for.
#[tokio::test]
async fn streams_give_exact_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = LocalBlobs::open(dir.path()).unwrap();
    let content: Vec<u8> = (0..(3 * SEND_CHUNK + 12345)).map(|i| (i % 251) as u8).collect();
    let written = blobs
        .put(bytes_stream(Bytes::from(content.clone())), Md5When::Now)
        .await
        .unwrap();
    let collect = |offset: u64, length: u64| {
        let blobs = &blobs;
        let id = written.id.clone();
        async move {
            let mut stream = blobs.stream(&id, offset, length).await.unwrap();
            let mut out = Vec::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.unwrap();
                assert!(chunk.len() <= SEND_CHUNK.max(READ_BUFFER));
                out.extend_from_slice(&chunk);
            }
            out
        }
    };
    assert_eq!(collect(0, content.len() as u64).await, content);
    let (offset, length) = (SEND_CHUNK as u64 - 7, SEND_CHUNK as u64 + 100);
    assert_eq!(
        collect(offset, length).await,
        &content[offset as usize..(offset + length) as usize]
    );
    assert_eq!(collect(5, 10).await, &content[5..15]);
    // A node claiming more than the blob holds is an error, not short or garbage content.
    let mut beyond = blobs.stream(&written.id, 1, content.len() as u64).await.unwrap();
    let mut failed = false;
    while let Some(chunk) = beyond.next().await {
        failed |= chunk.is_err();
    }
    assert!(failed);
}

/// A large body goes through the writer on the blocking pool: whole, it is installed
/// with the right hash; broken off after megabytes, nothing is left, not even a temp file.
#[tokio::test]
async fn large_bodies_are_written_alongside_and_abandoned_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = LocalBlobs::open(dir.path()).unwrap();
    let megabyte = Bytes::from(vec![7u8; 1 << 20]);
    let whole: Vec<io::Result<Bytes>> = (0..5).map(|_| Ok(megabyte.clone())).collect();
    let written = blobs
        .put(Box::pin(futures_util::stream::iter(whole)), Md5When::Now)
        .await
        .unwrap();
    assert_eq!(written.size, 5 << 20);
    let mut md5 = Md5::new();
    for _ in 0..5 {
        md5.update(&megabyte);
    }
    assert_eq!(written.md5, hex::encode(md5.finalize()));
    assert_eq!(
        std::fs::read(blobs.path_of(&written.id).unwrap()).unwrap().len(),
        5 << 20
    );

    let mut broken: Vec<io::Result<Bytes>> = (0..3).map(|_| Ok(megabyte.clone())).collect();
    broken.push(Err(io::Error::new(
        io::ErrorKind::ConnectionReset,
        "client went away",
    )));
    assert!(
        blobs
            .put(Box::pin(futures_util::stream::iter(broken)), Md5When::Now)
            .await
            .is_err()
    );
    assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    assert_eq!(blob_files(dir.path()), 1, "only the whole blob is installed");
}

/// With `Md5When::Later`, a body up to `HASH_ON_THE_WAY` is still hashed as it comes (in
/// place or through the writer); a larger one is written whole, with no MD5, for
/// `files::etags` to compute after the commit.
#[tokio::test]
async fn later_leaves_only_large_bodies_unhashed() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = LocalBlobs::open(dir.path()).unwrap();
    let megabyte = Bytes::from((0..1u32 << 20).map(|i| (i % 253) as u8).collect::<Vec<u8>>());
    let body = |megabytes: u64, tail: usize| -> ByteStream {
        let mut chunks: Vec<io::Result<Bytes>> = (0..megabytes).map(|_| Ok(megabyte.clone())).collect();
        chunks.push(Ok(megabyte.slice(..tail)));
        Box::pin(futures_util::stream::iter(chunks))
    };
    let md5_of = |megabytes: u64, tail: usize| {
        let mut md5 = Md5::new();
        for _ in 0..megabytes {
            md5.update(&megabyte);
        }
        md5.update(&megabyte[..tail]);
        hex::encode(md5.finalize())
    };
    let limit = HASH_ON_THE_WAY >> 20;
    for (megabytes, tail, hashed) in [
        (0, 1000, true),
        (3, 0, true),
        (limit, 0, true),
        (limit, 1, false),
        (limit + 5, 7, false),
    ] {
        let written = blobs.put(body(megabytes, tail), Md5When::Later).await.unwrap();
        let size = (megabytes << 20) + tail as u64;
        assert_eq!(written.size, size);
        let expected = if hashed {
            md5_of(megabytes, tail)
        } else {
            String::new()
        };
        assert_eq!(written.md5, expected, "{size} bytes");
        // Whole on disk either way, and what the ETag worker computes is the same MD5.
        assert_eq!(
            blobs.md5_blocking(&written.id, &mut || {}).unwrap(),
            md5_of(megabytes, tail)
        );
    }
}

/// A concatenation links the parts' files instead of copying them: it reads as the parts
/// one after the other (whole, in ranges across their edges, at any offset), outlives the
/// parts' own names, copies and drafts from it are independent, and the sweep keeps it
/// only while a row names it.
#[tokio::test]
async fn concatenations_are_linked_parts() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = LocalBlobs::open(dir.path()).unwrap();
    let sizes = [SEND_CHUNK + 3, 10, SEND_CHUNK * 2 + 1];
    let mut content = Vec::new();
    let mut ids = Vec::new();
    for (n, size) in sizes.iter().enumerate() {
        let part: Vec<u8> = (0..*size).map(|i| ((i * 7 + n) % 253) as u8).collect();
        content.extend_from_slice(&part);
        ids.push(
            blobs
                .put(bytes_stream(Bytes::from(part)), Md5When::Now)
                .await
                .unwrap()
                .id,
        );
    }
    let (id, size) = blobs.concat(&ids).await.unwrap();
    assert!(id.starts_with(PARTS_ID));
    assert_eq!(size, content.len() as u64);
    for id in &ids {
        blobs.delete(id).await.unwrap();
    }
    let total = content.len() as u64;
    let collect = |offset: u64, length: u64| {
        let (blobs, id) = (&blobs, id.clone());
        async move {
            let mut stream = blobs.stream(&id, offset, length).await.unwrap();
            let mut out = Vec::new();
            while let Some(chunk) = stream.next().await {
                out.extend_from_slice(&chunk.unwrap());
            }
            out
        }
    };
    assert_eq!(collect(0, total).await, content);
    let edge = sizes[0] as u64;
    for (offset, length) in [(edge - 5, 20), (edge + 2, 1), (1, total - 2), (total, 0)] {
        let expected = &content[offset as usize..(offset + length) as usize];
        assert_eq!(collect(offset, length).await, expected, "{offset}+{length}");
        let read = read_all(blobs.open(&id, offset, length).await.unwrap())
            .await
            .unwrap();
        assert_eq!(read, expected);
    }
    assert!(blobs.stream(&id, 1, total).await.is_err(), "past the end");

    let file = blobs.open_file(&id).await.unwrap();
    let read = file.read_at(4, edge - 4).await.unwrap();
    assert_eq!(
        &read[..],
        &content[edge as usize - 4..edge as usize],
        "up to a part's end"
    );
    let read = file.read_at(64, edge - 4).await.unwrap();
    assert_eq!(
        &read[..],
        &content[edge as usize - 4..edge as usize + 60],
        "across a part's end"
    );
    assert!(file.read_at(64, total).await.unwrap().is_empty());

    let copied = blobs.copy(&id).await.unwrap();
    let mut draft = blobs.draft(Some(&id)).await.unwrap();
    draft.write_at(Bytes::from_static(b"changed"), 0).await.unwrap();
    let drafted = blobs.finish(draft, Md5When::Now).await.unwrap();
    assert_eq!(drafted.size, total);
    assert_eq!(collect(0, 7).await, &content[..7], "a draft writes its own file");
    blobs.delete(&id).await.unwrap();
    blobs.delete(&id).await.unwrap();
    assert_eq!(
        read_all(blobs.open(&copied, 0, total).await.unwrap())
            .await
            .unwrap(),
        content,
        "a copy is independent"
    );
    let (of_copies, size) = blobs.concat(&[copied.clone(), drafted.id.clone()]).await.unwrap();
    assert_eq!(size, 2 * total);

    std::fs::create_dir(dir.path().join("tmp").join("half-linked.parts")).unwrap();
    let keep: HashSet<String> = [of_copies.clone()].into();
    let report = blobs.sweep(&keep, None).await.unwrap();
    assert_eq!(
        report,
        SweepReport {
            temp_files: 1,
            orphan_blobs: 2
        }
    );
    let read = read_all(blobs.open(&of_copies, total - 3, 10).await.unwrap())
        .await
        .unwrap();
    assert_eq!(&read[..3], &content[content.len() - 3..]);
    assert_eq!(&read[3..], b"changed");
    assert!(blobs.open(&copied, 0, 1).await.is_err());
    assert!(blobs.open("parts:../../etc", 0, 1).await.is_err());
    assert_eq!(blob_files(dir.path()), 1);
}

/// What is being written is never swept, however long ago its last write (an SFTP file held
/// open for hours); once finished and named by no row, an old enough blob goes.
#[tokio::test]
async fn the_sweep_leaves_what_is_being_written() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = LocalBlobs::open(dir.path()).unwrap();
    let mut draft = blobs.draft(None).await.unwrap();
    draft.write_at(Bytes::from_static(b"held open"), 0).await.unwrap();
    let two_hours_ago = SystemTime::now() - std::time::Duration::from_secs(7200);
    let an_hour_ago = SystemTime::now() - std::time::Duration::from_secs(3600);
    draft.file.set_modified(two_hours_ago).unwrap();
    let report = blobs.sweep(&HashSet::new(), Some(an_hour_ago)).await.unwrap();
    assert_eq!(report.orphan_blobs, 0, "a draft in use stays");
    assert_eq!(blob_files(dir.path()), 1);
    let written = blobs.finish(draft, Md5When::Now).await.unwrap();
    let path = blobs.path_of(&written.id).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    let report = blobs.sweep(&HashSet::new(), Some(an_hour_ago)).await.unwrap();
    assert_eq!(
        report.orphan_blobs, 1,
        "finished, named by nothing and old: swept"
    );
    assert_eq!(blob_files(dir.path()), 0);
}
