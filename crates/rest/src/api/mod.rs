//! REST handlers under `/a`, keeping Cells' paths and JSON shapes (PascalCase fields, 64-bit
//! numbers of tree nodes as strings, as Cells' gRPC gateway writes them).

pub mod config;
pub mod content;
pub mod frontend;
pub mod tokens;
pub mod tree;
pub mod users;
pub mod workspaces;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use cells_core::SharedApp;
use cells_core::files::Entry;

/// The OpenAPI 3 document of the REST API.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// `GET /healthz`: 200 while this node serves; 503 while the database or the object store does
/// not answer, or the node is shutting down, so that a balancer sends its work elsewhere. Low disk space is a
/// field, not a 503: the node still serves reads and deletes.
pub async fn health(State(app): State<SharedApp>) -> Response {
    let free = app.tree.free_space();
    let low_space = app.tree.check_space().is_err();
    let (status, text) = if app.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down")
    } else if !app.database_ready().await {
        (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
    } else if !app.blob_store_up() {
        (StatusCode::SERVICE_UNAVAILABLE, "object store unavailable")
    } else {
        (StatusCode::OK, "ready")
    };
    let body = json!({ "Status": text, "FreeBytes": free, "LowSpace": low_space });
    (status, Json(body)).into_response()
}

/// `GET /metrics`: Prometheus text counters (no secrets, no per-user data).
pub async fn metrics(State(app): State<SharedApp>) -> Response {
    let body = format!(
        "# HELP cells_token_use_writes_total Token rows written to record uses (coalesced).\n\
         # TYPE cells_token_use_writes_total counter\n\
         cells_token_use_writes_total {}\n\
         # HELP cells_credential_cache_hits_total Credentials verified from the cache.\n\
         # TYPE cells_credential_cache_hits_total counter\n\
         cells_credential_cache_hits_total {}\n\
         # HELP cells_password_verifications_total Passwords verified (Argon2id or PBKDF2 runs).\n\
         # TYPE cells_password_verifications_total counter\n\
         cells_password_verifications_total {}\n\
         # HELP cells_database_up Whether the database answered the last ping (1) or not (0).\n\
         # TYPE cells_database_up gauge\n\
         cells_database_up {}\n\
         # HELP cells_blob_store_up Whether the blob store answered the last ping (1) or not (0).\n\
         # TYPE cells_blob_store_up gauge\n\
         cells_blob_store_up {}\n\
         # HELP cells_blob_free_bytes Free space on the file system of the blobs.\n\
         # TYPE cells_blob_free_bytes gauge\n\
         cells_blob_free_bytes {}\n\
         # HELP cells_low_space Whether writes are refused for lack of disk space (1) or not (0).\n\
         # TYPE cells_low_space gauge\n\
         cells_low_space {}\n",
        app.auth.usage().writes(),
        app.auth.cache_hits(),
        app.auth.hasher().verifications(),
        u8::from(app.database_up()),
        u8::from(app.blob_store_up()),
        app.tree.free_space().unwrap_or(0),
        u8::from(app.tree.check_space().is_err()),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// `GET /a/openapi.json`.
pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// A tree node in Cells' JSON shape.
pub fn node_json(entry: &Entry) -> Value {
    let node = &entry.node();
    let name = entry.path().name().unwrap_or(entry.path().workspace().as_str());
    json!({
        "Uuid": node.id,
        "Path": entry.path().to_string(),
        "Type": node.kind.as_str(),
        "Size": node.size.to_string(),
        "MTime": node.mtime.to_string(),
        "Etag": node.etag,
        "MetaStore": { "name": serde_json::to_string(name).unwrap_or_default() },
    })
}
