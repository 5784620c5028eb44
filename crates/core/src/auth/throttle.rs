//! Per-address throttling of failed logins, on every protocol.
//!
//! An address gets `FREE_FAILURES` failures per `WINDOW`; past that each further failure makes
//! it wait, doubling from one second up to a minute. This slows a password spray across many
//! accounts, which the per-account lockout cannot see. A password verification is reserved
//! (`reserve`) before it runs and counts as in flight until it ends, so a burst of concurrent
//! guesses from one address gets no more verifications than its remaining free failures (one
//! at a time once they are used up). IPv6 addresses are counted per /64, which one host
//! usually holds whole. Memory is bounded: idle entries are dropped, and the table never holds
//! more than `MAX_ENTRIES` addresses.
//!
//! The failures are shared by every node through the database (`share`, four times a second):
//! each node adds its own and takes in the others', so a spray spread over the nodes of a
//! cluster is slowed like one aimed at a single node. Checks stay in memory (no database read
//! per request); verifications in flight are counted per node.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cells_store::{Backend, Store, StoreError};

const FREE_FAILURES: u32 = 20;
const WINDOW: Duration = Duration::from_secs(15 * 60);
const MAX_DELAY: Duration = Duration::from_secs(60);
const MAX_ENTRIES: usize = 100_000;

struct Entry {
    failures: u32,
    first_failure: Instant,
    blocked_until: Option<Instant>,
    /// Verifications reserved and not yet ended.
    in_flight: u32,
}

impl Entry {
    fn new(now: Instant) -> Entry {
        Entry {
            failures: 0,
            first_failure: now,
            blocked_until: None,
            in_flight: 0,
        }
    }
}

type Table = Mutex<HashMap<IpAddr, Entry>>;

/// How long `address` waits after its `failures`-th failure in a window.
fn delay(failures: u32) -> Option<Duration> {
    let past = failures.checked_sub(FREE_FAILURES + 1)?;
    Some(Duration::from_secs(1 << past.min(6)).min(MAX_DELAY))
}

/// Rows dated this long before a node's last look are read again at its next one: a row is
/// dated by the database when written, and its commit may land a little later.
const SHARE_OVERLAP_MS: i64 = 2_000;
/// The most addresses a node adds at once (a spray from many addresses waits its turn).
const SHARE_BATCH: usize = 1000;

#[derive(Default)]
struct Sharing {
    /// Failures counted here and not yet added to the database.
    pending: HashMap<IpAddr, u32>,
    /// Epoch milliseconds (the database's clock) of the last look at the database.
    read_at_ms: i64,
}

#[derive(Default)]
pub struct Throttle {
    entries: Arc<Table>,
    sharing: Mutex<Sharing>,
}

/// A password verification reserved for an address; it ends when dropped.
pub struct Reservation {
    entries: Arc<Table>,
    address: IpAddr,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = entries.get_mut(&self.address) {
            entry.in_flight = entry.in_flight.saturating_sub(1);
        }
    }
}

/// The key an address is counted under: itself, or its /64 for IPv6.
pub fn counted_as(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(std::net::Ipv6Addr::from(bits))
            }
        },
        v4 => v4,
    }
}

impl Throttle {
    /// Reserve one password verification for `address`: `Err(seconds)` when it must wait, or
    /// when failures and verifications in flight already use up what it may try now.
    pub fn reserve(&self, address: IpAddr) -> Result<Reservation, u64> {
        let address = counted_as(address);
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        Self::make_room(&mut entries, now);
        let entry = entries.entry(address).or_insert_with(|| Entry::new(now));
        if entry.in_flight == 0 && now.duration_since(entry.first_failure) >= WINDOW {
            *entry = Entry::new(now);
        }
        if let Some(until) = entry.blocked_until
            && until > now
        {
            return Err((until - now).as_secs().max(1));
        }
        let allowed = FREE_FAILURES.saturating_sub(entry.failures).max(1);
        if entry.in_flight >= allowed {
            return Err(1);
        }
        entry.in_flight += 1;
        Ok(Reservation {
            entries: self.entries.clone(),
            address,
        })
    }

    /// `Err(seconds)` when `address` must wait before trying again.
    pub fn check(&self, address: IpAddr) -> Result<(), u64> {
        let address = counted_as(address);
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(&address).and_then(|e| e.blocked_until) {
            Some(until) => {
                let now = Instant::now();
                if until > now {
                    Err((until - now).as_secs().max(1))
                } else {
                    Ok(())
                }
            }
            None => Ok(()),
        }
    }

    /// Keep the table under `MAX_ENTRIES`: drop idle entries, or all as a last resort.
    fn make_room(entries: &mut HashMap<IpAddr, Entry>, now: Instant) {
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, e| e.in_flight > 0 || now.duration_since(e.first_failure) < WINDOW);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
    }

    /// Count one failure from `address`.
    pub fn failed(&self, address: IpAddr) {
        let address = counted_as(address);
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        Self::make_room(&mut entries, now);
        let entry = entries.entry(address).or_insert_with(|| Entry::new(now));
        if now.duration_since(entry.first_failure) >= WINDOW {
            let in_flight = entry.in_flight;
            *entry = Entry::new(now);
            entry.in_flight = in_flight;
        }
        entry.failures = entry.failures.saturating_add(1);
        if let Some(delay) = delay(entry.failures) {
            entry.blocked_until = Some(now + delay);
        }
        drop(entries);
        let mut sharing = self.sharing.lock().unwrap_or_else(|e| e.into_inner());
        if sharing.pending.len() < MAX_ENTRIES {
            let pending = sharing.pending.entry(address).or_default();
            *pending = pending.saturating_add(1);
        }
    }

    /// Forget, in the database, the addresses whose window has passed.
    pub async fn prune(store: &Store) -> Result<u64, StoreError> {
        store.prune_address_failures(WINDOW.as_millis() as i64).await
    }

    /// Add this node's failures to the database and take in the other nodes' since the last
    /// look (times are the database's, so nodes' clocks need not agree). Failures that could
    /// not be written are kept for the next call. On SQLite this node is the only one: there
    /// is nothing to share.
    pub async fn share(&self, store: &Store) -> Result<(), StoreError> {
        let (batch, since) = {
            let mut sharing = self.sharing.lock().unwrap_or_else(|e| e.into_inner());
            if store.backend() == Backend::Sqlite {
                sharing.pending.clear();
                return Ok(());
            }
            let addresses: Vec<IpAddr> = sharing.pending.keys().take(SHARE_BATCH).copied().collect();
            let batch: Vec<(IpAddr, u32)> = addresses
                .into_iter()
                .filter_map(|address| sharing.pending.remove(&address).map(|count| (address, count)))
                .collect();
            (batch, sharing.read_at_ms)
        };
        let rows: Vec<(String, i64)> = batch
            .iter()
            .map(|(address, count)| (address.to_string(), i64::from(*count)))
            .collect();
        if let Err(error) = store.add_address_failures(&rows, WINDOW.as_millis() as i64).await {
            let mut sharing = self.sharing.lock().unwrap_or_else(|e| e.into_inner());
            for (address, count) in batch {
                let pending = sharing.pending.entry(address).or_default();
                *pending = pending.saturating_add(count);
            }
            return Err(error);
        }
        // The database's now before the rows: a row committed after it is read next time.
        let now_ms = store.database_now_ms().await?;
        let rows = store.address_failures_since(since - SHARE_OVERLAP_MS).await?;
        self.sharing.lock().unwrap_or_else(|e| e.into_inner()).read_at_ms = now_ms;
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        for row in rows {
            let Ok(address) = row.address.parse::<IpAddr>() else {
                continue;
            };
            let started = Duration::from_millis(now_ms.saturating_sub(row.window_start).max(0) as u64);
            let failures = u32::try_from(row.failures.max(0)).unwrap_or(u32::MAX);
            if started >= WINDOW {
                continue;
            }
            Self::make_room(&mut entries, now);
            let entry = entries.entry(address).or_insert_with(|| Entry::new(now));
            if failures <= entry.failures {
                continue;
            }
            entry.failures = failures;
            entry.first_failure = now.checked_sub(started).unwrap_or(entry.first_failure);
            let last = Duration::from_millis(now_ms.saturating_sub(row.changed).max(0) as u64);
            if let (Some(delay), Some(at)) = (delay(failures), now.checked_sub(last)) {
                let until = at + delay;
                if entry.blocked_until.is_none_or(|blocked| blocked < until) {
                    entry.blocked_until = Some(until);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_failures_then_backoff() {
        let throttle = Throttle::default();
        let address: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..FREE_FAILURES {
            throttle.failed(address);
            assert!(throttle.check(address).is_ok());
        }
        throttle.failed(address);
        let wait = throttle.check(address).unwrap_err();
        assert!((1..=60).contains(&wait));
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(throttle.check(other).is_ok(), "other addresses are not affected");
    }

    #[test]
    fn a_burst_gets_only_the_free_failures_in_flight() {
        let throttle = Throttle::default();
        let address: IpAddr = "192.0.2.1".parse().unwrap();
        let held: Vec<_> = (0..FREE_FAILURES)
            .map(|_| throttle.reserve(address).unwrap())
            .collect();
        assert!(
            throttle.reserve(address).is_err(),
            "no more than the free failures at once"
        );
        drop(held);
        for _ in 0..FREE_FAILURES - 1 {
            throttle.failed(address);
        }
        // One failure left: one verification at a time.
        let one = throttle.reserve(address).unwrap();
        assert!(throttle.reserve(address).is_err());
        drop(one);
        assert!(throttle.reserve(address).is_ok());
    }

    #[test]
    fn ipv6_is_counted_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(counted_as(a), counted_as(b));
        assert_ne!(counted_as(a), counted_as(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(counted_as(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
        let throttle = Throttle::default();
        for _ in 0..=FREE_FAILURES {
            throttle.failed(a);
        }
        assert!(throttle.check(b).is_err(), "the same /64 waits");
        assert!(throttle.check(c).is_ok());
    }
}
