//! The S3 gateway at `/io` with a real S3 client (object_store's SigV4 client), and hand-signed
//! requests for the malformed ones a client library would never send.

use std::time::Duration;

use aws_lc_rs::{digest, hmac};
use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use reqwest::StatusCode;

use crate::access_matrix::{self, Driver, Op, Outcome};
use crate::backend_tests;
use crate::harness::{Auth, Db, TestApp};

backend_tests!(
    s3_token_as_access_key,
    s3_token_own_key_pair,
    s3_listing_and_metadata,
    s3_multipart_upload,
    s3_presigned_and_revoked,
    s3_malformed_requests,
    s3_scope_matrix_read_only,
    s3_scope_matrix_read_write,
    s3_workspace_access_matrix,
);

pub(crate) const GATEWAY_SECRET: &str = "gatewaysecret";

fn client(app: &TestApp, access_key: &str, secret: &str) -> AmazonS3 {
    bucket_client(app, "io", access_key, secret)
}

/// A client of `bucket` (ours is `io`, also named `cells`).
pub(crate) fn bucket_client(app: &TestApp, bucket: &str, access_key: &str, secret: &str) -> AmazonS3 {
    AmazonS3Builder::new()
        .with_endpoint(&app.base)
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_access_key_id(access_key)
        .with_secret_access_key(secret)
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .with_retry(object_store::RetryConfig {
            max_retries: 0,
            ..Default::default()
        })
        .build()
        .expect("S3 client")
}

fn p(path: &str) -> Path {
    Path::from(path)
}

/// The S3 error code of a failed call, from object_store's error text.
fn refused<T: std::fmt::Debug>(outcome: object_store::Result<T>) -> String {
    format!("{:?}", outcome.expect_err("the call must fail"))
}

async fn s3_token_as_access_key(db: Db) {
    let app = TestApp::spawn(db).await;
    let token = app.token("admin", &["-e", "1h"]);
    let s3 = client(&app, &token, GATEWAY_SECRET);
    // The seed's recipe: put, list, get back, delete.
    s3.put(&p("personal-files/f.txt"), PutPayload::from_static(b"hello s3"))
        .await
        .unwrap();
    let listed = s3.list_with_delimiter(Some(&p("personal-files"))).await.unwrap();
    assert_eq!(
        listed
            .objects
            .iter()
            .map(|o| o.location.to_string())
            .collect::<Vec<_>>(),
        ["personal-files/f.txt"]
    );
    let got = s3
        .get(&p("personal-files/f.txt"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&got[..], b"hello s3");
    // The same node tree as REST.
    let (status, body) = app.read(&Auth::bearer(&token), "personal-files/f.txt").await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, &b"hello s3"[..]));
    s3.delete(&p("personal-files/f.txt")).await.unwrap();
    assert!(refused(s3.head(&p("personal-files/f.txt")).await).contains("NotFound"));
    // A wrong secret is a signature mismatch, never accepted.
    let wrong = client(&app, &token, "not-the-secret");
    assert!(refused(wrong.list_with_delimiter(None).await).contains("SignatureDoesNotMatch"));
    // Garbage and forged access keys.
    let forged = format!("{}AAAA", &token[..token.len() - 4]);
    for key in ["AKIAIOSFODNN7EXAMPLE", forged.as_str()] {
        let s3 = client(&app, key, GATEWAY_SECRET);
        assert!(
            refused(s3.list_with_delimiter(None).await).contains("InvalidAccessKeyId"),
            "{key}"
        );
    }
    // ListBuckets is a signed GET / (an unsigned GET / is the web console's sign-in).
    let (status, text) = signed(&app, &token, GATEWAY_SECRET, "GET", "/", "", &[], b"").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("<Name>io</Name>"), "{text}");
    let page = app.http.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.url().path(), "/login");
    assert!(!page.text().await.unwrap().contains("ListAllMyBucketsResult"));
    // Another bucket does not exist.
    let (status, text) = signed(&app, &token, GATEWAY_SECRET, "GET", "/other", "", &[], b"").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        text.contains("<Code>NoSuchBucket</Code>") && text.contains("<RequestId>"),
        "{text}"
    );
}

async fn s3_token_own_key_pair(db: Db) {
    let app = TestApp::spawn(db).await;
    let pair = app.token("admin", &["-e", "1h", "--s3"]);
    let (key_id, secret) = pair.split_once(' ').expect("ACCESS_KEY_ID SECRET");
    assert!(key_id.starts_with("cpak_") && secret.len() == 40, "{pair}");
    let s3 = client(&app, key_id, secret);
    s3.put(&p("personal-files/own.txt"), PutPayload::from_static(b"own key"))
        .await
        .unwrap();
    assert_eq!(s3.head(&p("personal-files/own.txt")).await.unwrap().size, 7);
    // The key id is not a credential: with the gateway secret, or a wrong one, it fails.
    for bad in [GATEWAY_SECRET, "0123456789012345678901234567890123456789"] {
        let s3 = client(&app, key_id, bad);
        let error = refused(s3.head(&p("personal-files/own.txt")).await);
        assert!(error.contains("403"), "{error}");
    }
    // Revoking the token ends its key pair too.
    let token_id = uuid::Uuid::parse_str(&key_id[5..]).unwrap().to_string();
    app.cli_ok(&["admin", "user", "token", "revoke", &token_id]);
    let error = refused(s3.head(&p("personal-files/own.txt")).await);
    assert!(error.contains("403"), "{error}");
}

async fn s3_listing_and_metadata(db: Db) {
    let app = TestApp::spawn(db).await;
    let token = app.token("admin", &["-e", "1h"]);
    let s3 = client(&app, &token, GATEWAY_SECRET);
    // Keys create their folders; `dir/` is a folder of its own.
    for key in [
        "personal-files/l/a.txt",
        "personal-files/l/b/c.txt",
        "personal-files/l/b/d.txt",
    ] {
        s3.put(&p(key), PutPayload::from_static(b"x")).await.unwrap();
    }
    let (status, _) = signed(
        &app,
        &token,
        GATEWAY_SECRET,
        "PUT",
        "/io/personal-files/l/empty/",
        "",
        &[],
        b"",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let top = s3
        .list_with_delimiter(Some(&p("personal-files/l")))
        .await
        .unwrap();
    let mut prefixes: Vec<String> = top.common_prefixes.iter().map(|p| p.to_string()).collect();
    prefixes.sort();
    assert_eq!(prefixes, ["personal-files/l/b", "personal-files/l/empty"]);
    assert_eq!(top.objects.len(), 1);
    let all: Vec<String> = s3
        .list(Some(&p("personal-files/l")))
        .map(|o| o.unwrap().location.to_string())
        .collect()
        .await;
    assert_eq!(all.len(), 3, "{all:?}");
    // Pagination walks every key once, in order.
    let (status, page) = signed(
        &app,
        &token,
        GATEWAY_SECRET,
        "GET",
        "/io",
        "list-type=2&max-keys=2&prefix=personal-files%2Fl%2F",
        &[],
        b"",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("<IsTruncated>true</IsTruncated>") && page.contains("<KeyCount>2</KeyCount>"),
        "{page}"
    );
    let token_text = between(&page, "<NextContinuationToken>", "</NextContinuationToken>");
    let (_, rest) = signed(
        &app,
        &token,
        GATEWAY_SECRET,
        "GET",
        "/io",
        &format!("continuation-token={token_text}&list-type=2&max-keys=2&prefix=personal-files%2Fl%2F"),
        &[],
        b"",
    )
    .await;
    assert!(
        rest.contains("<Key>personal-files/l/b/d.txt</Key>")
            && rest.contains("<IsTruncated>false</IsTruncated>"),
        "{rest}"
    );
    // Versions: the current objects, version null.
    let (_, versions) = signed(
        &app,
        &token,
        GATEWAY_SECRET,
        "GET",
        "/io",
        "prefix=personal-files%2Fl%2F&versions=",
        &[],
        b"",
    )
    .await;
    assert!(
        versions.contains("<VersionId>null</VersionId>") && versions.contains("<IsLatest>true</IsLatest>"),
        "{versions}"
    );
    // User metadata and content type round-trip; a copy keeps them.
    let headers = [("x-amz-meta-color", "blue"), ("content-type", "text/plain")];
    let (status, _) = signed(
        &app,
        &token,
        GATEWAY_SECRET,
        "PUT",
        "/io/personal-files/m.txt",
        "",
        &headers,
        b"meta",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    s3.copy(&p("personal-files/m.txt"), &p("personal-files/m2.txt"))
        .await
        .unwrap();
    let response = signed_response(
        &app,
        &token,
        GATEWAY_SECRET,
        "HEAD",
        "/io/personal-files/m2.txt",
        "",
        &[],
        b"",
    )
    .await;
    assert_eq!(response.headers()["x-amz-meta-color"], "blue");
    assert_eq!(response.headers()["content-type"], "text/plain");
    // Ranges and conditionals.
    let ranged = s3.get_range(&p("personal-files/m.txt"), 1..3).await.unwrap();
    assert_eq!(&ranged[..], b"et");
    let etag = response.headers()["etag"].to_str().unwrap().to_string();
    let (status, _) = signed(
        &app,
        &token,
        GATEWAY_SECRET,
        "GET",
        "/io/personal-files/m.txt",
        "",
        &[("if-none-match", &etag)],
        b"",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    let (status, _) = signed(
        &app,
        &token,
        GATEWAY_SECRET,
        "GET",
        "/io/personal-files/m.txt",
        "",
        &[("if-match", "\"nope\"")],
        b"",
    )
    .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    // Deleting a file key never removes a folder; a folder key removes it only when empty.
    s3.delete(&p("personal-files/l/b")).await.unwrap();
    assert_eq!(
        app.stat(&Auth::bearer(&token), "personal-files/l/b").await.0,
        StatusCode::OK
    );
    let (status, _) = signed(
        &app,
        &token,
        GATEWAY_SECRET,
        "DELETE",
        "/io/personal-files/l/b/",
        "",
        &[],
        b"",
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.stat(&Auth::bearer(&token), "personal-files/l/b").await.0,
        StatusCode::OK
    );
    let (status, _) = signed(
        &app,
        &token,
        GATEWAY_SECRET,
        "DELETE",
        "/io/personal-files/l/empty/",
        "",
        &[],
        b"",
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.stat(&Auth::bearer(&token), "personal-files/l/empty").await.0,
        StatusCode::NOT_FOUND
    );
}

async fn s3_multipart_upload(db: Db) {
    let app = TestApp::spawn(db).await;
    let token = app.token("admin", &["-e", "1h"]);
    let s3 = client(&app, &token, GATEWAY_SECRET);
    let path = p("personal-files/big/multi.bin");
    let mut upload = s3.put_multipart(&path).await.unwrap();
    for size in [5 << 20, 5 << 20, 1] {
        upload.put_part(PutPayload::from(vec![b'x'; size])).await.unwrap();
    }
    // Nothing is visible before completion.
    assert!(refused(s3.head(&path).await).contains("NotFound"));
    upload.complete().await.unwrap();
    let head = s3.head(&path).await.unwrap();
    assert_eq!(head.size, (10 << 20) + 1);
    assert_eq!(
        head.e_tag.as_deref(),
        Some("\"605fd0ecb2ed1e7f2edcd87e306f5614-3\"")
    );
    let content = s3.get(&path).await.unwrap().bytes().await.unwrap();
    assert!(content.len() == (10 << 20) + 1 && content.iter().all(|b| *b == b'x'));
    // An aborted upload leaves nothing: no object, no parts kept.
    let aborted = p("personal-files/big/aborted.bin");
    let mut upload = s3.put_multipart(&aborted).await.unwrap();
    upload
        .put_part(PutPayload::from(vec![b'y'; 1 << 20]))
        .await
        .unwrap();
    upload.abort().await.unwrap();
    assert!(refused(s3.head(&aborted).await).contains("NotFound"));
    let admin = app
        .app
        .store()
        .find_user_by_login("admin")
        .await
        .unwrap()
        .unwrap();
    assert!(app.app.store().list_uploads(admin.id).await.unwrap().is_empty());
    assert_eq!(
        app.blob_files().await,
        1,
        "only the completed object's blob; no part is kept"
    );
    // On disk that blob is the parts' files linked, not copied: a folder with one name per
    // part. (In an object store: a parts blob of server-side copies, see `blob::object`.)
    let linked = app.on_disk().then(|| {
        let blobs: Vec<_> = std::fs::read_dir(app.data.join("blobs"))
            .unwrap()
            .flatten()
            .filter(|shard| shard.file_name() != "tmp" && shard.path().is_dir())
            .flat_map(|shard| std::fs::read_dir(shard.path()).unwrap().flatten())
            .collect();
        assert!(blobs[0].file_name().to_string_lossy().ends_with(".parts"));
        assert_eq!(std::fs::read_dir(blobs[0].path()).unwrap().count(), 3);
        blobs[0].path()
    });
    // A too-small part that is not the last is refused at completion.
    let (_, created) = signed(
        &app,
        &token,
        GATEWAY_SECRET,
        "POST",
        "/io/personal-files/small.bin",
        "uploads=",
        &[],
        b"",
    )
    .await;
    let id = between(&created, "<UploadId>", "</UploadId>");
    for n in [1, 2] {
        let (status, _) = signed(
            &app,
            &token,
            GATEWAY_SECRET,
            "PUT",
            "/io/personal-files/small.bin",
            &format!("partNumber={n}&uploadId={id}"),
            &[],
            b"tiny",
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    let md5 = hex_md5(b"tiny");
    let complete = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"{md5}\"</ETag></Part><Part><PartNumber>2</PartNumber><ETag>\"{md5}\"</ETag></Part></CompleteMultipartUpload>"
    );
    let (status, text) = signed(
        &app,
        &token,
        GATEWAY_SECRET,
        "POST",
        "/io/personal-files/small.bin",
        &format!("uploadId={id}"),
        &[],
        complete.as_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("EntityTooSmall"), "{text}");
    // Another user cannot touch this upload.
    app.create_user("other", "other-password", "standard").await;
    let other = app.token("other", &["-e", "1h"]);
    let (status, text) = signed(
        &app,
        &other,
        GATEWAY_SECRET,
        "DELETE",
        "/io/personal-files/small.bin",
        &format!("uploadId={id}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{text}");
    let (status, _) = signed(
        &app,
        &token,
        GATEWAY_SECRET,
        "DELETE",
        "/io/personal-files/small.bin",
        &format!("uploadId={id}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // UploadPartCopy: two ranges of the completed object become the parts of another, and a
    // range of a small object (kept in its row, not a blob) the last part.
    s3.put(
        &p("personal-files/big/tail.txt"),
        PutPayload::from_static(b"tail"),
    )
    .await
    .unwrap();
    let target = "/io/personal-files/big/copied.bin";
    let (_, created) = signed(&app, &token, GATEWAY_SECRET, "POST", target, "uploads=", &[], b"").await;
    let id = between(&created, "<UploadId>", "</UploadId>");
    let mut parts = String::new();
    let sources = [
        (1, "big/multi.bin", "bytes=0-5242879"),
        (2, "big/multi.bin", "bytes=5242880-10485760"),
        (3, "big/tail.txt", "bytes=1-2"),
    ];
    for (n, source, range) in sources {
        let source = format!("io/personal-files/{source}");
        let headers = [
            ("x-amz-copy-source", source.as_str()),
            ("x-amz-copy-source-range", range),
        ];
        let query = format!("partNumber={n}&uploadId={id}");
        let (status, text) = signed(&app, &token, GATEWAY_SECRET, "PUT", target, &query, &headers, b"").await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert!(text.contains("<CopyPartResult>"), "{text}");
        let etag = between(&text, "<ETag>", "</ETag>");
        parts.push_str(&format!(
            "<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
        ));
    }
    // A range past the end of the source is refused.
    let headers = [
        ("x-amz-copy-source", "io/personal-files/big/multi.bin"),
        ("x-amz-copy-source-range", "bytes=0-20000000"),
    ];
    let query = format!("partNumber=4&uploadId={id}");
    let (status, text) = signed(&app, &token, GATEWAY_SECRET, "PUT", target, &query, &headers, b"").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("InvalidArgument"), "{text}");
    let complete = format!("<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>");
    let query = format!("uploadId={id}");
    let (status, text) = signed(
        &app,
        &token,
        GATEWAY_SECRET,
        "POST",
        target,
        &query,
        &[],
        complete.as_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let copied = s3
        .get(&p("personal-files/big/copied.bin"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let (head, tail) = copied.split_at(copied.len() - 2);
    assert!(head.len() == (10 << 20) + 1 && head.iter().all(|b| *b == b'x'));
    assert_eq!(tail, b"ai");
    // Another user's token cannot copy parts out of this user's files.
    let (_, created) = signed(
        &app,
        &other,
        GATEWAY_SECRET,
        "POST",
        "/io/personal-files/mine.bin",
        "uploads=",
        &[],
        b"",
    )
    .await;
    let other_id = between(&created, "<UploadId>", "</UploadId>");
    let headers = [("x-amz-copy-source", "io/personal-files/big/multi.bin")];
    let query = format!("partNumber=1&uploadId={other_id}");
    let (status, text) = signed(
        &app,
        &other,
        GATEWAY_SECRET,
        "PUT",
        "/io/personal-files/mine.bin",
        &query,
        &headers,
        b"",
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "other's personal-files has no big/multi.bin: {text}"
    );
    // Replacing the object removes its folder of links (the parts copied from it are blobs
    // of their own).
    s3.put(&path, PutPayload::from_static(b"small now"))
        .await
        .unwrap();
    assert!(linked.is_none_or(|linked| !linked.exists()));
}

async fn s3_presigned_and_revoked(db: Db) {
    let app = TestApp::spawn(db).await;
    let token = app.token("admin", &["-e", "1h"]);
    let s3 = client(&app, &token, GATEWAY_SECRET);
    let path = p("personal-files/presigned.txt");
    let put = s3
        .signed_url(object_store::signer::Method::PUT, &path, Duration::from_secs(60))
        .await
        .unwrap();
    let status = app
        .http
        .put(put.as_str())
        .body("via url")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK);
    let get = s3
        .signed_url(object_store::signer::Method::GET, &path, Duration::from_secs(60))
        .await
        .unwrap();
    let response = app.http.get(get.as_str()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "via url");
    // A tampered URL and an expired one are refused.
    let tampered = get.as_str().replace("presigned.txt", "presigned.txx");
    assert_eq!(
        app.http.get(&tampered).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let short = s3
        .signed_url(object_store::signer::Method::GET, &path, Duration::from_secs(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let response = app.http.get(short.as_str()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.text().await.unwrap().contains("AccessDenied"));
    // Revoked: refused on the next request.
    let id = app.cli_ok(&["admin", "user", "token", "list", "-u", "admin"]);
    let token_id = id
        .split_whitespace()
        .find(|w| uuid::Uuid::parse_str(w).is_ok())
        .unwrap()
        .to_string();
    app.cli_ok(&["admin", "user", "token", "revoke", &token_id]);
    let error = refused(s3.head(&path).await);
    assert!(error.contains("403"), "{error}");
    let response = app.http.get(get.as_str()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

async fn s3_malformed_requests(db: Db) {
    let app = TestApp::spawn(db).await;
    let token = app.token("admin", &["-e", "1h"]);
    let url = app.url("/io/personal-files/bad.txt");
    // No signature at all, a garbled Authorization header, a bad date.
    let status = app.http.put(&url).body("x").send().await.unwrap().status();
    assert_eq!(status, StatusCode::FORBIDDEN);
    for auth in [
        "AWS4-HMAC-SHA256 garbage",
        "AWS4-HMAC-SHA256 Credential=/x, SignedHeaders=, Signature=",
    ] {
        let response = app
            .http
            .put(&url)
            .header("authorization", auth)
            .header("x-amz-date", "20260101T000000Z")
            .body("x")
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error(), "{auth}");
        let text = response.text().await.unwrap();
        assert!(text.contains("<Code>"), "an S3 error document: {text}");
    }
    let (status, text) = signed_at(
        &app,
        &token,
        GATEWAY_SECRET,
        "PUT",
        "/io/personal-files/bad.txt",
        "",
        &[],
        b"x",
        2000,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a date far in the past: {text}");
    // A body that does not match its signed x-amz-content-sha256 is refused and not stored.
    let (status, text) = signed_with_hash(
        &app,
        &token,
        "PUT",
        "/io/personal-files/bad.txt",
        b"the real body",
        &hex_sha256(b"another body"),
    )
    .await;
    assert!(status.is_client_error(), "{status} {text}");
    assert!(!exists(&app, &token).await, "nothing half-written");
    // Streaming upload cut short: refused, nothing stored.
    let (status, _) = signed_with_hash(
        &app,
        &token,
        "PUT",
        "/io/personal-files/bad.txt",
        b"5\r\nab",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    )
    .await;
    assert!(status.is_client_error());
    assert!(!exists(&app, &token).await);
    // Content-MD5 mismatch.
    let (status, text) = signed(
        &app,
        &token,
        GATEWAY_SECRET,
        "PUT",
        "/io/personal-files/bad.txt",
        "",
        &[("content-md5", "XUFAKrxLKna5cZ2REBfFkg==")],
        b"not hello",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("BadDigest"), "{text}");
    assert!(!exists(&app, &token).await);
    // Huge part numbers and invalid XML.
    let (_, created) = signed(
        &app,
        &token,
        GATEWAY_SECRET,
        "POST",
        "/io/personal-files/bad.txt",
        "uploads=",
        &[],
        b"",
    )
    .await;
    let id = between(&created, "<UploadId>", "</UploadId>");
    for number in ["0", "10001", "99999999999999"] {
        let (status, text) = signed(
            &app,
            &token,
            GATEWAY_SECRET,
            "PUT",
            "/io/personal-files/bad.txt",
            &format!("partNumber={number}&uploadId={id}"),
            &[],
            b"p",
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "part {number}: {text}");
    }
    let (status, text) = signed(
        &app,
        &token,
        GATEWAY_SECRET,
        "POST",
        "/io/personal-files/bad.txt",
        &format!("uploadId={id}"),
        &[],
        b"<CompleteMultipartUpload><Part>",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("MalformedXML"), "{text}");
    // Oversized headers are refused by the HTTP layer, the server lives on.
    let huge = "a".repeat(200_000);
    let outcome = app
        .http
        .get(app.url("/io"))
        .header("x-amz-meta-huge", huge)
        .send()
        .await;
    assert!(outcome.map(|r| r.status().is_client_error()).unwrap_or(true));
    assert_eq!(
        app.http.get(app.url("/healthz")).send().await.unwrap().status(),
        StatusCode::OK
    );
    assert!(!exists(&app, &token).await);
}

/// The scope matrix over S3. S3 has no move: a rename is a copy then a delete (as rclone does).
/// A listing of what the token cannot see is an empty page (nothing revealed), which counts
/// as refused here.
struct S3Driver<'a> {
    app: &'a TestApp,
    token: String,
    s3: AmazonS3,
}

/// An object_store answer as an outcome (`AccessDenied` is 403, `NoSuchKey` 404).
fn s3_outcome<T>(result: object_store::Result<T>) -> Outcome {
    match result {
        Ok(_) => Outcome::Done,
        Err(object_store::Error::NotFound { .. }) => Outcome::NotFound,
        Err(object_store::Error::PermissionDenied { .. }) => Outcome::Forbidden,
        Err(other) => Outcome::Other(other.to_string()),
    }
}

impl Driver for S3Driver<'_> {
    /// S3 lists any prefix: an empty one is what a folder the caller cannot see looks like.
    async fn list(&self, path: &str) -> Result<Vec<String>, Outcome> {
        let prefix = (!path.is_empty()).then(|| p(path));
        let listed = self
            .s3
            .list_with_delimiter(prefix.as_ref())
            .await
            .map_err(|e| s3_outcome::<()>(Err(e)))?;
        let mut names: Vec<String> = listed
            .common_prefixes
            .iter()
            .chain(listed.objects.iter().map(|o| &o.location))
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        names.sort();
        if names.is_empty() {
            return Err(Outcome::NotFound);
        }
        Ok(names)
    }
    async fn read(&self, path: &str) -> Outcome {
        match self.s3.get(&p(path)).await {
            Ok(got) => s3_outcome(got.bytes().await),
            Err(error) => s3_outcome::<()>(Err(error)),
        }
    }
    async fn write(&self, path: &str, content: &[u8]) -> Outcome {
        s3_outcome(self.s3.put(&p(path), PutPayload::from(content.to_vec())).await)
    }
    async fn mkdir(&self, path: &str) -> Outcome {
        // object_store drops trailing slashes from paths: sign the folder key by hand.
        let (status, _) = signed(
            self.app,
            &self.token,
            GATEWAY_SECRET,
            "PUT",
            &format!("/io/{path}/"),
            "",
            &[],
            b"",
        )
        .await;
        Outcome::of_status(status)
    }
    /// One DeleteObject (object_store sends DeleteObjects, whose refusals are per key).
    async fn delete(&self, path: &str) -> Outcome {
        let (status, _) = signed(
            self.app,
            &self.token,
            GATEWAY_SECRET,
            "DELETE",
            &format!("/io/{path}"),
            "",
            &[],
            b"",
        )
        .await;
        Outcome::of_status(status)
    }
    /// S3 has no rename (a client copies and deletes: the copy and delete cases cover it).
    async fn rename(&self, _: &str, _: &str) -> Outcome {
        Outcome::Unsupported
    }
    async fn copy(&self, from: &str, to: &str) -> Outcome {
        s3_outcome(self.s3.copy(&p(from), &p(to)).await)
    }
    /// DeleteObject never answers NoSuchKey (deleting a missing key succeeds where the caller
    /// could have written it): a key the caller cannot see is refused with AccessDenied, as
    /// a missing one where it may not write, so that the refusal discloses nothing.
    fn expect(&self, op: &Op, expected: Outcome) -> Outcome {
        match (op, expected) {
            (Op::Delete(_), Outcome::NotFound) => Outcome::Forbidden,
            (_, expected) => expected,
        }
    }
}

async fn s3_scope_matrix(db: Db, permission: &str) {
    let app = TestApp::spawn(db).await;
    let token = access_matrix::owner_token(&app, permission).await;
    let driver = S3Driver {
        app: &app,
        s3: client(&app, &token, GATEWAY_SECRET),
        token,
    };
    let cases = access_matrix::scope_cases(permission == "rw");
    access_matrix::run(&driver, &format!("S3, scope {permission}"), cases).await;
    // At the top, only the workspace leading to the scope.
    let top = driver.s3.list_with_delimiter(None).await.unwrap();
    let names: Vec<String> = top.common_prefixes.iter().map(|p| p.to_string()).collect();
    assert_eq!(names, ["personal-files"]);
    // A recursive listing never shows a sibling.
    let all: Vec<String> = driver
        .s3
        .list(Some(&p("personal-files")))
        .map(|o| o.unwrap().location.to_string())
        .collect()
        .await;
    assert!(all.iter().all(|k| k.starts_with("personal-files/a/")), "{all:?}");
}

async fn s3_workspace_access_matrix(db: Db) {
    let app = TestApp::spawn(db).await;
    let token = access_matrix::workspace_app(&app).await;
    let secrets = access_matrix::role_secrets(&app, &token, true);
    access_matrix::run_roles("S3", &secrets, async |_, token| S3Driver {
        app: &app,
        s3: client(&app, token, GATEWAY_SECRET),
        token: token.to_string(),
    })
    .await;
}

async fn s3_scope_matrix_read_only(db: Db) {
    s3_scope_matrix(db, "r").await;
}

async fn s3_scope_matrix_read_write(db: Db) {
    s3_scope_matrix(db, "rw").await;
}

async fn exists(app: &TestApp, token: &str) -> bool {
    app.stat(&Auth::bearer(token), "personal-files/bad.txt").await.0 == StatusCode::OK
}

// --- A minimal SigV4 signer (AWS Signature Version 4, header form) for hand-made requests.

fn hex_sha256(data: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, data))
}

fn hex_md5(data: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(data))
}

fn between(text: &str, start: &str, end: &str) -> String {
    let from = text.find(start).unwrap_or_else(|| panic!("no {start} in {text}")) + start.len();
    let to = text[from..].find(end).unwrap() + from;
    text[from..to].to_string()
}

fn hmac_sha256(key: &[u8], data: &str) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
        .as_ref()
        .to_vec()
}

#[allow(clippy::too_many_arguments)]
async fn send(
    app: &TestApp,
    access_key: &str,
    secret: &str,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    payload_hash: &str,
    when: time::OffsetDateTime,
) -> reqwest::Response {
    let date = format!("{:04}{:02}{:02}", when.year(), when.month() as u8, when.day());
    let stamp = format!(
        "{date}T{:02}{:02}{:02}Z",
        when.hour(),
        when.minute(),
        when.second()
    );
    let host = app.base.trim_start_matches("http://").to_string();
    let mut all: Vec<(String, String)> = vec![
        ("host".into(), host),
        ("x-amz-content-sha256".into(), payload_hash.into()),
        ("x-amz-date".into(), stamp.clone()),
    ];
    if payload_hash.starts_with("STREAMING") {
        all.push(("x-amz-decoded-content-length".into(), "5".into()));
        all.push(("content-encoding".into(), "aws-chunked".into()));
    }
    all.extend(headers.iter().map(|(k, v)| (k.to_lowercase(), v.to_string())));
    all.sort();
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    pairs.sort();
    let canonical_query = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let canonical_headers: String = all.iter().map(|(k, v)| format!("{k}:{}\n", v.trim())).collect();
    let signed_headers = all.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(";");
    let canonical =
        format!("{method}\n{path}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{payload_hash}");
    let scope = format!("{date}/us-east-1/s3/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
        hex_sha256(canonical.as_bytes())
    );
    let mut key = hmac_sha256(format!("AWS4{secret}").as_bytes(), &date);
    for part in ["us-east-1", "s3", "aws4_request"] {
        key = hmac_sha256(&key, part);
    }
    let signature = hex::encode(hmac_sha256(&key, &to_sign));
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed_headers}, Signature={signature}"
    );
    let url = if query.is_empty() {
        app.url(path)
    } else {
        format!("{}?{query}", app.url(path))
    };
    let mut request = app
        .http
        .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url)
        .header("authorization", authorization);
    for (k, v) in &all {
        if k != "host" {
            request = request.header(k.as_str(), v.as_str());
        }
    }
    request.body(body.to_vec()).send().await.unwrap()
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn signed_response(
    app: &TestApp,
    access_key: &str,
    secret: &str,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> reqwest::Response {
    let hash = hex_sha256(body);
    send(
        app,
        access_key,
        secret,
        method,
        path,
        query,
        headers,
        body,
        &hash,
        time::OffsetDateTime::now_utc(),
    )
    .await
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn signed(
    app: &TestApp,
    access_key: &str,
    secret: &str,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (StatusCode, String) {
    let response = signed_response(app, access_key, secret, method, path, query, headers, body).await;
    (response.status(), response.text().await.unwrap_or_default())
}

#[allow(clippy::too_many_arguments)]
async fn signed_at(
    app: &TestApp,
    access_key: &str,
    secret: &str,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    days_ago: i64,
) -> (StatusCode, String) {
    let when = time::OffsetDateTime::now_utc() - time::Duration::days(days_ago);
    let response = send(
        app,
        access_key,
        secret,
        method,
        path,
        query,
        headers,
        body,
        &hex_sha256(body),
        when,
    )
    .await;
    (response.status(), response.text().await.unwrap_or_default())
}

async fn signed_with_hash(
    app: &TestApp,
    token: &str,
    method: &str,
    path: &str,
    body: &[u8],
    hash: &str,
) -> (StatusCode, String) {
    let response = send(
        app,
        token,
        GATEWAY_SECRET,
        method,
        path,
        "",
        &[],
        body,
        hash,
        time::OffsetDateTime::now_utc(),
    )
    .await;
    (response.status(), response.text().await.unwrap_or_default())
}
