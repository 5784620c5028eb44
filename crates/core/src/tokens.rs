//! Who may see and revoke which personal access tokens: one set of rules for REST, the
//! console and the command line.
//!
//! A credential restricted by scopes manages no tokens (it may only revoke itself). A user
//! sees and revokes their own tokens; an administrator anyone's; the operator at the command
//! line every token. Someone else's token is "not found", so ids cannot be probed.

use std::collections::HashMap;

use cells_store::{Token, TokenId, User, UserId};

use crate::App;
use crate::auth::principal::Principal;
use crate::error::{Error, Result};
use crate::users::Actor;

/// A token with its owner's login, for lists.
pub struct Listed {
    pub token: Token,
    pub owner: String,
}

/// The tokens of `owner` (everyone's without one) that `actor` may see, oldest first.
pub async fn list(app: &App, actor: Actor<'_>, owner: Option<&User>) -> Result<Vec<Listed>> {
    require_unscoped(actor)?;
    // Who each token belongs to, read once: the one owner listed, or every user.
    let (filter, logins): (Option<UserId>, HashMap<UserId, String>) = match (actor, owner) {
        (Actor::Principal(principal), Some(user))
            if user.id != principal.user_id() && !principal.is_admin() =>
        {
            return Err(Error::Forbidden("you can only list your own tokens".into()));
        }
        (_, Some(user)) => (Some(user.id), HashMap::from([(user.id, user.login.clone())])),
        (Actor::Principal(principal), None) if !principal.is_admin() => (
            Some(principal.user_id()),
            HashMap::from([(principal.user_id(), principal.login().to_string())]),
        ),
        (_, None) => {
            let users = app.store.list_users().await?;
            (
                None,
                users.into_iter().map(|user| (user.id, user.login)).collect(),
            )
        }
    };
    let tokens = app.store.list_tokens(filter).await?;
    let listed = tokens
        .into_iter()
        .map(|token| Listed {
            owner: logins.get(&token.user_id).cloned().unwrap_or_default(),
            token,
        })
        .collect();
    Ok(listed)
}

/// Token `id` of `owner`, when `actor` may see it; "not found" otherwise.
pub async fn find(app: &App, actor: Actor<'_>, owner: &User, id: TokenId) -> Result<Token> {
    match app.store.find_token(id).await? {
        Some(token) if token.user_id == owner.id && may_manage(actor, &token) => Ok(token),
        _ => Err(Error::NotFound(format!("no token {id}"))),
    }
}

/// Revoke token `id` on every node (from its next request), when `actor` may: its owner, an
/// administrator, or the operator.
pub async fn revoke(app: &App, actor: Actor<'_>, id: TokenId) -> Result<()> {
    require_unscoped(actor)?;
    match app.store.find_token(id).await? {
        Some(token) if may_manage(actor, &token) => app.auth.revoke_token(id).await,
        _ => Err(Error::NotFound(format!("no token {id}"))),
    }
}

/// The token `principal` came with revokes itself, scoped or not (a script logging out).
pub async fn revoke_itself(app: &App, principal: &Principal) -> Result<()> {
    let id = principal
        .token_id()
        .ok_or_else(|| Error::invalid("TokenId", "is required when not calling with a token"))?;
    app.auth.revoke_token(id).await
}

fn may_manage(actor: Actor<'_>, token: &Token) -> bool {
    match actor {
        Actor::Operator => true,
        Actor::Principal(principal) => {
            principal.grants().is_none() && (token.user_id == principal.user_id() || principal.is_admin())
        }
    }
}

/// Refuse a credential restricted by scopes: it creates, lists and revokes no tokens.
pub fn require_unscoped(actor: Actor<'_>) -> Result<()> {
    match actor {
        Actor::Principal(principal) if principal.grants().is_some() => {
            Err(Error::Forbidden("a scoped token cannot manage tokens".into()))
        }
        _ => Ok(()),
    }
}
