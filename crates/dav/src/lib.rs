//! WebDAV at `/dav` (RFC 4918, class 1 and 2), served by dav-server over `files::Tree`.
//!
//! Authentication is HTTP Basic, realm `Cells DAV`: the password is the user's password, or a
//! personal access token or OAuth access token of that same login, all checked by
//! `Authenticator::authenticate_password` (cache, lockout, throttling included). Locks
//! (`locks`) and properties are stored in the database, so every node sees them.

mod copy;
mod fault;
pub mod fs;
pub mod locks;
pub mod propfind;

use std::convert::Infallible;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use dav_server::DavHandler;
use futures_util::StreamExt;

use cells_core::SharedApp;
use cells_core::auth::principal::Principal;
use cells_core::error::Error;
use cells_core::files::Tree;
use cells_core::files::path::{TreePath, percent_decode};
use cells_http::extract::{client_address, parse_basic};
use cells_http::precondition::{self, Current};
use cells_http::range::Ranges;
use fault::Fault;
use fs::{CellsFs, EtagUse};

const REALM: &str = "Basic realm=\"Cells DAV\"";

/// Routes `/dav`, `/dav/` and `/dav/…` (mounted as services: nesting would strip the prefix
/// dav-server needs to see).
pub fn routes(app: SharedApp) -> Router<SharedApp> {
    let service = tower::service_fn(move |request: Request<Body>| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(serve(app, request).await) }
    });
    Router::new()
        .route_service("/dav", service.clone())
        .route_service("/dav/", service.clone())
        .route_service("/dav/{*path}", service)
}

fn unauthorized(message: &str) -> Response<Body> {
    let mut response = Response::new(Body::from(format!("{message}\n")));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(REALM));
    response
}

/// Whether a URL path (or a `Destination` URL) is safe to hand on: no `.` or `..` segment
/// and no encoded `/` or NUL, in any encoding. Such requests get a plain 400.
fn is_clean_path(raw: &str) -> bool {
    let path = match raw.find("://") {
        Some(scheme) => raw[scheme + 3..]
            .find('/')
            .map_or("/", |at| &raw[scheme + 3 + at..]),
        None => raw,
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    path.split('/').all(|segment| {
        let decoded = percent_decode(segment);
        decoded != b"." && decoded != b".." && !decoded.contains(&b'/') && !decoded.contains(&0)
    })
}

fn forbidden(body: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::FORBIDDEN;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml; charset=utf-8"),
    );
    response
}

/// The workspace path of a `/dav/…` URL path, if it names something below the root.
fn tree_path_of(raw: &str) -> Option<TreePath> {
    let path = match raw.find("://") {
        Some(scheme) => raw[scheme + 3..]
            .find('/')
            .map_or("/", |at| &raw[scheme + 3 + at..]),
        None => raw,
    };
    let inside = path.strip_prefix("/dav")?;
    let decoded = String::from_utf8(percent_decode(inside)).ok()?;
    TreePath::parse(&decoded).ok()
}

/// Refusals dav-server would not make itself:
/// - PROPFIND of infinite depth (RFC 4918 §9.1; a missing Depth means infinity), which could
///   walk the whole tree;
/// - COPY or MOVE of something the credential may only traverse (it would take along just the
///   visible branch; REST refuses the same), may not move, or cannot see (404 before the
///   destination is looked at, as `Tree` checks), or of a folder into itself (§9.8.5);
/// - LOCK by a credential that may not write there: dav-server grants locks without asking
///   the filesystem, and a write lock held by a read-only token would block the owner;
/// - PROPFIND whose `If-Match`, `If-None-Match` or `If-Unmodified-Since` fails (412): both
///   `propfind::answer` and dav-server would list the target regardless.
async fn precheck(
    app: &SharedApp,
    tree: &Tree,
    parts: &axum::http::request::Parts,
    principal: &Principal,
) -> Option<Response<Body>> {
    let method = parts.method.as_str();
    if let Some(refusal) = hidden_workspace_refusal(tree, parts, principal).await {
        return Some(refusal);
    }
    let depth = parts
        .headers
        .get("depth")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    if method == "PROPFIND" && depth.is_none_or(|d| d.eq_ignore_ascii_case("infinity")) {
        return Some(forbidden(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:error xmlns:D=\"DAV:\"><D:propfind-finite-depth/></D:error>\n",
        ));
    }
    if method == "PROPFIND" {
        let path = tree_path_of(parts.uri.path());
        let inside = parts.uri.path().strip_prefix(locks::PREFIX).unwrap_or_default();
        if path.is_none() && !inside.trim_matches('/').is_empty() {
            // A path that does not parse: dav-server's answer says so.
            return None;
        }
        let status = propfind_precondition(app, &parts.headers, principal, path.as_ref()).await?;
        let mut response = Response::new(Body::from("precondition failed\n"));
        *response.status_mut() = status;
        return Some(response);
    }
    if method == "LOCK" {
        let Some(path) = tree_path_of(parts.uri.path()) else {
            // The top level (`/dav/`) lists workspaces: nothing there to lock.
            return Some(forbidden("the list of workspaces cannot be locked\n"));
        };
        return match tree.can_write_at(principal, &path).await {
            Ok(true) => None,
            Ok(false) => Some(forbidden(
                "this credential may not write here, so it may not lock\n",
            )),
            // Missing parent or invisible: let dav-server answer as it does for a PUT there.
            Err(_) => None,
        };
    }
    if method != "COPY" && method != "MOVE" {
        return None;
    }
    let source = tree_path_of(parts.uri.path())?;
    if let Some(destination) = parts
        .headers
        .get("destination")
        .and_then(|v| v.to_str().ok())
        .and_then(tree_path_of)
        && destination.starts_with(&source)
    {
        return Some(forbidden("a resource cannot be copied or moved into itself\n"));
    }
    // The source first, as `Tree` checks it (a MOVE needs the right to write it, a COPY to
    // read all of it): a source the caller cannot see is "not found" whatever the
    // destination, and one it may not move is forbidden before the destination is looked at.
    match tree.stat(principal, &source).await {
        Err(Error::NotFound(_)) => {
            let mut response = forbidden("the source does not exist\n");
            *response.status_mut() = StatusCode::NOT_FOUND;
            return Some(response);
        }
        Err(_) => return None,
        Ok(_) => {}
    }
    let allowed = match method {
        "MOVE" => tree.can_write(principal, &source).await,
        _ => tree.can_read(principal, &source).await,
    };
    match allowed {
        Ok(true) => None,
        Ok(false) if method == "MOVE" => Some(forbidden("this credential may not move the source\n")),
        Ok(false) => Some(forbidden("this credential may not read all of the source\n")),
        Err(_) => None,
    }
}

/// Whether `path` lies in a workspace the caller cannot see (not its personal files).
async fn in_hidden_workspace(tree: &Tree, principal: &Principal, path: &TreePath) -> bool {
    if path.workspace().is_personal() {
        return false;
    }
    let top = TreePath::root(path.workspace().clone());
    matches!(tree.stat(principal, &top).await, Err(Error::NotFound(_)))
}

/// 404 for a request at a path in a workspace the caller cannot see, and 412 for one whose
/// `If` header names a resource there (RFC 4918 §10.4), before dav-server's lock system looks:
/// the locks of every workspace are kept together, and a 423, a lock taken before the
/// filesystem refuses, or a condition on another resource's lock would tell a caller without
/// a grant what exists there.
async fn hidden_workspace_refusal(
    tree: &Tree,
    parts: &axum::http::request::Parts,
    principal: &Principal,
) -> Option<Response<Body>> {
    let status_only = |status: StatusCode, text: &'static str| {
        let mut response = forbidden(text);
        *response.status_mut() = status;
        response
    };
    let target = tree_path_of(parts.uri.path());
    let destination = parts
        .headers
        .get("destination")
        .and_then(|v| v.to_str().ok())
        .and_then(tree_path_of);
    for path in target.iter().chain(destination.iter()) {
        if in_hidden_workspace(tree, principal, path).await {
            return Some(status_only(StatusCode::NOT_FOUND, "not found\n"));
        }
    }
    let condition = parts
        .headers
        .get("if")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    for tagged in condition
        .split('<')
        .skip(1)
        .filter_map(|part| part.split('>').next())
    {
        if let Some(path) = tree_path_of(tagged)
            && in_hidden_workspace(tree, principal, &path).await
        {
            return Some(status_only(
                StatusCode::PRECONDITION_FAILED,
                "precondition failed\n",
            ));
        }
    }
    None
}

/// The refusal of a new lock on a workspace root or on a folder of a workspace by someone
/// other than an administrator: a lock binds every protocol (`Tree::check_locks`), and a lock
/// on a collection, of any depth, protects its members' names (RFC 4918 §7.4), so one user
/// could otherwise stop everyone else from adding or removing files there (a deep one: from
/// writing anything in it). Files of workspaces, and anything in the user's own
/// `personal-files` below its root, may be locked. A new lock is a LOCK with a body (a
/// refresh has none, §9.10.2).
async fn collection_lock_refusal(
    app: &SharedApp,
    parts: &axum::http::request::Parts,
    principal: &Principal,
) -> Option<Response<Body>> {
    if principal.is_admin() {
        return None;
    }
    let path = tree_path_of(parts.uri.path())?;
    let shared = !path.workspace().is_personal();
    let folder = || async {
        app.tree
            .stat(principal, &path)
            .await
            .is_ok_and(|entry| entry.node().is_collection())
    };
    if path.names().is_empty() || (shared && folder().await) {
        return Some(forbidden(
            "a lock on a workspace root or on a shared folder is for administrators\n",
        ));
    }
    None
}

/// `Some(412)` when a PROPFIND of `path` (`None`: the list of workspaces) fails its
/// `http::precondition`s. Only a request with a condition costs a lookup (which computes a
/// pending ETag); a target that is missing or invisible has no current representation.
async fn propfind_precondition(
    app: &SharedApp,
    headers: &axum::http::HeaderMap,
    principal: &Principal,
    path: Option<&TreePath>,
) -> Option<StatusCode> {
    if !precondition::applies(headers, false) {
        return None;
    }
    let Some(path) = path else {
        let root = Current { etag: None, mtime: 0 };
        return precondition::evaluate(headers, Some(root), false);
    };
    match app.tree.stat(principal, path).await {
        Ok(entry) => {
            let etag = fs::etag_of(entry.node());
            let current = Current {
                etag: Some(etag.as_str()).filter(|e| !e.is_empty()),
                mtime: entry.node().mtime,
            };
            precondition::evaluate(headers, Some(current), false)
        }
        Err(Error::NotFound(_)) => precondition::evaluate(headers, None, false),
        // Any other failure is the PROPFIND's own answer.
        Err(_) => None,
    }
}

/// Whether a request compares entity tags: `If-Match`, `If-None-Match` (RFC 7232 §3.1, §3.2)
/// or `If-Range` (RFC 7233 §3.2) with a quoted tag, or an `If` header with a bracketed one
/// (RFC 4918 §10.4). Only such a request waits for the MD5 of a file written without it
/// (`files::etags`); any other sees such a file without an ETag, as RFC 7232 §2.3 allows,
/// until the ETag worker has computed it.
fn compares_entity_tags(headers: &axum::http::HeaderMap) -> bool {
    let holds = |name: &str, mark: u8| {
        headers
            .get_all(name)
            .iter()
            .any(|value| value.as_bytes().contains(&mark))
    };
    holds("if-match", b'"') || holds("if-none-match", b'"') || holds("if-range", b'"') || holds("if", b'[')
}

fn bad_request(message: &str) -> Response<Body> {
    text_answer(StatusCode::BAD_REQUEST, &format!("{message}\n"))
}

fn text_answer(status: StatusCode, text: &str) -> Response<Body> {
    let mut response = Response::new(Body::from(text.to_string()));
    *response.status_mut() = status;
    response
}

/// 503 with `Retry-After`: the database or the blob store does not answer now.
fn unavailable() -> Response<Body> {
    let mut response = text_answer(
        StatusCode::SERVICE_UNAVAILABLE,
        "the service is temporarily unavailable; try again later\n",
    );
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(cells_http::error::RETRY_AFTER_UNAVAILABLE),
    );
    response
}

/// Serve one WebDAV request, with the user-content headers (`http::user_content`).
async fn serve(app: SharedApp, request: Request<Body>) -> Response<Body> {
    let method = request.method().clone();
    let mut response = answer(app, request).await;
    let status = response.status();
    cells_http::user_content::harden(&method, status, response.headers_mut());
    response
}

async fn answer(app: SharedApp, request: Request<Body>) -> Response<Body> {
    let (mut parts, body) = request.into_parts();
    let destination_ok = parts
        .headers
        .get("destination")
        .map(|d| d.to_str().is_ok_and(is_clean_path))
        .unwrap_or(true);
    if !is_clean_path(parts.uri.path()) || !destination_ok {
        return bad_request("paths may not contain . or .. segments, encoded slashes or NUL");
    }
    let Some(value) = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return unauthorized("credentials required");
    };
    let Ok((login, secret)) = parse_basic(value) else {
        return unauthorized("use HTTP Basic: login and password (or a token of that login)");
    };
    let client = cells_core::auth::Client {
        protocol: "dav",
        address: client_address(&parts),
    };
    let principal = match app.auth.authenticate_password(&login, &secret, client).await {
        Ok(principal) => principal,
        Err(Error::Throttled(seconds)) => {
            let mut response = Response::new(Body::from("too many failed attempts\n"));
            *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            return response;
        }
        Err(error @ (Error::Unauthenticated(_) | Error::AccountLocked)) => {
            return unauthorized(&error.to_string());
        }
        Err(Error::Unavailable(_)) => return unavailable(),
        Err(error) => {
            tracing::error!(%error, "WebDAV authentication failed");
            let mut response = Response::new(Body::from("internal error\n"));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            return response;
        }
    };
    // One request's view of the tree: each workspace it touches is resolved once.
    let tree = app.tree.remembering();
    if let Some(refusal) = precheck(&app, &tree, &parts, &principal).await {
        return refusal;
    }
    if let Some(answer) = copy::copy_folder(&app, &parts, &principal).await {
        return answer;
    }
    // Every body but a PUT's is read here, limited (an oversized one is drained before the
    // 413, so that a client still sending reads our answer instead of a reset connection),
    // and its XML shape checked before any parser sees it: dav-server's parser recurses per
    // element, and a deep body would overflow the stack and abort the process.
    let body_cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let body = if !matches!(parts.method.as_str(), "PUT" | "PATCH") {
        match cells_http::extract::read_limited(body).await {
            Ok(bytes) => {
                if let Err(refusal) = cells_http::xml::check(&bytes) {
                    return bad_request(&refusal.to_string());
                }
                if parts.method.as_str() == "LOCK"
                    && !bytes.is_empty()
                    && let Some(refusal) = collection_lock_refusal(&app, &parts, &principal).await
                {
                    return refusal;
                }
                if parts.method.as_str() == "PROPFIND"
                    && let Some(response) = propfind::answer(&app, &parts, &bytes, &principal).await
                {
                    return response;
                }
                Body::from(bytes)
            }
            Err(Error::TooLarge(_)) => {
                let mut response = Response::new(Body::from("request body too large\n"));
                *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
                return response;
            }
            Err(_) => return bad_request("could not read the request body"),
        }
    } else {
        // dav-server answers a body that fails while it reads it 502 (or 504 when it stalled):
        // noted here, and answered 400 below, as the client's fault (issue 31).
        let flag = body_cut.clone();
        Body::from_stream(body.into_data_stream().map(move |chunk| {
            if chunk.is_err() {
                flag.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            chunk
        }))
    };
    // The filesystem and the lock system are made per request (each caches what one request
    // has already read); the locks themselves are in the database, seen by every node.
    // A PROPFIND left to dav-server may show `getetag`, so it settles pending ETags too; its
    // conditions were evaluated by `precheck`, as dav-server compares none for PROPFIND.
    let etags = if parts.method.as_str() == "PROPFIND" {
        EtagUse::Listed
    } else if compares_entity_tags(&parts.headers) {
        EtagUse::Compared
    } else {
        EtagUse::Sent
    };
    let handler: DavHandler<Principal> = DavHandler::builder()
        .filesystem(Box::new(CellsFs::new(app.clone(), &tree, etags)))
        .locksystem(locks::DbLocks::new(&app, &principal))
        .strip_prefix(locks::PREFIX)
        // Large reads: a GET of a big file is a few syscalls per MiB, not hundreds.
        .read_buf_size(1 << 20)
        .build_handler();
    // dav-server serves every range asked for: merge them first (`http::range`).
    if let Some(value) = parts.headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        match cells_http::range::coalesce(value) {
            Ranges::Keep => {}
            Ranges::Replace(merged) => {
                if let Ok(merged) = HeaderValue::from_str(&merged) {
                    parts.headers.insert(header::RANGE, merged);
                }
            }
            Ranges::Ignore => {
                parts.headers.remove(header::RANGE);
            }
        }
    }
    let lock_target = (parts.method.as_str() == "LOCK")
        .then(|| tree_path_of(parts.uri.path()))
        .flatten()
        .map(|path| (path, principal.clone()));
    let request = Request::from_parts(parts, body);
    let (response, fault) =
        fault::watch(handler.handle_guarded(request, principal.login().to_string(), principal)).await;
    match fault {
        Some(Fault::Locked) if matches!(response.status(), StatusCode::FORBIDDEN) => {
            return text_answer(StatusCode::LOCKED, "the resource is locked\n");
        }
        Some(Fault::Unavailable)
            if response.status().is_server_error() || response.status() == StatusCode::LOCKED =>
        {
            return unavailable();
        }
        _ => {}
    }
    // dav-server answers a LOCK of an unmapped URL 201 after opening the file for writing,
    // but our files appear only when a write completes. RFC 4918 §7.3: the lock creates an
    // empty, locked resource, which davfs2 and Office-style clients then write and MOVE.
    if body_cut.load(std::sync::atomic::Ordering::Relaxed) && response.status().is_server_error() {
        tracing::info!(status = %response.status(), "WebDAV: the request body was cut short; answered 400");
        let mut cut = Response::new(Body::from("the request body was cut short\n"));
        *cut.status_mut() = StatusCode::BAD_REQUEST;
        cut.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return cut;
    }
    if response.status() == StatusCode::CREATED
        && let Some((path, principal)) = lock_target
    {
        match app.tree.create_empty(&principal, &path).await {
            Ok(_) | Err(Error::AlreadyExists(_)) => {}
            Err(error) => tracing::warn!(%error, %path, "WebDAV: the locked empty file was not created"),
        }
    }
    response.map(Body::new)
}

#[cfg(test)]
mod tests {
    use super::{compares_entity_tags, is_clean_path};

    #[test]
    fn only_entity_tag_conditions_settle_pending_etags() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = axum::http::HeaderMap::new();
            for (name, value) in pairs {
                map.append(*name, axum::http::HeaderValue::from_static(value));
            }
            map
        };
        for comparing in [
            &[("if-match", "\"abc\"")][..],
            &[("if-none-match", "W/\"abc\"")],
            &[("if-range", "\"abc\"")],
            &[("if", "(<urn:uuid:1> [\"abc\"])")],
            &[("if-none-match", "*"), ("if-match", "\"abc\"")],
        ] {
            assert!(compares_entity_tags(&headers(comparing)), "{comparing:?}");
        }
        for not_comparing in [
            &[][..],
            &[("if-match", "*")],
            &[("if-none-match", "*")],
            &[("if-range", "Wed, 21 Oct 2015 07:28:00 GMT")],
            &[("if", "(<urn:uuid:1>)")],
            &[("if-modified-since", "Wed, 21 Oct 2015 07:28:00 GMT")],
        ] {
            assert!(
                !compares_entity_tags(&headers(not_comparing)),
                "{not_comparing:?}"
            );
        }
    }

    #[test]
    fn dot_segments_and_encoded_slashes_are_refused() {
        for bad in [
            "/dav/personal-files/../x",
            "/dav/personal-files/%2e%2e/x",
            "/dav/personal-files/%2E%2e/x",
            "/dav/personal-files/./x",
            "/dav/personal-files/a%2fb",
            "/dav/personal-files/a%00b",
            "http://host/dav/personal-files/%2e%2e/x",
        ] {
            assert!(!is_clean_path(bad), "{bad}");
        }
        for good in [
            "/dav/",
            "/dav/personal-files/a%20b/c.txt",
            "http://host:8080/dav/x/y",
            "/dav/personal-files/..hidden",
        ] {
            assert!(is_clean_path(good), "{good}");
        }
    }
}
