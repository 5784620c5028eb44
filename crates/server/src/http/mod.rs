//! The HTTP edge: one router for the REST API (`/a/…`) and health, with the layers every
//! request goes through (tracing without secrets, panic catching, security headers).

pub mod api;
pub mod error;
pub mod extract;
pub mod listener;
pub mod oidc;
pub mod pages;
pub mod precondition;
pub mod range;
pub mod request_log;
pub mod session;
pub mod user_content;
pub mod xml;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{Any, CorsLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::SharedApp;
use crate::error::Error;

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
    ("post", "/oidc/oauth2/device/auth"),
    ("get", "/oauth2/device"),
    ("post", "/oauth2/device"),
    ("get", "/oidc/oauth2/sessions/logout"),
    ("post", "/oidc/oauth2/sessions/logout"),
];

pub fn router(app: SharedApp) -> Router {
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
        .merge(crate::dav::routes(app.clone()))
        .merge(crate::s3::routes(app.clone()))
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
        .merge(crate::console::routes())
        .fallback_service(fallback_service(app.clone()))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(axum::middleware::from_fn(listener::refuse_over_limit))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_log::span)
                .on_response(request_log::on_response),
        )
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
        ]))
        .with_state(app)
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

/// Anything unrouted: S3 when the request carries an AWS signature (ListBuckets is a signed
/// `GET /`; another bucket gets S3's NoSuchBucket), the web console for a browser's `GET /`,
/// otherwise not found.
fn fallback_service(
    app: SharedApp,
) -> impl tower::Service<
    axum::http::Request<axum::body::Body>,
    Response = Response,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<Response, std::convert::Infallible>> + Send,
> + Clone {
    let service = crate::s3::service(app.clone());
    tower::service_fn(move |request: axum::http::Request<axum::body::Body>| {
        let app = app.clone();
        let service = service.clone();
        async move {
            if crate::s3::is_s3_request(&request) {
                Ok(crate::s3::serve(app, service, request).await)
            } else if request.uri().path() == "/" && request.method() == Method::GET {
                Ok(crate::console::home().await)
            } else {
                Ok(not_found().await.into_response())
            }
        }
    })
}

async fn not_found() -> Error {
    Error::NotFound("no such endpoint".into())
}

async fn method_not_allowed() -> Response {
    let mut response = error::rest_error(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "Method Not Allowed",
        "this endpoint does not accept this method",
    );
    response.headers_mut().insert(
        header::ALLOW,
        HeaderValue::from_static("GET, HEAD, PUT, POST, DELETE"),
    );
    response
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    Error::internal(anyhow::anyhow!("handler panicked")).into_response()
}
