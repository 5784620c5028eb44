//! Groups and workspaces, shared by the CLI, the REST API and the console: create, rename,
//! delete, members, grants and quotas, each validated here once.
//!
//! A change of who belongs to a group reaches every node at the next request (the store bumps
//! the auth epoch; cached credentials carry their user's groups), and this waits for it
//! (`Authenticator::settle`) before returning. Grants are read at every request, so they need
//! no such wait.

use cells_store::{Grantee, Group, NewWorkspace, StoreError, User, Workspace, WorkspaceGrant};

use crate::App;
use crate::auth::permission::{Rights, Workspace as Place, user_rights};
use crate::auth::principal::Principal;
use crate::error::{Error, Result};
use crate::files::path::check_slug;

/// Group names: 1 to 128 characters, no control characters, no surrounding spaces, not `.`
/// or `..` (a name is a URL segment of REST and the console).
pub fn check_group_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.chars().count() > 128
        || name.trim() != name
        || name.chars().any(char::is_control)
        || name == "."
        || name == ".."
    {
        return Err(Error::invalid(
            "group",
            format!(
                "{name:?}: 1 to 128 characters, no control characters, no surrounding spaces, not . or .."
            ),
        ));
    }
    Ok(())
}

fn check_text(field: &str, text: &str, max: usize) -> Result<()> {
    if text.chars().count() > max || text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Error::invalid(
            field,
            format!("at most {max} characters, no control characters"),
        ));
    }
    Ok(())
}

pub async fn create_group(app: &App, name: &str) -> Result<Group> {
    check_group_name(name)?;
    app.store.create_group(name).await.map_err(|e| match e {
        StoreError::Conflict(_) => Error::AlreadyExists(format!("group {name}")),
        other => other.into(),
    })
}

/// The group named `name`, or `NotFound`.
pub async fn group(app: &App, name: &str) -> Result<Group> {
    app.store
        .find_group(name)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no group {name:?}")))
}

pub async fn rename_group(app: &App, group: &Group, name: &str) -> Result<()> {
    check_group_name(name)?;
    app.store.rename_group(group.id, name).await.map_err(|e| match e {
        StoreError::Conflict(_) => Error::AlreadyExists(format!("group {name}")),
        other => other.into(),
    })
}

/// Delete a group: its members lose what it was granted at their next request.
pub async fn delete_group(app: &App, group: &Group) -> Result<()> {
    let members = app.store.group_members(group.id).await?;
    app.store.delete_group(group.id).await?;
    for member in members {
        app.auth.forget_user(member);
    }
    app.auth.settle().await;
    Ok(())
}

pub async fn add_member(app: &App, group: &Group, user: &User) -> Result<()> {
    app.store
        .add_member(group.id, user.id)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => {
                Error::Conflict(format!("{} is already in {}", user.login, group.name))
            }
            other => other.into(),
        })?;
    app.auth.forget_user(user.id);
    app.auth.settle().await;
    Ok(())
}

/// Remove a member: refused what the group gave them from their next request, on every node.
pub async fn remove_member(app: &App, group: &Group, user: &User) -> Result<()> {
    app.store
        .remove_member(group.id, user.id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => Error::NotFound(format!("{} is not in {}", user.login, group.name)),
            other => other.into(),
        })?;
    app.auth.forget_user(user.id);
    app.auth.settle().await;
    Ok(())
}

/// What an administrator gives to create a workspace.
pub struct WorkspaceSpec<'a> {
    pub slug: &'a str,
    pub label: Option<&'a str>,
    pub description: &'a str,
    pub quota: Option<u64>,
}

/// Slugs no workspace may take: the personal root's, and the prefix of users' shares.
fn check_free_slug(slug: &str) -> Result<()> {
    check_slug(slug)?;
    if slug == "personal-files" || slug.starts_with("shared-") {
        return Err(Error::invalid(
            "slug",
            format!("{slug:?} is reserved (personal-files, and shared-… for users' shares)"),
        ));
    }
    Ok(())
}

pub async fn create_workspace(app: &App, spec: WorkspaceSpec<'_>) -> Result<Workspace> {
    check_free_slug(spec.slug)?;
    let label = spec.label.unwrap_or(spec.slug);
    check_text("label", label, 256)?;
    check_text("description", spec.description, 4096)?;
    let workspace = app
        .store
        .create_workspace(NewWorkspace {
            slug: spec.slug,
            label,
            description: spec.description,
            quota: spec.quota,
        })
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => Error::AlreadyExists(format!("workspace {}", spec.slug)),
            other => other.into(),
        })?;
    Ok(workspace)
}

/// The workspace `slug`, or `NotFound`.
pub async fn workspace(app: &App, slug: &str) -> Result<Workspace> {
    app.store
        .find_workspace(slug)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no workspace {slug:?}")))
}

pub async fn describe_workspace(
    app: &App,
    workspace: &Workspace,
    label: &str,
    description: &str,
) -> Result<()> {
    check_text("label", label, 256)?;
    check_text("description", description, 4096)?;
    Ok(app
        .store
        .describe_workspace(workspace.id, label, description)
        .await?)
}

/// Delete a workspace with all its files. `common-files` may go too: it is an ordinary
/// workspace, made again only by an administrator.
pub async fn delete_workspace(app: &App, workspace: &Workspace) -> Result<()> {
    let blobs = app.store.delete_workspace(workspace.id).await?;
    app.tree.forget_root_key(&workspace.root_key);
    app.tree.forget_blobs(blobs).await;
    Ok(())
}

pub async fn set_workspace_quota(app: &App, workspace: &Workspace, quota: Option<u64>) -> Result<()> {
    Ok(app.store.set_workspace_quota(workspace.id, quota).await?)
}

pub async fn set_user_quota(app: &App, user: &User, quota: Option<u64>) -> Result<()> {
    app.store.set_user_quota(user.id, quota).await?;
    Ok(())
}

/// Give `grantee` `rights` on a workspace (replacing what it had there).
pub async fn grant(app: &App, workspace: &Workspace, grantee: Grantee, rights: Rights) -> Result<()> {
    if !rights.any() {
        return Err(Error::invalid(
            "rights",
            "give r, w or rw; revoke to remove a grant",
        ));
    }
    app.store
        .grant_workspace(
            workspace.id,
            WorkspaceGrant {
                grantee,
                read: rights.read,
                write: rights.write,
            },
        )
        .await
        .map_err(|e| match e {
            StoreError::NotFound => Error::NotFound("the workspace, user or group is gone".into()),
            other => other.into(),
        })
}

/// End `grantee`'s grant on a workspace: refused at the next request, on every node.
pub async fn revoke(app: &App, workspace: &Workspace, grantee: Grantee) -> Result<()> {
    app.store
        .revoke_workspace(workspace.id, grantee)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => Error::NotFound(format!("no such grant on {}", workspace.slug)),
            other => other.into(),
        })
}

/// `r`, `w` or `rw` (`wr` too).
pub fn parse_rights(text: &str) -> Result<Rights> {
    match text {
        "r" => Ok(Rights {
            read: true,
            write: false,
        }),
        "w" => Ok(Rights {
            read: false,
            write: true,
        }),
        "rw" | "wr" => Ok(Rights {
            read: true,
            write: true,
        }),
        _ => Err(Error::invalid("rights", format!("{text:?}: give r, w or rw"))),
    }
}

pub fn rights_text(read: bool, write: bool) -> &'static str {
    match (read, write) {
        (true, true) => "rw",
        (true, false) => "r",
        (false, true) => "w",
        (false, false) => "-",
    }
}

/// A quota as the CLI and the API take it: a size (`10G`, binary units, or bytes), or `none`.
pub fn parse_quota(text: &str) -> Result<Option<u64>> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    // Nothing more may be written (what is there stays).
    if text == "0" {
        return Ok(Some(0));
    }
    crate::config::parse_size(text).map(Some).ok_or_else(|| {
        Error::invalid(
            "quota",
            format!("{text:?}: give a size such as 10G or 500M, or none"),
        )
    })
}

pub async fn find_group(app: &App, name: &str) -> Result<Option<Group>> {
    Ok(app.store.find_group(name).await?)
}

/// Every group, by name, with its member count.
pub async fn list_groups(app: &App) -> Result<Vec<Group>> {
    Ok(app.store.list_groups().await?)
}

pub async fn find_workspace(app: &App, slug: &str) -> Result<Option<Workspace>> {
    Ok(app.store.find_workspace(slug).await?)
}

/// Every workspace with all its grants, by slug (administration).
pub async fn list_workspaces(app: &App) -> Result<Vec<(Workspace, Vec<WorkspaceGrant>)>> {
    Ok(app.store.list_workspaces().await?)
}

/// The workspaces `principal` may use now (its user's grants, within a token's scopes), with
/// the user's rights there, by slug.
pub async fn reachable(app: &App, principal: &Principal) -> Result<Vec<(Workspace, Rights)>> {
    let visible: std::collections::HashSet<String> = app
        .tree
        .workspaces(principal)
        .await?
        .iter()
        .map(|entry| entry.path().workspace().as_str().to_string())
        .collect();
    Ok(app
        .store
        .workspaces_reaching(principal.user_id())
        .await?
        .into_iter()
        .filter(|(workspace, _)| visible.contains(&workspace.slug))
        .filter_map(|(workspace, grants)| {
            let rights = user_rights(
                principal,
                &Place::Shared {
                    grants: grants.into(),
                },
            );
            rights.any().then_some((workspace, rights))
        })
        .collect())
}

/// What a workspace's files take now, in bytes.
pub async fn used(app: &App, workspace: &Workspace) -> Result<u64> {
    let Some(root) = app.store.find_root(&workspace.root_key).await? else {
        return Ok(0);
    };
    Ok(app.store.subtree_size(root.id).await?.max(0) as u64)
}
