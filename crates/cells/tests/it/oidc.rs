//! The OpenID provider: seed 003's curl session word for word, the code flow with PKCE and
//! refresh rotation, client credentials, introspection, revocation, and the attacks of
//! issue 4 (redirect variants, code replay, PKCE mismatch, refresh reuse, forged JWTs, CSRF).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::redirect::Policy;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::harness::{ADMIN, ADMIN_PASSWORD, Auth, Db, TestApp};

backend_tests!(
    seed_003_curl_session,
    code_flow_with_pkce_and_refresh,
    attacks_are_refused,
    key_rotation_and_client_cli,
    device_flow_logout_and_frontend_session,
    client_credentials_and_introspection,
    expired_device_codes_are_pruned
);

pub(crate) fn config(base: &str) -> Value {
    json!({"services": {"pydio.web.oauth": {"staticClients": [
        {"client_id": "cells-curl", "client_name": "cells-curl", "client_secret": "password",
         "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code", "token", "id_token"],
         "redirect_uris": [format!("{base}/oauth2/oob")], "scope": "openid email profile pydio offline",
         "skip_consent": true},
        {"client_id": "device", "grant_types": ["urn:ietf:params:oauth:grant-type:device_code", "refresh_token"],
         "scope": "openid offline"},
        {"client_id": "rp", "client_secret": "rp-secret-value", "grant_types": ["authorization_code"],
         "redirect_uris": [format!("{base}/rp/callback")], "post_logout_redirect_uris": [format!("{base}/rp/bye")],
         "skip_consent": true},
        {"client_id": "machine", "client_secret": "machine-secret-value",
         "grant_types": ["client_credentials"], "scope": "pydio", "token_endpoint_auth_method": "client_secret_basic"},
        {"client_id": "poster", "client_secret": "poster-secret-value", "grant_types": ["client_credentials"],
         "scope": "pydio", "token_endpoint_auth_method": "client_secret_post"},
        {"client_id": "third-party", "client_secret": "third-party-secret",
         "grant_types": ["authorization_code"], "redirect_uris": ["http://127.0.0.1:9/cb"]}
    ]}}})
}

/// A browser: keeps cookies, does not follow redirects.
pub fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .unwrap()
}

pub(crate) fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .expect("a redirect")
        .to_str()
        .unwrap()
        .to_string()
}

/// The value of `<input … name="NAME" value="…">` in a page.
pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    let end = start + html[start..].find('"').unwrap();
    html[start..end]
        .replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
}

/// Follow an authorize URL through the login page as `login`; return the final redirect.
pub async fn login_through(
    app: &TestApp,
    browser: &Client,
    authorize_url: &str,
    login: &str,
    password: &str,
) -> String {
    let response = browser.get(authorize_url).send().await.unwrap();
    if response.status() == StatusCode::OK {
        // Already signed in, and the app asks for consent every time (Cells' built-in apps).
        return allow(app, browser, response).await;
    }
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "authorize redirects");
    let next = location(&response);
    if next.starts_with("http") {
        // Already signed in: straight back to the client.
        return next;
    }
    let login_url = app.url(&next);
    let page = browser.get(&login_url).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    // No inline style or script may run on the provider's pages: the stylesheet is ours.
    assert!(
        !csp.contains("unsafe-inline") && csp.contains("style-src 'self'"),
        "{csp}"
    );
    let css = browser.get(app.url("/oauth2/pages.css")).send().await.unwrap();
    assert_eq!(css.status(), StatusCode::OK);
    assert!(
        css.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains("href=\"/oauth2/pages.css\"") && !html.contains("<style"),
        "{html}"
    );
    let form = [
        ("login_challenge", hidden(&html, "login_challenge")),
        ("csrf", hidden(&html, "csrf")),
        ("login", login.to_string()),
        ("password", password.to_string()),
    ];
    let response = browser
        .post(app.url("/oauth2/login"))
        .form(&form)
        .send()
        .await
        .unwrap();
    if response.status() == StatusCode::OK {
        return allow(app, browser, response).await;
    }
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "login succeeds");
    location(&response)
}

/// Press "Allow" on the consent page `response` shows; return the redirect to the client.
pub async fn allow(app: &TestApp, browser: &Client, response: reqwest::Response) -> String {
    let html = response.text().await.unwrap();
    assert!(html.contains("Allow access"), "a consent page: {html}");
    let form = [
        ("login_challenge", hidden(&html, "login_challenge")),
        ("csrf", hidden(&html, "csrf")),
        ("decision", "allow".to_string()),
    ];
    let response = browser
        .post(app.url("/oauth2/consent"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "consent given");
    location(&response)
}

pub fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn sh(script: &str, env: &[(&str, &str)]) -> String {
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .envs(env.iter().copied())
        .output()
        .expect("sh");
    assert!(
        output.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

fn have(tool: &str) -> bool {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

async fn seed_003_curl_session(db: Db) {
    if !have("curl") || !have("jq") {
        eprintln!("skipped: seed 003 needs curl and jq (.ci/run installs them)");
        return;
    }
    let app = TestApp::spawn_with_config(db, config).await;
    let domain = app.base.clone();
    let env = [("DOMAIN", domain.as_str())];

    // AUTHORIZATION_ENDPOINT=`curl --silent $DOMAIN/oidc/.well-known/openid-configuration | jq …`
    let authorization_endpoint = sh(
        "curl --silent $DOMAIN/oidc/.well-known/openid-configuration | jq --raw-output '.authorization_endpoint'",
        &env,
    );
    let token_endpoint = sh(
        "curl --silent $DOMAIN/oidc/.well-known/openid-configuration | jq --raw-output '.token_endpoint'",
        &env,
    );
    assert_eq!(authorization_endpoint, format!("{domain}/oidc/oauth2/auth"));

    // The seed's authorize URL, through the login page, lands on the oob page with the code.
    let url = format!(
        "{authorization_endpoint}?response_type=code&client_id=cells-curl&cells_secret=password&redirect_uri={domain}/oauth2/oob&state=12345678"
    );
    let browser = browser();
    let redirect = login_through(&app, &browser, &url, ADMIN, ADMIN_PASSWORD).await;
    assert!(
        redirect.starts_with(&format!("{domain}/oauth2/oob?")),
        "{redirect}"
    );
    assert_eq!(query_param(&redirect, "state").as_deref(), Some("12345678"));
    let oob = browser.get(&redirect).send().await.unwrap().text().await.unwrap();
    let start = oob.find("<code id=\"code\">").unwrap() + "<code id=\"code\">".len();
    let code = oob[start..start + oob[start..].find("</code>").unwrap()].to_string();
    assert_eq!(Some(code.clone()), query_param(&redirect, "code"));

    // ACCESS_TOKEN=`curl --silent -u "cells-curl:password" -X POST -d "grant_type=…" $TOKEN_ENDPOINT | jq …`
    let env = [
        ("DOMAIN", domain.as_str()),
        ("CODE", code.as_str()),
        ("TOKEN_ENDPOINT", token_endpoint.as_str()),
    ];
    let access_token = sh(
        "curl --silent -u \"cells-curl:password\" -X POST -d \"grant_type=authorization_code&code=$CODE&redirect_uri=$DOMAIN/oauth2/oob\" $TOKEN_ENDPOINT | jq --raw-output '.access_token'",
        &env,
    );
    assert!(access_token.starts_with("eyJ"), "{access_token}");
    // curl -H "Authorization: Bearer $ACCESS_TOKEN" $DOMAIN/a/config/ctl
    let env = [
        ("DOMAIN", domain.as_str()),
        ("ACCESS_TOKEN", access_token.as_str()),
    ];
    let status = sh(
        "curl --silent -o /dev/null -w '%{http_code}' -H \"Authorization: Bearer $ACCESS_TOKEN\" $DOMAIN/a/config/ctl",
        &env,
    );
    assert_eq!(status, "200");

    // The same code again: refused, and the first token is revoked with it.
    let replay = sh(
        "curl --silent -u \"cells-curl:password\" -X POST -d \"grant_type=authorization_code&code=$CODE&redirect_uri=$DOMAIN/oauth2/oob\" $TOKEN_ENDPOINT | jq --raw-output '.error'",
        &[
            ("DOMAIN", domain.as_str()),
            ("CODE", code.as_str()),
            ("TOKEN_ENDPOINT", token_endpoint.as_str()),
        ],
    );
    assert_eq!(replay, "invalid_grant");
    assert_eq!(
        app.get("/a/config/ctl", &Auth::bearer(&access_token)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

pub(crate) fn pkce() -> (String, String) {
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        verifier.as_bytes(),
    ));
    (verifier, challenge)
}

pub(crate) async fn token(
    app: &TestApp,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> (StatusCode, Value) {
    let mut request = app.http.post(app.url("/oidc/oauth2/token")).form(form);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A code for `cells-client` (public, PKCE) redirected to the oob page.
async fn code_for(app: &TestApp, browser: &Client, challenge: &str, scope: &str) -> (String, String) {
    let redirect_uri = format!("{}/oauth2/oob", app.base);
    let url = format!(
        "{}/oidc/oauth2/auth?{}",
        app.base,
        serde_urlencoded::to_string([
            ("response_type", "code"),
            ("client_id", "cells-client"),
            ("redirect_uri", redirect_uri.as_str()),
            ("scope", scope),
            ("state", "s-1"),
            ("nonce", "n-1"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ])
        .unwrap()
    );
    let redirect = login_through(app, browser, &url, ADMIN, ADMIN_PASSWORD).await;
    (query_param(&redirect, "code").expect("a code"), redirect_uri)
}

async fn code_flow_with_pkce_and_refresh(db: Db) {
    let app = TestApp::spawn(db).await;
    let browser = browser();
    let (verifier, challenge) = pkce();
    let (code, redirect_uri) = code_for(&app, &browser, &challenge, "openid email profile offline").await;
    let (status, tokens) = token(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &redirect_uri),
            ("client_id", "cells-client"),
            ("code_verifier", &verifier),
        ],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    let id_token = tokens["id_token"].as_str().unwrap();

    // The ID token verifies against the published JWKS, with the nonce.
    let header = jsonwebtoken::decode_header(id_token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    let (_, jwks) = app.get("/oidc/.well-known/jwks.json", &Auth::None).await;
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).unwrap();
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("kid in the JWKS");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["cells-client"]);
    validation.set_issuer(&[format!("{}/oidc", app.base)]);
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    let claims = jsonwebtoken::decode::<Value>(
        id_token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .expect("the ID token verifies")
    .claims;
    assert_eq!(claims["nonce"], "n-1");
    assert_eq!(claims["name"], ADMIN);
    assert!(claims["at_hash"].is_string() && claims["sid"].is_string() && claims["auth_time"].is_i64());

    // The access token works on REST and on userinfo; the browser session skips the form.
    assert_eq!(
        app.get("/a/config/ctl", &Auth::bearer(&access)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        app.stat(&Auth::basic(ADMIN, &access), "personal-files").await.0,
        StatusCode::OK
    );
    let (status, info) = app.get("/oidc/userinfo", &Auth::bearer(&access)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["preferred_username"], ADMIN);
    let again = browser
        .get(format!(
            "{}/oidc/oauth2/auth?response_type=code&client_id=cells-client&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256",
            app.base, redirect_uri
        ))
        .send()
        .await
        .unwrap();
    // cells-client is a built-in public app: a signed-in browser is asked again every time
    // (a page could otherwise have the code sent to any program on that localhost port).
    assert_eq!(again.status(), StatusCode::OK);
    assert!(
        again.text().await.unwrap().contains("Allow access"),
        "a logged-in browser is asked for consent again"
    );

    // Refresh rotates; the old refresh token used again (after the grace) revokes everything.
    let (status, rotated) = token(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", "cells-client"),
        ],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_access = rotated["access_token"].as_str().unwrap().to_string();
    assert_ne!(rotated["refresh_token"], refresh);
    assert_eq!(
        app.get("/a/config/ctl", &Auth::bearer(&new_access)).await.0,
        StatusCode::OK
    );
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    let (status, reuse) = token(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", "cells-client"),
        ],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(reuse["error"], "invalid_grant");
    app.app.auth.settle().await;
    assert_eq!(
        app.get("/a/config/ctl", &Auth::bearer(&new_access)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/a/config/ctl", &Auth::bearer(&access)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

async fn attacks_are_refused(db: Db) {
    let app = TestApp::spawn_with_config(db, config).await;
    let base = app.base.clone();
    let browser = browser();

    // Redirect URI variants: an error page, never a redirect.
    for uri in [
        format!("{base}/oauth2/oob/"),
        format!("{base}/OAUTH2/oob"),
        format!("{base}/oauth2/oob/extra"),
        format!("{base}/oauth2/oob?x=1"),
        format!("{base}/oauth2/oob#frag"),
        format!("{}/oauth2/oob", base.replace("http://", "http://user@")),
        "http://localhost:3667".to_string(),
        format!("{base}/oauth2/../oauth2/oob"),
        "https://evil.example/cb".to_string(),
    ] {
        let response = browser
            .get(format!("{base}/oidc/oauth2/auth"))
            .query(&[
                ("response_type", "code"),
                ("client_id", "cells-client"),
                ("redirect_uri", uri.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{uri}");
        assert!(
            response.headers().get("location").is_none(),
            "{uri} must not be redirected to"
        );
    }
    // Implicit and hybrid flows refused, at the (valid) redirect URI, with the state kept; also
    // for cells-curl, whose configuration (seed 003's) lists "token" and "id_token".
    let oob = format!("{base}/oauth2/oob");
    for (client, response_type) in [
        ("cells-client", "token"),
        ("cells-curl", "token"),
        ("cells-curl", "code id_token"),
    ] {
        let response = browser
            .get(format!("{base}/oidc/oauth2/auth"))
            .query(&[
                ("response_type", response_type),
                ("client_id", client),
                ("redirect_uri", &oob),
                ("state", "xyz"),
            ])
            .send()
            .await
            .unwrap();
        let redirect = location(&response);
        assert_eq!(
            query_param(&redirect, "error").as_deref(),
            Some("unsupported_response_type"),
            "{client} {response_type}"
        );
        assert_eq!(query_param(&redirect, "state").as_deref(), Some("xyz"));
    }
    // A non-default public client must use PKCE; unknown client: error page.
    let response = browser
        .get(format!("{base}/oidc/oauth2/auth"))
        .query(&[
            ("response_type", "code"),
            ("client_id", "nobody"),
            ("redirect_uri", &oob),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // Login form without CSRF, or with a wrong one: refused.
    let response = app
        .http
        .post(app.url("/oauth2/login"))
        .form(&[
            ("login", ADMIN),
            ("password", ADMIN_PASSWORD),
            ("login_challenge", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    // PKCE mismatch, another client's code, and replay.
    let (verifier, challenge) = pkce();
    let (code, redirect_uri) = code_for(&app, &browser, &challenge, "openid").await;
    let wrong = pkce().0;
    let base_form = |code: &str, verifier: &str| {
        vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code.to_string()),
            ("redirect_uri", redirect_uri.clone()),
            ("client_id", "cells-client".to_string()),
            ("code_verifier", verifier.to_string()),
        ]
    };
    let form: Vec<(&str, String)> = base_form(&code, &wrong);
    let response = app
        .http
        .post(app.url("/oidc/oauth2/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let (code, _) = code_for(&app, &browser, &challenge, "openid").await;
    let mut form = base_form(&code, &verifier);
    form[3].1 = "cells-sync".into();
    let response = app
        .http
        .post(app.url("/oidc/oauth2/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "invalid_grant",
        "another client's code"
    );
    let (status, body) = token(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", "made-up"),
            ("redirect_uri", &redirect_uri),
            ("client_id", "cells-client"),
        ],
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );

    // Client authentication and grant types.
    let (status, body) = token(
        &app,
        &[("grant_type", "client_credentials")],
        Some(("machine", "wrong")),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let (status, body) = token(
        &app,
        &[("grant_type", "password")],
        Some(("machine", "machine-secret-value")),
    )
    .await;
    assert_eq!(body["error"], "unsupported_grant_type", "{status}");
    let (_, body) = token(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "cells-client"),
        ],
        None,
    )
    .await;
    assert_eq!(body["error"], "unauthorized_client");

    // Guessing a client secret is throttled per address like any login (here 20 free tries).
    let guesser = app.client_from("127.0.0.4");
    let mut last = StatusCode::OK;
    for _ in 0..22 {
        let response = guesser
            .post(app.url("/oidc/oauth2/token"))
            .basic_auth("machine", Some("guess"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        last = response.status();
        if last == StatusCode::TOO_MANY_REQUESTS {
            assert!(response.headers().get("retry-after").is_some());
            break;
        }
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);

    // A declared authentication method is the only one accepted.
    let (status, _) = token(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "machine"),
            ("client_secret", "machine-secret-value"),
        ],
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "machine declared client_secret_basic"
    );
    let (status, _) = token(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "poster"),
            ("client_secret", "poster-secret-value"),
        ],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "poster uses client_secret_post");
    let (status, _) = token(
        &app,
        &[("grant_type", "client_credentials")],
        Some(("poster", "poster-secret-value")),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "poster declared client_secret_post"
    );

    // A declared authentication method is the only one accepted.
    let (status, _) = token(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "machine"),
            ("client_secret", "machine-secret-value"),
        ],
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "machine declared client_secret_basic"
    );
    let (status, _) = token(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "poster"),
            ("client_secret", "poster-secret-value"),
        ],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "poster uses client_secret_post");
    let (status, _) = token(
        &app,
        &[("grant_type", "client_credentials")],
        Some(("poster", "poster-secret-value")),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "poster declared client_secret_post"
    );

    // Forged access tokens.
    let (_, good) = token(
        &app,
        &[("grant_type", "client_credentials")],
        Some(("machine", "machine-secret-value")),
    )
    .await;
    let good = good["access_token"].as_str().unwrap().to_string();
    let parts: Vec<&str> = good.split('.').collect();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let admin_id = app
        .app
        .store()
        .find_user_by_login(ADMIN)
        .await
        .unwrap()
        .unwrap()
        .id
        .to_string();
    claims["sub"] = Value::String(admin_id);
    claims["name"] = Value::String(ADMIN.into());
    let encode = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let mut none_header = header.clone();
    none_header["alg"] = "none".into();
    let mut unknown_kid = header.clone();
    unknown_kid["kid"] = "nope".into();
    let mut expired = claims.clone();
    expired["exp"] = json!(1);
    let mut wrong_aud = claims.clone();
    wrong_aud["aud"] = "http://elsewhere".into();
    let mut wrong_iss = claims.clone();
    wrong_iss["iss"] = "http://elsewhere/oidc".into();
    let hs_key = serde_json::to_vec(&app.app.oidc.keys.jwks()).unwrap();
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header {
            kid: header["kid"].as_str().map(str::to_string),
            typ: Some("at+jwt".into()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
        },
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&hs_key),
    )
    .unwrap();
    let forged = [
        format!("{}.{}.", encode(&none_header), encode(&claims)),
        format!("{}.{}.{}", encode(&header), encode(&claims), parts[2]),
        format!("{}.{}.{}", encode(&unknown_kid), parts[1], parts[2]),
        format!("{}.{}.{}", encode(&header), encode(&expired), parts[2]),
        format!("{}.{}.{}", encode(&header), encode(&wrong_aud), parts[2]),
        format!("{}.{}.{}", encode(&header), encode(&wrong_iss), parts[2]),
        hs256,
    ];
    for token in &forged {
        assert_eq!(
            app.get("/a/config/ctl", &Auth::bearer(token)).await.0,
            StatusCode::UNAUTHORIZED,
            "{token:.60}"
        );
    }
    // A client's own token is real but acts for no user.
    assert_eq!(
        app.get("/a/config/ctl", &Auth::bearer(&good)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

async fn client_credentials_and_introspection(db: Db) {
    let app = TestApp::spawn_with_config(db, config).await;
    let machine = Some(("machine", "machine-secret-value"));
    let (status, body) = token(
        &app,
        &[("grant_type", "client_credentials"), ("scope", "pydio")],
        machine,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 600);
    let access = body["access_token"].as_str().unwrap().to_string();
    let (_, body) = token(
        &app,
        &[("grant_type", "client_credentials"), ("scope", "admin")],
        machine,
    )
    .await;
    assert_eq!(body["error"], "invalid_scope");

    let introspect = |token: String, basic: Option<(&'static str, &'static str)>| {
        let mut request = app
            .http
            .post(app.url("/oidc/oauth2/introspect"))
            .form(&[("token", token)]);
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        async move { request.send().await.unwrap() }
    };
    let response = introspect(access.clone(), machine).await;
    let info: Value = response.json().await.unwrap();
    assert_eq!(info["active"], true);
    assert_eq!(info["client_id"], "machine");
    assert_eq!(
        introspect("garbage".into(), machine)
            .await
            .json::<Value>()
            .await
            .unwrap()["active"],
        false
    );
    assert_eq!(
        introspect(access.clone(), None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        introspect(access.clone(), Some(("machine", "nope")))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );

    // A user's access and refresh tokens: introspected, then revoked (RFC 7009) everywhere.
    let browser = browser();
    let (verifier, challenge) = pkce();
    let (code, redirect_uri) = code_for(&app, &browser, &challenge, "openid offline").await;
    let (_, tokens) = token(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &redirect_uri),
            ("client_id", "cells-client"),
            ("code_verifier", &verifier),
        ],
        None,
    )
    .await;
    let user_access = tokens["access_token"].as_str().unwrap().to_string();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    let info: Value = introspect(user_access.clone(), machine)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (info["active"].as_bool(), info["username"].as_str()),
        (Some(true), Some(ADMIN))
    );
    let response = app
        .http
        .post(app.url("/oidc/oauth2/revoke"))
        .form(&[("token", refresh.as_str()), ("client_id", "cells-client")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        app.get("/a/config/ctl", &Auth::bearer(&user_access)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let info: Value = introspect(user_access, machine).await.json().await.unwrap();
    assert_eq!(info["active"], false);
    let (_, body) = token(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", "cells-client"),
        ],
        None,
    )
    .await;
    assert_eq!(body["error"], "invalid_grant");
    // Unknown tokens are "revoked" quietly (RFC 7009 §2.2).
    let response = app
        .http
        .post(app.url("/oidc/oauth2/revoke"))
        .form(&[("token", "unknown"), ("client_id", "cells-client")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (status, discovery) = app
        .get("/oidc/.well-known/openid-configuration", &Auth::None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(discovery["issuer"], format!("{}/oidc", app.base));
    assert_eq!(discovery["code_challenge_methods_supported"], json!(["S256"]));
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

async fn key_rotation_and_client_cli(db: Db) {
    let app = TestApp::spawn_with_config(db, config).await;
    let machine = Some(("machine", "machine-secret-value"));
    let (_, before) = token(&app, &[("grant_type", "client_credentials")], machine).await;
    let before = before["access_token"].as_str().unwrap().to_string();
    let old_kid = kid(&before);

    assert!(
        app.cli_ok(&["admin", "keys", "rotate"])
            .contains("New signing keys")
    );
    let (_, after) = token(&app, &[("grant_type", "client_credentials")], machine).await;
    let after = after["access_token"].as_str().unwrap().to_string();
    assert_ne!(kid(&after), old_kid, "new tokens use the new key");
    let (_, jwks) = app.get("/oidc/.well-known/jwks.json", &Auth::None).await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(
        kids.contains(&old_kid.as_str()) && kids.contains(&kid(&after).as_str()),
        "{kids:?}"
    );
    assert_eq!(kids.len(), 6, "three algorithms, old and new");
    for token in [&before, &after] {
        let response = app
            .http
            .post(app.url("/oidc/oauth2/introspect"))
            .basic_auth("machine", Some("machine-secret-value"))
            .form(&[("token", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.json::<Value>().await.unwrap()["active"],
            true,
            "both keys verify"
        );
    }
    let listing = app.cli_ok(&["admin", "keys", "list"]);
    assert_eq!(listing.matches("retired, verifies until").count(), 3, "{listing}");
    assert_eq!(listing.matches("signing").count(), 3, "{listing}");

    // Clients from the CLI: added (secret shown once, stored hashed), listed, used, deleted.
    let file = app.data.join("client.json");
    std::fs::write(
        &file,
        json!({"client_id": "script", "grant_types": ["client_credentials"], "scope": "pydio"}).to_string(),
    )
    .unwrap();
    let added = app.cli_ok(&["admin", "client", "add", "--file", file.to_str().unwrap()]);
    let secret = added
        .lines()
        .find_map(|l| l.strip_prefix("client_secret: "))
        .expect("secret printed")
        .to_string();
    let listing = app.cli_ok(&["admin", "client", "list"]);
    for id in [
        "cells-sync",
        "cells-mobile",
        "cells-client",
        "cells-frontend",
        "cells-curl",
        "script",
    ] {
        assert!(listing.contains(id), "{id} in {listing}");
    }
    let (status, _) = token(
        &app,
        &[("grant_type", "client_credentials")],
        Some(("script", &secret)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let output = app.cli(&["admin", "client", "add", "--file", file.to_str().unwrap()]);
    assert!(!output.status.success(), "the id is taken");
    std::fs::write(
        &file,
        r#"{"client_id": "bad", "response_types": ["code device"]}"#,
    )
    .unwrap();
    assert!(
        !app.cli(&["admin", "client", "add", "--file", file.to_str().unwrap()])
            .status
            .success()
    );
    app.cli_ok(&["admin", "client", "delete", "script"]);
    let (status, _) = token(
        &app,
        &[("grant_type", "client_credentials")],
        Some(("script", &secret)),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        !app.cli(&["admin", "client", "delete", "cells-sync"])
            .status
            .success(),
        "defaults stay"
    );
}

/// The hourly housekeeping deletes device codes that expired (they used to pile up) and
/// leaves the live ones.
async fn expired_device_codes_are_pruned(db: Db) {
    let app = TestApp::spawn_with_config(db, config).await;
    let start: Value = app
        .http
        .post(app.url("/oidc/oauth2/device/auth"))
        .form(&[("client_id", "device"), ("scope", "openid offline")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let device_code = start["device_code"].as_str().unwrap();
    let expires_in = start["expires_in"].as_i64().unwrap();
    let form = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", device_code),
        ("client_id", "device"),
    ];
    let now = cells_core::records::now();
    let alive = ["authorization_pending", "slow_down"];
    app.app.prune_expired(now).await;
    let (_, answer) = token(&app, &form, None).await;
    assert!(
        alive.contains(&answer["error"].as_str().unwrap()),
        "live code kept: {answer}"
    );
    // An hour after it expired, the housekeeping run removes it: the code is unknown.
    app.app.prune_expired(now + expires_in + 3600).await;
    let (status, answer) = token(&app, &form, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        !alive.contains(&answer["error"].as_str().unwrap()),
        "expired code pruned: {answer}"
    );
}

async fn device_flow_logout_and_frontend_session(db: Db) {
    let app = TestApp::spawn_with_config(db, config).await;
    // Device flow (RFC 8628): pending, slow_down, approval in a browser, tokens once.
    let response = app
        .http
        .post(app.url("/oidc/oauth2/device/auth"))
        .form(&[("client_id", "device"), ("scope", "openid offline")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let start: Value = response.json().await.unwrap();
    let device_code = start["device_code"].as_str().unwrap().to_string();
    assert_eq!(start["verification_uri"], format!("{}/oauth2/device", app.base));
    let grant_type = "urn:ietf:params:oauth:grant-type:device_code";
    let poll_form = [
        ("grant_type", grant_type),
        ("device_code", device_code.as_str()),
        ("client_id", "device"),
    ];
    let poll = || token(&app, &poll_form, None);
    assert_eq!(poll().await.1["error"], "authorization_pending");
    assert_eq!(poll().await.1["error"], "slow_down");
    let browser = browser();
    let page = browser
        .get(start["verification_uri_complete"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let html = page.text().await.unwrap();
    assert!(html.contains("device asks for access"), "{html}");
    let form = [
        ("csrf", hidden(&html, "csrf")),
        ("user_code", start["user_code"].as_str().unwrap().to_lowercase()),
        ("login", ADMIN.to_string()),
        ("password", "wrong-password".to_string()),
        ("decision", "allow".to_string()),
    ];
    let response = browser
        .post(app.url("/oauth2/device"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "a wrong password is refused on the page"
    );
    let mut form = form;
    form[3].1 = ADMIN_PASSWORD.to_string();
    let response = browser
        .post(app.url("/oauth2/device"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (status, tokens) = poll().await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert!(tokens["id_token"].is_string() && tokens["refresh_token"].is_string());
    let access = tokens["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        app.get("/a/config/ctl", &Auth::bearer(&access)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        poll().await.1["error"],
        "invalid_grant",
        "a device code works once"
    );
    let response = browser
        .post(app.url("/oauth2/device"))
        .form(&[("user_code", "ABCD-EFGH")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "no CSRF token");

    // RP-initiated logout with id_token_hint ends the session and its tokens.
    let browser = self::browser();
    let url = format!(
        "{}/oidc/oauth2/auth?response_type=code&client_id=rp&redirect_uri={}/rp/callback&scope=openid&state=st",
        app.base, app.base
    );
    let redirect = login_through(&app, &browser, &url, ADMIN, ADMIN_PASSWORD).await;
    let code = query_param(&redirect, "code").unwrap();
    let callback = format!("{}/rp/callback", app.base);
    let (_, tokens) = token(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &callback),
        ],
        Some(("rp", "rp-secret-value")),
    )
    .await;
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let id_token = tokens["id_token"].as_str().unwrap().to_string();
    assert_eq!(
        app.get("/a/config/ctl", &Auth::bearer(&access)).await.0,
        StatusCode::OK
    );
    let bye = format!("{}/rp/bye", app.base);
    let response = browser
        .get(app.url("/oidc/oauth2/sessions/logout"))
        .query(&[
            ("id_token_hint", id_token.as_str()),
            ("post_logout_redirect_uri", "https://evil.example/"),
            ("state", "z"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::BAD_REQUEST,
        "unregistered post-logout URI"
    );
    let response = browser
        .get(app.url("/oidc/oauth2/sessions/logout"))
        .query(&[
            ("id_token_hint", id_token.as_str()),
            ("post_logout_redirect_uri", bye.as_str()),
            ("state", "z"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), format!("{bye}?state=z"));
    assert_eq!(
        app.get("/a/config/ctl", &Auth::bearer(&access)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let again = browser.get(&url).send().await.unwrap();
    assert!(
        location(&again).starts_with("/oauth2/login"),
        "the browser must sign in again"
    );
    // prompt and max_age (OIDC Core §3.1.2.1) with a live session.
    let redirect = login_through(&app, &browser, &url, ADMIN, ADMIN_PASSWORD).await;
    assert!(redirect.contains("code="));
    for (extra, expect) in [
        ("&prompt=login", "/oauth2/login"),
        ("&prompt=login%20consent", "/oauth2/login"),
        ("&max_age=0", "/oauth2/login"),
        ("&prompt=none%20login", "error=invalid_request"),
        ("&prompt=none", "code="),
        ("&max_age=3600", "code="),
    ] {
        if extra == "&max_age=0" {
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        }
        let response = browser.get(format!("{url}{extra}")).send().await.unwrap();
        assert!(
            location(&response).contains(expect),
            "{extra}: {}",
            location(&response)
        );
    }
    let response = browser
        .post(app.url("/oidc/oauth2/auth"))
        .body(url.split_once('?').unwrap().1.to_string())
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert!(
        location(&response).contains("code="),
        "POST to the authorization endpoint"
    );
    // Without a hint, logout asks for confirmation (no logout CSRF).
    let response = browser
        .get(app.url("/oidc/oauth2/sessions/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("Sign out?"));

    // Cells' scripted login.
    let (status, body) = app
        .post(
            "/a/frontend/session",
            &Auth::None,
            json!({"AuthInfo": {"type": "credentials", "login": ADMIN, "password": ADMIN_PASSWORD}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let jwt = body["JWT"].as_str().unwrap().to_string();
    assert_eq!(
        app.get("/a/config/ctl", &Auth::bearer(&jwt)).await.0,
        StatusCode::OK
    );
    let (status, refreshed) = app
        .post(
            "/a/frontend/session",
            &Auth::None,
            json!({"AuthInfo": {"type": "refresh", "refresh_token": body["Token"]["RefreshToken"]}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let (status, _) = app
        .post(
            "/a/frontend/session",
            &Auth::None,
            json!({"AuthInfo": {"type": "credentials", "login": ADMIN, "password": "nope"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
