//! COPY of a folder (RFC 4918 §9.8), answered here rather than by dav-server, which copies a
//! folder file by file: cut short (a client that gives up, a crash), that leaves part of the
//! tree at the destination and the retry fails. `Tree::copy_over` builds the copy out of
//! sight and moves it into place in one statement, so the destination shows all of it or
//! nothing. A file, or a folder with `Depth: 0`, is still dav-server's.

use axum::body::Body;
use axum::http::{Response, StatusCode};

use cells_core::SharedApp;
use cells_core::auth::principal::Principal;
use cells_core::error::Error;
use cells_core::locks::LockProof;
use cells_http::extract::if_header_tokens;

use crate::{text_answer, tree_path_of, unavailable};

/// The answer to a COPY of a folder, or `None` for dav-server to answer.
pub async fn copy_folder(
    app: &SharedApp,
    parts: &axum::http::request::Parts,
    principal: &Principal,
) -> Option<Response<Body>> {
    if parts.method.as_str() != "COPY" {
        return None;
    }
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if header("depth").is_some_and(|depth| depth == "0") {
        return None;
    }
    let source = tree_path_of(parts.uri.path())?;
    let destination = tree_path_of(header("destination")?)?;
    // Anything but a folder the caller can see is dav-server's to answer (a file, a 404).
    let entry = app.tree.stat(principal, &source).await.ok()?;
    if !entry.node().is_collection() {
        return None;
    }
    // §10.6: `Overwrite: F` fails on an existing destination; anything else replaces it.
    let overwrite = !header("overwrite").is_some_and(|o| o.eq_ignore_ascii_case("F"));
    // The destination's locks are proven by the tokens of the `If` header (§10.4), as
    // dav-server checks them for the methods it answers.
    let tokens = if_header_tokens(parts.headers.get_all("if").iter().filter_map(|v| v.to_str().ok()));
    let tree = app.tree.proving(LockProof::Tokens(tokens.into()));
    match tree.copy_over(principal, &source, &destination, overwrite).await {
        Ok((_, true)) => Some(text_answer(StatusCode::NO_CONTENT, "")),
        Ok((_, false)) => Some(text_answer(StatusCode::CREATED, "")),
        Err(Error::AlreadyExists(_)) => Some(text_answer(
            StatusCode::PRECONDITION_FAILED,
            "the destination exists and Overwrite is F\n",
        )),
        Err(Error::Unavailable(_)) => Some(unavailable()),
        Err(error) => {
            let status = match &error {
                // §9.8.5: a missing collection on the way is 409.
                Error::ParentMissing(_) | Error::NotFound(_) => StatusCode::CONFLICT,
                other => cells_http::error::status(other),
            };
            if let Error::Internal(cause) = &error {
                tracing::error!(error = ?cause, "WebDAV COPY failed");
            }
            Some(text_answer(status, &format!("{error}\n")))
        }
    }
}
