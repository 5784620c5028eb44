//! Token scopes `node:NODE_UUID:PERMISSION` (PERMISSION `r`, `w` or `rw`), parsed strictly.
//!
//! Cells silently denies everything on a malformed scope; we refuse it when the token is made.

use std::fmt;

use cells_store::NodeId;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope {
    pub node: NodeId,
    pub read: bool,
    pub write: bool,
}

impl Scope {
    /// Parse one scope string; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Scope> {
        let bad = |reason: &str| {
            Error::invalid(
                "scope",
                format!("{text:?}: {reason}; expected node:NODE_UUID:r|w|rw"),
            )
        };
        let mut parts = text.split(':');
        let (Some(kind), Some(node), Some(permission), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("wrong number of parts"));
        };
        if kind != "node" {
            return Err(bad("only node scopes exist"));
        }
        // Hyphenated form only: the form every API of ours prints.
        if node.len() != 36 {
            return Err(bad("not a node UUID"));
        }
        let node = NodeId::parse(node).ok_or_else(|| bad("not a node UUID"))?;
        let (read, write) = match permission {
            "r" => (true, false),
            "w" => (false, true),
            "rw" | "wr" => (true, true),
            _ => return Err(bad("permission must be r, w or rw")),
        };
        Ok(Scope { node, read, write })
    }

    /// Parse a space-separated list, as stored with a token.
    pub fn parse_list(text: &str) -> Result<Vec<Scope>> {
        text.split_whitespace().map(Scope::parse).collect()
    }

    pub fn join(scopes: &[Scope]) -> String {
        scopes.iter().map(Scope::to_string).collect::<Vec<_>>().join(" ")
    }

    pub fn permission(&self) -> &'static str {
        match (self.read, self.write) {
            (true, true) => "rw",
            (false, true) => "w",
            _ => "r",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node:{}:{}", self.node, self.permission())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "6f1c2a4e-8d3b-4c6f-9a1e-2b3c4d5e6f70";

    #[test]
    fn parses_the_three_permissions() {
        for (permission, read, write) in [("r", true, false), ("w", false, true), ("rw", true, true)] {
            let scope = Scope::parse(&format!("node:{ID}:{permission}")).unwrap();
            assert_eq!((scope.read, scope.write), (read, write));
            assert_eq!(scope.to_string(), format!("node:{ID}:{permission}"));
        }
    }

    #[test]
    fn refuses_malformed_scopes() {
        for text in [
            "",
            "node",
            &format!("node:{ID}"),
            &format!("node:{ID}:"),
            &format!("node:{ID}:x"),
            &format!("node:{ID}:rwx"),
            &format!("node:{ID}:r:extra"),
            &format!("file:{ID}:r"),
            "node:not-a-uuid:r",
            &format!("node:{}:r", ID.replace('-', "")),
            &format!("NODE:{ID}:r"),
        ] {
            assert!(Scope::parse(text).is_err(), "{text:?} should be refused");
        }
    }

    #[test]
    fn list_round_trip() {
        let text = format!("node:{ID}:r node:{ID}:rw");
        let scopes = Scope::parse_list(&text).unwrap();
        assert_eq!(scopes.len(), 2);
        assert_eq!(Scope::join(&scopes), text);
        assert!(Scope::parse_list("").unwrap().is_empty());
    }
}
