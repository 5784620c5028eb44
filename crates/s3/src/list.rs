//! Listing the bucket: S3's flat, sorted key space over the folder tree.
//!
//! A file is the object `<workspace>/<path>`; a folder is the common prefix `<path>/` when
//! listing with the delimiter `/` (so empty folders show too). Without a delimiter the whole
//! subtree below the prefix's folder is read in one query and only files are keys. Keys sort
//! by their UTF-8 bytes, as S3 sorts them; `after` (a marker, start-after or continuation)
//! excludes everything up to and including it.

use cells_core::auth::principal::Principal;
use cells_core::error::{Error, Result};
use cells_core::files::path::TreePath;
use cells_core::files::{Entry, Tree};

/// One object of a listing.
#[derive(Debug, Clone)]
pub struct Item {
    pub key: String,
    pub size: i64,
    pub etag: String,
    pub mtime: i64,
}

/// One page.
#[derive(Debug, Default)]
pub struct Page {
    pub objects: Vec<Item>,
    pub prefixes: Vec<String>,
    /// More keys follow; `next` is where the next page starts after.
    pub truncated: bool,
    pub next: Option<String>,
}

pub struct Query<'a> {
    pub prefix: &'a str,
    pub delimiter: Option<&'a str>,
    pub after: Option<&'a str>,
    pub max_keys: usize,
}

/// The largest page S3 returns.
pub const MAX_KEYS: usize = 1000;

enum Found {
    Object(Item),
    Prefix(String),
}

impl Found {
    fn key(&self) -> &str {
        match self {
            Found::Object(item) => &item.key,
            Found::Prefix(prefix) => prefix,
        }
    }
}

fn item(entry: &Entry) -> Item {
    Item {
        key: entry.path().to_string(),
        size: entry.node().size,
        etag: entry.node().etag.clone(),
        mtime: entry.node().mtime,
    }
}

/// List one page of what `principal` can see.
pub async fn list(tree: &Tree, principal: &Principal, query: &Query<'_>) -> Result<Page> {
    let prefix = query.prefix;
    let delimiter = query.delimiter.filter(|d| !d.is_empty());
    // The folder holding every key that starts with the prefix.
    let folder = prefix.rfind('/').map(|at| &prefix[..at]);
    let mut found = Vec::new();
    match folder {
        None => {
            // The top: the workspaces are the folders here.
            for workspace in tree.workspaces(principal).await? {
                let name = format!("{}/", workspace.path());
                if !name.starts_with(prefix) && !prefix.starts_with(&name) {
                    continue;
                }
                if delimiter == Some("/") {
                    found.push(Found::Prefix(name));
                } else {
                    collect_below(tree, principal, workspace.path(), query, &mut found).await?;
                }
            }
        }
        Some(folder) => {
            let Ok(path) = TreePath::parse(folder) else {
                return Ok(Page::default());
            };
            if folder.ends_with('/') || folder.is_empty() {
                // `a//b`: no such folder can exist.
                return Ok(Page::default());
            }
            if delimiter == Some("/") {
                let children = match tree.list(principal, &path).await {
                    Ok((folder, children)) if folder.node().is_collection() => children,
                    Ok(_) | Err(Error::NotFound(_) | Error::Forbidden(_)) => Vec::new(),
                    Err(other) => return Err(other),
                };
                for child in children {
                    let key = child.path().to_string();
                    if !key.starts_with(prefix) {
                        continue;
                    }
                    if child.node().is_collection() {
                        found.push(Found::Prefix(format!("{key}/")));
                    } else {
                        found.push(Found::Object(item(&child)));
                    }
                }
            } else {
                collect_below(tree, principal, &path, query, &mut found).await?;
            }
        }
    }
    Ok(paginate(found, query))
}

/// The files below `path` whose keys start with the prefix, rolled up at a delimiter.
async fn collect_below(
    tree: &Tree,
    principal: &Principal,
    path: &TreePath,
    query: &Query<'_>,
    found: &mut Vec<Found>,
) -> Result<()> {
    let entries = match tree.list_recursive(principal, path).await {
        Ok(entries) => entries,
        Err(Error::NotFound(_) | Error::Forbidden(_)) => return Ok(()),
        Err(other) => return Err(other),
    };
    let delimiter = query.delimiter.filter(|d| !d.is_empty());
    let mut prefixes = std::collections::BTreeSet::new();
    for entry in entries {
        if entry.node().is_collection() {
            continue;
        }
        let key = entry.path().to_string();
        let Some(rest) = key.strip_prefix(query.prefix) else {
            continue;
        };
        match delimiter.and_then(|d| rest.find(d).map(|at| at + d.len())) {
            Some(end) => {
                prefixes.insert(format!("{}{}", query.prefix, &rest[..end]));
            }
            None => found.push(Found::Object(item(&entry))),
        }
    }
    found.extend(prefixes.into_iter().map(Found::Prefix));
    Ok(())
}

fn paginate(mut found: Vec<Found>, query: &Query<'_>) -> Page {
    found.sort_by(|a, b| a.key().as_bytes().cmp(b.key().as_bytes()));
    found.dedup_by(|a, b| a.key() == b.key());
    let start = match query.after {
        Some(after) => found.partition_point(|f| f.key().as_bytes() <= after.as_bytes()),
        None => 0,
    };
    let remaining = found.len() - start;
    let take = remaining.min(query.max_keys);
    let mut page = Page {
        truncated: remaining > take,
        ..Page::default()
    };
    for entry in found.drain(start..start + take) {
        if page.truncated {
            page.next = Some(entry.key().to_string());
        }
        match entry {
            Found::Object(item) => page.objects.push(item),
            Found::Prefix(prefix) => page.prefixes.push(prefix),
        }
    }
    page
}

/// Percent-encode a key for `encoding-type=url` responses (keep unreserved characters and `/`).
pub use cells_http::encoding::encode_path as url_encode;

#[cfg(test)]
mod tests {
    use super::*;

    fn object(key: &str) -> Found {
        Found::Object(Item {
            key: key.into(),
            size: 1,
            etag: String::new(),
            mtime: 0,
        })
    }

    fn keys(page: &Page) -> Vec<String> {
        let mut all: Vec<String> = page.objects.iter().map(|o| o.key.clone()).collect();
        all.extend(page.prefixes.iter().cloned());
        all.sort();
        all
    }

    #[test]
    fn pages_are_sorted_by_bytes_and_resume_after_the_marker() {
        let query = |after, max_keys| Query {
            prefix: "",
            delimiter: None,
            after,
            max_keys,
        };
        let all = || {
            vec![
                object("b"),
                object("a"),
                object("B"),
                Found::Prefix("a/".into()),
                object("é"),
            ]
        };
        let first = paginate(all(), &query(None, 2));
        assert_eq!(keys(&first), vec!["B", "a"]);
        assert!(first.truncated);
        assert_eq!(first.next.as_deref(), Some("a"));
        let second = paginate(all(), &query(first.next.as_deref(), 2));
        assert_eq!(keys(&second), vec!["a/", "b"]);
        let third = paginate(all(), &query(second.next.as_deref(), 2));
        assert_eq!(keys(&third), vec!["é"]);
        assert!(!third.truncated && third.next.is_none());
        assert!(
            paginate(all(), &query(Some("ü"), 2)).objects.is_empty(),
            "é sorts after z by bytes"
        );
    }

    #[test]
    fn url_encoding_keeps_slashes_and_unreserved_characters() {
        assert_eq!(
            url_encode("personal-files/a b+c/é~.txt"),
            "personal-files/a%20b%2Bc/%C3%A9~.txt"
        );
    }
}
