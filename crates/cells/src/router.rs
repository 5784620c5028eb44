//! The one router: every protocol crate's routes behind the layers every request goes through
//! (tracing without secrets, panic catching, security headers, the in-flight limit), and the
//! fallback that tells S3 and the console's home page apart from an unknown path.

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use cells_core::SharedApp;
use cells_core::error::Error;
use cells_http::error::Failure;
use cells_http::{error, listener, request_log};

pub fn router(app: SharedApp) -> Router {
    // HSTS only where it cannot lock anyone out (`Config::sends_hsts`); one year, without
    // `includeSubDomains`: other hosts of the domain are not ours to decide for.
    let hsts = app
        .config
        .sends_hsts()
        .then(|| HeaderValue::from_static("max-age=31536000"));
    Router::new()
        .merge(cells_rest::routes())
        .merge(cells_dav::routes(app.clone()))
        .merge(cells_s3::routes(app.clone()))
        .merge(cells_console::routes())
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
        .layer(SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            move |_: &Response| hsts.clone(),
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
    let service = cells_s3::service(app.clone());
    tower::service_fn(move |request: axum::http::Request<axum::body::Body>| {
        let app = app.clone();
        let service = service.clone();
        async move {
            if cells_s3::is_s3_request(&request) {
                Ok(cells_s3::serve(app, service, request).await)
            } else if request.uri().path() == "/" && request.method() == Method::GET {
                Ok(cells_console::home().await)
            } else {
                Ok(not_found().await.into_response())
            }
        }
    })
}

async fn not_found() -> Failure {
    Failure(Error::NotFound("no such endpoint".into()))
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
    Failure(Error::internal(anyhow::anyhow!("handler panicked"))).into_response()
}
