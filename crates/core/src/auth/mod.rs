//! Authentication: every credential of every protocol becomes a `Principal` here.
//!
//! - `authenticate_password(login, secret)`: Basic-auth protocols (REST, WebDAV, SFTP). The
//!   secret is the user's password or a personal access token of that same login.
//! - `authenticate_bearer(token)`: `Authorization: Bearer` (PATs).
//! - `authenticate_ssh_key(login, fingerprint)`: SFTP public-key logins.
//!
//! Verified credentials are cached in memory (a keyed hash of login and password, or a token
//! id, mapped to the user and token rows), so a request usually costs no Argon2id check and
//! no database read. Revocation stays immediate on every node through the **auth epoch**: a
//! counter that every change ending a credential's validity bumps in its own transaction
//! (revocation, lock, deletion, password or profile change, failed login). Each server polls
//! it every `EPOCH_POLL`; a cache entry counts only if it was filled under the current epoch
//! and a poll started less than `EPOCH_FRESH` ago (else every request reads the database).
//! A change is acknowledged only `PROPAGATION` after its commit (`settle`), longer than
//! `EPOCH_FRESH`, so any request arriving after the acknowledgement, on any node, sees it.

pub mod oidc;
pub mod password;
pub mod pat;
pub mod permission;
pub mod principal;
pub mod rate;
pub mod scope;
pub mod sessions;
pub mod throttle;
pub mod usage;
pub mod vault;

use cells_store::{GrantId, NodeId, TokenId, UserId};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use cells_store::{NewToken, Store, Suspension, Token, TokenKind, User};

use crate::error::{Error, Result};
use crate::files::Tree;
use password::Hasher;
use pat::PatKey;
use principal::{Principal, ScopeGrant, Via};
use scope::Scope;
use throttle::Throttle;
use usage::TokenUsage;

/// How often a server reads the auth epoch.
pub const EPOCH_POLL: Duration = Duration::from_millis(50);
/// A cached credential is trusted only if an epoch poll started at most this long ago.
const EPOCH_FRESH: Duration = Duration::from_millis(100);
/// How long a change waits after its commit before it is acknowledged.
pub const PROPAGATION: Duration = Duration::from_millis(150);

/// Cells' rule: password logins stop after this many failed ones in a row.
pub const LOCK_AFTER_FAILURES: i64 = 10;

/// The suspension policy of `limits`: `LOCK_AFTER_FAILURES` failed logins in a row suspend
/// password verifications for `login-suspension`, doubling up to `login-suspension-max`.
pub fn suspension(limits: &crate::config::Limits) -> Suspension {
    Suspension {
        lock_after: LOCK_AFTER_FAILURES,
        first: limits.login_suspension.as_secs() as i64,
        longest: limits.login_suspension_max.as_secs() as i64,
    }
}
/// How long a verified password is remembered (absolute, not sliding).
const CACHE_TTL: Duration = Duration::from_secs(5 * 60);
const CACHE_MAX_ENTRIES: usize = 10_000;
/// Longest token lifetime or window we accept: ten years.
pub const MAX_TOKEN_SECONDS: i64 = 10 * 365 * 24 * 3600;

/// Where a credential was presented: recorded as a token's last use, and used for throttling.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    pub protocol: &'static str,
    pub address: IpAddr,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum CacheKey {
    /// Keyed hash of login ‖ 0 ‖ password.
    Password([u8; 32]),
    Token(TokenId),
    /// A user named by an access token.
    User(UserId),
    /// Keyed hash of login ‖ 0 ‖ SSH key fingerprint.
    SshKey([u8; 32]),
}

/// Grants revoked recently enough for their access tokens to be unexpired, as of an epoch.
struct RevokedGrants {
    epoch: Option<i64>,
    ids: std::collections::HashSet<GrantId>,
}

/// A verified credential: the rows it was checked against, and under which epoch.
struct Cached {
    user: User,
    token: Option<Token>,
    epoch: i64,
    until: Instant,
}

/// The last auth epoch seen, and when the poll that saw it started.
struct EpochView {
    value: i64,
    polled_at: Option<Instant>,
}

pub struct Authenticator {
    store: Store,
    hasher: Hasher,
    pat_key: PatKey,
    throttle: Throttle,
    usage: TokenUsage,
    /// Per-process random key for cache entries: a memory dump yields no cheap offline guesses.
    cache_key: hmac::Key,
    cache: Mutex<HashMap<CacheKey, Cached>>,
    epoch: Mutex<EpochView>,
    cache_hits: std::sync::atomic::AtomicU64,
    oidc: std::sync::Arc<oidc::Oidc>,
    revoked: Mutex<RevokedGrants>,
    /// When failed logins suspend password verifications, and for how long.
    suspension: Suspension,
    /// How long a wrong password's refusal takes (reservation, verification, count).
    refusals: password::Typical,
    /// One verification at a time per (login, password).
    turns: Turns,
    /// Seals and opens tokens' S3 secrets.
    vault: std::sync::Arc<vault::Vault>,
}

/// A reserved password verification (`Store::reserve_login_attempt`), settled once: as a
/// failure or a success, or, when dropped unsettled (the request was cancelled, or failed
/// before the outcome was recorded), as a failure, from a task of its own.
struct Attempt {
    store: Store,
    user: UserId,
    policy: Suspension,
    settled: bool,
}

impl Attempt {
    fn new(store: Store, user: UserId, policy: Suspension) -> Attempt {
        Attempt {
            store,
            user,
            policy,
            settled: false,
        }
    }

    async fn failed(&mut self) -> Result<cells_store::FailureCount> {
        self.settled = true;
        Ok(self.store.record_login_failure(self.user, self.policy).await?)
    }

    /// `false` when the account was locked or suspended meanwhile.
    async fn succeeded(&mut self) -> Result<bool> {
        self.settled = true;
        Ok(self.store.record_login_success(self.user).await?)
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let (store, user, policy) = (self.store.clone(), self.user, self.policy);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = store.record_login_failure(user, policy).await {
                    tracing::warn!(%error, "could not settle a cancelled login attempt");
                }
            });
        }
    }
}

/// One verification at a time per (login, password) key: the others wait, then take the
/// first one's success from its turn. The credential cache cannot carry it on its own: an
/// epoch poll in between makes the entry stale, and every waiter would verify again.
#[derive(Default)]
struct Turns(Mutex<HashMap<[u8; 32], Turn>>);

/// One key's turn: whoever holds it verifies; it keeps the last success for those who waited.
type Turn = Arc<tokio::sync::Mutex<Option<Verified>>>;

/// A successful verification, and when it ended.
struct Verified {
    user: User,
    at: Instant,
}

impl Turns {
    async fn take(&self, key: [u8; 32]) -> tokio::sync::OwnedMutexGuard<Option<Verified>> {
        let lock = {
            let mut turns = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if turns.len() >= CACHE_MAX_ENTRIES {
                // Keep only the keys someone holds or waits for.
                turns.retain(|_, lock| Arc::strong_count(lock) > 1);
            }
            turns.entry(key).or_default().clone()
        };
        lock.lock_owned().await
    }
}

/// How a token expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Hard limit: valid for this many seconds from creation.
    Hard(i64),
    /// Auto refresh: valid while used at least once every this many seconds.
    Sliding(i64),
}

/// A new token's secrets, shown once.
pub struct MintedToken {
    /// The token value (`cpat_…`).
    pub value: String,
    /// Its own S3 key pair (personal tokens only).
    pub s3: Option<S3Key>,
}

pub struct S3Key {
    pub access_key_id: String,
    pub secret: String,
}

/// What `create_token` needs.
pub struct TokenRequest<'a> {
    pub user: &'a User,
    pub kind: TokenKind,
    pub label: &'a str,
    pub expiry: Expiry,
    /// Absolute cap on a sliding token's life, in seconds from creation.
    pub max_lifetime: Option<i64>,
    pub scopes: &'a [Scope],
    pub created_by: &'a str,
}

/// The one answer to a refused password login, whatever the reason.
fn wrong_credentials() -> Error {
    Error::Unauthenticated("wrong login or password, or too many attempts".into())
}

fn bad_token() -> Error {
    Error::Unauthenticated("invalid or expired token".into())
}

impl Authenticator {
    pub fn new(
        store: Store,
        pat_key: PatKey,
        oidc: std::sync::Arc<oidc::Oidc>,
        vault: std::sync::Arc<vault::Vault>,
        suspension: Suspension,
    ) -> Authenticator {
        let mut cache_secret = [0u8; 32];
        crate::random::fill(&mut cache_secret);
        Authenticator {
            store,
            hasher: Hasher::default(),
            pat_key,
            throttle: Throttle::default(),
            usage: TokenUsage::default(),
            cache_key: hmac::Key::new(hmac::HMAC_SHA256, &cache_secret),
            cache: Mutex::new(HashMap::new()),
            epoch: Mutex::new(EpochView {
                value: 0,
                polled_at: None,
            }),
            cache_hits: std::sync::atomic::AtomicU64::new(0),
            oidc,
            revoked: Mutex::new(RevokedGrants {
                epoch: None,
                ids: Default::default(),
            }),
            suspension,
            refusals: password::Typical::default(),
            turns: Turns::default(),
            vault,
        }
    }

    pub fn hasher(&self) -> &Hasher {
        &self.hasher
    }

    pub fn usage(&self) -> &TokenUsage {
        &self.usage
    }

    /// Basic-auth credentials: the password of `login`, or a personal access token of `login`.
    pub async fn authenticate_password(
        &self,
        login: &str,
        secret: &str,
        client: Client,
    ) -> Result<Principal> {
        self.throttle.check(client.address).map_err(Error::Throttled)?;
        // A database known down answers "unavailable" now, not after the pool's timeout.
        self.store.answering()?;
        if pat::looks_like_token(secret) || looks_like_jwt(secret) {
            let principal = if looks_like_jwt(secret) {
                self.verify_access_token(secret, client).await?
            } else {
                self.verify_token(secret, Some(login), client).await?
            };
            if principal.login != login {
                self.throttle.failed(client.address);
                return Err(Error::Unauthenticated(
                    "this token belongs to another login".into(),
                ));
            }
            return Ok(principal);
        }
        let user = self.verify_password(login, secret, client).await?;
        Ok(Principal::from_user(&user, Via::Password, None))
    }

    /// An SSH public key of `login` (SFTP), by its `SHA256:` fingerprint; russh has checked
    /// the signature that proves the client holds the private key. A key that is not
    /// registered is no guess at a secret (clients offer each key they have), so it counts
    /// toward neither the lockout nor the throttle.
    pub async fn authenticate_ssh_key(
        &self,
        login: &str,
        fingerprint: &str,
        client: Client,
    ) -> Result<Principal> {
        self.throttle.check(client.address).map_err(Error::Throttled)?;
        // A database known down answers "unavailable" now, not after the pool's timeout.
        self.store.answering()?;
        let cache_key = CacheKey::SshKey(self.cache_key(login, fingerprint));
        let epoch = self.current_epoch();
        let user = match epoch.and_then(|epoch| self.cached(&cache_key, epoch)) {
            Some((user, _)) => user,
            None => {
                let refused = || Error::Unauthenticated("this key is not registered for this login".into());
                let user = self.store.find_user_by_login(login).await?.ok_or_else(refused)?;
                if self.store.find_ssh_key(user.id, fingerprint).await?.is_none() {
                    return Err(refused());
                }
                if let Some(epoch) = epoch {
                    self.remember(cache_key, &user, None, epoch);
                }
                user
            }
        };
        if user.locked {
            return Err(Error::AccountLocked);
        }
        Ok(Principal::from_user(&user, Via::SshKey, None))
    }

    /// `Authorization: Bearer` credentials.
    pub async fn authenticate_bearer(&self, token: &str, client: Client) -> Result<Principal> {
        self.throttle.check(client.address).map_err(Error::Throttled)?;
        // A database known down answers "unavailable" now, not after the pool's timeout.
        self.store.answering()?;
        if pat::looks_like_token(token) {
            return self.verify_token(token, None, client).await;
        }
        if looks_like_jwt(token) {
            return self.verify_access_token(token, client).await;
        }
        self.throttle.failed(client.address);
        Err(Error::Unauthenticated("unknown kind of bearer token".into()))
    }

    /// An access token of our provider: signature, expiry and audience checked locally, the
    /// grant against the revocation list, the user against the cache or the database.
    async fn verify_access_token(&self, token: &str, client: Client) -> Result<Principal> {
        let outcome = self.verify_access_token_inner(token).await;
        if matches!(outcome, Err(Error::Unauthenticated(_))) {
            self.throttle.failed(client.address);
        }
        outcome
    }

    async fn verify_access_token_inner(&self, token: &str) -> Result<Principal> {
        let claims = self.oidc.verify_access(token).ok_or_else(bad_token)?;
        let grant_id = claims.grant_id().ok_or_else(bad_token)?;
        let user_id = claims
            .user_id()
            .ok_or_else(|| Error::Unauthenticated("a client's own token acts for no user".into()))?;
        let epoch = self.current_epoch();
        if self.is_grant_revoked(grant_id, epoch).await? {
            return Err(bad_token());
        }
        let key = CacheKey::User(user_id);
        let user = match epoch.and_then(|e| self.cached(&key, e)) {
            Some((user, _)) => user,
            None => {
                let user = self.store.find_user(user_id).await?.ok_or_else(bad_token)?;
                if let Some(epoch) = epoch {
                    self.remember(key, &user, None, epoch);
                }
                user
            }
        };
        if user.locked {
            return Err(Error::AccountLocked);
        }
        Ok(Principal::from_user(&user, Via::AccessToken { grant_id }, None))
    }

    /// Whether a grant was revoked: from the in-memory list when it is current, else from
    /// the database.
    pub async fn is_grant_revoked(&self, grant_id: GrantId, epoch: Option<i64>) -> Result<bool> {
        if let Some(epoch) = epoch {
            let revoked = self.revoked.lock().unwrap_or_else(|e| e.into_inner());
            if revoked.epoch == Some(epoch) {
                return Ok(revoked.ids.contains(&grant_id));
            }
        }
        Ok(self
            .store
            .find_grant(grant_id)
            .await?
            .is_some_and(|g| g.revoked_at.is_some()))
    }

    /// `is_grant_revoked` with this server's current epoch (no database read when fresh).
    pub async fn is_grant_revoked_now(&self, grant_id: GrantId) -> Result<bool> {
        self.is_grant_revoked(grant_id, self.current_epoch()).await
    }

    /// The per-address throttle, for credentials checked outside this type (OAuth clients).
    pub fn throttle(&self) -> &Throttle {
        &self.throttle
    }

    pub fn oidc(&self) -> &oidc::Oidc {
        &self.oidc
    }

    /// Check a login and password.
    ///
    /// A verification is reserved before it runs, per address (`Throttle::reserve`) and per
    /// user (`Store::reserve_login_attempt`, atomic on every node), so a burst of guesses gets
    /// no more verifications than the policy allows; the lock is re-checked after a good one.
    /// A reservation is settled whatever happens: a verification cut short (the client gone,
    /// an error) counts as a failure (`Attempt`), and a count left at the limit by a crash
    /// becomes a suspension at the next attempt instead of a lock nobody lifts.
    /// Concurrent checks of the same login and password wait for one another (`Turns`), so a
    /// client opening many connections at once costs one verification, not a reservation each.
    /// An unknown login, a locked or suspended account and a wrong password get the same
    /// answer, after the same time: a refusal made without a verification waits as long as a
    /// wrong password's whole path usually takes (never by hashing a dummy, which would hand
    /// an attacker free CPU).
    pub async fn verify_password(&self, login: &str, password: &str, client: Client) -> Result<User> {
        let started = Instant::now();
        self.throttle.check(client.address).map_err(Error::Throttled)?;
        // A database known down answers "unavailable" now, not after the pool's timeout.
        self.store.answering()?;
        let key = self.cache_key(login, password);
        let cache_key = CacheKey::Password(key);
        if let Some(user) = self.cached_password(&cache_key) {
            return Ok(user);
        }
        let arrived = Instant::now();
        let mut turn = self.turns.take(key).await;
        if let Some(verified) = turn.as_ref()
            && verified.at >= arrived
        {
            // Verified by the check this one waited for, which ended after this request came:
            // both presented the same password at the same time.
            return Ok(verified.user.clone());
        }
        // Taken before the rows are read: a change committed in between makes the entry stale
        // at once instead of letting it pass for current.
        let epoch = self.current_epoch();
        if let Some(epoch) = epoch
            && let Some((user, _)) = self.cached(&cache_key, epoch)
        {
            return Ok(user);
        }
        let _address = self.throttle.reserve(client.address).map_err(Error::Throttled)?;
        let user = self.store.find_user_by_login(login).await?;
        let reserved = match &user {
            Some(user) if !user.locked => {
                self.store
                    .reserve_login_attempt(user.id, self.suspension.lock_after)
                    .await?
            }
            _ => false,
        };
        let Some(user) = user.clone().filter(|_| reserved) else {
            self.throttle.failed(client.address);
            if let Some(user) = &user
                && !user.locked
                && user.failed_logins >= self.suspension.lock_after
                && user.suspended_until <= cells_store::now()
            {
                // At the limit without a suspension: attempts in flight, or ones a crash left
                // unsettled. Suspend now, so that the count cannot stay there forever.
                let _ = self.store.record_login_failure(user.id, self.suspension).await;
            }
            tracing::info!(login, protocol = client.protocol, address = %client.address,
                "login refused without verification (unknown, locked or suspended)");
            return Err(self.refused_after(started).await);
        };
        let mut attempt = Attempt::new(self.store.clone(), user.id, self.suspension);
        if !self.hasher.verify(password, &user.password_hash).await? {
            self.throttle.failed(client.address);
            let count = attempt.failed().await?;
            tracing::info!(login = %user.login, failures = count.failed_logins, protocol = client.protocol,
                address = %client.address, "failed login");
            if let Some(until) = count.suspended_until {
                tracing::warn!(login = %user.login, until, "password logins suspended after failed logins");
            }
            self.refusals.measured(started.elapsed());
            return Err(wrong_credentials());
        }
        if !attempt.succeeded().await? {
            // Locked or suspended while this verification ran.
            return Err(wrong_credentials());
        }
        let mut user = user;
        user.failed_logins = 0;
        if let Some(epoch) = epoch {
            self.remember(cache_key, &user, None, epoch);
        }
        *turn = Some(Verified {
            user: user.clone(),
            at: Instant::now(),
        });
        Ok(user)
    }

    /// A password verified before, if the cache vouches for it now.
    fn cached_password(&self, key: &CacheKey) -> Option<User> {
        let epoch = self.current_epoch()?;
        self.cached(key, epoch).map(|(user, _)| user)
    }

    /// The refusal of a login that was not verified, once a wrong password's refusal would
    /// usually have come.
    async fn refused_after(&self, started: Instant) -> Error {
        tokio::time::sleep_until((started + self.refusals.get()).into()).await;
        wrong_credentials()
    }

    /// The auth epoch, if a poll started recently enough for cached entries to be trusted.
    fn current_epoch(&self) -> Option<i64> {
        let view = self.epoch.lock().unwrap_or_else(|e| e.into_inner());
        view.polled_at
            .filter(|at| at.elapsed() <= EPOCH_FRESH)
            .map(|_| view.value)
    }

    /// Read the auth epoch; run every `EPOCH_POLL` by a server. A failed read leaves the view
    /// to age, so the cache falls out of use until the database answers again.
    pub async fn poll_epoch(&self) {
        let started = Instant::now();
        match self.store.auth_epoch().await {
            Ok(value) => {
                let current = self.revoked.lock().unwrap_or_else(|e| e.into_inner()).epoch;
                if current != Some(value) {
                    // The list first, then the epoch that vouches for it.
                    let since = cells_store::now() - self.oidc.lifespans.access - 60;
                    match self.store.revoked_grants_since(since).await {
                        Ok(ids) => {
                            *self.revoked.lock().unwrap_or_else(|e| e.into_inner()) = RevokedGrants {
                                epoch: Some(value),
                                ids: ids.into_iter().collect(),
                            };
                        }
                        Err(error) => {
                            tracing::warn!(%error, "cannot read revoked grants; credential cache off");
                            return;
                        }
                    }
                    // Keys may have been rotated too.
                    if let Err(error) = self.oidc.keys.reload().await {
                        tracing::warn!(%error, "cannot reload signing keys");
                    }
                }
                let mut view = self.epoch.lock().unwrap_or_else(|e| e.into_inner());
                if view.polled_at.is_none_or(|at| at < started) {
                    *view = EpochView {
                        value,
                        polled_at: Some(started),
                    };
                }
            }
            Err(error) => tracing::warn!(%error, "cannot read the auth epoch; credential cache off"),
        }
    }

    /// Wait until every server has had time to see a change just committed (see module docs).
    pub async fn settle(&self) {
        tokio::time::sleep(PROPAGATION).await;
    }

    fn cache_key(&self, login: &str, secret: &str) -> [u8; 32] {
        let mut context = hmac::Context::with_key(&self.cache_key);
        context.update(login.as_bytes());
        context.update(&[0]);
        context.update(secret.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(context.sign().as_ref());
        out
    }

    /// The rows a credential was verified against, if still current under `epoch`.
    fn cached(&self, key: &CacheKey, epoch: i64) -> Option<(User, Option<Token>)> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let hit = cache
            .get(key)
            .filter(|entry| entry.epoch == epoch && entry.until > Instant::now() && !entry.user.locked)
            .map(|entry| (entry.user.clone(), entry.token.clone()));
        if hit.is_some() {
            self.cache_hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        hit
    }

    /// Credentials served from the cache so far (for metrics and tests).
    pub fn cache_hits(&self) -> u64 {
        self.cache_hits.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn remember(&self, key: CacheKey, user: &User, token: Option<&Token>, epoch: i64) {
        let now = Instant::now();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_MAX_ENTRIES {
            cache.retain(|_, entry| entry.until > now);
            if cache.len() >= CACHE_MAX_ENTRIES {
                cache.clear();
            }
        }
        let entry = Cached {
            user: user.clone(),
            token: token.cloned(),
            epoch,
            until: now + CACHE_TTL,
        };
        cache.insert(key, entry);
    }

    /// Drop every cached credential of a user (password change, lock, delete).
    pub fn forget_user(&self, user_id: UserId) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|_, entry| entry.user.id != user_id);
    }

    /// Check a personal or document token value. A wrong one never counts toward the owner's
    /// lockout (anyone can type a token), only toward the address throttle.
    async fn verify_token(&self, value: &str, login: Option<&str>, client: Client) -> Result<Principal> {
        let outcome = self.verify_token_inner(value, login, client).await;
        if matches!(outcome, Err(Error::Unauthenticated(_))) {
            self.throttle.failed(client.address);
        }
        outcome
    }

    /// With `login`, the token must be that user's: checked before its use is recorded, so
    /// a token presented under another login neither slides nor shows as used.
    async fn verify_token_inner(
        &self,
        value: &str,
        login: Option<&str>,
        client: Client,
    ) -> Result<Principal> {
        // Checksum first: a forged or mistyped value costs no database access.
        let parsed = self.pat_key.parse(value).ok_or_else(bad_token)?;
        let (token, user) = self.token_rows(parsed.id).await?;
        if !parsed.matches(&token.secret_hash) {
            return Err(bad_token());
        }
        if login.is_some_and(|login| login != user.login) {
            return Err(Error::Unauthenticated(
                "this token belongs to another login".into(),
            ));
        }
        self.token_principal(token, user, client).await
    }

    /// A personal or document token, its owner and when it expires, if `value` is live now:
    /// read from the database (introspection answers for other servers), with nothing
    /// recorded: looking at a token is not a use of it, so it neither slides nor shows as used.
    pub async fn inspect_token(&self, value: &str) -> Result<Option<(Token, User, i64)>> {
        let Some(parsed) = self.pat_key.parse(value) else {
            return Ok(None);
        };
        let Some((token, user)) = self.store.find_token_and_user(parsed.id).await? else {
            return Ok(None);
        };
        let expires_at = self.usage.effective_expiry(&token);
        let live = parsed.matches(&token.secret_hash) && !user.locked && cells_store::now() <= expires_at;
        Ok(live.then_some((token, user, expires_at)))
    }

    /// A personal token named by its id alone, for a request whose signature was made with
    /// the token's own S3 secret (so possession is proven). Same checks as a token value.
    pub async fn authenticate_token_id(&self, id: TokenId, client: Client) -> Result<Principal> {
        self.throttle.check(client.address).map_err(Error::Throttled)?;
        // A database known down answers "unavailable" now, not after the pool's timeout.
        self.store.answering()?;
        let outcome = async {
            let (token, user) = self.token_rows(id).await?;
            if token.s3_secret.is_none() {
                return Err(bad_token());
            }
            self.token_principal(token, user, client).await
        }
        .await;
        if matches!(outcome, Err(Error::Unauthenticated(_))) {
            self.throttle.failed(client.address);
        }
        outcome
    }

    /// The S3 secret of a token, to check a signature with; no other check and no use
    /// recorded (nothing is proven yet). `None` for an unknown or expired token.
    pub async fn token_s3_secret(&self, id: TokenId) -> Result<Option<String>> {
        let sealed = match self.token_rows(id).await {
            Ok((token, _)) if cells_store::now() <= self.usage.effective_expiry(&token) => token.s3_secret,
            Ok(_) | Err(Error::Unauthenticated(_)) => None,
            Err(other) => return Err(other),
        };
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let plain = self
            .vault
            .unseal(&pat::s3_secret_name(id), &sealed)
            .map_err(Error::internal)?;
        String::from_utf8(plain).map(Some).map_err(Error::internal)
    }

    /// A token's row and its owner, from the cache when it is current.
    async fn token_rows(&self, id: TokenId) -> Result<(Token, User)> {
        let now = cells_store::now();
        let key = CacheKey::Token(id);
        let epoch = self.current_epoch();
        match epoch.and_then(|epoch| self.cached(&key, epoch)) {
            // Expired by our view: another node may have slid it, so ask the database.
            Some((user, Some(token))) if now <= self.usage.effective_expiry(&token) => Ok((token, user)),
            _ => {
                let (token, user) = self.store.find_token_and_user(id).await?.ok_or_else(bad_token)?;
                if let Some(epoch) = epoch {
                    self.remember(key, &user, Some(&token), epoch);
                }
                Ok((token, user))
            }
        }
    }

    /// The checks after possession is proven: expiry, lock, scopes; the use is recorded.
    async fn token_principal(&self, token: Token, user: User, client: Client) -> Result<Principal> {
        let now = cells_store::now();
        if now > self.usage.effective_expiry(&token) {
            return Err(bad_token());
        }
        if user.locked {
            return Err(Error::AccountLocked);
        }
        let grants = self.resolve_scopes(&token).await?;
        if let Some(due) = self
            .usage
            .record(&token, now, client.protocol, client.address.to_string())
        {
            self.usage.write(&self.store, vec![due]).await;
        }
        Ok(Principal::from_user(
            &user,
            Via::PersonalToken { token_id: token.id },
            grants,
        ))
    }

    /// Scopes as grants on the current tree: a moved node is followed by its UUID; a deleted
    /// one grants nothing.
    async fn resolve_scopes(&self, token: &Token) -> Result<Option<Vec<ScopeGrant>>> {
        if token.scopes.trim().is_empty() {
            return Ok(None);
        }
        let scopes = Scope::parse_list(&token.scopes)
            .map_err(|_| Error::internal(anyhow::anyhow!("token {} has unreadable scopes", token.id)))?;
        let mut grants = Vec::with_capacity(scopes.len());
        for scope in scopes {
            let chain: Vec<NodeId> = self
                .store
                .ancestry(scope.node)
                .await?
                .iter()
                .map(|n| n.id)
                .collect();
            if !chain.is_empty() {
                grants.push(ScopeGrant { scope, chain });
            }
        }
        Ok(Some(grants))
    }

    /// Make a token for `request.user`. Returns the row and the secrets, which are shown once.
    /// Every scope must name a node the user can reach now.
    pub async fn create_token(&self, tree: &Tree, request: TokenRequest<'_>) -> Result<(Token, MintedToken)> {
        let seconds = match request.expiry {
            Expiry::Hard(s) | Expiry::Sliding(s) => s,
        };
        if !(1..=MAX_TOKEN_SECONDS).contains(&seconds) {
            return Err(Error::invalid("expiry", "must be between 1 second and 10 years"));
        }
        if let Some(cap) = request.max_lifetime
            && !(1..=MAX_TOKEN_SECONDS).contains(&cap)
        {
            return Err(Error::invalid(
                "max_lifetime",
                "must be between 1 second and 10 years",
            ));
        }
        if request.label.chars().count() > 256 || request.label.chars().any(char::is_control) {
            return Err(Error::invalid(
                "label",
                "at most 256 characters, no control characters",
            ));
        }
        let owner = Principal::acting_for(request.user);
        for scope in request.scopes {
            if tree.stat_by_id(&owner, scope.node).await.is_err() {
                return Err(Error::invalid(
                    "scope",
                    format!(
                        "node {} does not exist or is not accessible to {}",
                        scope.node, request.user.login
                    ),
                ));
            }
        }
        let now = cells_store::now();
        let (expires_at, auto_refresh) = match request.expiry {
            Expiry::Hard(s) => (now + s, 0),
            Expiry::Sliding(s) => (now + s, s),
        };
        let max_expires_at = request.max_lifetime.map(|cap| now + cap);
        let expires_at = max_expires_at.map_or(expires_at, |cap| expires_at.min(cap));
        let (value, text) = self.pat_key.mint();
        // A personal token also gets an S3 key pair of its own, so that S3 clients need not
        // send the token itself as their access key (`pat::s3_access_key_id`).
        let s3 = (request.kind == TokenKind::Personal).then(|| S3Key {
            access_key_id: pat::s3_access_key_id(value.id),
            secret: pat::mint_s3_secret(),
        });
        let sealed_s3 = s3.as_ref().map(|key| {
            self.vault
                .seal(&pat::s3_secret_name(value.id), key.secret.as_bytes())
        });
        let token = self
            .store
            .create_token(NewToken {
                id: value.id,
                user_id: request.user.id,
                kind: request.kind,
                label: request.label,
                secret_hash: &value.secret_hash(),
                scopes: &Scope::join(request.scopes),
                auto_refresh,
                expires_at,
                max_expires_at,
                created_by: request.created_by,
                s3_secret: sealed_s3.as_deref(),
            })
            .await?;
        Ok((token, MintedToken { value: text, s3 }))
    }

    /// Revoke a token: it fails on the next request, on every node.
    pub async fn revoke_token(&self, id: TokenId) -> Result<()> {
        self.store.delete_token(id).await?;
        self.usage.forget(id);
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&CacheKey::Token(id));
        self.settle().await;
        Ok(())
    }

    /// Write token uses that are due (all of them at shutdown).
    pub async fn flush_usage(&self, all: bool) {
        let due = self.usage.due(all);
        self.usage.write(&self.store, due).await;
    }

    /// Share the address throttle's failures with the other nodes (`Throttle::share`). Quiet
    /// when the database is down: its watcher says so, and this runs four times a second.
    pub async fn share_throttle(&self) {
        if let Err(error) = self.throttle.share(&self.store).await {
            tracing::debug!(%error, "could not share the address throttle's failures; will retry");
        }
    }
}

/// Three base64url parts: a JWT (ours start with `eyJ`, the encoding of `{"`).
pub fn looks_like_jwt(text: &str) -> bool {
    text.starts_with("eyJ") && text.split('.').count() == 3
}
