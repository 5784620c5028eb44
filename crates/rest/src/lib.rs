//! cells-rest: the REST API (`/a/…`, Cells' paths and JSON shapes), health and metrics, and the
//! OpenID provider's endpoints (`oidc`) and browser pages (`pages`).

pub mod api;
pub mod oidc;
pub mod pages;

use axum::Router;
use axum::http::{Method, header};
use axum::routing::{delete, get, post};
use tower_http::cors::{Any, CorsLayer};

use cells_core::SharedApp;

/// Every route of the REST API, as (method, path) pairs: the OpenAPI document is tested
/// against this list, so neither can drift from the other.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/metrics"),
    ("get", "/a/openapi.json"),
    ("get", "/a/config/ctl"),
    ("post", "/a/tree/stats"),
    ("post", "/a/tree/create"),
    ("post", "/a/tree/delete"),
    ("post", "/a/tree/move"),
    ("post", "/a/tree/copy"),
    ("get", "/a/content/{path}"),
    ("put", "/a/content/{path}"),
    ("get", "/a/user/{Login}"),
    ("put", "/a/user/{Login}"),
    ("delete", "/a/user/{Login}"),
    ("post", "/a/auth/token/personal"),
    ("post", "/a/auth/token/impersonate"),
    ("post", "/a/auth/token/document"),
    ("post", "/a/auth/token/revoke"),
    ("post", "/a/auth/tokens"),
    ("delete", "/a/auth/tokens/{TokenId}"),
    ("post", "/a/frontend/session"),
    ("get", "/a/workspace"),
    ("put", "/a/workspace/{Slug}"),
    ("delete", "/a/workspace/{Slug}"),
    ("post", "/a/workspace/{Slug}/grant"),
    ("post", "/a/workspace/{Slug}/revoke"),
    ("get", "/a/group"),
    ("put", "/a/group/{Name}"),
    ("delete", "/a/group/{Name}"),
    ("put", "/a/group/{Name}/member/{Login}"),
    ("delete", "/a/group/{Name}/member/{Login}"),
];

/// Routes of the OpenID provider and its pages (documented by discovery, not OpenAPI).
pub const OIDC_ROUTES: &[(&str, &str)] = &[
    ("get", "/oidc/.well-known/openid-configuration"),
    ("get", "/oidc/.well-known/jwks.json"),
    ("get", "/oidc/oauth2/auth"),
    ("post", "/oidc/oauth2/auth"),
    ("post", "/oidc/oauth2/token"),
    ("post", "/oidc/oauth2/revoke"),
    ("post", "/oidc/oauth2/introspect"),
    ("get", "/oidc/userinfo"),
    ("get", "/oauth2/login"),
    ("post", "/oauth2/login"),
    ("post", "/oauth2/consent"),
    ("get", "/oauth2/oob"),
    ("get", "/oauth/oob"),
    ("get", "/oauth2/pages.css"),
    ("post", "/oidc/oauth2/device/auth"),
    ("get", "/oauth2/device"),
    ("post", "/oauth2/device"),
    ("get", "/oidc/oauth2/sessions/logout"),
    ("post", "/oidc/oauth2/sessions/logout"),
];

/// The REST API and the OpenID provider (endpoints and pages), without the server-wide
/// layers, which the binary puts around every protocol.
pub fn routes() -> Router<SharedApp> {
    Router::new()
        .route("/healthz", get(api::health))
        .route("/metrics", get(api::metrics))
        .route("/a/openapi.json", get(api::openapi))
        .route("/a/config/ctl", get(api::config::control))
        .route("/a/tree/stats", post(api::tree::stats))
        .route("/a/tree/create", post(api::tree::create))
        .route("/a/tree/delete", post(api::tree::delete))
        .route("/a/tree/move", post(api::tree::rename))
        .route("/a/tree/copy", post(api::tree::copy))
        .merge(api::content::routes())
        .route(
            "/a/user/{login}",
            get(api::users::get_user)
                .put(api::users::put_user)
                .delete(api::users::delete_user),
        )
        .route("/a/workspace", get(api::workspaces::list))
        .route(
            "/a/workspace/{slug}",
            axum::routing::put(api::workspaces::put).delete(api::workspaces::delete),
        )
        .route("/a/workspace/{slug}/grant", post(api::workspaces::grant))
        .route("/a/workspace/{slug}/revoke", post(api::workspaces::revoke))
        .route("/a/group", get(api::workspaces::list_groups))
        .route(
            "/a/group/{name}",
            axum::routing::put(api::workspaces::put_group).delete(api::workspaces::delete_group),
        )
        .route(
            "/a/group/{name}/member/{login}",
            axum::routing::put(api::workspaces::add_member).delete(api::workspaces::remove_member),
        )
        .route("/a/auth/token/personal", post(api::tokens::create_personal))
        .route("/a/auth/token/impersonate", post(api::tokens::impersonate))
        .route("/a/auth/token/document", post(api::tokens::create_document))
        .route("/a/auth/token/revoke", post(api::tokens::revoke))
        .route("/a/auth/tokens", post(api::tokens::list))
        .route("/a/auth/tokens/{token_id}", delete(api::tokens::delete))
        .route(
            "/oidc/oauth2/auth",
            get(pages::authorize).post(pages::authorize_post),
        )
        .merge(oidc_api())
        .route(
            "/oidc/oauth2/sessions/logout",
            get(pages::logout).post(pages::logout_confirm),
        )
        .route(
            "/oauth2/device",
            get(pages::device_page).post(pages::device_submit),
        )
        .route("/a/frontend/session", post(api::frontend::session))
        .route("/oauth2/login", get(pages::login_page).post(pages::login_submit))
        .route("/oauth2/consent", post(pages::consent_submit))
        .route("/oauth2/oob", get(pages::oob))
        .route("/oauth/oob", get(pages::oob))
        .route("/oauth2/pages.css", get(pages::stylesheet))
}

/// The provider's JSON endpoints, callable from any origin (browser apps, as in Cells); they
/// take no cookies, so CORS opens nothing a script could not already do.
fn oidc_api() -> Router<SharedApp> {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]);
    Router::new()
        .route("/oidc/.well-known/openid-configuration", get(oidc::discovery))
        .route("/oidc/.well-known/jwks.json", get(oidc::jwks))
        .route("/oidc/oauth2/token", post(oidc::token))
        .route("/oidc/oauth2/revoke", post(oidc::revoke))
        .route("/oidc/oauth2/introspect", post(oidc::introspect))
        .route("/oidc/oauth2/device/auth", post(oidc::device_authorization))
        .route("/oidc/userinfo", get(oidc::userinfo).post(oidc::userinfo))
        .layer(cors)
}

#[cfg(test)]
mod tests {
    use super::{OIDC_ROUTES, ROUTES};

    /// Every path the router registers (each `route` call in this crate's sources) is listed in
    /// `ROUTES` or `OIDC_ROUTES`; the integration test `rest::openapi_lists_every_route`
    /// checks the other way, that every listed route answers.
    #[test]
    fn every_registered_route_is_listed() {
        // Parameters are named as the handlers name them in the router, as Cells in the list.
        let normal = |path: &str| {
            let mut out = String::new();
            let mut in_parameter = false;
            for c in path.chars() {
                match c {
                    '{' => {
                        in_parameter = true;
                        out.push_str("{}");
                    }
                    '}' => in_parameter = false,
                    c if !in_parameter => out.push(c),
                    _ => {}
                }
            }
            out
        };
        let listed: Vec<String> = ROUTES
            .iter()
            .chain(OIDC_ROUTES)
            .map(|(_, path)| normal(path))
            .collect();
        let sources = [include_str!("lib.rs"), include_str!("api/content.rs")];
        let mut registered = 0;
        for source in sources {
            // The code only: this test's own text names the pattern too.
            let code = source.split("#[cfg(test)]").next().unwrap();
            for piece in code.split(".route(").skip(1) {
                let Some(quoted) = piece.trim_start().strip_prefix('"') else {
                    continue;
                };
                let path = quoted.split('"').next().unwrap();
                registered += 1;
                assert!(listed.contains(&normal(path)), "{path} is routed but not listed");
            }
        }
        assert!(
            registered >= 30,
            "found only {registered} routes: is the pattern still right?"
        );
    }
}
