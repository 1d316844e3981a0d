//! Per-service registries of active faults and the shared ground-truth ledger.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{broadcast, watch};

use super::{FaultError, FaultKind, FaultRecord, FaultRequest, UnixMillis};

/// A fault starting or ending, as announced to the demo's output.
#[derive(Clone, Debug, PartialEq)]
pub enum FaultEvent {
    /// The fault was injected.
    Started(FaultRecord),
    /// The fault was cleared or expired.
    Ended(FaultRecord),
}

/// Most records kept in memory; the ledger file keeps them all.
const MAX_RECORDS: usize = 10_000;

/// Every injection of every service with its start and end: the ground truth.
#[derive(Clone, Debug)]
pub struct FaultLedger {
    inner: Arc<LedgerInner>,
}

#[derive(Debug)]
struct LedgerInner {
    next_id: AtomicU64,
    records: Mutex<Vec<FaultRecord>>,
    events: broadcast::Sender<FaultEvent>,
    file: Mutex<Option<File>>,
}

#[derive(Serialize)]
struct LedgerLine<'a> {
    event: &'static str,
    #[serde(flatten)]
    record: &'a FaultRecord,
}

impl Default for FaultLedger {
    fn default() -> Self {
        FaultLedger::new()
    }
}

impl FaultLedger {
    /// An in-memory ledger.
    pub fn new() -> Self {
        FaultLedger {
            inner: Arc::new(LedgerInner {
                next_id: AtomicU64::new(1),
                records: Mutex::new(Vec::new()),
                events: broadcast::channel(256).0,
                file: Mutex::new(None),
            }),
        }
    }

    /// A ledger that also appends one JSON line per start and end to `path`.
    pub fn with_file(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let ledger = FaultLedger::new();
        *lock(&ledger.inner.file) = Some(file);
        Ok(ledger)
    }

    /// Announcements of every start and end from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<FaultEvent> {
        self.inner.events.subscribe()
    }

    /// Every recorded injection, oldest first.
    pub fn records(&self) -> Vec<FaultRecord> {
        lock(&self.inner.records).clone()
    }

    fn start(&self, service: &str, request: FaultRequest) -> FaultRecord {
        let record = FaultRecord {
            id: self.inner.next_id.fetch_add(1, Ordering::Relaxed),
            service: service.to_owned(),
            request,
            started_at: UnixMillis::now(),
            ended_at: None,
            end_reason: None,
        };
        {
            let mut records = lock(&self.inner.records);
            if records.len() >= MAX_RECORDS {
                records.remove(0);
            }
            records.push(record.clone());
        }
        self.append("start", &record);
        let _ = self.inner.events.send(FaultEvent::Started(record.clone()));
        record
    }

    fn end(&self, mut record: FaultRecord, reason: &str) -> FaultRecord {
        record.ended_at = Some(UnixMillis::now());
        record.end_reason = Some(reason.to_owned());
        {
            let mut records = lock(&self.inner.records);
            if let Some(slot) = records.iter_mut().find(|r| r.id == record.id) {
                *slot = record.clone();
            }
        }
        self.append("end", &record);
        let _ = self.inner.events.send(FaultEvent::Ended(record.clone()));
        record
    }

    fn append(&self, event: &'static str, record: &FaultRecord) {
        let mut file = lock(&self.inner.file);
        if let Some(f) = file.as_mut() {
            let line = LedgerLine { event, record };
            let written = serde_json::to_vec(&line)
                .map_err(std::io::Error::other)
                .and_then(|mut bytes| {
                    bytes.push(b'\n');
                    f.write_all(&bytes)
                });
            if let Err(err) = written {
                tracing::warn!(error = %err, "cannot append to the fault ledger file");
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves consistent data (every update is a
    // single assignment), so poisoning is ignored.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The faults active in one service, consulted on its request path.
#[derive(Clone, Debug)]
pub struct FaultRegistry {
    inner: Arc<RegistryInner>,
}

#[derive(Debug)]
struct RegistryInner {
    service: String,
    supported: Vec<&'static str>,
    ledger: FaultLedger,
    active: Mutex<Vec<Active>>,
    active_count: AtomicUsize,
    changed: watch::Sender<u64>,
}

#[derive(Debug)]
struct Active {
    record: FaultRecord,
    expires: Option<Instant>,
}

impl FaultRegistry {
    /// A registry for `service`, which can act on the faults named in `supported`.
    pub fn new(service: &str, supported: &[&'static str], ledger: FaultLedger) -> Self {
        FaultRegistry {
            inner: Arc::new(RegistryInner {
                service: service.to_owned(),
                supported: supported.to_vec(),
                ledger,
                active: Mutex::new(Vec::new()),
                active_count: AtomicUsize::new(0),
                changed: watch::channel(0).0,
            }),
        }
    }

    /// The service's name.
    pub fn service(&self) -> &str {
        &self.inner.service
    }

    /// The fault names this service can act on.
    pub fn supported(&self) -> &[&'static str] {
        &self.inner.supported
    }

    /// The shared ledger.
    pub fn ledger(&self) -> &FaultLedger {
        &self.inner.ledger
    }

    /// Starts a fault; it ends when cleared or when its duration runs out.
    pub fn inject(&self, request: FaultRequest) -> Result<FaultRecord, FaultError> {
        request.validate()?;
        let name = request.fault.name();
        if !self.inner.supported.contains(&name) {
            return Err(FaultError::Unsupported {
                service: self.inner.service.clone(),
                fault: name,
                supported: self.inner.supported.join(", "),
            });
        }
        let duration = request.duration_ms.map(Duration::from_millis);
        let record = self.inner.ledger.start(&self.inner.service, request);
        {
            let mut active = lock(&self.inner.active);
            active.push(Active {
                record: record.clone(),
                expires: duration.and_then(|d| Instant::now().checked_add(d)),
            });
            self.inner
                .active_count
                .store(active.len(), Ordering::Release);
        }
        self.notify();
        if let (Some(duration), Ok(runtime)) = (duration, tokio::runtime::Handle::try_current()) {
            // Ends the fault on time even when no request comes to notice it.
            let registry = self.clone();
            runtime.spawn(async move {
                tokio::time::sleep(duration).await;
                registry.prune_expired();
            });
        }
        Ok(record)
    }

    /// Ends one fault (`Some(id)`) or all of them; returns the ended records.
    pub fn clear(&self, id: Option<u64>) -> Result<Vec<FaultRecord>, FaultError> {
        self.end(id, "cleared")
    }

    /// Ends every active fault because the service stops, so the ledger has an end for each.
    pub fn end_all_at_shutdown(&self) -> Vec<FaultRecord> {
        self.end(None, "shutdown").unwrap_or_default()
    }

    fn end(&self, id: Option<u64>, reason: &str) -> Result<Vec<FaultRecord>, FaultError> {
        let removed: Vec<Active> = {
            let mut active = lock(&self.inner.active);
            let (removed, kept): (Vec<Active>, Vec<Active>) = active
                .drain(..)
                .partition(|a| id.is_none_or(|id| a.record.id == id));
            *active = kept;
            self.inner
                .active_count
                .store(active.len(), Ordering::Release);
            removed
        };
        if let (Some(id), true) = (id, removed.is_empty()) {
            return Err(FaultError::NotFound(id));
        }
        let ended = removed
            .into_iter()
            .map(|a| self.inner.ledger.end(a.record, reason))
            .collect();
        self.notify();
        Ok(ended)
    }

    /// The faults active now.
    pub fn active(&self) -> Vec<FaultRecord> {
        self.prune_expired();
        lock(&self.inner.active)
            .iter()
            .map(|a| a.record.clone())
            .collect()
    }

    /// Every fault this service ever had, from the ledger.
    pub fn history(&self) -> Vec<FaultRecord> {
        self.inner
            .ledger
            .records()
            .into_iter()
            .filter(|r| r.service == self.inner.service)
            .collect()
    }

    /// Changes whenever a fault starts or ends.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    fn notify(&self) {
        self.inner.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn prune_expired(&self) {
        let now = Instant::now();
        let expired: Vec<Active> = {
            let mut active = lock(&self.inner.active);
            if !active.iter().any(|a| a.expires.is_some_and(|e| e <= now)) {
                return;
            }
            let (expired, kept) = active
                .drain(..)
                .partition(|a| a.expires.is_some_and(|e| e <= now));
            *active = kept;
            self.inner
                .active_count
                .store(active.len(), Ordering::Release);
            expired
        };
        for a in expired {
            self.inner.ledger.end(a.record, "expired");
        }
        self.notify();
    }

    /// Calls `f` on every active fault's request; cheap when none is active.
    fn scan<T>(&self, mut f: impl FnMut(&FaultRequest) -> Option<T>) -> Vec<T> {
        if self.inner.active_count.load(Ordering::Acquire) == 0 {
            return Vec::new();
        }
        self.prune_expired();
        lock(&self.inner.active)
            .iter()
            .filter_map(|a| f(&a.record.request))
            .collect()
    }

    /// The first active fault of the kind `f` accepts.
    pub fn find<T>(&self, f: impl FnMut(&FaultKind) -> Option<T>) -> Option<T> {
        let mut f = f;
        self.scan(|r| f(&r.fault)).into_iter().next()
    }

    /// Whether the service should refuse connections now.
    pub fn is_down(&self) -> bool {
        self.find(|k| matches!(k, FaultKind::Down).then_some(()))
            .is_some()
    }

    /// Added latency for an incoming request to `path`.
    pub fn route_latency(&self, path: &str) -> Option<Duration> {
        total_latency(self.scan(|r| matches_route(r, path).then(|| latency(&r.fault))?))
    }

    /// Added latency for a call to `dependency`.
    pub fn dependency_latency(&self, dependency: &str) -> Option<Duration> {
        total_latency(self.scan(|r| matches_dependency(r, dependency).then(|| latency(&r.fault))?))
    }

    /// Whether an incoming request to `path` should fail.
    pub fn route_fails(&self, path: &str) -> bool {
        self.scan(|r| matches_route(r, path).then(|| error_rate(&r.fault))?)
            .into_iter()
            .any(roll)
    }

    /// Whether a call to `dependency` should fail.
    pub fn dependency_fails(&self, dependency: &str) -> bool {
        self.scan(|r| matches_dependency(r, dependency).then(|| error_rate(&r.fault))?)
            .into_iter()
            .any(roll)
    }

    /// CPU time an incoming request to `path` must burn.
    pub fn cpu_burn(&self, path: &str) -> Option<Duration> {
        self.scan(|r| match r.fault {
            FaultKind::CpuSaturation { burn_ms } if matches_route(r, path) => {
                Some(Duration::from_millis(burn_ms))
            }
            _ => None,
        })
        .into_iter()
        .max()
    }
}

/// Route-targeted faults (and untargeted ones) apply to incoming requests.
fn matches_route(request: &FaultRequest, path: &str) -> bool {
    request.dependency.is_none()
        && request
            .route
            .as_deref()
            .is_none_or(|route| path.starts_with(route))
}

/// Only faults naming the dependency apply to outgoing calls.
fn matches_dependency(request: &FaultRequest, dependency: &str) -> bool {
    request.dependency.as_deref() == Some(dependency)
}

fn latency(kind: &FaultKind) -> Option<Duration> {
    match *kind {
        FaultKind::Latency {
            fixed_ms,
            jitter_ms,
        } => {
            let jitter = if jitter_ms == 0 {
                0
            } else {
                fastrand::u64(0..=jitter_ms)
            };
            Some(Duration::from_millis(fixed_ms.saturating_add(jitter)))
        }
        _ => None,
    }
}

fn total_latency(parts: Vec<Duration>) -> Option<Duration> {
    (!parts.is_empty()).then(|| parts.into_iter().sum())
}

fn error_rate(kind: &FaultKind) -> Option<f64> {
    match *kind {
        FaultKind::Errors { rate } => Some(rate),
        _ => None,
    }
}

fn roll(rate: f64) -> bool {
    rate >= 1.0 || fastrand::f64() < rate
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> FaultRegistry {
        FaultRegistry::new(
            "payment",
            &["latency", "errors", "down"],
            FaultLedger::new(),
        )
    }

    #[test]
    fn unsupported_faults_are_refused_with_the_supported_list() {
        let err = registry()
            .inject(FaultRequest::new(FaultKind::QueueStall))
            .expect_err("refused");
        assert_eq!(
            err.to_string(),
            "payment does not support queue-stall; it supports latency, errors, down"
        );
    }

    #[test]
    fn targets_select_routes_and_dependencies() {
        let registry = registry();
        registry
            .inject(
                FaultRequest::new(FaultKind::Latency {
                    fixed_ms: 100,
                    jitter_ms: 0,
                })
                .on_route("/charges"),
            )
            .expect("injected");
        registry
            .inject(FaultRequest::new(FaultKind::Errors { rate: 1.0 }).on_dependency("provider"))
            .expect("injected");
        assert_eq!(
            registry.route_latency("/charges/1"),
            Some(Duration::from_millis(100))
        );
        assert_eq!(registry.route_latency("/health"), None);
        assert!(registry.dependency_fails("provider"));
        assert!(!registry.route_fails("/charges"));
        assert_eq!(registry.dependency_latency("provider"), None);
    }

    #[test]
    fn clearing_ends_records_in_the_ledger() {
        let registry = registry();
        let mut events = registry.ledger().subscribe();
        let record = registry
            .inject(FaultRequest::new(FaultKind::Down))
            .expect("injected");
        assert!(registry.is_down());
        assert!(registry.clear(Some(record.id + 100)).is_err());
        let ended = registry.clear(None).expect("cleared");
        assert_eq!(ended.len(), 1);
        assert!(!registry.is_down());
        let history = registry.history();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].end_reason.as_deref(), Some("cleared"));
        assert!(history[0].ended_at >= Some(history[0].started_at));
        assert!(matches!(events.try_recv(), Ok(FaultEvent::Started(_))));
        assert!(matches!(events.try_recv(), Ok(FaultEvent::Ended(_))));
    }

    #[test]
    fn shutdown_ends_active_faults_in_the_ledger() {
        let registry = registry();
        registry
            .inject(FaultRequest::new(FaultKind::Down))
            .expect("injected");
        let ended = registry.end_all_at_shutdown();
        assert_eq!(ended.len(), 1);
        assert!(!registry.is_down());
        assert_eq!(
            registry.history()[0].end_reason.as_deref(),
            Some("shutdown")
        );
        assert!(registry.end_all_at_shutdown().is_empty());
    }

    #[tokio::test]
    async fn faults_expire_on_their_own() {
        let registry = registry();
        let mut changes = registry.changes();
        registry
            .inject(FaultRequest::new(FaultKind::Down).lasting(Duration::from_millis(50)))
            .expect("injected");
        assert!(registry.is_down());
        let deadline = Instant::now() + Duration::from_secs(5);
        while registry.is_down() {
            assert!(Instant::now() < deadline, "fault did not expire");
            let _ = tokio::time::timeout(Duration::from_millis(100), changes.changed()).await;
        }
        assert_eq!(registry.history()[0].end_reason.as_deref(), Some("expired"));
    }
}
