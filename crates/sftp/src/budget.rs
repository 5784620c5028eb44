//! The memory all SFTP sessions of a server may hold for open handles (small files read into
//! memory, folder listings), so that many connections with many handles cannot exhaust the
//! server. Each session also has budgets of its own (`session`); this one bounds their sum.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes all sessions together may hold for handles.
pub const SERVER_MEMORY: usize = 256 << 20;

pub struct Budget {
    used: AtomicUsize,
    limit: usize,
}

impl Budget {
    pub fn new(limit: usize) -> Budget {
        Budget {
            used: AtomicUsize::new(0),
            limit,
        }
    }

    /// Take `bytes` if they fit.
    pub fn take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .is_ok()
    }

    /// Give back `bytes` taken before.
    pub fn give(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::Budget;

    #[test]
    fn takes_what_fits() {
        let budget = Budget::new(10);
        assert!(budget.take(6));
        assert!(!budget.take(5));
        assert!(budget.take(4));
        budget.give(6);
        assert_eq!(budget.used(), 4);
        assert!(budget.take(6));
    }
}
