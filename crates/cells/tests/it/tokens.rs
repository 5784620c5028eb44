//! Personal access tokens: the seed's CLI flow, sliding expiry, scopes, revocation, bad input,
//! and REST token management.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::access_matrix::{self, Driver, Outcome, SCOPED, fixture};
use crate::backend_tests;
use crate::harness::{ADMIN, Auth, Db, TestApp};

backend_tests!(
    seed_flow_with_the_cli,
    auto_refresh_slides_and_survives_restart,
    scope_matrix_read_only,
    scope_matrix_read_write,
    workspace_access_matrix,
    revocation_is_immediate,
    malformed_tokens_and_cli_input,
    rest_token_management,
    sliding_uses_are_coalesced,
    locked_or_deleted_owner_stops_tokens,
    cached_credentials_revoke_on_every_node,
);

async fn seed_flow_with_the_cli(db: Db) {
    let app = TestApp::spawn(db).await;
    // TOKEN=$(cells admin user token -u admin -e 24h -q)
    let token = app.token(ADMIN, &["-e", "24h"]);
    assert!(token.starts_with("cpat_") && !token.contains('\n'), "{token}");
    let (status, body) = app.get("/a/config/ctl", &Auth::bearer(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["Services"].is_array());

    // `cells user token` is the same command; without -q it prints the sentence and warning.
    let printed = app.cli_ok(&["user", "token", "-u", ADMIN, "-e", "10m", "-l", "script"]);
    assert!(
        printed.contains("This token for admin will expire on"),
        "{printed}"
    );
    assert!(printed.contains("Make sure to secure it"), "{printed}");
    assert!(printed.lines().any(|l| l.starts_with("cpat_")));

    app.create_user("sam", "sam-password", "standard").await;
    let sams = app.token("sam", &["-e", "1h"]);
    assert_eq!(
        app.get("/a/config/ctl", &Auth::bearer(&sams)).await.0,
        StatusCode::FORBIDDEN
    );
    let mut mangled = token.clone().into_bytes();
    let at = mangled.len() / 2;
    mangled[at] = if mangled[at] == b'x' { b'y' } else { b'x' };
    let mangled = String::from_utf8(mangled).unwrap();
    assert_eq!(
        app.get("/a/config/ctl", &Auth::bearer(&mangled)).await.0,
        StatusCode::UNAUTHORIZED
    );

    // A PAT is also a Basic password, for its own login only.
    assert_eq!(
        app.get("/a/config/ctl", &Auth::basic(ADMIN, &token)).await.0,
        StatusCode::OK
    );
    let (status, body) = app.get("/a/config/ctl", &Auth::basic("sam", &token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // Listing shows the tokens without their values, with the last use.
    let listing = app.cli_ok(&["admin", "user", "token", "list", "-u", ADMIN]);
    assert!(!listing.contains("cpat_"), "values are never listed");
    assert!(
        listing.contains("script") && listing.contains("rest 127.0.0.1"),
        "{listing}"
    );
}

async fn auto_refresh_slides_and_survives_restart(db: Db) {
    let app = TestApp::spawn(db).await;
    let token = app.token(ADMIN, &["-a", "2"]);
    let auth = Auth::bearer(&token);
    let start = tokio::time::Instant::now();
    let at = |seconds: f64| start + Duration::from_secs_f64(seconds);
    tokio::time::sleep_until(at(1.0)).await;
    assert_eq!(app.stat(&auth, "personal-files").await.0, StatusCode::OK, "t=1");
    tokio::time::sleep_until(at(2.5)).await;
    assert_eq!(app.stat(&auth, "personal-files").await.0, StatusCode::OK, "t=2.5");
    // A graceful restart between uses changes nothing.
    let app = app.restart().await;
    tokio::time::sleep_until(at(4.0)).await;
    assert_eq!(
        app.stat(&auth, "personal-files").await.0,
        StatusCode::OK,
        "t=4 after a restart"
    );
    tokio::time::sleep_until(at(7.5)).await;
    assert_eq!(
        app.stat(&auth, "personal-files").await.0,
        StatusCode::UNAUTHORIZED,
        "unused for 3.5 s"
    );

    // A hard limit does not slide.
    let hard = app.token(ADMIN, &["-e", "2s"]);
    let hard_auth = Auth::bearer(&hard);
    let start = tokio::time::Instant::now();
    for _ in 0..3 {
        assert_eq!(app.stat(&hard_auth, "personal-files").await.0, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep_until(start + Duration::from_secs_f64(3.5)).await;
    assert_eq!(
        app.stat(&hard_auth, "personal-files").await.0,
        StatusCode::UNAUTHORIZED
    );

    // An absolute cap ends a sliding token however often it is used.
    let capped = app.token(ADMIN, &["-a", "10m", "--max-lifetime", "2s"]);
    let capped_auth = Auth::bearer(&capped);
    assert_eq!(app.stat(&capped_auth, "personal-files").await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_secs_f64(3.5)).await;
    assert_eq!(
        app.stat(&capped_auth, "personal-files").await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// The scope matrix over REST.
pub struct RestDriver<'a> {
    pub app: &'a TestApp,
    pub auth: Auth,
}

impl Driver for RestDriver<'_> {
    async fn list(&self, path: &str) -> Result<Vec<String>, Outcome> {
        let (status, body) = self
            .app
            .post(
                "/a/tree/stats",
                &self.auth,
                json!({"NodePaths": [format!("{path}/*")]}),
            )
            .await;
        match Outcome::of_status(status) {
            Outcome::Done => Ok(body["Nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| {
                    n["Path"]
                        .as_str()
                        .unwrap()
                        .rsplit('/')
                        .next()
                        .unwrap()
                        .to_string()
                })
                .collect()),
            refused => Err(refused),
        }
    }

    async fn read(&self, path: &str) -> Outcome {
        Outcome::of_status(self.app.read(&self.auth, path).await.0)
    }

    async fn write(&self, path: &str, content: &[u8]) -> Outcome {
        Outcome::of_status(self.app.put(&self.auth, path, content.to_vec()).await)
    }

    async fn mkdir(&self, path: &str) -> Outcome {
        Outcome::of_status(self.app.mkdir(&self.auth, path).await)
    }

    async fn delete(&self, path: &str) -> Outcome {
        let body = json!({"Nodes": [{"Path": path}]});
        Outcome::of_status(self.app.post("/a/tree/delete", &self.auth, body).await.0)
    }

    async fn rename(&self, from: &str, to: &str) -> Outcome {
        let body = json!({"From": from, "To": to});
        Outcome::of_status(self.app.post("/a/tree/move", &self.auth, body).await.0)
    }

    async fn copy(&self, from: &str, to: &str) -> Outcome {
        let body = json!({"From": from, "To": to});
        Outcome::of_status(self.app.post("/a/tree/copy", &self.auth, body).await.0)
    }
}

async fn scope_matrix_for(db: Db, permission: &str) {
    let app = TestApp::spawn(db).await;
    app.create_user("owner", "owner-password", "standard").await;
    let owner = Auth::basic("owner", "owner-password");
    let scoped = fixture(&app, &owner).await;
    let token = app.token(
        "owner",
        &["-e", "1h", "-s", &format!("node:{scoped}:{permission}")],
    );
    let driver = RestDriver {
        app: &app,
        auth: Auth::bearer(&token),
    };
    access_matrix::run(
        &driver,
        &format!("REST, scope {permission}"),
        access_matrix::scope_cases(permission == "rw"),
    )
    .await;

    // The scope follows the node, not its path.
    let (status, _) = app
        .post(
            "/a/tree/move",
            &owner,
            json!({"From": SCOPED, "To": "personal-files/renamed"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        driver.read("personal-files/renamed/inner.txt").await,
        Outcome::Done
    );
    assert_eq!(driver.read("personal-files/b/x.txt").await, Outcome::NotFound);
    // A scoped token cannot widen itself, nor reach admin routes.
    let (status, _) = app
        .post("/a/auth/token/personal", &driver.auth, json!({"AutoRefresh": 60}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Basic with the token as password is scoped the same way.
    let basic = RestDriver {
        app: &app,
        auth: Auth::basic("owner", &token),
    };
    assert_eq!(
        basic.read("personal-files/renamed/inner.txt").await,
        Outcome::Done
    );
    assert_eq!(basic.read("common-files/c.txt").await, Outcome::NotFound);
}

async fn workspace_access_matrix(db: Db) {
    let app = TestApp::spawn(db).await;
    let token = access_matrix::workspace_app(&app).await;
    let secrets = access_matrix::role_secrets(&app, &token, false);
    access_matrix::run_roles("REST", &secrets, async |login, secret| RestDriver {
        app: &app,
        auth: Auth::basic(login, secret),
    })
    .await;
}

async fn scope_matrix_read_only(db: Db) {
    scope_matrix_for(db, "r").await;
}

async fn scope_matrix_read_write(db: Db) {
    scope_matrix_for(db, "rw").await;
}

fn token_id(app: &TestApp, login: &str, label: &str) -> String {
    let listing = app.cli_ok(&["admin", "user", "token", "list", "-u", login]);
    listing
        .lines()
        .find(|line| line.contains(label))
        .and_then(|line| line.split_whitespace().next())
        .unwrap_or_else(|| panic!("no token labelled {label} in\n{listing}"))
        .to_string()
}

async fn revocation_is_immediate(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_user("rita", "rita-password", "standard").await;
    let token = app.token("rita", &["-e", "1h", "-l", "to-revoke"]);
    let bearer = Auth::bearer(&token);
    let basic = Auth::basic("rita", &token);
    assert_eq!(app.stat(&bearer, "personal-files").await.0, StatusCode::OK);
    assert_eq!(app.stat(&basic, "personal-files").await.0, StatusCode::OK);
    let id = token_id(&app, "rita", "to-revoke");
    assert!(
        app.cli_ok(&["admin", "user", "token", "revoke", &id])
            .contains("Revoked")
    );
    assert_eq!(
        app.stat(&bearer, "personal-files").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.stat(&basic, "personal-files").await.0,
        StatusCode::UNAUTHORIZED
    );
    let output = app.cli(&["admin", "user", "token", "revoke", &id]);
    assert!(!output.status.success(), "revoking twice says so");

    // A password served from the cache stops at once when changed from the CLI.
    let password = Auth::basic("rita", "rita-password");
    assert_eq!(app.stat(&password, "personal-files").await.0, StatusCode::OK);
    assert_eq!(app.stat(&password, "personal-files").await.0, StatusCode::OK);
    app.cli_ok(&[
        "admin",
        "user",
        "set-password",
        "-u",
        "rita",
        "-p",
        "rita-new-password",
    ]);
    assert_eq!(
        app.stat(&password, "personal-files").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.stat(&Auth::basic("rita", "rita-new-password"), "personal-files")
            .await
            .0,
        StatusCode::OK
    );
}

async fn malformed_tokens_and_cli_input(db: Db) {
    let app = TestApp::spawn(db).await;
    let token = app.token(ADMIN, &["-e", "1h", "-l", "gone"]);
    let id = token_id(&app, ADMIN, "gone");
    app.cli_ok(&["admin", "user", "token", "revoke", &id]);
    let huge = format!("cpat_{}", "A".repeat(7000));
    let bodies = [
        String::new(),
        "cpat_".to_string(),
        huge,
        token.replacen("cpat_", "xpat_", 1),
        format!("{}A", &token[..token.len() - 1]),
        token.clone(), // valid checksum, unknown id (revoked)
        "eyJhbGciOiJub25lIn0.e30.".to_string(),
    ];
    for value in &bodies {
        let response = app
            .http
            .post(app.url("/a/tree/stats"))
            .header("Authorization", format!("Bearer {value}"))
            .json(&json!({"NodePaths": ["personal-files"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{value:.30}");
    }
    let response = app
        .http
        .post(app.url("/a/tree/stats"))
        .header("Authorization", format!("Bearer {}", "A".repeat(100_000)))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error());

    let uuid = app.uuid(&Auth::admin(), "personal-files").await;
    for (args, complaint) in [
        (vec!["-e", "24h"], "-u LOGIN is mandatory"),
        (vec!["-u", ADMIN], "exactly one of"),
        (vec!["-u", "ghost", "-e", "1h"], "unknown user"),
        (vec!["-u", ADMIN, "-e", "-5m"], "negative"),
        (vec!["-u", ADMIN, "-e", "0s"], "positive"),
        (vec!["-u", ADMIN, "-e", "5000d"], "10 years"),
        (vec!["-u", ADMIN, "-e", "10x"], "unknown unit"),
        (vec!["-u", ADMIN, "-e", "600"], "no unit"),
        (vec!["-u", ADMIN, "-a", "abc"], "unknown unit"),
        (
            vec!["-u", ADMIN, "-e", "1h", "-s", "node:nope:r"],
            "not a node UUID",
        ),
        (
            vec!["-u", ADMIN, "-e", "1h", "-s", "file:x:r"],
            "only node scopes",
        ),
        (
            vec!["-u", ADMIN, "-e", "1h", "-s", &format!("node:{uuid}:x")],
            "r, w or rw",
        ),
        (
            vec![
                "-u",
                ADMIN,
                "-e",
                "1h",
                "-s",
                "node:6f1c2a4e-8d3b-4c6f-9a1e-2b3c4d5e6f70:r",
            ],
            "does not exist",
        ),
    ] {
        let mut full = vec!["admin", "user", "token"];
        full.extend(args.iter().copied());
        let output = app.cli(&full);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} should fail");
        assert!(stderr.contains(complaint), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?} printed a token");
    }
    // Both flags at once is refused by the parser.
    assert!(
        !app.cli(&["admin", "user", "token", "-u", ADMIN, "-e", "1h", "-a", "600"])
            .status
            .success()
    );
    // `-a 600` (seconds) and comma-separated scopes work.
    let both = format!("node:{uuid}:r,node:{uuid}:rw");
    assert!(app.token(ADMIN, &["-a", "600", "-s", &both]).starts_with("cpat_"));
}

async fn rest_token_management(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_user("tina", "tina-password", "standard").await;
    app.create_user("ugo", "ugo-password-1", "standard").await;
    let tina = Auth::basic("tina", "tina-password");
    let ugo = Auth::basic("ugo", "ugo-password-1");
    assert_eq!(app.mkdir(&tina, "personal-files/docs").await, StatusCode::OK);
    let docs = app.uuid(&tina, "personal-files/docs").await;

    let (status, body) = app
        .post(
            "/a/auth/token/personal",
            &tina,
            json!({"Label": "laptop", "AutoRefresh": 600, "Scopes": [format!("node:{docs}:rw")]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let value = body["AccessToken"].as_str().unwrap().to_string();
    let id = body["TokenId"].as_str().unwrap().to_string();
    let scoped = Auth::bearer(&value);
    assert_eq!(
        app.put(&scoped, "personal-files/docs/a.txt", "hi").await,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put(&scoped, "personal-files/b.txt", "hi").await,
        StatusCode::FORBIDDEN
    );

    let expires = cells_store::now() + 3600;
    let (status, body) = app
        .post(
            "/a/auth/token/personal",
            &tina,
            json!({"Label": "hard", "ExpiresAt": expires}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for bad in [
        json!({"Label": "none"}),
        json!({"AutoRefresh": -5}),
        json!({"ExpiresAt": 1}),
        json!({"AutoRefresh": 60, "Scopes": ["node:bad"]}),
        json!({"AutoRefresh": 60, "UserLogin": "ugo"}),
    ] {
        let (status, _) = app.post("/a/auth/token/personal", &tina, bad.clone()).await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::FORBIDDEN,
            "{bad} gave {status}"
        );
    }

    // Users see their own tokens only; values are never listed.
    let (status, listing) = app.post("/a/auth/tokens", &tina, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let tokens = listing["Tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 2);
    assert!(!listing.to_string().contains("cpat_"));
    let laptop = tokens.iter().find(|t| t["Label"] == "laptop").unwrap();
    assert_eq!(laptop["AutoRefreshWindow"], 600);
    assert_eq!(laptop["Scopes"], json!([format!("node:{docs}:rw")]));
    assert_eq!(laptop["LastUsedProtocol"], "rest");
    assert_eq!(
        app.post("/a/auth/tokens", &ugo, json!({"ByUser": "tina"}))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let (_, ugos) = app.post("/a/auth/tokens", &ugo, json!({})).await;
    assert_eq!(ugos["Tokens"], json!([]));
    let (_, all) = app.post("/a/auth/tokens", &Auth::admin(), json!({})).await;
    assert_eq!(all["Tokens"].as_array().unwrap().len(), 2);
    let delete = |auth: &Auth, id: &str| {
        app.request(Method::DELETE, &format!("/a/auth/tokens/{id}"), auth)
            .send()
    };
    assert_eq!(
        delete(&ugo, &id).await.unwrap().status(),
        StatusCode::NOT_FOUND,
        "not ugo's"
    );
    assert_eq!(
        delete(&scoped, &id).await.unwrap().status(),
        StatusCode::FORBIDDEN,
        "scoped"
    );
    assert_eq!(
        delete(&tina, "not-a-uuid").await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(delete(&tina, &id).await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        app.stat(&scoped, "personal-files/docs").await.0,
        StatusCode::UNAUTHORIZED
    );

    // Impersonation is for administrators.
    let (status, _) = app
        .post(
            "/a/auth/token/impersonate",
            &tina,
            json!({"UserLogin": "ugo", "AutoRefresh": 60}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = app
        .post(
            "/a/auth/token/impersonate",
            &Auth::admin(),
            json!({"UserLogin": "ugo", "AutoRefresh": 60, "Label": "for ugo"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let for_ugo = Auth::bearer(body["AccessToken"].as_str().unwrap());
    assert_eq!(
        app.put(&for_ugo, "personal-files/u.txt", "u").await,
        StatusCode::CREATED
    );
    assert_eq!(app.read(&ugo, "personal-files/u.txt").await.1, b"u");

    // A document token reaches its one node.
    let (status, body) = app
        .post(
            "/a/auth/token/document",
            &tina,
            json!({"Path": "personal-files/docs/a.txt"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let document = Auth::bearer(body["AccessToken"].as_str().unwrap());
    assert_eq!(app.read(&document, "personal-files/docs/a.txt").await.1, b"hi");
    assert_eq!(
        app.put(&document, "personal-files/docs/other.txt", "no").await,
        StatusCode::FORBIDDEN
    );
    let (_, listing) = app.post("/a/auth/tokens", &tina, json!({})).await;
    let doc_token: &Value = listing["Tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["Type"] == "DOCUMENT")
        .unwrap();
    assert_eq!(doc_token["AutoRefreshWindow"], 1800);

    // A script revokes its own token.
    assert_eq!(
        app.post("/a/auth/token/revoke", &document, json!({})).await.0,
        StatusCode::OK
    );
    assert_eq!(
        app.read(&document, "personal-files/docs/a.txt").await.0,
        StatusCode::UNAUTHORIZED
    );
}

async fn sliding_uses_are_coalesced(db: Db) {
    let app = TestApp::spawn(db).await;
    let token = app.token(ADMIN, &["-a", "600"]);
    let auth = Auth::bearer(&token);
    let before = app.app.auth.usage().writes();
    for _ in 0..100 {
        assert_eq!(app.stat(&auth, "personal-files").await.0, StatusCode::OK);
    }
    let writes = app.app.auth.usage().writes() - before;
    assert!(
        (1..=2).contains(&writes),
        "100 uses within a 600 s window wrote {writes} times"
    );
}

async fn locked_or_deleted_owner_stops_tokens(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_user("vic", "vic-password", "standard").await;
    let token = app.token("vic", &["-e", "1h"]);
    let auth = Auth::bearer(&token);
    assert_eq!(app.stat(&auth, "personal-files").await.0, StatusCode::OK);
    let response = app
        .request(Method::PUT, "/a/user/vic", &Auth::admin())
        .json(&json!({"Locked": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        app.stat(&auth, "personal-files").await.0,
        StatusCode::UNAUTHORIZED
    );
    app.cli_ok(&["admin", "user", "unlock", "-u", "vic"]);
    assert_eq!(app.stat(&auth, "personal-files").await.0, StatusCode::OK);
    app.cli_ok(&["admin", "user", "delete", "-u", "vic"]);
    assert_eq!(
        app.stat(&auth, "personal-files").await.0,
        StatusCode::UNAUTHORIZED
    );
}

async fn cached_credentials_revoke_on_every_node(db: Db) {
    let node_a = TestApp::spawn(db).await;
    let node_b = node_a.sibling().await;
    node_a.create_user("wes", "wes-password", "standard").await;
    let token = node_a.token("wes", &["-e", "1h", "-l", "shared"]);
    let bearer = Auth::bearer(&token);
    let password = Auth::basic("wes", "wes-password");
    // Warm both caches: the second round on each node is served from memory.
    for node in [&node_a, &node_b] {
        for _ in 0..2 {
            assert_eq!(node.stat(&bearer, "personal-files").await.0, StatusCode::OK);
            assert_eq!(node.stat(&password, "personal-files").await.0, StatusCode::OK);
        }
    }
    assert!(node_a.app.auth.cache_hits() >= 2, "node A served from its cache");
    assert!(node_b.app.auth.cache_hits() >= 2, "node B served from its cache");

    // Revoked through node A's REST API: node B refuses the very next request.
    let (_, listing) = node_a.post("/a/auth/tokens", &password, json!({})).await;
    let id = listing["Tokens"][0]["Uuid"].as_str().unwrap().to_string();
    let response = node_a
        .request(Method::DELETE, &format!("/a/auth/tokens/{id}"), &password)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        node_b.stat(&bearer, "personal-files").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        node_a.stat(&bearer, "personal-files").await.0,
        StatusCode::UNAUTHORIZED
    );

    // A password changed on node B stops working on node A at once, cache or not.
    let response = node_b
        .request(Method::PUT, "/a/user/wes", &Auth::admin())
        .json(&json!({"Password": "wes-new-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        node_a.stat(&password, "personal-files").await.0,
        StatusCode::UNAUTHORIZED
    );

    // Locked on node A: node B refuses the fresh password at once, though it had cached it.
    let fresh = Auth::basic("wes", "wes-new-password");
    for node in [&node_a, &node_b, &node_b] {
        assert_eq!(node.stat(&fresh, "personal-files").await.0, StatusCode::OK);
    }
    let response = node_a
        .request(Method::PUT, "/a/user/wes", &Auth::admin())
        .json(&json!({"Locked": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        node_b.stat(&fresh, "personal-files").await.0,
        StatusCode::UNAUTHORIZED
    );
    node_b.stop_sibling().await;
}
