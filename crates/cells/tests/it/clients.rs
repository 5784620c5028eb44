//! What real clients need of each protocol (issue 30): POSIX create semantics over SFTP
//! (sshfs, rsync, git), the `exit-status` restic checks, a bucket name minio-go accepts,
//! WebDAV's lock of an unmapped URL (davfs2), access tokens every resource server verifies,
//! and personal tokens introspected for a reverse proxy.

use std::time::Duration;

use object_store::aws::AmazonS3;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use reqwest::{Method, StatusCode};
use russh::ChannelMsg;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::OpenFlags;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::backend_tests;
use crate::harness::{ADMIN, ADMIN_PASSWORD, Auth, Db, TestApp};
use crate::oidc::{browser, login_through, query_param, token};
use crate::s3::{GATEWAY_SECRET, bucket_client};
use crate::sftp::{sftp, ssh};

backend_tests!(
    sftp_create_makes_the_name_at_open,
    sftp_exclusive_create_wins_once,
    sftp_rename_while_open_moves_the_upload,
    sftp_dropped_connection_leaves_no_partial_file,
    sftp_session_end_sends_exit_status,
    s3_bucket_alias_serves_the_same_tree,
    dav_lock_of_unmapped_url_creates_an_empty_file,
    access_tokens_signed_as_each_client_asks,
    personal_tokens_introspected_by_allowed_clients,
);

const NEW: OpenFlags = OpenFlags::WRITE
    .union(OpenFlags::CREATE)
    .union(OpenFlags::TRUNCATE);

/// sshfs opens with CREAT and at once LSTATs the name: it exists, empty, and stays empty for
/// everyone else until CLOSE, while the writer reads its own writes on its handle.
async fn sftp_create_makes_the_name_at_open(db: Db) {
    let app = TestApp::spawn(db).await;
    let admin = Auth::admin();
    let token = app.token(ADMIN, &["-e", "1h"]);
    let client = sftp(&app, ADMIN, &token).await.unwrap();
    let path = "/personal-files/new.txt";
    let mut file = client
        .fs
        .open_with_flags(path, NEW | OpenFlags::READ)
        .await
        .unwrap();
    let stat = client
        .fs
        .symlink_metadata(path)
        .await
        .expect("the name exists at OPEN");
    assert_eq!(stat.size, Some(0));
    file.write_all(b"first part").await.unwrap();
    file.flush().await.unwrap();
    let (status, body) = app.read(&admin, "personal-files/new.txt").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_empty(), "readers never see part of an upload: {body:?}");
    // The writer's handle shows its own writes.
    file.seek(std::io::SeekFrom::Start(0)).await.unwrap();
    let mut seen = vec![0; 10];
    file.read_exact(&mut seen).await.unwrap();
    assert_eq!(seen, b"first part");
    assert_eq!(file.metadata().await.unwrap().size, Some(10));
    file.seek(std::io::SeekFrom::End(0)).await.unwrap();
    file.write_all(b", second").await.unwrap();
    file.close().await.unwrap();
    assert_eq!(
        app.read(&admin, "personal-files/new.txt").await.1,
        b"first part, second"
    );

    // TRUNC of an existing file: others see the last committed content until CLOSE.
    let mut file = client.fs.open_with_flags(path, NEW).await.unwrap();
    file.write_all(b"replaced").await.unwrap();
    file.flush().await.unwrap();
    assert_eq!(
        app.read(&admin, "personal-files/new.txt").await.1,
        b"first part, second"
    );
    file.close().await.unwrap();
    assert_eq!(app.read(&admin, "personal-files/new.txt").await.1, b"replaced");

    // `echo x > new` in a mount: one OPEN, one WRITE, one CLOSE, whatever sshfs stats between.
    let mut file = client
        .fs
        .open_with_flags("/personal-files/echo.txt", NEW)
        .await
        .unwrap();
    assert!(client.fs.try_exists("/personal-files/echo.txt").await.unwrap());
    file.write_all(b"x\n").await.unwrap();
    file.close().await.unwrap();
    assert_eq!(app.read(&admin, "personal-files/echo.txt").await.1, b"x\n");

    // Without CREAT a missing file is still "no such file"; a folder is not a file.
    let missing = client
        .fs
        .open_with_flags("/personal-files/missing.txt", OpenFlags::WRITE)
        .await;
    assert!(missing.is_err());
    client.fs.create_dir("/personal-files/dir").await.unwrap();
    assert!(
        client
            .fs
            .open_with_flags("/personal-files/dir", NEW)
            .await
            .is_err()
    );
}

/// Two exclusive creates of one name: one wins, on one session or many at once (git's
/// `index.lock`).
async fn sftp_exclusive_create_wins_once(db: Db) {
    let app = TestApp::spawn(db).await;
    let token = app.token(ADMIN, &["-e", "1h"]);
    let exclusive = NEW | OpenFlags::EXCLUDE;
    let first = sftp(&app, ADMIN, &token).await.unwrap();
    let second = sftp(&app, ADMIN, &token).await.unwrap();
    let lock = "/personal-files/index.lock";
    let held = first
        .fs
        .open_with_flags(lock, exclusive)
        .await
        .expect("the first create");
    match second.fs.open_with_flags(lock, exclusive).await {
        Err(SftpError::Status(_)) => {}
        other => panic!(
            "the second exclusive create must fail, got {:?}",
            other.map(|_| ())
        ),
    }
    held.close().await.unwrap();
    first.fs.remove_file(lock).await.unwrap();

    // Eight sessions race for one name: exactly one gets it.
    let mut sessions = Vec::new();
    for _ in 0..8 {
        sessions.push(sftp(&app, ADMIN, &token).await.unwrap());
    }
    let attempts = sessions
        .iter()
        .map(|s| s.fs.open_with_flags("/personal-files/race.lock", exclusive));
    let outcomes = futures_util::future::join_all(attempts).await;
    let won = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(won, 1, "one exclusive create of eight succeeds");
}

/// rsync writes a temp file and renames it, git renames lock files: the upload follows its
/// file, and a file deleted while open is not brought back by its CLOSE.
async fn sftp_rename_while_open_moves_the_upload(db: Db) {
    let app = TestApp::spawn(db).await;
    let admin = Auth::admin();
    let token = app.token(ADMIN, &["-e", "1h"]);
    let client = sftp(&app, ADMIN, &token).await.unwrap();
    let mut file = client
        .fs
        .open_with_flags("/personal-files/.report.txt.Xa81", NEW | OpenFlags::EXCLUDE)
        .await
        .unwrap();
    file.write_all(b"the report").await.unwrap();
    file.flush().await.unwrap();
    client
        .fs
        .rename("/personal-files/.report.txt.Xa81", "/personal-files/report.txt")
        .await
        .unwrap();
    file.close().await.unwrap();
    assert_eq!(
        app.read(&admin, "personal-files/report.txt").await.1,
        b"the report"
    );
    assert_eq!(
        app.read(&admin, "personal-files/.report.txt.Xa81").await.0,
        StatusCode::NOT_FOUND
    );

    let mut file = client
        .fs
        .open_with_flags("/personal-files/gone.txt", NEW)
        .await
        .unwrap();
    file.write_all(b"nobody will see this").await.unwrap();
    file.flush().await.unwrap();
    client.fs.remove_file("/personal-files/gone.txt").await.unwrap();
    file.close().await.expect("CLOSE of a deleted file succeeds");
    assert_eq!(
        app.read(&admin, "personal-files/gone.txt").await.0,
        StatusCode::NOT_FOUND
    );
}

/// A connection that dies before CLOSE: a new file's name goes away again, an existing file
/// keeps its last content; never a partial file.
async fn sftp_dropped_connection_leaves_no_partial_file(db: Db) {
    let app = TestApp::spawn(db).await;
    let admin = Auth::admin();
    let token = app.token(ADMIN, &["-e", "1h"]);
    assert_eq!(
        app.put(&admin, "personal-files/kept.txt", "the old content")
            .await,
        StatusCode::CREATED
    );
    let client = sftp(&app, ADMIN, &token).await.unwrap();
    let mut new = client
        .fs
        .open_with_flags("/personal-files/fresh.bin", NEW)
        .await
        .unwrap();
    new.write_all(&vec![7u8; 600_000]).await.unwrap();
    new.flush().await.unwrap();
    let mut old = client
        .fs
        .open_with_flags("/personal-files/kept.txt", NEW)
        .await
        .unwrap();
    old.write_all(b"half of the new").await.unwrap();
    old.flush().await.unwrap();
    assert_eq!(
        app.read(&admin, "personal-files/fresh.bin").await.0,
        StatusCode::OK
    );
    client.cut().await;
    drop((new, old, client));
    let mut gone = false;
    for _ in 0..100 {
        if app.read(&admin, "personal-files/fresh.bin").await.0 == StatusCode::NOT_FOUND {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the empty name made at OPEN goes away with the connection");
    assert_eq!(
        app.read(&admin, "personal-files/kept.txt").await.1,
        b"the old content"
    );
}

/// RFC 4254 §6.10: the session channel ends with `exit-status` 0, as OpenSSH's does; restic
/// fails a backend whose ssh exits otherwise.
async fn sftp_session_end_sends_exit_status(db: Db) {
    let app = TestApp::spawn(db).await;
    let mut channel = ssh(&app, ADMIN, ADMIN_PASSWORD).await.unwrap().channel;
    channel.eof().await.unwrap();
    let mut status = None;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), channel.wait()).await {
            Ok(Some(ChannelMsg::ExitStatus { exit_status })) => status = Some(exit_status),
            Ok(Some(ChannelMsg::Close)) | Ok(None) => break,
            Ok(Some(_)) => {}
            Err(_) => panic!("the channel was not closed"),
        }
    }
    assert_eq!(status, Some(0));
}

fn bucket(app: &TestApp, name: &str, access_key: &str) -> AmazonS3 {
    bucket_client(app, name, access_key, GATEWAY_SECRET)
}

/// `cells` is `io` by another name (minio-go refuses names under 3 characters): objects,
/// listings, copies and multipart uploads through either are the same tree.
async fn s3_bucket_alias_serves_the_same_tree(db: Db) {
    let app = TestApp::spawn(db).await;
    let token = app.token(ADMIN, &["-e", "1h"]);
    let cells = bucket(&app, "cells", &token);
    let io = bucket(&app, "io", &token);
    let path = |p: &str| Path::from(p);
    cells
        .put(
            &path("personal-files/alias.txt"),
            PutPayload::from_static(b"by alias"),
        )
        .await
        .unwrap();
    let read = io
        .get(&path("personal-files/alias.txt"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(read.as_ref(), b"by alias");
    cells
        .copy(
            &path("personal-files/alias.txt"),
            &path("personal-files/copied.txt"),
        )
        .await
        .unwrap();
    let mut upload = cells
        .put_multipart(&path("personal-files/parts.bin"))
        .await
        .unwrap();
    upload
        .put_part(PutPayload::from(vec![1u8; 5 << 20]))
        .await
        .unwrap();
    upload.put_part(PutPayload::from(vec![2u8; 1000])).await.unwrap();
    upload.complete().await.unwrap();
    let listed: Vec<String> =
        futures_util::StreamExt::collect::<Vec<_>>(cells.list(Some(&path("personal-files"))))
            .await
            .into_iter()
            .map(|meta| meta.unwrap().location.to_string())
            .collect();
    for key in ["alias.txt", "copied.txt", "parts.bin"] {
        assert!(
            listed.contains(&format!("personal-files/{key}")),
            "{key} in {listed:?}"
        );
    }
    let (_, body) = app.read(&Auth::admin(), "personal-files/copied.txt").await;
    assert_eq!(body, b"by alias");
    assert_eq!(
        app.read(&Auth::admin(), "personal-files/parts.bin").await.1.len(),
        (5 << 20) + 1000
    );
    let other = bucket(&app, "other", &token);
    let refused = format!(
        "{:?}",
        other.get(&path("personal-files/alias.txt")).await.unwrap_err()
    );
    assert!(
        refused.contains("NoSuchBucket") || refused.contains("NotFound"),
        "{refused}"
    );
}

/// RFC 4918 §7.3: a LOCK of an unmapped URL makes an empty, locked file, which davfs2 then
/// writes with the lock token and MOVEs.
async fn dav_lock_of_unmapped_url_creates_an_empty_file(db: Db) {
    let app = TestApp::spawn(db).await;
    let dav = |method: &str, path: &str| {
        app.http
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                app.url(&format!("/dav/{path}")),
            )
            .basic_auth(ADMIN, Some(ADMIN_PASSWORD))
    };
    let lockinfo = r#"<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>davfs2</D:owner></D:lockinfo>"#;
    let locked = dav("LOCK", "personal-files/new.odt")
        .header("Timeout", "Second-600")
        .body(lockinfo)
        .send()
        .await
        .unwrap();
    assert_eq!(locked.status(), StatusCode::CREATED);
    let lock_token = locked.headers()["lock-token"].to_str().unwrap().to_string();
    let head = dav("HEAD", "personal-files/new.odt").send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK, "the locked resource exists");
    assert_eq!(head.headers()["content-length"], "0");
    let found = dav("PROPFIND", "personal-files/new.odt")
        .header("Depth", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(found.status(), StatusCode::MULTI_STATUS);
    assert_eq!(
        dav("PUT", "personal-files/new.odt")
            .body("no token")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::LOCKED
    );
    let written = dav("PUT", "personal-files/new.odt")
        .header("If", format!("({lock_token})"))
        .body("the document")
        .send()
        .await
        .unwrap();
    assert!(written.status().is_success(), "{}", written.status());
    let moved = dav("MOVE", "personal-files/new.odt")
        .header("Destination", app.url("/dav/personal-files/renamed.odt"))
        .header("If", format!("({lock_token})"))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), StatusCode::CREATED);
    assert_eq!(
        app.read(&Auth::admin(), "personal-files/renamed.odt").await.1,
        b"the document"
    );
    assert_eq!(
        app.read(&Auth::admin(), "personal-files/new.odt").await.0,
        StatusCode::NOT_FOUND
    );

    // Under a missing folder: refused, and nothing made.
    let orphan = dav("LOCK", "personal-files/nowhere/new.odt")
        .body(lockinfo)
        .send()
        .await
        .unwrap();
    assert_eq!(orphan.status(), StatusCode::CONFLICT);
    assert_eq!(
        app.read(&Auth::admin(), "personal-files/nowhere").await.0,
        StatusCode::NOT_FOUND
    );
}

fn clients_config(base: &str) -> Value {
    json!({"services": {"pydio.web.oauth": {"staticClients": [
        {"client_id": "es", "client_secret": "es-secret-value", "grant_types": ["client_credentials"],
         "scope": "pydio"},
        {"client_id": "rs", "client_secret": "rs-secret-value",
         "grant_types": ["client_credentials", "authorization_code"], "scope": "openid pydio",
         "redirect_uris": [format!("{base}/rs/callback")], "skip_consent": true,
         "access_token_signed_response_alg": "RS256"},
        {"client_id": "ed", "client_secret": "ed-secret-value", "grant_types": ["client_credentials"],
         "scope": "pydio", "access_token_signed_response_alg": "EdDSA"},
        {"client_id": "proxy", "client_secret": "proxy-secret-value", "grant_types": ["client_credentials"],
         "scope": "pydio", "introspect_personal_tokens": true}
    ]}}})
}

/// The header of a JWT, decoded.
fn jwt_header(token: &str) -> jsonwebtoken::Header {
    jsonwebtoken::decode_header(token).expect("a JWT")
}

/// ES256 by default (what every JOSE library verifies), RS256 or EdDSA when the client asks;
/// each verifies with the JWKS key its `kid` names, and our own endpoints accept all three.
async fn access_tokens_signed_as_each_client_asks(db: Db) {
    let app = TestApp::spawn_with_config(db, clients_config).await;
    let jwks: jsonwebtoken::jwk::JwkSet = app
        .http
        .get(app.url("/oidc/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (client, secret, alg) in [
        ("es", "es-secret-value", jsonwebtoken::Algorithm::ES256),
        ("rs", "rs-secret-value", jsonwebtoken::Algorithm::RS256),
        ("ed", "ed-secret-value", jsonwebtoken::Algorithm::EdDSA),
    ] {
        let (status, body) = token(
            &app,
            &[("grant_type", "client_credentials"), ("scope", "pydio")],
            Some((client, secret)),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let access = body["access_token"].as_str().unwrap();
        let header = jwt_header(access);
        assert_eq!(header.alg, alg, "{client}");
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        let jwk = jwks
            .find(header.kid.as_deref().unwrap())
            .expect("the kid is in the JWKS");
        let mut validation = jsonwebtoken::Validation::new(alg);
        validation.validate_aud = false;
        jsonwebtoken::decode::<Value>(
            access,
            &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
            &validation,
        )
        .expect("verifies with the published key");
        let introspected: Value = app
            .http
            .post(app.url("/oidc/oauth2/introspect"))
            .basic_auth(client, Some(secret))
            .form(&[("token", access)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(introspected["active"], true, "{client}");
    }

    // A user's RS256 access token works on the API like any other.
    let browser = browser();
    let authorize = app.url(&format!(
        "/oidc/oauth2/auth?response_type=code&client_id=rs&redirect_uri={}/rs/callback&scope=openid%20pydio&state=s1234567",
        app.base
    ));
    let redirect = login_through(&app, &browser, &authorize, ADMIN, ADMIN_PASSWORD).await;
    let code = query_param(&redirect, "code").expect("a code");
    let callback = format!("{}/rs/callback", app.base);
    let (status, body) = token(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &callback),
        ],
        Some(("rs", "rs-secret-value")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(jwt_header(access).alg, jsonwebtoken::Algorithm::RS256);
    let (status, _) = app.get("/a/config/ctl", &Auth::bearer(access)).await;
    assert_eq!(status, StatusCode::OK);
}

/// A client allowed to (`introspect_personal_tokens`) learns a live PAT's owner, scopes and
/// expiry; others learn nothing; introspection neither slides the token nor records a use.
async fn personal_tokens_introspected_by_allowed_clients(db: Db) {
    let app = TestApp::spawn_with_config(db, clients_config).await;
    let introspect = |client: &'static str, secret: &'static str, value: &str| {
        let request = app
            .http
            .post(app.url("/oidc/oauth2/introspect"))
            .basic_auth(client, Some(secret))
            .form(&[("token", value)]);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let pat = app.token(ADMIN, &["-e", "1h", "-l", "for-the-proxy"]);
    let info = introspect("proxy", "proxy-secret-value", &pat).await;
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["token_type"], "personal_access_token");
    assert_eq!(info["username"], ADMIN);
    assert_eq!(info["scope"], "");
    assert!(info["sub"].as_str().is_some_and(|s| s.len() == 36), "{info}");
    assert!(info["exp"].as_i64().unwrap() > info["iat"].as_i64().unwrap());
    assert_eq!(
        introspect("es", "es-secret-value", &pat).await,
        json!({"active": false}),
        "a client not allowed learns nothing"
    );
    assert_eq!(
        introspect("proxy", "proxy-secret-value", &format!("{pat}x")).await,
        json!({"active": false})
    );
    let listing = app.cli_ok(&["admin", "user", "token", "list", "-u", ADMIN]);
    let line = listing
        .lines()
        .find(|l| l.contains("for-the-proxy"))
        .unwrap()
        .to_string();
    let id = line.split_whitespace().next().unwrap().to_string();

    // Looking is not using: the sliding token's row and its pending uses stay as they were
    // after three introspections; one real use (the control) changes them.
    let sliding = app.token(ADMIN, &["-a", "1h", "-l", "sliding"]);
    let sliding_id = cells_core::records::TokenId::parse(
        app.cli_ok(&["admin", "user", "token", "list", "-u", ADMIN])
            .lines()
            .find(|l| l.contains("sliding"))
            .and_then(|l| l.split_whitespace().next())
            .unwrap(),
    )
    .unwrap();
    let row = || async { app.app.store().find_token(sliding_id).await.unwrap().unwrap() };
    let before = row().await;
    for _ in 0..3 {
        assert_eq!(
            introspect("proxy", "proxy-secret-value", &sliding).await["active"],
            true
        );
    }
    app.app.auth.flush_usage(true).await;
    let after = row().await;
    assert_eq!(after.last_used_at, None, "introspection records no use");
    assert_eq!(
        after.expires_at, before.expires_at,
        "introspection does not slide"
    );
    assert_eq!(
        app.app.auth.usage().effective_expiry(&after),
        app.app.auth.usage().effective_expiry(&before)
    );
    assert_eq!(
        app.get("/a/config/ctl", &Auth::bearer(&sliding)).await.0,
        StatusCode::OK
    );
    app.app.auth.flush_usage(true).await;
    assert!(row().await.last_used_at.is_some(), "a real use is recorded");

    // A scoped token shows its scopes; a revoked one is inactive at once.
    let uuid = app.uuid(&Auth::admin(), "personal-files").await;
    let scoped = app.token(ADMIN, &["-e", "1h", "-s", &format!("node:{uuid}:r")]);
    let info = introspect("proxy", "proxy-secret-value", &scoped).await;
    assert_eq!(info["scope"], format!("node:{uuid}:r"));
    app.cli_ok(&["admin", "user", "token", "revoke", &id]);
    assert_eq!(
        introspect("proxy", "proxy-secret-value", &pat).await,
        json!({"active": false})
    );
}
