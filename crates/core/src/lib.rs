//! cells-core: what every protocol shares. Credentials become a `Principal` (`auth`), the file
//! tree asks one permission decision (`auth::permission`), users and their rules (`users`), the
//! OpenID provider (`auth::oidc`), the configuration and the one error type. No protocol lives
//! here; the adapter crates translate their requests into calls of this crate.

pub mod auth;
pub mod config;
pub mod connections;
pub mod duration;
pub mod error;
pub mod files;
pub mod locks;
pub mod proxy;
pub mod random;
/// The store's records, as the adapters see them (they never open the store themselves).
pub mod records {
    pub use cells_store::{
        DeadProp, DeviceCode, DeviceStatus, GrantId, Grantee, Group, GroupId, Node, NodeId, Part, Profile,
        PropChange, StoredLock, Token, TokenId, TokenKind, Upload, User, UserId, Workspace, WorkspaceGrant,
        WorkspaceId, now,
    };
}
pub mod tokens;
pub mod uploads;
pub mod users;
pub mod workspaces;

use std::sync::Arc;

use anyhow::Context;
use cells_store::Store;

use auth::Authenticator;
use auth::pat::PatKey;
use auth::vault::Vault;
use config::Config;
use files::Tree;
use files::blob::{BlobStore, LocalBlobs};

/// Shared state of a running server (or of one CLI command).
pub struct App {
    pub config: Config,
    /// Private: the protocol crates reach the database through this crate's functions.
    store: Store,
    pub auth: Authenticator,
    pub tree: Tree,
    pub oidc: Arc<auth::oidc::Oidc>,
    pub vault: Arc<Vault>,
    /// Signs browser session cookies; loaded once, shared by every node through the vault.
    pub session_key: aws_lc_rs::hmac::Key,
    pub started_at: i64,
    /// This process among the nodes of one database (the holder of its leases).
    pub node_id: String,
    /// Set when the server begins to shut down: `/healthz` answers 503 from then on, so a
    /// balancer stops sending new work while what is in flight finishes.
    /// Past the shutdown deadline (`cut`), what still runs stops: 0 serving, 1 draining, 2 cut.
    draining: tokio::sync::watch::Sender<u8>,
}

pub type SharedApp = Arc<App>;

/// A database whose files went to an object store stays with it: a node started on local
/// disk would find none of them. (An object store checks its own binding when it opens:
/// `ObjectBlobs::open`.)
async fn bind_blob_store(store: &Store, blobs: &dyn BlobStore) -> anyhow::Result<()> {
    if blobs.name().starts_with("s3:") {
        return Ok(());
    }
    match store.find_setting(files::blob::OBJECT_STORE_SETTING).await? {
        Some(bound) => anyhow::bail!(
            "this database's files are in the object store {bound:?}, not on local disk: \
             start every node with the same --blob-store"
        ),
        None => Ok(()),
    }
}

impl App {
    /// Open the database (migrating it) and the blob store, and load the server's secrets.
    pub async fn open(config: Config) -> anyhow::Result<SharedApp> {
        let store = Store::open_with(config.database_url.expose(), config.limits.dependency_timeout)
            .await
            .with_context(|| "cannot open the database".to_string())?;
        let vault = Arc::new(Vault::open(&config.data_dir, &store).await?);
        let pat_key = vault.secret(&store, "pat_checksum_key", 32).await?;
        let session_secret = vault.secret(&store, "session_cookie_key", 32).await?;
        let session_key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &session_secret);
        let oidc = Arc::new(auth::oidc::Oidc::open(&config, store.clone(), vault.clone()).await?);
        let node_id = uuid::Uuid::new_v4().to_string();
        let blobs: Arc<dyn BlobStore> = match &config.blob_store {
            config::BlobLocation::Disk(dir) => Arc::new(
                LocalBlobs::open(dir)
                    .with_context(|| format!("cannot open the blob store in {}", dir.display()))?,
            ),
            config::BlobLocation::S3 { bucket, prefix } => {
                let settings = files::blob::ObjectConfig {
                    bucket: bucket.clone(),
                    prefix: prefix.clone(),
                    // Beside the disk space kept for deletes (`files::space`), which is
                    // this node's to keep.
                    spool: config.blobs_dir().join("drafts"),
                    timeout: config.limits.dependency_timeout,
                    node: node_id.clone(),
                };
                Arc::new(files::blob::ObjectBlobs::open(settings, store.clone()).await?)
            }
        };
        bind_blob_store(&store, blobs.as_ref()).await?;
        let space = files::space::Space::new(config.blobs_dir(), config.limits.delete_reserve);
        let tree = Tree::new(store.clone(), blobs)
            .limit_file_size(config.limits.max_file_size)
            .keep_space(Arc::new(space));
        let auth = Authenticator::new(
            store.clone(),
            PatKey::new(&pat_key),
            oidc.clone(),
            vault.clone(),
            auth::suspension(&config.limits),
        );
        Ok(Arc::new(App {
            config,
            store,
            auth,
            tree,
            oidc,
            vault,
            session_key,
            started_at: cells_store::now(),
            node_id,
            draining: tokio::sync::watch::Sender::new(0),
        }))
    }
}

/// How long a node holds the lease of an hourly job: under the hour between runs, so that the
/// node that ran one runs it next time, and another takes over within the hour when it is gone
/// (at once after a clean stop: `App::resign`).
const JOB_LEASE_SECONDS: i64 = 3000;

impl App {
    /// A secret every node shares, sealed in the database (`Vault::secret_or`): the one stored,
    /// or the one `make` gives on the first start.
    pub async fn cluster_secret(
        &self,
        name: &str,
        make: impl FnOnce() -> anyhow::Result<Vec<u8>>,
    ) -> anyhow::Result<Vec<u8>> {
        self.vault.secret_or(&self.store, name, make).await
    }
}

impl App {
    /// The store itself, for white-box tests only: the feature `test-support` is enabled by
    /// the binary's tests and benches, never by a protocol crate.
    #[cfg(feature = "test-support")]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Wait for every write to be committed and close the database (end of a command).
    pub async fn close(&self) {
        self.store.close().await;
    }

    /// Begin the shutdown (see `draining`).
    pub fn drain(&self) {
        self.draining.send_if_modified(|stage| {
            let was = *stage;
            *stage = was.max(1);
            was < 1
        });
    }

    pub fn is_draining(&self) -> bool {
        *self.draining.borrow() >= 1
    }

    /// Resolves once the shutdown has begun (`drain`).
    pub async fn draining(&self) {
        let mut watch = self.draining.subscribe();
        let _ = watch.wait_for(|stage| *stage >= 1).await;
    }

    /// The shutdown deadline passed: sessions still open end now, cleaning up after
    /// themselves (an SFTP upload cut here leaves nothing, not even the name its OPEN made).
    pub fn cut(&self) {
        self.draining.send_replace(2);
    }

    /// Resolves once `cut` was called.
    pub async fn cutting(&self) {
        let mut watch = self.draining.subscribe();
        let _ = watch.wait_for(|stage| *stage >= 2).await;
    }

    /// Whether the database answered the last ping (no new query: `/metrics`).
    pub fn database_up(&self) -> bool {
        !self.store.health().is_down()
    }

    /// Whether the database answers now (`/healthz`).
    pub async fn database_ready(&self) -> bool {
        !self.store.health().is_down() && self.store.ping().await
    }

    /// Ping the database, at most `dependency-timeout` (and 2 s) long, and record whether it
    /// answered (`cells_store::health`): the server's watcher calls this every second, and
    /// four times a second while it is down, so that an outage is answered "unavailable" at
    /// once and the first request after the recovery goes through.
    pub async fn check_database(&self) -> bool {
        let wait = self
            .config
            .limits
            .dependency_timeout
            .min(std::time::Duration::from_secs(2));
        let answered = tokio::time::timeout(wait, self.store.ping())
            .await
            .unwrap_or(false);
        if self.store.health().record(answered) {
            match answered {
                true => tracing::warn!("the database answers again"),
                false => tracing::error!(
                    "the database does not answer: requests are answered \"unavailable\" until it does"
                ),
            }
        }
        answered
    }

    /// Whether the blob store answered the last ping (always, for local disk).
    pub fn blob_store_up(&self) -> bool {
        !self.tree.blobs().is_down()
    }

    /// Ping the blob store and record whether it answered (an object store: like
    /// `check_database`, so that an outage is answered "unavailable" at once).
    pub async fn check_blob_store(&self) -> bool {
        let blobs = self.tree.blobs();
        let answered = match blobs.ping().await {
            Ok(()) => true,
            Err(error) => {
                tracing::debug!(%error, "the blob store's ping failed");
                false
            }
        };
        if blobs.record_health(answered) {
            match answered {
                true => tracing::warn!("the object store answers again"),
                false => tracing::error!(
                    "the object store does not answer: reads and writes of file content are answered \"unavailable\" until it does"
                ),
            }
        }
        answered
    }

    /// Whether this node runs `job` now for the whole cluster (a lease held for
    /// `JOB_LEASE_SECONDS`, renewed by each run): one node prunes, rotates keys and
    /// queues pending ETags, not every node. On SQLite this process is the only node (and a
    /// lease left by the process before it, killed, must not hold it off).
    pub async fn lead(&self, job: &str) -> anyhow::Result<bool> {
        if self.store.backend() == cells_store::Backend::Sqlite {
            return Ok(true);
        }
        Ok(self
            .store
            .take_lease(job, &self.node_id, JOB_LEASE_SECONDS)
            .await?)
    }

    /// Give up `job`'s lease (a clean stop), so that another node takes it at once.
    pub async fn resign(&self, job: &str) {
        if let Err(error) = self.store.release_lease(job, &self.node_id).await {
            tracing::warn!(%error, job, "could not give up a job's lease");
        }
    }

    /// Hourly housekeeping of what expired: tokens (kept a week, so that their owners can see
    /// what expired), signing keys (rotated when due, retired ones dropped once nothing they
    /// signed can be valid), OAuth codes, refresh tokens and sessions, device codes, WebDAV
    /// locks, address failures. Each failure is logged and the others still run.
    pub async fn prune_expired(&self, now: i64) {
        match self.store.prune_tokens(now - 7 * 24 * 3600).await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "pruned expired tokens"),
            Err(error) => tracing::warn!(%error, "could not prune expired tokens"),
        }
        match self.oidc.rotate_keys_if_due().await {
            Ok(true) => tracing::info!("rotated the signing keys (scheduled)"),
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "could not rotate the signing keys"),
        }
        match self.store.prune_dav_locks(now).await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "pruned expired WebDAV locks"),
            Err(error) => tracing::warn!(%error, "could not prune expired WebDAV locks"),
        }
        for (what, outcome) in [
            ("signing keys", self.store.prune_signing_keys(now).await),
            (
                "codes, refresh tokens and sessions",
                self.store.prune_oauth(now).await,
            ),
            ("device codes", self.store.prune_device_codes(now).await),
            (
                "address failures",
                auth::throttle::Throttle::prune(&self.store).await,
            ),
            ("quota reservations", self.store.prune_quota_reservations().await),
        ] {
            if let Err(error) = outcome {
                tracing::warn!(%error, "could not prune expired {what}");
            }
        }
    }
}

/// Cases per generated-input property (`CELLS_FUZZ_CASES`, else 1,000): `bench/fuzz.sh` runs
/// them longer on a release build.
pub fn fuzz_cases() -> u32 {
    std::env::var("CELLS_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}
