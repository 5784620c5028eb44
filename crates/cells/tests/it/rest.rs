//! REST API: the tree, content, users, errors and isolation between users.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::backend_tests;
use crate::harness::{ADMIN, Auth, Db, TestApp, split};

backend_tests!(
    folders_keep_their_uuid,
    upload_download_and_ranges,
    bad_input_gets_clear_errors,
    users_cannot_reach_each_other,
    admin_routes_and_user_management,
    administrators_keep_the_administration,
    lockout_after_ten_failures,
    addresses_are_throttled_separately,
    concurrent_failures_are_counted_exactly,
    openapi_lists_every_route,
    copies_are_deep_and_independent,
    concurrent_overwrites_keep_one_file,
    small_files_live_in_their_row,
);

async fn folders_keep_their_uuid(db: Db) {
    let app = TestApp::spawn(db).await;
    let admin = Auth::admin();
    assert_eq!(app.mkdir(&admin, "personal-files/docs").await, StatusCode::OK);
    let uuid = app.uuid(&admin, "personal-files/docs").await;
    assert_eq!(
        app.cli_ok(&["admin", "node", "stat", "personal-files/docs"]),
        uuid
    );

    let (status, body) = app
        .post(
            "/a/tree/move",
            &admin,
            json!({"From": "personal-files/docs", "To": "personal-files/papers"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["Node"]["Uuid"], uuid);
    assert_eq!(app.mkdir(&admin, "personal-files/archive").await, StatusCode::OK);
    let (status, _) = app
        .post(
            "/a/tree/move",
            &admin,
            json!({"From": "personal-files/papers", "To": "personal-files/archive/p"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.uuid(&admin, "personal-files/archive/p").await, uuid);
    assert_eq!(
        app.cli_ok(&["admin", "node", "stat", "personal-files/archive/p"]),
        uuid
    );
    assert_eq!(
        app.stat(&admin, "personal-files/docs").await.0,
        StatusCode::NOT_FOUND
    );

    // Moving a folder into itself, or onto an existing name, is refused.
    let (status, _) = app
        .post(
            "/a/tree/move",
            &admin,
            json!({"From": "personal-files/archive", "To": "personal-files/archive/p/x"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(app.mkdir(&admin, "personal-files/other").await, StatusCode::OK);
    let (status, _) = app
        .post(
            "/a/tree/move",
            &admin,
            json!({"From": "personal-files/other", "To": "personal-files/archive"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Listing with Cells' `/*` syntax, recursive creation, and deletion.
    let (status, body) = app
        .post(
            "/a/tree/create",
            &admin,
            json!({"Nodes": [{"Path": "common-files/x/y/z", "Type": "COLLECTION"}], "Recursive": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = app
        .post(
            "/a/tree/stats",
            &admin,
            json!({"NodePaths": ["personal-files/*"]}),
        )
        .await;
    let mut names: Vec<&str> = body["Nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["Path"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["personal-files/archive", "personal-files/other"]);
    let (status, _) = app
        .post(
            "/a/tree/delete",
            &admin,
            json!({"Nodes": [{"Path": "common-files/x"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.stat(&admin, "common-files/x/y").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.mkdir(&admin, "personal-files/other").await,
        StatusCode::CONFLICT
    );
}

async fn upload_download_and_ranges(db: Db) {
    let app = TestApp::spawn(db).await;
    let admin = Auth::admin();
    let content: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    assert_eq!(
        app.put(&admin, "personal-files/big.bin", content.clone()).await,
        StatusCode::CREATED
    );
    let (status, back) = app.read(&admin, "personal-files/big.bin").await;
    assert_eq!(status, StatusCode::OK);
    assert!(back == content, "content differs after a round trip");
    let uuid = app.uuid(&admin, "personal-files/big.bin").await;

    // Overwrite keeps the UUID and changes the ETag.
    let (_, before) = app.stat(&admin, "personal-files/big.bin").await;
    assert_eq!(
        app.put(&admin, "personal-files/big.bin", "small").await,
        StatusCode::OK
    );
    let (_, after) = app.stat(&admin, "personal-files/big.bin").await;
    assert_eq!(after["Nodes"][0]["Uuid"], uuid);
    assert_ne!(after["Nodes"][0]["Etag"], before["Nodes"][0]["Etag"]);
    assert_eq!(after["Nodes"][0]["Size"], "5");

    let ranged = app
        .request(Method::GET, "/a/content/personal-files/big.bin", &admin)
        .header("Range", "bytes=1-3")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(ranged.headers()["content-range"], "bytes 1-3/5");
    assert_eq!(ranged.bytes().await.unwrap().as_ref(), b"mal");
    let beyond = app
        .request(Method::GET, "/a/content/personal-files/big.bin", &admin)
        .header("Range", "bytes=10-")
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let etag = after["Nodes"][0]["Etag"].as_str().unwrap();
    let cached = app
        .request(Method::GET, "/a/content/personal-files/big.bin", &admin)
        .header("If-None-Match", format!("\"{etag}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
    // Weak comparison for If-None-Match, strong for If-Match (RFC 7232 §2.3.2).
    let condition = |name: &'static str, value: String| {
        app.request(Method::GET, "/a/content/personal-files/big.bin", &admin)
            .header(name, value)
            .send()
    };
    let weak = condition("If-None-Match", format!("W/\"{etag}\"")).await.unwrap();
    assert_eq!(weak.status(), StatusCode::NOT_MODIFIED);
    let strong = condition("If-Match", format!("\"{etag}\"")).await.unwrap();
    assert_eq!(strong.status(), StatusCode::OK);
    assert_eq!(strong.bytes().await.unwrap().len(), 5);
    let stale = condition("If-Match", "\"stale\"".into()).await.unwrap();
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(stale.json::<serde_json::Value>().await.unwrap()["Code"], 412);
    let head = app
        .request(Method::HEAD, "/a/content/personal-files/big.bin", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["content-length"], "5");

    // Empty files, writes into missing folders, and folders are not files.
    let (status, _) = app
        .post(
            "/a/tree/create",
            &admin,
            json!({"Nodes": [{"Path": "personal-files/empty.txt", "Type": "LEAF"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.read(&admin, "personal-files/empty.txt").await,
        (StatusCode::OK, vec![])
    );
    assert_eq!(
        app.put(&admin, "personal-files/missing/f.txt", "x").await,
        StatusCode::CONFLICT
    );
    assert_eq!(app.mkdir(&admin, "personal-files/dir").await, StatusCode::OK);
    assert_eq!(
        app.put(&admin, "personal-files/dir", "x").await,
        StatusCode::CONFLICT
    );
    assert_eq!(
        app.read(&admin, "personal-files/dir").await.0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        app.put(&admin, "personal-files/big.bin/child", "x").await,
        StatusCode::CONFLICT
    );
}

async fn bad_input_gets_clear_errors(db: Db) {
    let app = TestApp::spawn(db).await;
    let admin = Auth::admin();
    for path in [
        "personal-files/../etc",
        "personal-files//x",
        "personal-files/a\u{0}b",
        "personal-files/.",
        "nowhere/x",
    ] {
        let (status, body) = app.stat(&admin, path).await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND,
            "{path:?} gave {status}"
        );
        assert!(
            body["Detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{path:?}: {body}"
        );
        let (status, _) = app
            .post("/a/tree/create", &admin, json!({"Nodes": [{"Path": path}]}))
            .await;
        assert!(status.is_client_error(), "create {path:?} gave {status}");
    }
    let (status, body) = app
        .post(
            "/a/tree/create",
            &admin,
            json!({"Nodes": [{"Path": "personal-files/a\u{0}b"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["Detail"].as_str().unwrap().contains("control character"),
        "{body}"
    );
    let (status, _) = app
        .post(
            "/a/tree/create",
            &admin,
            json!({"Nodes": [{"Path": "personal-files/x", "Type": "DIR"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // 10 MB of garbage, invalid JSON, wrong shapes.
    let garbage: Vec<u8> = (0..10_000_000u32).map(|i| (i % 256) as u8).collect();
    let response = app
        .request(Method::POST, "/a/tree/create", &admin)
        .body(garbage)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let response = app
        .request(Method::POST, "/a/tree/stats", &admin)
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, body) = split(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["Code"], 400);
    let (status, _) = app
        .post("/a/tree/stats", &admin, json!({"NodePaths": "personal-files"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app.post("/a/tree/stats", &admin, json!({"NodePaths": []})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Wrong password, unknown user, malformed headers.
    let (status, _) = app.get("/a/config/ctl", &Auth::basic(ADMIN, "wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = app
        .get("/a/config/ctl", &Auth::basic("nobody", "whatever-password"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["Detail"], "wrong login or password, or too many attempts");
    let response = app.http.get(app.url("/a/config/ctl")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("Basic")
    );
    for header in ["Basic !!!", "Basic", "Digest abc", "Bearer", "Basic Zm9v"] {
        let response = app
            .http
            .get(app.url("/a/config/ctl"))
            .header("Authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{header}");
    }
    let (status, body) = app.get("/no/such/route", &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["Code"], 404);

    // Still up and well.
    assert_eq!(app.get("/healthz", &Auth::None).await.0, StatusCode::OK);
    assert_eq!(app.mkdir(&admin, "personal-files/still-ok").await, StatusCode::OK);
}

async fn users_cannot_reach_each_other(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_user("alice", "alice-password", "standard").await;
    app.create_user("bob", "bob-password-1", "standard").await;
    let alice = Auth::basic("alice", "alice-password");
    let bob = Auth::basic("bob", "bob-password-1");
    assert_eq!(
        app.put(&alice, "personal-files/secret.txt", "alice's secret")
            .await,
        StatusCode::CREATED
    );
    let secret_uuid = app.uuid(&alice, "personal-files/secret.txt").await;

    // `personal-files` is always the caller's own.
    assert_eq!(
        app.read(&bob, "personal-files/secret.txt").await.0,
        StatusCode::NOT_FOUND
    );
    let (_, listing) = app
        .post("/a/tree/stats", &bob, json!({"NodePaths": ["personal-files/*"]}))
        .await;
    assert_eq!(listing["Nodes"], json!([]));
    assert_eq!(
        app.put(&bob, "personal-files/secret.txt", "bob's").await,
        StatusCode::CREATED
    );
    assert_eq!(
        app.read(&alice, "personal-files/secret.txt").await.1,
        b"alice's secret"
    );

    // Naming alice's node by UUID in a token scope is refused.
    let (status, body) = app
        .post(
            "/a/auth/token/personal",
            &bob,
            json!({"Label": "steal", "AutoRefresh": 600, "Scopes": [format!("node:{secret_uuid}:r")]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let output = app.cli(&[
        "admin",
        "user",
        "token",
        "-u",
        "bob",
        "-e",
        "1h",
        "-s",
        &format!("node:{secret_uuid}:r"),
    ]);
    assert!(!output.status.success());

    // Path tricks stay inside.
    // (sent raw: HTTP clients normalise `..` away before it reaches us)
    for path in [
        "/a/content/personal-files/../../a/content/personal-files/secret.txt",
        "/a/content/personal-files/%2e%2e/secret.txt",
        "/a/content/personal-files%2f..%2fsecret.txt",
        "/a/content/personal-files/sub/..%2f..%2fsecret.txt",
    ] {
        let status = app.raw_get(path, "bob", "bob-password-1").await;
        assert!(status == 400 || status == 404, "{path}: {status}");
    }
    // Common files are shared.
    assert_eq!(
        app.put(&alice, "common-files/shared.txt", "for all").await,
        StatusCode::CREATED
    );
    assert_eq!(app.read(&bob, "common-files/shared.txt").await.1, b"for all");
}

async fn admin_routes_and_user_management(db: Db) {
    let app = TestApp::spawn(db).await;
    let admin = Auth::admin();
    let (status, body) = app.get("/a/config/ctl", &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["Total"].as_u64().unwrap() >= 1);
    assert_eq!(
        body["Services"].as_array().unwrap().len() as u64,
        body["Total"].as_u64().unwrap()
    );

    app.create_user("carol", "carol-password", "standard").await;
    let carol = Auth::basic("carol", "carol-password");
    assert_eq!(app.get("/a/config/ctl", &carol).await.0, StatusCode::FORBIDDEN);
    assert_eq!(app.get("/a/user/carol", &carol).await.0, StatusCode::FORBIDDEN);
    let (status, user) = app.get("/a/user/carol", &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(user["Attributes"]["profile"], "standard");
    assert!(user.get("Password").is_none() && !user.to_string().contains("argon2"));

    // Update, promote, change password.
    let response = app
        .request(Method::PUT, "/a/user/carol", &admin)
        .json(&json!({"Attributes": {"displayName": "Carol C", "profile": "admin"}, "Password": "new-carol-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        app.get("/a/config/ctl", &carol).await.0,
        StatusCode::UNAUTHORIZED,
        "old password"
    );
    let carol = Auth::basic("carol", "new-carol-password");
    assert_eq!(app.get("/a/config/ctl", &carol).await.0, StatusCode::OK);

    // Bad user input.
    for (login, body) in [
        ("bad:login", json!({"Password": "long-enough-1"})),
        ("dave", json!({})),
        ("dave", json!({"Password": "short"})),
        (
            "dave",
            json!({"Password": "long-enough-1", "Attributes": {"profile": "root"}}),
        ),
    ] {
        let response = app
            .request(Method::PUT, &format!("/a/user/{login}"), &admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{login} {body}");
    }

    // Delete: the user's credentials stop working, their files are gone.
    assert_eq!(
        app.put(&carol, "personal-files/f.txt", "x").await,
        StatusCode::CREATED
    );
    let response = app
        .request(Method::DELETE, "/a/user/carol", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.get("/a/config/ctl", &carol).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get("/a/user/carol", &admin).await.0, StatusCode::NOT_FOUND);
    let response = app
        .request(Method::DELETE, "/a/user/admin", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::FORBIDDEN,
        "admins cannot delete themselves"
    );

    // The CLI sees the same users.
    app.cli_ok(&["admin", "user", "create", "-u", "erin", "-p", "erin-password"]);
    assert!(app.cli_ok(&["admin", "user", "list"]).contains("erin"));
    let output = app.cli(&["admin", "user", "create", "-u", "erin", "-p", "erin-password"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("already exists"));
    let output = app.cli(&["admin", "user", "delete", "-u", "nobody"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown user"));
    app.cli_ok(&["admin", "user", "delete", "-u", "erin"]);
}

/// One rule for REST, the console and the CLI alike (`cells_core::users`): nobody locks,
/// demotes or deletes themselves, and the last active administrator cannot be locked, demoted
/// or deleted by anyone, not even by two administrators locking each other at once.
async fn administrators_keep_the_administration(db: Db) {
    let app = TestApp::spawn(db).await;
    let admin = Auth::admin();
    let put = |auth: &Auth, login: &str, body: serde_json::Value| {
        let request = app
            .request(Method::PUT, &format!("/a/user/{login}"), auth)
            .json(&body);
        async move { split(request.send().await.unwrap()).await }
    };
    let delete = |auth: &Auth, login: &str| {
        let request = app.request(Method::DELETE, &format!("/a/user/{login}"), auth);
        async move { split(request.send().await.unwrap()).await }
    };

    // On themselves: refused, and nothing changed.
    let (status, body) = put(&admin, ADMIN, json!({"Locked": true})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "self-lock: {body}");
    assert!(
        body["Detail"].as_str().unwrap().contains("your own account"),
        "{body}"
    );
    let (status, body) = put(&admin, ADMIN, json!({"Attributes": {"profile": "standard"}})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "self-demotion: {body}");
    assert_eq!(
        delete(&admin, ADMIN).await.0,
        StatusCode::FORBIDDEN,
        "self-deletion"
    );
    let (status, me) = app.get(&format!("/a/user/{ADMIN}"), &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["Attributes"]["profile"], "admin");
    assert_eq!(me["Locked"], false);
    // A change that keeps the standing is fine.
    let (status, body) = put(&admin, ADMIN, json!({"Attributes": {"displayName": "Root"}})).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The CLI's operator is no account, but cannot delete the last active administrator.
    let output = app.cli(&["admin", "user", "delete", "-u", ADMIN]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("last active administrator"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        app.get(&format!("/a/user/{ADMIN}"), &admin).await.0,
        StatusCode::OK
    );

    // Two administrators lock each other at the same moment: one lock holds, never both.
    for round in 0..5 {
        let other = format!("second{round}");
        app.create_user(&other, "second-password", "admin").await;
        let second = Auth::basic(&other, "second-password");
        // Both credentials verified (and cached) before the race.
        assert_eq!(app.get("/a/config/ctl", &second).await.0, StatusCode::OK);
        let (first, second_result) = tokio::join!(
            put(&admin, &other, json!({"Locked": true})),
            put(&second, ADMIN, json!({"Locked": true})),
        );
        let held = [first.0, second_result.0]
            .iter()
            .filter(|status| **status == StatusCode::OK)
            .count();
        assert_eq!(
            held, 1,
            "round {round}: exactly one lock holds: {first:?} {second_result:?}"
        );
        let list = app.cli_ok(&["admin", "user", "list"]);
        let active_admins = list
            .lines()
            .skip(1)
            .filter(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                fields.len() >= 3 && fields[1] == "admin" && fields[2] == "no"
            })
            .count();
        assert_eq!(
            active_admins, 1,
            "round {round}: one active administrator is left:\n{list}"
        );
        // Whoever was locked: the other unlocks them (from the CLI, which may always unlock)
        // and the next round starts from two active administrators, then demotes the second.
        app.cli_ok(&["admin", "user", "unlock", "-u", ADMIN]);
        app.cli_ok(&["admin", "user", "unlock", "-u", &other]);
        let (status, body) = put(&admin, &other, json!({"Attributes": {"profile": "standard"}})).await;
        assert_eq!(status, StatusCode::OK, "demote another admin: {body}");
    }

    // With a second active administrator, the first can be deleted by them.
    app.create_user("heir", "heir-password", "admin").await;
    let heir = Auth::basic("heir", "heir-password");
    let (status, body) = delete(&heir, ADMIN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Now heir is the last one: nobody may lock, demote or delete them, the CLI included.
    let output = app.cli(&["admin", "user", "delete", "-u", "heir"]);
    assert!(!output.status.success(), "the CLI deleted the last administrator");
    assert_eq!(app.get("/a/user/heir", &heir).await.0, StatusCode::OK);
}

/// Ten wrong passwords in a row suspend new password logins (not the account): a token and a
/// password verified before keep working, the refusal reads as any wrong password, and
/// `unlock` ends the suspension.
async fn lockout_after_ten_failures(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_user("frank", "frank-password", "standard").await;
    let token = app.token("frank", &["-e", "1h"]);
    let good = Auth::basic("frank", "frank-password");
    let bad = Auth::basic("frank", "not-his-password");
    for _ in 0..9 {
        assert_eq!(app.stat(&bad, "personal-files").await.0, StatusCode::UNAUTHORIZED);
    }
    // A success resets the counter.
    assert_eq!(app.stat(&good, "personal-files").await.0, StatusCode::OK);
    for _ in 0..10 {
        app.stat(&bad, "personal-files").await;
    }
    // From another address: the same answer as for a wrong password or an unknown login.
    let other = app.client_from("127.0.0.4");
    let refused = |login: &str, password: &str| {
        other
            .post(app.url("/a/tree/stats"))
            .basic_auth(login, Some(password))
            .json(&json!({"NodePaths": ["personal-files"]}))
            .send()
    };
    let suspended = split(refused("frank", "another-guess").await.unwrap()).await;
    let unknown = split(refused("nobody-at-all", "another-guess").await.unwrap()).await;
    assert_eq!(suspended.0, StatusCode::UNAUTHORIZED);
    assert_eq!(suspended, unknown, "a suspended login answers as an unknown one");
    assert_eq!(
        suspended.1["Detail"], "wrong login or password, or too many attempts",
        "{suspended:?}"
    );
    let user = app
        .app
        .store()
        .find_user_by_login("frank")
        .await
        .unwrap()
        .unwrap();
    assert!(
        !user.locked && user.suspended_until > cells_store::now(),
        "{user:?}"
    );
    assert!(app.cli_ok(&["admin", "user", "list"]).contains("suspended until"));
    // Proofs of possession are not suspended: the token, and the password verified before
    // (the credential cache). Another user's password logins are not affected.
    assert_eq!(
        app.stat(&Auth::bearer(&token), "personal-files").await.0,
        StatusCode::OK
    );
    let (status, _) = split(refused("frank", "frank-password").await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    // Unlocking restores password logins; guessed tokens (from another address, so that this
    // one's throttle budget is not spent) never suspend anyone.
    app.cli_ok(&["admin", "user", "unlock", "-u", "frank"]);
    assert!(!app.cli_ok(&["admin", "user", "list"]).contains("suspended until"));
    assert_eq!(app.stat(&good, "personal-files").await.0, StatusCode::OK);
    let other = app.client_from("127.0.0.2");
    for _ in 0..12 {
        let response = other
            .post(app.url("/a/tree/stats"))
            .basic_auth("frank", Some(format!("cpat_{}", "A".repeat(75))))
            .json(&json!({"NodePaths": ["personal-files"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.stat(&good, "personal-files").await.0, StatusCode::OK);
    let user = app
        .app
        .store()
        .find_user_by_login("frank")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((user.locked, user.failed_logins), (false, 0));
}

async fn addresses_are_throttled_separately(db: Db) {
    let app = TestApp::spawn(db).await;
    let attacker = app.client_from("127.0.0.3");
    let mut statuses = Vec::new();
    for i in 0..22 {
        let response = attacker
            .post(app.url("/a/tree/stats"))
            .basic_auth(format!("user{i}"), Some("guess-password"))
            .json(&json!({"NodePaths": ["personal-files"]}))
            .send()
            .await
            .unwrap();
        statuses.push((response.status(), response.headers().get("retry-after").cloned()));
    }
    assert!(
        statuses[..20].iter().all(|(s, _)| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    let (last, retry_after) = statuses.last().unwrap();
    assert_eq!(*last, StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after.is_some());
    // Everyone else is unaffected.
    assert_eq!(app.stat(&Auth::admin(), "personal-files").await.0, StatusCode::OK);
}

/// Finding 3 of the security review: 300 concurrent guesses were all verified, and the right
/// password, sent last, got in although the account ended up locked. Attempts are now
/// reserved before they are verified: the burst gets at most the ten verifications the policy
/// allows, and the right password after them is refused.
async fn concurrent_failures_are_counted_exactly(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_user("gina", "gina-password", "standard").await;
    let before = app.app.auth.hasher().verifications();
    let attempts = (0..300).map(|i| {
        let password = if i == 299 {
            "gina-password".to_string()
        } else {
            format!("wrong-{i}")
        };
        let request = app
            .request(Method::POST, "/a/tree/stats", &Auth::basic("gina", &password))
            .json(&json!({"NodePaths": ["personal-files"]}));
        async move { request.send().await.unwrap().status() }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    let verified = app.app.auth.hasher().verifications() - before;
    assert!(verified <= 10, "{verified} verifications for one burst");
    assert!(
        // 429: the address's attempts in flight; 503: its connections (256 at most).
        statuses.iter().all(|s| matches!(
            *s,
            StatusCode::UNAUTHORIZED | StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        )),
        "{statuses:?}"
    );
    let user = app.app.store().find_user_by_login("gina").await.unwrap().unwrap();
    assert!(
        !user.locked && user.suspended_until > cells_store::now(),
        "{user:?}"
    );
    // The right password, now, from an address of its own: still refused.
    let (status, _) = split(
        app.client_from("127.0.0.5")
            .post(app.url("/a/tree/stats"))
            .basic_auth("gina", Some("gina-password"))
            .json(&json!({"NodePaths": ["personal-files"]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get("/healthz", &Auth::None).await.0, StatusCode::OK);
}

async fn openapi_lists_every_route(db: Db) {
    let app = TestApp::spawn(db).await;
    let (status, doc) = app.get("/a/openapi.json", &Auth::None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["openapi"].as_str().unwrap_or_default().starts_with("3."),
        "an OpenAPI 3 document"
    );
    for (method, path) in cells_rest::ROUTES {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is missing from openapi.json"
        );
    }
    // The other way: the document documents nothing that is not routed.
    for (path, methods) in doc["paths"].as_object().unwrap() {
        for method in methods.as_object().unwrap().keys() {
            assert!(
                cells_rest::ROUTES.contains(&(method.as_str(), path.as_str())),
                "openapi.json documents {method} {path}, which ROUTES does not list"
            );
        }
    }
    // Every listed route is routed: none gets the fallback's 404 or a 405.
    for (method, path) in cells_rest::ROUTES.iter().chain(cells_rest::OIDC_ROUTES) {
        let concrete = path
            .replace("{path}", "personal-files/x")
            .replace("{Login}", "nobody")
            .replace("{TokenId}", "00000000-0000-0000-0000-000000000000");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let response = app
            .http
            .request(method.clone(), app.url(&concrete))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert!(
            !(status == StatusCode::NOT_FOUND && body.contains("no such endpoint")),
            "{method} {path} is listed but not routed"
        );
    }
}

async fn copies_are_deep_and_independent(db: Db) {
    let app = TestApp::spawn(db).await;
    let admin = Auth::admin();
    let (status, _) = app
        .post(
            "/a/tree/create",
            &admin,
            json!({"Nodes": [{"Path": "personal-files/src/deep/er"}], "Recursive": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.put(&admin, "personal-files/src/a.txt", "top file").await,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put(&admin, "personal-files/src/deep/er/b.txt", "deep file")
            .await,
        StatusCode::CREATED
    );
    let source_uuid = app.uuid(&admin, "personal-files/src").await;

    let (status, body) = app
        .post(
            "/a/tree/copy",
            &admin,
            json!({"From": "personal-files/src", "To": "common-files/dst"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_ne!(body["Node"]["Uuid"], source_uuid, "a copy is a new node");
    assert_eq!(
        app.read(&admin, "common-files/dst/deep/er/b.txt").await.1,
        b"deep file"
    );
    assert_eq!(app.read(&admin, "common-files/dst/a.txt").await.1, b"top file");
    // Independent: changing the copy leaves the source alone, and deleting the source too.
    assert_eq!(
        app.put(&admin, "common-files/dst/a.txt", "changed").await,
        StatusCode::OK
    );
    assert_eq!(app.read(&admin, "personal-files/src/a.txt").await.1, b"top file");
    let (status, _) = app
        .post(
            "/a/tree/delete",
            &admin,
            json!({"Nodes": [{"Path": "personal-files/src"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.read(&admin, "common-files/dst/deep/er/b.txt").await.1,
        b"deep file"
    );

    // Refusals: existing target, into itself, missing source, a workspace as target.
    let (status, _) = app
        .post(
            "/a/tree/copy",
            &admin,
            json!({"From": "common-files/dst/a.txt", "To": "common-files/dst/a.txt"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = app
        .post(
            "/a/tree/copy",
            &admin,
            json!({"From": "common-files/dst", "To": "common-files/dst/deep/x"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app
        .post(
            "/a/tree/copy",
            &admin,
            json!({"From": "common-files/nope", "To": "common-files/y"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .post(
            "/a/tree/copy",
            &admin,
            json!({"From": "common-files/dst", "To": "common-files"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // Every blob is accounted for: one per file node, no two nodes sharing one.
    let blobs = app.app.store().referenced_blobs().await.unwrap();
    let unique: std::collections::HashSet<_> = blobs.iter().collect();
    assert_eq!(unique.len(), blobs.len(), "no two nodes share a blob");
}

/// Many writers on one file at once: each write wins whole or not at all, the file keeps its
/// UUID, and every replaced blob is deleted (an overwrite swaps the content in one statement
/// when nobody else changed it, and takes the transactional way when someone did). Half the
/// writes are small (kept in the row), half large (blob files), so the content moves between
/// the two as the writes land.
async fn concurrent_overwrites_keep_one_file(db: Db) {
    let app = TestApp::spawn(db).await;
    let admin = Auth::admin();
    assert_eq!(
        app.put(&admin, "personal-files/hot.txt", "v-start").await,
        StatusCode::CREATED
    );
    let uuid = app.uuid(&admin, "personal-files/hot.txt").await;
    let writes = (0..12).map(|i| {
        let request = app
            .request(Method::PUT, "/a/content/personal-files/hot.txt", &admin)
            .body(format!("v-{i:02}").repeat(if i % 2 == 0 { 1 } else { 20_000 }));
        async move { request.send().await.unwrap().status() }
    });
    let statuses = futures_util::future::join_all(writes).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");
    let (status, content) = app.read(&admin, "personal-files/hot.txt").await;
    assert_eq!(status, StatusCode::OK);
    let content = String::from_utf8(content).unwrap();
    let whole = content.len() == 4 || content == content[..4].repeat(20_000);
    assert!(
        content.starts_with("v-") && whole,
        "{}",
        &content[..content.len().min(40)]
    );
    assert_eq!(app.uuid(&admin, "personal-files/hot.txt").await, uuid);
    let referenced = app.app.store().referenced_blobs().await.unwrap();
    assert_eq!(
        app.blob_files().await,
        referenced.len(),
        "no replaced blob is left behind"
    );
}

/// Files up to 64 KiB are kept in their node's row, larger ones as blob files, and every way in
/// and out treats both alike: whole and ranged reads, the boundary size, empty files,
/// overwrites from one kind to the other (the replaced blob deleted), copies, deletes, and a
/// restart (the start-up sweep keeps what rows refer to).
async fn small_files_live_in_their_row(db: Db) {
    let app = TestApp::spawn(db).await;
    let admin = Auth::admin();
    let limit = 64 * 1024;
    let small: Vec<u8> = (0..limit).map(|i| (i % 251) as u8).collect();
    let large: Vec<u8> = (0..=limit).map(|i| (i % 241) as u8).collect();
    let read = |path: &'static str| {
        let app = &app;
        async move {
            let (status, body) = app.read(&Auth::admin(), path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            body
        }
    };

    assert_eq!(
        app.put(&admin, "personal-files/small.bin", small.clone()).await,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put(&admin, "personal-files/empty.bin", Vec::new()).await,
        StatusCode::CREATED
    );
    assert_eq!(app.blob_files().await, 0, "64 KiB and less stay in the database");
    assert_eq!(read("personal-files/small.bin").await, small);
    assert!(read("personal-files/empty.bin").await.is_empty());
    let ranged = app
        .request(Method::GET, "/a/content/personal-files/small.bin", &admin)
        .header("Range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(ranged.bytes().await.unwrap(), &small[1000..2000]);
    let (_, stat) = app.stat(&admin, "personal-files/small.bin").await;
    assert_eq!(stat["Nodes"][0]["Size"], json!(limit.to_string()));

    assert_eq!(
        app.put(&admin, "personal-files/large.bin", large.clone()).await,
        StatusCode::CREATED
    );
    assert_eq!(app.blob_files().await, 1, "one byte more is a blob file");
    assert_eq!(read("personal-files/large.bin").await, large);

    // Overwrites in both directions; the file keeps its UUID and the replaced blob goes.
    let uuid = app.uuid(&admin, "personal-files/small.bin").await;
    assert_eq!(
        app.put(&admin, "personal-files/small.bin", large.clone()).await,
        StatusCode::OK
    );
    assert_eq!(app.blob_files().await, 2);
    assert_eq!(read("personal-files/small.bin").await, large);
    assert_eq!(
        app.put(&admin, "personal-files/small.bin", small.clone()).await,
        StatusCode::OK
    );
    assert_eq!(app.blob_files().await, 1, "the blob it replaced is deleted");
    assert_eq!(read("personal-files/small.bin").await, small);
    assert_eq!(app.uuid(&admin, "personal-files/small.bin").await, uuid);

    // A folder holding both kinds, copied: the copies are independent of their sources.
    assert_eq!(app.mkdir(&admin, "personal-files/both").await, StatusCode::OK);
    for (from, to) in [("small.bin", "both/small.bin"), ("large.bin", "both/large.bin")] {
        let (status, _) = app
            .post(
                "/a/tree/copy",
                &admin,
                json!({"From": format!("personal-files/{from}"), "To": format!("personal-files/{to}")}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{from}");
    }
    let (status, _) = app
        .post(
            "/a/tree/copy",
            &admin,
            json!({"From": "personal-files/both", "To": "personal-files/again"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.blob_files().await, 3, "each large copy has a blob of its own");
    assert_eq!(
        app.put(&admin, "personal-files/small.bin", b"changed".to_vec())
            .await,
        StatusCode::OK
    );
    assert_eq!(read("personal-files/both/small.bin").await, small);
    assert_eq!(read("personal-files/again/small.bin").await, small);
    assert_eq!(read("personal-files/again/large.bin").await, large);

    let (status, _) = app
        .post(
            "/a/tree/delete",
            &admin,
            json!({"Nodes": [{"Path": "personal-files/both"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.blob_files().await, 2);

    let app = app.restart().await;
    assert_eq!(
        app.blob_files().await,
        2,
        "the sweep keeps every blob a row refers to"
    );
    let (status, body) = app.read(&Auth::admin(), "personal-files/again/small.bin").await;
    assert_eq!((status, body), (StatusCode::OK, small));
    let (status, body) = app.read(&Auth::admin(), "personal-files/small.bin").await;
    assert_eq!((status, body), (StatusCode::OK, b"changed".to_vec()));
}
