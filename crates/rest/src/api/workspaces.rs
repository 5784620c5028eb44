//! `/a/workspace` and `/a/group`: workspaces (Cells' `/a/workspace/{Slug}` shape: `Slug`,
//! `Label`, `Description`), their grants and quotas, and groups of users with their members.
//! Changes are for administrators; any caller lists the workspaces it can reach.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use cells_core::SharedApp;
use cells_core::error::Error;
use cells_core::records::{Grantee, Group, User, Workspace, WorkspaceGrant};
use cells_core::workspaces::{self, WorkspaceSpec};
use cells_http::error::Result;
use cells_http::extract::{Admin, ApiJson, Caller};

fn grant_json(grant: &WorkspaceGrant, users: &[User], groups: &[Group]) -> Value {
    let rights = workspaces::rights_text(grant.read, grant.write);
    match grant.grantee {
        Grantee::Everyone => json!({ "Everyone": true, "Rights": rights }),
        Grantee::User(id) => json!({
            "User": users.iter().find(|u| u.id == id).map(|u| u.login.as_str()),
            "Rights": rights,
        }),
        Grantee::Group(id) => json!({
            "Group": groups.iter().find(|g| g.id == id).map(|g| g.name.as_str()),
            "Rights": rights,
        }),
    }
}

fn workspace_json(workspace: &Workspace) -> Value {
    json!({
        "UUID": workspace.id,
        "Slug": workspace.slug,
        "Label": workspace.label,
        "Description": workspace.description,
        "Quota": workspace.quota,
    })
}

/// `GET /a/workspace`: every workspace with its grants for an administrator; for anyone
/// else, the workspaces they may use, with their own rights there.
pub async fn list(State(app): State<SharedApp>, Caller(caller): Caller) -> Result<Json<Value>> {
    let workspaces = if caller.is_admin() {
        let users = cells_core::users::list(&app).await?;
        let groups = workspaces::list_groups(&app).await?;
        workspaces::list_workspaces(&app)
            .await?
            .iter()
            .map(|(workspace, grants)| {
                let mut out = workspace_json(workspace);
                out["Grants"] = grants.iter().map(|g| grant_json(g, &users, &groups)).collect();
                out
            })
            .collect::<Vec<_>>()
    } else {
        workspaces::reachable(&app, &caller)
            .await?
            .into_iter()
            .map(|(workspace, rights)| {
                let mut out = workspace_json(&workspace);
                out["Rights"] = workspaces::rights_text(rights.read, rights.write).into();
                out
            })
            .collect()
    };
    Ok(Json(
        json!({ "Workspaces": workspaces, "Total": workspaces.len() }),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutWorkspace {
    slug: Option<String>,
    label: Option<String>,
    description: Option<String>,
    /// `10G`, bytes, or `none`.
    quota: Option<String>,
}

/// `PUT /a/workspace/{Slug}`: create the workspace, or change its label, description, quota.
pub async fn put(
    State(app): State<SharedApp>,
    _: Admin,
    Path(slug): Path<String>,
    ApiJson(body): ApiJson<PutWorkspace>,
) -> Result<Json<Value>> {
    if body.slug.as_ref().is_some_and(|s| *s != slug) {
        return Err(Error::invalid(
            "Slug",
            "differs from the slug in the URL; slugs cannot be renamed",
        )
        .into());
    }
    let quota = body.quota.as_deref().map(workspaces::parse_quota).transpose()?;
    let found = match workspaces::find_workspace(&app, &slug).await? {
        None => {
            workspaces::create_workspace(
                &app,
                WorkspaceSpec {
                    slug: &slug,
                    label: body.label.as_deref(),
                    description: body.description.as_deref().unwrap_or(""),
                    quota: quota.flatten(),
                },
            )
            .await?
        }
        Some(found) => {
            let label = body.label.as_deref().unwrap_or(&found.label);
            let description = body.description.as_deref().unwrap_or(&found.description);
            workspaces::describe_workspace(&app, &found, label, description).await?;
            if let Some(quota) = quota {
                workspaces::set_workspace_quota(&app, &found, quota).await?;
            }
            workspaces::workspace(&app, &slug).await?
        }
    };
    Ok(Json(workspace_json(&found)))
}

pub async fn delete(State(app): State<SharedApp>, _: Admin, Path(slug): Path<String>) -> Result<Json<Value>> {
    let found = workspaces::workspace(&app, &slug).await?;
    workspaces::delete_workspace(&app, &found).await?;
    Ok(Json(json!({ "Success": true })))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GrantBody {
    user: Option<String>,
    group: Option<String>,
    #[serde(default)]
    everyone: bool,
    /// `r`, `w` or `rw`; not for a revocation.
    rights: Option<String>,
}

async fn grantee_of(app: &SharedApp, body: &GrantBody) -> Result<Grantee> {
    match (&body.user, &body.group, body.everyone) {
        (Some(login), None, false) => Ok(Grantee::User(cells_core::users::get_user(app, login).await?.id)),
        (None, Some(name), false) => Ok(Grantee::Group(workspaces::group(app, name).await?.id)),
        (None, None, true) => Ok(Grantee::Everyone),
        _ => Err(Error::invalid("User", "give exactly one of User, Group or Everyone").into()),
    }
}

/// `POST /a/workspace/{Slug}/grant` `{"Group":"marketing","Rights":"rw"}`.
pub async fn grant(
    State(app): State<SharedApp>,
    _: Admin,
    Path(slug): Path<String>,
    ApiJson(body): ApiJson<GrantBody>,
) -> Result<Json<Value>> {
    let found = workspaces::workspace(&app, &slug).await?;
    let rights = workspaces::parse_rights(body.rights.as_deref().unwrap_or("rw"))?;
    let grantee = grantee_of(&app, &body).await?;
    workspaces::grant(&app, &found, grantee, rights).await?;
    Ok(Json(json!({ "Success": true })))
}

/// `POST /a/workspace/{Slug}/revoke` `{"User":"alice"}`.
pub async fn revoke(
    State(app): State<SharedApp>,
    _: Admin,
    Path(slug): Path<String>,
    ApiJson(body): ApiJson<GrantBody>,
) -> Result<Json<Value>> {
    if body.rights.is_some() {
        return Err(Error::invalid("Rights", "a revocation ends the whole grant").into());
    }
    let found = workspaces::workspace(&app, &slug).await?;
    let grantee = grantee_of(&app, &body).await?;
    workspaces::revoke(&app, &found, grantee).await?;
    Ok(Json(json!({ "Success": true })))
}

fn group_json(group: &Group, users: &[User]) -> Value {
    let members: Vec<&str> = users
        .iter()
        .filter(|u| u.groups.contains(&group.id))
        .map(|u| u.login.as_str())
        .collect();
    json!({ "Uuid": group.id, "Name": group.name, "Members": members })
}

/// `GET /a/group`: every group with its members' logins.
pub async fn list_groups(State(app): State<SharedApp>, _: Admin) -> Result<Json<Value>> {
    let users = cells_core::users::list(&app).await?;
    let groups: Vec<Value> = workspaces::list_groups(&app)
        .await?
        .iter()
        .map(|g| group_json(g, &users))
        .collect();
    Ok(Json(json!({ "Groups": groups, "Total": groups.len() })))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutGroup {
    /// A new name: renames the group.
    name: Option<String>,
}

/// `PUT /a/group/{Name}`: create the group, or rename it (`{"Name":"new"}`).
pub async fn put_group(
    State(app): State<SharedApp>,
    _: Admin,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<PutGroup>,
) -> Result<Json<Value>> {
    let group = match workspaces::find_group(&app, &name).await? {
        None => workspaces::create_group(&app, body.name.as_deref().unwrap_or(&name)).await?,
        Some(group) => {
            let new_name = body.name.as_deref().unwrap_or(&name);
            if new_name != name {
                workspaces::rename_group(&app, &group, new_name).await?;
            }
            workspaces::group(&app, new_name).await?
        }
    };
    let users = cells_core::users::list(&app).await?;
    Ok(Json(group_json(&group, &users)))
}

pub async fn delete_group(
    State(app): State<SharedApp>,
    _: Admin,
    Path(name): Path<String>,
) -> Result<Json<Value>> {
    let group = workspaces::group(&app, &name).await?;
    workspaces::delete_group(&app, &group).await?;
    Ok(Json(json!({ "Success": true })))
}

/// `PUT /a/group/{Name}/member/{Login}`.
pub async fn add_member(
    State(app): State<SharedApp>,
    _: Admin,
    Path((name, login)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let group = workspaces::group(&app, &name).await?;
    let user = cells_core::users::get_user(&app, &login).await?;
    workspaces::add_member(&app, &group, &user).await?;
    Ok(Json(json!({ "Success": true })))
}

/// `DELETE /a/group/{Name}/member/{Login}`: refused what the group gave at the next request.
pub async fn remove_member(
    State(app): State<SharedApp>,
    _: Admin,
    Path((name, login)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let group = workspaces::group(&app, &name).await?;
    let user = cells_core::users::get_user(&app, &login).await?;
    workspaces::remove_member(&app, &group, &user).await?;
    Ok(Json(json!({ "Success": true })))
}
