//! Browser sessions of our web pages (the console, the provider's login and consent): opened
//! after a password check, resumed from the signed cookie (`cells_http::session` checks the
//! signature), ended at logout. A session of a locked user, a revoked or an expired one does
//! not resume.

use cells_store::{StoreError, User};
use uuid::Uuid;

use super::principal::{Principal, Via};
use crate::App;
use crate::error::Result;

/// A browser that is signed in: the user, as a principal, and when they signed in.
pub struct SignedIn {
    pub principal: Principal,
    pub user: User,
    pub session_id: Uuid,
    pub auth_time: i64,
}

/// Open a session of `user` for `seconds`: its id and the sign-in time.
pub async fn open(app: &App, user: &User, seconds: i64) -> Result<(Uuid, i64)> {
    let now = cells_store::now();
    let session = app.store.create_session(user.id, now, now + seconds).await?;
    Ok((session.id, now))
}

/// The session `id` names, when it is live and its user is not locked.
pub async fn resume(app: &App, id: Uuid) -> Result<Option<SignedIn>> {
    let Some(session) = app.store.find_session(id).await? else {
        return Ok(None);
    };
    if session.revoked_at.is_some() || session.expires_at < cells_store::now() {
        return Ok(None);
    }
    Ok(match app.store.find_user(session.user_id).await? {
        Some(user) if !user.locked => Some(SignedIn {
            principal: Principal::from_user(&user, Via::Session { session_id: id }, None),
            user,
            session_id: id,
            auth_time: session.auth_time,
        }),
        _ => None,
    })
}

/// End session `id` (and the grants it gave) on every node; an unknown one is already ended.
pub async fn end(app: &App, id: Uuid) -> Result<()> {
    match app.store.revoke_session(id).await {
        Ok(()) | Err(StoreError::NotFound) => Ok(()),
        Err(error) => Err(error.into()),
    }
}
