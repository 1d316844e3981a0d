//! The background tasks both stores (spans and logs) run to turn their heads into blocks: a
//! *cutter* that cuts the head when it is due, and a *writer* that writes cut heads as blocks,
//! side by side, so that a head is cut at its size even while an earlier one is written.

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::{watch, Notify};

use crate::StorageError;

/// After a failed cut, write or maintenance run, wait this long before trying again.
pub(crate) const RETRY_DELAY: Duration = Duration::from_secs(1);

/// A store whose head the cutter cuts.
pub(crate) trait CutHeads: Send + Sync + 'static {
    /// What the store holds, for log lines ("head", "log head").
    const HEAD: &'static str;

    /// The store's `max_head_age`.
    fn max_head_age(&self) -> Duration;

    /// How often the cutter checks the head's age, and the writer retries a failed write.
    fn check_interval(&self) -> Duration {
        (self.max_head_age() / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }

    /// Whether the head should be cut now (over its size or age).
    fn head_due(&self) -> impl Future<Output = bool> + Send;

    /// Cuts the head (see each store's `cut_head`). Two cuts at once are safe: rotations
    /// are queued, and segment numbers taken, under the store's state lock.
    fn cut_head(&self) -> impl Future<Output = Result<(), StorageError>> + Send;
}

/// Waits for `wanted`, the check interval or stop; `None` once stop was signalled or the store
/// is gone, else the store.
pub(crate) async fn next_round<S: CutHeads>(
    weak: &Weak<S>,
    wanted: &Notify,
    stop: &mut watch::Receiver<bool>,
) -> Option<Arc<S>> {
    let check = weak.upgrade().map(|s| s.check_interval())?;
    tokio::select! {
        _ = wanted.notified() => {}
        _ = tokio::time::sleep(check) => {}
        _ = stop.changed() => return None,
    }
    if *stop.borrow() {
        return None;
    }
    weak.upgrade()
}

/// Waits up to `d`, returning `true` early when stop was signalled.
pub(crate) async fn stopped_within(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

/// Cuts the head when it is too big or too old, and wakes the writer (`write_wanted`).
///
/// It runs beside the writer, so a head fills up to its cut size and is cut even while
/// earlier heads are being written: under load, blocks keep the size the head is cut at, rather
/// than taking in everything that arrives while the previous block is encoded. The memory
/// budget counts every cut head until it is written, so memory stays bounded however many
/// wait. After a failed cut it waits [`RETRY_DELAY`] before trying again.
pub(crate) async fn cutter<S: CutHeads>(
    weak: Weak<S>,
    wanted: Arc<Notify>,
    write_wanted: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    while let Some(store) = next_round(&weak, &wanted, &mut stop).await {
        if !store.head_due().await {
            continue;
        }
        let result = store.cut_head().await;
        drop(store);
        // Also after a failed cut: a head cut before the WAL rotation failed still waits.
        write_wanted.notify_one();
        if let Err(e) = result {
            tracing::error!(error = %e, "cutting the {} failed; will retry", S::HEAD);
            if stopped_within(&mut stop, RETRY_DELAY).await {
                return;
            }
        }
    }
}
