//! `POST /a/frontend/session`: Cells' scripted login. `{"AuthInfo":{"type":"credentials",
//! "login","password"}}` (or `{"type":"refresh","refresh_token"}`) returns
//! `{"JWT","ExpireTime","Token":{…}}`, tokens of the `cells-frontend` client.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use serde::Deserialize;
use serde_json::{Value, json};

use cells_core::SharedApp;
use cells_core::auth::Client;
use cells_core::auth::oidc::grant::{self, AuthRequest, TokenForm};
use cells_core::error::Error;
use cells_http::error::Result;
use cells_http::extract::ApiJson;

const FRONTEND_CLIENT: &str = "cells-frontend";
const FRONTEND_SCOPE: &str = "openid email profile pydio offline";

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SessionRequest {
    auth_info: AuthInfo,
}

#[derive(Deserialize)]
pub struct AuthInfo {
    #[serde(rename = "type")]
    kind: String,
    login: Option<String>,
    password: Option<String>,
    refresh_token: Option<String>,
}

pub async fn session(
    State(app): State<SharedApp>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(request): ApiJson<SessionRequest>,
) -> Result<Json<Value>> {
    let oidc = &app.oidc;
    let client = oidc
        .clients
        .find(FRONTEND_CLIENT)
        .await?
        .ok_or_else(|| Error::internal(anyhow::anyhow!("the cells-frontend client is missing")))?;
    let info = request.auth_info;
    let tokens = match info.kind.as_str() {
        "credentials" => {
            let login = info
                .login
                .ok_or_else(|| Error::invalid("AuthInfo.login", "is required"))?;
            let password = info
                .password
                .ok_or_else(|| Error::invalid("AuthInfo.password", "is required"))?;
            let who = Client {
                protocol: "rest",
                address: peer.ip(),
            };
            let user = app.auth.verify_password(&login, &password, who).await?;
            // A code issued and redeemed at once: the same path as the browser flow.
            let now = cells_core::records::now();
            let auth = AuthRequest {
                client_id: client.id.clone(),
                redirect_uri: client.redirect_uris.first().cloned().unwrap_or_default(),
                scope: FRONTEND_SCOPE.into(),
                state: None,
                nonce: None,
                code_challenge: None,
                exp: now + 60,
            };
            let code = grant::issue_code(oidc, &user, &auth, None, now)
                .await
                .map_err(oauth_to_error)?;
            let form = TokenForm {
                grant_type: Some("authorization_code".into()),
                code: Some(code),
                redirect_uri: Some(auth.redirect_uri),
                ..TokenForm::default()
            };
            grant::token(oidc, &client, &form).await.map_err(oauth_to_error)?
        }
        "refresh" => {
            let refresh = info
                .refresh_token
                .ok_or_else(|| Error::invalid("AuthInfo.refresh_token", "is required"))?;
            let form = TokenForm {
                grant_type: Some("refresh_token".into()),
                refresh_token: Some(refresh),
                ..TokenForm::default()
            };
            grant::token(oidc, &client, &form).await.map_err(oauth_to_error)?
        }
        other => {
            return Err(Error::invalid(
                "AuthInfo.type",
                format!("{other:?}: expected credentials or refresh"),
            )
            .into());
        }
    };
    let expires_in = tokens["expires_in"].as_i64().unwrap_or(0);
    Ok(Json(json!({
        "JWT": tokens["access_token"],
        "ExpireTime": expires_in,
        "Token": {
            "AccessToken": tokens["access_token"],
            "IDToken": tokens["id_token"],
            "RefreshToken": tokens["refresh_token"],
            "ExpiresAt": (cells_core::records::now() + expires_in).to_string(),
        },
    })))
}

fn oauth_to_error(error: grant::OAuthError) -> Error {
    match error.error {
        "invalid_grant" => Error::Unauthenticated(error.description),
        "server_error" => Error::internal(anyhow::anyhow!(error.description)),
        _ => Error::invalid("AuthInfo", error.description),
    }
}
