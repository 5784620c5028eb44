//! Our provider through a relying-party library: the `openidconnect` crate does discovery, the
//! code flow with PKCE and nonce, ID-token validation against the JWKS (with `at_hash`),
//! userinfo, refresh, revocation, logout and the device flow, as a real client would.

use std::future::Future;
use std::pin::Pin;

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreDeviceAuthorizationResponse, CoreProviderMetadata,
};
use openidconnect::{
    AccessTokenHash, AsyncHttpClient, AuthorizationCode, ClientId, CsrfToken, DeviceAuthorizationUrl,
    EndSessionUrl, HttpClientError, HttpRequest, HttpResponse, IssuerUrl, LogoutRequest, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};
use reqwest::StatusCode;

use crate::backend_tests;
use crate::harness::{ADMIN, ADMIN_PASSWORD, Auth, Db, TestApp};
use crate::oidc::{browser, hidden, login_through, query_param};

backend_tests!(openidconnect_crate_end_to_end);

/// reqwest 0.13 as the library's HTTP client (it ships one for 0.12 only). No redirects.
struct Http(reqwest::Client);

impl<'c> AsyncHttpClient<'c> for Http {
    type Error = HttpClientError<reqwest::Error>;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Self::Error>> + Send + Sync + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let response = self
                .0
                .execute(request.try_into().map_err(Box::new)?)
                .await
                .map_err(Box::new)?;
            let mut builder = openidconnect::http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            builder
                .body(response.bytes().await.map_err(Box::new)?.to_vec())
                .map_err(HttpClientError::Http)
        })
    }
}

async fn openidconnect_crate_end_to_end(db: Db) {
    let app = TestApp::spawn(db).await;
    let http = Http(
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    );
    let issuer = IssuerUrl::new(format!("{}/oidc", app.base)).unwrap();
    let metadata = CoreProviderMetadata::discover_async(issuer, &http)
        .await
        .expect("discovery");
    let redirect = format!("{}/oauth2/oob", app.base);
    let client = CoreClient::from_provider_metadata(metadata, ClientId::new("cells-client".into()), None)
        .set_redirect_uri(RedirectUrl::new(redirect).unwrap())
        .set_device_authorization_url(
            DeviceAuthorizationUrl::new(format!("{}/oidc/oauth2/device/auth", app.base)).unwrap(),
        );

    // Code flow with PKCE, state and nonce; the browser part through our login page.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("offline".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    let browser = browser();
    let back = login_through(&app, &browser, url.as_str(), ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(
        query_param(&back, "state").as_deref(),
        Some(state.secret().as_str())
    );
    let code = query_param(&back, "code").expect("a code");
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchange");

    // The ID token: signature (JWKS), issuer, audience, expiry, nonce, and at_hash.
    let id_token = tokens.id_token().expect("an ID token");
    let verifier = client.id_token_verifier();
    let claims = id_token.claims(&verifier, &nonce).expect("the ID token verifies");
    let at_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&at_hash));
    assert_eq!(claims.preferred_username().map(|u| u.as_str()), Some(ADMIN));
    let access = tokens.access_token().secret().clone();
    assert_eq!(
        app.get("/a/config/ctl", &Auth::bearer(&access)).await.0,
        StatusCode::OK
    );

    let info: openidconnect::core::CoreUserInfoClaims = client
        .user_info(tokens.access_token().clone(), Some(claims.subject().clone()))
        .unwrap()
        .request_async(&http)
        .await
        .expect("userinfo");
    assert_eq!(info.preferred_username().map(|u| u.as_str()), Some(ADMIN));

    // Refresh, then revoke: the grant's access tokens stop working.
    let refresh = tokens.refresh_token().expect("a refresh token").clone();
    let refreshed = client
        .exchange_refresh_token(&refresh)
        .unwrap()
        .request_async(&http)
        .await
        .expect("refresh");
    let new_access = refreshed.access_token().secret().clone();
    assert_eq!(
        app.get("/a/config/ctl", &Auth::bearer(&new_access)).await.0,
        StatusCode::OK
    );
    let new_refresh = refreshed.refresh_token().unwrap().clone();
    // The library refuses to revoke over plain http (RFC 7009 §2 wants TLS), which loopback
    // tests use: send its request by hand.
    let response = reqwest::Client::new()
        .post(format!("{}/oidc/oauth2/revoke", app.base))
        .form(&[
            ("token", new_refresh.secret().as_str()),
            ("token_type_hint", "refresh_token"),
            ("client_id", "cells-client"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        app.get("/a/config/ctl", &Auth::bearer(&new_access)).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Logout with the ID token as hint ends the browser session.
    let logout =
        LogoutRequest::from(EndSessionUrl::new(format!("{}/oidc/oauth2/sessions/logout", app.base)).unwrap())
            .set_id_token_hint(id_token)
            .http_get_url();
    let response = browser.get(logout.as_str()).send().await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "signed out (no post-logout URI for this client)"
    );
    let again = browser.get(url.as_str()).send().await.unwrap();
    assert!(
        again.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/oauth2/login")
    );

    // Device flow: the library polls while the user approves in a browser.
    let details: CoreDeviceAuthorizationResponse = client
        .exchange_device_code()
        .add_scope(Scope::new("offline".into()))
        .request_async(&http)
        .await
        .expect("device authorization");
    let approve = {
        let app_base = app.base.clone();
        let page_url = details.verification_uri_complete().unwrap().secret().clone();
        async move {
            let device_browser = crate::oidc::browser();
            let html = device_browser
                .get(&page_url)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let form = [
                ("csrf", hidden(&html, "csrf")),
                ("user_code", hidden(&html, "user_code")),
                ("login", ADMIN.to_string()),
                ("password", ADMIN_PASSWORD.to_string()),
                ("decision", "allow".to_string()),
            ];
            let response = device_browser
                .post(format!("{app_base}/oauth2/device"))
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        }
    };
    let poll = client
        .exchange_device_access_token(&details)
        .unwrap()
        .request_async(&http, tokio::time::sleep, None);
    let (device_tokens, ()) = tokio::join!(poll, approve);
    let device_tokens = device_tokens.expect("device tokens");
    let device_access = device_tokens.access_token().secret().clone();
    assert_eq!(
        app.get("/a/config/ctl", &Auth::bearer(&device_access)).await.0,
        StatusCode::OK
    );
}
