//! WebDAV dead properties of nodes: arbitrary XML set with PROPPATCH, kept per node id.

use crate::ids::NodeId;
use sqlx::FromRow;

use crate::{Result, Store};

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct DeadProp {
    pub namespace: String,
    pub name: String,
    pub prefix: Option<String>,
    /// The property element as XML text.
    pub xml: String,
}

/// One change of a PROPPATCH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropChange {
    Set(DeadProp),
    Remove { namespace: String, name: String },
}

impl Store {
    pub async fn list_props(&self, node: NodeId) -> Result<Vec<DeadProp>> {
        Ok(sqlx::query_as(
            "SELECT namespace, name, prefix, xml FROM dead_props WHERE node_id = $1 ORDER BY namespace, name",
        )
        .bind(node.to_string())
        .fetch_all(self.pool())
        .await?)
    }

    /// The dead properties of every child of `parent`, in one query (a PROPFIND of a folder).
    pub async fn list_children_props(&self, parent: NodeId) -> Result<Vec<(NodeId, DeadProp)>> {
        let rows: Vec<(String, String, String, Option<String>, String)> = sqlx::query_as(
            "SELECT p.node_id, p.namespace, p.name, p.prefix, p.xml FROM dead_props p \
             JOIN nodes n ON n.id = p.node_id WHERE n.parent_id = $1",
        )
        .bind(parent.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|(node, namespace, name, prefix, xml)| {
                let node = NodeId::parse(&node).ok_or_else(|| {
                    crate::StoreError::Database(sqlx::Error::Decode("dead_props.node_id".into()))
                })?;
                Ok((
                    node,
                    DeadProp {
                        namespace,
                        name,
                        prefix,
                        xml,
                    },
                ))
            })
            .collect()
    }

    /// Apply a PROPPATCH atomically and in document order: all changes or none (RFC 4918
    /// §9.2), so a remove followed by a set of one property leaves it set.
    pub async fn patch_props(&self, node: NodeId, changes: &[PropChange]) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        for change in changes {
            match change {
                PropChange::Set(prop) => {
                    sqlx::query(
                "INSERT INTO dead_props (node_id, namespace, name, prefix, xml) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (node_id, namespace, name) DO UPDATE SET prefix = $4, xml = $5",
            )
            .bind(node.to_string())
            .bind(&prop.namespace)
            .bind(&prop.name)
            .bind(&prop.prefix)
            .bind(&prop.xml)
            .execute(&mut *tx)
            .await?;
                }
                PropChange::Remove { namespace, name } => {
                    sqlx::query("DELETE FROM dead_props WHERE node_id = $1 AND namespace = $2 AND name = $3")
                        .bind(node.to_string())
                        .bind(namespace)
                        .bind(name)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
