//! Our HTML pages (the console's and the OpenID provider's): a rendered askama template
//! (every value escaped) with the headers every page of ours carries.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// `template` rendered, sent with `csp`, `X-Frame-Options: DENY` (no page of ours is framed)
/// and `no-store` (pages carry CSRF tokens and personal data). A template that fails to render
/// is logged and answered with a bare 500.
pub fn render(status: StatusCode, template: &impl Template, csp: &'static str) -> Response {
    let body = match template.render() {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(%error, "a page template failed to render");
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
        }
    };
    let mut response = (status, Html(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
