//! Issue 32: file content in an object store. Two nodes on one PostgreSQL database and one
//! object store, each with a data dir of its own: whatever one writes, on any protocol and of
//! any size, the other reads with the same bytes, on every protocol. Runs when
//! `CELLS_TEST_DATABASE_URL` and `CELLS_TEST_BLOB_STORE` are set (`.ci/run` sets both).

use md5::Digest;
use object_store::path::Path as Key;
use object_store::{ObjectStoreExt, PutPayload};
use reqwest::{Method, StatusCode};

use crate::harness::{ADMIN, ADMIN_PASSWORD, Auth, Db, TestApp};

/// Bytes that are not one value repeated, so that a misplaced range shows.
fn content(size: usize, seed: u8) -> Vec<u8> {
    (0..size)
        .map(|i| ((i * 131 + seed as usize) % 251) as u8)
        .collect()
}

/// A second node on `node`'s database and object store, with a data dir of its own (only the
/// master key is shared, as every node of a cluster is given it).
async fn other_node(node: &TestApp) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(node.data.join("master.key"), dir.path().join("master.key")).unwrap();
    TestApp::spawn_in(node.db.clone(), dir).await
}

async fn dav_get(app: &TestApp, path: &str) -> Vec<u8> {
    let response = app
        .request(Method::GET, &format!("/dav/{path}"), &Auth::admin())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "WebDAV GET {path}");
    response.bytes().await.unwrap().to_vec()
}

#[tokio::test]
async fn two_nodes_with_their_own_data_dirs_share_every_file() {
    let Some(db) = Db::postgres().await else { return };
    if std::env::var("CELLS_TEST_BLOB_STORE").is_err() {
        eprintln!("skipped: two nodes on one object store (set CELLS_TEST_BLOB_STORE)");
        db.cleanup().await;
        return;
    }
    let a = TestApp::spawn(db.clone()).await;
    let b = other_node(&a).await;
    assert_ne!(a.data, b.data);
    let admin = Auth::admin();
    let token = a.token(ADMIN, &["-e", "1h"]);
    let s3_a = crate::s3::bucket_client(&a, "io", &token, crate::s3::GATEWAY_SECRET);
    let s3_b = crate::s3::bucket_client(&b, "io", &token, crate::s3::GATEWAY_SECRET);
    let sftp_a = crate::sftp::sftp(&a, ADMIN, ADMIN_PASSWORD).await.unwrap();
    let sftp_b = crate::sftp::sftp(&b, ADMIN, ADMIN_PASSWORD).await.unwrap();

    // Small (kept in its row), a blob of one PUT, and one of the store's multipart uploads.
    let mut written = Vec::new();
    for (n, size) in [10usize, 300 << 10, (9 << 20) + 5].into_iter().enumerate() {
        let seed = n as u8 * 5;
        let rest = format!("personal-files/rest-{size}.bin");
        assert_eq!(
            a.put(&admin, &rest, content(size, seed)).await,
            StatusCode::CREATED
        );
        written.push((rest, content(size, seed)));

        let dav = format!("personal-files/dav-{size}.bin");
        let put = a
            .request(Method::PUT, &format!("/dav/{dav}"), &admin)
            .body(content(size, seed + 1))
            .send()
            .await
            .unwrap();
        assert!(put.status().is_success(), "WebDAV PUT: {}", put.status());
        written.push((dav, content(size, seed + 1)));

        let s3 = format!("personal-files/s3-{size}.bin");
        s3_a.put(&Key::from(s3.as_str()), PutPayload::from(content(size, seed + 2)))
            .await
            .unwrap();
        written.push((s3, content(size, seed + 2)));

        let sftp = format!("personal-files/sftp-{size}.bin");
        sftp_a
            .put(&format!("/{sftp}"), &content(size, seed + 3))
            .await
            .unwrap();
        written.push((sftp, content(size, seed + 3)));
    }
    // An S3 multipart upload through the gateway: parts, then completion on the store.
    let multipart = "personal-files/multipart.bin";
    let mut upload = s3_a.put_multipart(&Key::from(multipart)).await.unwrap();
    let mut whole = Vec::new();
    for (n, size) in [5 << 20, 5 << 20, 12345].into_iter().enumerate() {
        let part = content(size, 100 + n as u8);
        whole.extend_from_slice(&part);
        upload.put_part(PutPayload::from(part)).await.unwrap();
    }
    upload.complete().await.unwrap();
    written.push((multipart.to_string(), whole));
    // A copy made on one node (server-side copies in the store), read on the other.
    let (status, body) = a
        .post(
            "/a/tree/copy",
            &admin,
            serde_json::json!({"From": multipart, "To": "personal-files/copy-of-multipart.bin"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let whole = written.last().unwrap().1.clone();
    written.push(("personal-files/copy-of-multipart.bin".to_string(), whole));

    for (path, expected) in &written {
        let (status, body) = b.read(&admin, path).await;
        assert_eq!(status, StatusCode::OK, "REST on the other node: {path}");
        assert!(body == *expected, "REST on the other node: {path}");
        assert!(
            dav_get(&b, path).await == *expected,
            "WebDAV on the other node: {path}"
        );
        let got = s3_b
            .get(&Key::from(path.as_str()))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert!(got == *expected, "S3 on the other node: {path}");
        let mut file = sftp_b.fs.open(format!("/{path}")).await.unwrap();
        let mut read = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut file, &mut read)
            .await
            .unwrap();
        assert!(read == *expected, "SFTP on the other node: {path}");
        if expected.len() > 100 {
            // A range, across the first part's end for the multipart file.
            let from = (5 << 20).min(expected.len() - 50) - 20;
            let ranged = b
                .request(Method::GET, &format!("/a/content/{path}"), &admin)
                .header("Range", format!("bytes={from}-{}", from + 39))
                .send()
                .await
                .unwrap();
            assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
            assert_eq!(
                &ranged.bytes().await.unwrap()[..],
                &expected[from..from + 40],
                "{path}"
            );
        }
    }
    // Written on the other node, read on the first.
    let back = content((9 << 20) + 1, 77);
    assert_eq!(
        b.put(&admin, "personal-files/back.bin", back.clone()).await,
        StatusCode::CREATED
    );
    assert!(a.read(&admin, "personal-files/back.bin").await.1 == back);
    // The ETags agree across nodes (MD5 of the content for single-part objects).
    let head_a = s3_a.head(&Key::from("personal-files/back.bin")).await.unwrap();
    let head_b = s3_b.head(&Key::from("personal-files/back.bin")).await.unwrap();
    assert_eq!(head_a.e_tag, head_b.e_tag);
    assert_eq!(
        head_a
            .e_tag
            .as_deref()
            .map(|tag| tag.trim_matches('"').to_string()),
        Some(format!("{:x}", md5::Md5::digest(&back)))
    );
    drop((sftp_a, sftp_b));
    b.stop_sibling().await;
    let (db, _dir) = a.stop().await;
    db.cleanup().await;
}

/// A database and its object store are bound to each other: a second database pointed at the
/// first one's store (whose sweep would take the first one's files for orphans) and a node on
/// local disk for a database whose files are in the store are both refused at start.
#[tokio::test]
async fn a_store_and_its_database_are_bound() {
    let Some(db) = Db::postgres().await else { return };
    if std::env::var("CELLS_TEST_BLOB_STORE").is_err() {
        eprintln!("skipped: the object store's binding (set CELLS_TEST_BLOB_STORE)");
        db.cleanup().await;
        return;
    }
    let first = TestApp::spawn(db.clone()).await;
    let store = first.app.config.blob_store.clone();

    let other_db = Db::postgres().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::harness::test_config(&other_db, dir.path());
    config.blob_store = store;
    let refused = cells::Server::prepare(config)
        .await
        .err()
        .expect("another database is refused");
    assert!(
        format!("{refused:#}").contains("already holds the files of another database"),
        "{refused:#}"
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(first.data.join("master.key"), dir.path().join("master.key")).unwrap();
    let mut config = crate::harness::test_config(&db, dir.path());
    config.blob_store = cells_core::config::BlobLocation::Disk(dir.path().join("blobs"));
    let refused = cells::Server::prepare(config)
        .await
        .err()
        .expect("local disk is refused");
    assert!(
        format!("{refused:#}").contains("not on local disk"),
        "{refused:#}"
    );

    let (db, _dir) = first.stop().await;
    db.cleanup().await;
    other_db.cleanup().await;
}
