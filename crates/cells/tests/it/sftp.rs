//! SFTP on its own port, driven by a real client (russh + russh-sftp): logins with a password,
//! a PAT and an access token; the same nodes as REST; the scope matrix; a revoked token's
//! open session; lockout; and protocol abuse with raw packets.

use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use russh::client;
use russh::keys::{HashAlg, PublicKeyOrCertificate};
use russh_sftp::client::SftpSession;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::{OpenFlags, StatusCode as Code};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::access_matrix::{self, Driver, Outcome};
use crate::backend_tests;
use crate::harness::{ADMIN, ADMIN_PASSWORD, Auth, Db, TestApp};

backend_tests!(
    sftp_logins_and_files,
    sftp_refuses_bad_credentials_and_locks,
    sftp_revoked_token_ends_the_session,
    sftp_scope_matrix_read_only,
    sftp_scope_matrix_read_write,
    sftp_workspace_access_matrix,
    sftp_protocol_abuse,
    sftp_fsync_and_deferred_close,
    sftp_public_key_logins,
);

/// Accepts the server's key, remembering its fingerprint.
pub(crate) struct Client {
    seen: Arc<Mutex<Option<String>>>,
}

impl Client {
    pub(crate) fn new() -> Client {
        Client { seen: Arc::default() }
    }
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        if let PublicKeyOrCertificate::PublicKey { key, .. } = key {
            *self.seen.lock().unwrap() = Some(key.fingerprint(HashAlg::Sha256).to_string());
        }
        Ok(true)
    }
}

/// An SSH connection with the sftp subsystem started; `None` when the login is refused.
pub(crate) struct Ssh {
    pub(crate) handle: client::Handle<Client>,
    pub(crate) channel: russh::Channel<client::Msg>,
    pub(crate) fingerprint: Option<String>,
}

pub(crate) async fn ssh(app: &TestApp, login: &str, secret: &str) -> Option<Ssh> {
    ssh_at(app.sftp, login, secret).await
}

async fn ssh_at(address: std::net::SocketAddr, login: &str, secret: &str) -> Option<Ssh> {
    let seen = Arc::new(Mutex::new(None));
    let config = Arc::new(client::Config::default());
    let mut handle = client::connect(config, address, Client { seen: seen.clone() })
        .await
        .expect("SSH handshake");
    let auth = handle
        .authenticate_password(login, secret)
        .await
        .expect("password exchange");
    if !auth.success() {
        return None;
    }
    let channel = sftp_channel(&handle).await;
    let fingerprint = seen.lock().unwrap().clone();
    Some(Ssh {
        handle,
        channel,
        fingerprint,
    })
}

/// An SFTP session opened with a public key; `None` when the key is refused.
async fn sftp_with_key(app: &TestApp, login: &str, key: &russh::keys::PrivateKey) -> Option<Sftp> {
    let seen = Arc::new(Mutex::new(None));
    let config = Arc::new(client::Config::default());
    let mut handle = client::connect(config, app.sftp, Client { seen })
        .await
        .expect("SSH handshake");
    let key = russh::keys::PrivateKeyWithHashAlg::new(Arc::new(key.clone()), None);
    let auth = handle
        .authenticate_publickey(login, key)
        .await
        .expect("public key exchange");
    if !auth.success() {
        return None;
    }
    let channel = sftp_channel(&handle).await;
    let fs = SftpSession::new(channel.into_stream())
        .await
        .expect("SFTP version exchange");
    Some(Sftp { _ssh: handle, fs })
}

/// A session channel of a logged-in connection, with the sftp subsystem started.
async fn sftp_channel(handle: &client::Handle<Client>) -> russh::Channel<client::Msg> {
    let channel = handle.channel_open_session().await.expect("session channel");
    channel
        .request_subsystem(true, "sftp")
        .await
        .expect("sftp subsystem");
    channel
}

/// An SFTP session; the SSH handle lives as long as it does.
pub(crate) struct Sftp {
    _ssh: client::Handle<Client>,
    pub(crate) fs: SftpSession,
}

pub(crate) async fn sftp(app: &TestApp, login: &str, secret: &str) -> Option<Sftp> {
    sftp_at(app.sftp, login, secret).await
}

/// An SFTP session with the server at `address` (one not started by `TestApp`).
pub(crate) async fn sftp_at(address: std::net::SocketAddr, login: &str, secret: &str) -> Option<Sftp> {
    let ssh = ssh_at(address, login, secret).await?;
    let fs = SftpSession::new(ssh.channel.into_stream())
        .await
        .expect("SFTP version exchange");
    Some(Sftp { _ssh: ssh.handle, fs })
}

impl Sftp {
    /// Cut the connection as a crash would: no CLOSE for open files, no channel close.
    pub(crate) async fn cut(&self) {
        let _ = self
            ._ssh
            .disconnect(russh::Disconnect::ByApplication, "cut", "en")
            .await;
    }

    pub(crate) async fn put(&self, path: &str, content: &[u8]) -> Result<(), SftpError> {
        let mut file = self.fs.create(path).await?;
        file.write_all(content).await?;
        file.close().await?;
        Ok(())
    }

    async fn names(&self, path: &str) -> Result<Vec<String>, SftpError> {
        let mut names: Vec<String> = self.fs.read_dir(path).await?.map(|e| e.file_name()).collect();
        names.sort();
        Ok(names)
    }
}

fn code(error: SftpError) -> Code {
    match error {
        SftpError::Status(status) => status.status_code,
        other => panic!("expected an SFTP status, got {other}"),
    }
}

async fn sftp_logins_and_files(db: Db) {
    let app = TestApp::spawn(db).await;
    // The host key shown to clients is the one the CLI prints for pinning.
    let printed = app.cli_ok(&["admin", "sftp", "host-key"]);
    let ssh_check = ssh(&app, ADMIN, ADMIN_PASSWORD).await.expect("password login");
    let fingerprint = ssh_check.fingerprint.clone().expect("an Ed25519 host key");
    assert!(printed.starts_with("ssh-ed25519 "), "{printed}");
    assert!(printed.ends_with(&fingerprint), "{printed} vs {fingerprint}");

    // Password: the root lists the workspaces; "." is the root.
    let by_password = sftp(&app, ADMIN, ADMIN_PASSWORD).await.unwrap();
    assert_eq!(by_password.fs.canonicalize(".").await.unwrap(), "/");
    assert_eq!(
        by_password.names("/").await.unwrap(),
        ["common-files", "personal-files"]
    );

    // A PAT: put, list, stat, rename, read back, on the same nodes as REST.
    let token = app.token(ADMIN, &["-e", "1h"]);
    let by_token = sftp(&app, ADMIN, &token).await.expect("PAT login");
    let content: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    by_token.put("/personal-files/big.bin", &content).await.unwrap();
    let admin = Auth::admin();
    let (status, body) = app.read(&admin, "personal-files/big.bin").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == content, "REST reads what SFTP wrote");
    let uuid = app.uuid(&admin, "personal-files/big.bin").await;
    assert_eq!(
        by_token
            .fs
            .metadata("/personal-files/big.bin")
            .await
            .unwrap()
            .size,
        Some(content.len() as u64)
    );
    by_token.fs.create_dir("/personal-files/d").await.unwrap();
    by_token
        .fs
        .rename("/personal-files/big.bin", "personal-files/d/big.bin")
        .await
        .unwrap();
    assert_eq!(
        app.uuid(&admin, "personal-files/d/big.bin").await,
        uuid,
        "rename keeps the UUID"
    );
    assert!(by_token.fs.read("/personal-files/d/big.bin").await.unwrap() == content);
    assert_eq!(by_token.names("/personal-files/d").await.unwrap(), ["big.bin"]);

    // A thousand small files up, listed, and back.
    by_token.fs.create_dir("/personal-files/many").await.unwrap();
    for i in 0..1000 {
        let path = format!("/personal-files/many/f{i:04}.txt");
        by_token
            .put(&path, format!("small file {i}\n").as_bytes())
            .await
            .unwrap();
    }
    let names = by_token.names("/personal-files/many").await.unwrap();
    assert_eq!(names.len(), 1000);
    assert_eq!(names[0], "f0000.txt");
    for i in 0..1000 {
        let content = by_token
            .fs
            .read(format!("/personal-files/many/f{i:04}.txt"))
            .await
            .unwrap();
        assert_eq!(content, format!("small file {i}\n").as_bytes());
    }

    // Overwriting keeps the node; writing at an offset without TRUNCATE edits in place;
    // APPEND adds at the end.
    by_token
        .put("/personal-files/d/big.bin", b"hello world")
        .await
        .unwrap();
    assert_eq!(app.uuid(&admin, "personal-files/d/big.bin").await, uuid);
    let mut file = by_token
        .fs
        .open_with_flags("/personal-files/d/big.bin", OpenFlags::WRITE)
        .await
        .unwrap();
    file.seek(std::io::SeekFrom::Start(2)).await.unwrap();
    file.write_all(b"XX").await.unwrap();
    file.close().await.unwrap();
    let mut file = by_token
        .fs
        .open_with_flags("/personal-files/d/big.bin", OpenFlags::WRITE | OpenFlags::APPEND)
        .await
        .unwrap();
    file.write_all(b"!").await.unwrap();
    file.close().await.unwrap();
    assert_eq!(
        app.read(&admin, "personal-files/d/big.bin").await.1,
        b"heXXo world!"
    );

    // A new file stays in memory while it is written in order; a write elsewhere, a size
    // change or more than 256 KiB move it to a draft file, and the result is the same. What
    // was written reads back through the open handle either way.
    let etag_of = |path: &'static str| {
        let app = &app;
        let admin = &admin;
        async move {
            let (_, stat) = app.stat(admin, path).await;
            stat["Nodes"][0]["Etag"].as_str().unwrap().to_string()
        }
    };
    let md5_hex = |data: &[u8]| {
        use md5::Digest;
        hex::encode(md5::Md5::digest(data))
    };
    let mut file = by_token
        .fs
        .open_with_flags(
            "/personal-files/d/sparse.bin",
            OpenFlags::CREATE | OpenFlags::TRUNCATE | OpenFlags::WRITE | OpenFlags::READ,
        )
        .await
        .unwrap();
    file.write_all(b"abc").await.unwrap();
    file.flush().await.unwrap();
    file.seek(std::io::SeekFrom::Start(1)).await.unwrap();
    let mut two = [0u8; 2];
    file.read_exact(&mut two).await.unwrap();
    assert_eq!(&two, b"bc", "read back from memory");
    file.seek(std::io::SeekFrom::Start(6)).await.unwrap();
    file.write_all(b"xyz").await.unwrap();
    file.flush().await.unwrap();
    file.seek(std::io::SeekFrom::Start(0)).await.unwrap();
    let mut all = Vec::new();
    file.read_to_end(&mut all).await.unwrap();
    assert_eq!(all, b"abc\0\0\0xyz", "read back from the draft");
    file.close().await.unwrap();
    let sparse = b"abc\0\0\0xyz";
    assert_eq!(app.read(&admin, "personal-files/d/sparse.bin").await.1, sparse);
    assert_eq!(etag_of("personal-files/d/sparse.bin").await, md5_hex(sparse));

    let large: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    by_token.put("/personal-files/d/large.bin", &large).await.unwrap();
    assert_eq!(app.read(&admin, "personal-files/d/large.bin").await.1, large);
    assert_eq!(etag_of("personal-files/d/large.bin").await, md5_hex(&large));
    // A draft is committed without its MD5 (`files::etags`); with no reader asking, the ETag
    // worker records it soon after (within a second or two here; tests running beside this
    // one keep the process busy, so the worker takes a read a second).
    let later: Vec<u8> = (0..400_000u32).map(|i| (i % 241) as u8).collect();
    by_token.put("/personal-files/d/later.bin", &later).await.unwrap();
    app.wait_for_etags().await;
    assert_eq!(etag_of("personal-files/d/later.bin").await, md5_hex(&later));

    let mut file = by_token.fs.create("/personal-files/d/cut.bin").await.unwrap();
    file.write_all(b"0123456789").await.unwrap();
    file.flush().await.unwrap();
    let mut cut = russh_sftp::protocol::FileAttributes::empty();
    cut.size = Some(4);
    file.set_metadata(cut).await.unwrap();
    file.close().await.unwrap();
    assert_eq!(app.read(&admin, "personal-files/d/cut.bin").await.1, b"0123");
    assert_eq!(etag_of("personal-files/d/cut.bin").await, md5_hex(b"0123"));
    for name in ["sparse.bin", "large.bin", "later.bin", "cut.bin"] {
        by_token
            .fs
            .remove_file(format!("/personal-files/d/{name}"))
            .await
            .unwrap();
    }

    // An OAuth access token of the same login.
    let (_, session) = app
        .post(
            "/a/frontend/session",
            &Auth::None,
            json!({"AuthInfo": {"type": "credentials", "login": ADMIN, "password": ADMIN_PASSWORD}}),
        )
        .await;
    let by_jwt = sftp(&app, ADMIN, session["JWT"].as_str().unwrap())
        .await
        .expect("access token login");
    assert_eq!(
        by_jwt.fs.read("personal-files/d/big.bin").await.unwrap(),
        b"heXXo world!"
    );

    // Statuses: missing files, non-empty folders, folders as files, symlinks, existing targets.
    let missing = by_jwt.fs.metadata("/personal-files/nope").await.unwrap_err();
    assert_eq!(code(missing), Code::NoSuchFile);
    let opened = by_jwt.fs.open("/personal-files/nope").await.err().unwrap();
    assert_eq!(code(opened), Code::NoSuchFile);
    let no_parent = by_jwt
        .put("/personal-files/no/such/file", b"x")
        .await
        .unwrap_err();
    assert_eq!(code(no_parent), Code::NoSuchFile);
    let not_empty = by_jwt.fs.remove_dir("/personal-files/d").await.unwrap_err();
    assert_eq!(code(not_empty), Code::Failure);
    let folder = by_jwt.fs.remove_file("/personal-files/d").await.unwrap_err();
    assert_eq!(code(folder), Code::Failure);
    let link = by_jwt
        .fs
        .symlink("/personal-files/link", "/personal-files/d/big.bin")
        .await
        .unwrap_err();
    assert_eq!(code(link), Code::OpUnsupported);
    by_jwt.put("/personal-files/other.txt", b"other").await.unwrap();
    let exists = by_jwt
        .fs
        .rename("/personal-files/other.txt", "/personal-files/d/big.bin")
        .await
        .unwrap_err();
    assert_eq!(
        code(exists),
        Code::Failure,
        "version 3 rename keeps an existing target"
    );
    let root = by_jwt.put("/top.txt", b"x").await.unwrap_err();
    assert_eq!(code(root), Code::NoSuchFile, "no workspace named top.txt");

    // Cleaning up: remove, then rmdir.
    by_jwt.fs.remove_file("/personal-files/d/big.bin").await.unwrap();
    by_jwt.fs.remove_dir("/personal-files/d").await.unwrap();
    assert_eq!(
        by_jwt.names("/personal-files").await.unwrap(),
        ["many", "other.txt"]
    );
}

async fn sftp_refuses_bad_credentials_and_locks(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_user("vic", "vic-password", "standard").await;
    app.create_user("mallory", "mallory-password", "standard").await;
    let vic_token = app.token("vic", &["-e", "1h"]);
    assert!(sftp(&app, "vic", &vic_token).await.is_some());
    // Another user's token, or a made-up one, is no password for this login.
    assert!(ssh(&app, "mallory", &vic_token).await.is_none());
    assert!(ssh(&app, "vic", "cpat_made_up_value").await.is_none());
    assert!(ssh(&app, "nobody", "whatever").await.is_none());
    // Ten wrong passwords suspend password logins: the right one is refused after, here and
    // on REST (which answers as for any wrong password); mallory's token still works.
    let mallory_token = app.token("mallory", &["-e", "1h"]);
    for _ in 0..10 {
        assert!(ssh(&app, "mallory", "wrong-password").await.is_none());
    }
    assert!(ssh(&app, "mallory", "mallory-password").await.is_none());
    let (status, body) = app
        .stat(&Auth::basic("mallory", "mallory-password"), "personal-files")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["Detail"].as_str().unwrap().contains("too many attempts"),
        "{body}"
    );
    assert!(sftp(&app, "mallory", &mallory_token).await.is_some());
    app.cli_ok(&["admin", "user", "unlock", "-u", "mallory"]);
    assert!(sftp(&app, "mallory", "mallory-password").await.is_some());
}

async fn sftp_revoked_token_ends_the_session(db: Db) {
    let app = TestApp::spawn(db).await;
    let token = app.token(ADMIN, &["-e", "1h"]);
    let session = sftp(&app, ADMIN, &token).await.unwrap();
    session.put("/personal-files/a.txt", b"a").await.unwrap();
    let id = app
        .cli_ok(&["admin", "user", "token", "list", "-u", ADMIN])
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    app.cli_ok(&["admin", "user", "token", "revoke", &id]);
    // The next request is refused and the session ends.
    let refused = session.fs.read("/personal-files/a.txt").await.unwrap_err();
    assert!(
        matches!(&refused, SftpError::Status(s) if s.status_code == Code::PermissionDenied),
        "{refused}"
    );
    assert!(session.fs.metadata("/personal-files/a.txt").await.is_err());
    assert!(ssh(&app, ADMIN, &token).await.is_none());
}

struct SftpDriver(Sftp);

fn abs(path: &str) -> String {
    format!("/{path}")
}

/// An SFTP answer as an outcome.
fn sftp_outcome<T>(result: Result<T, SftpError>) -> Outcome {
    match result {
        Ok(_) => Outcome::Done,
        Err(SftpError::Status(status)) => match status.status_code {
            Code::NoSuchFile => Outcome::NotFound,
            Code::PermissionDenied => Outcome::Forbidden,
            other => Outcome::Other(format!("{other:?}: {}", status.error_message)),
        },
        Err(other) => Outcome::Other(other.to_string()),
    }
}

impl Driver for SftpDriver {
    async fn list(&self, path: &str) -> Result<Vec<String>, Outcome> {
        self.0
            .names(&abs(path))
            .await
            .map_err(|e| sftp_outcome::<()>(Err(e)))
    }
    async fn read(&self, path: &str) -> Outcome {
        sftp_outcome(self.0.fs.read(abs(path)).await)
    }
    async fn write(&self, path: &str, content: &[u8]) -> Outcome {
        sftp_outcome(self.0.put(&abs(path), content).await)
    }
    async fn mkdir(&self, path: &str) -> Outcome {
        sftp_outcome(self.0.fs.create_dir(abs(path)).await)
    }
    async fn delete(&self, path: &str) -> Outcome {
        sftp_outcome(self.0.fs.remove_file(abs(path)).await)
    }
    async fn rename(&self, from: &str, to: &str) -> Outcome {
        sftp_outcome(self.0.fs.rename(abs(from), abs(to)).await)
    }
    /// SFTP has no copy: a client reads and writes.
    async fn copy(&self, from: &str, to: &str) -> Outcome {
        match self.0.fs.read(abs(from)).await {
            Ok(content) => self.write(to, &content).await,
            Err(error) => sftp_outcome::<()>(Err(error)),
        }
    }
}

async fn sftp_scope_matrix(db: Db, permission: &str) {
    let app = TestApp::spawn(db).await;
    let token = access_matrix::owner_token(&app, permission).await;
    let driver = SftpDriver(sftp(&app, "owner", &token).await.expect("scoped token login"));
    let cases = access_matrix::scope_cases(permission == "rw");
    access_matrix::run(&driver, &format!("SFTP, scope {permission}"), cases).await;
    // The root shows only the workspace leading to the scope.
    assert_eq!(driver.0.names("/").await.unwrap(), ["personal-files"]);
    let denied = driver.0.fs.read("/personal-files/b/x.txt").await.unwrap_err();
    assert_eq!(
        code(denied),
        Code::NoSuchFile,
        "a sibling does not exist for the token"
    );
}

async fn sftp_workspace_access_matrix(db: Db) {
    let app = TestApp::spawn(db).await;
    let token = access_matrix::workspace_app(&app).await;
    let secrets = access_matrix::role_secrets(&app, &token, false);
    access_matrix::run_roles("SFTP", &secrets, async |login, secret| {
        SftpDriver(sftp(&app, login, secret).await.expect("SFTP login"))
    })
    .await;
}

async fn sftp_scope_matrix_read_only(db: Db) {
    sftp_scope_matrix(db, "r").await;
}

async fn sftp_scope_matrix_read_write(db: Db) {
    sftp_scope_matrix(db, "rw").await;
}

/// Raw SFTP packets over the channel, for what no polite client sends.
struct Raw {
    _handle: client::Handle<Client>,
    stream: russh::ChannelStream<client::Msg>,
}

const STATUS: u8 = 101;
const HANDLE: u8 = 102;

impl Raw {
    async fn open(app: &TestApp) -> Raw {
        let ssh = ssh(app, ADMIN, ADMIN_PASSWORD).await.unwrap();
        let mut raw = Raw {
            _handle: ssh.handle,
            stream: ssh.channel.into_stream(),
        };
        raw.send(1, &3u32.to_be_bytes()).await;
        let (kind, _) = raw.recv().await;
        assert_eq!(kind, 2, "VERSION");
        raw
    }

    async fn send(&mut self, kind: u8, body: &[u8]) {
        let mut packet = ((body.len() + 1) as u32).to_be_bytes().to_vec();
        packet.push(kind);
        packet.extend_from_slice(body);
        self.stream.write_all(&packet).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    async fn recv(&mut self) -> (u8, Vec<u8>) {
        let len = self.stream.read_u32().await.expect("a reply") as usize;
        let mut body = vec![0; len];
        self.stream.read_exact(&mut body).await.unwrap();
        (body[0], body[1..].to_vec())
    }

    /// The (id, status code) of a STATUS reply.
    async fn status(&mut self) -> (u32, u32) {
        let (kind, body) = self.recv().await;
        assert_eq!(kind, STATUS, "expected a status, got type {kind}");
        (be32(&body[0..4]), be32(&body[4..8]))
    }

    /// OPEN `path` with `flags`; the handle, or the status code.
    async fn open_file(&mut self, id: u32, path: &str, flags: u32) -> Result<Vec<u8>, u32> {
        let body = [
            &id.to_be_bytes()[..],
            &string(path.as_bytes()),
            &flags.to_be_bytes(),
            &0u32.to_be_bytes(),
        ]
        .concat();
        self.send(3, &body).await;
        let (kind, body) = self.recv().await;
        match kind {
            HANDLE => Ok(body[8..].to_vec()),
            STATUS => Err(be32(&body[4..8])),
            other => panic!("unexpected reply type {other}"),
        }
    }
}

fn be32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes(bytes.try_into().unwrap())
}

fn string(value: &[u8]) -> Vec<u8> {
    [&(value.len() as u32).to_be_bytes()[..], value].concat()
}

async fn sftp_protocol_abuse(db: Db) {
    let app = TestApp::spawn(db).await;
    let mut raw = Raw::open(&app).await;
    const OK: u32 = 0;
    const NO_SUCH_FILE: u32 = 2;
    const FAILURE: u32 = 4;
    const BAD_MESSAGE: u32 = 5;
    const UNSUPPORTED: u32 = 8;

    // An unknown request type keeps its id.
    raw.send(99, &[&41u32.to_be_bytes()[..], b"junk"].concat()).await;
    assert_eq!(raw.status().await, (41, UNSUPPORTED));
    // A READ cut short.
    raw.send(
        5,
        &[&42u32.to_be_bytes()[..], &100u32.to_be_bytes(), b"ab"].concat(),
    )
    .await;
    assert_eq!(raw.status().await, (42, BAD_MESSAGE));
    // A packet over the limit is skipped whole and answered; the session goes on.
    let mut big = 43u32.to_be_bytes().to_vec();
    big.resize(300 * 1024, b'x');
    raw.send(6, &big).await;
    assert_eq!(raw.status().await, (43, BAD_MESSAGE));
    // Paths climbing out of the root stay inside it.
    raw.send(
        17,
        &[&44u32.to_be_bytes()[..], &string(b"/../../etc/passwd")].concat(),
    )
    .await;
    assert_eq!(raw.status().await, (44, NO_SUCH_FILE));

    // A handle used after CLOSE, or never opened.
    let handle = raw
        .open_file(2, "/personal-files/h.txt", 0x02 | 0x08 | 0x10)
        .await
        .unwrap();
    raw.send(4, &[&3u32.to_be_bytes()[..], &string(&handle)].concat())
        .await;
    assert_eq!(raw.status().await, (3, OK));
    raw.send(4, &[&4u32.to_be_bytes()[..], &string(&handle)].concat())
        .await;
    assert_eq!(raw.status().await, (4, FAILURE));
    let read = [
        &5u32.to_be_bytes()[..],
        &string(b"12345"),
        &0u64.to_be_bytes(),
        &10u32.to_be_bytes(),
    ]
    .concat();
    raw.send(5, &read).await;
    assert_eq!(raw.status().await, (5, FAILURE));

    // Thousands of opens: the ones past the limit are refused, closing frees them.
    let mut handles = Vec::new();
    let mut refused = 0;
    for id in 0..2000u32 {
        match raw.open_file(1000 + id, "/personal-files/h.txt", 0x01).await {
            Ok(handle) => handles.push(handle),
            Err(code) => {
                assert_eq!(code, FAILURE);
                refused += 1;
            }
        }
    }
    assert_eq!(handles.len(), cells_sftp::session::MAX_HANDLES);
    assert_eq!(refused, 2000 - handles.len());
    for (i, handle) in handles.iter().enumerate() {
        raw.send(
            4,
            &[&(5000 + i as u32).to_be_bytes()[..], &string(handle)].concat(),
        )
        .await;
        assert_eq!(raw.status().await.1, OK);
    }
    assert!(raw.open_file(9000, "/personal-files/h.txt", 0x01).await.is_ok());

    // A client that disconnects in the middle of a write leaves no file behind.
    let mut writer = Raw::open(&app).await;
    let handle = writer
        .open_file(1, "/personal-files/partial.bin", 0x02 | 0x08 | 0x10)
        .await
        .unwrap();
    let write = [
        &2u32.to_be_bytes()[..],
        &string(&handle),
        &0u64.to_be_bytes(),
        &string(&[7u8; 100_000]),
    ]
    .concat();
    writer.send(6, &write).await;
    assert_eq!(writer.status().await, (2, OK));
    drop(writer);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (status, _) = app.stat(&Auth::admin(), "personal-files/partial.bin").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Drafts are in `blobs/tmp` on disk, in `spool/drafts` with an object store.
    let drafts = app
        .app
        .config
        .blobs_dir()
        .join(if app.on_disk() { "tmp" } else { "drafts" });
    let temp_files = std::fs::read_dir(drafts).unwrap().count();
    assert_eq!(temp_files, 0, "the draft of the abandoned write is removed");

    // A first packet that is not INIT ends the session; the server stays up.
    let ssh = ssh(&app, ADMIN, ADMIN_PASSWORD).await.unwrap();
    let mut stream = ssh.channel.into_stream();
    stream.write_all(&[0, 0, 0, 5, 17, 0, 0, 0, 1]).await.unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest).await;
    assert!(
        rest.is_empty(),
        "no reply to a session that did not start with INIT"
    );
    let (status, _) = app.get("/healthz", &Auth::None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(sftp(&app, ADMIN, ADMIN_PASSWORD).await.is_some());
}

/// `fsync@openssh.com` is offered and answered per handle; a small file's CLOSE returns once
/// the file is committed (readable by every protocol), and on SQLite its log is synced within
/// moments even though no one asked; a file whose handle was fsynced is committed durably.
async fn sftp_fsync_and_deferred_close(db: Db) {
    const OK: u32 = 0;
    const FAILURE: u32 = 4;
    const BAD_MESSAGE: u32 = 5;
    const UNSUPPORTED: u32 = 8;
    let sqlite = matches!(db, Db::Sqlite);
    let app = TestApp::spawn(db).await;

    // VERSION names the extension (OpenSSH's client sends fsync only to servers that do).
    let ssh = ssh(&app, ADMIN, ADMIN_PASSWORD).await.unwrap();
    let mut raw = Raw {
        _handle: ssh.handle,
        stream: ssh.channel.into_stream(),
    };
    raw.send(1, &3u32.to_be_bytes()).await;
    let (kind, version) = raw.recv().await;
    assert_eq!(kind, 2, "VERSION");
    assert!(
        version.windows(17).any(|w| w == b"fsync@openssh.com"),
        "fsync@openssh.com is offered"
    );
    let fsync = |id: u32, handle: &[u8]| {
        [
            &id.to_be_bytes()[..],
            &string(b"fsync@openssh.com"),
            &string(handle),
        ]
        .concat()
    };
    let write = |id: u32, handle: &[u8], data: &[u8]| {
        [
            &id.to_be_bytes()[..],
            &string(handle),
            &0u64.to_be_bytes(),
            &string(data),
        ]
        .concat()
    };
    let close = |id: u32, handle: &[u8]| [&id.to_be_bytes()[..], &string(handle)].concat();

    // Without fsync: committed when CLOSE answers.
    let syncs_before = app.app.store().log_syncs();
    let handle = raw
        .open_file(1, "/personal-files/plain.txt", 0x02 | 0x08 | 0x10)
        .await
        .unwrap();
    raw.send(6, &write(2, &handle, b"plain")).await;
    assert_eq!(raw.status().await, (2, OK));
    raw.send(4, &close(3, &handle)).await;
    assert_eq!(raw.status().await, (3, OK));
    assert_eq!(
        app.read(&Auth::admin(), "personal-files/plain.txt").await,
        (StatusCode::OK, b"plain".to_vec())
    );
    if sqlite {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while app.app.store().log_syncs() == syncs_before {
            assert!(
                std::time::Instant::now() < deadline,
                "the deferred commit was never synced"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    } else {
        assert_eq!(
            app.app.store().log_syncs(),
            0,
            "PostgreSQL commits are durable at once"
        );
    }

    // With fsync before CLOSE, as `sftp put -f` does: OK, and the file is there after CLOSE.
    let handle = raw
        .open_file(4, "/personal-files/synced.txt", 0x02 | 0x08 | 0x10)
        .await
        .unwrap();
    raw.send(6, &write(5, &handle, b"synced")).await;
    assert_eq!(raw.status().await, (5, OK));
    raw.send(200, &fsync(6, &handle)).await;
    assert_eq!(raw.status().await, (6, OK));
    raw.send(4, &close(7, &handle)).await;
    assert_eq!(raw.status().await, (7, OK));
    assert_eq!(
        app.read(&Auth::admin(), "personal-files/synced.txt").await,
        (StatusCode::OK, b"synced".to_vec())
    );

    // A read handle: OK. A folder handle: unsupported. A closed handle: failure. No handle:
    // a malformed request.
    let reading = raw
        .open_file(8, "/personal-files/synced.txt", 0x01)
        .await
        .unwrap();
    raw.send(200, &fsync(9, &reading)).await;
    assert_eq!(raw.status().await, (9, OK));
    raw.send(
        11,
        &[&10u32.to_be_bytes()[..], &string(b"/personal-files")].concat(),
    )
    .await;
    let (kind, body) = raw.recv().await;
    assert_eq!(kind, HANDLE);
    raw.send(200, &fsync(11, &body[8..])).await;
    assert_eq!(raw.status().await, (11, UNSUPPORTED));
    raw.send(200, &fsync(12, &handle)).await;
    assert_eq!(raw.status().await, (12, FAILURE));
    raw.send(
        200,
        &[&13u32.to_be_bytes()[..], &string(b"fsync@openssh.com")].concat(),
    )
    .await;
    let (id, code) = raw.status().await;
    assert_eq!(id, 13);
    assert!(
        code == BAD_MESSAGE || code == FAILURE,
        "a missing handle is refused, got {code}"
    );
}

/// Public-key logins: a key registered with `cells admin user add-key` logs its user in; an
/// unregistered key, the key under another login, a removed key or a locked user do not, and
/// removing the key ends the session it opened at its next request.
async fn sftp_public_key_logins(db: Db) {
    use russh::keys::PrivateKey;
    use russh::keys::ssh_key::private::Ed25519Keypair;
    let app = TestApp::spawn(db).await;
    app.create_user("bob", "bob-password", "standard").await;
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&[7; 32]));
    let other = PrivateKey::from(Ed25519Keypair::from_seed(&[8; 32]));
    let fingerprint = key.public_key().fingerprint(HashAlg::Sha256).to_string();
    let file = app.data.join("laptop.pub");
    let mut public = key.public_key().clone();
    public.set_comment("admin@laptop");
    std::fs::write(&file, public.to_openssh().unwrap()).unwrap();
    let file = file.to_str().unwrap();

    assert!(
        sftp_with_key(&app, ADMIN, &key).await.is_none(),
        "not registered yet"
    );
    let added = app.cli_ok(&["admin", "user", "add-key", "-u", ADMIN, "--file", file]);
    assert!(added.contains(&fingerprint), "{added}");
    let listed = app.cli_ok(&["admin", "user", "list-keys", "-u", ADMIN]);
    assert!(
        listed.contains(&fingerprint) && listed.contains("admin@laptop"),
        "{listed}"
    );
    let again = app.cli(&["admin", "user", "add-key", "-u", ADMIN, "--file", file]);
    assert!(!again.status.success(), "the same key twice is refused");
    let garbage = app.data.join("garbage.pub");
    std::fs::write(&garbage, "ssh-ed25519 not-base64 x").unwrap();
    let refused = app.cli(&[
        "admin",
        "user",
        "add-key",
        "-u",
        ADMIN,
        "--file",
        garbage.to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not an OpenSSH public key"));

    let session = sftp_with_key(&app, ADMIN, &key).await.expect("the key logs in");
    session
        .put("/personal-files/by-key.txt", b"signed in with a key")
        .await
        .unwrap();
    assert_eq!(
        app.read(&Auth::admin(), "personal-files/by-key.txt").await.1,
        b"signed in with a key"
    );
    assert!(sftp_with_key(&app, ADMIN, &other).await.is_none(), "another key");
    assert!(
        sftp_with_key(&app, "bob", &key).await.is_none(),
        "admin's key as bob"
    );

    // Removing the key ends its session at the next request, and its logins.
    app.cli_ok(&["admin", "user", "remove-key", "-u", ADMIN, &fingerprint]);
    let cut = session.fs.read("/personal-files/by-key.txt").await.unwrap_err();
    assert!(
        matches!(&cut, SftpError::Status(s) if s.status_code == Code::PermissionDenied),
        "{cut}"
    );
    assert!(sftp_with_key(&app, ADMIN, &key).await.is_none());

    // A locked user's key is refused too.
    app.cli_ok(&["admin", "user", "add-key", "-u", "bob", "--file", file]);
    assert!(sftp_with_key(&app, "bob", &key).await.is_some());
    let (status, _) = app
        .request(reqwest::Method::PUT, "/a/user/bob", &Auth::admin())
        .json(&json!({"Locked": true}))
        .send()
        .await
        .map(|r| (r.status(), ()))
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(sftp_with_key(&app, "bob", &key).await.is_none(), "locked");
}
