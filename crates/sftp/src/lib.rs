//! SFTP on its own port (2022 by default): russh carries SSH and password authentication,
//! `session` speaks SFTP version 3 on the `sftp` subsystem. Nothing else is offered: no shell,
//! no exec, no port forwarding.
//!
//! The password is checked by `Authenticator::authenticate_password`, as WebDAV's Basic
//! password: the user's password, or a personal or OAuth access token of that login, with the
//! same cache, lockout and per-address throttling. A public key logs in when it is registered
//! for the login (`cells admin user add-key`), through `Authenticator::authenticate_ssh_key`.

pub mod budget;
pub mod packet;
pub mod session;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{HashAlg, PrivateKey};
use russh::server::{Auth, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, MethodKind, MethodSet};
use tokio::net::TcpListener;

use budget::Budget;
use cells_core::auth::Client;
use cells_core::auth::principal::Principal;
use cells_core::auth::throttle::counted_as;
use cells_core::connections::{Connections, Slot};
use cells_core::error::Error;
use cells_core::{App, SharedApp};
use session::{Credential, Login};

/// The host key of servers before the cluster kept it in the database: imported from the
/// data dir on the first start, so pinned clients keep working.
pub const HOST_KEY_FILE: &str = "sftp_host_ed25519_key";

/// An SSH host key.
pub type HostKey = PrivateKey;

/// The database setting that holds the host key (sealed, OpenSSH format).
const HOST_KEY_SETTING: &str = "sftp_host_key";

/// The server's Ed25519 host key, one for every node (clients pin it, and a load balancer
/// sends them to any node): sealed in the database. On the first start it is the data dir's
/// `sftp_host_ed25519_key` when there is one (never replaced), or a new key.
pub async fn host_key(app: &App) -> anyhow::Result<PrivateKey> {
    let path = app.config.data_dir.join(HOST_KEY_FILE);
    let local = match std::fs::read_to_string(&path) {
        Ok(text) => Some(
            PrivateKey::from_openssh(&text)
                .with_context(|| format!("cannot read the host key {}", path.display()))?,
        ),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => {
            return Err(error).with_context(|| format!("cannot read the host key {}", path.display()));
        }
    };
    let text = app
        .cluster_secret(HOST_KEY_SETTING, || {
            let key = match &local {
                Some(key) => key.clone(),
                None => {
                    let mut seed = [0u8; 32];
                    cells_core::random::fill(&mut seed);
                    PrivateKey::from(Ed25519Keypair::from_seed(&seed))
                }
            };
            Ok(key.to_openssh(LineEnding::LF)?.as_bytes().to_vec())
        })
        .await?;
    let text = String::from_utf8(text).context("the stored host key is not text")?;
    let key = PrivateKey::from_openssh(&text).context("cannot read the stored host key")?;
    if let Some(local) = local
        && local.public_key() != key.public_key()
    {
        tracing::warn!(
            file = %path.display(),
            cluster = %fingerprint(&key),
            "this data dir's SFTP host key is not the cluster's; the cluster's is served"
        );
    }
    Ok(key)
}

/// `SHA256:…`, as `ssh-keygen -l` and OpenSSH's first-connection prompt show it.
pub fn fingerprint(key: &PrivateKey) -> String {
    key.public_key().fingerprint(HashAlg::Sha256).to_string()
}

/// The public key line for `known_hosts` / `authorized_keys` style pinning.
pub fn public_line(key: &PrivateKey) -> anyhow::Result<String> {
    Ok(key.public_key().to_openssh()?)
}

/// The login methods this server accepts.
fn methods() -> MethodSet {
    let mut methods = MethodSet::empty();
    methods.push(MethodKind::Password);
    methods.push(MethodKind::PublicKey);
    methods
}

fn ssh_config(key: PrivateKey) -> Arc<russh::server::Config> {
    let methods = methods();
    Arc::new(russh::server::Config {
        server_id: russh::SshId::Standard(format!("SSH-2.0-cells_{}", env!("CARGO_PKG_VERSION")).into()),
        methods,
        // A failed password costs the guesser this long; the throttle and lockout do the rest.
        auth_rejection_time: Duration::from_millis(300),
        // OpenSSH probes with "none" first: answer that at once.
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![key],
        // Large windows and packets keep bulk transfers from stalling on flow control.
        window_size: 16 << 20,
        maximum_packet_size: 65535,
        inactivity_timeout: Some(Duration::from_secs(3600)),
        keepalive_interval: Some(Duration::from_secs(60)),
        nodelay: true,
        ..Default::default()
    })
}

/// What every connection of a server shares: the memory budget and the connection counts.
struct Shared {
    budget: Arc<Budget>,
    /// SFTP sessions running on all connections (the shutdown waits for them).
    running: Arc<std::sync::atomic::AtomicUsize>,
    per_address: Connections<IpAddr>,
    per_user: Connections<cells_core::records::UserId>,
}

/// Accept SSH connections on `listener`, as the host `key` (`host_key`), until the server
/// drains (`App::drain`), then let the transfers in flight finish within `shutdown-timeout`.
///
/// An address (IPv6: its /64) holding `sftp-connections-per-address` connections has further
/// ones closed at once; a user holding `sftp-connections-per-user` authenticated connections
/// is refused further logins; a connection that has not authenticated within
/// `sftp-auth-timeout` is closed.
pub async fn serve(app: SharedApp, listener: TcpListener, key: HostKey) -> anyhow::Result<()> {
    let config = ssh_config(key);
    let limits = app.config.limits.clone();
    let shared = Arc::new(Shared {
        budget: Arc::new(Budget::new(budget::SERVER_MEMORY)),
        running: Arc::default(),
        per_address: Connections::new(limits.sftp_connections_per_address),
        per_user: Connections::new(limits.sftp_connections_per_user),
    });
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = app.draining() => break,
        };
        let (socket, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(%error, "sftp: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let (app, shared, config) = (app.clone(), shared.clone(), config.clone());
        let auth_timeout = limits.sftp_auth_timeout;
        if app.config.trusted_proxies.trusts(peer.ip()) {
            // A balancer (HAProxy's `send-proxy-v2`) names the client in a PROXY header: read
            // it in the connection's own task, within the authentication deadline, and count
            // the client, not the balancer.
            tokio::spawn(async move {
                let mut socket = socket;
                let started = tokio::time::Instant::now();
                let client = match cells_core::proxy::proxied_client(&mut socket, peer, auth_timeout).await {
                    Ok(client) => client,
                    Err(error) => {
                        tracing::debug!(%peer, %error, "sftp: closed: a bad PROXY header");
                        return;
                    }
                };
                if let Some(slot) = admit(&shared, client) {
                    let left = auth_timeout.saturating_sub(started.elapsed());
                    run_connection(app, shared, config, socket, client, slot, left).await;
                }
            });
            continue;
        }
        let Some(slot) = admit(&shared, peer) else {
            drop(socket);
            continue;
        };
        tokio::spawn(run_connection(
            app,
            shared,
            config,
            socket,
            peer,
            slot,
            auth_timeout,
        ));
    }
    // Shutting down: no new connection (the listener closes here). Sessions refuse new opens
    // and end once their open files are closed (`session::run`); wait for them, up to
    // `shutdown-timeout`.
    drop(listener);
    let running = shared.running.clone();
    let finished = tokio::time::timeout(limits.shutdown_timeout, async move {
        while running.load(std::sync::atomic::Ordering::Acquire) > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    if finished.is_err() {
        let count = shared.running.load(std::sync::atomic::Ordering::Acquire);
        tracing::warn!(
            count,
            "sftp: sessions still open at the shutdown deadline are cut"
        );
        // They drop what they were writing and remove the names their OPENs made.
        app.cut();
        let running = shared.running.clone();
        let _ = tokio::time::timeout(Duration::from_secs(1), async move {
            while running.load(std::sync::atomic::Ordering::Acquire) > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }
    Ok(())
}

/// A place for a connection of `client` under `sftp-connections-per-address`; `None` closes it.
fn admit(shared: &Shared, client: SocketAddr) -> Option<Slot<IpAddr>> {
    let slot = shared.per_address.open(counted_as(client.ip()));
    if slot.is_none() {
        tracing::info!(peer = %client, "sftp: too many connections from this address; closed");
    }
    slot
}

/// One SSH connection of `peer` (the client a PROXY header named, or the socket's peer), to
/// its end; closed when not authenticated within `auth_timeout`.
async fn run_connection(
    app: SharedApp,
    shared: Arc<Shared>,
    config: Arc<russh::server::Config>,
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
    _address_slot: Slot<IpAddr>,
    auth_timeout: Duration,
) {
    let authenticated = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handler = Connection {
        app,
        peer,
        login: None,
        channels: HashMap::new(),
        shared,
        user_slot: None,
        authenticated: authenticated.clone(),
        sessions: Arc::default(),
    };
    // The deadline covers the version exchange too: a client that sends nothing at
    // all is closed as well.
    let deadline = tokio::time::Instant::now() + auth_timeout;
    let session =
        match tokio::time::timeout_at(deadline, russh::server::run_stream(config, socket, handler)).await {
            Ok(Ok(session)) => session,
            Ok(Err(error)) => {
                tracing::debug!(%error, %peer, "sftp: handshake failed");
                return;
            }
            Err(_) => {
                tracing::info!(%peer, "sftp: no SSH version exchange in time; closed");
                return;
            }
        };
    tokio::pin!(session);
    let outcome = tokio::select! {
        outcome = &mut session => outcome,
        () = tokio::time::sleep_until(deadline) => {
            if !authenticated.load(std::sync::atomic::Ordering::Acquire) {
                tracing::info!(%peer, "sftp: not authenticated in time; closed");
                // The session runs in a task of its own: ask it to end, and give it a
                // moment to close the socket.
                let _ = session
                    .handle()
                    .disconnect(
                        russh::Disconnect::ByApplication,
                        "authentication timeout".into(),
                        "en".into(),
                    )
                    .await;
                let _ = tokio::time::timeout(Duration::from_secs(2), &mut session).await;
                return;
            }
            session.await
        }
    };
    if let Err(error) = outcome {
        tracing::debug!(%error, %peer, "sftp: connection ended");
    }
}

/// One SSH connection.
struct Connection {
    app: SharedApp,
    peer: SocketAddr,
    /// Set once a password was accepted.
    login: Option<(Login, Principal)>,
    /// Session channels opened and not yet given a subsystem.
    channels: HashMap<ChannelId, Channel<Msg>>,
    shared: Arc<Shared>,
    /// The user's connection slot, taken at login.
    user_slot: Option<Slot<cells_core::records::UserId>>,
    /// Set at login, for the authentication timeout.
    authenticated: Arc<std::sync::atomic::AtomicBool>,
    /// SFTP sessions running on this connection.
    sessions: Arc<std::sync::atomic::AtomicUsize>,
}

/// Channels (open, or running a session) one connection may have.
const CHANNELS_PER_CONNECTION: usize = 8;

impl Connection {
    fn client(&self) -> Client {
        Client {
            protocol: "sftp",
            address: self.peer.ip(),
        }
    }

    /// Log in as `principal`, if the user has a connection to spare.
    fn log_in(&mut self, login: Login, principal: Principal) -> Auth {
        if self.user_slot.is_none() {
            match self.shared.per_user.open(principal.user_id()) {
                Some(slot) => self.user_slot = Some(slot),
                None => {
                    tracing::info!(login = %login.login, peer = %self.peer,
                        "sftp: login refused: too many connections of this user");
                    return Auth::reject();
                }
            }
        }
        self.login = Some((login, principal));
        self.authenticated
            .store(true, std::sync::atomic::Ordering::Release);
        Auth::Accept
    }
}

/// The answer to a login that could not be checked (the database does not answer): refused,
/// naming every method this server accepts, so that the client does not conclude a method is
/// off (russh drops the method that failed from the list it sends otherwise).
fn not_now() -> Auth {
    Auth::Reject {
        proceed_with_methods: Some(methods()),
        partial_success: false,
    }
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        let client = self.client();
        match self.app.auth.authenticate_password(user, password, client).await {
            Ok(principal) => {
                let login = Login {
                    login: user.to_string(),
                    credential: Credential::Secret(password.to_string()),
                    client,
                };
                Ok(self.log_in(login, principal))
            }
            Err(error @ Error::Unavailable(_)) => {
                tracing::warn!(login = user, peer = %self.peer, %error, "sftp: login not checked");
                Ok(not_now())
            }
            Err(error) => {
                // The login is the user's to know; the password is never logged.
                tracing::info!(login = user, peer = %self.peer, %error, "sftp: login refused");
                Ok(Auth::reject())
            }
        }
    }

    /// Would this key do? (RFC 4252 §7: the client asks before it signs.)
    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        let fingerprint = offer.public_key.fingerprint(HashAlg::Sha256).to_string();
        match self
            .app
            .auth
            .authenticate_ssh_key(user, &fingerprint, self.client())
            .await
        {
            Ok(_) => Ok(Auth::Accept),
            Err(_) => Ok(Auth::reject()),
        }
    }

    /// The client signed with the key (russh checked the signature): log in if the key is
    /// registered for `user`.
    async fn auth_publickey(&mut self, user: &str, key: VerifiedPublicKey<'_>) -> Result<Auth, Self::Error> {
        let client = self.client();
        let fingerprint = key.public_key.fingerprint(HashAlg::Sha256).to_string();
        match self
            .app
            .auth
            .authenticate_ssh_key(user, &fingerprint, client)
            .await
        {
            Ok(principal) => {
                let login = Login {
                    login: user.to_string(),
                    credential: Credential::SshKey(fingerprint),
                    client,
                };
                Ok(self.log_in(login, principal))
            }
            Err(error @ Error::Unavailable(_)) => {
                tracing::warn!(login = user, peer = %self.peer, %error, "sftp: key not checked");
                Ok(not_now())
            }
            Err(error) => {
                tracing::info!(login = user, peer = %self.peer, %fingerprint, %error, "sftp: key refused");
                Ok(Auth::reject())
            }
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let running = self.sessions.load(std::sync::atomic::Ordering::Acquire);
        if self.login.is_some() && self.channels.len() + running < CHANNELS_PER_CONNECTION {
            self.channels.insert(channel.id(), channel);
            reply.accept().await;
        } else {
            reply.reject(russh::ChannelOpenFailure::ResourceShortage).await;
        }
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let opened = self.channels.remove(&channel);
        match (name, opened, &self.login) {
            ("sftp", Some(opened), Some((login, principal))) => {
                session.channel_success(channel)?;
                let app = self.app.clone();
                let login = login.clone();
                let principal = principal.clone();
                let peer = self.peer;
                let budget = self.shared.budget.clone();
                let sessions = self.sessions.clone();
                let running = self.shared.running.clone();
                let handle = session.handle();
                sessions.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                running.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                tokio::spawn(async move {
                    let stream = opened.into_stream();
                    // OpenSSH's sftp-server exits 0 when its client closes; the status goes
                    // out before our EOF and CLOSE, through the same queue (RFC 4254 §6.10).
                    // A connection already gone cannot take it, and needs nothing more.
                    let ending = async {
                        let _ = handle.exit_status_request(channel, 0).await;
                    };
                    if let Err(error) = session::run(app, login, principal, stream, budget, ending).await {
                        tracing::debug!(%error, %peer, "sftp: session ended");
                    }
                    sessions.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
                    running.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
                });
            }
            _ => session.channel_failure(channel)?,
        }
        Ok(())
    }

    async fn shell_request(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        session.channel_failure(channel)?;
        Ok(())
    }

    /// A channel closed before it ran a session (rclone's exec probes) no longer counts.
    async fn channel_close(&mut self, channel: ChannelId, _session: &mut Session) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        session.channel_failure(channel)?;
        Ok(())
    }
}
