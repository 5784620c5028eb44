//! Per-address throttling of failed logins, on every protocol.
//!
//! An address gets `FREE_FAILURES` failures per `WINDOW`; past that each further failure makes
//! it wait, doubling from one second up to a minute. This slows a password spray across many
//! accounts, which the per-account lockout cannot see. Memory is bounded: idle entries are
//! dropped, and the table never holds more than `MAX_ENTRIES` addresses.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const FREE_FAILURES: u32 = 20;
const WINDOW: Duration = Duration::from_secs(15 * 60);
const MAX_DELAY: Duration = Duration::from_secs(60);
const MAX_ENTRIES: usize = 100_000;

struct Entry {
    failures: u32,
    first_failure: Instant,
    blocked_until: Option<Instant>,
}

#[derive(Default)]
pub struct Throttle {
    entries: Mutex<HashMap<IpAddr, Entry>>,
}

impl Throttle {
    /// `Err(seconds)` when `address` must wait before trying again.
    pub fn check(&self, address: IpAddr) -> Result<(), u64> {
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

    /// Count one failure from `address`.
    pub fn failed(&self, address: IpAddr) {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, e| now.duration_since(e.first_failure) < WINDOW);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        let entry = entries.entry(address).or_insert(Entry {
            failures: 0,
            first_failure: now,
            blocked_until: None,
        });
        if now.duration_since(entry.first_failure) >= WINDOW {
            *entry = Entry {
                failures: 0,
                first_failure: now,
                blocked_until: None,
            };
        }
        entry.failures += 1;
        if entry.failures > FREE_FAILURES {
            let exponent = (entry.failures - FREE_FAILURES - 1).min(6);
            let delay = Duration::from_secs(1 << exponent).min(MAX_DELAY);
            entry.blocked_until = Some(now + delay);
        }
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
}
