//! User management shared by the CLI, the REST API and the console: create, update, delete,
//! passwords, locks, SSH keys.
//!
//! Each operation validates its input, hashes passwords off the async workers, and, when the
//! user's rights change, drops their cached credentials and waits for the change to reach
//! every server (`Authenticator::settle`) before it returns.
//!
//! Two rules protect the administration itself, whoever asks: nobody locks, demotes or deletes
//! their own account (`Actor`), and the last active administrator cannot be locked, demoted or
//! deleted at all (enforced by the store in the same transaction as the change).

use cells_store::{NewUser, Profile, SshKey, StoreError, User};

use crate::App;
use crate::auth::principal::Principal;
use crate::error::{Error, Result};
use crate::files::personal_root_key;

/// Who asks for a change (of an account, of tokens): a caller with a credential (REST, the
/// console), or the operator at the command line, who is no account and so cannot act on
/// their own.
#[derive(Clone, Copy)]
pub enum Actor<'a> {
    Principal(&'a Principal),
    Operator,
}

impl Actor<'_> {
    /// Refuse a change of `user`'s own standing (`what`: "lock", …) made by that user.
    fn not_on_themselves(self, user: &User, what: &str) -> Result<()> {
        match self {
            Actor::Principal(principal) if principal.user_id() == user.id => {
                Err(Error::Forbidden(format!("you cannot {what} your own account")))
            }
            _ => Ok(()),
        }
    }
}

/// Logins are used in Basic auth (`login:secret`), SFTP and paths: no `:`, `/` or control
/// characters, no surrounding spaces, 1 to 128 characters.
pub fn validate_login(login: &str) -> Result<()> {
    let bad = |reason: &str| Error::invalid("login", format!("{login:?} {reason}"));
    if login.is_empty() || login.chars().count() > 128 {
        return Err(bad("must be 1 to 128 characters"));
    }
    if login.trim() != login {
        return Err(bad("must not start or end with a space"));
    }
    if login.contains([':', '/', '\\']) || login.chars().any(char::is_control) {
        return Err(bad("must not contain ':', '/', '\\' or control characters"));
    }
    Ok(())
}

pub struct UserSpec<'a> {
    pub login: &'a str,
    pub password: &'a str,
    pub profile: Profile,
    pub display_name: &'a str,
    pub email: &'a str,
}

pub async fn create_user(app: &App, spec: UserSpec<'_>) -> Result<User> {
    validate_login(spec.login)?;
    check_text("display_name", spec.display_name)?;
    check_text("email", spec.email)?;
    let hash = app.auth.hasher().hash(spec.password).await?;
    let user = app
        .store
        .create_user(NewUser {
            login: spec.login,
            display_name: spec.display_name,
            email: spec.email,
            profile: spec.profile,
            password_hash: &hash,
        })
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => Error::AlreadyExists(format!("user {}", spec.login)),
            other => other.into(),
        })?;
    app.store
        .ensure_root(&personal_root_key(user.id), Some(user.id))
        .await?;
    Ok(user)
}

fn check_text(field: &str, value: &str) -> Result<()> {
    if value.chars().count() > 256 || value.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            "at most 256 characters, no control characters",
        ));
    }
    Ok(())
}

/// The user with this login, if any.
pub async fn find(app: &App, login: &str) -> Result<Option<User>> {
    Ok(app.store.find_user_by_login(login).await?)
}

/// The user with this id, if any.
pub async fn find_by_id(app: &App, id: cells_store::UserId) -> Result<Option<User>> {
    Ok(app.store.find_user(id).await?)
}

/// Every user, by login.
pub async fn list(app: &App) -> Result<Vec<User>> {
    Ok(app.store.list_users().await?)
}

/// `user`'s SSH keys for SFTP.
pub async fn ssh_keys(app: &App, user: &User) -> Result<Vec<SshKey>> {
    Ok(app.store.list_ssh_keys(user.id).await?)
}

/// One of `user`'s SSH keys, by fingerprint.
pub async fn find_ssh_key(app: &App, user: &User, fingerprint: &str) -> Result<Option<SshKey>> {
    Ok(app.store.find_ssh_key(user.id, fingerprint).await?)
}

pub async fn get_user(app: &App, login: &str) -> Result<User> {
    app.store
        .find_user_by_login(login)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no user {login:?}")))
}

/// Change display name, email and profile. Taking the administrator profile away follows the
/// rules in the module docs.
pub async fn update_user(
    app: &App,
    actor: Actor<'_>,
    user: &User,
    display_name: &str,
    email: &str,
    profile: Profile,
) -> Result<User> {
    check_text("display_name", display_name)?;
    check_text("email", email)?;
    if user.profile == Profile::Admin && profile != Profile::Admin {
        actor.not_on_themselves(user, "take the administrator profile away from")?;
    }
    let updated = app
        .store
        .update_user(user.id, display_name, email, profile)
        .await?;
    app.auth.forget_user(user.id);
    app.auth.settle().await;
    Ok(updated)
}

pub async fn set_password(app: &App, user: &User, password: &str) -> Result<()> {
    let hash = app.auth.hasher().hash(password).await?;
    app.store.set_password_hash(user.id, &hash).await?;
    app.auth.forget_user(user.id);
    app.auth.settle().await;
    Ok(())
}

/// Which lock is in force, for people: `admin` (every credential refused), `suspended until
/// <UTC time>` (new password logins refused after failed ones), or `no`.
pub fn lock_state(user: &User, now: i64) -> String {
    if user.locked {
        "admin".to_string()
    } else if user.suspended_until > now {
        let at = time::OffsetDateTime::from_unix_timestamp(user.suspended_until)
            .map(|t| {
                format!(
                    "{:04}-{:02}-{:02} {:02}:{:02}Z",
                    t.year(),
                    t.month() as u8,
                    t.day(),
                    t.hour(),
                    t.minute()
                )
            })
            .unwrap_or_default();
        format!("suspended until {at}")
    } else {
        "no".to_string()
    }
}

/// An administrator's lock (every credential refused at the next request), or the end of any
/// lock: unlocking also ends a suspension after failed logins. Locking follows the rules in
/// the module docs.
pub async fn set_locked(app: &App, actor: Actor<'_>, user: &User, locked: bool) -> Result<()> {
    if locked {
        actor.not_on_themselves(user, "lock")?;
    }
    app.store.set_locked(user.id, locked).await?;
    app.auth.forget_user(user.id);
    app.auth.settle().await;
    Ok(())
}

/// Delete a user, their personal files and their tokens, following the rules in the module docs.
pub async fn delete_user(app: &App, actor: Actor<'_>, user: &User) -> Result<()> {
    actor.not_on_themselves(user, "delete")?;
    let blobs = app.store.delete_user(user.id).await?;
    app.auth.forget_user(user.id);
    app.tree.forget_root(user.id);
    app.auth.settle().await;
    app.tree.forget_blobs(blobs).await;
    Ok(())
}

/// Register an SSH public key (an OpenSSH `.pub` line) for `user`'s SFTP logins. Ed25519 and
/// ECDSA keys only: the SSH server verifies no RSA signatures.
pub async fn add_ssh_key(app: &App, user: &User, line: &str) -> Result<SshKey> {
    use russh::keys::{Algorithm, HashAlg, PublicKey};
    let key = PublicKey::from_openssh(line.trim())
        .map_err(|e| Error::invalid("key", format!("not an OpenSSH public key line: {e}")))?;
    match key.algorithm() {
        Algorithm::Ed25519 | Algorithm::Ecdsa { .. } => {}
        other => {
            return Err(Error::invalid(
                "key",
                format!(
                    "{} keys are not accepted; use an Ed25519 key (ssh-keygen -t ed25519)",
                    other.as_str()
                ),
            ));
        }
    }
    let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
    let comment = key.comment().to_string();
    check_text("comment", &comment)?;
    let mut bare = key.clone();
    bare.set_comment("");
    let public = bare.to_openssh().map_err(Error::internal)?;
    app.store
        .add_ssh_key(user.id, &fingerprint, public.trim(), &comment)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => {
                Error::Conflict(format!("{} already has the key {fingerprint}", user.login))
            }
            other => other.into(),
        })
}

/// Remove one of `user`'s SSH keys by fingerprint; sessions opened with it end at their next
/// request, on every node.
pub async fn remove_ssh_key(app: &App, user: &User, fingerprint: &str) -> Result<()> {
    app.store
        .delete_ssh_key(user.id, fingerprint)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => Error::NotFound(format!("{} has no key {fingerprint}", user.login)),
            other => other.into(),
        })?;
    app.auth.forget_user(user.id);
    app.auth.settle().await;
    Ok(())
}

/// On first start (no user at all), create the admin from `CELLS_ADMIN_LOGIN` /
/// `CELLS_ADMIN_PASSWORD` (or Cells' `PYDIO_ADMIN_USER_LOGIN` / `PYDIO_ADMIN_USER_PASSWORD`);
/// without a password, generate one and print it once on standard output.
pub async fn bootstrap_admin(app: &App) -> anyhow::Result<()> {
    if app.store.count_users().await? > 0 {
        return Ok(());
    }
    let login = app.config.admin_login.clone();
    let (password, generated) = match app.config.admin_password.as_ref().map(|p| p.expose().clone()) {
        Some(password) => (password, false),
        None => {
            let mut bytes = [0u8; 12];
            crate::random::fill(&mut bytes);
            (hex::encode(bytes), true)
        }
    };
    let spec = UserSpec {
        login: &login,
        password: &password,
        profile: Profile::Admin,
        display_name: "Administrator",
        email: "",
    };
    match create_user(app, spec).await {
        Ok(_) => {}
        // Another node created the first user at the same moment.
        Err(Error::AlreadyExists(_)) => return Ok(()),
        Err(error) => anyhow::bail!("cannot create the admin user {login:?}: {error}"),
    }
    if generated {
        println!(
            "Created the administrator {login:?} with the generated password: {password}\n\
             It is shown only this once. Change it with: cells admin user set-password -u {login} -p NEW"
        );
    } else {
        tracing::info!(%login, "created the administrator from the environment");
    }
    Ok(())
}
