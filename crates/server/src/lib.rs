//! cells: a self-hosted file server whose credentials work on every protocol it speaks.
//!
//! `App` is the shared state: configuration, the store, the authenticator and the file tree.
//! `serve` runs the HTTP side until a shutdown signal, then drains and flushes.

pub mod auth;
pub mod cli;
pub mod config;
pub mod connections;
pub mod console;
pub mod dav;
pub mod error;
pub mod files;
#[cfg(test)]
mod fuzz;
pub mod http;
pub mod s3;
pub mod sftp;
pub mod users;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cells_store::Store;
use tokio::net::TcpListener;

use auth::Authenticator;
use auth::pat::PatKey;
use auth::vault::Vault;
use config::Config;
use files::Tree;
use files::blob::LocalBlobs;

/// Shared state of a running server (or of one CLI command).
pub struct App {
    pub config: Config,
    pub store: Store,
    pub auth: Authenticator,
    pub tree: Tree,
    pub oidc: Arc<auth::oidc::Oidc>,
    pub vault: Arc<Vault>,
    /// Signs browser session cookies; loaded once, shared by every node through the vault.
    pub session_key: aws_lc_rs::hmac::Key,
    pub started_at: i64,
}

pub type SharedApp = Arc<App>;

impl App {
    /// Open the database (migrating it) and the blob store, and load the server's secrets.
    pub async fn open(config: Config) -> anyhow::Result<SharedApp> {
        let store = Store::open(&config.database_url)
            .await
            .with_context(|| "cannot open the database".to_string())?;
        let vault = Arc::new(Vault::open(&config.data_dir)?);
        let pat_key = vault.secret(&store, "pat_checksum_key", 32).await?;
        let session_secret = vault.secret(&store, "session_cookie_key", 32).await?;
        let session_key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &session_secret);
        let oidc = Arc::new(auth::oidc::Oidc::open(&config, store.clone(), vault.clone()).await?);
        let blobs = LocalBlobs::open(&config.blobs_dir())
            .with_context(|| format!("cannot open the blob store in {}", config.blobs_dir().display()))?;
        let tree = Tree::new(store.clone(), Arc::new(blobs)).limit_file_size(config.limits.max_file_size);
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
        }))
    }
}

/// A bound server, ready to run: tests bind port 0 and read the addresses back.
pub struct Server {
    pub app: SharedApp,
    pub listener: TcpListener,
    pub sftp_listener: TcpListener,
}

impl Server {
    /// Open everything, create the first admin if there is no user yet, clean the blob store,
    /// and bind the HTTP listener.
    pub async fn prepare(config: Config) -> anyhow::Result<Server> {
        // Bind first: with port 0, the default external URL (and so the OIDC issuer) must
        // name the port actually bound.
        let listener = TcpListener::bind(&config.bind)
            .await
            .with_context(|| format!("cannot listen on {}", config.bind))?;
        Server::prepare_on(config, listener).await
    }

    /// `prepare` on a listener bound by the caller.
    pub async fn prepare_on(mut config: Config, listener: TcpListener) -> anyhow::Result<Server> {
        if config.external_url_is_default {
            config.external_url = format!("http://{}", listener.local_addr()?);
        }
        let sftp_listener = TcpListener::bind(&config.sftp_bind)
            .await
            .with_context(|| format!("cannot listen for SFTP on {}", config.sftp_bind))?;
        let app = App::open(config).await?;
        // Now, not at the first connection: a bad key file stops the start, and
        // `admin sftp host-key` shows the key before anyone connects.
        sftp::host_key(&app.config.data_dir)?;
        users::bootstrap_admin(&app).await?;
        let report = app.tree.sweep().await.context("cannot clean the blob store")?;
        if report.temp_files + report.orphan_blobs > 0 {
            tracing::info!(
                temp_files = report.temp_files,
                orphan_blobs = report.orphan_blobs,
                "removed unfinished uploads"
            );
        }
        Ok(Server {
            app,
            listener,
            sftp_listener,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    pub fn sftp_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.sftp_listener.local_addr()
    }

    /// Serve until `shutdown` completes, then finish in-flight requests and flush token uses.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let app = self.app;
        let background = tokio::spawn(background_jobs(app.clone()));
        let watcher = tokio::spawn(watch_auth_epoch(app.clone()));
        let router = http::router(app.clone());
        // One plain line on stdout, for people and for scripts that started us on port 0.
        println!("cells: listening on http://{}", self.listener.local_addr()?);
        println!("cells: sftp on {}", self.sftp_listener.local_addr()?);
        let sftp = tokio::spawn(sftp::serve(app.clone(), self.sftp_listener));
        // TCP_NODELAY: small responses leave at once instead of waiting on delayed ACKs.
        http::listener::serve(self.listener, router, &app.config.limits, shutdown)
            .await
            .context("HTTP server failed")?;
        background.abort();
        watcher.abort();
        sftp.abort();
        app.auth.flush_usage(true).await;
        app.store.close().await;
        tracing::info!("cells stopped");
        Ok(())
    }
}

/// Keep this server's view of the auth epoch fresh (see `auth` module docs).
async fn watch_auth_epoch(app: SharedApp) {
    let mut tick = tokio::time::interval(auth::EPOCH_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        app.auth.poll_epoch().await;
    }
}

/// Periodic work: write coalesced token uses; hourly, prune what expired (tokens, keys, OAuth
/// state, WebDAV locks, abandoned S3 uploads).
async fn background_jobs(app: SharedApp) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut last_prune = 0i64;
    loop {
        tick.tick().await;
        app.auth.flush_usage(false).await;
        let now = cells_store::now();
        if now - last_prune >= 3600 {
            last_prune = now;
            // Keep expired tokens a week so that their owners can see what expired.
            match app.store.prune_tokens(now - 7 * 24 * 3600).await {
                Ok(0) => {}
                Ok(count) => tracing::info!(count, "pruned expired tokens"),
                Err(error) => tracing::warn!(%error, "could not prune expired tokens"),
            }
            match app.oidc.rotate_keys_if_due().await {
                Ok(true) => tracing::info!("rotated the signing keys (scheduled)"),
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "could not rotate the signing keys"),
            }
            match app.store.prune_dav_locks(now).await {
                Ok(0) => {}
                Ok(count) => tracing::info!(count, "pruned expired WebDAV locks"),
                Err(error) => tracing::warn!(%error, "could not prune expired WebDAV locks"),
            }
            match s3::multipart::expire(&app).await {
                Ok(0) => {}
                Ok(count) => tracing::info!(count, "deleted abandoned S3 multipart uploads"),
                Err(error) => tracing::warn!(%error, "could not delete abandoned S3 multipart uploads"),
            }
            for (what, outcome) in [
                ("signing keys", app.store.prune_signing_keys(now).await),
                (
                    "codes, refresh tokens and sessions",
                    app.store.prune_oauth(now).await,
                ),
            ] {
                if let Err(error) = outcome {
                    tracing::warn!(%error, "could not prune expired {what}");
                }
            }
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing requests");
}
