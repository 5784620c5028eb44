//! Workspaces defined by administrators: a slug, a label, a root in the node tree, an optional
//! quota, and grants of read and write to users, groups or every user.
//!
//! Grants are read at every request that reaches a workspace (`workspace_for`), never cached,
//! so a grant revoked or a workspace deleted holds at the next request on every node.

use std::collections::BTreeMap;

use sqlx::FromRow;

use crate::ids::{GroupId, UserId, WorkspaceId};
use crate::{Result, Store, StoreError, on_conflict};

/// Who a workspace grant is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grantee {
    /// Every user of the server (what `common-files` has).
    Everyone,
    User(UserId),
    Group(GroupId),
}

/// Read and write rights given by one grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkspaceGrant {
    pub grantee: Grantee,
    pub read: bool,
    pub write: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub slug: String,
    pub label: String,
    pub description: String,
    /// The name of its root node (`nodes`, parent NULL).
    pub root_key: String,
    /// The most its files may hold, in bytes (`None`: no quota).
    pub quota: Option<u64>,
    pub created_at: i64,
}

pub struct NewWorkspace<'a> {
    pub slug: &'a str,
    pub label: &'a str,
    pub description: &'a str,
    pub quota: Option<u64>,
}

#[derive(Debug, Clone, FromRow)]
struct WorkspaceRow {
    id: String,
    slug: String,
    label: String,
    description: String,
    root_key: String,
    quota: Option<i64>,
    created_at: i64,
}

/// A workspace row joined with one of its grants (none with a LEFT JOIN that found none).
#[derive(Debug, Clone, FromRow)]
struct JoinedRow {
    #[sqlx(flatten)]
    workspace: WorkspaceRow,
    user_id: Option<String>,
    group_id: Option<String>,
    can_read: Option<i64>,
    can_write: Option<i64>,
}

impl TryFrom<WorkspaceRow> for Workspace {
    type Error = StoreError;
    fn try_from(row: WorkspaceRow) -> Result<Workspace> {
        Ok(Workspace {
            id: WorkspaceId::parse(&row.id).ok_or_else(|| corrupt(&row.slug, "id"))?,
            slug: row.slug,
            label: row.label,
            description: row.description,
            root_key: row.root_key,
            quota: row.quota.map(|q| q.max(0) as u64),
            created_at: row.created_at,
        })
    }
}

fn corrupt(slug: &str, what: &str) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(
        format!("workspaces.{what} of {slug} is invalid").into(),
    ))
}

impl JoinedRow {
    fn grant(&self) -> Result<Option<WorkspaceGrant>> {
        let (Some(read), Some(write)) = (self.can_read, self.can_write) else {
            return Ok(None);
        };
        let slug = &self.workspace.slug;
        let grantee = match (&self.user_id, &self.group_id) {
            (Some(user), None) => Grantee::User(UserId::parse(user).ok_or_else(|| corrupt(slug, "grant"))?),
            (None, Some(group)) => {
                Grantee::Group(GroupId::parse(group).ok_or_else(|| corrupt(slug, "grant"))?)
            }
            (None, None) => Grantee::Everyone,
            (Some(_), Some(_)) => return Err(corrupt(slug, "grant")),
        };
        Ok(Some(WorkspaceGrant {
            grantee,
            read: read != 0,
            write: write != 0,
        }))
    }
}

/// Rows of workspaces joined with grants, gathered per workspace in slug order.
fn gather(rows: Vec<JoinedRow>) -> Result<Vec<(Workspace, Vec<WorkspaceGrant>)>> {
    let mut by_slug: BTreeMap<String, (Workspace, Vec<WorkspaceGrant>)> = BTreeMap::new();
    for row in rows {
        let grant = row.grant()?;
        let slug = row.workspace.slug.clone();
        if !by_slug.contains_key(&slug) {
            let workspace = Workspace::try_from(row.workspace)?;
            by_slug.insert(slug.clone(), (workspace, Vec::new()));
        }
        if let (Some(grant), Some(entry)) = (grant, by_slug.get_mut(&slug)) {
            entry.1.push(grant);
        }
    }
    Ok(by_slug.into_values().collect())
}

const COLUMNS: &str = "w.id, w.slug, w.label, w.description, w.root_key, w.quota, w.created_at";

/// The grants that reach user `$1`: theirs, their groups', and every user's.
const REACHING: &str = "(g.user_id = $1 OR (g.user_id IS NULL AND g.group_id IS NULL) \
                        OR g.group_id IN (SELECT group_id FROM group_members WHERE user_id = $1))";

fn grantee_columns(grantee: Grantee) -> (Option<String>, Option<String>) {
    match grantee {
        Grantee::Everyone => (None, None),
        Grantee::User(user) => (Some(user.to_string()), None),
        Grantee::Group(group) => (None, Some(group.to_string())),
    }
}

impl Store {
    /// Create a workspace and its (empty) root in one transaction; `Conflict` when the slug
    /// is taken. A workspace's root exists exactly as long as the workspace (`delete_workspace`
    /// takes both), so that a request racing a deletion finds no root to write into.
    pub async fn create_workspace(&self, new: NewWorkspace<'_>) -> Result<Workspace> {
        let id = WorkspaceId::random();
        let root_key = format!("workspace:{id}");
        let at = crate::now();
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO workspaces (id, slug, label, description, root_key, quota, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id.to_string())
        .bind(new.slug)
        .bind(new.label)
        .bind(new.description)
        .bind(&root_key)
        .bind(new.quota.map(|q| q.min(i64::MAX as u64) as i64))
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(on_conflict)?;
        sqlx::query(
            "INSERT INTO nodes (id, parent_id, name, kind, size, mtime, etag, owner_id, created_at) \
             VALUES ($1, NULL, $2, 'COLLECTION', 0, $3, '', NULL, $3)",
        )
        .bind(crate::NodeId::random().to_string())
        .bind(&root_key)
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(on_conflict)?;
        tx.commit().await?;
        self.find_workspace(new.slug).await?.ok_or(StoreError::NotFound)
    }

    pub async fn find_workspace(&self, slug: &str) -> Result<Option<Workspace>> {
        let row: Option<WorkspaceRow> =
            sqlx::query_as(sql!("SELECT {COLUMNS} FROM workspaces w WHERE w.slug = $1"))
                .bind(slug)
                .fetch_optional(self.pool())
                .await?;
        row.map(Workspace::try_from).transpose()
    }

    /// The workspace whose root node is named `root_key`.
    pub async fn find_workspace_by_root(&self, root_key: &str) -> Result<Option<Workspace>> {
        let row: Option<WorkspaceRow> =
            sqlx::query_as(sql!("SELECT {COLUMNS} FROM workspaces w WHERE w.root_key = $1"))
                .bind(root_key)
                .fetch_optional(self.pool())
                .await?;
        row.map(Workspace::try_from).transpose()
    }

    /// Every workspace with every grant, by slug (administration).
    pub async fn list_workspaces(&self) -> Result<Vec<(Workspace, Vec<WorkspaceGrant>)>> {
        let rows: Vec<JoinedRow> = sqlx::query_as(sql!(
            "SELECT {COLUMNS}, g.user_id, g.group_id, g.can_read, g.can_write FROM workspaces w \
             LEFT JOIN workspace_grants g ON g.workspace_id = w.id ORDER BY w.slug"
        ))
        .fetch_all(self.pool())
        .await?;
        gather(rows)
    }

    /// Workspace `slug` with the grants that reach `user`, in one query: `None` when there is
    /// no such workspace. The caller decides (`auth::permission`) what they give.
    pub async fn workspace_for(
        &self,
        slug: &str,
        user: UserId,
    ) -> Result<Option<(Workspace, Vec<WorkspaceGrant>)>> {
        let rows: Vec<JoinedRow> = sqlx::query_as(sql!(
            "SELECT {COLUMNS}, g.user_id, g.group_id, g.can_read, g.can_write FROM workspaces w \
             LEFT JOIN workspace_grants g ON g.workspace_id = w.id AND {REACHING} \
             WHERE w.slug = $2"
        ))
        .bind(user.to_string())
        .bind(slug)
        .fetch_all(self.pool())
        .await?;
        Ok(gather(rows)?.pop())
    }

    /// The workspaces some grant reaching `user` names, with those grants, by slug.
    pub async fn workspaces_reaching(&self, user: UserId) -> Result<Vec<(Workspace, Vec<WorkspaceGrant>)>> {
        let rows: Vec<JoinedRow> = sqlx::query_as(sql!(
            "SELECT {COLUMNS}, g.user_id, g.group_id, g.can_read, g.can_write FROM workspaces w \
             JOIN workspace_grants g ON g.workspace_id = w.id AND {REACHING}"
        ))
        .bind(user.to_string())
        .fetch_all(self.pool())
        .await?;
        gather(rows)
    }

    /// Change a workspace's label and description; `NotFound` when it is gone.
    pub async fn describe_workspace(&self, id: WorkspaceId, label: &str, description: &str) -> Result<()> {
        let done = sqlx::query("UPDATE workspaces SET label = $1, description = $2 WHERE id = $3")
            .bind(label)
            .bind(description)
            .bind(id.to_string())
            .execute(self.pool())
            .await?;
        affected(done.rows_affected())
    }

    /// Set or remove (`None`) a workspace's quota; `NotFound` when it is gone.
    pub async fn set_workspace_quota(&self, id: WorkspaceId, quota: Option<u64>) -> Result<()> {
        let done = sqlx::query("UPDATE workspaces SET quota = $1 WHERE id = $2")
            .bind(quota.map(|q| q.min(i64::MAX as u64) as i64))
            .bind(id.to_string())
            .execute(self.pool())
            .await?;
        affected(done.rows_affected())
    }

    /// Give `grantee` these rights on a workspace, replacing what it had there.
    pub async fn grant_workspace(&self, id: WorkspaceId, grant: WorkspaceGrant) -> Result<()> {
        let (user, group) = grantee_columns(grant.grantee);
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "DELETE FROM workspace_grants WHERE workspace_id = $1 \
             AND COALESCE(user_id, '') = $2 AND COALESCE(group_id, '') = $3",
        )
        .bind(id.to_string())
        .bind(user.clone().unwrap_or_default())
        .bind(group.clone().unwrap_or_default())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO workspace_grants (workspace_id, user_id, group_id, can_read, can_write) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id.to_string())
        .bind(user)
        .bind(group)
        .bind(grant.read as i64)
        .bind(grant.write as i64)
        .execute(&mut *tx)
        .await
        .map_err(|error| match on_conflict(error) {
            // A user or group deleted meanwhile (foreign key), or the workspace.
            StoreError::Database(_) => StoreError::NotFound,
            other => other,
        })?;
        tx.commit().await?;
        Ok(())
    }

    /// End `grantee`'s grant on a workspace; `NotFound` when it had none.
    pub async fn revoke_workspace(&self, id: WorkspaceId, grantee: Grantee) -> Result<()> {
        let (user, group) = grantee_columns(grantee);
        let done = sqlx::query(
            "DELETE FROM workspace_grants WHERE workspace_id = $1 \
             AND COALESCE(user_id, '') = $2 AND COALESCE(group_id, '') = $3",
        )
        .bind(id.to_string())
        .bind(user.unwrap_or_default())
        .bind(group.unwrap_or_default())
        .execute(self.pool())
        .await?;
        affected(done.rows_affected())
    }

    /// Delete a workspace with its grants and every node below its root. Returns the blob
    /// ids the deleted nodes referred to, for the caller to remove after the commit.
    pub async fn delete_workspace(&self, id: WorkspaceId) -> Result<Vec<String>> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool().begin().await?;
        let root: Option<(String,)> = sqlx::query_as("SELECT root_key FROM workspaces WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let (root_key,) = root.ok_or(StoreError::NotFound)?;
        const TREE: &str = "WITH RECURSIVE sub(id) AS ( \
                SELECT id FROM nodes WHERE parent_id IS NULL AND name = $1 \
                UNION ALL SELECT n.id FROM nodes n JOIN sub ON n.parent_id = sub.id)";
        let blobs: Vec<(String,)> = sqlx::query_as(sql!(
            "{TREE} SELECT blob_id FROM nodes WHERE id IN (SELECT id FROM sub) AND blob_id IS NOT NULL"
        ))
        .bind(&root_key)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query(sql!("DELETE FROM nodes WHERE id IN ({TREE} SELECT id FROM sub)"))
            .bind(&root_key)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM workspaces WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(blobs.into_iter().map(|(blob,)| blob).collect())
    }
}

fn affected(rows: u64) -> Result<()> {
    if rows == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}
