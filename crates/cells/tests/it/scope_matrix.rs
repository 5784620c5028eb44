//! The scope matrix of SPEC 3.2 as data: what a token scoped `node:<a>:r` or `:rw` may do.
//!
//! Protocol-neutral: each protocol's tests implement `Driver` (REST here; WebDAV, S3 and SFTP
//! reuse `fixture` and `run`). Paths are workspace paths (`personal-files/a/inner.txt`).

use std::fmt;

use reqwest::StatusCode;

use crate::harness::{Auth, TestApp};

/// One operation, by workspace path.
#[derive(Debug, Clone)]
pub enum Op {
    /// List a folder; the expected visible names, sorted, when allowed.
    List(&'static str, &'static [&'static str]),
    Read(&'static str),
    Write(&'static str),
    Mkdir(&'static str),
    Delete(&'static str),
    Move(&'static str, &'static str),
    Copy(&'static str, &'static str),
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::List(p, _) => write!(f, "list {p}"),
            Op::Read(p) => write!(f, "read {p}"),
            Op::Write(p) => write!(f, "write {p}"),
            Op::Mkdir(p) => write!(f, "mkdir {p}"),
            Op::Delete(p) => write!(f, "delete {p}"),
            Op::Move(from, to) => write!(f, "move {from} -> {to}"),
            Op::Copy(from, to) => write!(f, "copy {from} -> {to}"),
        }
    }
}

/// A protocol's way of doing each operation with the scoped credential.
pub trait Driver {
    /// `Some(names)` of the folder when listing succeeds, `None` when refused.
    async fn list(&self, path: &str) -> Option<Vec<String>>;
    /// Whether the operation succeeded.
    async fn read(&self, path: &str) -> bool;
    async fn write(&self, path: &str, content: &[u8]) -> bool;
    async fn mkdir(&self, path: &str) -> bool;
    async fn delete(&self, path: &str) -> bool;
    async fn rename(&self, from: &str, to: &str) -> bool;
    async fn copy(&self, from: &str, to: &str) -> bool;
}

/// Folders and files the owner creates before the matrix runs (folders end with `/`).
pub const FIXTURE: &[&str] = &[
    "personal-files/a/",
    "personal-files/a/inner.txt",
    "personal-files/a/sub/",
    "personal-files/a/sub/deep.txt",
    "personal-files/b/",
    "personal-files/b/x.txt",
    "common-files/c.txt",
];

/// The scoped folder.
pub const SCOPED: &str = "personal-files/a";

/// (operation, allowed?) for a read-only or a read-write scope on `personal-files/a`.
pub fn cases(write: bool) -> Vec<(Op, bool)> {
    let mut cases = vec![
        (Op::List("personal-files", &["a"]), true),
        (Op::List("personal-files/a", &["inner.txt", "sub"]), true),
        (Op::List("personal-files/a/sub", &["deep.txt"]), true),
        (Op::Read("personal-files/a/inner.txt"), true),
        (Op::Read("personal-files/a/sub/deep.txt"), true),
        (Op::List("personal-files/b", &[]), false),
        (Op::Read("personal-files/b/x.txt"), false),
        (Op::List("common-files", &[]), false),
        (Op::Read("common-files/c.txt"), false),
        (Op::Write("personal-files/top.txt"), false),
        (Op::Write("personal-files/b/new.txt"), false),
        (Op::Write("common-files/new.txt"), false),
        (Op::Mkdir("personal-files/b/newdir"), false),
        (Op::Delete("personal-files/b/x.txt"), false),
        (
            Op::Move("personal-files/a/inner.txt", "personal-files/b/inner.txt"),
            false,
        ),
        (
            Op::Move("personal-files/b/x.txt", "personal-files/a/x.txt"),
            false,
        ),
        (
            Op::Copy("personal-files/b/x.txt", "personal-files/a/x.txt"),
            false,
        ),
        (
            Op::Copy("personal-files/a/inner.txt", "personal-files/b/inner.txt"),
            false,
        ),
        (
            Op::Copy("personal-files/a/inner.txt", "common-files/inner.txt"),
            false,
        ),
        (Op::Copy("personal-files", "personal-files/a/everything"), false),
    ];
    if write {
        cases.extend([
            (Op::Write("personal-files/a/new.txt"), true),
            (Op::Read("personal-files/a/new.txt"), true),
            (Op::Mkdir("personal-files/a/newdir"), true),
            (Op::Write("personal-files/a/newdir/n.txt"), true),
            (
                Op::Move("personal-files/a/new.txt", "personal-files/a/sub/moved.txt"),
                true,
            ),
            (Op::Delete("personal-files/a/sub/moved.txt"), true),
            (
                Op::Copy("personal-files/a/inner.txt", "personal-files/a/sub/copied.txt"),
                true,
            ),
            (Op::Read("personal-files/a/sub/copied.txt"), true),
        ]);
    } else {
        cases.extend([
            (Op::Write("personal-files/a/new.txt"), false),
            (Op::Write("personal-files/a/inner.txt"), false),
            (Op::Mkdir("personal-files/a/newdir"), false),
            (Op::Delete("personal-files/a/inner.txt"), false),
            (
                Op::Move("personal-files/a/inner.txt", "personal-files/a/sub/inner.txt"),
                false,
            ),
            (
                Op::Copy("personal-files/a/inner.txt", "personal-files/a/sub/copied.txt"),
                false,
            ),
        ]);
    }
    cases
}

/// Run every case; panics with the list of cases that went the wrong way.
pub async fn run<D: Driver>(driver: &D, write: bool) {
    let mut wrong = Vec::new();
    for (op, allowed) in cases(write) {
        let outcome = match &op {
            Op::List(path, expected) => match driver.list(path).await {
                Some(mut names) => {
                    names.sort();
                    if allowed && names != *expected {
                        wrong.push(format!("{op}: saw {names:?}, expected {expected:?}"));
                    }
                    true
                }
                None => false,
            },
            Op::Read(path) => driver.read(path).await,
            Op::Write(path) => driver.write(path, b"written by a scoped token").await,
            Op::Mkdir(path) => driver.mkdir(path).await,
            Op::Delete(path) => driver.delete(path).await,
            Op::Move(from, to) => driver.rename(from, to).await,
            Op::Copy(from, to) => driver.copy(from, to).await,
        };
        if outcome != allowed {
            let verb = if allowed { "refused" } else { "allowed" };
            wrong.push(format!("{op}: {verb}, expected the opposite"));
        }
    }
    assert!(
        wrong.is_empty(),
        "scope matrix ({}):\n  {}",
        if write { "rw" } else { "r" },
        wrong.join("\n  ")
    );
}

/// Create the fixture as `owner`, and return the UUID of the scoped folder.
pub async fn fixture(app: &TestApp, owner: &Auth) -> String {
    for path in FIXTURE {
        match path.strip_suffix('/') {
            Some(folder) => assert_eq!(app.mkdir(owner, folder).await, StatusCode::OK, "{folder}"),
            None => assert_eq!(
                app.put(owner, path, format!("content of {path}")).await,
                StatusCode::CREATED
            ),
        }
    }
    app.uuid(owner, SCOPED).await
}

/// A new standard user `owner` with the fixture, and a token of theirs scoped
/// `node:<SCOPED>:<permission>` for an hour.
pub async fn owner_token(app: &TestApp, permission: &str) -> String {
    app.create_user("owner", "owner-password", "standard").await;
    let scoped = fixture(app, &Auth::basic("owner", "owner-password")).await;
    app.token(
        "owner",
        &["-e", "1h", "-s", &format!("node:{scoped}:{permission}")],
    )
}
