//! Attacks from the security review (issue 28), one per test: each reproduces a finding as an
//! outsider would and checks that it fails.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::backend_tests;
use crate::harness::{ADMIN, ADMIN_PASSWORD, Auth, Db, TestApp};
use crate::oidc::{browser, location, login_through, query_param, token};

backend_tests!(
    deep_xml_is_refused_and_the_server_stays_up,
    user_content_never_runs_on_our_origin,
    logout_needs_the_browsers_own_session,
    public_apps_ask_consent_every_time,
    codes_and_refresh_tokens_resist_the_wrong_client,
    device_codes_are_rate_limited,
    presigned_urls_live_at_most_a_week,
    a_token_under_another_login_leaves_no_trace,
    dav_locks_are_bounded_and_private,
    overlapping_ranges_are_not_amplified,
    slow_and_idle_connections_are_closed,
    sftp_connections_are_capped_and_timed,
    files_cannot_outgrow_the_size_limit,
    open_multipart_uploads_are_capped_per_user,
    a_new_password_ends_sessions_and_grants,
    generated_garbage_never_crashes,
    a_dropped_attempt_never_locks_for_good,
    parallel_logins_share_one_verification,
);

fn method(name: &str) -> Method {
    Method::from_bytes(name.as_bytes()).unwrap()
}

/// Finding 1: a PROPFIND, PROPPATCH or LOCK body of 2,000 nested elements (14 KB), sent with a
/// read-only folder-scoped token, overflowed a worker's stack and aborted the process. Now each
/// gets 400 and the server answers the next request; so do deep S3 XML bodies.
async fn deep_xml_is_refused_and_the_server_stays_up(db: Db) {
    let app = TestApp::spawn(db).await;
    assert_eq!(
        app.mkdir(&Auth::admin(), "personal-files/docs").await,
        StatusCode::OK
    );
    let docs = app.uuid(&Auth::admin(), "personal-files/docs").await;
    let read_only = app.token(ADMIN, &["-e", "1h", "-s", &format!("node:{docs}:r")]);
    let auth = Auth::basic(ADMIN, &read_only);
    // LOCK needs write access (a read-only token is refused before its body is read).
    let writer = Auth::basic(
        ADMIN,
        &app.token(ADMIN, &["-e", "1h", "-s", &format!("node:{docs}:rw")]),
    );
    let deep = |outer: &str, inner: &str| {
        format!(
            "<?xml version=\"1.0\"?><{outer} xmlns=\"DAV:\"><{inner}>{}{}</{inner}></{outer}>",
            "<a>".repeat(2000),
            "</a>".repeat(2000)
        )
    };
    for (verb, body) in [
        ("PROPFIND", deep("propfind", "prop")),
        ("PROPPATCH", deep("propertyupdate", "set")),
        ("LOCK", deep("lockinfo", "owner")),
    ] {
        let who = if verb == "LOCK" { &writer } else { &auth };
        let response = app
            .request(method(verb), "/dav/personal-files/docs/", who)
            .header("Depth", "0")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{verb}");
        let text = response.text().await.unwrap();
        assert!(text.contains("nested deeper"), "{verb}: {text}");
    }
    // A document type declaration (an entity bomb's carrier) is refused the same way.
    let bomb = "<!DOCTYPE p [<!ENTITY a \"aaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]><propfind xmlns=\"DAV:\"><prop>&b;</prop></propfind>";
    let response = app
        .request(method("PROPFIND"), "/dav/personal-files/docs/", &auth)
        .header("Depth", "0")
        .body(bomb)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // S3 bodies: s3s reads them with a size limit into fixed types and skips unknown elements
    // without recursion, so a deep DeleteObjects body is answered, never a crash.
    let s3_token = app.token(ADMIN, &["-e", "1h"]);
    let delete = format!(
        "<Delete>{}{}<Object><Key>personal-files/no-such-file</Key></Object></Delete>",
        "<x>".repeat(5000),
        "</x>".repeat(5000)
    );
    let (status, text) = crate::s3::signed(
        &app,
        &s3_token,
        crate::s3::GATEWAY_SECRET,
        "POST",
        "/io",
        "delete=",
        &[],
        delete.as_bytes(),
    )
    .await;
    assert!(!status.is_server_error(), "deep DeleteObjects: {status} {text}");

    // Still up, and the folder is still there.
    let response = app
        .request(method("PROPFIND"), "/dav/personal-files/docs/", &auth)
        .header("Depth", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::MULTI_STATUS);
}

/// The headers of a response that carries user content: sandboxed, not sniffed, and saved
/// rather than shown when its type is active.
fn assert_inert(headers: &reqwest::header::HeaderMap, what: &str) {
    let csp = headers
        .get("content-security-policy")
        .map(|v| v.to_str().unwrap());
    assert!(
        csp.is_some_and(|csp| csp.starts_with("sandbox")),
        "{what}: CSP {csp:?}"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
    let disposition = headers.get("content-disposition").map(|v| v.to_str().unwrap());
    assert!(
        disposition.is_some_and(|d| d.starts_with("attachment")),
        "{what}: disposition {disposition:?}"
    );
}

/// Finding 2: an uploaded HTML or SVG file was served inline on the console's origin (S3 with
/// the stored type or a `response-content-type` override, WebDAV by extension), where its
/// script could read the console's CSRF token and mint tokens. Now every protocol serves it
/// sandboxed and as an attachment; overrides are served, not refused.
async fn user_content_never_runs_on_our_origin(db: Db) {
    let app = TestApp::spawn(db).await;
    let token = app.token(ADMIN, &["-e", "1h"]);
    let page = b"<html><script>fetch('/tokens')</script></html>";
    let (status, _) = crate::s3::signed(
        &app,
        &token,
        crate::s3::GATEWAY_SECRET,
        "PUT",
        "/io/personal-files/x.html",
        "",
        &[("content-type", "text/html")],
        page,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let svg = b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>";
    assert_eq!(
        app.put(&Auth::admin(), "personal-files/x.svg", &svg[..]).await,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put(&Auth::admin(), "personal-files/x.txt", &b"plain"[..])
            .await,
        StatusCode::CREATED
    );

    let response = crate::s3::signed_response(
        &app,
        &token,
        crate::s3::GATEWAY_SECRET,
        "GET",
        "/io/personal-files/x.html",
        "",
        &[],
        b"",
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_inert(response.headers(), "S3 GET of a stored text/html");
    // A presigned-style override asking for an inline page is served, inert.
    let response = crate::s3::signed_response(
        &app,
        &token,
        crate::s3::GATEWAY_SECRET,
        "GET",
        "/io/personal-files/x.txt",
        "response-content-disposition=inline&response-content-type=text%2Fhtml",
        &[],
        b"",
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/html");
    assert_inert(response.headers(), "S3 GET with response-content-type=text/html");
    assert_eq!(response.bytes().await.unwrap(), &b"plain"[..]);

    let dav = Auth::basic(ADMIN, &token);
    for name in ["x.html", "x.svg"] {
        let response = app
            .request(Method::GET, &format!("/dav/personal-files/{name}"), &dav)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_inert(response.headers(), &format!("WebDAV GET {name}"));
    }
    let response = app
        .request(Method::GET, "/a/content/personal-files/x.svg", &Auth::admin())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let csp = response.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("sandbox"), "REST download: {csp}");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    // A plain text file is still shown inline over WebDAV, sandboxed.
    let response = app
        .request(Method::GET, "/dav/personal-files/x.txt", &dav)
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("content-disposition").is_none());
    assert!(response.headers().contains_key("content-security-policy"));
}

/// An ID token (and access token) for `login` through the confidential test client `rp`, in
/// `browser`'s session.
async fn rp_tokens(
    app: &TestApp,
    browser: &reqwest::Client,
    login: &str,
    password: &str,
) -> (String, String) {
    let url = format!(
        "{}/oidc/oauth2/auth?response_type=code&client_id=rp&redirect_uri={}/rp/callback&scope=openid&state=st",
        app.base, app.base
    );
    let redirect = login_through(app, browser, &url, login, password).await;
    let code = query_param(&redirect, "code").expect("a code");
    let callback = format!("{}/rp/callback", app.base);
    let (status, tokens) = token(
        app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &callback),
        ],
        Some(("rp", "rp-secret-value")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    (
        tokens["id_token"].as_str().unwrap().to_string(),
        tokens["access_token"].as_str().unwrap().to_string(),
    )
}

/// Finding 4: any page could end a victim's browser session (and revoke its grants) with a GET
/// carrying an ID token of the attacker's own. A hint that names another session now gets the
/// confirmation page, and changes nothing.
async fn logout_needs_the_browsers_own_session(db: Db) {
    let app = TestApp::spawn_with_config(db, crate::oidc::config).await;
    app.create_user("mallory", "mallory-password", "standard").await;
    let victim = browser();
    let (victim_id_token, victim_access) = rp_tokens(&app, &victim, ADMIN, ADMIN_PASSWORD).await;
    let (attacker_id_token, _) = rp_tokens(&app, &browser(), "mallory", "mallory-password").await;
    let bye = format!("{}/rp/bye", app.base);
    let forged = victim
        .get(app.url("/oidc/oauth2/sessions/logout"))
        .query(&[
            ("id_token_hint", attacker_id_token.as_str()),
            ("post_logout_redirect_uri", bye.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::OK);
    assert!(forged.text().await.unwrap().contains("Sign out?"));
    app.app.auth.settle().await;
    assert_eq!(
        app.get("/a/config/ctl", &Auth::bearer(&victim_access)).await.0,
        StatusCode::OK,
        "the victim's grant survives"
    );
    let url = format!(
        "{}/oidc/oauth2/auth?response_type=code&client_id=rp&redirect_uri={}/rp/callback&scope=openid",
        app.base, app.base
    );
    let still = victim.get(&url).send().await.unwrap();
    assert!(
        location(&still).contains("code="),
        "the victim is still signed in"
    );
    // The victim's own hint signs out at once.
    let own = victim
        .get(app.url("/oidc/oauth2/sessions/logout"))
        .query(&[
            ("id_token_hint", victim_id_token.as_str()),
            ("post_logout_redirect_uri", bye.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.get("/a/config/ctl", &Auth::bearer(&victim_access)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// Finding 7: with a signed-in browser, any page could send it to Cells' public apps'
/// authorization with `prompt=none` and have a code, redeemable without PKCE, delivered to
/// whatever listens on that localhost port or custom scheme. Now those apps always ask.
async fn public_apps_ask_consent_every_time(db: Db) {
    let app = TestApp::spawn(db).await;
    let browser = crate::console::Page::sign_in(&app, ADMIN, ADMIN_PASSWORD)
        .await
        .client;
    for (client, redirect) in [
        ("cells-mobile", "cellsauth://callback".to_string()),
        ("cells-sync", "http://localhost:3650".to_string()),
        ("cells-client", "http://localhost:3636".to_string()),
    ] {
        let query = serde_urlencoded::to_string([
            ("client_id", client),
            ("redirect_uri", redirect.as_str()),
            ("response_type", "code"),
            ("scope", "openid offline"),
        ])
        .unwrap();
        let silent = browser
            .get(app.url(&format!("/oidc/oauth2/auth?{query}&prompt=none")))
            .send()
            .await
            .unwrap();
        assert_eq!(silent.status(), StatusCode::SEE_OTHER, "{client}");
        let to = location(&silent);
        assert!(
            to.starts_with(&redirect) && to.contains("error=consent_required"),
            "{client}: {to}"
        );
        assert!(!to.contains("code="), "{client}: {to}");
        for round in 0..2 {
            let asked = browser
                .get(app.url(&format!("/oidc/oauth2/auth?{query}")))
                .send()
                .await
                .unwrap();
            assert_eq!(asked.status(), StatusCode::OK, "{client}, round {round}");
            let html = asked.text().await.unwrap();
            assert!(
                html.contains("Allow access") && html.contains(&redirect),
                "{client}: {html}"
            );
            if round == 0 {
                let form = [
                    ("login_challenge", crate::oidc::hidden(&html, "login_challenge")),
                    ("csrf", crate::oidc::hidden(&html, "csrf")),
                    ("decision", "allow".to_string()),
                ];
                let allowed = browser
                    .post(app.url("/oauth2/consent"))
                    .form(&form)
                    .send()
                    .await
                    .unwrap();
                assert!(location(&allowed).contains("code="), "{client}");
            }
        }
    }
}

/// Finding 13: a code or refresh token presented by the wrong client was spent (and its replay
/// then revoked the rightful client's grant), and for 5 s after a rotation the old refresh
/// token minted any number of new, independent ones.
async fn codes_and_refresh_tokens_resist_the_wrong_client(db: Db) {
    let app = TestApp::spawn_with_config(db, crate::oidc::config).await;
    let browser = browser();
    let url = format!(
        "{}/oidc/oauth2/auth?response_type=code&client_id=cells-curl&redirect_uri={}/oauth2/oob&scope=openid%20offline",
        app.base, app.base
    );
    let redirect = login_through(&app, &browser, &url, ADMIN, ADMIN_PASSWORD).await;
    let code = query_param(&redirect, "code").unwrap();
    let oob = format!("{}/oauth2/oob", app.base);
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", oob.as_str()),
    ];
    // Another client, then a wrong redirect URI: refused, and the code is not spent.
    let (status, body) = token(&app, &form, Some(("rp", "rp-secret-value"))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let wrong_uri = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "http://127.0.0.1:9/elsewhere"),
    ];
    let (status, _) = token(&app, &wrong_uri, Some(("cells-curl", "password"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, tokens) = token(&app, &form, Some(("cells-curl", "password"))).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the rightful client still redeems it: {tokens}"
    );
    let first = tokens["refresh_token"].as_str().unwrap().to_string();
    let access = tokens["access_token"].as_str().unwrap().to_string();

    // The refresh token presented by another client: refused, not rotated, no revocation.
    let (status, _) = refresh(&app, &first, Some(("rp", "rp-secret-value"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, rotated) = refresh(&app, &first, Some(("cells-curl", "password"))).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let second = rotated["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(second, first);
    // Retries within the grace get that same successor, never a new branch.
    for _ in 0..3 {
        let (status, again) = refresh(&app, &first, Some(("cells-curl", "password"))).await;
        assert_eq!(status, StatusCode::OK, "{again}");
        assert_eq!(again["refresh_token"].as_str(), Some(second.as_str()));
    }
    // The successor works; once it is used, the first token is a reuse and ends the grant.
    let (status, third) = refresh(&app, &second, Some(("cells-curl", "password"))).await;
    assert_eq!(status, StatusCode::OK, "{third}");
    let (status, _) = refresh(&app, &first, Some(("cells-curl", "password"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    app.app.auth.settle().await;
    assert_eq!(
        app.get("/a/config/ctl", &Auth::bearer(&access)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// Finding 14: `GET /oauth2/device?user_code=` told valid codes apart without throttling, and
/// device authorization could fill the database (1,000 rows in 2.8 s).
async fn device_codes_are_rate_limited(db: Db) {
    let app = TestApp::spawn(db).await;
    let mut statuses = Vec::new();
    for _ in 0..30 {
        let response = app
            .http
            .post(app.url("/oidc/oauth2/device/auth"))
            .form(&[("client_id", "cells-client"), ("scope", "openid")])
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        statuses.push((status, body["error"].as_str().map(str::to_string)));
    }
    assert!(
        statuses[..20].iter().all(|(s, _)| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(
        statuses.last().unwrap(),
        &(StatusCode::TOO_MANY_REQUESTS, Some("slow_down".to_string()))
    );
    let guesser = app.client_from("127.0.0.6");
    let mut last = StatusCode::OK;
    for i in 0..25 {
        last = guesser
            .get(app.url(&format!("/oauth2/device?user_code=BCDF-GH{:02}", i)))
            .send()
            .await
            .unwrap()
            .status();
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
}

/// Finding 16: presigned URLs were accepted with any `X-Amz-Expires` (10 years worked); AWS
/// refuses more than 7 days.
async fn presigned_urls_live_at_most_a_week(db: Db) {
    use object_store::signer::Signer;
    let app = TestApp::spawn(db).await;
    let token = app.token(ADMIN, &["-e", "1h"]);
    assert_eq!(
        app.put(&Auth::admin(), "personal-files/p.txt", &b"p"[..]).await,
        StatusCode::CREATED
    );
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&app.base)
        .with_allow_http(true)
        .with_bucket_name("io")
        .with_region("us-east-1")
        .with_access_key_id(&token)
        .with_secret_access_key("gatewaysecret")
        .with_virtual_hosted_style_request(false)
        .build()
        .unwrap();
    let path = object_store::path::Path::from("personal-files/p.txt");
    let week = Duration::from_secs(7 * 24 * 3600);
    let ok = store
        .signed_url(object_store::signer::Method::GET, &path, week)
        .await
        .unwrap();
    assert_eq!(
        app.http.get(ok.as_str()).send().await.unwrap().status(),
        StatusCode::OK
    );
    let long = store
        .signed_url(
            object_store::signer::Method::GET,
            &path,
            week + Duration::from_secs(1),
        )
        .await
        .unwrap();
    let response = app.http.get(long.as_str()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("AuthorizationQueryParametersError")
    );
}

/// Finding 12: a token presented under the wrong login was refused but still slid its expiry
/// and was recorded as used.
async fn a_token_under_another_login_leaves_no_trace(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_user("alice", "alice-password", "standard").await;
    app.create_user("bob", "bob-password-1", "standard").await;
    let token = app.token("alice", &["-a", "1h"]);
    let (status, _) = app.stat(&Auth::basic("bob", &token), "personal-files").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.app.auth.flush_usage(true).await;
    let alice = app
        .app
        .store()
        .find_user_by_login("alice")
        .await
        .unwrap()
        .unwrap();
    let tokens = app.app.store().list_tokens(Some(alice.id)).await.unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].last_used_at, None, "not recorded as used");
    // Under its own login it works and is recorded.
    assert_eq!(
        app.stat(&Auth::basic("alice", &token), "personal-files").await.0,
        StatusCode::OK
    );
    app.app.auth.flush_usage(true).await;
    let tokens = app.app.store().list_tokens(Some(alice.id)).await.unwrap();
    assert!(tokens[0].last_used_at.is_some());
}

fn dav(verb: &str) -> Method {
    Method::from_bytes(verb.as_bytes()).unwrap()
}

/// A LOCK of `path` as `who`, with `headers` and an exclusive write lockinfo body.
async fn lock(app: &TestApp, path: &str, who: &Auth, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app.request(dav("LOCK"), path, who).body(LOCKINFO);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// The token a LOCK answer grants (its `Lock-Token` header, brackets removed).
fn lock_token(response: &reqwest::Response) -> String {
    response.headers()["lock-token"]
        .to_str()
        .unwrap()
        .trim_matches(['<', '>'])
        .to_string()
}

const LOCKINFO: &str = "<?xml version=\"1.0\"?><D:lockinfo xmlns:D=\"DAV:\"><D:lockscope><D:exclusive/></D:lockscope>\
    <D:locktype><D:write/></D:locktype><D:owner>me</D:owner></D:lockinfo>";

/// Finding 9: a LOCK without `Timeout` never expired, one user could lock all of
/// `common-files`, and anyone could read another's lock token in `lockdiscovery` and UNLOCK it.
async fn dav_locks_are_bounded_and_private(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_user("alice", "alice-password", "standard").await;
    app.create_user("bob", "bob-password-1", "standard").await;
    let alice = Auth::basic("alice", "alice-password");
    let bob = Auth::basic("bob", "bob-password-1");
    assert_eq!(
        app.put(&bob, "common-files/shared.txt", &b"x"[..]).await,
        StatusCode::CREATED
    );
    assert_eq!(app.mkdir(&bob, "common-files/team").await, StatusCode::OK);

    // No Timeout: granted for 10 minutes, not forever.
    let response = lock(&app, "/dav/common-files/shared.txt", &bob, &[("Depth", "0")]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let token = lock_token(&response);
    assert!(response.text().await.unwrap().contains("Second-600"));

    // alice sees that it is locked, not the token.
    let found = app
        .request(dav("PROPFIND"), "/dav/common-files/shared.txt", &alice)
        .header("Depth", "0")
        .body("<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\"><D:prop><D:lockdiscovery/></D:prop></D:propfind>")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(found.contains("activelock") && !found.contains(&token), "{found}");
    // Her UNLOCK with bob's token is refused; her write with it too.
    let unlock = |who: &Auth| {
        app.request(dav("UNLOCK"), "/dav/common-files/shared.txt", who)
            .header("Lock-Token", format!("<{token}>"))
            .send()
    };
    assert_eq!(unlock(&alice).await.unwrap().status(), StatusCode::CONFLICT);
    let write = app
        .request(Method::PUT, "/dav/common-files/shared.txt", &alice)
        .header("If", format!("(<{token}>)"))
        .body("mine")
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), StatusCode::LOCKED);
    // An administrator breaks it, over WebDAV or with the CLI.
    assert_eq!(
        unlock(&Auth::admin()).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    let relocked = lock(&app, "/dav/common-files/shared.txt", &bob, &[("Depth", "0")]).await;
    assert_eq!(relocked.status(), StatusCode::OK);
    let second = lock_token(&relocked);
    let listed = app.cli_ok(&["admin", "lock", "list", "-u", "bob"]);
    assert!(
        listed.contains(&second) && listed.contains("/common-files/shared.txt"),
        "{listed}"
    );
    app.cli_ok(&["admin", "lock", "break", &second]);
    assert!(!app.cli_ok(&["admin", "lock", "list"]).contains(&second));
    let write = app
        .request(Method::PUT, "/dav/common-files/shared.txt", &alice)
        .body("alice's")
        .send()
        .await
        .unwrap();
    assert!(write.status().is_success(), "unlocked: {}", write.status());
    // In the console, bob sees and breaks his own lock; alice sees none of his.
    let third = lock(&app, "/dav/common-files/shared.txt", &bob, &[("Depth", "0")]).await;
    assert_eq!(third.status(), StatusCode::OK);
    let (_, page) = crate::console::Page::sign_in(&app, "alice", "alice-password")
        .await
        .get("/locks")
        .await;
    assert!(!page.contains("shared.txt"), "{page}");
    let bob_console = crate::console::Page::sign_in(&app, "bob", "bob-password-1").await;
    let (status, page) = bob_console.get("/locks").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("/common-files/shared.txt"), "{page}");
    let token = crate::oidc::hidden(&page, "token");
    let broken = bob_console
        .submit("/locks", "/locks/break", &[("token", &token)])
        .await;
    assert_eq!(broken.status(), StatusCode::SEE_OTHER);
    assert!(
        app.cli_ok(&["admin", "lock", "list"]).lines().count() <= 1,
        "only the header line"
    );

    // Locks on a workspace root or a shared folder are for administrators.
    for target in [
        "/dav/common-files/",
        "/dav/personal-files/",
        "/dav/common-files/team/",
    ] {
        let response = app
            .request(dav("LOCK"), target, &alice)
            .body(LOCKINFO)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{target}");
        // Nor by a Depth dav-server would read as infinity, or a chunked body posing as a
        // refresh (an If header and no Content-Length).
        let bogus = app
            .request(dav("LOCK"), target, &alice)
            .header("Depth", "bogus")
            .body(LOCKINFO)
            .send()
            .await
            .unwrap();
        assert_eq!(bogus.status(), StatusCode::FORBIDDEN, "Depth: bogus on {target}");
        let chunks = futures_util::stream::iter([Ok::<_, std::io::Error>(LOCKINFO.as_bytes().to_vec())]);
        let chunked = app
            .request(dav("LOCK"), target, &alice)
            .header("If", "(Not <DAV:no-lock>)")
            .body(reqwest::Body::wrap_stream(chunks))
            .send()
            .await
            .unwrap();
        assert_eq!(
            chunked.status(),
            StatusCode::FORBIDDEN,
            "a chunked LOCK on {target}"
        );
        // Nor a Depth 0 one: a lock on a folder protects its members' names on every
        // protocol (issue 31), so it too would shut everyone else out.
        let shallow = lock(&app, target, &alice, &[("Depth", "0")]).await;
        assert_eq!(shallow.status(), StatusCode::FORBIDDEN, "Depth: 0 on {target}");
    }
    let response = app
        .request(dav("LOCK"), "/dav/common-files/team/", &Auth::admin())
        .header("Timeout", "Second-4294967296")
        .body(LOCKINFO)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("Second-600"));

    // At most 100 live locks per user.
    assert_eq!(app.mkdir(&alice, "personal-files/many").await, StatusCode::OK);
    let mut statuses = Vec::new();
    for i in 0..101 {
        let response = lock(
            &app,
            &format!("/dav/personal-files/many/f{i}"),
            &alice,
            &[("Depth", "0")],
        )
        .await;
        statuses.push(response.status());
    }
    assert!(statuses[..100].iter().all(|s| s.is_success()), "{statuses:?}");
    assert_eq!(statuses[100], StatusCode::LOCKED);
}

/// Finding 10: a GET with 1,000 overlapping ranges of a 1 MB file sent 1 GB.
async fn overlapping_ranges_are_not_amplified(db: Db) {
    let app = TestApp::spawn(db).await;
    let content = vec![7u8; 1_000_000];
    assert_eq!(
        app.put(&Auth::admin(), "personal-files/big.bin", content.clone())
            .await,
        StatusCode::CREATED
    );
    let ranges = format!("bytes={}", vec!["0-999999"; 1000].join(","));
    let token = app.token(ADMIN, &["-e", "1h"]);
    let response = app
        .request(
            Method::GET,
            "/dav/personal-files/big.bin",
            &Auth::basic(ADMIN, &token),
        )
        .header("Range", ranges)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let body = response.bytes().await.unwrap();
    assert!(body.len() <= content.len() + 4096, "{} bytes sent", body.len());
    // Overlapping ranges are merged into one.
    let response = app
        .request(
            Method::GET,
            "/dav/personal-files/big.bin",
            &Auth::basic(ADMIN, &token),
        )
        .header("Range", "bytes=0-99,50-149,100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(response.bytes().await.unwrap().len(), 200);
}

/// Finding 15: slow and silent connections were held forever. Here with short limits: a
/// request head that trickles, and an idle keep-alive connection, are closed; past the
/// per-address cap a connection gets 503, except for `/healthz`.
async fn slow_and_idle_connections_are_closed(db: Db) {
    let app = TestApp::spawn_with_limits(db, |limits| {
        limits.http_header_timeout = Duration::from_secs(1);
        limits.http_idle_timeout = Duration::from_secs(1);
        limits.http_connections_per_address = 3;
    })
    .await;
    let address = app.base.trim_start_matches("http://").to_string();
    let closed_within = |mut stream: tokio::net::TcpStream, limit: Duration| async move {
        let mut buffer = Vec::new();
        tokio::time::timeout(limit, stream.read_to_end(&mut buffer))
            .await
            .is_ok()
    };
    // A head that never ends.
    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(
        closed_within(slow, Duration::from_secs(5)).await,
        "a trickling head is cut"
    );
    // A keep-alive connection left idle after its answer.
    let mut idle = tokio::net::TcpStream::connect(&address).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    assert!(
        closed_within(idle, Duration::from_secs(5)).await,
        "an idle connection is closed"
    );

    // Three open connections from this address; the fourth is refused, /healthz excepted.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tokio::net::TcpStream::connect(&address).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let over = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let refused = over.get(app.url("/a/config/ctl")).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let health = over.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    // Another address is not affected.
    let other = app.client_from("127.0.0.7");
    assert_eq!(
        other
            .get(app.url("/a/config/ctl"))
            .basic_auth(ADMIN, Some(ADMIN_PASSWORD))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    drop(held);
}

/// Finding 15 and 5 over SFTP: a connection that does not authenticate is closed after the
/// authentication timeout, and one address holds at most its share of connections.
async fn sftp_connections_are_capped_and_timed(db: Db) {
    let app = TestApp::spawn_with_limits(db, |limits| {
        limits.sftp_auth_timeout = Duration::from_secs(1);
        limits.sftp_connections_per_address = 2;
    })
    .await;
    let silent = tokio::net::TcpStream::connect(app.sftp).await.unwrap();
    let mut buffer = Vec::new();
    let mut silent = silent;
    let closed = tokio::time::timeout(Duration::from_secs(5), silent.read_to_end(&mut buffer)).await;
    assert!(closed.is_ok(), "an unauthenticated connection is closed");
    assert!(buffer.starts_with(b"SSH-2.0-"), "it got the banner first");

    let _one = tokio::net::TcpStream::connect(app.sftp).await.unwrap();
    let _two = tokio::net::TcpStream::connect(app.sftp).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = tokio::net::TcpStream::connect(app.sftp).await.unwrap();
    let mut buffer = Vec::new();
    let closed = tokio::time::timeout(Duration::from_millis(500), third.read_to_end(&mut buffer)).await;
    assert!(closed.is_ok() && buffer.is_empty(), "the third is closed at once");
}

async fn refresh(app: &TestApp, value: &str, basic: Option<(&str, &str)>) -> (StatusCode, serde_json::Value) {
    token(
        app,
        &[("grant_type", "refresh_token"), ("refresh_token", value)],
        basic,
    )
    .await
}

/// Finding 8: SFTP truncate made a 10 TiB sparse file (whose ETag then took hours to hash,
/// and whose copies wrote real zeros). Every way of making a file obeys `max-file-size`:
/// truncate and writes past the end over SFTP, streamed uploads, S3 multipart completion.
async fn files_cannot_outgrow_the_size_limit(db: Db) {
    use tokio::io::AsyncWriteExt as _;
    let limit = 1u64 << 20;
    let app = TestApp::spawn_with_limits(db, |limits| limits.max_file_size = limit).await;
    let token = app.token(ADMIN, &["-e", "1h"]);
    let session = crate::sftp::sftp(&app, ADMIN, &token).await.unwrap();
    session
        .put("/personal-files/sparse.bin", b"0123456789")
        .await
        .unwrap();
    let mut huge = russh_sftp::protocol::FileAttributes::empty();
    huge.size = Some(10 << 40);
    assert!(
        session
            .fs
            .set_metadata("/personal-files/sparse.bin", huge)
            .await
            .is_err()
    );
    let mut file = session.fs.create("/personal-files/far.bin").await.unwrap();
    let mut huge = russh_sftp::protocol::FileAttributes::empty();
    huge.size = Some(10 << 40);
    assert!(file.set_metadata(huge).await.is_err(), "FSETSTAT past the limit");
    file.write_all(b"ok").await.unwrap();
    file.close().await.unwrap();
    let (_, content) = app.read(&Auth::admin(), "personal-files/sparse.bin").await;
    assert_eq!(content, b"0123456789", "nothing changed");

    // A streamed upload one byte over the limit: 413, and nothing is left.
    let over = vec![1u8; limit as usize + 1];
    assert_eq!(
        app.put(&Auth::admin(), "personal-files/over.bin", over.clone())
            .await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(
        app.stat(&Auth::admin(), "personal-files/over.bin").await.0,
        StatusCode::NOT_FOUND
    );
    let exact = vec![1u8; limit as usize];
    assert_eq!(
        app.put(&Auth::admin(), "personal-files/exact.bin", exact).await,
        StatusCode::CREATED
    );
    let dav = app
        .request(
            Method::PUT,
            "/dav/personal-files/over-dav.bin",
            &Auth::basic(ADMIN, &token),
        )
        .body(over)
        .send()
        .await
        .unwrap();
    assert_eq!(dav.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        app.blob_files().await,
        1,
        "exact.bin alone: the refused bodies left no blob"
    );
}

/// In a data dir that already existed (so not made 0700 by us), files came out 0644 and
/// folders 0755 under the usual umask. Now everything the binary creates is owner-only.
#[test]
fn data_files_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 022 && exec {} admin user create -u umasked -p umasked-password --data {}",
            env!("CARGO_BIN_EXE_cells"),
            data.display()
        ))
        .env_remove("CELLS_DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut checked = 0;
    for entry in std::fs::read_dir(&data).unwrap().flatten() {
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        let wanted = if entry.path().is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode, wanted, "{} is {mode:o}", entry.path().display());
        checked += 1;
    }
    assert!(checked >= 2, "the database and the master key at least");
}

/// Also seen: no per-user cap on open multipart uploads (each holds rows and part blobs).
async fn open_multipart_uploads_are_capped_per_user(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_user("alice", "alice-password", "standard").await;
    let alice = app
        .app
        .store()
        .find_user_by_login("alice")
        .await
        .unwrap()
        .unwrap();
    let admin = app.app.store().find_user_by_login(ADMIN).await.unwrap().unwrap();
    for i in 0..3 {
        let key = format!("personal-files/{i}");
        assert!(
            app.app
                .store()
                .create_upload(alice.id, &key, None, 3)
                .await
                .unwrap()
                .is_some()
        );
    }
    assert!(
        app.app
            .store()
            .create_upload(alice.id, "personal-files/x", None, 3)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        app.app
            .store()
            .create_upload(admin.id, "personal-files/x", None, 3)
            .await
            .unwrap()
            .is_some()
    );
    // Over S3, the cap is the gateway's: a create answers with an upload id.
    let token = app.token("alice", &["-e", "1h"]);
    let (status, text) = crate::s3::signed(
        &app,
        &token,
        crate::s3::GATEWAY_SECRET,
        "POST",
        "/io/personal-files/big.bin",
        "uploads=",
        &[],
        b"",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
}

/// Also seen: a password change ended no browser session or OAuth grant, so whoever signed in
/// with the old password stayed in.
async fn a_new_password_ends_sessions_and_grants(db: Db) {
    let app = TestApp::spawn_with_config(db, crate::oidc::config).await;
    app.create_user("carol", "carol-password", "standard").await;
    let browser = browser();
    let (_, access) = rp_tokens(&app, &browser, "carol", "carol-password").await;
    let token = app.token("carol", &["-e", "1h"]);
    assert_eq!(
        app.stat(&Auth::bearer(&access), "personal-files").await.0,
        StatusCode::OK
    );
    app.cli_ok(&[
        "admin",
        "user",
        "set-password",
        "-u",
        "carol",
        "-p",
        "carol-new-password",
    ]);
    app.app.auth.settle().await;
    assert_eq!(
        app.stat(&Auth::bearer(&access), "personal-files").await.0,
        StatusCode::UNAUTHORIZED
    );
    let url = format!(
        "{}/oidc/oauth2/auth?response_type=code&client_id=rp&redirect_uri={}/rp/callback&scope=openid",
        app.base, app.base
    );
    let again = browser.get(&url).send().await.unwrap();
    assert!(
        location(&again).starts_with("/oauth2/login"),
        "the browser must sign in again"
    );
    // A personal access token is a credential of its own: it stays.
    assert_eq!(
        app.stat(&Auth::bearer(&token), "personal-files").await.0,
        StatusCode::OK
    );
}

/// A small deterministic generator (xorshift64*): the same cases on every run, so that a failure
/// reproduces.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Pieces picked from `pieces`, with random bytes between them now and then.
    fn text(&mut self, pieces: &[&str], max: usize) -> String {
        let mut out = String::new();
        for _ in 0..self.below(max + 1) {
            if self.below(6) == 0 {
                out.push(char::from(b' ' + self.below(95) as u8));
            } else {
                out.push_str(pieces[self.below(pieces.len())]);
            }
        }
        out
    }

    /// `text` with one character replaced.
    fn mutate(&mut self, text: &str) -> String {
        let mut chars: Vec<char> = text.chars().collect();
        if !chars.is_empty() {
            let at = self.below(chars.len());
            chars[at] = char::from(b'!' + self.below(90) as u8);
        }
        chars.into_iter().collect()
    }
}

/// The parsers that run on a request (JWT bearer tokens, SigV4 headers, WebDAV and S3 XML
/// bodies, the console's multipart uploads) fed generated garbage through a live server: every
/// answer is a 4xx or a success, never a 5xx, and the server answers `/healthz` after.
/// `CELLS_FUZZ_CASES` sets the number of rounds (default 120).
async fn generated_garbage_never_crashes(db: Db) {
    let app = TestApp::spawn(db).await;
    let rounds: usize = std::env::var("CELLS_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    let token = app.token(ADMIN, &["-e", "1h"]);
    let (_, session) = app
        .post(
            "/a/frontend/session",
            &Auth::None,
            serde_json::json!({"AuthInfo": {"type": "credentials", "login": ADMIN, "password": ADMIN_PASSWORD}}),
        )
        .await;
    let jwt = session["JWT"].as_str().expect("an access token").to_string();
    let console = crate::console::Page::sign_in(&app, ADMIN, ADMIN_PASSWORD).await;
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    // Many refused credentials from one address would soon be throttled (429, a fine answer
    // too): rotate the source address so that the parsers keep being reached.
    let clients: Vec<reqwest::Client> = (10..40)
        .map(|i| app.client_from(&format!("127.0.0.{i}")))
        .collect();
    let mut answers = std::collections::BTreeMap::new();
    for round in 0..rounds {
        let client = &clients[round % clients.len()];
        let mut statuses = Vec::new();
        // A bearer JWT: a real one with a character changed, or three random segments.
        let bearer = if noise.below(2) == 0 {
            noise.mutate(&jwt)
        } else {
            noise.text(&["eyJ", "hbGciOi", ".", "-", "_", "AAAA", "=", "fQ"], 40)
        };
        statuses.push(
            client
                .get(app.url("/a/config/ctl"))
                .bearer_auth(&bearer)
                .send()
                .await
                .unwrap()
                .status(),
        );
        // A SigV4 Authorization header.
        let sigv4 = format!(
            "AWS4-HMAC-SHA256 {}",
            noise.text(
                &[
                    "Credential=",
                    &token,
                    "/20261206",
                    "/us-east-1",
                    "/s3/aws4_request",
                    ",",
                    " SignedHeaders=host",
                    "Signature=",
                    "ab",
                    "=",
                    "/"
                ],
                12
            )
        );
        if let Ok(value) = reqwest::header::HeaderValue::from_str(&sigv4) {
            statuses.push(
                client
                    .get(app.url("/io/personal-files/"))
                    .header("authorization", value)
                    .header("x-amz-date", "20261206T000000Z")
                    .send()
                    .await
                    .unwrap()
                    .status(),
            );
        }
        // A WebDAV XML body.
        let xml = noise.text(
            &[
                "<?xml version=\"1.0\"?>",
                "<D:propfind xmlns:D=\"DAV:\">",
                "<D:prop>",
                "</D:prop>",
                "<D:getetag/>",
                "</D:propfind>",
                "<a>",
                "</a>",
                "<!--",
                "-->",
                "<![CDATA[",
                "]]>",
                "&amp;",
                "&x;",
                "xmlns:q=\"urn:q\"",
                "<q:x/>",
            ],
            30,
        );
        let verb = ["PROPFIND", "PROPPATCH", "LOCK"][noise.below(3)];
        statuses.push(
            client
                .request(dav(verb), app.url("/dav/personal-files/"))
                .basic_auth(ADMIN, Some(&token))
                .header("Depth", "0")
                .body(xml)
                .send()
                .await
                .unwrap()
                .status(),
        );
        // An S3 XML body, properly signed.
        let body = noise.text(
            &[
                "<CompleteMultipartUpload>",
                "</CompleteMultipartUpload>",
                "<Part>",
                "</Part>",
                "<PartNumber>",
                "1",
                "</PartNumber>",
                "<ETag>",
                "\"x\"",
                "</ETag>",
                "<Delete>",
                "<Object><Key>k</Key></Object>",
                "</Delete>",
            ],
            20,
        );
        let (path, query) = if noise.below(2) == 0 {
            (
                "/io/personal-files/x",
                "uploadId=00000000-0000-0000-0000-000000000000",
            )
        } else {
            ("/io", "delete=")
        };
        let (status, _) = crate::s3::signed(
            &app,
            &token,
            crate::s3::GATEWAY_SECRET,
            "POST",
            path,
            query,
            &[],
            body.as_bytes(),
        )
        .await;
        statuses.push(status);
        // A multipart upload form of the console.
        let boundary = "XyZ";
        let form = noise.text(
            &[
                "--XyZ\r\n",
                "Content-Disposition: form-data; name=\"csrf\"\r\n\r\n",
                "Content-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n",
                "\r\n",
                "data",
                "--XyZ--\r\n",
                "Content-Type: text/plain\r\n",
            ],
            16,
        );
        statuses.push(
            console
                .client
                .post(app.url("/files/personal-files/"))
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(form)
                .send()
                .await
                .unwrap()
                .status(),
        );
        for status in statuses {
            assert!(!status.is_server_error(), "round {round}: {status}");
            *answers.entry(status.as_u16()).or_insert(0) += 1;
        }
    }
    assert_eq!(
        app.get("/healthz", &Auth::None).await.0,
        StatusCode::OK,
        "{answers:?}"
    );
}

/// A verification cut short (the client gone while its password was hashed) was a reservation
/// never settled: ten of them left the counter at the limit with no suspension, and the user
/// could never log in again. Now a cancelled attempt counts as a failure (a suspension that
/// ends), and a counter found at the limit becomes a suspension.
async fn a_dropped_attempt_never_locks_for_good(db: Db) {
    let app = TestApp::spawn_with_limits(db, |limits| {
        limits.login_suspension = Duration::from_secs(2);
        limits.login_suspension_max = Duration::from_secs(2);
    })
    .await;
    app.create_user("dora", "dora-password", "standard").await;
    let dora = app.app.store().find_user_by_login("dora").await.unwrap().unwrap();
    // Nine failures, then ten reservations a crash left behind.
    for i in 0..9 {
        let (status, _) = app
            .stat(&Auth::basic("dora", &format!("wrong-{i}")), "personal-files")
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert!(app.app.store().reserve_login_attempt(dora.id, 10).await.unwrap());
    let stuck = app.app.store().find_user_by_login("dora").await.unwrap().unwrap();
    assert_eq!((stuck.failed_logins, stuck.suspended_until), (10, 0));
    let other = app.client_from("127.0.0.40");
    let try_good = || {
        other
            .post(app.url("/a/tree/stats"))
            .basic_auth("dora", Some("dora-password"))
            .json(&serde_json::json!({"NodePaths": ["personal-files"]}))
            .send()
    };
    // Refused now, and turned into a suspension that ends.
    assert_eq!(try_good().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let suspended = app.app.store().find_user_by_login("dora").await.unwrap().unwrap();
    assert!(
        suspended.suspended_until > 0 && suspended.failed_logins == 0,
        "{suspended:?}"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(try_good().await.unwrap().status(), StatusCode::OK);

    // A request dropped while its password is being verified counts as one failure.
    let before = app
        .app
        .store()
        .find_user_by_login("dora")
        .await
        .unwrap()
        .unwrap()
        .failed_logins;
    let request = app
        .client_from("127.0.0.41")
        .post(app.url("/a/tree/stats"))
        .basic_auth("dora", Some("dropped-guess"))
        .json(&serde_json::json!({"NodePaths": ["personal-files"]}))
        .timeout(Duration::from_millis(1))
        .send();
    let _ = request.await;
    let mut after = before;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        after = app
            .app
            .store()
            .find_user_by_login("dora")
            .await
            .unwrap()
            .unwrap()
            .failed_logins;
        if after != before {
            break;
        }
    }
    assert!(after <= before + 1, "settled once: {before} -> {after}");
}

/// The other side of counting attempts before verifying them: a client that opens many
/// connections at once with the right password (rclone, davfs2) must not use up the user's
/// attempts. Identical credentials wait for one verification and share its result.
async fn parallel_logins_share_one_verification(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_user("erin", "erin-password", "standard").await;
    let before = app.app.auth.hasher().verifications();
    let requests = (0..40).map(|_| {
        let request = app
            .request(
                Method::POST,
                "/a/tree/stats",
                &Auth::basic("erin", "erin-password"),
            )
            .json(&serde_json::json!({"NodePaths": ["personal-files"]}));
        async move { request.send().await.unwrap().status() }
    });
    let statuses = futures_util::future::join_all(requests).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");
    let verified = app.app.auth.hasher().verifications() - before;
    assert!(verified <= 3, "{verified} verifications for 40 identical logins");
    let erin = app.app.store().find_user_by_login("erin").await.unwrap().unwrap();
    assert_eq!((erin.failed_logins, erin.suspended_until), (0, 0));
}
