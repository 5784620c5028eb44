//! Test harness: a real cells server per test, on port 0, in a temp dir, on SQLite or on a
//! fresh PostgreSQL database (named by a UUID) when `CELLS_TEST_DATABASE_URL` is set.
//!
//! `backend_tests!(name, …)` turns each `async fn name(db: Db)` into two tests,
//! `name::sqlite` and `name::postgres`; the second says it was skipped when there is no
//! PostgreSQL to run on.

use std::path::{Path, PathBuf};
use std::process::Output;

use cells::Server;
use cells_core::SharedApp;
use cells_core::config::{BlobLocation, Config, Overrides};
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "admin-password-1";

/// Where a test's database lives.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite,
    Postgres {
        url: String,
        name: String,
        admin_url: String,
    },
}

impl Db {
    /// A fresh PostgreSQL database, or `None` (and a "skipped" line) without one.
    pub async fn postgres() -> Option<Db> {
        let Ok(admin_url) = std::env::var("CELLS_TEST_DATABASE_URL") else {
            // Once, and straight to the terminal: the test harness hides what tests print.
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "skipped: the PostgreSQL variants of the integration tests \
                     (set CELLS_TEST_DATABASE_URL to run them)"
                );
            });
            return None;
        };
        let name = format!("cells_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url)
            .await
            .expect("CELLS_TEST_DATABASE_URL must reach a PostgreSQL server");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create a test database");
        let base = admin_url
            .rsplit_once('/')
            .map(|(base, _)| base)
            .unwrap_or(&admin_url);
        let query = admin_url
            .split_once('?')
            .map(|(_, q)| format!("?{q}"))
            .unwrap_or_default();
        Some(Db::Postgres {
            url: format!("{base}/{name}{query}"),
            name,
            admin_url,
        })
    }

    /// Drop the PostgreSQL database of a finished test.
    pub async fn cleanup(&self) {
        if let Db::Postgres { name, admin_url, .. } = self
            && let Ok(mut conn) = <sqlx::PgConnection as sqlx::Connection>::connect(admin_url).await
        {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await;
        }
    }

    fn database_url(&self, data: &Path) -> Option<String> {
        match self {
            Db::Sqlite => {
                let _ = data;
                None
            }
            Db::Postgres { url, .. } => Some(url.clone()),
        }
    }

    /// The blob store of a test's nodes. With `CELLS_TEST_BLOB_STORE` (`s3://BUCKET`), the
    /// PostgreSQL variant keeps its content in that object store, the configuration of several
    /// nodes, under a prefix of its database's own (shared by every node and CLI run on it),
    /// while the SQLite variant stays on local disk: one run covers both stores. `None` (local
    /// disk) otherwise.
    pub fn blob_store(&self, data: &Path) -> Option<String> {
        let _ = data;
        let bucket = std::env::var("CELLS_TEST_BLOB_STORE")
            .ok()
            .filter(|v| !v.is_empty())?;
        let Db::Postgres { name, .. } = self else {
            return None;
        };
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, name.as_bytes());
        let prefix = hex::encode(&digest.as_ref()[..10]);
        Some(format!("{}/t-{prefix}", bucket.trim_end_matches('/')))
    }
}

#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::harness::Db::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(db) = $crate::harness::Db::postgres().await {
                        super::$name(db.clone()).await;
                        db.cleanup().await;
                    }
                }
            }
        )*
    };
}

pub struct TestApp {
    pub db: Db,
    /// Owned by the first node; `None` on a sibling that shares it.
    dir: Option<TempDir>,
    pub data: PathBuf,
    pub base: String,
    /// Where the SFTP server listens.
    pub sftp: std::net::SocketAddr,
    pub app: SharedApp,
    pub http: Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub async fn spawn(db: Db) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::spawn_in(db, dir).await
    }

    /// Start a server whose `pydio.json` is made from its base URL (known once bound).
    pub async fn spawn_with_config(db: Db, config: impl FnOnce(&str) -> Value) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("bound"));
        std::fs::write(dir.path().join("pydio.json"), config(&base).to_string()).expect("write pydio.json");
        let mut app = Self::start_on(db, dir.path().to_path_buf(), Some(listener)).await;
        app.dir = Some(dir);
        app
    }

    /// Start a server with its limits (`Config::limits`) changed by `limits`.
    pub async fn spawn_with_limits(db: Db, limits: impl FnOnce(&mut cells_core::config::Limits)) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().to_path_buf();
        let mut config = test_config(&db, &data);
        limits(&mut config.limits);
        let mut app = Self::run(db, data, Server::prepare(config).await.expect("server starts"));
        app.dir = Some(dir);
        app
    }

    /// Start a server on an existing data dir (a restart keeps the dir and the database).
    pub async fn spawn_in(db: Db, dir: TempDir) -> TestApp {
        let data = dir.path().to_path_buf();
        let mut app = Self::start(db, data).await;
        app.dir = Some(dir);
        app
    }

    /// Another node on the same database and data dir (a second server process, in effect).
    pub async fn sibling(&self) -> TestApp {
        Self::start(self.db.clone(), self.data.clone()).await
    }

    /// `sibling`, with its limits changed by `limits` (a node that sees the disk full, say).
    pub async fn sibling_with_limits(&self, limits: impl FnOnce(&mut cells_core::config::Limits)) -> TestApp {
        let mut config = test_config(&self.db, &self.data);
        limits(&mut config.limits);
        let server = Server::prepare(config).await.expect("server starts");
        Self::run(self.db.clone(), self.data.clone(), server)
    }

    async fn start(db: Db, data: PathBuf) -> TestApp {
        Self::start_on(db, data, None).await
    }

    async fn start_on(db: Db, data: PathBuf, listener: Option<tokio::net::TcpListener>) -> TestApp {
        let config = test_config(&db, &data);
        let server = match listener {
            Some(listener) => Server::prepare_on(config, listener).await,
            None => Server::prepare(config).await,
        }
        .expect("server starts");
        Self::run(db, data, server)
    }

    fn run(db: Db, data: PathBuf, server: Server) -> TestApp {
        let base = format!("http://{}", server.local_addr().expect("bound"));
        let sftp = server.sftp_addr().expect("bound");
        let app = server.app.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        TestApp {
            db,
            dir: None,
            data,
            base,
            sftp,
            app,
            http: Client::new(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stop gracefully (flushing token uses), keeping the data dir for a restart.
    pub async fn stop(mut self) -> (Db, TempDir) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server stops cleanly");
        }
        let dir = self
            .dir
            .take()
            .expect("only the first node is stopped for a restart");
        (self.db.clone(), dir)
    }

    /// Stop a node made by `sibling`.
    pub async fn stop_sibling(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server stops cleanly");
        }
    }

    pub async fn restart(self) -> TestApp {
        let (db, dir) = self.stop().await;
        TestApp::spawn_in(db, dir).await
    }

    /// Wait until the ETag worker (`files::etags`) has computed every pending ETag; fails
    /// after 30 s. Tests running beside one keep the process busy, so the worker then takes
    /// only a read a second.
    pub async fn wait_for_etags(&self) {
        let mut pending = Vec::new();
        for _ in 0..1200 {
            pending = self.app.store().pending_etags().await.unwrap();
            if pending.is_empty() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("still pending after 30 s: {pending:?}");
    }

    /// Whether file content is on local disk (not in an object store: `CELLS_TEST_BLOB_STORE`).
    pub fn on_disk(&self) -> bool {
        matches!(self.app.config.blob_store, BlobLocation::Disk(_))
    }

    /// Blobs in this node's blob store, temp files excluded (small files are kept in their
    /// rows instead): files on local disk, or objects (a parts blob counts once).
    pub async fn blob_files(&self) -> usize {
        use futures_util::StreamExt;
        let (bucket, prefix) = match &self.app.config.blob_store {
            BlobLocation::Disk(dir) => {
                return std::fs::read_dir(dir)
                    .expect("the blob folder")
                    .flatten()
                    .filter(|shard| shard.file_name() != "tmp" && shard.path().is_dir())
                    .map(|shard| std::fs::read_dir(shard.path()).expect("a blob shard").count())
                    .sum();
            }
            BlobLocation::S3 { bucket, prefix } => (bucket, prefix),
        };
        let s3 = object_store_client(bucket);
        let root = object_store::path::Path::from(prefix.as_str());
        let mut blobs = std::collections::HashSet::new();
        let mut listing = object_store::ObjectStore::list(&s3, Some(&root));
        while let Some(meta) = listing.next().await {
            let key = meta.expect("list the object store").location.to_string();
            let relative = key.strip_prefix(&format!("{prefix}/")).unwrap_or(&key);
            match relative.split('/').collect::<Vec<_>>()[..] {
                ["blobs", uuid] => blobs.insert(uuid.to_string()),
                ["parts", uuid, _] => blobs.insert(format!("parts:{uuid}")),
                _ => false,
            };
        }
        blobs.len()
    }

    /// An HTTP client whose requests come from another loopback address (for throttling).
    pub fn client_from(&self, address: &str) -> Client {
        Client::builder()
            .local_address(address.parse::<std::net::IpAddr>().expect("an IP address"))
            .build()
            .expect("client")
    }

    /// GET a request target exactly as written (no client-side normalisation); the status.
    pub async fn raw_get(&self, target: &str, login: &str, password: &str) -> u16 {
        use base64::Engine;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let address = self.base.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect");
        let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{login}:{password}"));
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Basic {credentials}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.expect("read");
        let text = String::from_utf8_lossy(&response);
        text.split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .expect("a status line")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn request(&self, method: Method, path: &str, auth: &Auth) -> RequestBuilder {
        auth.apply(self.http.request(method, self.url(path)))
    }

    /// POST JSON and return status and parsed body (`Null` when not JSON).
    pub async fn post(&self, path: &str, auth: &Auth, body: Value) -> (StatusCode, Value) {
        let response = self
            .request(Method::POST, path, auth)
            .json(&body)
            .send()
            .await
            .expect("request");
        split(response).await
    }

    pub async fn get(&self, path: &str, auth: &Auth) -> (StatusCode, Value) {
        split(
            self.request(Method::GET, path, auth)
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    pub async fn stat(&self, auth: &Auth, path: &str) -> (StatusCode, Value) {
        self.post("/a/tree/stats", auth, json!({ "NodePaths": [path] }))
            .await
    }

    /// The UUID of `path` as `auth` sees it.
    pub async fn uuid(&self, auth: &Auth, path: &str) -> String {
        let (status, body) = self.stat(auth, path).await;
        assert_eq!(status, StatusCode::OK, "stat {path}: {body}");
        body["Nodes"][0]["Uuid"].as_str().expect("uuid").to_string()
    }

    pub async fn mkdir(&self, auth: &Auth, path: &str) -> StatusCode {
        self.post(
            "/a/tree/create",
            auth,
            json!({ "Nodes": [{ "Path": path, "Type": "COLLECTION" }] }),
        )
        .await
        .0
    }

    pub async fn put(&self, auth: &Auth, path: &str, content: impl Into<reqwest::Body>) -> StatusCode {
        self.request(Method::PUT, &format!("/a/content/{path}"), auth)
            .body(content)
            .send()
            .await
            .expect("request")
            .status()
    }

    pub async fn read(&self, auth: &Auth, path: &str) -> (StatusCode, Vec<u8>) {
        let response = self
            .request(Method::GET, &format!("/a/content/{path}"), auth)
            .send()
            .await
            .expect("request");
        let status = response.status();
        (status, response.bytes().await.expect("body").to_vec())
    }

    pub async fn create_user(&self, login: &str, password: &str, profile: &str) {
        let response = self
            .request(Method::PUT, &format!("/a/user/{login}"), &Auth::admin())
            .json(&json!({ "Login": login, "Password": password, "Attributes": { "profile": profile } }))
            .send()
            .await
            .expect("request");
        let (status, body) = split(response).await;
        assert_eq!(status, StatusCode::OK, "create user {login}: {body}");
    }

    /// Run the real `cells` binary against this server's data dir and database.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cells"));
        command.args(args).arg("--data").arg(&self.data);
        if let Some(url) = self.db.database_url(&self.data) {
            command.arg("--database-url").arg(url);
        }
        command
            .env_remove("CELLS_ADMIN_LOGIN")
            .env_remove("CELLS_DATABASE_URL")
            .env_remove("CELLS_BLOB_STORE");
        if let Some(store) = self.db.blob_store(&self.data) {
            command.arg("--blob-store").arg(store);
        }
        command.output().expect("run the cells binary")
    }

    /// Run the CLI and return its stdout, failing the test when it fails.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let output = self.cli(args);
        assert!(
            output.status.success(),
            "cells {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .expect("utf-8")
            .trim()
            .to_string()
    }

    /// `cells admin user token -u LOGIN … -q`.
    pub fn token(&self, login: &str, extra: &[&str]) -> String {
        let mut args = vec!["admin", "user", "token", "-u", login, "-q"];
        args.extend_from_slice(extra);
        self.cli_ok(&args)
    }
}

pub fn test_config(db: &Db, data: &Path) -> Config {
    let mut config = Config::load(Overrides {
        data_dir: Some(PathBuf::from(data)),
        bind: Some("127.0.0.1:0".into()),
        sftp_bind: Some("127.0.0.1:0".into()),
        database_url: db.database_url(data),
        blob_store: db.blob_store(data),
        ..Overrides::default()
    })
    .expect("config");
    config.admin_login = ADMIN.into();
    config.admin_password = Some(ADMIN_PASSWORD.into());
    config
}

pub async fn split(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A credential for a request.
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    Basic(String, String),
    Bearer(String),
}

impl Auth {
    pub fn admin() -> Auth {
        Auth::Basic(ADMIN.into(), ADMIN_PASSWORD.into())
    }

    pub fn basic(login: &str, secret: &str) -> Auth {
        Auth::Basic(login.into(), secret.into())
    }

    pub fn bearer(token: &str) -> Auth {
        Auth::Bearer(token.into())
    }

    fn apply(&self, builder: RequestBuilder) -> RequestBuilder {
        match self {
            Auth::None => builder,
            Auth::Basic(login, secret) => builder.basic_auth(login, Some(secret)),
            Auth::Bearer(token) => builder.bearer_auth(token),
        }
    }
}

/// A client of the test object store's `bucket` (`CELLS_TEST_BLOB_STORE`), from the same
/// `AWS_*` variables the server reads.
pub fn object_store_client(bucket: &str) -> object_store::aws::AmazonS3 {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    object_store::aws::AmazonS3Builder::new()
        .with_endpoint(var("AWS_ENDPOINT_URL"))
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_access_key_id(var("AWS_ACCESS_KEY_ID"))
        .with_secret_access_key(var("AWS_SECRET_ACCESS_KEY"))
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .build()
        .expect("object store client")
}
