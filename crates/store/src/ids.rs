//! Typed ids where kinds of UUID travel side by side and could be swapped without the
//! compiler noticing: a user's and a node's (a personal root is keyed by its owner, a scope by
//! its node), a personal access token's and an OAuth grant's (both revoke credentials, both
//! ride in a `Principal`).

use std::fmt;

use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            pub fn new(uuid: Uuid) -> $name {
                $name(uuid)
            }

            /// A fresh random id.
            pub fn random() -> $name {
                $name(Uuid::new_v4())
            }

            pub fn uuid(self) -> Uuid {
                self.0
            }

            /// The id written as a UUID; `None` for anything else.
            pub fn parse(text: &str) -> Option<$name> {
                Uuid::parse_str(text).ok().map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                self.0.serialize(serializer)
            }
        }
    };
}

typed_id!(
    /// A user's id (the `users` table; the OpenID `sub`).
    UserId
);
typed_id!(
    /// A node's id in the file tree (the `nodes` table; REST's `Uuid`).
    NodeId
);
typed_id!(
    /// A personal access token's id (the `tokens` table).
    TokenId
);
typed_id!(
    /// An OAuth grant's id: what its codes, refresh tokens and access tokens share.
    GrantId
);
typed_id!(
    /// A group of users (the `user_groups` table).
    GroupId
);
typed_id!(
    /// A workspace defined by an administrator (the `workspaces` table).
    WorkspaceId
);

#[cfg(test)]
mod tests {
    use super::{GrantId, TokenId};

    #[test]
    fn ids_read_and_write_as_uuids() {
        let id = TokenId::random();
        assert_eq!(TokenId::parse(&id.to_string()), Some(id));
        assert_eq!(
            serde_json::to_value(id).unwrap(),
            serde_json::json!(id.uuid().to_string())
        );
        assert_eq!(GrantId::parse("not-a-uuid"), None);
        assert_ne!(GrantId::random(), GrantId::random());
    }
}
