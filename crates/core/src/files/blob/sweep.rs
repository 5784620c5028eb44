//! The start-up sweep of the blob folder: unfinished temp files and blobs no node names.

use std::collections::HashSet;
use std::io;
use std::path::Path;
use std::time::SystemTime;

use super::{PARTS_ID, PARTS_SUFFIX, SweepReport};

/// Remove temp files and the blobs not in `keep`, of those older than `before` (all with `None`).
pub(super) fn sweep_dir(
    root: &Path,
    keep: &HashSet<String>,
    before: Option<SystemTime>,
) -> io::Result<SweepReport> {
    let old_enough = |entry: &std::fs::DirEntry| -> io::Result<bool> {
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
