//! SSH_FXP_EXTENDED requests (OpenSSH's PROTOCOL §4): posix-rename, fsync, limits.

use super::*;

impl Session {
    /// The OpenSSH extensions we speak (PROTOCOL §4): posix-rename, fsync, limits.
    pub(super) async fn extended(
        &mut self,
        id: u32,
        name: &[u8],
        data: Bytes,
    ) -> cells_core::error::Result<()> {
        match name {
            b"posix-rename@openssh.com" => {
                let (from, to) =
                    Request::two_paths(data).ok_or_else(|| Error::invalid("posix-rename", "malformed"))?;
                let (from, to) = (self.tree_path(&from)?, self.tree_path(&to)?);
                self.posix_rename(&from, &to).await?;
                self.ok(id)
            }
            b"fsync@openssh.com" => {
                // OpenSSH's PROTOCOL: the file's data is on disk when this answers OK. An
                // upload is not a file until CLOSE, which syncs its draft: the promise is kept
                // by committing it durably then (in OpenSSH's client, fsync comes just before
                // CLOSE). A file open for reading is committed already; a folder has no data.
                let handle = Request::one_handle(data).ok_or_else(|| Error::invalid("fsync", "malformed"))?;
                match self
                    .handles
                    .get_mut(&parse_handle(&handle)?)
                    .ok_or_else(bad_handle)?
                {
                    Handle::Write(upload) => upload.durable = true,
                    Handle::Read { .. } => {}
                    Handle::Dir { .. } => {
                        packet::status(
                            &mut self.out,
                            id,
                            Code::OpUnsupported,
                            "a folder handle has no data to sync",
                        );
                        return Ok(());
                    }
                }
                self.ok(id)
            }
            b"limits@openssh.com" => {
                // max packet, max read, max write, max open handles (PROTOCOL §4.8).
                let mut reply = Vec::with_capacity(32);
                for value in [
                    packet::MAX_PACKET as u64,
                    u64::from(packet::MAX_DATA),
                    u64::from(packet::MAX_DATA),
                    MAX_HANDLES as u64,
                ] {
                    reply.extend_from_slice(&value.to_be_bytes());
                }
                packet::extended_reply(&mut self.out, id, &reply);
                Ok(())
            }
            _ => {
                let message = format!("extension {:?} is not supported", String::from_utf8_lossy(name));
                packet::status(&mut self.out, id, Code::OpUnsupported, &message);
                Ok(())
            }
        }
    }

    /// posix-rename@openssh.com: like RENAME, but an existing file at `to` is replaced.
    async fn posix_rename(&self, from: &TreePath, to: &TreePath) -> cells_core::error::Result<()> {
        let tree = &self.tree;
        match tree.rename(&self.principal, from, to).await {
            Err(Error::AlreadyExists(existing)) => {
                let source = tree.stat(&self.principal, from).await?;
                let target = tree.stat(&self.principal, to).await?;
                if source.node().is_collection() || target.node().is_collection() {
                    return Err(Error::AlreadyExists(existing));
                }
                if !tree.can_write(&self.principal, from).await? {
                    return Err(Error::Forbidden(format!("this credential may not move {from}")));
                }
                // Not one transaction: between the two steps `to` is briefly absent.
                tree.delete(&self.principal, to).await?;
                tree.rename(&self.principal, from, to).await?;
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }
}
