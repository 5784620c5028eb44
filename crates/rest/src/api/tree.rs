//! `/a/tree/*`: stat, list, create, delete and move nodes, in Cells' request/response shapes.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::node_json;
use cells_core::SharedApp;
use cells_core::error::Error;
use cells_core::files::blob::bytes_stream;
use cells_core::files::path::TreePath;
use cells_http::error::Result;
use cells_http::extract::ApiJson;
use cells_http::extract::Caller;
use cells_http::extract::LockTokens;

/// Most paths one request may name.
const MAX_PATHS: usize = 1000;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StatsRequest {
    node_paths: Vec<String>,
}

/// `POST /a/tree/stats` `{"NodePaths":[…]}` → `{"Nodes":[…]}`. A path ending in `/*` lists
/// that folder's children (Cells' syntax); `/*` alone lists the workspaces. Paths that do not exist are left out; when none of
/// them exists the answer is 404.
pub async fn stats(
    State(app): State<SharedApp>,
    Caller(principal): Caller,
    ApiJson(request): ApiJson<StatsRequest>,
) -> Result<Json<Value>> {
    if request.node_paths.is_empty() || request.node_paths.len() > MAX_PATHS {
        return Err(Error::invalid("NodePaths", format!("give 1 to {MAX_PATHS} paths")).into());
    }
    let mut nodes = Vec::new();
    let mut found_any = false;
    for text in &request.node_paths {
        if let Some(folder) = text.strip_suffix("/*") {
            if folder.trim_matches('/').is_empty() {
                // `/*`: the top of the tree, the workspaces the caller can see.
                found_any = true;
                nodes.extend(app.tree.workspaces(&principal).await?.iter().map(node_json));
                continue;
            }
            let path = TreePath::parse(folder)?;
            let (_, children) = app.tree.list(&principal, &path).await?;
            found_any = true;
            nodes.extend(children.iter().map(node_json));
            continue;
        }
        let path = TreePath::parse(text)?;
        match app.tree.stat(&principal, &path).await {
            Ok(entry) => {
                found_any = true;
                nodes.push(node_json(&entry));
            }
            Err(Error::NotFound(_)) => {}
            Err(other) => return Err(other.into()),
        }
    }
    if !found_any {
        return Err(Error::NotFound("none of the requested nodes exists".into()).into());
    }
    Ok(Json(json!({ "Nodes": nodes })))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeSpec {
    path: String,
    #[serde(default, rename = "Type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateRequest {
    nodes: Vec<NodeSpec>,
    #[serde(default)]
    recursive: bool,
}

/// `POST /a/tree/create` `{"Nodes":[{"Path","Type":"COLLECTION"|"LEAF"}],"Recursive"}` →
/// `{"Children":[…]}`. LEAF creates an empty file.
pub async fn create(
    State(app): State<SharedApp>,
    Caller(principal): Caller,
    LockTokens(proof): LockTokens,
    ApiJson(request): ApiJson<CreateRequest>,
) -> Result<Json<Value>> {
    check_count("Nodes", request.nodes.len())?;
    let tree = app.tree.proving(proof);
    let mut children = Vec::new();
    for spec in &request.nodes {
        let path = TreePath::parse(&spec.path)?;
        let entry = match spec.kind.as_deref().unwrap_or("COLLECTION") {
            "COLLECTION" => tree.create_folder(&principal, &path, request.recursive).await?,
            "LEAF" => {
                if tree.stat(&principal, &path).await.is_ok() {
                    return Err(Error::AlreadyExists(path.to_string()).into());
                }
                tree.put(&principal, &path, bytes_stream(bytes::Bytes::new()))
                    .await?
            }
            other => {
                return Err(Error::invalid("Type", format!("{other:?}: expected COLLECTION or LEAF")).into());
            }
        };
        children.push(node_json(&entry));
    }
    Ok(Json(json!({ "Children": children })))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteRequest {
    nodes: Vec<NodeSpec>,
}

/// `POST /a/tree/delete` `{"Nodes":[{"Path"}]}` → `{"Nodes":[…deleted]}`. Deletion is
/// immediate and recursive (Cells answers with background jobs; we have none to wait for).
pub async fn delete(
    State(app): State<SharedApp>,
    Caller(principal): Caller,
    LockTokens(proof): LockTokens,
    ApiJson(request): ApiJson<DeleteRequest>,
) -> Result<Json<Value>> {
    check_count("Nodes", request.nodes.len())?;
    let paths = request
        .nodes
        .iter()
        .map(|spec| TreePath::parse(&spec.path))
        .collect::<cells_core::error::Result<Vec<_>>>()?;
    let tree = app.tree.proving(proof);
    let mut deleted = Vec::new();
    for path in &paths {
        deleted.push(node_json(&tree.delete(&principal, path).await?));
    }
    Ok(Json(json!({ "Nodes": deleted, "DeleteJobs": [] })))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MoveRequest {
    from: String,
    to: String,
}

/// `POST /a/tree/move` `{"From":"personal-files/a","To":"personal-files/b/a2"}` → `{"Node"}`.
/// Renames and/or moves one node; its UUID does not change. `To` must not exist.
pub async fn rename(
    State(app): State<SharedApp>,
    Caller(principal): Caller,
    LockTokens(proof): LockTokens,
    ApiJson(request): ApiJson<MoveRequest>,
) -> Result<Json<Value>> {
    let from = TreePath::parse(&request.from)?;
    let to = TreePath::parse(&request.to)?;
    let entry = app.tree.proving(proof).rename(&principal, &from, &to).await?;
    Ok(Json(json!({ "Node": node_json(&entry) })))
}

/// `POST /a/tree/copy` `{"From":"personal-files/a","To":"common-files/a"}` → `{"Node"}`.
/// Copies a file, or a folder with everything below it; the copy gets new UUIDs. `To` must
/// not exist.
pub async fn copy(
    State(app): State<SharedApp>,
    Caller(principal): Caller,
    LockTokens(proof): LockTokens,
    ApiJson(request): ApiJson<MoveRequest>,
) -> Result<Json<Value>> {
    let from = TreePath::parse(&request.from)?;
    let to = TreePath::parse(&request.to)?;
    let entry = app.tree.proving(proof).copy(&principal, &from, &to).await?;
    Ok(Json(json!({ "Node": node_json(&entry) })))
}

fn check_count(field: &str, count: usize) -> Result<()> {
    if count == 0 || count > MAX_PATHS {
        return Err(Error::invalid(field, format!("give 1 to {MAX_PATHS} nodes")).into());
    }
    Ok(())
}
