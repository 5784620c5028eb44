//! Folder listings as SFTP sends them: attributes and the `ls -l` long names.

use super::*;

impl Session {
    /// The entries of a folder (or the workspaces at `/`), for READDIR.
    pub(super) async fn list(&self, target: Target) -> cells_core::error::Result<Vec<Name>> {
        let now = cells_core::records::now();
        let entries = match target {
            Target::Root => self.tree.workspaces(&self.principal).await?,
            Target::Tree(path) => {
                let (folder, children) = self.tree.list(&self.principal, &path).await?;
                if !folder.node().is_collection() {
                    return Err(Error::Conflict(format!("{path} is not a folder")));
                }
                children
            }
        };
        Ok(entries
            .iter()
            .map(|entry| {
                let filename = entry
                    .path()
                    .name()
                    .unwrap_or(entry.path().workspace().as_str())
                    .to_string();
                let attrs = attrs_of(entry);
                Name {
                    longname: longname(&filename, &attrs, self.principal.login(), now),
                    filename,
                    attrs,
                }
            })
            .collect())
    }
}

pub(super) const FILE_MODE: u32 = 0o100_644;
pub(super) const FOLDER_MODE: u32 = 0o040_755;

pub(super) fn times(mtime: i64) -> (u32, u32) {
    let t = mtime.clamp(0, i64::from(u32::MAX)) as u32;
    (t, t)
}

pub(super) fn attrs_of(entry: &Entry) -> Attrs {
    let folder = entry.node().is_collection();
    Attrs {
        size: Some(if folder {
            0
        } else {
            entry.node().size.max(0) as u64
        }),
        permissions: Some(if folder { FOLDER_MODE } else { FILE_MODE }),
        times: Some(times(entry.node().mtime)),
        ..Attrs::default()
    }
}

/// An `ls -l` line, which OpenSSH's client prints as is.
pub(super) fn longname(name: &str, attrs: &Attrs, owner: &str, now: i64) -> String {
    let folder = attrs.permissions == Some(FOLDER_MODE);
    let mode = if folder { "drwxr-xr-x" } else { "-rw-r--r--" };
    let mtime = attrs.times.map_or(0, |(_, m)| i64::from(m));
    let date = time::OffsetDateTime::from_unix_timestamp(mtime).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS[usize::from(u8::from(date.month())) - 1];
    // As ls: the time of day within six months, the year otherwise.
    let when = if (now - mtime).abs() < 182 * 24 * 3600 {
        format!("{:02}:{:02}", date.hour(), date.minute())
    } else {
        format!(" {}", date.year())
    };
    format!(
        "{mode}    1 {owner:<8} {owner:<8} {size:>8} {month} {day:>2} {when} {name}",
        size = attrs.size.unwrap_or(0),
        day = date.day(),
    )
}
