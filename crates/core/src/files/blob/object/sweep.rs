//! The object store's sweep: orphaned objects (no row, no live intent, older than the age),
//! the multipart uploads of dead intents, and the spool files cut by a crash.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::Path;
use std::time::SystemTime;

use futures_util::StreamExt;
use object_store::ObjectStore;
use object_store::multipart::MultipartStore;
use object_store::path::Path as Key;

use super::super::SweepReport;
use super::super::sweep::Writing;
use super::{COMMIT_GRACE, INTENT_LIFE, ObjectBlobs, PARTS_ID, database_error, store_failure};

impl ObjectBlobs {
    /// The sweep on this store: see the module's opening.
    pub(super) async fn sweep_store(
        &self,
        keep: &HashSet<String>,
        before: Option<SystemTime>,
    ) -> io::Result<SweepReport> {
        let inner = &self.inner;
        let mut report = SweepReport::default();
        // Intents first, then the rows: a write whose intent is gone by now had its row
        // committed before (or failed and took its object along), so the rows read next name
        // it. (`keep`, read by the caller before, is read again here for that order.)
        let now = cells_store::now();
        let intents = self.store.intents().await.map_err(database_error)?;
        let mut keep = keep.clone();
        keep.extend(self.store.referenced_blobs().await.map_err(database_error)?);
        let mut live = HashSet::new();
        for intent in intents {
            let committed = inner
                .id_of(&intent.object_key)
                .is_some_and(|id| keep.contains(&id));
            // A sweep that takes whatever the age runs before serving with no other writer
            // (SQLite: the store is bound to this one database): every intent is a dead
            // process's.
            let alive = before.is_some() && intent.heartbeat >= now - INTENT_LIFE;
            // Whole and never named by a row within `COMMIT_GRACE` (a commit cut short): an
            // orphan.
            let unnamed = intent
                .completed
                .is_some_and(|completed| completed < now - COMMIT_GRACE);
            if alive && !committed && !unnamed {
                live.insert(intent.object_key);
                continue;
            }
            if !committed && let Some(upload) = &intent.upload_id {
                let key = Key::from(intent.object_key.as_str());
                match inner.s3.abort_multipart(&key, &upload.to_string()).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(error) => {
                        tracing::warn!(%error, "could not abort a dead multipart upload");
                        continue;
                    }
                }
            }
            // Committed (a row protects the object now), or dead.
            self.store
                .remove_intent(&intent.object_key)
                .await
                .map_err(database_error)?;
        }
        // Group the listing by blob: its objects and the newest one's time.
        let root = inner.key("");
        let mut blobs: HashMap<String, (String, Vec<Key>, SystemTime)> = HashMap::new();
        let mut listing = inner.s3.list(if inner.prefix.is_empty() {
            None
        } else {
            Some(&root)
        });
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(store_failure)?;
            let full = meta.location.as_ref().to_string();
            let relative = match inner.prefix.is_empty() {
                true => full.as_str(),
                false => match full.strip_prefix(&format!("{}/", inner.prefix)) {
                    Some(relative) => relative,
                    None => continue,
                },
            };
            let (id, intent_key) = match relative.split('/').collect::<Vec<_>>()[..] {
                ["blobs", uuid] => (uuid.to_string(), full.clone()),
                ["parts", uuid, _] => (
                    format!("{PARTS_ID}{uuid}"),
                    inner.parts_folder(uuid).as_ref().to_string(),
                ),
                // `store-id`, and anything that is not ours.
                _ => continue,
            };
            let modified = SystemTime::from(meta.last_modified);
            let entry = blobs.entry(id).or_insert((intent_key, Vec::new(), modified));
            entry.1.push(meta.location);
            entry.2 = entry.2.max(modified);
        }
        for (id, (intent_key, keys, newest)) in blobs {
            if keep.contains(&id)
                || live.contains(&intent_key)
                || before.is_some_and(|before| newest >= before)
            {
                continue;
            }
            match id.strip_prefix(PARTS_ID) {
                Some(uuid) => inner.delete_parts(uuid).await?,
                None => {
                    for key in keys {
                        inner.delete_key(&key).await?;
                    }
                }
            }
            report.orphan_blobs += 1;
        }
        report.temp_files = sweep_spool(&self.spool, &self.writing, before)?;
        Ok(report)
    }
}

/// Remove spool files (drafts cut by a crash) older than `before` that no draft holds now.
fn sweep_spool(spool: &Path, writing: &Writing, before: Option<SystemTime>) -> io::Result<usize> {
    let busy = writing.paths();
    let mut removed = 0;
    for entry in std::fs::read_dir(spool)? {
        let entry = entry?;
        if busy.contains(&entry.path()) {
            continue;
        }
        let old = match before {
            None => true,
            Some(before) => entry.metadata()?.modified()? < before,
        };
        if old && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}
