//! The [`Analyzer`]: the handle the ingest pipeline feeds and the HTTP API reads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use faultline_model::{Span, UnixNanos};

use crate::config::AnalysisConfig;
use crate::error::AnalysisError;
use crate::exposition::{EdgeExport, MetricsSnapshot, SeriesExport};
use crate::graph::{EdgeSnapshot, ServiceGraph};
use crate::red::{RedSnapshot, SpanMetrics};

/// Live analysis of the span stream: service graph and RED metrics.
///
/// ```
/// use faultline_analysis::{AnalysisConfig, Analyzer};
/// let analyzer = Analyzer::new(AnalysisConfig::default()).unwrap();
/// analyzer.observe(&[]); // after each successful append, with the appended spans
/// assert!(analyzer.prometheus(faultline_analysis::Format::Prometheus).contains("traces_spanmetrics_calls_total"));
/// ```
#[derive(Debug)]
pub struct Analyzer {
    config: AnalysisConfig,
    graph: Mutex<ServiceGraph>,
    red: Mutex<SpanMetrics>,
    observed: AtomicU64,
}

/// A poisoned lock only means another thread panicked mid-update of counters; the counters
/// are still usable, so the analysis carries on rather than failing every later call.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Analyzer {
    /// An analyzer with the limits of `config`.
    pub fn new(config: AnalysisConfig) -> Result<Self, AnalysisError> {
        config.validate()?;
        Ok(Self {
            graph: Mutex::new(ServiceGraph::new(&config)),
            red: Mutex::new(SpanMetrics::new(&config)),
            config,
            observed: AtomicU64::new(0),
        })
    }

    /// The settings in force.
    pub fn config(&self) -> &AnalysisConfig {
        &self.config
    }

    /// Feeds spans that were just stored. Cheap: no I/O, no allocation for known series,
    /// two short lock holds per batch.
    pub fn observe(&self, spans: &[Span]) {
        self.observe_at(spans, UnixNanos::now());
    }

    /// [`observe`](Self::observe) with an explicit arrival time (tests, replays).
    pub fn observe_at(&self, spans: &[Span], now: UnixNanos) {
        if spans.is_empty() {
            return;
        }
        self.observed
            .fetch_add(spans.len() as u64, Ordering::Relaxed);
        lock(&self.red).observe(spans, now);
        lock(&self.graph).observe(spans, now);
    }

    /// Expires waiting call halves at `now`; `observe` does this too, so this matters only
    /// when no spans arrive.
    pub fn expire(&self, now: UnixNanos) {
        lock(&self.graph).expire(now);
    }

    /// Number of slots covering `window` (rounded up), or an error naming the limit.
    pub fn window_slots(&self, window: std::time::Duration) -> Result<u64, AnalysisError> {
        let horizon = self.config.horizon();
        if window.is_zero() || window > horizon {
            return Err(AnalysisError::InvalidParameter {
                name: "window",
                message: format!(
                    "must be positive and at most {}s (the retained horizon)",
                    horizon.as_secs()
                ),
            });
        }
        let slot = self.config.slot.as_nanos();
        Ok(window.as_nanos().div_ceil(slot) as u64)
    }

    /// Edges with traffic in the newest `window_slots` slots at `now`.
    pub fn edges(&self, now: UnixNanos, window_slots: u64) -> Vec<EdgeSnapshot> {
        let mut graph = lock(&self.graph);
        graph.expire(now);
        graph.snapshot(now, window_slots)
    }

    /// RED series of `service` (all when `None`) with traffic in the window.
    pub fn red(
        &self,
        service: Option<&str>,
        now: UnixNanos,
        window_slots: u64,
    ) -> Vec<RedSnapshot> {
        lock(&self.red).snapshot(service, now, window_slots)
    }

    /// Copies the cumulative values out for `/metrics`; the copy is rendered without locks.
    pub fn metrics_snapshot(&self) -> MetricsSnapshot {
        let (edges, pairing, names_overflowed) = {
            let mut graph = lock(&self.graph);
            graph.expire(UnixNanos::now());
            let mut edges: Vec<EdgeExport> = graph
                .edges()
                .map(|((c, s), e)| EdgeExport {
                    client: c.to_string(),
                    server: s.to_string(),
                    kind: e.kind,
                    failed: e.client.total_errors(),
                    client_latency: e.client.total().clone(),
                    client_exemplars: *e.client.exemplars(),
                    server_latency: e.server.total().clone(),
                })
                .collect();
            edges.sort_by(|a, b| (&a.client, &a.server).cmp(&(&b.client, &b.server)));
            (edges, graph.stats(), graph.names_overflowed())
        };
        let (series, overflow, red_names, series_held) = {
            let red = lock(&self.red);
            let mut series: Vec<SeriesExport> = red
                .all()
                .map(|(service, op, kind, s)| SeriesExport {
                    service: service.to_owned(),
                    span_name: op.to_owned(),
                    kind,
                    status: s.status,
                    latency: s.latency.total().clone(),
                    exemplars: *s.latency.exemplars(),
                })
                .collect();
            series.sort_by(|a, b| {
                (&a.service, &a.span_name, a.kind).cmp(&(&b.service, &b.span_name, b.kind))
            });
            let held = red.series_count() as u64;
            (series, red.overflowed_spans(), red.names_overflowed(), held)
        };
        MetricsSnapshot {
            edges,
            series,
            pairing,
            series_overflow_spans: overflow,
            names_overflowed: names_overflowed + red_names,
            spans_observed: self.observed.load(Ordering::Relaxed),
            series_held,
        }
    }

    /// The `/metrics` text in `format`.
    pub fn prometheus(&self, format: crate::Format) -> String {
        crate::exposition::render(&self.metrics_snapshot(), format)
    }
}
