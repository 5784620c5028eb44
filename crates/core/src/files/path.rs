//! User-supplied tree paths, parsed and validated in one place: `WORKSPACE[/NAME…]`.
//!
//! A name is refused when it is empty, `.` or `..`, contains `/`, NUL or another control
//! character, or is longer than 255 bytes. Unicode is kept exactly as given (no normalisation),
//! so what a client writes is what it reads back.

use std::fmt;

use crate::error::{Error, Result};

pub const MAX_NAME_BYTES: usize = 255;
pub const MAX_DEPTH: usize = 64;

/// A workspace as paths name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WorkspaceName {
    /// `personal-files`: always the caller's own personal root.
    PersonalFiles,
    /// A workspace an administrator defined, by its slug (`common-files` is one): whether
    /// it exists, and what the caller may do there, is for `Tree` to find out.
    Slug(String),
}

/// The longest workspace slug.
pub const MAX_SLUG_BYTES: usize = 64;

/// The slug of the workspace every user reads and writes on a new server.
pub const COMMON_FILES: &str = "common-files";

impl WorkspaceName {
    pub fn as_str(&self) -> &str {
        match self {
            WorkspaceName::PersonalFiles => "personal-files",
            WorkspaceName::Slug(slug) => slug,
        }
    }

    /// `personal-files`, or a name that could be a slug (`check_slug`); `None` otherwise.
    pub fn parse(text: &str) -> Option<WorkspaceName> {
        if text == "personal-files" {
            return Some(WorkspaceName::PersonalFiles);
        }
        check_slug(text).ok()?;
        Some(WorkspaceName::Slug(text.to_string()))
    }

    pub fn is_personal(&self) -> bool {
        matches!(self, WorkspaceName::PersonalFiles)
    }
}

/// A workspace slug: 1 to 64 lowercase ASCII letters, digits and hyphens, starting and ending
/// with a letter or digit, so that it is the same word in a URL, an S3 key and an SFTP path.
pub fn check_slug(slug: &str) -> Result<()> {
    let ok = !slug.is_empty()
        && slug.len() <= MAX_SLUG_BYTES
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "slug",
            format!(
                "{slug:?} is not a workspace slug: 1 to {MAX_SLUG_BYTES} lowercase letters, digits \
                 and hyphens, starting and ending with a letter or digit"
            ),
        ))
    }
}

/// A validated path inside a workspace: made only by `parse`, `root` and `child`, which
/// check every name. `names` is empty for the workspace root itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreePath {
    pub(crate) workspace: WorkspaceName,
    pub(crate) names: Vec<String>,
}

impl TreePath {
    /// The root of `workspace`.
    pub fn root(workspace: WorkspaceName) -> TreePath {
        TreePath {
            workspace,
            names: Vec::new(),
        }
    }

    pub fn workspace(&self) -> &WorkspaceName {
        &self.workspace
    }

    /// The names below the workspace, root first.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Parse `personal-files/docs/a.txt`; leading and trailing slashes are ignored.
    pub fn parse(text: &str) -> Result<TreePath> {
        let trimmed = text.trim_matches('/');
        if trimmed.is_empty() {
            return Err(Error::invalid(
                "path",
                "is empty; start with personal-files or a workspace's slug",
            ));
        }
        let mut segments = trimmed.split('/');
        let first = segments.next().unwrap_or_default();
        let workspace =
            WorkspaceName::parse(first).ok_or_else(|| Error::NotFound(format!("no workspace {first:?}")))?;
        let names = segments
            .map(|name| validate_name(name).map(str::to_string))
            .collect::<Result<Vec<_>>>()?;
        if names.len() > MAX_DEPTH {
            return Err(Error::invalid(
                "path",
                format!("is deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(TreePath { workspace, names })
    }

    pub fn is_root(&self) -> bool {
        self.names.is_empty()
    }

    /// The last name, or `None` for a workspace root.
    pub fn name(&self) -> Option<&str> {
        self.names.last().map(String::as_str)
    }

    pub fn parent(&self) -> Option<TreePath> {
        if self.names.is_empty() {
            return None;
        }
        let mut names = self.names.clone();
        names.pop();
        Some(TreePath {
            workspace: self.workspace.clone(),
            names,
        })
    }

    /// The path of `name` in this folder; `name` is checked as `parse` checks each one.
    pub fn child(&self, name: &str) -> Result<TreePath> {
        if self.names.len() >= MAX_DEPTH {
            return Err(Error::invalid(
                "path",
                format!("is deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(self.child_of_stored(validate_name(name)?))
    }

    /// The path of a child whose name comes from the tree itself (checked when it was made).
    pub(crate) fn child_of_stored(&self, name: &str) -> TreePath {
        let mut names = self.names.clone();
        names.push(name.to_string());
        TreePath {
            workspace: self.workspace.clone(),
            names,
        }
    }

    pub fn name_refs(&self) -> Vec<&str> {
        self.names.iter().map(String::as_str).collect()
    }

    /// Whether `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &TreePath) -> bool {
        self.workspace == other.workspace && self.names.starts_with(&other.names)
    }
}

impl fmt::Display for TreePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.workspace.as_str())?;
        for name in &self.names {
            write!(f, "/{name}")?;
        }
        Ok(())
    }
}

/// Decode `%XX` escapes of a URL path segment (a malformed escape stays as it is).
pub fn percent_decode(text: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(text).collect()
}

/// Check one file or folder name.
pub fn validate_name(name: &str) -> Result<&str> {
    let bad = |reason: &str| Error::invalid("name", format!("{name:?} {reason}"));
    if name.is_empty() {
        return Err(Error::invalid("name", "empty name (a path has // or ends in /.)"));
    }
    if name == "." || name == ".." {
        return Err(bad("is not allowed: paths cannot go up or stay in place"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(Error::invalid(
            "name",
            format!("is longer than {MAX_NAME_BYTES} bytes"),
        ));
    }
    if name.contains('/') {
        return Err(bad("contains /"));
    }
    if name.chars().any(char::is_control) {
        return Err(bad("contains a control character (such as NUL)"));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_workspaces_and_names() {
        let path = TreePath::parse("/personal-files/docs/a b.txt/").unwrap();
        assert_eq!(path.workspace, WorkspaceName::PersonalFiles);
        assert_eq!(path.names, ["docs", "a b.txt"]);
        assert_eq!(path.to_string(), "personal-files/docs/a b.txt");
        assert!(TreePath::parse("common-files").unwrap().is_root());
    }

    #[test]
    fn keeps_unicode_as_given() {
        let nfc = "caf\u{e9}";
        let nfd = "cafe\u{301}";
        assert_eq!(
            TreePath::parse(&format!("common-files/{nfc}")).unwrap().names,
            [nfc]
        );
        assert_eq!(
            TreePath::parse(&format!("common-files/{nfd}")).unwrap().names,
            [nfd]
        );
        assert!(TreePath::parse("common-files/😀 %#?").is_ok());
    }

    #[test]
    fn refuses_hostile_paths() {
        for path in [
            "",
            "/",
            "personal-files/../x",
            "personal-files/a/..",
            "personal-files/./a",
            "personal-files/a//b",
            "personal-files/a\0b",
            "personal-files/a\nb",
            "Other-User/files",
            "-x/files",
            "..",
            &format!("personal-files/{}", "x".repeat(256)),
            &format!("personal-files/{}", "a/".repeat(70)),
        ] {
            assert!(TreePath::parse(path).is_err(), "{path:?} should be refused");
        }
        assert!(TreePath::parse(&format!("personal-files/{}", "x".repeat(255))).is_ok());
    }

    #[test]
    fn slugs() {
        for good in ["common-files", "marketing", "a", "q3-2026", &"x".repeat(64)] {
            assert!(check_slug(good).is_ok(), "{good}");
            assert_eq!(WorkspaceName::parse(good), Some(WorkspaceName::Slug(good.into())));
        }
        for bad in [
            "",
            "-a",
            "a-",
            "Marketing",
            "a_b",
            "a b",
            "a/b",
            "é",
            &"x".repeat(65),
        ] {
            assert!(check_slug(bad).is_err(), "{bad}");
        }
        assert_eq!(
            WorkspaceName::parse("personal-files"),
            Some(WorkspaceName::PersonalFiles)
        );
    }

    #[test]
    fn ancestry_relations() {
        let a = TreePath::parse("personal-files/a").unwrap();
        let ab = TreePath::parse("personal-files/a/b").unwrap();
        let abc = TreePath::parse("personal-files/abc").unwrap();
        assert!(ab.starts_with(&a));
        assert!(!abc.starts_with(&a));
        assert_eq!(ab.parent().unwrap(), a);
        assert_eq!(a.child("b").unwrap(), ab);
        assert!(a.child("..").is_err() && a.child("x/y").is_err() && a.child("").is_err());
    }
}
