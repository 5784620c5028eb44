//! Users: login, profile, password hash, lock state and the failed-login counter.
//!
//! Two kinds of lock: `locked`, an administrator's, stops every credential; `suspended_until`,
//! set automatically after `lock_after` failed logins in a row, stops only new password
//! verifications. The failed-login counter is only ever changed by single atomic statements:
//! an attempt is counted (reserved) *before* its password is verified, so a burst of
//! concurrent guesses, on any number of nodes, gets at most `lock_after` verifications.

use crate::ids::{GroupId, UserId};
use sqlx::FromRow;

use crate::{Result, Returned, Store, StoreError, bump_epoch, now, on_conflict};

/// What a user may do beyond their own files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Admin,
    Standard,
}

impl Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Admin => "admin",
            Profile::Standard => "standard",
        }
    }

    pub fn parse(text: &str) -> Option<Profile> {
        match text {
            "admin" => Some(Profile::Admin),
            "standard" => Some(Profile::Standard),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, FromRow)]
struct UserRow {
    id: String,
    login: String,
    display_name: String,
    email: String,
    profile: String,
    password_hash: String,
    locked: i64,
    failed_logins: i64,
    suspended_until: i64,
    quota: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub login: String,
    pub display_name: String,
    pub email: String,
    pub profile: Profile,
    /// PHC string (Argon2id) or a legacy Cells PBKDF2 string. Never logged.
    pub password_hash: String,
    /// An administrator's lock: no credential of this user works.
    pub locked: bool,
    pub failed_logins: i64,
    /// Until when (unix seconds) new password verifications are refused after failed logins;
    /// tokens, sessions and passwords verified before keep working.
    pub suspended_until: i64,
    /// The most their personal files may hold, in bytes (`None`: no quota).
    pub quota: Option<u64>,
    /// The groups they belong to, read with the row (workspace grants to a group reach them).
    pub groups: Vec<GroupId>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(row: UserRow) -> Result<User> {
        let corrupt = |what: &str| {
            StoreError::Database(sqlx::Error::Decode(
                format!("users.{what} of {} is invalid", row.login).into(),
            ))
        };
        Ok(User {
            id: UserId::parse(&row.id).ok_or_else(|| corrupt("id"))?,
            profile: Profile::parse(&row.profile).ok_or_else(|| corrupt("profile"))?,
            login: row.login,
            display_name: row.display_name,
            email: row.email,
            password_hash: row.password_hash,
            locked: row.locked != 0,
            failed_logins: row.failed_logins,
            suspended_until: row.suspended_until,
            quota: row.quota.map(|q| q.max(0) as u64),
            groups: Vec::new(),
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

pub struct NewUser<'a> {
    pub login: &'a str,
    pub display_name: &'a str,
    pub email: &'a str,
    pub profile: Profile,
    pub password_hash: &'a str,
}

/// The outcome of counting one failed login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureCount {
    pub failed_logins: i64,
    /// Set when this failure suspended password logins: until when (unix seconds).
    pub suspended_until: Option<i64>,
}

/// How long failed logins suspend password verifications: `first` seconds for the first
/// suspension in a row, doubling up to `longest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suspension {
    pub lock_after: i64,
    pub first: i64,
    pub longest: i64,
}

impl Suspension {
    /// The length of the `n`th suspension in a row (1-based).
    pub fn length(&self, n: i64) -> i64 {
        let doublings = (n - 1).clamp(0, 40) as u32;
        self.first
            .saturating_mul(1i64 << doublings)
            .min(self.longest)
            .max(0)
    }
}

const COLUMNS: &str = "id, login, display_name, email, profile, password_hash, locked, \
                       failed_logins, suspended_until, quota, created_at, updated_at";

impl Store {
    /// Insert a user; `Conflict` when the login is taken.
    pub async fn create_user(&self, new: NewUser<'_>) -> Result<User> {
        let id = UserId::random();
        let at = now();
        let row: UserRow = sqlx::query_as(sql!(
            "INSERT INTO users (id, login, display_name, email, profile, password_hash, locked, \
             failed_logins, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 0, 0, $7, $7) \
             RETURNING {COLUMNS}"
        ))
        .bind(id.to_string())
        .bind(new.login)
        .bind(new.display_name)
        .bind(new.email)
        .bind(new.profile.as_str())
        .bind(new.password_hash)
        .bind(at)
        .fetch_all(self.pool())
        .await
        .map_err(on_conflict)?
        .row()?;
        row.try_into()
    }

    pub async fn find_user_by_login(&self, login: &str) -> Result<Option<User>> {
        let row: Option<UserRow> = sqlx::query_as(sql!("SELECT {COLUMNS} FROM users WHERE login = $1"))
            .bind(login)
            .fetch_optional(self.pool())
            .await?;
        self.with_groups(row).await
    }

    pub async fn find_user(&self, id: UserId) -> Result<Option<User>> {
        let row: Option<UserRow> = sqlx::query_as(sql!("SELECT {COLUMNS} FROM users WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await?;
        self.with_groups(row).await
    }

    /// The user of `row` with the groups they belong to.
    async fn with_groups(&self, row: Option<UserRow>) -> Result<Option<User>> {
        let Some(row) = row else {
            return Ok(None);
        };
        let mut user = User::try_from(row)?;
        user.groups = self.groups_of(user.id).await?;
        Ok(Some(user))
    }

    /// Every user, each with their groups (two queries).
    pub async fn list_users(&self) -> Result<Vec<User>> {
        let rows: Vec<UserRow> = sqlx::query_as(sql!("SELECT {COLUMNS} FROM users ORDER BY login"))
            .fetch_all(self.pool())
            .await?;
        let mut users = rows.into_iter().map(User::try_from).collect::<Result<Vec<_>>>()?;
        let mut memberships = self.all_memberships().await?;
        for user in &mut users {
            user.groups = memberships.remove(&user.id).unwrap_or_default();
        }
        Ok(users)
    }

    /// Set or remove (`None`) the quota of a user's personal files; `NotFound` when the user
    /// is gone.
    pub async fn set_user_quota(&self, id: UserId, quota: Option<u64>) -> Result<()> {
        let done = sqlx::query("UPDATE users SET quota = $1, updated_at = $2 WHERE id = $3")
            .bind(quota.map(|q| q.min(i64::MAX as u64) as i64))
            .bind(now())
            .bind(id.to_string())
            .execute(self.pool())
            .await?;
        found(done.rows_affected())
    }

    pub async fn count_users(&self) -> Result<i64> {
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
            .fetch_one(self.pool())
            .await?;
        Ok(count)
    }

    /// Change display name, email and profile; `NotFound` when the user is gone, `LastAdmin`
    /// when this would demote the last active administrator.
    pub async fn update_user(
        &self,
        id: UserId,
        display_name: &str,
        email: &str,
        profile: Profile,
    ) -> Result<User> {
        let mut tx = self.pool().begin().await?;
        bump_epoch(&mut tx).await?;
        if profile != Profile::Admin {
            keep_an_admin(&mut tx, id).await?;
        }
        let row: Option<UserRow> = sqlx::query_as(sql!(
            "UPDATE users SET display_name = $2, email = $3, profile = $4, updated_at = $5 \
             WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(id.to_string())
        .bind(display_name)
        .bind(email)
        .bind(profile.as_str())
        .bind(now())
        .fetch_optional(&mut *tx)
        .await?;
        let row = row.ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        self.with_groups(Some(row)).await?.ok_or(StoreError::NotFound)
    }

    /// Replace the password hash; also ends a suspension after failed logins (the new
    /// password is no guess), and the user's browser sessions and OAuth grants.
    pub async fn set_password_hash(&self, id: UserId, password_hash: &str) -> Result<()> {
        let at = now();
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query(
            "UPDATE users SET password_hash = $2, failed_logins = 0, suspended_until = 0, \
             suspensions = 0, updated_at = $3 WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(password_hash)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        found(done.rows_affected())?;
        // A new password ends what the old one opened: browser sessions and OAuth grants (a
        // thief's included). Personal access tokens are credentials of their own and stay.
        sqlx::query("UPDATE login_sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
            .bind(id.to_string())
            .bind(at)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE oauth_grants SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
            .bind(id.to_string())
            .bind(at)
            .execute(&mut *tx)
            .await?;
        bump_epoch(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// An administrator's lock, or its end; unlocking also ends a suspension and clears the
    /// failed-login counter. `LastAdmin` when this would lock the last active administrator.
    pub async fn set_locked(&self, id: UserId, locked: bool) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        bump_epoch(&mut tx).await?;
        if locked {
            keep_an_admin(&mut tx, id).await?;
        }
        let done = sqlx::query(
            "UPDATE users SET locked = $2, \
             failed_logins = CASE WHEN $2 = 0 THEN 0 ELSE failed_logins END, \
             suspended_until = CASE WHEN $2 = 0 THEN 0 ELSE suspended_until END, \
             suspensions = CASE WHEN $2 = 0 THEN 0 ELSE suspensions END, \
             updated_at = $3 WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(i64::from(locked))
        .bind(now())
        .execute(&mut *tx)
        .await?;
        found(done.rows_affected())?;
        tx.commit().await?;
        Ok(())
    }

    /// Reserve one password verification for `id`: counted as a failure until it succeeds.
    /// `false` (nothing counted) when the account is locked or suspended, or when failures and
    /// verifications in flight already reach `lock_after`.
    pub async fn reserve_login_attempt(&self, id: UserId, lock_after: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE users SET failed_logins = failed_logins + 1 \
             WHERE id = $1 AND locked = 0 AND suspended_until <= $2 AND failed_logins < $3",
        )
        .bind(id.to_string())
        .bind(now())
        .bind(lock_after)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A reserved attempt failed: when failures reach `lock_after`, suspend password logins
    /// (for a time that doubles with each suspension in a row) and start counting afresh.
    /// Only one of several concurrent failures suspends.
    pub async fn record_login_failure(&self, id: UserId, policy: Suspension) -> Result<FailureCount> {
        let mut tx = self.pool().begin().await?;
        // The row stays locked (PostgreSQL) or the database written (SQLite) until the commit,
        // so the suspension's length is computed from the count this statement made.
        let row: Option<(i64,)> = sqlx::query_as(
            "UPDATE users SET suspensions = suspensions + 1, failed_logins = 0 \
             WHERE id = $1 AND failed_logins >= $2 RETURNING suspensions",
        )
        .bind(id.to_string())
        .bind(policy.lock_after)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((suspensions,)) = row {
            let until = now() + policy.length(suspensions);
            sqlx::query("UPDATE users SET suspended_until = $2 WHERE id = $1")
                .bind(id.to_string())
                .bind(until)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(FailureCount {
                failed_logins: policy.lock_after,
                suspended_until: Some(until),
            });
        }
        let count: Option<(i64,)> = sqlx::query_as("SELECT failed_logins FROM users WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        let (failed_logins,) = count.ok_or(StoreError::NotFound)?;
        Ok(FailureCount {
            failed_logins,
            suspended_until: None,
        })
    }

    /// A reserved attempt verified: clear the counters, unless the account was locked or
    /// suspended meanwhile (by concurrent failures, on any node), in which case `false`.
    pub async fn record_login_success(&self, id: UserId) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE users SET failed_logins = 0, suspensions = 0 \
             WHERE id = $1 AND locked = 0 AND suspended_until <= $2",
        )
        .bind(id.to_string())
        .bind(now())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Delete a user with their personal tree and tokens. Returns the blob ids that were
    /// referenced by the deleted nodes, for the caller to remove after the commit.
    /// `LastAdmin` when this is the last active administrator.
    pub async fn delete_user(&self, id: UserId) -> Result<Vec<String>> {
        let mut tx = self.pool().begin().await?;
        bump_epoch(&mut tx).await?;
        keep_an_admin(&mut tx, id).await?;
        let blobs: Vec<(String,)> = sqlx::query_as(
            "WITH RECURSIVE sub(id) AS ( \
                SELECT id FROM nodes WHERE parent_id IS NULL AND owner_id = $1 \
                UNION ALL SELECT n.id FROM nodes n JOIN sub ON n.parent_id = sub.id) \
             SELECT blob_id FROM nodes WHERE id IN (SELECT id FROM sub) AND blob_id IS NOT NULL",
        )
        .bind(id.to_string())
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM nodes WHERE id IN (WITH RECURSIVE sub(id) AS ( \
                SELECT id FROM nodes WHERE parent_id IS NULL AND owner_id = $1 \
                UNION ALL SELECT n.id FROM nodes n JOIN sub ON n.parent_id = sub.id) \
             SELECT id FROM sub)",
        )
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM tokens WHERE user_id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        found(done.rows_affected())?;
        tx.commit().await?;
        Ok(blobs.into_iter().map(|(blob,)| blob).collect())
    }
}

/// `LastAdmin` when `id` is an active administrator and no other is. Called after the
/// transaction bumped the auth epoch: that row is locked until the commit, so two changes that
/// each leave one administrator (on any node) run one after the other and the second one sees
/// the first (PostgreSQL's READ COMMITTED takes a new snapshot per statement; SQLite has one
/// writer).
async fn keep_an_admin(conn: &mut sqlx::AnyConnection, id: UserId) -> Result<()> {
    let (target, others): (i64, i64) = sqlx::query_as(
        "SELECT \
           (SELECT COUNT(*) FROM users WHERE id = $1 AND profile = 'admin' AND locked = 0), \
           (SELECT COUNT(*) FROM users WHERE id <> $1 AND profile = 'admin' AND locked = 0)",
    )
    .bind(id.to_string())
    .fetch_one(conn)
    .await?;
    if target > 0 && others == 0 {
        return Err(StoreError::LastAdmin);
    }
    Ok(())
}

fn found(rows_affected: u64) -> Result<()> {
    if rows_affected == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}
