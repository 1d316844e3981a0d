//! A batch span processor whose queue is bounded and whose drops are counted.
//!
//! The SDK's own batch processor drops silently (one log line at shutdown); a service owner
//! needs to see the number while the service runs, so this processor exposes it through
//! [`ExportStats`]. `on_end` never blocks and never awaits: when the queue is full the span is
//! dropped and counted.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use opentelemetry_sdk::Resource;

use crate::Error;

/// Queue and batch sizes of a [`BoundedBatchProcessor`].
#[derive(Clone, Debug)]
pub struct BatchSettings {
    /// Spans held while waiting for export; further spans are dropped.
    pub max_queue_size: usize,
    /// Spans sent in one export call.
    pub max_export_batch_size: usize,
    /// How long a partial batch waits before it is sent anyway.
    pub scheduled_delay: Duration,
}

impl Default for BatchSettings {
    fn default() -> Self {
        // The defaults of the OpenTelemetry specification.
        BatchSettings {
            max_queue_size: 2048,
            max_export_batch_size: 512,
            scheduled_delay: Duration::from_secs(5),
        }
    }
}

impl BatchSettings {
    /// The defaults overridden by `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`
    /// and `OTEL_BSP_SCHEDULE_DELAY` (milliseconds).
    pub fn from_env() -> Result<Self, Error> {
        let mut settings = BatchSettings::default();
        if let Some(v) = env_number("OTEL_BSP_MAX_QUEUE_SIZE")? {
            settings.max_queue_size = v.max(1) as usize;
        }
        if let Some(v) = env_number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE")? {
            settings.max_export_batch_size = v.max(1) as usize;
        }
        if let Some(v) = env_number("OTEL_BSP_SCHEDULE_DELAY")? {
            settings.scheduled_delay = Duration::from_millis(v);
        }
        settings.max_export_batch_size =
            settings.max_export_batch_size.min(settings.max_queue_size);
        Ok(settings)
    }
}

fn env_number(name: &'static str) -> Result<Option<u64>, Error> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => {
            value
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| Error::InvalidConfig {
                    name,
                    value,
                    reason: "must be a non-negative integer",
                })
        }
        _ => Ok(None),
    }
}

/// Counters of a [`BoundedBatchProcessor`], shared with whoever wants to publish them as metrics.
#[derive(Debug, Default)]
pub struct ExportStats {
    dropped: AtomicU64,
    exported: AtomicU64,
    failed: AtomicU64,
    queued: AtomicUsize,
}

impl ExportStats {
    /// Spans dropped because the queue was full.
    pub fn dropped_spans(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Spans the exporter accepted.
    pub fn exported_spans(&self) -> u64 {
        self.exported.load(Ordering::Relaxed)
    }

    /// Spans in batches the exporter rejected.
    pub fn failed_spans(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Spans waiting in the queue right now.
    pub fn queued_spans(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

/// A request from the provider to the export thread.
enum Control {
    Flush(mpsc::SyncSender<OTelSdkResult>),
    Shutdown(mpsc::SyncSender<OTelSdkResult>),
    Resource(Resource),
}

/// What producers and the export thread share. Spans are appended under a mutex held for a
/// push, and the export thread is woken only when a batch is full or a control request
/// arrives: waking it for every span would cost a futex call per request.
#[derive(Default)]
struct Queue {
    /// The batch being filled, allocated at full batch size.
    spans: Vec<SpanData>,
    /// Batches that filled before the export thread took them, oldest first. A full batch is
    /// set aside here rather than grown: growing a vector copies every span queued so far, on a
    /// request thread and under the lock (up to the queue bound of spans at once).
    full: Vec<Vec<SpanData>>,
    /// How many spans `full` holds.
    full_len: usize,
    /// An empty batch the export thread allocated, for the producer that fills `spans`.
    spare: Option<Vec<SpanData>>,
    controls: Vec<Control>,
    closed: bool,
}

impl Queue {
    fn new(batch_size: usize) -> Self {
        Queue {
            spans: Vec::with_capacity(batch_size),
            spare: Some(Vec::with_capacity(batch_size)),
            ..Queue::default()
        }
    }

    /// Spans waiting for the export thread.
    fn len(&self) -> usize {
        self.full_len + self.spans.len()
    }

    /// Appends `span` without ever growing a batch; the caller has checked the bound.
    fn push(&mut self, span: SpanData, batch_size: usize) {
        if self.spans.len() >= batch_size {
            let next = self
                .spare
                .take()
                .unwrap_or_else(|| Vec::with_capacity(batch_size));
            let full = std::mem::replace(&mut self.spans, next);
            self.full_len += full.len();
            self.full.push(full);
        }
        self.spans.push(span);
    }

    /// Every queued span, as batches in the order they were queued; `next` (empty, at batch
    /// size) becomes the batch being filled.
    fn take(&mut self, next: Vec<SpanData>) -> Vec<Vec<SpanData>> {
        let mut batches = std::mem::take(&mut self.full);
        self.full_len = 0;
        batches.push(std::mem::replace(&mut self.spans, next));
        batches
    }
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

/// Batches finished spans on a dedicated thread and hands them to a [`SpanExporter`].
///
/// ```
/// use faultline_instrument::processor::{BatchSettings, BoundedBatchProcessor};
/// use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
///
/// let processor = BoundedBatchProcessor::new(InMemorySpanExporter::default(), BatchSettings::default())?;
/// let stats = processor.stats();
/// let provider = SdkTracerProvider::builder().with_span_processor(processor).build();
/// provider.shutdown()?;
/// assert_eq!(stats.dropped_spans(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct BoundedBatchProcessor {
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
    stats: Arc<ExportStats>,
    max_queue_size: usize,
    batch_size: usize,
}

impl BoundedBatchProcessor {
    /// Starts the export thread.
    pub fn new<E: SpanExporter + 'static>(
        exporter: E,
        settings: BatchSettings,
    ) -> Result<Self, Error> {
        Self::spawn(move || Ok(exporter), settings)
    }

    /// Starts the export thread and builds the exporter on it, inside the thread's Tokio
    /// runtime. gRPC exporters spawn connection tasks when built; building them here keeps
    /// those tasks alive for as long as the exporter, whatever runtime the caller has (or lacks).
    pub fn spawn<E, F>(make_exporter: F, settings: BatchSettings) -> Result<Self, Error>
    where
        E: SpanExporter + 'static,
        F: FnOnce() -> Result<E, Error> + Send + 'static,
    {
        let max_queue_size = settings.max_queue_size.max(1);
        let batch_size = settings.max_export_batch_size.clamp(1, max_queue_size);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::new(batch_size)),
            wake: Condvar::new(),
        });
        let worker_shared = Arc::clone(&shared);
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<(), Error>>(1);
        let stats = Arc::new(ExportStats::default());
        let worker_stats = Arc::clone(&stats);
        let worker = std::thread::Builder::new()
            .name("faultline-otel-export".to_owned())
            .spawn(move || {
                // What the exporter's HTTP stack logs must not come back as telemetry.
                let _suppressed = Context::enter_telemetry_suppressed_scope();
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(err) => {
                        let _ = ready_tx.send(Err(Error::Worker(err)));
                        return;
                    }
                };
                let exporter = {
                    let _entered = runtime.enter();
                    make_exporter()
                };
                match exporter {
                    Ok(exporter) => {
                        let _ = ready_tx.send(Ok(()));
                        let worker = Worker {
                            exporter,
                            runtime: &runtime,
                            stats: &worker_stats,
                            batch_size,
                        };
                        worker.run(&worker_shared, settings.scheduled_delay);
                    }
                    Err(err) => {
                        let _ = ready_tx.send(Err(err));
                    }
                }
            })
            .map_err(Error::Worker)?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                let _ = worker.join();
                return Err(err);
            }
            Err(_) => {
                let _ = worker.join();
                return Err(Error::Worker(std::io::Error::other(
                    "the export thread stopped before it was ready",
                )));
            }
        }
        Ok(BoundedBatchProcessor {
            shared,
            worker: Mutex::new(Some(worker)),
            stats,
            max_queue_size,
            batch_size,
        })
    }

    /// The counters of this processor.
    pub fn stats(&self) -> Arc<ExportStats> {
        Arc::clone(&self.stats)
    }

    fn control(&self, control: Control) -> bool {
        let Ok(mut queue) = self.shared.queue.lock() else {
            return false;
        };
        if queue.closed {
            return false;
        }
        queue.controls.push(control);
        self.shared.wake.notify_one();
        true
    }

    fn request(
        &self,
        make: impl FnOnce(mpsc::SyncSender<OTelSdkResult>) -> Control,
        timeout: Duration,
    ) -> OTelSdkResult {
        let (reply, answer) = mpsc::sync_channel(1);
        if !self.control(make(reply)) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        answer
            .recv_timeout(timeout)
            .map_err(|_| OTelSdkError::Timeout(timeout))?
    }
}

impl SpanProcessor for BoundedBatchProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        let Ok(mut queue) = self.shared.queue.lock() else {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if queue.closed || queue.len() >= self.max_queue_size {
            drop(queue);
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        queue.push(span, self.batch_size);
        let len = queue.len();
        drop(queue);
        self.stats.queued.store(len, Ordering::Relaxed);
        if len == self.batch_size {
            self.shared.wake.notify_one();
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.request(Control::Flush, Duration::from_secs(30))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let result = self.request(Control::Shutdown, timeout);
        if result.is_ok() {
            if let Some(worker) = self.worker.lock().ok().and_then(|mut w| w.take()) {
                let _ = worker.join();
            }
        }
        result
    }

    fn set_resource(&mut self, resource: &Resource) {
        // The exporter lives on the worker thread; it gets the resource before any span.
        self.control(Control::Resource(resource.clone()));
    }
}

impl Drop for BoundedBatchProcessor {
    fn drop(&mut self) {
        // Without an explicit shutdown the thread must still end, after a last export.
        if let Ok(mut queue) = self.shared.queue.lock() {
            queue.closed = true;
            self.shared.wake.notify_one();
        }
    }
}

/// `OTelSdkError` is not `Clone`; several waiters may need the same verdict.
fn copy_result(result: &OTelSdkResult) -> OTelSdkResult {
    match result {
        Ok(()) => Ok(()),
        Err(OTelSdkError::AlreadyShutdown) => Err(OTelSdkError::AlreadyShutdown),
        Err(OTelSdkError::Timeout(d)) => Err(OTelSdkError::Timeout(*d)),
        Err(OTelSdkError::InternalFailure(m)) => Err(OTelSdkError::InternalFailure(m.clone())),
    }
}

struct Worker<'a, E> {
    exporter: E,
    runtime: &'a tokio::runtime::Runtime,
    stats: &'a ExportStats,
    batch_size: usize,
}

impl<E: SpanExporter> Worker<'_, E> {
    fn run(mut self, shared: &Shared, scheduled_delay: Duration) {
        let mut deadline = Instant::now() + scheduled_delay;
        // Empty batches for the queue, allocated here rather than under the lock: one to
        // replace the batch taken, one for a producer that fills it before the next swap.
        let mut spare: Vec<SpanData> = Vec::with_capacity(self.batch_size);
        let mut spare_next: Option<Vec<SpanData>> = None;
        loop {
            let (batches, controls, closed) = {
                let Ok(mut queue) = shared.queue.lock() else {
                    return;
                };
                loop {
                    if queue.closed || !queue.controls.is_empty() || queue.len() >= self.batch_size
                    {
                        break;
                    }
                    let wait = deadline.saturating_duration_since(Instant::now());
                    if wait.is_zero() {
                        break;
                    }
                    queue = match shared.wake.wait_timeout(queue, wait) {
                        Ok((guard, _)) => guard,
                        Err(_) => return,
                    };
                }
                // The next batches' vectors are sized up front, so producers never reallocate
                // (and copy) a growing queue while they hold the lock.
                let batches = queue.take(std::mem::take(&mut spare));
                if queue.spare.is_none() {
                    queue.spare = spare_next.take();
                }
                let controls = std::mem::take(&mut queue.controls);
                if queue.closed || controls.iter().any(|c| matches!(c, Control::Shutdown(_))) {
                    queue.closed = true;
                }
                (batches, controls, queue.closed)
            };
            self.stats.queued.store(0, Ordering::Relaxed);
            spare = Vec::with_capacity(self.batch_size);
            if spare_next.is_none() {
                spare_next = Some(Vec::with_capacity(self.batch_size));
            }
            if batches.iter().all(Vec::is_empty) || Instant::now() >= deadline {
                deadline = Instant::now() + scheduled_delay;
            }
            // The resource must reach the exporter before the spans it describes.
            for control in &controls {
                if let Control::Resource(resource) = control {
                    self.exporter.set_resource(resource);
                }
            }
            // Every batch is exported even after one fails; the answer is the first failure.
            let mut result = Ok(());
            for batch in batches {
                result = result.and(self.export(batch));
            }
            for control in controls {
                match control {
                    Control::Flush(reply) => {
                        let _ = reply.send(copy_result(&result));
                    }
                    Control::Shutdown(reply) => {
                        let _ = reply.send(copy_result(&result).and(self.exporter.shutdown()));
                        return;
                    }
                    Control::Resource(_) => {}
                }
            }
            if closed {
                let _ = self.exporter.shutdown();
                return;
            }
        }
    }

    fn export(&mut self, mut spans: Vec<SpanData>) -> OTelSdkResult {
        let mut result = Ok(());
        while !spans.is_empty() {
            let rest = spans.split_off(spans.len().min(self.batch_size));
            let count = spans.len() as u64;
            let outcome = self.runtime.block_on(self.exporter.export(spans));
            match &outcome {
                Ok(()) => self.stats.exported.fetch_add(count, Ordering::Relaxed),
                Err(_) => self.stats.failed.fetch_add(count, Ordering::Relaxed),
            };
            result = result.and(outcome);
            spans = rest;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Tracer, TracerProvider};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};

    /// An exporter that blocks until the test lets it go, so the queue fills deterministically.
    #[derive(Debug, Clone)]
    struct GatedExporter {
        inner: InMemorySpanExporter,
        gate: Arc<(Mutex<bool>, std::sync::Condvar)>,
    }

    impl SpanExporter for GatedExporter {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            {
                let (lock, cvar) = &*self.gate;
                let mut open = lock
                    .lock()
                    .map_err(|_| OTelSdkError::InternalFailure("poisoned".into()))?;
                while !*open {
                    open = cvar
                        .wait(open)
                        .map_err(|_| OTelSdkError::InternalFailure("poisoned".into()))?;
                }
            }
            self.inner.export(batch).await
        }
    }

    fn span(id: u64) -> SpanData {
        use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId};
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(1),
                SpanId::from(id),
                TraceFlags::SAMPLED,
                false,
                Default::default(),
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Server,
            name: "work".into(),
            start_time: std::time::SystemTime::UNIX_EPOCH,
            end_time: std::time::SystemTime::UNIX_EPOCH,
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: Status::Unset,
            instrumentation_scope: Default::default(),
        }
    }

    /// Spans arriving faster than the export thread takes them fill batch after batch, each
    /// allocated at batch size and never grown (growing copies the whole queue under the
    /// lock), and the export thread gets them back in the order they came.
    #[test]
    fn a_full_batch_is_set_aside_not_grown() {
        let mut queue = Queue::new(3);
        for id in 1..=8 {
            queue.push(span(id), 3);
        }
        assert_eq!(queue.len(), 8);
        assert_eq!(queue.full.len(), 2);
        for batch in queue.full.iter().chain([&queue.spans]) {
            assert_eq!(batch.capacity(), 3);
        }
        // The export thread's spare went to the first producer that needed one.
        assert!(queue.spare.is_none());
        let batches = queue.take(Vec::with_capacity(3));
        let ids: Vec<Vec<u64>> = batches
            .iter()
            .map(|b| {
                b.iter()
                    .map(|s| u64::from_be_bytes(s.span_context.span_id().to_bytes()))
                    .collect()
            })
            .collect();
        assert_eq!(ids, vec![vec![1, 2, 3], vec![4, 5, 6], vec![7, 8]]);
        assert_eq!(queue.len(), 0);
        assert!(queue.full.is_empty());
        assert_eq!(queue.spans.capacity(), 3);
    }

    #[test]
    fn full_queue_drops_and_counts_instead_of_blocking() {
        let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let exporter = GatedExporter {
            inner: InMemorySpanExporter::default(),
            gate: Arc::clone(&gate),
        };
        let settings = BatchSettings {
            max_queue_size: 4,
            max_export_batch_size: 1,
            scheduled_delay: Duration::from_secs(3600),
        };
        let processor = BoundedBatchProcessor::new(exporter.clone(), settings).expect("thread");
        let stats = processor.stats();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build();
        let tracer = provider.tracer("test");
        // The worker takes whatever is queued when it wakes (one to four spans) and blocks
        // exporting it; four more fill the queue; the rest must drop. How many the worker takes
        // depends on when it wakes, so only the bound is certain.
        for _ in 0..20 {
            tracer.in_span("work", |_| {});
        }
        assert!(
            stats.dropped_spans() >= 20 - 2 * 4,
            "dropped {}",
            stats.dropped_spans()
        );
        assert!(stats.queued_spans() <= 4);
        {
            let (lock, cvar) = &*gate;
            *lock.lock().expect("lock") = true;
            cvar.notify_all();
        }
        provider.force_flush().expect("flush");
        let exported = exporter.inner.get_finished_spans().expect("spans").len() as u64;
        assert_eq!(exported + stats.dropped_spans(), 20);
        assert_eq!(stats.exported_spans(), exported);
        provider.shutdown().expect("shutdown");
    }
}
