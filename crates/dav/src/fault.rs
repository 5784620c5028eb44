//! What went wrong inside dav-server, for the answer: dav-server's `FsError` has no "locked"
//! or "unavailable", so the filesystem and the lock system note the fault of the request they
//! serve here, and `serve` turns dav-server's generic status into the right one (423, 503).

use std::sync::{Arc, Mutex};

/// A fault that dav-server's own status would misdescribe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A WebDAV lock refused the change in `Tree` (another protocol's view of the same rule).
    Locked,
    /// The database (or the blob store) did not answer.
    Unavailable,
}

tokio::task_local! {
    static FAULT: Arc<Mutex<Option<Fault>>>;
}

/// Note `fault` for the request being served (the first one noted wins).
pub fn note(fault: Fault) {
    let _ = FAULT.try_with(|slot| {
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(fault);
    });
}

/// Run `serve` with a slot for its faults; returns its output and the fault noted.
pub async fn watch<T>(serve: impl Future<Output = T>) -> (T, Option<Fault>) {
    let slot = Arc::new(Mutex::new(None));
    let output = FAULT.scope(slot.clone(), serve).await;
    let fault = *slot.lock().unwrap_or_else(|e| e.into_inner());
    (output, fault)
}
