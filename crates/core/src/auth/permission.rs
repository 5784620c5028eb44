//! The one permission decision of cells: (principal, workspace, node, access) → allow,
//! traverse, or refuse.
//!
//! Every protocol (REST, WebDAV, S3, SFTP, web pages) reaches the file tree through `files::`,
//! which asks this function and nothing else. It is pure: the caller passes the node's place in
//! the tree (its workspace with the grants read for this request, and the ids from the root
//! down to the node); the principal carries its user, groups and token scopes.
//!
//! Rules:
//! 1. **The user's rights.** A personal root belongs to one user, who may read and write all
//!    of it. A workspace gives the union of the grants that reach the user: theirs, their
//!    groups', every user's. Rights hold for the whole workspace (no grants on folders inside
//!    one: one place to look, and a listing never has to hide a child). Without any right the
//!    workspace does not exist for the user ("not found": its existence is not disclosed).
//!    Read-only: a write is forbidden. Write-only (a drop box): the user sees and lists what
//!    is there but reads no content, as a write-only token scope does.
//! 2. **Token scopes** narrow rule 1, never widen it. A scope covers its node and the whole
//!    subtree below it (Cells checks only the exact node; we cover the subtree on purpose). On
//!    an ancestor of a scoped node the token may only traverse: see the node and list it,
//!    where only the branch leading to the scoped node is shown. Everything else is invisible;
//!    a visible node that the scope does not let it write is forbidden.
//! 3. The decision is the weaker of rules 1 and 2 (not found < forbidden < traverse < allow).

use std::sync::Arc;

use cells_store::{Grantee, NodeId, UserId, WorkspaceGrant};

use super::principal::Principal;

/// Which workspace a node lives in, with what decides who may use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workspace {
    /// A user's `personal-files`, owned by that user.
    Personal { owner: UserId },
    /// A workspace an administrator defined, with the grants read for this request (those
    /// that may reach the caller; others are ignored anyway).
    Shared { grants: Arc<[WorkspaceGrant]> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// See metadata, list children, read content.
    Read,
    /// Create, overwrite, rename, move, delete.
    Write,
}

/// Ordered from the weakest: the decision of several rules is their minimum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Decision {
    NotFound,
    Forbidden,
    /// Only on the way to a scoped node, or in a write-only workspace: may be seen and
    /// listed, nothing more.
    Traverse,
    Allow,
}

impl Decision {
    /// The node may be seen (stat, and listed in its parent).
    pub fn is_visible(self) -> bool {
        matches!(self, Decision::Allow | Decision::Traverse)
    }
}

/// Read and write rights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rights {
    pub read: bool,
    pub write: bool,
}

impl Rights {
    pub fn any(self) -> bool {
        self.read || self.write
    }
}

/// Whether a workspace grant is for `principal`'s user.
fn reaches(grantee: Grantee, principal: &Principal) -> bool {
    match grantee {
        Grantee::Everyone => true,
        Grantee::User(user) => user == principal.user_id,
        Grantee::Group(group) => principal.groups.contains(&group),
    }
}

/// Rule 1: what the principal's user may do in `workspace`, whatever the credential.
pub fn user_rights(principal: &Principal, workspace: &Workspace) -> Rights {
    match workspace {
        Workspace::Personal { owner } => {
            let own = *owner == principal.user_id;
            Rights {
                read: own,
                write: own,
            }
        }
        Workspace::Shared { grants } => grants
            .iter()
            .filter(|grant| reaches(grant.grantee, principal))
            .fold(Rights::default(), |rights, grant| Rights {
                read: rights.read || grant.read,
                write: rights.write || grant.write,
            }),
    }
}

/// Decide whether `principal` may `access` the node whose root-first id chain is `chain`.
pub fn decide(principal: &Principal, workspace: &Workspace, chain: &[NodeId], access: Access) -> Decision {
    let rights = user_rights(principal, workspace);
    if !rights.any() {
        return Decision::NotFound;
    }
    let own = match access {
        Access::Read if rights.read => Decision::Allow,
        Access::Read => Decision::Traverse,
        Access::Write if rights.write => Decision::Allow,
        Access::Write => Decision::Forbidden,
    };
    let scoped = match &principal.grants {
        None => Decision::Allow,
        Some(grants) => scoped(grants, chain, access),
    };
    own.min(scoped)
}

/// Rule 2: what a scoped token's grants allow on the node of `chain`.
fn scoped(grants: &[super::principal::ScopeGrant], chain: &[NodeId], access: Access) -> Decision {
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
    use cells_store::{GroupId, Profile};

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
        member(user, vec![], grants)
    }

    fn member(user: UserId, groups: Vec<GroupId>, grants: Option<Vec<ScopeGrant>>) -> Principal {
        Principal {
            user_id: user,
            login: "alice".into(),
            profile: Profile::Standard,
            via: Via::System,
            groups,
            grants,
        }
    }

    fn everyone() -> Workspace {
        shared(&[(Grantee::Everyone, true, true)])
    }

    fn shared(grants: &[(Grantee, bool, bool)]) -> Workspace {
        Workspace::Shared {
            grants: grants
                .iter()
                .map(|&(grantee, read, write)| WorkspaceGrant { grantee, read, write })
                .collect(),
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
            assert_eq!(decide(&me, &own, &[t.root, t.a], access), Decision::Allow);
            assert_eq!(decide(&other, &own, &[t.root, t.a], access), Decision::NotFound);
            assert_eq!(decide(&other, &everyone(), &[t.common], access), Decision::Allow);
        }
    }

    #[test]
    fn read_scope_covers_the_subtree_read_only() {
        let t = tree();
        let ws = Workspace::Personal { owner: t.owner };
        let p = principal(t.owner, Some(vec![grant(&t, true, false)]));
        assert_eq!(decide(&p, &ws, &[t.root, t.a], Access::Read), Decision::Allow);
        assert_eq!(
            decide(&p, &ws, &[t.root, t.a, t.a_file], Access::Read),
            Decision::Allow
        );
        assert_eq!(
            decide(&p, &ws, &[t.root, t.a, t.a_file], Access::Write),
            Decision::Forbidden
        );
        assert_eq!(decide(&p, &ws, &[t.root], Access::Read), Decision::Traverse);
        assert_eq!(decide(&p, &ws, &[t.root], Access::Write), Decision::Forbidden);
        assert_eq!(decide(&p, &ws, &[t.root, t.b], Access::Read), Decision::NotFound);
        assert_eq!(decide(&p, &ws, &[t.root, t.b], Access::Write), Decision::NotFound);
        assert_eq!(
            decide(&p, &everyone(), &[t.common], Access::Read),
            Decision::NotFound
        );
    }

    #[test]
    fn read_write_scope_writes_inside_only() {
        let t = tree();
        let ws = Workspace::Personal { owner: t.owner };
        let p = principal(t.owner, Some(vec![grant(&t, true, true)]));
        assert_eq!(
            decide(&p, &ws, &[t.root, t.a, t.a_file], Access::Write),
            Decision::Allow
        );
        assert_eq!(decide(&p, &ws, &[t.root], Access::Write), Decision::Forbidden);
        assert_eq!(decide(&p, &ws, &[t.root, t.b], Access::Write), Decision::NotFound);
    }

    #[test]
    fn write_only_scope_sees_but_cannot_read() {
        let t = tree();
        let ws = Workspace::Personal { owner: t.owner };
        let p = principal(t.owner, Some(vec![grant(&t, false, true)]));
        assert_eq!(
            decide(&p, &ws, &[t.root, t.a, t.a_file], Access::Write),
            Decision::Allow
        );
        assert_eq!(
            decide(&p, &ws, &[t.root, t.a, t.a_file], Access::Read),
            Decision::Traverse
        );
    }

    #[test]
    fn scopes_never_grant_beyond_the_owner() {
        let t = tree();
        let stranger = UserId::random();
        let p = principal(stranger, Some(vec![grant(&t, true, true)]));
        let ws = Workspace::Personal { owner: t.owner };
        assert_eq!(decide(&p, &ws, &[t.root, t.a], Access::Read), Decision::NotFound);
    }

    #[test]
    fn empty_grant_list_sees_nothing() {
        let t = tree();
        let p = principal(t.owner, Some(vec![]));
        let ws = Workspace::Personal { owner: t.owner };
        assert_eq!(decide(&p, &ws, &[t.root], Access::Read), Decision::NotFound);
    }

    /// The whole decision as a table: (user's groups, workspace grants, token scope, node,
    /// access) → decision, for a user `me` in group `g1` (when the row says so).
    #[test]
    fn access_table() {
        use Access::{Read as R, Write as W};
        use Decision::{Allow as A, Forbidden as F, NotFound as N, Traverse as T};
        let t = tree();
        let me = t.owner;
        let other = UserId::random();
        let (g1, g2) = (GroupId::random(), GroupId::random());
        let inside = [t.root, t.a, t.a_file];
        let beside = [t.root, t.b];
        let root = [t.root];
        // Which groups `me` is in; the workspace's grants; the token's scope on `a`
        // (None: the user's own rights); the node; the access; the decision.
        type Row<'a> = (
            Vec<GroupId>,
            Workspace,
            Option<(bool, bool)>,
            &'a [NodeId],
            Access,
            Decision,
        );
        let rows: Vec<Row> = vec![
            // Grants to the user, to their group, to everyone; none; to someone else.
            (
                vec![],
                shared(&[(Grantee::User(me), true, true)]),
                None,
                &inside,
                W,
                A,
            ),
            (
                vec![g1],
                shared(&[(Grantee::Group(g1), true, true)]),
                None,
                &inside,
                W,
                A,
            ),
            (
                vec![g1],
                shared(&[(Grantee::Group(g2), true, true)]),
                None,
                &inside,
                R,
                N,
            ),
            (
                vec![],
                shared(&[(Grantee::Group(g1), true, true)]),
                None,
                &root,
                R,
                N,
            ),
            (
                vec![],
                shared(&[(Grantee::User(other), true, true)]),
                None,
                &root,
                R,
                N,
            ),
            (vec![], shared(&[]), None, &root, R, N),
            (vec![], everyone(), None, &beside, W, A),
            // Read-only: reads, no writes, on every level.
            (
                vec![g1],
                shared(&[(Grantee::Group(g1), true, false)]),
                None,
                &inside,
                R,
                A,
            ),
            (
                vec![g1],
                shared(&[(Grantee::Group(g1), true, false)]),
                None,
                &inside,
                W,
                F,
            ),
            (
                vec![g1],
                shared(&[(Grantee::Group(g1), true, false)]),
                None,
                &root,
                W,
                F,
            ),
            // Write-only (drop box): sees, writes, reads no content.
            (
                vec![],
                shared(&[(Grantee::User(me), false, true)]),
                None,
                &inside,
                R,
                T,
            ),
            (
                vec![],
                shared(&[(Grantee::User(me), false, true)]),
                None,
                &inside,
                W,
                A,
            ),
            // Rights add up across grants.
            (
                vec![g1],
                shared(&[
                    (Grantee::Group(g1), true, false),
                    (Grantee::User(me), false, true),
                ]),
                None,
                &inside,
                W,
                A,
            ),
            (
                vec![g1, g2],
                shared(&[
                    (Grantee::Group(g1), false, true),
                    (Grantee::Group(g2), true, false),
                ]),
                None,
                &inside,
                R,
                A,
            ),
            // A scope narrows the workspace's rights, never widens them.
            (
                vec![g1],
                shared(&[(Grantee::Group(g1), true, true)]),
                Some((true, false)),
                &inside,
                R,
                A,
            ),
            (
                vec![g1],
                shared(&[(Grantee::Group(g1), true, true)]),
                Some((true, false)),
                &inside,
                W,
                F,
            ),
            (
                vec![g1],
                shared(&[(Grantee::Group(g1), true, false)]),
                Some((true, true)),
                &inside,
                W,
                F,
            ),
            (
                vec![g1],
                shared(&[(Grantee::Group(g1), false, true)]),
                Some((true, true)),
                &inside,
                R,
                T,
            ),
            (
                vec![g1],
                shared(&[(Grantee::Group(g1), true, true)]),
                Some((true, true)),
                &beside,
                R,
                N,
            ),
            (
                vec![g1],
                shared(&[(Grantee::Group(g1), true, true)]),
                Some((true, true)),
                &root,
                R,
                T,
            ),
            (
                vec![g1],
                shared(&[(Grantee::Group(g1), true, true)]),
                Some((true, true)),
                &root,
                W,
                F,
            ),
            // The owner left the group: the token's scope gives nothing.
            (
                vec![],
                shared(&[(Grantee::Group(g1), true, true)]),
                Some((true, true)),
                &inside,
                R,
                N,
            ),
            (
                vec![],
                shared(&[(Grantee::Group(g1), true, true)]),
                Some((true, true)),
                &inside,
                W,
                N,
            ),
            // Personal files: the owner's alone, scopes inside them as before.
            (vec![g1], Workspace::Personal { owner: me }, None, &beside, W, A),
            (vec![g1], Workspace::Personal { owner: other }, None, &root, R, N),
            (
                vec![g1],
                Workspace::Personal { owner: me },
                Some((false, true)),
                &inside,
                R,
                T,
            ),
        ];
        for (i, (groups, workspace, scope, chain, access, expected)) in rows.into_iter().enumerate() {
            let grants = scope.map(|(read, write)| vec![grant(&t, read, write)]);
            let p = member(me, groups, grants);
            assert_eq!(decide(&p, &workspace, chain, access), expected, "row {i}");
        }
    }
}
