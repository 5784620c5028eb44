//! Files opened for writing: made at OPEN (POSIX create semantics), written in memory or in a
//! draft, committed whole at CLOSE to wherever the file is by then, or dropped with the
//! session.

use super::*;

/// A file opened for writing: its content committed on CLOSE, whole (readers never see part
/// of it), to the file wherever it is by then: the upload follows its node, so a rename while
/// open moves it (POSIX; rsync and git rename files they still write).
pub(super) struct Upload {
    pub(super) node: NodeId,
    /// Where it was opened: where CLOSE looks first (one walk), before it looks the node up.
    pub(super) opened: TreePath,
    /// The empty file this OPEN made (CREAT of a missing name): removed again if the session
    /// ends before CLOSE and nobody wrote to it since, so an interrupted upload of a new file
    /// leaves nothing behind.
    pub(super) created: Option<Box<Entry>>,
    pub(super) content: Written,
    pub(super) size: u64,
    pub(super) append: bool,
    /// A modification time set through FSETSTAT, applied after the commit.
    pub(super) mtime: Option<i64>,
    /// `fsync@openssh.com` was asked on this handle: CLOSE commits durably. Otherwise a small
    /// file's CLOSE returns once it is committed, and it is on disk within 50 ms
    /// (`Write::deferred`), as CLOSE promises no more in SFTP or POSIX.
    pub(super) durable: bool,
}

/// Where the bytes written to an open file are.
pub(super) enum Written {
    /// In memory, while every write continued the one before from offset 0 and they add up
    /// to at most `MEMORY_UPLOAD`: the usual small file, one or a few WRITEs long, stored on
    /// CLOSE in one hop to the blob store, with no draft file made and written first.
    Memory(BytesMut),
    /// In a draft blob, written at any offset.
    Draft(Draft),
}

impl Upload {
    pub(super) fn in_memory(&self) -> usize {
        match &self.content {
            Written::Memory(buffer) => buffer.len(),
            Written::Draft(_) => 0,
        }
    }

    /// The draft, made now from what is in memory if the upload is still there.
    pub(super) async fn draft(
        &mut self,
        blobs: &Arc<dyn BlobStore>,
    ) -> cells_core::error::Result<&mut Draft> {
        // The buffer stays until the draft holds its bytes: a failure here loses nothing.
        if let Written::Memory(buffer) = &self.content {
            let data = Bytes::copy_from_slice(buffer);
            let mut draft = blobs.draft(None).await?;
            draft.write_at(data, 0).await?;
            self.content = Written::Draft(draft);
        }
        match &mut self.content {
            Written::Draft(draft) => Ok(draft),
            Written::Memory(_) => unreachable!("moved to a draft above"),
        }
    }
}

impl Session {
    /// OPEN with WRITE: the upload handle, once the credential may write there.
    pub(super) async fn open_for_writing(
        &mut self,
        path: TreePath,
        flags: u32,
    ) -> cells_core::error::Result<Handle> {
        let tree = &self.tree;
        let exclusive = flags & packet::OPEN_CREATE != 0 && flags & packet::OPEN_EXCLUSIVE != 0;
        let refused = || Error::Forbidden(format!("this credential may not write {path}"));
        let at = |error: Error| match error {
            Error::Forbidden(_) => refused(),
            Error::ParentMissing(_) => Error::NotFound(error.to_string()),
            other => other,
        };
        // POSIX: after an open with CREAT the name exists (sshfs stats it at once, and fails
        // the open if it does not). It exists empty: the content arrives whole at CLOSE. The
        // store makes the name once, so of two exclusive creates on any nodes one fails (git's
        // `index.lock`). A new name, the usual upload, costs one lookup that also checks the
        // right to write; an existing one, a second.
        let made = match flags & packet::OPEN_CREATE {
            0 => Err(Error::AlreadyExists(path.to_string())),
            _ => tree.create_empty(&self.principal, &path).await,
        };
        let (existing, created) = match made {
            Ok(entry) => (entry.clone(), Some(Box::new(entry))),
            Err(Error::AlreadyExists(_)) if exclusive => return Err(Error::AlreadyExists(path.to_string())),
            Err(Error::AlreadyExists(_)) => {
                match tree.write_target(&self.principal, &path).await.map_err(at)? {
                    Some(entry) if entry.node().is_collection() => {
                        return Err(Error::IsFolder(path.to_string()));
                    }
                    Some(entry) => (entry, None),
                    None if flags & packet::OPEN_CREATE == 0 => {
                        return Err(Error::NotFound(format!("{path} does not exist")));
                    }
                    // Gone again since our look: make it now.
                    None => {
                        let entry = tree.create_empty(&self.principal, &path).await.map_err(at)?;
                        (entry.clone(), Some(Box::new(entry)))
                    }
                }
            }
            Err(other) => return Err(at(other)),
        };
        // Without TRUNCATE the file keeps its content and the client writes into it; a file
        // just made is empty anyway.
        let keep = created.is_none() && flags & packet::OPEN_TRUNCATE == 0;
        let (content, size) = match keep {
            true => {
                // The handle's READs would return the content: a credential that may write
                // but not read (a drop box, a write-only scope) must truncate.
                if !tree.can_read(&self.principal, &path).await? {
                    return Err(Error::Forbidden(format!(
                        "this credential may not read {path}; open it with truncation to replace it"
                    )));
                }
                let draft = tree.draft_of(Some(existing.node())).await?;
                (Written::Draft(draft), existing.node().size.max(0) as u64)
            }
            false => (Written::Memory(BytesMut::new()), 0),
        };
        Ok(Handle::Write(Box::new(Upload {
            node: existing.node().id,
            opened: path,
            created,
            content,
            size,
            append: flags & packet::OPEN_APPEND != 0,
            mtime: None,
            durable: false,
        })))
    }

    pub(super) async fn write(
        &mut self,
        handle: &[u8],
        offset: u64,
        data: Bytes,
    ) -> cells_core::error::Result<()> {
        let number = parse_handle(handle)?;
        let Some(Handle::Write(upload)) = self.handles.get_mut(&number) else {
            return Err(match self.handles.get(&number) {
                None => bad_handle(),
                Some(_) => Error::Forbidden("this handle was not opened for writing".into()),
            });
        };
        let offset = if upload.append { upload.size } else { offset };
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| Error::invalid("offset", "is too large"))?;
        // A write far past the end would make a sparse file of any size for free.
        self.tree.check_file_size(end)?;
        if let Written::Memory(buffer) = &mut upload.content
            && offset == buffer.len() as u64
            && end <= MEMORY_UPLOAD as u64
            && self.in_memory + data.len() <= SESSION_MEMORY
        {
            buffer.extend_from_slice(&data);
            self.in_memory += data.len();
            upload.size = end;
            return Ok(());
        }
        let freed = upload.in_memory();
        let draft = upload.draft(self.tree.blobs()).await?;
        self.in_memory -= freed;
        draft.write_at(Bytes::copy_from_slice(&data), offset).await?;
        upload.size = upload.size.max(end);
        Ok(())
    }

    /// The session ended with files still open for writing: their writes are dropped (never
    /// a partial file), and a file their OPEN made goes away again if it is still empty.
    pub(super) async fn abandon_uploads(&mut self) {
        for (_, handle) in self.handles.drain() {
            if let Handle::Write(upload) = handle
                && let Some(created) = upload.created
                && let Err(error) = self.tree.discard_created(&created).await
            {
                tracing::warn!(%error, path = %created.path(), "sftp: an abandoned new file was not removed");
            }
        }
    }

    /// CLOSE of a written file: what was written becomes the file's content, atomically, at
    /// the file's path now (it may have been renamed while open).
    pub(super) async fn commit(&self, upload: Upload) -> cells_core::error::Result<()> {
        let Upload {
            node,
            opened,
            content,
            mtime,
            durable,
            created,
            ..
        } = upload;
        let tree = &self.tree;
        // Deleted while open: as with POSIX's unlinked files, what was written goes with the
        // last handle (`None`; a draft is removed when dropped).
        let committed = async {
            match content {
                Written::Memory(buffer) => {
                    let body = bytes_stream(buffer.freeze());
                    let options = Write {
                        deferred: !durable,
                        ..Write::default()
                    };
                    tree.write_node(&self.principal, &opened, node, body, &options)
                        .await
                }
                Written::Draft(draft) => {
                    // Hashed after the commit (`files::etags`): no SFTP client asks for the MD5.
                    let written = tree.blobs().finish(draft, Md5When::Later).await?;
                    tree.commit_blob_to_node(&self.principal, &opened, node, written, &Write::default())
                        .await
                }
            }
        }
        .await;
        // A refused CLOSE (a quota, a full disk) leaves nothing: the empty file its OPEN made
        // goes too, if nobody wrote to it since.
        let committed = match committed {
            Ok(committed) => committed,
            Err(error) => {
                if let Some(created) = created
                    && let Err(cleanup) = tree.discard_created(&created).await
                {
                    tracing::warn!(%cleanup, path = %created.path(), "sftp: a refused new file was not removed");
                }
                return Err(error);
            }
        };
        let Some(entry) = committed else {
            return Ok(());
        };
        let path = entry.path();
        if let Some(mtime) = mtime {
            tree.set_mtime(&self.principal, path, mtime).await?;
        }
        Ok(())
    }
}
