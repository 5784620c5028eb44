//! Groups, workspaces and quotas as their users meet them: grants and memberships that end
//! at the next request on another node, tokens scoped inside a workspace, quotas refused on
//! every protocol with nothing partial left, RFC 4331's properties, and the administration
//! (CLI and REST) with its refusals.

use std::time::Duration;

use futures_util::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::access_matrix::{PASSWORD, workspace_app};
use crate::backend_tests;
use crate::harness::{Auth, Db, TestApp};
use crate::s3::{GATEWAY_SECRET, bucket_client, signed};

backend_tests!(
    leaving_a_group_holds_at_the_next_request_on_another_node,
    a_scoped_token_stops_with_its_owners_grant,
    quotas_refuse_every_write_path_and_leave_nothing,
    concurrent_uploads_never_pass_a_quota_together,
    workspace_administration_and_its_refusals,
    deleting_a_workspace_takes_its_files,
    hidden_workspaces_tell_nothing
);

fn member() -> Auth {
    Auth::basic("member", PASSWORD)
}

async fn leaving_a_group_holds_at_the_next_request_on_another_node(db: Db) {
    let a = TestApp::spawn(db).await;
    workspace_app(&a).await;
    let b = a.sibling().await;
    let token = a.token("member", &["-e", "1h"]);
    let on_b = Auth::bearer(&token);
    assert_eq!(b.read(&on_b, "team/b.txt").await.0, StatusCode::OK);
    assert_eq!(b.read(&member(), "team/b.txt").await.0, StatusCode::OK);
    // Removed on node a (the CLI): refused on node b from the next request, every credential.
    a.cli_ok(&["admin", "group", "remove-user", "staff", "-u", "member"]);
    assert_eq!(b.read(&on_b, "team/b.txt").await.0, StatusCode::NOT_FOUND);
    assert_eq!(b.read(&member(), "team/b.txt").await.0, StatusCode::NOT_FOUND);
    let (_, listed) = b
        .post("/a/tree/stats", &member(), json!({"NodePaths": ["/*"]}))
        .await;
    let names: Vec<&str> = listed["Nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["Path"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["personal-files", "common-files"],
        "team is gone from the top"
    );
    // Added back through REST on node b: allowed again at once on node a.
    let (status, _) = b
        .request(Method::PUT, "/a/group/staff/member/member", &Auth::admin())
        .send()
        .await
        .map(|r| (r.status(), ()))
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(a.read(&on_b, "team/b.txt").await.0, StatusCode::OK);
    // Deleting the group is a removal for all its members.
    a.cli_ok(&["admin", "group", "delete", "staff"]);
    assert_eq!(b.read(&on_b, "team/b.txt").await.0, StatusCode::NOT_FOUND);
    b.stop_sibling().await;
}

async fn a_scoped_token_stops_with_its_owners_grant(db: Db) {
    let app = TestApp::spawn(db).await;
    let scoped = workspace_app(&app).await;
    let auth = Auth::bearer(&scoped);
    assert_eq!(app.read(&auth, "team/a/inner.txt").await.0, StatusCode::OK);
    assert_eq!(
        app.put(&auth, "team/a/by-token.txt", "x").await,
        StatusCode::CREATED
    );
    // The grant goes to the member directly, then the group's grant is revoked: the token
    // follows what its owner may do now.
    app.cli_ok(&[
        "admin",
        "workspace",
        "grant",
        "team",
        "-u",
        "member",
        "--rights",
        "r",
    ]);
    app.cli_ok(&["admin", "workspace", "revoke", "team", "-g", "staff"]);
    assert_eq!(app.read(&auth, "team/a/inner.txt").await.0, StatusCode::OK);
    assert_eq!(
        app.put(&auth, "team/a/by-token.txt", "y").await,
        StatusCode::FORBIDDEN
    );
    app.cli_ok(&["admin", "workspace", "revoke", "team", "-u", "member"]);
    assert_eq!(app.read(&auth, "team/a/inner.txt").await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        app.read(&member(), "team/a/inner.txt").await.0,
        StatusCode::NOT_FOUND
    );
    // A scope cannot be made on a node the owner cannot reach now.
    let uuid = app.uuid(&Auth::basic("reader", PASSWORD), "team/a").await;
    let made = app.cli(&[
        "admin",
        "user",
        "token",
        "-u",
        "member",
        "-e",
        "1h",
        "-s",
        &format!("node:{uuid}:r"),
    ]);
    assert!(
        !made.status.success(),
        "a scope outside the owner's reach is refused"
    );
}

/// Bytes of `n` length.
fn bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

async fn dav_put(app: &TestApp, auth: &Auth, path: &str, body: Vec<u8>) -> StatusCode {
    app.request(Method::PUT, &format!("/dav/{path}"), auth)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
}

async fn quotas_refuse_every_write_path_and_leave_nothing(db: Db) {
    let app = TestApp::spawn(db).await;
    workspace_app(&app).await;
    app.cli_ok(&["admin", "workspace", "set-quota", "team", "64K"]);
    app.cli_ok(&["admin", "user", "set-quota", "-u", "member", "10K"]);
    let token = app.token("member", &["-e", "1h"]);
    // The team fixture holds a few dozen bytes; 40,000 more fit, then 30,000 do not.
    assert_eq!(
        app.put(&member(), "team/seed.bin", bytes(40_000)).await,
        StatusCode::CREATED
    );
    let blobs_before = app.blob_files().await;
    // Writes into the workspace are charged to it, not to the member's 10K.
    let refused = [
        (
            "REST",
            app.put(&member(), "team/over-rest.bin", bytes(30_000)).await,
        ),
        (
            "WebDAV",
            dav_put(&app, &member(), "team/over-dav.bin", bytes(30_000)).await,
        ),
        (
            "S3",
            signed(
                &app,
                &token,
                GATEWAY_SECRET,
                "PUT",
                "/io/team/over-s3.bin",
                "",
                &[],
                &bytes(30_000),
            )
            .await
            .0,
        ),
    ];
    for (protocol, status) in refused {
        assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{protocol}");
    }
    // A copy that would not fit, and an overwrite that grows past the quota.
    let (status, _) = app
        .post(
            "/a/tree/copy",
            &member(),
            json!({"From": "team/seed.bin", "To": "team/copy.bin"}),
        )
        .await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "copy");
    assert_eq!(
        app.put(&member(), "team/seed.bin", bytes(70_000)).await,
        StatusCode::INSUFFICIENT_STORAGE,
        "a growing overwrite"
    );
    assert_eq!(
        app.read(&member(), "team/seed.bin").await.1,
        bytes(40_000),
        "the old content stays"
    );
    // A body without a declared length (chunked) is checked when it commits.
    let chunked = reqwest::Body::wrap_stream(futures_util::stream::iter(
        (0..3).map(|_| Ok::<_, std::io::Error>(bytes(10_000))),
    ));
    assert_eq!(
        app.put(&member(), "team/chunked.bin", chunked).await,
        StatusCode::INSUFFICIENT_STORAGE
    );
    // S3 multipart: refused at completion.
    let s3 = bucket_client(&app, "io", &token, GATEWAY_SECRET);
    let upload = s3.put_multipart(&"team/multi.bin".into()).await.unwrap();
    let mut writer = WriteMultipart::new_with_chunk_size(upload, 5 * 1024 * 1024);
    writer.write(&bytes(6 * 1024 * 1024));
    let completed = writer.finish().await;
    assert!(
        completed.is_err(),
        "a multipart completion over the quota is refused"
    );
    // SFTP: an upload that does not fit fails at CLOSE with a message; a truncate that
    // extends a file past the quota too.
    let sftp = crate::sftp::sftp(&app, "member", PASSWORD)
        .await
        .expect("SFTP login");
    let put = sftp.put("/team/over-sftp.bin", &bytes(30_000)).await;
    let message = format!("{:?}", put.expect_err("over the quota"));
    assert!(message.contains("quota"), "{message}");
    let file = sftp.fs.create("/team/sparse.bin").await.unwrap();
    let mut grow = russh_sftp::protocol::FileAttributes::empty();
    grow.size = Some(1_000_000);
    let grown = file.set_metadata(grow).await;
    let closed = file.close().await;
    assert!(
        grown.is_err() || closed.is_err(),
        "a truncate past the quota fails"
    );
    let sparse = app.stat(&member(), "team/sparse.bin").await;
    assert!(
        sparse.0 == StatusCode::NOT_FOUND || sparse.1["Nodes"][0]["Size"] == "0",
        "an extension past the quota is never committed: {sparse:?}"
    );
    // Nothing partial: no file, no blob left by any refused write.
    for name in [
        "over-rest",
        "over-dav",
        "over-s3",
        "copy",
        "chunked",
        "multi",
        "over-sftp",
    ] {
        let path = format!("team/{name}.bin");
        assert_eq!(
            app.stat(&member(), &path).await.0,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    if app.on_disk() {
        assert_eq!(
            app.blob_files().await,
            blobs_before,
            "no refused write left a blob"
        );
    }
    // Within the quota, writes go on; the personal quota is the member's own.
    assert_eq!(
        app.put(&member(), "team/fits.bin", bytes(20_000)).await,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put(&member(), "personal-files/big.bin", bytes(20_000)).await,
        StatusCode::INSUFFICIENT_STORAGE
    );
    assert_eq!(
        app.put(&member(), "personal-files/small.bin", bytes(9_000)).await,
        StatusCode::CREATED
    );
    // A move from personal files into the full workspace is charged to the workspace.
    let (status, _) = app
        .post(
            "/a/tree/move",
            &member(),
            json!({"From": "personal-files/small.bin", "To": "team/small.bin"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::INSUFFICIENT_STORAGE,
        "a move into a full workspace"
    );
    // RFC 4331 over WebDAV: used and available bytes of the workspace.
    let body = r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:quota-used-bytes/><D:quota-available-bytes/></D:prop></D:propfind>"#;
    let response = app
        .request(Method::from_bytes(b"PROPFIND").unwrap(), "/dav/team/", &member())
        .header("Depth", "0")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::MULTI_STATUS);
    let xml = response.text().await.unwrap();
    let number = |name: &str| -> u64 {
        let open = format!("<D:{name}>");
        xml.split(&open)
            .nth(1)
            .and_then(|r| r.split('<').next())
            .unwrap()
            .parse()
            .unwrap()
    };
    let (used, available) = (number("quota-used-bytes"), number("quota-available-bytes"));
    assert!((60_000..65_536).contains(&used), "{xml}");
    assert_eq!(used + available, 65_536, "{xml}");
    // Removing the quota lets the refused write through.
    app.cli_ok(&["admin", "workspace", "set-quota", "team", "none"]);
    assert_eq!(
        app.put(&member(), "team/over-rest.bin", bytes(30_000)).await,
        StatusCode::CREATED
    );
}

async fn concurrent_uploads_never_pass_a_quota_together(db: Db) {
    let app = TestApp::spawn(db).await;
    workspace_app(&app).await;
    app.cli_ok(&["admin", "workspace", "set-quota", "team", "1M"]);
    let other = app.sibling().await;
    // Eight uploads of 300,000 bytes at once on two nodes: at most three fit in 1 MiB.
    let uploads = (0..8).map(|i| {
        let node = if i % 2 == 0 { &app } else { &other };
        async move {
            node.put(&member(), &format!("team/c{i}.bin"), bytes(300_000))
                .await
        }
    });
    let statuses = futures_util::future::join_all(uploads).await;
    let created = statuses.iter().filter(|s| **s == StatusCode::CREATED).count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::INSUFFICIENT_STORAGE)
        .count();
    assert_eq!(created + refused, 8, "{statuses:?}");
    assert!((1..=3).contains(&created), "{statuses:?}");
    let (_, listed) = app
        .post("/a/tree/stats", &member(), json!({"NodePaths": ["team/*"]}))
        .await;
    let total: u64 = listed["Nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["Size"].as_str()?.parse::<u64>().ok())
        .sum();
    assert!(total <= 1 << 20, "{total} bytes in a workspace of 1 MiB");
    other.stop_sibling().await;
}

async fn workspace_administration_and_its_refusals(db: Db) {
    let app = TestApp::spawn(db).await;
    // Slugs: reserved, malformed, taken.
    for slug in ["personal-files", "shared-x", "Bad", "a_b", "-a"] {
        let out = app.cli(&["admin", "workspace", "create", slug]);
        assert!(!out.status.success(), "{slug} is refused");
    }
    app.cli_ok(&[
        "admin",
        "workspace",
        "create",
        "marketing",
        "--label",
        "Marketing",
        "--quota",
        "10G",
    ]);
    assert!(
        !app.cli(&["admin", "workspace", "create", "marketing"])
            .status
            .success()
    );
    assert!(
        !app.cli(&["admin", "workspace", "create", "common-files"])
            .status
            .success()
    );
    let listing = app.cli_ok(&["admin", "workspace", "list"]);
    assert!(
        listing.contains("marketing") && listing.contains("10G"),
        "{listing}"
    );
    assert!(
        listing.contains("common-files") && listing.contains("everyone=rw"),
        "{listing}"
    );
    // Nobody sees a workspace before it is granted, administrators included.
    assert_eq!(
        app.stat(&Auth::admin(), "marketing").await.0,
        StatusCode::NOT_FOUND
    );
    // REST: groups and grants, administrators only.
    app.create_user("carol", "carol-password", "standard").await;
    let carol = Auth::basic("carol", "carol-password");
    let put = |path: &'static str, auth: Auth, body: serde_json::Value| {
        let app = &app;
        async move {
            let response = app
                .request(Method::PUT, path, &auth)
                .json(&body)
                .send()
                .await
                .unwrap();
            response.status()
        }
    };
    assert_eq!(
        put("/a/group/design", carol.clone(), json!({})).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        put("/a/group/design", Auth::admin(), json!({})).await,
        StatusCode::OK
    );
    assert_eq!(
        put("/a/group/design/member/carol", Auth::admin(), json!({})).await,
        StatusCode::OK
    );
    assert_eq!(
        put("/a/group/design/member/carol", Auth::admin(), json!({})).await,
        StatusCode::CONFLICT
    );
    assert_eq!(
        put("/a/group/nope/member/carol", Auth::admin(), json!({})).await,
        StatusCode::NOT_FOUND
    );
    let (status, _) = app
        .post(
            "/a/workspace/marketing/grant",
            &carol,
            json!({"Group": "design", "Rights": "rw"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .post(
            "/a/workspace/marketing/grant",
            &Auth::admin(),
            json!({"Group": "design", "Rights": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app
        .post(
            "/a/workspace/marketing/grant",
            &Auth::admin(),
            json!({"Group": "design", "User": "carol"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app
        .post(
            "/a/workspace/marketing/grant",
            &Auth::admin(),
            json!({"Group": "design", "Rights": "rw"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.put(&carol, "marketing/plan.txt", "q3").await,
        StatusCode::CREATED
    );
    // A standard user lists what they may use, with their rights; an administrator all.
    let (_, mine) = app.get("/a/workspace", &carol).await;
    let slugs: Vec<&str> = mine["Workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["Slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["common-files", "marketing"]);
    assert_eq!(mine["Workspaces"][1]["Rights"], "rw");
    let (_, all) = app.get("/a/workspace", &Auth::admin()).await;
    assert_eq!(all["Workspaces"][1]["Grants"][0]["Group"], "design");
    // The node UUID of a workspace path, as the CLI prints it, for a user who may see it.
    let uuid = app.cli_ok(&["admin", "node", "stat", "marketing/plan.txt", "-u", "carol"]);
    assert_eq!(uuid.trim(), app.uuid(&carol, "marketing/plan.txt").await);
    // Quota through REST: a size, then none.
    let put_ws = |body: serde_json::Value| {
        let app = &app;
        async move {
            let response = app
                .request(Method::PUT, "/a/workspace/marketing", &Auth::admin())
                .json(&body)
                .send()
                .await
                .unwrap();
            (
                response.status(),
                response.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    let (status, body) = put_ws(json!({"Quota": "1K"})).await;
    assert_eq!((status, body["Quota"].as_u64()), (StatusCode::OK, Some(1024)));
    assert_eq!(
        app.put(&carol, "marketing/big.txt", bytes(2000)).await,
        StatusCode::INSUFFICIENT_STORAGE
    );
    let (status, body) = put_ws(json!({"Quota": "none"})).await;
    assert_eq!((status, body["Quota"].is_null()), (StatusCode::OK, true));
    assert_eq!(put_ws(json!({"Quota": "lots"})).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(put_ws(json!({"Slug": "other"})).await.0, StatusCode::BAD_REQUEST);
}

async fn deleting_a_workspace_takes_its_files(db: Db) {
    let app = TestApp::spawn(db).await;
    workspace_app(&app).await;
    assert_eq!(
        app.put(&member(), "team/large.bin", bytes(200_000)).await,
        StatusCode::CREATED
    );
    let blobs = app.blob_files().await;
    let (status, _) = app.get("/a/workspace", &member()).await;
    assert_eq!(status, StatusCode::OK);
    let response = app
        .request(Method::DELETE, "/a/workspace/team", &Auth::admin())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.read(&member(), "team/b.txt").await.0, StatusCode::NOT_FOUND);
    if app.on_disk() {
        assert!(app.blob_files().await < blobs, "the blobs went with the files");
    }
    // A new workspace of the same slug is a new tree.
    app.cli_ok(&["admin", "workspace", "create", "team"]);
    app.cli_ok(&["admin", "workspace", "grant", "team", "-u", "member"]);
    let (status, listed) = app
        .post("/a/tree/stats", &member(), json!({"NodePaths": ["team/*"]}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["Nodes"].as_array().unwrap().len(), 0);
    let s3 = bucket_client(&app, "io", &app.token("member", &["-e", "1h"]), GATEWAY_SECRET);
    s3.put(&"team/again.txt".into(), PutPayload::from_static(b"again"))
        .await
        .unwrap();
    let keys: Vec<String> = s3
        .list(Some(&"team".into()))
        .map(|o| o.unwrap().location.to_string())
        .collect()
        .await;
    assert_eq!(keys, ["team/again.txt"]);
}

/// A user without a grant learns nothing of a workspace: not from WebDAV locks (a 423, a lock
/// taken, a condition on another resource), not from error messages; a drop box reads nothing
/// through an SFTP handle opened for writing.
async fn hidden_workspaces_tell_nothing(db: Db) {
    let app = TestApp::spawn(db).await;
    workspace_app(&app).await;
    let outsider = Auth::basic("outsider", PASSWORD);
    let lock = r#"<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"#;
    let locked = app
        .request(Method::from_bytes(b"LOCK").unwrap(), "/dav/team/b.txt", &member())
        .header("Timeout", "Second-60")
        .body(lock)
        .send()
        .await
        .unwrap();
    assert_eq!(locked.status(), StatusCode::OK);
    for (method, path) in [
        ("PUT", "/dav/team/b.txt"),
        ("LOCK", "/dav/team/new.txt"),
        ("DELETE", "/dav/team/b.txt"),
    ] {
        let response = app
            .request(Method::from_bytes(method.as_bytes()).unwrap(), path, &outsider)
            .body(lock)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method} {path}");
    }
    let listing = app.raw_get("/dav/team/", "outsider", PASSWORD).await;
    assert_eq!(listing, 404);
    // A condition on a hidden resource fails the same whether it is locked or not.
    for target in ["/dav/team/b.txt", "/dav/team/a/inner.txt", "/dav/nothing-here/x"] {
        let condition = format!(
            "<{}{target}> (Not <opaquelocktoken:00000000-0000-0000-0000-000000000000>)",
            app.base
        );
        let response = app
            .request(Method::PUT, "/dav/personal-files/mine.txt", &outsider)
            .header("If", condition)
            .body("x")
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert!(
            status == StatusCode::PRECONDITION_FAILED || target.contains("nothing-here"),
            "{target}: {status}"
        );
    }
    // The same words for a workspace that does not exist and one that is not granted.
    let (_, hidden) = app.get("/a/content/team/b.txt", &outsider).await;
    let (_, missing) = app.get("/a/content/nothing-here/b.txt", &outsider).await;
    let detail = |v: &serde_json::Value| {
        v["Detail"]
            .as_str()
            .unwrap_or_default()
            .replace("nothing-here", "team")
    };
    assert_eq!(detail(&hidden), detail(&missing));
    // A drop box cannot open a file for writing without truncating it (its READs would
    // return the content).
    let dropper = crate::sftp::sftp(&app, "dropper", PASSWORD)
        .await
        .expect("SFTP login");
    let opened = dropper
        .fs
        .open_with_flags("/team/b.txt", russh_sftp::protocol::OpenFlags::WRITE)
        .await;
    assert!(opened.is_err(), "a drop box opens no file for writing in place");
    let replaced = dropper.put("/team/dropped.txt", b"dropped").await;
    assert!(replaced.is_ok(), "a drop box writes new files");
}
