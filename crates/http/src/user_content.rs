//! The headers every response carrying user content gets, whatever protocol served it: user
//! content never runs as a page of our origin.
//!
//! Files are served from the same origin as the console and the OpenID provider's pages, so an
//! uploaded `x.html` or `x.svg` opened in a signed-in browser could otherwise act as the user
//! (read the console's CSRF token, create tokens, create administrators). Every response of
//! the content paths (REST `/a/content`, WebDAV, S3, console downloads) therefore carries:
//! - `Content-Security-Policy: sandbox; default-src 'none'`: the document gets an opaque
//!   origin, and runs no script and loads nothing, whatever its type;
//! - `X-Content-Type-Options: nosniff`: a browser keeps the declared type;
//! - for a successful download of an active type (HTML, XHTML, SVG, XML, XSL, JavaScript),
//!   whether stored or asked for with S3's `response-content-type`, `Content-Disposition:
//!   attachment` (keeping the file name a client asked for): it is saved, never rendered.
//!
//! A separate content origin (a `--content-url` setting) is not offered: with these headers the
//! document already has an opaque origin, and a second origin would need its own credential
//! scheme (cookies do not follow), DNS name and certificate for every deployment.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

/// The sandbox for user content.
pub const CSP: &str = "sandbox; default-src 'none'";

/// Add the user-content headers to a response of `method` (see the module comment).
pub fn harden(method: &Method, status: StatusCode, headers: &mut HeaderMap) {
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let download = (*method == Method::GET || *method == Method::HEAD)
        && (status.is_success() || status == StatusCode::NOT_MODIFIED);
    let active = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_none_or(is_active);
    if download && active {
        let disposition = headers
            .get(header::CONTENT_DISPOSITION)
            .and_then(|value| value.to_str().ok())
            .map(as_attachment)
            .unwrap_or_else(|| "attachment".to_string());
        if let Ok(value) = HeaderValue::from_str(&disposition) {
            headers.insert(header::CONTENT_DISPOSITION, value);
        } else {
            headers.insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment"),
            );
        }
    }
}

/// `harden` as a middleware, for routes that serve user content.
pub async fn layer(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let mut response = next.run(request).await;
    let status = response.status();
    harden(&method, status, response.headers_mut());
    response
}

/// Whether a browser would run a document of this type as a page or script (a type it could
/// not parse counts as active: a browser may sniff it).
fn is_active(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence.is_empty() || !essence.contains('/') {
        return true;
    }
    let subtype = essence.split_once('/').map_or("", |(_, subtype)| subtype);
    matches!(
        essence.as_str(),
        "text/html"
            | "application/xhtml+xml"
            | "image/svg+xml"
            | "text/xml"
            | "application/xml"
            | "text/xsl"
            | "application/xslt+xml"
            | "text/javascript"
            | "application/javascript"
            | "application/x-javascript"
            | "text/ecmascript"
            | "application/ecmascript"
            | "multipart/x-mixed-replace"
    ) || subtype.ends_with("+xml")
        || subtype.contains("html")
}

/// A `Content-Disposition` made `attachment`, keeping its parameters (the file name).
fn as_attachment(disposition: &str) -> String {
    match disposition.split_once(';') {
        Some((_, parameters)) => format!("attachment;{parameters}"),
        None => "attachment".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::{CSP, harden};
    use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};

    fn served(method: Method, status: StatusCode, pairs: &[(header::HeaderName, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(name.clone(), HeaderValue::from_static(value));
        }
        harden(&method, status, &mut headers);
        headers
    }

    #[test]
    fn active_types_are_attachments_and_everything_is_sandboxed() {
        for active in [
            "text/html",
            "TEXT/HTML; charset=utf-8",
            "image/svg+xml",
            "application/xhtml+xml",
            "text/xml",
            "application/javascript",
            "application/atom+xml",
            "",
            "nonsense",
        ] {
            let headers = served(Method::GET, StatusCode::OK, &[(header::CONTENT_TYPE, active)]);
            assert_eq!(headers[header::CONTENT_DISPOSITION], "attachment", "{active}");
            assert_eq!(headers[header::CONTENT_SECURITY_POLICY], CSP);
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        }
        for passive in ["text/plain", "image/png", "application/octet-stream", "video/mp4"] {
            let headers = served(Method::GET, StatusCode::OK, &[(header::CONTENT_TYPE, passive)]);
            assert!(headers.get(header::CONTENT_DISPOSITION).is_none(), "{passive}");
            assert_eq!(headers[header::CONTENT_SECURITY_POLICY], CSP);
        }
    }

    #[test]
    fn an_inline_override_becomes_an_attachment_with_its_name() {
        let headers = served(
            Method::GET,
            StatusCode::PARTIAL_CONTENT,
            &[
                (header::CONTENT_TYPE, "text/html"),
                (header::CONTENT_DISPOSITION, "inline; filename=\"x.html\""),
                (header::CONTENT_SECURITY_POLICY, "script-src *"),
            ],
        );
        assert_eq!(
            headers[header::CONTENT_DISPOSITION],
            "attachment; filename=\"x.html\""
        );
        assert_eq!(headers[header::CONTENT_SECURITY_POLICY], CSP);
    }

    #[test]
    fn other_answers_are_sandboxed_but_not_attachments() {
        let headers = served(
            Method::from_bytes(b"PROPFIND").unwrap(),
            StatusCode::MULTI_STATUS,
            &[(header::CONTENT_TYPE, "application/xml")],
        );
        assert!(headers.get(header::CONTENT_DISPOSITION).is_none());
        assert_eq!(headers[header::CONTENT_SECURITY_POLICY], CSP);
    }
}
