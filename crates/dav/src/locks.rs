//! WebDAV locks (RFC 4918 §6–7) for dav-server, kept in the database, so that a lock granted
//! by one node holds on every node. Which locks conflict follows dav-server's own in-memory
//! lock system (`MemLs`), over a flat list of locks instead of a tree; unlike it, locks time out.
//!
//! One `DbLocks` serves one request of one user: the live locks are read once, when first
//! needed, and kept current with what the request itself locks and unlocks. Taking a lock reads
//! them again in the store's one-at-a-time turn, so two nodes never grant conflicting locks.
//!
//! `/personal-files` is each user's own tree, so a lock there belongs to its user's namespace
//! and meets only that user's requests; locks in workspaces (`/common-files`, `/<slug>`) are in
//! one namespace shared by everyone who may reach them. (A
//! lock on the top level `/` is in the user's namespace too: it covers their view only.)
//!
//! Limits, so that a lock cannot become a denial of service:
//! - a grant or refresh lasts at most `MAX_GRANT` (a missing or infinite `Timeout` gets it),
//!   and a lock lives at most `MAX_LIFE` from its creation, however often refreshed;
//! - a user holds at most `MAX_LOCKS_PER_USER` live locks;
//! - a lock token works only for the user who took it (dav-server's checks compare the
//!   principal), an UNLOCK with another user's token is refused unless an administrator
//!   breaks the lock, and `DAV:lockdiscovery` shows other users' tokens as `HIDDEN_TOKEN`.
//!
//! Which locks may be taken at all (write access; no lock on a workspace root or on a shared
//! collection but an administrator's) is decided before, in `dav::precheck` and
//! `dav::collection_lock_refusal`. Every other protocol meets these locks in `Tree`
//! (`cells_core::locks::in_the_way`).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cells_core::SharedApp;
use cells_core::locks::Locks;
use cells_core::records::StoredLock;
use dav_server::davpath::DavPath;
use dav_server::ls::{DavLock, DavLockSystem, LsFuture};
use futures_util::FutureExt;
use uuid::Uuid;
use xmltree::Element;

use cells_core::auth::principal::Principal;
use cells_core::files::path::{TreePath, WorkspaceName};

/// Where WebDAV is mounted: lock paths are stored below it.
pub const PREFIX: &str = "/dav";
/// Longest grant or refresh.
pub const MAX_GRANT: Duration = Duration::from_secs(600);
/// Longest life of a lock, refreshes included.
pub const MAX_LIFE: Duration = Duration::from_secs(24 * 3600);
/// Live locks one user may hold.
pub const MAX_LOCKS_PER_USER: usize = 100;
/// What `DAV:lockdiscovery` shows in place of another user's lock token.
pub const HIDDEN_TOKEN: &str = "opaquelocktoken:held-by-another-user";

/// A live lock with its path as segments.
#[derive(Clone)]
struct Held {
    lock: DavLock,
    segs: Vec<Vec<u8>>,
    stored: StoredLock,
}

#[derive(Clone)]
pub struct DbLocks {
    locks: Locks,
    /// The user whose request this is: the namespace of their personal files' locks.
    user: String,
    /// Their login: the principal of the locks they take.
    login: String,
    /// An administrator may break (UNLOCK) anyone's lock.
    is_admin: bool,
    /// The live locks as this request sees them; `None` until first needed.
    held: Arc<tokio::sync::Mutex<Option<Vec<Held>>>>,
}

impl std::fmt::Debug for DbLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbLocks")
    }
}

impl DbLocks {
    pub fn new(app: &SharedApp, principal: &Principal) -> Box<DbLocks> {
        Box::new(DbLocks {
            locks: app.locks(),
            user: principal.user_id().to_string(),
            login: principal.login().to_string(),
            is_admin: principal.is_admin(),
            held: Arc::default(),
        })
    }

    /// Whether this request's user took `lock`.
    fn owns(&self, lock: &DavLock) -> bool {
        lock.principal.as_deref() == Some(self.login.as_str())
    }

    /// `lock` as this user may see it: another user's token is not theirs to know.
    fn shown(&self, lock: &DavLock) -> DavLock {
        let mut shown = lock.clone();
        if !self.owns(lock) {
            shown.token = HIDDEN_TOKEN.to_string();
        }
        shown
    }

    /// Where a lock on `segs` lives: this user's own view of `personal-files`, or the one
    /// namespace of the workspaces (their slugs keep them apart).
    fn namespace_of(&self, segs: &[Vec<u8>]) -> &str {
        match segs.first() {
            Some(first) if first.as_slice() != WorkspaceName::PersonalFiles.as_str().as_bytes() => "",
            _ => &self.user,
        }
    }

    /// The live locks, read on first use. A database failure is `Err`: callers refuse what
    /// they were asked rather than act as if nothing were locked.
    async fn held(&self) -> Result<tokio::sync::MutexGuard<'_, Option<Vec<Held>>>, ()> {
        let mut held = self.held.lock().await;
        if held.is_none() {
            *held = Some(live(&self.locks, &self.user).await?);
        }
        Ok(held)
    }
}

/// The live locks a request can see, read once, for a listing that shows each entry's
/// `DAV:lockdiscovery`: a PROPFIND of 10,000 entries costs one query, not one per entry.
/// Other users' tokens are already hidden.
#[derive(Default)]
pub struct Discovery(Vec<Held>);

impl Discovery {
    /// The locks on `path` and on its ancestors, as `discover` gives them.
    pub fn along(&self, path: &TreePath) -> impl Iterator<Item = &DavLock> {
        let mut segs: Vec<Vec<u8>> = vec![path.workspace().as_str().as_bytes().to_vec()];
        segs.extend(path.names().iter().map(|n| n.as_bytes().to_vec()));
        along(&self.0, &segs).into_iter().map(|h| &h.lock)
    }
}

impl DbLocks {
    /// This request's view of the live locks (nothing when they cannot be read: `discover`
    /// answers the same).
    pub async fn discovery(&self) -> Discovery {
        match self.held().await {
            Ok(held) => Discovery(
                held.clone()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|mut h| {
                        h.lock = self.shown(&h.lock);
                        h
                    })
                    .collect(),
            ),
            Err(()) => Discovery::default(),
        }
    }
}

/// A timeout as granted: at most `MAX_GRANT`, and never past `MAX_LIFE` after `created`
/// (unix seconds); `None` once that life is over.
fn granted(asked: Option<Duration>, created: i64, now: i64) -> Option<Duration> {
    let left = (created + MAX_LIFE.as_secs() as i64 - now).max(0) as u64;
    let grant = asked
        .unwrap_or(MAX_GRANT)
        .min(MAX_GRANT)
        .min(Duration::from_secs(left));
    (!grant.is_zero()).then_some(grant)
}

async fn live(locks: &Locks, user: &str) -> Result<Vec<Held>, ()> {
    match locks.live(user).await {
        Ok(locks) => Ok(locks.into_iter().filter_map(held_of).collect()),
        Err(error) => {
            if let cells_core::error::Error::Unavailable(_) = error {
                crate::fault::note(crate::fault::Fault::Unavailable);
            }
            tracing::error!(%error, "could not read the WebDAV locks");
            Err(())
        }
    }
}

fn segs_of(path: &DavPath) -> Vec<Vec<u8>> {
    path.as_bytes()
        .split(|&c| c == b'/')
        .filter(|s| !s.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn held_of(stored: StoredLock) -> Option<Held> {
    let mut path = DavPath::new(&format!("{PREFIX}{}", stored.path)).ok()?;
    path.set_prefix(PREFIX).ok()?;
    let lock = DavLock {
        token: stored.token.clone(),
        path: Box::new(path),
        principal: stored.principal.clone(),
        owner: stored.owner.as_deref().and_then(owner_of).map(Box::new),
        timeout_at: stored
            .expires_at
            .map(|at| UNIX_EPOCH + Duration::from_secs(at.max(0) as u64)),
        timeout: stored
            .timeout_seconds
            .map(|s| Duration::from_secs(s.max(0) as u64)),
        shared: stored.shared,
        deep: stored.deep,
    };
    let segs = segs_of(&lock.path);
    Some(Held { lock, segs, stored })
}

fn stored_of(lock: &DavLock, namespace: &str) -> StoredLock {
    let owner = lock.owner.as_deref().and_then(owner_xml);
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    StoredLock {
        token: lock.token.clone(),
        namespace: namespace.to_string(),
        path: lock.path.as_url_string(),
        principal: lock.principal.clone(),
        owner,
        timeout_seconds: lock.timeout.map(|t| t.as_secs() as i64),
        expires_at: lock
            .timeout_at
            .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64),
        shared: lock.shared,
        deep: lock.deep,
        created_at: micros,
    }
}

/// A lock's `DAV:owner` as XML. dav-server names it `D:owner` without binding `D` in the
/// element itself (the answer's root binds it), so it is written without its prefix, in its
/// namespace.
fn owner_xml(owner: &Element) -> Option<String> {
    let mut unprefixed = owner.clone();
    unprefixed.prefix = None;
    let mut xml = Vec::new();
    unprefixed.write(&mut xml).ok()?;
    String::from_utf8(xml).ok()
}

/// The owner element back, named as dav-server names it.
fn owner_of(xml: &str) -> Option<Element> {
    let mut owner = Element::parse(xml.as_bytes()).ok()?;
    owner.prefix = Some("D".to_owned());
    Some(owner)
}

/// The locks on `segs` and on its ancestors, root first, oldest first at each level.
fn along<'a>(held: &'a [Held], segs: &[Vec<u8>]) -> Vec<&'a Held> {
    in_order(held.iter().filter(|h| segs.starts_with(&h.segs)).collect())
}

/// The locks on `segs` and below it, in the same order.
fn below<'a>(held: &'a [Held], segs: &[Vec<u8>]) -> Vec<&'a Held> {
    in_order(held.iter().filter(|h| h.segs.starts_with(segs)).collect())
}

fn in_order(mut locks: Vec<&Held>) -> Vec<&Held> {
    locks.sort_by_key(|h| (h.segs.len(), h.stored.created_at));
    locks
}

/// Whether a lock on the way to `segs` (a deep one above it, any one on it) is in the way:
/// an exclusive lock not held through `tokens`, or shared ones when none is held.
fn check_to_path(
    held: &[Held],
    segs: &[Vec<u8>],
    principal: Option<&str>,
    ignore_principal: bool,
    tokens: &[String],
    shared_ok: bool,
) -> Result<(), DavLock> {
    let mut holds_lock = false;
    let mut first_shared: Option<&DavLock> = None;
    for h in along(held, segs) {
        if h.segs.len() < segs.len() && !h.lock.deep {
            continue;
        }
        let lock = &h.lock;
        if tokens.contains(&lock.token) && (ignore_principal || principal == lock.principal.as_deref()) {
            holds_lock = true;
        } else {
            if !lock.shared {
                return Err(lock.clone());
            }
            if !shared_ok {
                first_shared.get_or_insert(lock);
            }
        }
    }
    match first_shared {
        Some(lock) if !holds_lock => Err(lock.clone()),
        _ => Ok(()),
    }
}

/// Whether a lock on `segs` or below it is in the way (for deep operations).
fn check_from_path(
    held: &[Held],
    segs: &[Vec<u8>],
    principal: Option<&str>,
    ignore_principal: bool,
    tokens: &[String],
    shared_ok: bool,
) -> Result<(), DavLock> {
    for h in below(held, segs) {
        let lock = &h.lock;
        if (!lock.shared || !shared_ok)
            && (!tokens.contains(&lock.token)
                || (!ignore_principal && principal != lock.principal.as_deref()))
        {
            return Err(lock.clone());
        }
    }
    Ok(())
}

impl DavLockSystem for DbLocks {
    fn lock(
        &'_ self,
        path: &DavPath,
        principal: Option<&str>,
        owner: Option<&Element>,
        timeout: Option<Duration>,
        shared: bool,
        deep: bool,
    ) -> LsFuture<'_, Result<DavLock, DavLock>> {
        let timeout = granted(timeout, cells_core::records::now(), cells_core::records::now());
        let lock = DavLock {
            token: Uuid::new_v4().urn().to_string(),
            path: Box::new(path.clone()),
            principal: principal.map(str::to_string),
            owner: owner.map(|o| Box::new(o.clone())),
            timeout_at: timeout.map(|d| SystemTime::now() + d),
            timeout,
            shared,
            deep,
        };
        async move {
            let segs = segs_of(&lock.path);
            let stored = stored_of(&lock, self.namespace_of(&segs));
            let outcome = self
                .locks
                .add(&self.user, &stored, |live| {
                    let mine = live
                        .iter()
                        .filter(|l| l.principal.as_deref() == Some(self.login.as_str()))
                        .count();
                    if mine >= MAX_LOCKS_PER_USER {
                        tracing::info!(login = %self.login, "WebDAV lock refused: too many live locks");
                        // Answered as a conflict with the user's own oldest lock (423).
                        return live
                            .iter()
                            .filter(|l| l.principal.as_deref() == Some(self.login.as_str()))
                            .min_by_key(|l| l.created_at)
                            .cloned();
                    }
                    let held: Vec<Held> = live.iter().cloned().filter_map(held_of).collect();
                    let conflict = check_to_path(&held, &segs, None, true, &[], shared)
                        .and_then(|()| match deep {
                            true => check_from_path(&held, &segs, None, true, &[], shared),
                            false => Ok(()),
                        })
                        .err()?;
                    held.into_iter()
                        .find(|h| h.lock.token == conflict.token)
                        .map(|h| h.stored)
                })
                .await;
            match outcome {
                Ok(None) => {
                    // Whatever this request read before is stale now: read again when needed.
                    *self.held.lock().await = None;
                    Ok(lock)
                }
                Ok(Some(conflict)) => Err(held_of(conflict).map_or(lock, |h| h.lock)),
                Err(error) => {
                    if let cells_core::error::Error::Unavailable(_) = error {
                        crate::fault::note(crate::fault::Fault::Unavailable);
                    }
                    // Refused (423) rather than granted without a record.
                    tracing::error!(%error, "could not store a WebDAV lock");
                    Err(lock)
                }
            }
        }
        .boxed()
    }

    fn unlock(&'_ self, path: &DavPath, token: &str) -> LsFuture<'_, Result<(), ()>> {
        let segs = segs_of(path);
        let token = token.to_string();
        async move {
            let mut held = self.held().await?;
            let list = held.as_mut().ok_or(())?;
            let Some(lock) = along(list, &segs).into_iter().find(|h| h.lock.token == token) else {
                return Err(());
            };
            if !self.owns(&lock.lock) && !self.is_admin {
                tracing::info!(login = %self.login, "UNLOCK of another user's lock refused");
                return Err(());
            }
            if !self.owns(&lock.lock) {
                tracing::info!(login = %self.login, path = %lock.stored.path, "an administrator broke a WebDAV lock");
            }
            if let Err(error) = self.locks.delete(std::slice::from_ref(&token)).await {
                tracing::error!(%error, "could not remove a WebDAV lock");
                return Err(());
            }
            list.retain(|h| h.lock.token != token);
            Ok(())
        }
        .boxed()
    }

    fn refresh(
        &'_ self,
        path: &DavPath,
        token: &str,
        timeout: Option<Duration>,
    ) -> LsFuture<'_, Result<DavLock, ()>> {
        let segs = segs_of(path);
        let token = token.to_string();
        async move {
            let mut held = self.held().await?;
            let list = held.as_mut().ok_or(())?;
            let Some(lock) = along(list, &segs).into_iter().find(|h| h.lock.token == token) else {
                return Err(());
            };
            if !self.owns(&lock.lock) {
                return Err(());
            }
            let now = cells_core::records::now();
            let created = lock.stored.created_at / 1_000_000;
            let timeout = granted(timeout, created, now).ok_or(())?;
            let expires_at = Some(now + timeout.as_secs() as i64);
            let timeout_seconds = Some(timeout.as_secs() as i64);
            let refreshed = match self.locks.refresh(&token, timeout_seconds, expires_at).await {
                Ok(Some(stored)) => held_of(stored).ok_or(())?,
                Ok(None) => return Err(()),
                Err(error) => {
                    tracing::error!(%error, "could not refresh a WebDAV lock");
                    return Err(());
                }
            };
            let lock = refreshed.lock.clone();
            list.retain(|h| h.lock.token != token);
            list.push(refreshed);
            Ok(lock)
        }
        .boxed()
    }

    fn check(
        &'_ self,
        path: &DavPath,
        principal: Option<&str>,
        ignore_principal: bool,
        deep: bool,
        submitted_tokens: &[String],
    ) -> LsFuture<'_, Result<(), DavLock>> {
        let segs = segs_of(path);
        let principal = principal.map(str::to_string);
        let tokens = submitted_tokens.to_vec();
        let unavailable = DavLock {
            token: "opaquelocktoken:unavailable".into(),
            path: Box::new(path.clone()),
            principal: None,
            owner: None,
            timeout_at: None,
            timeout: None,
            shared: false,
            deep: false,
        };
        async move {
            let Ok(held) = self.held().await else {
                return Err(unavailable);
            };
            let list = held.as_deref().unwrap_or_default();
            let principal = principal.as_deref();
            check_to_path(list, &segs, principal, ignore_principal, &tokens, false)?;
            if deep {
                check_from_path(list, &segs, principal, ignore_principal, &tokens, false)?;
            }
            Ok(())
        }
        .boxed()
    }

    fn discover(&'_ self, path: &DavPath) -> LsFuture<'_, Vec<DavLock>> {
        let segs = segs_of(path);
        async move {
            match self.held().await {
                Ok(held) => along(held.as_deref().unwrap_or_default(), &segs)
                    .into_iter()
                    .map(|h| self.shown(&h.lock))
                    .collect(),
                Err(()) => Vec::new(),
            }
        }
        .boxed()
    }

    fn delete(&'_ self, path: &DavPath) -> LsFuture<'_, Result<(), ()>> {
        let segs = segs_of(path);
        async move {
            // Read afresh: a lock taken below by another node meanwhile goes too.
            let live = live(&self.locks, &self.user).await?;
            let tokens: Vec<String> = below(&live, &segs)
                .into_iter()
                .map(|h| h.lock.token.clone())
                .collect();
            if let Err(error) = self.locks.delete(&tokens).await {
                tracing::error!(%error, "could not remove WebDAV locks");
                return Err(());
            }
            let mut held = self.held.lock().await;
            if let Some(list) = held.as_mut() {
                list.retain(|h| !tokens.contains(&h.lock.token));
            }
            Ok(())
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock_at(path: &str, shared: bool, deep: bool, token: &str) -> Held {
        let mut dav_path = DavPath::new(&format!("{PREFIX}{path}")).unwrap();
        dav_path.set_prefix(PREFIX).unwrap();
        // As dav-server makes it: parsed in the default namespace, then prefixed `D`.
        let mut owner =
            Element::parse(r#"<owner xmlns="DAV:">litmus test suite</owner>"#.as_bytes()).unwrap();
        owner.prefix = Some("D".into());
        let lock = DavLock {
            token: token.into(),
            path: Box::new(dav_path),
            principal: None,
            owner: Some(Box::new(owner)),
            timeout_at: None,
            timeout: Some(Duration::from_secs(3600)),
            shared,
            deep,
        };
        let stored = stored_of(&lock, "");
        held_of(stored).unwrap()
    }

    #[test]
    fn a_lock_survives_its_trip_through_the_database_row() {
        let held = lock_at("/personal-files/a%20b.txt", false, false, "t1");
        assert_eq!(held.lock.path.as_url_string(), "/personal-files/a%20b.txt");
        assert_eq!(held.segs, vec![b"personal-files".to_vec(), b"a b.txt".to_vec()]);
        let owner = held.lock.owner.expect("the owner element is kept");
        let mut xml = Vec::new();
        owner.write(&mut xml).unwrap();
        assert!(String::from_utf8(xml).unwrap().contains("litmus test suite"));
        assert_eq!(held.lock.timeout, Some(Duration::from_secs(3600)));
    }

    #[test]
    fn grants_are_short_and_lives_bounded() {
        let created = 1_000_000;
        assert_eq!(granted(None, created, created), Some(MAX_GRANT));
        assert_eq!(
            granted(Some(Duration::from_secs(u64::from(u32::MAX))), created, created),
            Some(MAX_GRANT)
        );
        assert_eq!(
            granted(Some(Duration::from_secs(30)), created, created),
            Some(Duration::from_secs(30))
        );
        let late = created + MAX_LIFE.as_secs() as i64 - 100;
        assert_eq!(granted(None, created, late), Some(Duration::from_secs(100)));
        assert_eq!(granted(None, created, late + 100), None);
    }

    #[test]
    fn conflicts_follow_the_rules_of_memls() {
        let path = |p: &str| segs_of(&DavPath::new(p).unwrap());
        let deep_exclusive = [lock_at("/w/a/", false, true, "t1")];
        // Below a deep exclusive lock: refused without its token, allowed with it.
        assert!(check_to_path(&deep_exclusive, &path("/w/a/b"), None, true, &[], false).is_err());
        assert!(
            check_to_path(
                &deep_exclusive,
                &path("/w/a/b"),
                None,
                true,
                &["t1".into()],
                false
            )
            .is_ok()
        );
        // Beside it: free.
        assert!(check_to_path(&deep_exclusive, &path("/w/c"), None, true, &[], false).is_ok());
        // A shallow lock above does not reach below.
        let shallow = [lock_at("/w/a/", false, false, "t2")];
        assert!(check_to_path(&shallow, &path("/w/a/b"), None, true, &[], false).is_ok());
        // A deep operation on the parent meets the lock below it.
        assert!(check_from_path(&shallow, &path("/w"), None, true, &[], false).is_err());
        // Shared locks: another shared lock may join, an exclusive one may not.
        let shared = [lock_at("/w/s", true, false, "t3")];
        assert!(check_to_path(&shared, &path("/w/s"), None, true, &[], true).is_ok());
        assert!(check_to_path(&shared, &path("/w/s"), None, true, &[], false).is_err());
    }
}
