//! The access matrix as data: what each kind of principal may do where, down to the answer
//! of a refusal: 403 (the node is visible, the operation is not allowed) or 404 (the node
//! does not exist for this caller).
//!
//! Protocol-neutral: each protocol's tests implement `Driver`, translating its answers into
//! an `Outcome` (REST, WebDAV, S3, SFTP and the console), and run every role with `run`.
//! Paths are workspace paths (`personal-files/a/inner.txt`, `team/b.txt`); the empty path
//! is the top of the tree.
//!
//! Roles: a token scoped `r` or `rw` on `personal-files/a`; in workspace `team`, a member of
//! the group granted `rw`, a user granted `r`, a user granted only `w` (a drop box), a user
//! with no grant, and a member's token scoped `rw` on `team/a`.

use std::fmt;

use reqwest::StatusCode;

use crate::harness::{Auth, TestApp};

/// What an operation came to, as every protocol can say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// 403, `AccessDenied`, `SSH_FX_PERMISSION_DENIED`.
    Forbidden,
    /// 404, `NoSuchKey`, `SSH_FX_NO_SUCH_FILE`; WebDAV's 409 for a missing parent
    /// (RFC 4918 §9.7.1) too.
    NotFound,
    /// Anything else, described.
    Other(String),
    /// The protocol has no such operation (the console copies nothing, and renames only in
    /// place): the case is skipped.
    Unsupported,
}

impl Outcome {
    /// The outcome of an HTTP status: 2xx done, 403, 404, else `Other`.
    pub fn of_status(status: StatusCode) -> Outcome {
        match status {
            s if s.is_success() => Outcome::Done,
            StatusCode::FORBIDDEN => Outcome::Forbidden,
            StatusCode::NOT_FOUND => Outcome::NotFound,
            other => Outcome::Other(other.to_string()),
        }
    }
}

use Outcome::{Done, Forbidden as F, NotFound as N};

/// One operation, by workspace path.
#[derive(Debug, Clone)]
pub enum Op {
    /// List a folder (`""`: the top); the expected names, sorted, when done.
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
            Op::List(p, _) => write!(f, "list {p:?}"),
            Op::Read(p) => write!(f, "read {p}"),
            Op::Write(p) => write!(f, "write {p}"),
            Op::Mkdir(p) => write!(f, "mkdir {p}"),
            Op::Delete(p) => write!(f, "delete {p}"),
            Op::Move(from, to) => write!(f, "move {from} -> {to}"),
            Op::Copy(from, to) => write!(f, "copy {from} -> {to}"),
        }
    }
}

/// A protocol's way of doing each operation with one credential.
pub trait Driver {
    /// The names in the folder (`""`: the workspaces at the top).
    async fn list(&self, path: &str) -> Result<Vec<String>, Outcome>;
    async fn read(&self, path: &str) -> Outcome;
    async fn write(&self, path: &str, content: &[u8]) -> Outcome;
    async fn mkdir(&self, path: &str) -> Outcome;
    async fn delete(&self, path: &str) -> Outcome;
    async fn rename(&self, from: &str, to: &str) -> Outcome;
    async fn copy(&self, from: &str, to: &str) -> Outcome;
    /// What this protocol answers where the matrix expects `expected`: the same, unless the
    /// protocol cannot say it (and says why in its override).
    fn expect(&self, _op: &Op, expected: Outcome) -> Outcome {
        expected
    }
}

/// Folders and files the owner creates before the scope roles run (folders end with `/`).
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

/// A token of the owner scoped `r` (`write` false) or `rw` on `personal-files/a`.
pub fn scope_cases(write: bool) -> Vec<(Op, Outcome)> {
    let mut cases = vec![
        (Op::List("", &["personal-files"]), Done),
        (Op::List("personal-files", &["a"]), Done),
        (Op::List("personal-files/a", &["inner.txt", "sub"]), Done),
        (Op::List("personal-files/a/sub", &["deep.txt"]), Done),
        (Op::Read("personal-files/a/inner.txt"), Done),
        (Op::Read("personal-files/a/sub/deep.txt"), Done),
        (Op::List("personal-files/b", &[]), N),
        (Op::Read("personal-files/b/x.txt"), N),
        (Op::List("common-files", &[]), N),
        (Op::Read("common-files/c.txt"), N),
        (Op::Write("personal-files/top.txt"), F),
        (Op::Write("personal-files/b/new.txt"), N),
        (Op::Write("common-files/new.txt"), N),
        (Op::Mkdir("personal-files/b/newdir"), N),
        (Op::Delete("personal-files/b/x.txt"), N),
        (Op::Move("personal-files/b/x.txt", "personal-files/a/x.txt"), N),
        (Op::Copy("personal-files/b/x.txt", "personal-files/a/x.txt"), N),
        (
            Op::Copy("personal-files/a/inner.txt", "personal-files/b/inner.txt"),
            N,
        ),
        (
            Op::Copy("personal-files/a/inner.txt", "common-files/inner.txt"),
            N,
        ),
    ];
    if write {
        cases.extend([
            (
                Op::Move("personal-files/a/inner.txt", "personal-files/b/inner.txt"),
                N,
            ),
            (Op::Write("personal-files/a/new.txt"), Done),
            (Op::Read("personal-files/a/new.txt"), Done),
            (Op::Mkdir("personal-files/a/newdir"), Done),
            (Op::Write("personal-files/a/newdir/n.txt"), Done),
            (
                Op::Move("personal-files/a/new.txt", "personal-files/a/sub/moved.txt"),
                Done,
            ),
            (Op::Delete("personal-files/a/sub/moved.txt"), Done),
            (
                Op::Copy("personal-files/a/inner.txt", "personal-files/a/sub/copied.txt"),
                Done,
            ),
            (Op::Read("personal-files/a/sub/copied.txt"), Done),
        ]);
    } else {
        cases.extend([
            (
                Op::Move("personal-files/a/inner.txt", "personal-files/b/inner.txt"),
                F,
            ),
            (Op::Write("personal-files/a/new.txt"), F),
            (Op::Write("personal-files/a/inner.txt"), F),
            (Op::Mkdir("personal-files/a/newdir"), F),
            (Op::Delete("personal-files/a/inner.txt"), F),
            (
                Op::Move("personal-files/a/inner.txt", "personal-files/a/sub/inner.txt"),
                F,
            ),
            (
                Op::Copy("personal-files/a/inner.txt", "personal-files/a/sub/copied.txt"),
                F,
            ),
        ]);
    }
    cases
}

/// The workspace of the workspace roles, and what an administrator puts in it first.
pub const TEAM_FIXTURE: &[&str] = &["team/a/", "team/a/inner.txt", "team/b.txt"];

/// Who uses `team`, and how (`workspace_app` makes them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// In group `staff`, granted `rw`.
    Member,
    /// Granted `r` directly.
    Reader,
    /// Granted `w` only: a drop box.
    Dropper,
    /// No grant (not in `staff`).
    Outsider,
    /// A token of `member` scoped `rw` on `team/a`.
    ScopedMember,
}

impl Role {
    /// In the order `run_roles` runs them: each role's writes are seen by the next ones.
    pub const ALL: [Role; 5] = [
        Role::Reader,
        Role::Outsider,
        Role::ScopedMember,
        Role::Dropper,
        Role::Member,
    ];

    pub fn login(self) -> &'static str {
        match self {
            Role::Member | Role::ScopedMember => "member",
            Role::Reader => "reader",
            Role::Dropper => "dropper",
            Role::Outsider => "outsider",
        }
    }
}

/// A user's password in the workspace roles.
pub const PASSWORD: &str = "role-password";

pub fn role_cases(role: Role) -> Vec<(Op, Outcome)> {
    match role {
        Role::Member => vec![
            (Op::List("", &["common-files", "personal-files", "team"]), Done),
            (Op::List("team", &["a", "b.txt", "drop.txt"]), Done),
            (Op::Read("team/b.txt"), Done),
            (Op::Read("team/a/t.txt"), Done),
            (Op::Write("team/new.txt"), Done),
            (Op::Mkdir("team/d"), Done),
            (Op::Write("team/d/new.txt"), Done),
            (Op::Move("team/new.txt", "team/d/moved.txt"), Done),
            (Op::Copy("team/b.txt", "personal-files/from-team.txt"), Done),
            (Op::Copy("personal-files/b.txt", "team/d/back.txt"), Done),
            (Op::Read("team/d/new.txt"), Done),
            (Op::Delete("team/d/new.txt"), Done),
        ],
        Role::Reader => vec![
            (Op::List("", &["common-files", "personal-files", "team"]), Done),
            (Op::List("team", &["a", "b.txt"]), Done),
            (Op::List("team/a", &["inner.txt"]), Done),
            (Op::Read("team/a/inner.txt"), Done),
            (Op::Write("team/new.txt"), F),
            (Op::Write("team/b.txt"), F),
            (Op::Mkdir("team/d"), F),
            (Op::Delete("team/b.txt"), F),
            (Op::Move("team/b.txt", "team/a/b.txt"), F),
            (Op::Copy("team/b.txt", "team/a/c.txt"), F),
            (Op::Copy("team/b.txt", "personal-files/from-team.txt"), Done),
            (Op::Move("personal-files/b.txt", "team/b2.txt"), F),
        ],
        Role::Dropper => vec![
            (Op::List("", &["common-files", "personal-files", "team"]), Done),
            (Op::List("team", &["a", "b.txt"]), Done),
            (Op::Read("team/b.txt"), F),
            (Op::Write("team/drop.txt"), Done),
            (Op::Copy("team/b.txt", "personal-files/from-team.txt"), F),
            (Op::Read("team/drop.txt"), F),
            // Taking a file out would let the drop box read it.
            (Op::Move("team/drop.txt", "personal-files/taken.txt"), F),
            (Op::Move("team/b.txt", "personal-files/taken.txt"), F),
        ],
        Role::Outsider => vec![
            (Op::List("", &["common-files", "personal-files"]), Done),
            (Op::List("team", &[]), N),
            (Op::List("team/a", &[]), N),
            (Op::Read("team/b.txt"), N),
            (Op::Write("team/new.txt"), N),
            (Op::Write("team/b.txt"), N),
            (Op::Mkdir("team/d"), N),
            (Op::Delete("team/b.txt"), N),
            (Op::Move("team/b.txt", "personal-files/moved.txt"), N),
            (Op::Copy("team/b.txt", "personal-files/from-team.txt"), N),
            (Op::Write("nowhere/x.txt"), N),
        ],
        Role::ScopedMember => vec![
            (Op::List("", &["team"]), Done),
            (Op::List("team", &["a"]), Done),
            (Op::Read("team/b.txt"), N),
            (Op::Read("team/a/inner.txt"), Done),
            (Op::Write("team/a/t.txt"), Done),
            (Op::Write("team/t.txt"), F),
            (Op::Delete("team/b.txt"), N),
            (Op::List("personal-files", &[]), N),
            (Op::Copy("team/a/inner.txt", "personal-files/i.txt"), N),
        ],
    }
}

/// Run `cases`; panics with every case that went another way, named by `what`.
pub async fn run<D: Driver>(driver: &D, what: &str, cases: Vec<(Op, Outcome)>) {
    let mut wrong = Vec::new();
    for (op, expected) in cases {
        let expected = driver.expect(&op, expected);
        let outcome = match &op {
            Op::List(path, names) => match driver.list(path).await {
                Ok(mut seen) => {
                    seen.sort();
                    if expected == Done && seen != *names {
                        wrong.push(format!("{op}: saw {seen:?}, expected {names:?}"));
                    }
                    Done
                }
                Err(outcome) => outcome,
            },
            Op::Read(path) => driver.read(path).await,
            Op::Write(path) => driver.write(path, b"written in the access matrix").await,
            Op::Mkdir(path) => driver.mkdir(path).await,
            Op::Delete(path) => driver.delete(path).await,
            Op::Move(from, to) => driver.rename(from, to).await,
            Op::Copy(from, to) => driver.copy(from, to).await,
        };
        if outcome != expected && outcome != Outcome::Unsupported {
            wrong.push(format!("{op}: {outcome:?}, expected {expected:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "access matrix, {what}:\n  {}",
        wrong.join("\n  ")
    );
}

async fn make(app: &TestApp, owner: &Auth, paths: &[&str]) {
    for path in paths {
        match path.strip_suffix('/') {
            Some(folder) => assert_eq!(app.mkdir(owner, folder).await, StatusCode::OK, "{folder}"),
            None => assert_eq!(
                app.put(owner, path, format!("content of {path}")).await,
                StatusCode::CREATED,
                "{path}"
            ),
        }
    }
}

/// Create the fixture as `owner`, and return the UUID of the scoped folder.
pub async fn fixture(app: &TestApp, owner: &Auth) -> String {
    make(app, owner, FIXTURE).await;
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

/// Workspace `team` with its fixture, and the users of every `Role` with their grants.
/// Returns the token of `Role::ScopedMember`.
pub async fn workspace_app(app: &TestApp) -> String {
    for login in ["member", "reader", "dropper", "outsider"] {
        app.create_user(login, PASSWORD, "standard").await;
    }
    app.cli_ok(&["admin", "group", "create", "staff"]);
    app.cli_ok(&["admin", "group", "add-user", "staff", "-u", "member"]);
    app.cli_ok(&["admin", "workspace", "create", "team", "--label", "Team"]);
    app.cli_ok(&[
        "admin",
        "workspace",
        "grant",
        "team",
        "-g",
        "staff",
        "--rights",
        "rw",
    ]);
    app.cli_ok(&[
        "admin",
        "workspace",
        "grant",
        "team",
        "-u",
        "reader",
        "--rights",
        "r",
    ]);
    app.cli_ok(&[
        "admin",
        "workspace",
        "grant",
        "team",
        "-u",
        "dropper",
        "--rights",
        "w",
    ]);
    let member = Auth::basic("member", PASSWORD);
    make(app, &member, TEAM_FIXTURE).await;
    for login in ["member", "reader", "dropper", "outsider"] {
        make(app, &Auth::basic(login, PASSWORD), &["personal-files/b.txt"]).await;
    }
    let scoped = app.uuid(&member, "team/a").await;
    app.token("member", &["-e", "1h", "-s", &format!("node:{scoped}:rw")])
}

/// The secret each role logs in with: its password, or with `tokens` (protocols that take no
/// password, such as S3) a personal access token of its own; the scoped token for
/// `Role::ScopedMember`.
pub fn role_secrets(app: &TestApp, scoped_token: &str, tokens: bool) -> Vec<(Role, String)> {
    Role::ALL
        .into_iter()
        .map(|role| {
            let secret = match role {
                Role::ScopedMember => scoped_token.to_string(),
                _ if tokens => app.token(role.login(), &["-e", "1h"]),
                _ => PASSWORD.to_string(),
            };
            (role, secret)
        })
        .collect()
}

/// Every role of `workspace_app`, in order, through the driver `driver_for` makes for a
/// login and its secret (`role_secrets`).
pub async fn run_roles<D: Driver>(
    protocol: &str,
    secrets: &[(Role, String)],
    driver_for: impl AsyncFn(&str, &str) -> D,
) {
    for (role, secret) in secrets {
        let driver = driver_for(role.login(), secret).await;
        run(&driver, &format!("{protocol}, {role:?}"), role_cases(*role)).await;
    }
}
