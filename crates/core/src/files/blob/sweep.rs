//! The sweep of the blob folder (at start-up, and periodically while serving): unfinished
//! temp files and blobs no node names. What is being written now is registered (`Writing`,
//! through `TempGuard`) before its first byte and left alone, however long ago its last write
//! was (an SFTP file held open); a write that began after the sweep looked is younger than
//! the age a periodic sweep requires.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::SweepReport;
use super::local::{PARTS_ID, PARTS_SUFFIX};

/// The files of one blob store being written now.
#[derive(Default)]
pub(super) struct Writing(Mutex<HashSet<PathBuf>>);

impl Writing {
    /// The paths being written now.
    pub(super) fn paths(&self) -> HashSet<PathBuf> {
        self.set().clone()
    }

    fn set(&self) -> std::sync::MutexGuard<'_, HashSet<PathBuf>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A file being written that no row names yet: known to the sweep while it lives, removed
/// unless the write completed (`keep`).
pub(super) struct TempGuard {
    path: Option<PathBuf>,
    writing: Arc<Writing>,
}

impl TempGuard {
    pub(super) fn new(path: PathBuf, writing: &Arc<Writing>) -> TempGuard {
        writing.set().insert(path.clone());
        TempGuard {
            path: Some(path),
            writing: writing.clone(),
        }
    }

    /// The write completed: the file stays (a row is about to name it).
    pub(super) fn keep(&mut self) {
        if let Some(path) = self.path.take() {
            self.writing.set().remove(&path);
        }
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(&path);
            self.writing.set().remove(&path);
        }
    }
}

/// Remove temp files and the blobs not in `keep`, of those older than `before` (all with
/// `None`), except what is being written now.
pub(super) fn sweep_dir(
    root: &Path,
    keep: &HashSet<String>,
    writing: &Writing,
    before: Option<SystemTime>,
) -> io::Result<SweepReport> {
    let busy = writing.set().clone();
    let old_enough = |entry: &std::fs::DirEntry| -> io::Result<bool> {
        if busy.contains(&entry.path()) {
            return Ok(false);
        }
        Ok(match before {
            None => true,
            Some(before) => entry.metadata()?.modified()? < before,
        })
    };
    let mut report = SweepReport::default();
    let remove = |entry: &std::fs::DirEntry| -> io::Result<()> {
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())
        } else {
            std::fs::remove_file(entry.path())
        }
    };
    for entry in std::fs::read_dir(root.join("tmp"))? {
        let entry = entry?;
        if old_enough(&entry)? {
            remove(&entry)?;
            report.temp_files += 1;
        }
    }
    for shard in std::fs::read_dir(root)? {
        let shard = shard?;
        if shard.file_name() == "tmp" || !shard.file_type()?.is_dir() {
            continue;
        }
        for blob in std::fs::read_dir(shard.path())? {
            let blob = blob?;
            let name = blob.file_name().to_string_lossy().to_string();
            let id = match name.strip_suffix(PARTS_SUFFIX) {
                Some(uuid) => format!("{PARTS_ID}{uuid}"),
                None => name,
            };
            // A parts folder's own time is when it was made, whatever the age of its files.
            if !keep.contains(&id) && old_enough(&blob)? {
                remove(&blob)?;
                report.orphan_blobs += 1;
            }
        }
    }
    Ok(report)
}
