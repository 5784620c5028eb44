//! Coalesced token-use bookkeeping: sliding expiry and last use, without a write per request.
//!
//! Each use is recorded in memory. A token's pending use is written when its flush interval has
//! passed since its last write: a quarter of the sliding window (at least 250 ms, at most a
//! minute), or a minute for hard-limit tokens. A background task writes what is due every
//! quarter second, and shutdown writes everything. So the database lags the truth by at most a
//! quarter window (bounded staleness), a crash loses at most that, and one busy token costs a
//! few writes per window instead of one per request.

use cells_store::TokenId;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cells_store::{Store, Token, TokenUse};

struct Pending {
    /// The latest sliding expiry computed in this process.
    expires_at: Option<i64>,
    used_at: i64,
    protocol: &'static str,
    address: String,
    interval: Duration,
    last_write: Option<Instant>,
    dirty: bool,
}

#[derive(Default)]
pub struct TokenUsage {
    pending: Mutex<HashMap<TokenId, Pending>>,
    writes: AtomicU64,
}

fn flush_interval(token: &Token) -> Duration {
    if token.auto_refresh > 0 {
        (Duration::from_secs(token.auto_refresh as u64) / 4)
            .clamp(Duration::from_millis(250), Duration::from_secs(60))
    } else {
        Duration::from_secs(60)
    }
}

impl TokenUsage {
    /// The expiry that holds for `token`: the stored one, or a later one this process has
    /// computed and not yet written.
    pub fn effective_expiry(&self, token: &Token) -> i64 {
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let local = pending
            .get(&token.id)
            .and_then(|p| p.expires_at)
            .unwrap_or(i64::MIN);
        token.expires_at.max(local)
    }

    /// Record one use at `now` (unix seconds). Returns the uses due for writing now, if any.
    pub fn record(
        &self,
        token: &Token,
        now: i64,
        protocol: &'static str,
        address: String,
    ) -> Option<TokenUse> {
        let expires_at = (token.auto_refresh > 0).then(|| {
            let slid = now.saturating_add(token.auto_refresh);
            token.max_expires_at.map_or(slid, |cap| slid.min(cap))
        });
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let entry = pending.entry(token.id).or_insert(Pending {
            expires_at: None,
            used_at: now,
            protocol,
            address: String::new(),
            interval: flush_interval(token),
            last_write: None,
            dirty: false,
        });
        entry.expires_at = match (entry.expires_at, expires_at) {
            (Some(old), Some(new)) => Some(old.max(new)),
            (old, new) => new.or(old),
        };
        entry.used_at = now;
        entry.protocol = protocol;
        entry.address = address;
        entry.dirty = true;
        let due = entry.last_write.is_none_or(|at| at.elapsed() >= entry.interval);
        due.then(|| take(token.id, entry))
    }

    /// Uses whose interval has passed (or all of them, for shutdown), marked as written.
    pub fn due(&self, all: bool) -> Vec<TokenUse> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        pending.retain(|id, entry| {
            if entry.dirty && (all || entry.last_write.is_none_or(|at| at.elapsed() >= entry.interval)) {
                out.push(take(*id, entry));
            }
            // Keep clean entries for one more interval: they carry the unwritten expiry
            // until the database has it, and the time of the last write.
            entry.dirty
                || entry
                    .last_write
                    .is_some_and(|at| at.elapsed() < entry.interval * 2)
        });
        out
    }

    /// Write `uses` to the database.
    pub async fn write(&self, store: &Store, uses: Vec<TokenUse>) {
        if uses.is_empty() {
            return;
        }
        let count = uses.len() as u64;
        match store.touch_tokens(&uses).await {
            Ok(()) => {
                self.writes.fetch_add(count, Ordering::Relaxed);
            }
            Err(error) => {
                tracing::warn!(%error, "could not record token use; will retry");
                let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                for one in uses {
                    if let Some(entry) = pending.get_mut(&one.id) {
                        entry.dirty = true;
                        entry.last_write = None;
                    }
                }
            }
        }
    }

    /// Token rows written so far by this process (for benchmarks and metrics).
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Forget a revoked token.
    pub fn forget(&self, id: TokenId) {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    }
}

fn take(id: TokenId, entry: &mut Pending) -> TokenUse {
    entry.dirty = false;
    entry.last_write = Some(Instant::now());
    TokenUse {
        id,
        expires_at: entry.expires_at,
        used_at: entry.used_at,
        protocol: entry.protocol.to_string(),
        address: entry.address.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cells_store::TokenKind;

    fn token(auto_refresh: i64, expires_at: i64) -> Token {
        Token {
            id: TokenId::random(),
            user_id: cells_store::UserId::random(),
            kind: TokenKind::Personal,
            label: String::new(),
            secret_hash: String::new(),
            scopes: String::new(),
            auto_refresh,
            expires_at,
            max_expires_at: None,
            created_at: 0,
            created_by: String::new(),
            last_used_at: None,
            last_used_protocol: None,
            last_used_address: None,
            s3_secret: None,
        }
    }

    #[test]
    fn first_use_is_written_then_coalesced() {
        let usage = TokenUsage::default();
        let t = token(600, 1_000);
        let first = usage
            .record(&t, 500, "rest", "127.0.0.1".into())
            .expect("first use is due");
        assert_eq!(first.expires_at, Some(1_100));
        for now in 501..600 {
            assert!(usage.record(&t, now, "rest", "127.0.0.1".into()).is_none());
        }
        assert_eq!(usage.effective_expiry(&t), 599 + 600);
        let all = usage.due(true);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].expires_at, Some(1_199));
    }

    #[test]
    fn sliding_expiry_respects_the_cap() {
        let usage = TokenUsage::default();
        let mut t = token(600, 1_000);
        t.max_expires_at = Some(1_050);
        let first = usage.record(&t, 900, "dav", "::1".into()).unwrap();
        assert_eq!(first.expires_at, Some(1_050));
    }

    #[test]
    fn hard_tokens_never_slide() {
        let usage = TokenUsage::default();
        let t = token(0, 1_000);
        let first = usage.record(&t, 999, "rest", "::1".into()).unwrap();
        assert_eq!(first.expires_at, None);
        assert_eq!(usage.effective_expiry(&t), 1_000);
    }
}
