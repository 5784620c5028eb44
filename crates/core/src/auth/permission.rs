//! The one permission decision of cells: (principal, node, access) → allow, traverse, or refuse.
//!
//! Every protocol (REST, WebDAV, S3, SFTP, web pages) reaches the file tree through `files::`,
//! which asks this function and nothing else. It is pure: the caller passes the node's place in
//! the tree (its workspace and the ids from the root down to it).
//!
//! Rules:
//! 1. A personal root belongs to one user; anyone else gets "not found" (its existence is not
//!    disclosed). `common-files` is readable and writable by every user.
//! 2. A scoped token gets the intersection of its scopes and rule 1. A scope covers its node
//!    and the whole subtree below it (Cells checks only the exact node; we cover the subtree on
//!    purpose). On an ancestor of a scoped node the token may only traverse: see the node and
//!    list it, where only the branch leading to the scoped node is shown. Everything else is
//!    invisible; a visible node that the scope does not let it write is forbidden.

use cells_store::{NodeId, UserId};

use super::principal::Principal;

/// Which workspace a node lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workspace {
    /// A user's `personal-files`, owned by that user.
    Personal { owner: UserId },
    /// `common-files`, shared by all users.
    Common,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// See metadata, list children, read content.
    Read,
    /// Create, overwrite, rename, move, delete.
    Write,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Only on the way to a scoped node: may be seen and listed (filtered), nothing more.
    Traverse,
    Forbidden,
    NotFound,
}

impl Decision {
    /// The node may be seen (stat, and listed in its parent).
    pub fn is_visible(self) -> bool {
        matches!(self, Decision::Allow | Decision::Traverse)
    }
}

/// Decide whether `principal` may `access` the node whose root-first id chain is `chain`.
pub fn decide(principal: &Principal, workspace: Workspace, chain: &[NodeId], access: Access) -> Decision {
    if let Workspace::Personal { owner } = workspace
        && owner != principal.user_id
    {
        return Decision::NotFound;
    }
    let Some(grants) = &principal.grants else {
        return Decision::Allow;
    };
    let mut covered = false;
    for grant in grants {
        if chain.contains(&grant.scope.node) {
            covered = true;
            let granted = match access {
                Access::Read => grant.scope.read,
                Access::Write => grant.scope.write,
            };
            if granted {
                return Decision::Allow;
            }
        }
    }
    if covered {
        // A write-only scope still lets the holder see the nodes it may write.
        return match access {
            Access::Read
                if grants
                    .iter()
                    .any(|g| chain.contains(&g.scope.node) && g.scope.write) =>
            {
                Decision::Traverse
            }
            _ => Decision::Forbidden,
        };
    }
    let leads_to_grant = grants
        .iter()
        .any(|grant| grant.chain.len() > chain.len() && grant.chain.starts_with(chain));
    match (leads_to_grant, access) {
        (true, Access::Read) => Decision::Traverse,
        (true, Access::Write) => Decision::Forbidden,
        (false, _) => Decision::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::principal::{ScopeGrant, Via};
    use crate::auth::scope::Scope;
    use cells_store::Profile;

    struct Tree {
        owner: UserId,
        root: NodeId,
        a: NodeId,
        a_file: NodeId,
        b: NodeId,
        common: NodeId,
    }

    fn tree() -> Tree {
        Tree {
            owner: UserId::random(),
            root: NodeId::random(),
            a: NodeId::random(),
            a_file: NodeId::random(),
            b: NodeId::random(),
            common: NodeId::random(),
        }
    }

    fn principal(user: UserId, grants: Option<Vec<ScopeGrant>>) -> Principal {
        Principal {
            user_id: user,
            login: "alice".into(),
            profile: Profile::Standard,
            via: Via::System,
            grants,
        }
    }

    fn grant(t: &Tree, read: bool, write: bool) -> ScopeGrant {
        ScopeGrant {
            scope: Scope {
                node: t.a,
                read,
                write,
            },
            chain: vec![t.root, t.a],
        }
    }

    #[test]
    fn owner_has_full_rights_and_others_see_nothing() {
        let t = tree();
        let own = Workspace::Personal { owner: t.owner };
        let me = principal(t.owner, None);
        let other = principal(UserId::random(), None);
        for access in [Access::Read, Access::Write] {
            assert_eq!(decide(&me, own, &[t.root, t.a], access), Decision::Allow);
            assert_eq!(decide(&other, own, &[t.root, t.a], access), Decision::NotFound);
            assert_eq!(
                decide(&other, Workspace::Common, &[t.common], access),
                Decision::Allow
            );
        }
    }

    #[test]
    fn read_scope_covers_the_subtree_read_only() {
        let t = tree();
        let ws = Workspace::Personal { owner: t.owner };
        let p = principal(t.owner, Some(vec![grant(&t, true, false)]));
        assert_eq!(decide(&p, ws, &[t.root, t.a], Access::Read), Decision::Allow);
        assert_eq!(
            decide(&p, ws, &[t.root, t.a, t.a_file], Access::Read),
            Decision::Allow
        );
        assert_eq!(
            decide(&p, ws, &[t.root, t.a, t.a_file], Access::Write),
            Decision::Forbidden
        );
        assert_eq!(decide(&p, ws, &[t.root], Access::Read), Decision::Traverse);
        assert_eq!(decide(&p, ws, &[t.root], Access::Write), Decision::Forbidden);
        assert_eq!(decide(&p, ws, &[t.root, t.b], Access::Read), Decision::NotFound);
        assert_eq!(decide(&p, ws, &[t.root, t.b], Access::Write), Decision::NotFound);
        assert_eq!(
            decide(&p, Workspace::Common, &[t.common], Access::Read),
            Decision::NotFound
        );
    }

    #[test]
    fn read_write_scope_writes_inside_only() {
        let t = tree();
        let ws = Workspace::Personal { owner: t.owner };
        let p = principal(t.owner, Some(vec![grant(&t, true, true)]));
        assert_eq!(
            decide(&p, ws, &[t.root, t.a, t.a_file], Access::Write),
            Decision::Allow
        );
        assert_eq!(decide(&p, ws, &[t.root], Access::Write), Decision::Forbidden);
        assert_eq!(decide(&p, ws, &[t.root, t.b], Access::Write), Decision::NotFound);
    }

    #[test]
    fn write_only_scope_sees_but_cannot_read() {
        let t = tree();
        let ws = Workspace::Personal { owner: t.owner };
        let p = principal(t.owner, Some(vec![grant(&t, false, true)]));
        assert_eq!(
            decide(&p, ws, &[t.root, t.a, t.a_file], Access::Write),
            Decision::Allow
        );
        assert_eq!(
            decide(&p, ws, &[t.root, t.a, t.a_file], Access::Read),
            Decision::Traverse
        );
    }

    #[test]
    fn scopes_never_grant_beyond_the_owner() {
        let t = tree();
        let stranger = UserId::random();
        let p = principal(stranger, Some(vec![grant(&t, true, true)]));
        let ws = Workspace::Personal { owner: t.owner };
        assert_eq!(decide(&p, ws, &[t.root, t.a], Access::Read), Decision::NotFound);
    }

    #[test]
    fn empty_grant_list_sees_nothing() {
        let t = tree();
        let p = principal(t.owner, Some(vec![]));
        let ws = Workspace::Personal { owner: t.owner };
        assert_eq!(decide(&p, ws, &[t.root], Access::Read), Decision::NotFound);
    }
}
