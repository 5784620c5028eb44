//! Groups of users: flat, a user in any number. Every change of a membership, or of a group's
//! existence, bumps the auth epoch in its transaction: the groups ride with the cached user row
//! (`User::groups`), so the change holds at the next request on every node, like a revocation.

use std::collections::HashMap;

use sqlx::FromRow;

use crate::ids::{GroupId, UserId};
use crate::{Result, Returned, Store, StoreError, bump_epoch, now, on_conflict};

#[derive(Debug, Clone, FromRow)]
struct GroupRow {
    id: String,
    name: String,
    created_at: i64,
    members: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub id: GroupId,
    pub name: String,
    pub created_at: i64,
    /// How many users belong to it.
    pub members: i64,
}

impl TryFrom<GroupRow> for Group {
    type Error = StoreError;
    fn try_from(row: GroupRow) -> Result<Group> {
        Ok(Group {
            id: GroupId::parse(&row.id).ok_or_else(|| {
                StoreError::Database(sqlx::Error::Decode(
                    format!("user_groups.id of {} is invalid", row.name).into(),
                ))
            })?,
            name: row.name,
            created_at: row.created_at,
            members: row.members,
        })
    }
}

const SELECT: &str = "SELECT g.id, g.name, g.created_at, \
                      (SELECT COUNT(*) FROM group_members m WHERE m.group_id = g.id) AS members \
                      FROM user_groups g";

impl Store {
    /// Create a group; `Conflict` when the name is taken.
    pub async fn create_group(&self, name: &str) -> Result<Group> {
        let id = GroupId::random();
        sqlx::query("INSERT INTO user_groups (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(id.to_string())
            .bind(name)
            .bind(now())
            .execute(self.pool())
            .await
            .map_err(on_conflict)?;
        self.find_group(name).await?.ok_or(StoreError::NotFound)
    }

    pub async fn find_group(&self, name: &str) -> Result<Option<Group>> {
        let row: Option<GroupRow> = sqlx::query_as(sql!("{SELECT} WHERE g.name = $1"))
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        row.map(Group::try_from).transpose()
    }

    pub async fn list_groups(&self) -> Result<Vec<Group>> {
        let rows: Vec<GroupRow> = sqlx::query_as(sql!("{SELECT} ORDER BY g.name"))
            .fetch_all(self.pool())
            .await?;
        rows.into_iter().map(Group::try_from).collect()
    }

    /// Rename a group; `NotFound` when it is gone, `Conflict` when the name is taken.
    pub async fn rename_group(&self, id: GroupId, name: &str) -> Result<()> {
        let done = sqlx::query("UPDATE user_groups SET name = $1 WHERE id = $2")
            .bind(name)
            .bind(id.to_string())
            .execute(self.pool())
            .await
            .map_err(on_conflict)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Delete a group with its memberships and the workspace grants made to it.
    pub async fn delete_group(&self, id: GroupId) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        bump_epoch(&mut tx).await?;
        let done = sqlx::query("DELETE FROM user_groups WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    /// Add `user` to `group`; `Conflict` when they are a member already, `NotFound` when
    /// either is gone.
    pub async fn add_member(&self, group: GroupId, user: UserId) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        bump_epoch(&mut tx).await?;
        let exists: Vec<(i64,)> = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM user_groups WHERE id = $1) \
                  + (SELECT COUNT(*) FROM users WHERE id = $2)",
        )
        .bind(group.to_string())
        .bind(user.to_string())
        .fetch_all(&mut *tx)
        .await?;
        if exists.row()?.0 != 2 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("INSERT INTO group_members (group_id, user_id) VALUES ($1, $2)")
            .bind(group.to_string())
            .bind(user.to_string())
            .execute(&mut *tx)
            .await
            .map_err(on_conflict)?;
        tx.commit().await?;
        Ok(())
    }

    /// Remove `user` from `group`; `NotFound` when they are not a member.
    pub async fn remove_member(&self, group: GroupId, user: UserId) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        bump_epoch(&mut tx).await?;
        let done = sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2")
            .bind(group.to_string())
            .bind(user.to_string())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    /// The members of a group, by id.
    pub async fn group_members(&self, group: GroupId) -> Result<Vec<UserId>> {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT user_id FROM group_members WHERE group_id = $1")
            .bind(group.to_string())
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().filter_map(|(id,)| UserId::parse(id)).collect())
    }

    /// The groups `user` belongs to.
    pub async fn groups_of(&self, user: UserId) -> Result<Vec<GroupId>> {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT group_id FROM group_members WHERE user_id = $1")
            .bind(user.to_string())
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().filter_map(|(id,)| GroupId::parse(id)).collect())
    }

    /// Every membership, by user.
    pub(crate) async fn all_memberships(&self) -> Result<HashMap<UserId, Vec<GroupId>>> {
        let rows: Vec<(String, String)> = sqlx::query_as("SELECT user_id, group_id FROM group_members")
            .fetch_all(self.pool())
            .await?;
        let mut out: HashMap<UserId, Vec<GroupId>> = HashMap::new();
        for (user, group) in rows {
            if let (Some(user), Some(group)) = (UserId::parse(&user), GroupId::parse(&group)) {
                out.entry(user).or_default().push(group);
            }
        }
        Ok(out)
    }
}
