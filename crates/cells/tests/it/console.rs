//! The web console over HTTP, as a browser without JavaScript uses it: sign-in, the file
//! browser (new folder, upload, download, details with the UUID, rename, delete), tokens
//! (create with a folder scope, use them, revoke), People and its Personal Access Tokens tab,
//! and the attacks of issue 8: forms without CSRF tokens, a standard user on admin pages or
//! on someone else's tokens, markup in labels, file names and display names.

use reqwest::multipart::{Form, Part};
use reqwest::{Client, StatusCode};
use serde_json::json;

use cells_console::encode_component as urlencode;

use crate::access_matrix::{self, Driver, Outcome, Role};
use crate::backend_tests;
use crate::harness::{ADMIN, ADMIN_PASSWORD, Auth, Db, TestApp};
use crate::oidc::{browser, hidden};

backend_tests!(
    console_workspace_access_matrix,
    sign_in_files_and_tokens,
    people_and_isolation,
    hostile_text_is_inert,
    sign_out_and_shared_session,
    ssh_keys_page
);

/// A browser signed in to the console.
pub(crate) struct Page {
    pub(crate) client: Client,
    base: String,
}

impl Page {
    pub(crate) async fn sign_in(app: &TestApp, login: &str, password: &str) -> Page {
        let client = browser();
        let page = client.get(app.url("/login?next=/files/")).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        let form = [
            ("csrf", hidden(&html, "csrf")),
            ("next", "/files/".to_string()),
            ("login", login.to_string()),
            ("password", password.to_string()),
        ];
        let response = client.post(app.url("/login")).form(&form).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{login} signs in");
        assert_eq!(response.headers()["location"], "/files/");
        Page {
            client,
            base: app.base.clone(),
        }
    }

    pub(crate) async fn get(&self, path: &str) -> (StatusCode, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (response.status(), response.text().await.unwrap())
    }

    /// Post a form from the page at `from`, with that page's CSRF token.
    pub(crate) async fn submit(
        &self,
        from: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let (_, html) = self.get(from).await;
        let csrf = hidden(&html, "csrf");
        let mut form: Vec<(&str, &str)> = vec![("csrf", &csrf)];
        form.extend_from_slice(fields);
        self.client
            .post(format!("{}{action}", self.base))
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    /// The same form without its CSRF token.
    async fn forge(&self, action: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(format!("{}{action}", self.base))
            .form(fields)
            .send()
            .await
            .unwrap()
    }
}

fn location(response: &reqwest::Response) -> String {
    response.headers()["location"].to_str().unwrap().to_string()
}

async fn sign_in_files_and_tokens(db: Db) {
    let app = TestApp::spawn(db).await;
    let anonymous = browser();

    // Without a session: `/` is the file browser, which asks to sign in first.
    let response = anonymous.get(app.url("/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/files/");
    let response = anonymous
        .get(app.url("/files/personal-files/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/login?next=%2Ffiles%2Fpersonal-files%2F");

    // The sign-in page: strict headers; no CSRF token, no session; a wrong password says so.
    let page = anonymous.get(app.url("/login")).send().await.unwrap();
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let html = page.text().await.unwrap();
    let csrf = hidden(&html, "csrf");
    let forged = anonymous
        .post(app.url("/login"))
        .form(&[("login", ADMIN), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(
        forged
            .headers()
            .get("set-cookie")
            .is_none_or(|c| !c.to_str().unwrap().contains("cells_session"))
    );
    let wrong = anonymous
        .post(app.url("/login"))
        .form(&[("csrf", csrf.as_str()), ("login", ADMIN), ("password", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.text().await.unwrap().contains("wrong login or password"));
    // An open redirect after sign-in is refused: `next` must be a local path.
    let response = anonymous
        .post(app.url("/login"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("next", "//evil.example/"),
            ("login", ADMIN),
            ("password", ADMIN_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&response), "/files/");

    let admin = Page::sign_in(&app, ADMIN, ADMIN_PASSWORD).await;
    let (status, html) = admin.get("/files/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("href=\"/files/personal-files/\"") && html.contains("href=\"/files/common-files/\"")
    );

    // New folder: refused without the CSRF token, made with it.
    let forged = admin
        .forge("/files/personal-files/", &[("action", "mkdir"), ("name", "docs")])
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.stat(&Auth::admin(), "personal-files/docs").await.0,
        StatusCode::NOT_FOUND
    );
    let made = admin
        .submit(
            "/files/personal-files/",
            "/files/personal-files/",
            &[("action", "mkdir"), ("name", "docs")],
        )
        .await;
    assert_eq!(made.status(), StatusCode::SEE_OTHER);
    let docs_uuid = app.uuid(&Auth::admin(), "personal-files/docs").await;

    // Upload: the CSRF token must come first; without it nothing is written.
    let upload = |csrf: Option<String>, name: &str, content: &'static [u8]| {
        let mut form = Form::new();
        if let Some(csrf) = csrf {
            form = form.text("csrf", csrf);
        }
        form.part("file", Part::bytes(content).file_name(name.to_string()))
    };
    let response = admin
        .client
        .post(app.url("/files/personal-files/docs/"))
        .multipart(upload(None, "a.txt", b"forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.stat(&Auth::admin(), "personal-files/docs/a.txt").await.0,
        StatusCode::NOT_FOUND
    );
    let (_, html) = admin.get("/files/personal-files/docs/").await;
    let response = admin
        .client
        .post(app.url("/files/personal-files/docs/"))
        .multipart(upload(
            Some(hidden(&html, "csrf")),
            "a.txt",
            b"hello from the browser",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("Uploaded 1 file."));
    assert_eq!(
        app.read(&Auth::admin(), "personal-files/docs/a.txt").await.1,
        b"hello from the browser"
    );
    app.put(&Auth::admin(), "personal-files/outside.txt", "secret")
        .await;

    // Download: an attachment that the browser never renders as a page of this site.
    let response = admin
        .client
        .get(app.url("/files/personal-files/docs/a.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert!(
        response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
    assert_eq!(
        response.bytes().await.unwrap().as_ref(),
        b"hello from the browser"
    );

    // Details show the node UUID, and the shortcut pre-fills a token form with the folder.
    let (status, html) = admin.get("/files/personal-files/?info=docs").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&docs_uuid), "the details show the UUID");
    let shortcut = format!("/tokens?node={docs_uuid}#new-token");
    assert!(html.contains(&shortcut));
    let (_, form) = admin.get(&format!("/tokens?node={docs_uuid}")).await;
    assert!(form.contains("value=\"personal-files/docs\""), "scope pre-filled");

    // Create an Auto Refresh token scoped to docs, read and write; its value is shown once.
    let created = admin
        .submit(
            "/tokens",
            "/tokens",
            &[
                ("label", "docs sync"),
                ("model", "auto"),
                ("amount", "10"),
                ("unit", "m"),
                ("scope", "personal-files/docs"),
                ("rights", "rw"),
            ],
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(created.headers()["cache-control"], "no-store");
    let html = created.text().await.unwrap();
    let token = hidden(&html, "token");
    assert!(token.starts_with("cpat_"), "{token}");
    assert!(html.contains("secure it as it grants access to the user resources"));
    let scoped = Auth::bearer(&token);
    assert_eq!(
        app.read(&scoped, "personal-files/docs/a.txt").await.0,
        StatusCode::OK
    );
    assert_eq!(
        app.put(&scoped, "personal-files/docs/b.txt", "b").await,
        StatusCode::CREATED
    );
    assert_ne!(
        app.read(&scoped, "personal-files/outside.txt").await.0,
        StatusCode::OK
    );
    let (status, _) = app.get("/a/config/ctl", &scoped).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a scoped token is no administrator"
    );

    // The list: model, scope as a path, status; never the value.
    let (_, list) = admin.get("/tokens").await;
    assert!(list.contains("docs sync") && list.contains("Auto refresh"));
    assert!(list.contains("personal-files/docs (read and write)"));
    assert!(list.contains("active") && !list.contains(&token));

    // A malformed form is refused with what is wrong, and keeps what was typed.
    let refused = admin
        .submit(
            "/tokens",
            "/tokens",
            &[
                ("label", "kept label"),
                ("model", "hard"),
                ("amount", "0"),
                ("unit", "d"),
            ],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let html = refused.text().await.unwrap();
    assert!(html.contains("duration") && html.contains("value=\"kept label\""));
    let refused = admin
        .submit(
            "/tokens",
            "/tokens",
            &[
                ("label", "x"),
                ("model", "hard"),
                ("amount", "1"),
                ("unit", "d"),
                ("scope", "personal-files/nope"),
                ("rights", "r"),
            ],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::NOT_FOUND);

    // Revoke: confirm first; a forged form does nothing; then the token fails at once.
    let (_, tokens) = app.post("/a/auth/tokens", &Auth::admin(), json!({})).await;
    let id = tokens["Tokens"][0]["Uuid"].as_str().unwrap().to_string();
    let (status, confirm) = admin.get(&format!("/tokens/{id}/revoke")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(confirm.contains("Revoke the token"));
    let forged = admin.forge(&format!("/tokens/{id}/revoke"), &[]).await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.read(&scoped, "personal-files/docs/a.txt").await.0,
        StatusCode::OK
    );
    let revoked = admin
        .submit(
            &format!("/tokens/{id}/revoke"),
            &format!("/tokens/{id}/revoke"),
            &[],
        )
        .await;
    assert_eq!(revoked.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&revoked), "/tokens?done=revoked");
    assert_eq!(
        app.read(&scoped, "personal-files/docs/a.txt").await.0,
        StatusCode::UNAUTHORIZED
    );

    // Rename keeps the UUID; delete asks first, then removes.
    let renamed = admin
        .submit(
            "/files/personal-files/",
            "/files/personal-files/",
            &[("action", "rename"), ("name", "docs"), ("new_name", "papers")],
        )
        .await;
    assert_eq!(renamed.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.uuid(&Auth::admin(), "personal-files/papers").await, docs_uuid);
    let (status, confirm) = admin.get("/files/personal-files/?delete=papers").await;
    assert_eq!(status, StatusCode::OK);
    assert!(confirm.contains("Delete papers?"));
    let conflict = admin
        .submit(
            "/files/personal-files/",
            "/files/personal-files/",
            &[
                ("action", "rename"),
                ("name", "papers"),
                ("new_name", "outside.txt"),
            ],
        )
        .await;
    assert_eq!(conflict.status(), StatusCode::CONFLICT);
    let deleted = admin
        .submit(
            "/files/personal-files/",
            "/files/personal-files/",
            &[("action", "delete"), ("name", "papers")],
        )
        .await;
    assert_eq!(deleted.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.stat(&Auth::admin(), "personal-files/papers").await.0,
        StatusCode::NOT_FOUND
    );

    // Dot segments never reach the tree.
    let (status, _) = admin.get("/files/personal-files/x%2F..%2Fy/").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    app.stop().await;
}

async fn people_and_isolation(db: Db) {
    let app = TestApp::spawn(db).await;
    let admin = Page::sign_in(&app, ADMIN, ADMIN_PASSWORD).await;

    // Create a user from People, then a token for them from their tab (the seed's panel).
    let forged = admin
        .forge(
            "/admin/people",
            &[
                ("login", "bob"),
                ("password", "bob-password"),
                ("profile", "admin"),
            ],
        )
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let created = admin
        .submit(
            "/admin/people",
            "/admin/people",
            &[
                ("login", "bob"),
                ("password", "bob-password"),
                ("display_name", "Bob B"),
                ("email", "bob@example.org"),
                ("profile", "standard"),
            ],
        )
        .await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&created), "/admin/people/bob?done=created");
    let (status, bob) = app.get("/a/user/bob", &Auth::admin()).await;
    assert_eq!(status, StatusCode::OK, "{bob}");
    let (_, people) = admin.get("/admin/people?q=bob%40example").await;
    assert!(
        people.contains("href=\"/admin/people/bob\"") && !people.contains("href=\"/admin/people/admin\"")
    );

    let made = admin
        .submit(
            "/admin/people/bob/tokens",
            "/admin/people/bob/tokens",
            &[
                ("label", "bob laptop"),
                ("model", "hard"),
                ("amount", "1"),
                ("unit", "d"),
            ],
        )
        .await;
    assert_eq!(made.status(), StatusCode::CREATED);
    let bob_token = hidden(&made.text().await.unwrap(), "token");
    assert_eq!(
        app.put(&Auth::basic("bob", &bob_token), "personal-files/b.txt", "b")
            .await,
        StatusCode::CREATED
    );
    let (_, tab) = admin.get("/admin/people/bob/tokens").await;
    assert!(tab.contains("bob laptop") && tab.contains("Personal Access Tokens"));
    let admin_token = app.token(ADMIN, &["-e", "1h", "-l", "admin secret thing"]);

    // Bob, a standard user: no admin page, only his own tokens.
    let bob = Page::sign_in(&app, "bob", "bob-password").await;
    for page in [
        "/admin/people",
        "/admin/people/bob",
        "/admin/people/admin/tokens",
        "/admin/clients",
    ] {
        let (status, html) = bob.get(page).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
        assert!(!html.contains("admin secret thing"));
    }
    let (_, nav) = bob.get("/files/").await;
    assert!(!nav.contains("/admin/people"), "no admin menu for bob");
    let (_, mine) = bob.get("/tokens").await;
    assert!(mine.contains("bob laptop") && !mine.contains("admin secret thing"));
    let (_, tokens) = app
        .post("/a/auth/tokens", &Auth::admin(), json!({"ByUser": ADMIN}))
        .await;
    let admin_token_id = tokens["Tokens"][0]["Uuid"].as_str().unwrap().to_string();
    let (status, _) = bob.get(&format!("/tokens/{admin_token_id}/revoke")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let attempt = bob
        .submit("/tokens", &format!("/tokens/{admin_token_id}/revoke"), &[])
        .await;
    assert_eq!(attempt.status(), StatusCode::NOT_FOUND);
    let forged_admin = bob
        .submit(
            "/tokens",
            "/admin/people/bob",
            &[("action", "profile"), ("profile", "admin")],
        )
        .await;
    assert_eq!(forged_admin.status(), StatusCode::FORBIDDEN);
    let (status, _) = app.get("/a/config/ctl", &Auth::bearer(&admin_token)).await;
    assert_eq!(status, StatusCode::OK, "the admin's token still works");

    // The OAuth clients page lists the defaults.
    let (status, clients) = admin.get("/admin/clients").await;
    assert_eq!(status, StatusCode::OK);
    assert!(clients.contains("cells-sync") && clients.contains("cells-frontend"));

    // An administrator cannot lock or delete themselves; bob can be locked, which ends his
    // session and his tokens at once.
    let refused = admin
        .submit(
            "/admin/people/admin",
            "/admin/people/admin",
            &[("action", "lock")],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    for form in [
        &[("action", "delete")][..],
        &[("action", "profile"), ("profile", "standard")][..],
    ] {
        let refused = admin
            .submit("/admin/people/admin", "/admin/people/admin", form)
            .await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{form:?}");
        assert!(
            refused.text().await.unwrap().contains("your own account"),
            "{form:?}"
        );
    }
    let (status, me) = app.get("/a/user/admin", &Auth::admin()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (me["Attributes"]["profile"].as_str(), me["Locked"].as_bool()),
        (Some("admin"), Some(false))
    );
    let locked = admin
        .submit("/admin/people/bob", "/admin/people/bob", &[("action", "lock")])
        .await;
    assert_eq!(location(&locked), "/admin/people/bob?done=locked");
    let response = bob.client.get(app.url("/files/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "bob's session ended");
    let (status, _) = app.stat(&Auth::basic("bob", &bob_token), "personal-files").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Delete asks first, then takes the user, files and tokens.
    let (_, confirm) = admin.get("/admin/people/bob/delete").await;
    assert!(confirm.contains("Delete the user bob?"));
    let deleted = admin
        .submit(
            "/admin/people/bob/delete",
            "/admin/people/bob",
            &[("action", "delete")],
        )
        .await;
    assert_eq!(location(&deleted), "/admin/people?done=deleted");
    assert_eq!(
        app.get("/a/user/bob", &Auth::admin()).await.0,
        StatusCode::NOT_FOUND
    );
    app.stop().await;
}

async fn hostile_text_is_inert(db: Db) {
    let app = TestApp::spawn(db).await;
    let script = "<script>alert(1)</script>";
    app.create_user("mallory", "mallory-password", "standard").await;
    let response = app
        .request(reqwest::Method::PUT, "/a/user/mallory", &Auth::admin())
        .json(&json!({"Attributes": {"displayName": script}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let hostile_file = "<img src=x onerror=alert(1)>.txt";
    let auth = Auth::basic("mallory", "mallory-password");
    assert_eq!(
        app.put(&auth, &format!("personal-files/{}", urlencode(hostile_file)), "x")
            .await,
        StatusCode::CREATED
    );
    let (status, _) = app
        .post(
            "/a/auth/token/personal",
            &auth,
            json!({"Label": "\"><script>alert(2)</script>", "AutoRefresh": 600}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let mallory = Page::sign_in(&app, "mallory", "mallory-password").await;
    let admin = Page::sign_in(&app, ADMIN, ADMIN_PASSWORD).await;
    for (page, path) in [
        (&mallory, "/files/personal-files/"),
        (
            &mallory,
            &format!("/files/personal-files/?info={}", urlencode(hostile_file)),
        ),
        (&mallory, "/tokens"),
        (&admin, "/admin/people"),
        (&admin, "/admin/people/mallory"),
        (&admin, "/admin/people/mallory/tokens"),
    ] {
        let (status, html) = page.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        for raw in ["<script>alert", "<img src=x"] {
            assert!(!html.contains(raw), "{raw} appears unescaped in {path}");
        }
    }
    let (_, html) = mallory.get("/files/personal-files/").await;
    assert!(
        html.contains("&#60;img src=x onerror=alert(1)&#62;.txt"),
        "{html}"
    );
    let (_, html) = admin.get("/admin/people").await;
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{html}"
    );

    // A name the page got back exactly: surrounding spaces are kept, not trimmed away.
    assert_eq!(
        app.put(&auth, "personal-files/%20spaced%20", "x").await,
        StatusCode::CREATED
    );
    let deleted = mallory
        .submit(
            "/files/personal-files/",
            "/files/personal-files/",
            &[("action", "delete"), ("name", " spaced ")],
        )
        .await;
    assert_eq!(deleted.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.stat(&auth, "personal-files/ spaced ").await.0,
        StatusCode::NOT_FOUND
    );
    app.stop().await;
}

async fn sign_out_and_shared_session(db: Db) {
    let app = TestApp::spawn(db).await;
    let admin = Page::sign_in(&app, ADMIN, ADMIN_PASSWORD).await;

    // The console's session is the OpenID provider's: authorize skips the login page.
    let authorize = format!(
        "/oidc/oauth2/auth?response_type=code&client_id=cells-client&redirect_uri={}&state=s",
        urlencode(&format!("{}/oauth2/oob", app.base))
    );
    // cells-client is one of Cells' public apps: consent is asked every time, naming where
    // the code goes.
    let response = admin.client.get(app.url(&authorize)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let next = crate::oidc::allow(&app, &admin.client, response).await;
    assert!(next.contains("/oauth2/oob?code="), "signed in already: {next}");

    let forged = admin.forge("/logout", &[]).await;
    assert_eq!(
        forged.status(),
        StatusCode::FORBIDDEN,
        "no sign-out from another site"
    );
    let (status, _) = admin.get("/files/").await;
    assert_eq!(status, StatusCode::OK);
    let out = admin.submit("/files/", "/logout", &[]).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&out), "/login");
    let response = admin.client.get(app.url("/files/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    app.stop().await;
}

/// "SSH keys": a user adds a key by pasting its line, sees only their own keys, and removes
/// one after a confirmation; a forged form changes nothing.
async fn ssh_keys_page(db: Db) {
    use russh::keys::PrivateKey;
    use russh::keys::ssh_key::private::Ed25519Keypair;
    let app = TestApp::spawn(db).await;
    app.create_user("carol", "carol-password", "standard").await;
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&[9; 32]));
    let mut public = key.public_key().clone();
    public.set_comment("carol@laptop");
    let line = public.to_openssh().unwrap();
    let fingerprint = key
        .public_key()
        .fingerprint(russh::keys::HashAlg::Sha256)
        .to_string();

    let carol = Page::sign_in(&app, "carol", "carol-password").await;
    let forged = carol.forge("/keys", &[("key", &line)]).await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let bad = carol
        .submit("/keys", "/keys", &[("key", "ssh-rsa not-a-key")])
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let added = carol.submit("/keys", "/keys", &[("key", &line)]).await;
    assert_eq!(added.status(), StatusCode::SEE_OTHER);
    let (_, page) = carol.get("/keys").await;
    assert!(
        page.contains(&fingerprint) && page.contains("carol@laptop"),
        "{page}"
    );
    let listed = app.cli_ok(&["admin", "user", "list-keys", "-u", "carol"]);
    assert!(listed.contains(&fingerprint));

    let admin = Page::sign_in(&app, ADMIN, ADMIN_PASSWORD).await;
    let (_, theirs) = admin.get("/keys").await;
    assert!(!theirs.contains(&fingerprint), "each user sees their own keys");

    let confirm = format!("/keys/remove?fingerprint={}", urlencode(&fingerprint));
    let (status, html) = carol.get(&confirm).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Remove the key"));
    let removed = carol
        .submit(&confirm, "/keys/remove", &[("fingerprint", &fingerprint)])
        .await;
    assert_eq!(removed.status(), StatusCode::SEE_OTHER);
    let listed = app.cli_ok(&["admin", "user", "list-keys", "-u", "carol"]);
    assert!(!listed.contains(&fingerprint));
    app.stop().await;
}

/// The console as an access-matrix driver: a signed-in browser (full rights of its user, so
/// no scoped role) using the file browser's pages and forms.
struct ConsoleDriver {
    page: Page,
    csrf: String,
}

impl ConsoleDriver {
    async fn new(app: &TestApp, login: &str, password: &str) -> ConsoleDriver {
        let page = Page::sign_in(app, login, password).await;
        let (_, html) = page.get("/files/").await;
        ConsoleDriver {
            csrf: hidden(&html, "csrf"),
            page,
        }
    }

    fn url(path: &str, folder: bool) -> String {
        let mut out = "/files/".to_string();
        let names: Vec<String> = path.split('/').filter(|n| !n.is_empty()).map(urlencode).collect();
        out.push_str(&names.join("/"));
        if folder && !names.is_empty() {
            out.push('/');
        }
        out
    }

    /// `path`'s folder and name.
    fn split(path: &str) -> (&str, &str) {
        path.rsplit_once('/').unwrap_or(("", path))
    }

    async fn act(&self, folder: &str, fields: &[(&str, &str)]) -> Outcome {
        let mut form = vec![("csrf", self.csrf.as_str())];
        form.extend_from_slice(fields);
        let response = self
            .page
            .client
            .post(format!("{}{}", self.page.base, ConsoleDriver::url(folder, true)))
            .form(&form)
            .send()
            .await
            .unwrap();
        match response.status() {
            StatusCode::SEE_OTHER => Outcome::Done,
            other => Outcome::of_status(other),
        }
    }
}

impl Driver for ConsoleDriver {
    async fn list(&self, path: &str) -> Result<Vec<String>, Outcome> {
        let (status, html) = self.page.get(&ConsoleDriver::url(path, true)).await;
        if status != StatusCode::OK {
            return Err(Outcome::of_status(status));
        }
        Ok(html
            .split("<td class=\"name\">")
            .skip(1)
            .filter_map(|row| row.split("</span>").nth(1)?.split('<').next())
            .map(str::to_string)
            .collect())
    }
    async fn read(&self, path: &str) -> Outcome {
        Outcome::of_status(self.page.get(&ConsoleDriver::url(path, false)).await.0)
    }
    async fn write(&self, path: &str, content: &[u8]) -> Outcome {
        let (folder, name) = ConsoleDriver::split(path);
        let form = Form::new()
            .text("csrf", self.csrf.clone())
            .part("file", Part::bytes(content.to_vec()).file_name(name.to_string()));
        let response = self
            .page
            .client
            .post(format!("{}{}", self.page.base, ConsoleDriver::url(folder, true)))
            .multipart(form)
            .send()
            .await
            .unwrap();
        Outcome::of_status(response.status())
    }
    async fn mkdir(&self, path: &str) -> Outcome {
        let (folder, name) = ConsoleDriver::split(path);
        self.act(folder, &[("action", "mkdir"), ("name", name)]).await
    }
    async fn delete(&self, path: &str) -> Outcome {
        let (folder, name) = ConsoleDriver::split(path);
        self.act(folder, &[("action", "delete"), ("name", name)]).await
    }
    async fn rename(&self, from: &str, to: &str) -> Outcome {
        let ((folder, name), (to_folder, new_name)) = (ConsoleDriver::split(from), ConsoleDriver::split(to));
        if folder != to_folder {
            return Outcome::Unsupported;
        }
        self.act(
            folder,
            &[("action", "rename"), ("name", name), ("new_name", new_name)],
        )
        .await
    }
    async fn copy(&self, _: &str, _: &str) -> Outcome {
        Outcome::Unsupported
    }
}

/// The workspace roles through the console (all but the scoped token's: a browser signs in
/// with the password).
async fn console_workspace_access_matrix(db: Db) {
    let app = TestApp::spawn(db).await;
    let token = access_matrix::workspace_app(&app).await;
    let secrets = access_matrix::role_secrets(&app, &token, false);
    let (before, after): (Vec<_>, Vec<_>) = secrets
        .into_iter()
        .filter(|(role, _)| *role != Role::ScopedMember)
        .partition(|(role, _)| matches!(role, Role::Reader | Role::Outsider));
    let driver = async |login: &str, secret: &str| ConsoleDriver::new(&app, login, secret).await;
    access_matrix::run_roles("console", &before, driver).await;
    // What the scoped token's role writes in the other protocols' runs, before the others look.
    let member = Auth::basic("member", access_matrix::PASSWORD);
    assert_eq!(app.put(&member, "team/a/t.txt", "t").await, StatusCode::CREATED);
    access_matrix::run_roles("console", &after, driver).await;
}
