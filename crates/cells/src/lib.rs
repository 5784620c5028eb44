//! cells: a self-hosted file server whose credentials work on every protocol it speaks.
//!
//! This crate is the binary's: the command line (`cli`), the router that puts the protocol
//! crates behind one listener, the background jobs, and `Server`, which binds, runs and drains.

pub mod cli;
#[cfg(test)]
mod fuzz;
pub mod router;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use cells_core::config::{Config, Tls};
use cells_core::{App, SharedApp};
use cells_core::{auth, users};
use cells_http::tls::Certificates;

/// A bound server, ready to run: tests bind port 0 and read the addresses back.
pub struct Server {
    pub app: SharedApp,
    pub listener: TcpListener,
    pub sftp_listener: TcpListener,
    /// With HTTPS: the certificate and key served, reloaded when they change.
    pub certificates: Option<Arc<Certificates>>,
    /// `--http-redirect-bind`: the plain-HTTP port that sends browsers to HTTPS.
    pub redirect_listener: Option<TcpListener>,
    /// The SFTP host key every node serves, loaded before serving.
    sftp_key: cells_sftp::HostKey,
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
            let scheme = if config.tls.is_some() { "https" } else { "http" };
            config.external_url = format!("{scheme}://{}", listener.local_addr()?);
        }
        // A certificate that does not load stops the start, with the reason (a self-signed
        // one is the cluster's: loaded once the database is open, below).
        let mut certificates = match &config.tls {
            Some(Tls::Files { cert, key }) => Some(Certificates::load(cert, key)?),
            None | Some(Tls::SelfSigned) => None,
        };
        let redirect_listener = match &config.http_redirect_bind {
            Some(bind) => Some(
                TcpListener::bind(bind)
                    .await
                    .with_context(|| format!("cannot listen for the HTTPS redirect on {bind}"))?,
            ),
            None => None,
        };
        let sftp_listener = TcpListener::bind(&config.sftp_bind)
            .await
            .with_context(|| format!("cannot listen for SFTP on {}", config.sftp_bind))?;
        let app = App::open(config).await?;
        if let Some(Tls::SelfSigned) = &app.config.tls {
            let (cert, key) = cluster_self_signed(&app).await?;
            certificates = Some(Certificates::load(&cert, &key)?);
        }
        // Now, not at the first connection: a bad key stops the start, and `admin sftp
        // host-key` shows the key before anyone connects.
        let sftp_key = cells_sftp::host_key(&app).await?;
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
            certificates,
            redirect_listener,
            sftp_key,
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
        let database = tokio::spawn(watch_database(app.clone()));
        let blob_store = tokio::spawn(watch_blob_store(app.clone()));
        let heartbeat = tokio::spawn(beat_intents(app.clone()));
        let router = router::router(app.clone());
        let mut options = cells_http::listener::Options {
            tls: None,
            proxies: app.config.trusted_proxies.clone(),
        };
        let mut tls_tasks = Vec::new();
        // One plain line on stdout, for people and for scripts that started us on port 0.
        match &self.certificates {
            Some(certificates) => {
                println!("cells: listening on https://{}", self.listener.local_addr()?);
                println!("cells: TLS certificate SHA-256 {}", certificates.fingerprint());
                options.tls = Some(certificates.acceptor()?);
                tls_tasks.push(tokio::spawn(certificates.clone().watch()));
                tls_tasks.push(tokio::spawn(reload_on_hangup(certificates.clone())));
            }
            None => println!("cells: listening on http://{}", self.listener.local_addr()?),
        }
        if let Some(redirect) = self.redirect_listener {
            println!("cells: redirecting http://{} to HTTPS", redirect.local_addr()?);
            let router = cells_http::listener::redirect_router(&app.config.external_url);
            let limits = app.config.limits.clone();
            tls_tasks.push(tokio::spawn(async move {
                let plain = cells_http::listener::Options {
                    tls: None,
                    proxies: Default::default(),
                };
                let forever = std::future::pending::<()>();
                if let Err(error) =
                    cells_http::listener::serve(redirect, router, &limits, plain, forever).await
                {
                    tracing::error!(%error, "the HTTPS redirect port failed");
                }
            }));
        }
        println!("cells: sftp on {}", self.sftp_listener.local_addr()?);
        let sftp = tokio::spawn(cells_sftp::serve(app.clone(), self.sftp_listener, self.sftp_key));
        // The shutdown: `/healthz` says 503 and every protocol stops accepting at once; what is
        // in flight finishes within `shutdown-timeout` (each listener waits for its own).
        let stopping = {
            let app = app.clone();
            async move {
                shutdown.await;
                app.drain();
            }
        };
        // TCP_NODELAY: small responses leave at once instead of waiting on delayed ACKs.
        let http = cells_http::listener::serve(self.listener, router, &app.config.limits, options, stopping)
            .await
            .context("HTTP server failed");
        app.drain();
        // SFTP was told by `drain` too, and had the same deadline.
        // (and a second more to clean up after what it cut).
        let sftp_deadline = app.config.limits.shutdown_timeout + Duration::from_secs(2);
        match tokio::time::timeout(sftp_deadline, sftp).await {
            Ok(Ok(Err(error))) => tracing::error!(%error, "the SFTP server failed"),
            Ok(_) => {}
            Err(_) => tracing::warn!("SFTP sessions still open at the shutdown deadline were cut"),
        }
        http?;
        background.abort();
        watcher.abort();
        database.abort();
        blob_store.abort();
        heartbeat.abort();
        for task in tls_tasks {
            task.abort();
        }
        app.auth.flush_usage(true).await;
        app.auth.share_throttle().await;
        app.resign("hourly").await;
        app.close().await;
        tracing::info!("cells stopped");
        Ok(())
    }
}

/// The self-signed pair every node serves (`--tls self-signed`), so that a client that pinned
/// it keeps working whichever node a balancer sends it to: sealed in the database, made from
/// this data dir's pair on the first start (one made before the cluster kept it), and written
/// into the data dir for the listener to load. Its names are the first node's: behind a
/// balancer, give the balancer the external URL's name.
async fn cluster_self_signed(app: &App) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
    let dir = app.config.tls_dir();
    let had_own = dir.join("self-signed-cert.pem").exists();
    let (cert, key) = cells_http::tls::self_signed(&dir, &self_signed_names(&app.config))?;
    let read = || -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::json!({
            "cert": std::fs::read_to_string(&cert)?,
            "key": std::fs::read_to_string(&key)?,
        }))
    };
    let local = read()?;
    let stored = app
        .cluster_secret("tls_self_signed", || Ok(serde_json::to_vec(&local)?))
        .await?;
    let stored: serde_json::Value = serde_json::from_slice(&stored).context("the stored certificate")?;
    if stored != local {
        let (Some(stored_cert), Some(stored_key)) = (stored["cert"].as_str(), stored["key"].as_str()) else {
            anyhow::bail!("the stored self-signed certificate is not a certificate and a key");
        };
        if had_own {
            // A pair this node served before it joined: kept aside, not lost.
            std::fs::rename(&cert, cert.with_extension("pem.own"))?;
            std::fs::rename(&key, key.with_extension("pem.own"))?;
            tracing::warn!(dir = %dir.display(), "this node's own self-signed certificate is not the \
                cluster's; the cluster's is served (the node's own is kept as *.pem.own)");
        }
        cells_http::tls::write_pair(&cert, stored_cert, &key, stored_key)?;
    }
    Ok((cert, key))
}

/// The names a self-signed certificate is made for: localhost, the loopback addresses, and the
/// host of the external URL and of the bind address.
fn self_signed_names(config: &Config) -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let external = config.external_url.split_once("://").map_or("", |(_, rest)| rest);
    for authority in [external.split('/').next().unwrap_or(""), config.bind.as_str()] {
        let host = match authority.rsplit_once(':') {
            Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
            _ => authority,
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if !host.is_empty() && host != "0.0.0.0" && host != "::" && !names.iter().any(|n| n == host) {
            names.push(host.to_string());
        }
    }
    names
}

/// SIGHUP reloads the TLS certificate now (as nginx and HAProxy do).
async fn reload_on_hangup(certificates: Arc<Certificates>) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        return;
    };
    while hangups.recv().await.is_some() {
        certificates.request_reload();
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

/// Keep this server's view of whether the database answers fresh (`App::check_database`).
async fn watch_database(app: SharedApp) {
    loop {
        let answered = app.check_database().await;
        let pause = if answered { 1000 } else { 250 };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// Keep this server's view of whether the blob store answers fresh (`App::check_blob_store`).
async fn watch_blob_store(app: SharedApp) {
    loop {
        let answered = app.check_blob_store().await;
        let pause = if answered { 1000 } else { 250 };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// Keep this node's blob intents alive (an object store's writes in progress), in a task of
/// its own: a long sweep must not make them look dead to another node.
async fn beat_intents(app: SharedApp) {
    let every = Duration::from_secs(cells_core::files::blob::HEARTBEAT as u64);
    loop {
        tokio::time::sleep(every).await;
        if let Err(error) = app.tree.blobs().heartbeat().await {
            tracing::warn!(%error, "could not refresh this node's blob intents");
        }
    }
}

/// What one node of a cluster does every hour (`App::lead`): prune what expired (tokens,
/// keys, OAuth state, WebDAV locks, address failures), rotate the signing keys when due, delete
/// abandoned S3 uploads, and queue the files whose ETag a stopped node left pending.
async fn hourly_jobs(app: &SharedApp, now: i64) {
    app.prune_expired(now).await;
    match cells_s3::multipart::expire(app).await {
        Ok(0) => {}
        Ok(count) => tracing::info!(count, "deleted abandoned S3 multipart uploads"),
        Err(error) => tracing::warn!(%error, "could not delete abandoned S3 multipart uploads"),
    }
    if let Err(error) = app.tree.queue_pending_etags().await {
        tracing::warn!(%error, "could not queue the files whose ETag is pending");
    }
}

/// How often (seconds) a node sweeps its blob store while serving (`Tree::sweep_while_serving`).
const SWEEP_EVERY: i64 = 300;

/// Periodic work: write coalesced token uses and share the address throttle's failures; every
/// second, give back the space kept for deletes once there is room; every five minutes, sweep
/// the blob store (one node, under a lease); hourly, `hourly_jobs` (one node, under a lease).
async fn background_jobs(app: SharedApp) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut last_prune = 0i64;
    let mut last_space = 0i64;
    // The start-up sweep just ran.
    let mut last_sweep = cells_store::now();
    loop {
        tick.tick().await;
        app.auth.flush_usage(false).await;
        app.auth.share_throttle().await;
        let now = cells_store::now();
        if now != last_space {
            last_space = now;
            let tree = app.tree.clone();
            let _ = tokio::task::spawn_blocking(move || tree.restore_space()).await;
        }
        if now - last_sweep >= SWEEP_EVERY {
            last_sweep = now;
            match app.tree.sweep_while_serving(&app.node_id).await {
                Ok(Some(report)) if report.temp_files + report.orphan_blobs > 0 => tracing::info!(
                    temp_files = report.temp_files,
                    orphan_blobs = report.orphan_blobs,
                    "removed leftovers of interrupted uploads"
                ),
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "could not sweep the blob store"),
            }
        }
        if now - last_prune >= 3600 {
            last_prune = now;
            match app.lead("hourly").await {
                Ok(true) => hourly_jobs(&app, now).await,
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "could not take the hourly jobs' lease"),
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
