//! Workspaces and groups (administrators only): the Workspaces page (create one with a label,
//! description and quota; per workspace its grants to users, groups or everyone, its quota,
//! its deletion) and the Groups tab of People (create, rename, members, delete). Every change
//! goes through `cells_core::workspaces`, as the CLI's and the REST API's do.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::{Browser, ConfirmPage, Nav, Notice, encode_component, format_size, redirect};
use cells_core::SharedApp;
use cells_core::error::{Error, Result};
use cells_core::records::{Grantee, Group, User, Workspace};
use cells_core::workspaces::{self, WorkspaceSpec};

pub fn routes() -> Router<SharedApp> {
    Router::new()
        .route("/admin/workspaces", get(list).post(create))
        .route("/admin/workspaces/{slug}", get(detail).post(change))
        .route("/admin/workspaces/{slug}/delete", get(confirm_delete))
        .route("/admin/groups", get(groups).post(create_group))
        .route("/admin/groups/{name}", get(group_detail).post(change_group))
}

fn workspace_href(slug: &str) -> String {
    format!("/admin/workspaces/{}", encode_component(slug))
}

fn group_href(name: &str) -> String {
    format!("/admin/groups/{}", encode_component(name))
}

/// A quota as a page shows it.
fn quota_text(quota: Option<u64>) -> String {
    quota.map_or_else(|| "none".to_string(), |q| format_size(q as i64))
}

struct WorkspaceRow {
    slug: String,
    label: String,
    quota: String,
    grants: usize,
    href: String,
}

/// The new-workspace form, kept as typed when it is refused.
#[derive(Default)]
struct NewWorkspace {
    slug: String,
    label: String,
    description: String,
    quota: String,
}

#[derive(Template)]
#[template(path = "console/workspaces.html")]
struct WorkspacesPage {
    nav: Nav,
    rows: Vec<WorkspaceRow>,
    new_workspace: NewWorkspace,
    notice: Option<Notice>,
}

struct GrantRow {
    who: String,
    kind: &'static str,
    /// What the revoke form names: `user`, `group` or `everyone`, and the login or name.
    field: &'static str,
    value: String,
    rights: &'static str,
}

#[derive(Template)]
#[template(path = "console/workspace.html")]
struct WorkspacePage {
    nav: Nav,
    slug: String,
    label: String,
    description: String,
    quota: String,
    used: String,
    href: String,
    grants: Vec<GrantRow>,
    logins: Vec<String>,
    group_names: Vec<String>,
    delete_href: String,
    notice: Option<Notice>,
}

#[derive(Deserialize, Default)]
struct DoneQuery {
    done: Option<String>,
}

fn notice_of(done: Option<&str>) -> Option<Notice> {
    match done {
        Some("created") => Notice::ok("Created. Nobody may use it until it is granted."),
        Some("saved") => Notice::ok("Saved."),
        Some("granted") => Notice::ok("Granted: it holds from the next request."),
        Some("revoked") => Notice::ok("Revoked: refused from the next request, on every node."),
        Some("deleted") => Notice::ok("Deleted."),
        Some("added") => Notice::ok("Added to the group."),
        Some("removed") => Notice::ok("Removed from the group: refused what it gave from the next request."),
        _ => None,
    }
}

async fn workspaces_page(
    browser: &Browser,
    new_workspace: NewWorkspace,
    notice: Option<Notice>,
    status: StatusCode,
) -> Result<Response> {
    browser.require_admin()?;
    let rows = workspaces::list_workspaces(&browser.app)
        .await?
        .into_iter()
        .map(|(workspace, grants)| WorkspaceRow {
            href: workspace_href(&workspace.slug),
            quota: quota_text(workspace.quota),
            grants: grants.len(),
            slug: workspace.slug,
            label: workspace.label,
        })
        .collect();
    let page = WorkspacesPage {
        nav: browser.nav("workspaces"),
        rows,
        new_workspace,
        notice,
    };
    Ok(browser.render(status, &page))
}

/// `GET /admin/workspaces`.
async fn list(browser: Browser, Query(query): Query<DoneQuery>) -> Response {
    let notice = notice_of(query.done.as_deref());
    let page = workspaces_page(&browser, NewWorkspace::default(), notice, StatusCode::OK).await;
    browser.finish(page)
}

#[derive(Deserialize)]
struct CreateForm {
    slug: Option<String>,
    label: Option<String>,
    description: Option<String>,
    quota: Option<String>,
}

/// `POST /admin/workspaces`: a new workspace.
async fn create(browser: Browser, headers: HeaderMap, body: Bytes) -> Response {
    let page = async {
        browser.require_admin()?;
        let form: CreateForm = browser.read_form(&headers, &body)?;
        let typed = NewWorkspace {
            slug: form.slug.unwrap_or_default().trim().to_string(),
            label: form.label.unwrap_or_default().trim().to_string(),
            description: form.description.unwrap_or_default().trim().to_string(),
            quota: form.quota.unwrap_or_default().trim().to_string(),
        };
        let created = async {
            let quota = match typed.quota.as_str() {
                "" => None,
                text => workspaces::parse_quota(text)?,
            };
            let spec = WorkspaceSpec {
                slug: &typed.slug,
                label: (!typed.label.is_empty()).then_some(typed.label.as_str()),
                description: &typed.description,
                quota,
            };
            workspaces::create_workspace(&browser.app, spec).await
        }
        .await;
        match created {
            Ok(workspace) => Ok(redirect(&format!(
                "{}?done=created",
                workspace_href(&workspace.slug)
            ))),
            Err(error) => {
                let status = cells_http::error::status(&error);
                workspaces_page(&browser, typed, Notice::error(&error), status).await
            }
        }
    }
    .await;
    browser.finish(page)
}

async fn target(browser: &Browser, slug: &str) -> Result<Workspace> {
    browser.require_admin()?;
    workspaces::workspace(&browser.app, slug).await
}

fn grant_rows(
    workspace: &Workspace,
    all: &[(Workspace, Vec<cells_core::records::WorkspaceGrant>)],
    users: &[User],
    groups: &[Group],
) -> Vec<GrantRow> {
    let Some((_, grants)) = all.iter().find(|(w, _)| w.id == workspace.id) else {
        return Vec::new();
    };
    grants
        .iter()
        .map(|grant| {
            let rights = workspaces::rights_text(grant.read, grant.write);
            match grant.grantee {
                Grantee::Everyone => GrantRow {
                    who: "Every user".into(),
                    kind: "everyone",
                    field: "everyone",
                    value: "1".into(),
                    rights,
                },
                Grantee::User(id) => {
                    let login = users
                        .iter()
                        .find(|u| u.id == id)
                        .map_or_else(|| id.to_string(), |u| u.login.clone());
                    GrantRow {
                        who: login.clone(),
                        kind: "user",
                        field: "user",
                        value: login,
                        rights,
                    }
                }
                Grantee::Group(id) => {
                    let name = groups
                        .iter()
                        .find(|g| g.id == id)
                        .map_or_else(|| id.to_string(), |g| g.name.clone());
                    GrantRow {
                        who: name.clone(),
                        kind: "group",
                        field: "group",
                        value: name,
                        rights,
                    }
                }
            }
        })
        .collect()
}

async fn workspace_page(
    browser: &Browser,
    workspace: &Workspace,
    notice: Option<Notice>,
    status: StatusCode,
) -> Result<Response> {
    let app = &browser.app;
    let users = cells_core::users::list(app).await?;
    let groups = workspaces::list_groups(app).await?;
    let all = workspaces::list_workspaces(app).await?;
    let used = workspaces::used(app, workspace).await?;
    let href = workspace_href(&workspace.slug);
    let page = WorkspacePage {
        nav: browser.nav("workspaces"),
        grants: grant_rows(workspace, &all, &users, &groups),
        slug: workspace.slug.clone(),
        label: workspace.label.clone(),
        description: workspace.description.clone(),
        quota: workspace.quota.map(|q| q.to_string()).unwrap_or_default(),
        used: match workspace.quota {
            Some(quota) => format!("{} of {}", format_size(used as i64), format_size(quota as i64)),
            None => format!("{} (no quota)", format_size(used as i64)),
        },
        logins: users.into_iter().map(|u| u.login).collect(),
        group_names: groups.into_iter().map(|g| g.name).collect(),
        delete_href: format!("{href}/delete"),
        href,
        notice,
    };
    Ok(browser.render(status, &page))
}

/// `GET /admin/workspaces/<slug>`.
async fn detail(browser: Browser, Path(slug): Path<String>, Query(query): Query<DoneQuery>) -> Response {
    let page = async {
        let workspace = target(&browser, &slug).await?;
        workspace_page(
            &browser,
            &workspace,
            notice_of(query.done.as_deref()),
            StatusCode::OK,
        )
        .await
    }
    .await;
    browser.finish(page)
}

#[derive(Deserialize)]
struct ChangeForm {
    action: Option<String>,
    label: Option<String>,
    description: Option<String>,
    quota: Option<String>,
    user: Option<String>,
    group: Option<String>,
    everyone: Option<String>,
    rights: Option<String>,
}

impl ChangeForm {
    /// The grantee the form names: a login, a group name, or everyone.
    async fn grantee(&self, browser: &Browser) -> Result<Grantee> {
        let user = self.user.as_deref().map(str::trim).filter(|s| !s.is_empty());
        let group = self.group.as_deref().map(str::trim).filter(|s| !s.is_empty());
        match (user, group, self.everyone.is_some()) {
            (Some(login), None, false) => Ok(Grantee::User(
                cells_core::users::get_user(&browser.app, login).await?.id,
            )),
            (None, Some(name), false) => Ok(Grantee::Group(workspaces::group(&browser.app, name).await?.id)),
            (None, None, true) => Ok(Grantee::Everyone),
            _ => Err(Error::invalid(
                "grantee",
                "choose one user, one group, or every user",
            )),
        }
    }
}

/// `POST /admin/workspaces/<slug>`: describe, set the quota, grant, revoke or delete.
async fn change(browser: Browser, Path(slug): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let page = async {
        let workspace = target(&browser, &slug).await?;
        let form: ChangeForm = browser.read_form(&headers, &body)?;
        let href = workspace_href(&workspace.slug);
        let app = &browser.app;
        let done = async {
            match form.action.as_deref() {
                Some("describe") => {
                    let label = form.label.as_deref().unwrap_or_default().trim();
                    let description = form.description.as_deref().unwrap_or_default().trim();
                    let label = if label.is_empty() {
                        workspace.slug.as_str()
                    } else {
                        label
                    };
                    workspaces::describe_workspace(app, &workspace, label, description).await?;
                    Ok(format!("{href}?done=saved"))
                }
                Some("quota") => {
                    let quota = match form.quota.as_deref().unwrap_or_default().trim() {
                        "" => None,
                        text => workspaces::parse_quota(text)?,
                    };
                    workspaces::set_workspace_quota(app, &workspace, quota).await?;
                    Ok(format!("{href}?done=saved"))
                }
                Some("grant") => {
                    let rights = workspaces::parse_rights(form.rights.as_deref().unwrap_or("rw"))?;
                    workspaces::grant(app, &workspace, form.grantee(&browser).await?, rights).await?;
                    Ok(format!("{href}?done=granted"))
                }
                Some("revoke") => {
                    workspaces::revoke(app, &workspace, form.grantee(&browser).await?).await?;
                    Ok(format!("{href}?done=revoked"))
                }
                Some("delete") => {
                    workspaces::delete_workspace(app, &workspace).await?;
                    Ok("/admin/workspaces?done=deleted".to_string())
                }
                _ => Err(Error::invalid(
                    "action",
                    "must be describe, quota, grant, revoke or delete",
                )),
            }
        }
        .await;
        match done {
            Ok(location) => Ok(redirect(&location)),
            Err(error) => {
                let status = cells_http::error::status(&error);
                workspace_page(&browser, &workspace, Notice::error(&error), status).await
            }
        }
    }
    .await;
    browser.finish(page)
}

/// `GET /admin/workspaces/<slug>/delete`: confirm first.
async fn confirm_delete(browser: Browser, Path(slug): Path<String>) -> Response {
    let page = async {
        let workspace = target(&browser, &slug).await?;
        let href = workspace_href(&workspace.slug);
        let page = ConfirmPage {
            nav: browser.nav("workspaces"),
            title: format!("Delete the workspace {}?", workspace.slug),
            message:
                "This deletes the workspace, every file in it and its grants, at once. It cannot be undone."
                    .into(),
            action: href.clone(),
            fields: vec![("action".into(), "delete".into())],
            button: "Delete the workspace".into(),
            cancel_href: href,
        };
        Ok(browser.render(StatusCode::OK, &page))
    }
    .await;
    browser.finish(page)
}

struct GroupRow {
    name: String,
    members: i64,
    href: String,
}

#[derive(Template)]
#[template(path = "console/groups.html")]
struct GroupsPage {
    nav: Nav,
    rows: Vec<GroupRow>,
    new_name: String,
    notice: Option<Notice>,
}

#[derive(Template)]
#[template(path = "console/group.html")]
struct GroupPage {
    nav: Nav,
    name: String,
    href: String,
    members: Vec<String>,
    others: Vec<String>,
    notice: Option<Notice>,
}

async fn groups_page(
    browser: &Browser,
    new_name: String,
    notice: Option<Notice>,
    status: StatusCode,
) -> Result<Response> {
    browser.require_admin()?;
    let rows = workspaces::list_groups(&browser.app)
        .await?
        .into_iter()
        .map(|g| GroupRow {
            href: group_href(&g.name),
            members: g.members,
            name: g.name,
        })
        .collect();
    let page = GroupsPage {
        nav: browser.nav("people"),
        rows,
        new_name,
        notice,
    };
    Ok(browser.render(status, &page))
}

/// `GET /admin/groups`.
async fn groups(browser: Browser, Query(query): Query<DoneQuery>) -> Response {
    let page = groups_page(
        &browser,
        String::new(),
        notice_of(query.done.as_deref()),
        StatusCode::OK,
    )
    .await;
    browser.finish(page)
}

#[derive(Deserialize)]
struct GroupForm {
    action: Option<String>,
    name: Option<String>,
    login: Option<String>,
}

/// `POST /admin/groups`: a new group.
async fn create_group(browser: Browser, headers: HeaderMap, body: Bytes) -> Response {
    let page = async {
        browser.require_admin()?;
        let form: GroupForm = browser.read_form(&headers, &body)?;
        let name = form.name.unwrap_or_default().trim().to_string();
        match workspaces::create_group(&browser.app, &name).await {
            Ok(group) => Ok(redirect(&format!("{}?done=created", group_href(&group.name)))),
            Err(error) => {
                let status = cells_http::error::status(&error);
                groups_page(&browser, name, Notice::error(&error), status).await
            }
        }
    }
    .await;
    browser.finish(page)
}

async fn group_page(
    browser: &Browser,
    group: &Group,
    notice: Option<Notice>,
    status: StatusCode,
) -> Result<Response> {
    let users = cells_core::users::list(&browser.app).await?;
    let (members, others): (Vec<User>, Vec<User>) =
        users.into_iter().partition(|u| u.groups.contains(&group.id));
    let page = GroupPage {
        nav: browser.nav("people"),
        name: group.name.clone(),
        href: group_href(&group.name),
        members: members.into_iter().map(|u| u.login).collect(),
        others: others.into_iter().map(|u| u.login).collect(),
        notice,
    };
    Ok(browser.render(status, &page))
}

async fn group_target(browser: &Browser, name: &str) -> Result<Group> {
    browser.require_admin()?;
    workspaces::group(&browser.app, name).await
}

/// `GET /admin/groups/<name>`.
async fn group_detail(
    browser: Browser,
    Path(name): Path<String>,
    Query(query): Query<DoneQuery>,
) -> Response {
    let page = async {
        let group = group_target(&browser, &name).await?;
        group_page(&browser, &group, notice_of(query.done.as_deref()), StatusCode::OK).await
    }
    .await;
    browser.finish(page)
}

/// `POST /admin/groups/<name>`: add or remove a member, rename, delete.
async fn change_group(
    browser: Browser,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let page = async {
        let group = group_target(&browser, &name).await?;
        let form: GroupForm = browser.read_form(&headers, &body)?;
        let app = &browser.app;
        let href = group_href(&group.name);
        let done = async {
            match form.action.as_deref() {
                Some(action @ ("add" | "remove")) => {
                    let login = form.login.as_deref().unwrap_or_default().trim();
                    let user = cells_core::users::get_user(app, login).await?;
                    if action == "add" {
                        workspaces::add_member(app, &group, &user).await?;
                        Ok(format!("{href}?done=added"))
                    } else {
                        workspaces::remove_member(app, &group, &user).await?;
                        Ok(format!("{href}?done=removed"))
                    }
                }
                Some("rename") => {
                    let new_name = form.name.as_deref().unwrap_or_default().trim();
                    workspaces::rename_group(app, &group, new_name).await?;
                    Ok(format!("{}?done=saved", group_href(new_name)))
                }
                Some("delete") => {
                    workspaces::delete_group(app, &group).await?;
                    Ok("/admin/groups?done=deleted".to_string())
                }
                _ => Err(Error::invalid("action", "must be add, remove, rename or delete")),
            }
        }
        .await;
        match done {
            Ok(location) => Ok(redirect(&location)),
            Err(error) => {
                let status = cells_http::error::status(&error);
                group_page(&browser, &group, Notice::error(&error), status).await
            }
        }
    }
    .await;
    browser.finish(page)
}
