//! Counting open connections per key (an address, a user) against a limit, for HTTP and SFTP.
//!
//! A `Slot` is taken when a connection opens (or logs in) and given back when it is dropped,
//! so a count can never leak past the connection's life. Addresses are counted as the
//! throttle counts them (IPv6 per /64, `auth::throttle::counted_as`).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

type Counts<K> = Arc<Mutex<HashMap<K, usize>>>;

/// Open connections per key, at most `limit` each.
pub struct Connections<K: Hash + Eq + Clone> {
    counts: Counts<K>,
    limit: usize,
}

/// One open connection of a key; dropping it frees the slot.
pub struct Slot<K: Hash + Eq + Clone> {
    counts: Counts<K>,
    key: K,
}

impl<K: Hash + Eq + Clone> Connections<K> {
    pub fn new(limit: usize) -> Connections<K> {
        Connections {
            counts: Arc::default(),
            limit,
        }
    }

    /// A slot for `key`, or `None` when it already holds `limit` connections.
    pub fn open(&self, key: K) -> Option<Slot<K>> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(key.clone()).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(Slot {
            counts: self.counts.clone(),
            key,
        })
    }

    /// Connections open for `key` now.
    pub fn count(&self, key: &K) -> usize {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.get(key).copied().unwrap_or(0)
    }
}

impl<K: Hash + Eq + Clone> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Connections;

    #[test]
    fn slots_are_counted_and_given_back() {
        let connections = Connections::new(2);
        let a = connections.open("a").unwrap();
        let _b = connections.open("a").unwrap();
        assert!(connections.open("a").is_none());
        assert!(connections.open("b").is_some());
        drop(a);
        assert_eq!(connections.count(&"a"), 1);
        assert!(connections.open("a").is_some());
    }
}
