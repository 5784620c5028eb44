//! `Principal`: who is calling, through which credential, with which token restrictions.
//!
//! Every protocol's credential (Basic password, PAT, OAuth access token, SigV4 key, SFTP
//! password, browser session cookie) becomes one of these before anything touches the tree.

use cells_store::{GrantId, GroupId, NodeId, Profile, TokenId, User, UserId};
use uuid::Uuid;

use super::scope::Scope;

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    Password,
    PersonalToken {
        token_id: TokenId,
    },
    /// An OAuth access token of our provider, from this grant.
    AccessToken {
        grant_id: GrantId,
    },
    /// A browser session cookie of the web pages (signed in with the password).
    Session {
        session_id: Uuid,
    },
    /// An SSH public key registered for the user (SFTP).
    SshKey,
    /// No credential: the server itself acts for the user (the command line run by the
    /// operator, the console showing an administrator what a user reaches).
    System,
}

/// A token scope resolved against the tree: the scoped node and its ancestors, root first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeGrant {
    pub scope: Scope,
    /// Ids from the workspace root down to the scoped node itself.
    pub chain: Vec<NodeId>,
}

/// Built only by `auth` from a checked credential, or by `acting_for`; adapters read it.
#[derive(Debug, Clone)]
pub struct Principal {
    pub(crate) user_id: UserId,
    pub(crate) login: String,
    pub(crate) profile: Profile,
    pub(crate) via: Via,
    /// The groups the user belongs to, read with the user's row for this request.
    pub(crate) groups: Vec<GroupId>,
    /// `None`: the user's full rights. `Some`: only what these grants cover (possibly nothing,
    /// when every scoped node has been deleted).
    pub(crate) grants: Option<Vec<ScopeGrant>>,
}

impl Principal {
    /// The principal of a verified credential of `user`.
    pub(crate) fn from_user(user: &User, via: Via, grants: Option<Vec<ScopeGrant>>) -> Principal {
        Principal {
            user_id: user.id,
            login: user.login.clone(),
            profile: user.profile,
            via,
            groups: user.groups.clone(),
            grants,
        }
    }

    /// The server acting for `user` with the user's own full rights (`Via::System`): what the
    /// operator's command line does for a user, and what a user's tokens may reach.
    pub fn acting_for(user: &User) -> Principal {
        Principal::from_user(user, Via::System, None)
    }

    pub fn user_id(&self) -> UserId {
        self.user_id
    }

    pub fn login(&self) -> &str {
        &self.login
    }

    pub fn profile(&self) -> Profile {
        self.profile
    }

    pub fn groups(&self) -> &[GroupId] {
        &self.groups
    }

    pub fn via(&self) -> &Via {
        &self.via
    }

    /// `None`: the user's full rights; `Some`: a scoped token's grants.
    pub fn grants(&self) -> Option<&[ScopeGrant]> {
        self.grants.as_deref()
    }

    /// Administrator with unrestricted credentials: scoped tokens never reach admin routes.
    pub fn is_admin(&self) -> bool {
        self.profile == Profile::Admin && self.grants.is_none()
    }

    pub fn token_id(&self) -> Option<TokenId> {
        match self.via {
            Via::PersonalToken { token_id } => Some(token_id),
            Via::Password | Via::AccessToken { .. } | Via::Session { .. } | Via::SshKey | Via::System => None,
        }
    }
}
