//! The [`Analyzer`]: the handle the ingest pipeline feeds and the HTTP API reads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use faultline_model::{Span, UnixNanos};

use crate::config::AnalysisConfig;
use crate::error::AnalysisError;
use crate::exposition::{EdgeExport, MetricsSnapshot, SeriesExport};
use crate::graph::{EdgeSnapshot, PreparedHalf, ServiceGraph};
use crate::incident::{Incident, IncidentLog, IncidentStatus};
use crate::red::{PreparedSpan, RedSnapshot, SpanMetrics};

/// Live analysis of the span stream: service graph and RED metrics.
///
/// ```
/// use faultline_analysis::{AnalysisConfig, Analyzer};
/// let analyzer = Analyzer::new(AnalysisConfig::default()).unwrap();
/// analyzer.observe(&[]); // after each successful append, with the appended spans
/// assert!(analyzer.prometheus(faultline_analysis::Format::Prometheus, &[]).contains("traces_spanmetrics_calls_total"));
/// ```
#[derive(Debug)]
pub struct Analyzer {
    config: AnalysisConfig,
    graph: Mutex<ServiceGraph>,
    red: Mutex<SpanMetrics>,
    observed: AtomicU64,
    incidents: Mutex<IncidentLog>,
}

/// What [`Analyzer::prepare`] extracted from a batch of spans, to [`Analyzer::commit`] once
/// they are stored. Holds no borrow of the spans.
#[derive(Debug)]
pub struct PreparedBatch {
    spans: Vec<PreparedSpan>,
    halves: Vec<PreparedHalf>,
}

impl PreparedBatch {
    /// Number of spans it covers.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether it covers no span.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
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
            incidents: Mutex::new(IncidentLog::default()),
        })
    }

    /// The settings in force.
    pub fn config(&self) -> &AnalysisConfig {
        &self.config
    }

    /// Feeds spans that were just stored. Cheap: no I/O, no allocation for known series
    /// beyond one buffer per batch, two short lock holds per call.
    pub fn observe(&self, spans: &[Span]) {
        self.commit(self.prepare(spans));
    }

    /// [`observe`](Self::observe) with an explicit arrival time (tests, replays).
    pub fn observe_at(&self, spans: &[Span], now: UnixNanos) {
        self.commit_at(self.prepare(spans), now);
    }

    /// The first half of [`observe`](Self::observe), for callers that hand the spans over
    /// before they know whether they were stored (the store takes ownership on append):
    /// extracts what the analysis needs from `spans` and records nothing. Commit the result
    /// after a successful append; drop it after a failed one, so that a retried batch is not
    /// counted twice.
    pub fn prepare(&self, spans: &[Span]) -> PreparedBatch {
        let mut batch = PreparedBatch {
            spans: Vec::with_capacity(spans.len()),
            halves: Vec::new(),
        };
        if spans.is_empty() {
            return batch;
        }
        lock(&self.red).prepare(spans, &mut batch.spans);
        lock(&self.graph).prepare(spans, &mut batch.halves);
        batch
    }

    /// Counts a prepared batch as arrived now.
    pub fn commit(&self, batch: PreparedBatch) {
        self.commit_at(batch, UnixNanos::now());
    }

    /// Counts a prepared batch as arrived at `now`.
    pub fn commit_at(&self, batch: PreparedBatch, now: UnixNanos) {
        if batch.spans.is_empty() {
            return;
        }
        self.observed
            .fetch_add(batch.spans.len() as u64, Ordering::Relaxed);
        lock(&self.red).commit(&batch.spans, now);
        lock(&self.graph).commit(batch.halves, now);
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

    /// Runs `f` over the RED series under their lock (the detector reads them this way).
    pub(crate) fn with_red<R>(&self, f: impl FnOnce(&SpanMetrics) -> R) -> R {
        f(&lock(&self.red))
    }

    /// Runs `f` over the service graph under its lock, after expiring halves whose wait is over
    /// at `now` (so virtual-node edges are current).
    pub(crate) fn with_graph<R>(&self, now: UnixNanos, f: impl FnOnce(&ServiceGraph) -> R) -> R {
        let mut graph = lock(&self.graph);
        graph.expire(now);
        f(&graph)
    }

    /// The incident log, to update.
    pub(crate) fn incident_log(&self) -> MutexGuard<'_, IncidentLog> {
        lock(&self.incidents)
    }

    /// Up to `limit` incidents with `status` (all when `None`), newest first.
    pub fn incidents(&self, status: Option<IncidentStatus>, limit: usize) -> Vec<Incident> {
        lock(&self.incidents).list(status, limit)
    }

    /// The incident with `id`.
    pub fn incident(&self, id: &str) -> Option<Incident> {
        lock(&self.incidents).get(id).cloned()
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
            let export = |service: &str, op: &str, kind, s: &crate::red::RedSeries| SeriesExport {
                service: service.to_owned(),
                span_name: op.to_owned(),
                kind,
                status: s.status,
                latency: s.latency.total().clone(),
                exemplars: *s.latency.exemplars(),
                dimensions: Vec::new(),
            };
            // With dimensions, every span is in exactly one dimensioned series: export those
            // alone, so that sums over the labels do not count a span twice.
            let mut series: Vec<SeriesExport> = if red.has_dimensions() {
                let labels: Vec<String> = red
                    .dimensions()
                    .map(crate::exposition::label_name)
                    .collect();
                red.dimensioned()
                    .map(|d| SeriesExport {
                        dimensions: labels
                            .iter()
                            .cloned()
                            .zip(d.values.iter().map(|v| (*v).to_owned()))
                            .collect(),
                        ..export(d.service, d.operation, d.kind, d.series)
                    })
                    .collect()
            } else {
                red.all()
                    .map(|(service, op, kind, s)| export(service, op, kind, s))
                    .collect()
            };
            series.sort_by(|a, b| {
                (&a.service, &a.span_name, a.kind, &a.dimensions).cmp(&(
                    &b.service,
                    &b.span_name,
                    b.kind,
                    &b.dimensions,
                ))
            });
            let held = red.series_count() as u64;
            let overflowed = red.overflowed_spans() + red.dimensioned_overflowed_spans();
            (series, overflowed, red.names_overflowed(), held)
        };
        let (incidents_opened, incidents_dropped) = lock(&self.incidents).counts();
        MetricsSnapshot {
            incidents_opened,
            incidents_dropped,
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
    pub fn prometheus(&self, format: crate::Format, own: &[crate::SelfMetric]) -> String {
        crate::exposition::render(&self.metrics_snapshot(), own, format)
    }
}

#[cfg(test)]
mod tests {
    use faultline_model::SpanKind;

    use super::*;
    use crate::test_spans::span;

    const S: u64 = 1_000_000_000;

    #[test]
    fn a_prepared_batch_counts_only_when_committed() {
        let a = Analyzer::new(AnalysisConfig::default()).unwrap();
        let spans = [
            span("frontend", 1, 10, Some(1), SpanKind::Client, 0, 50),
            span("cart", 1, 11, Some(10), SpanKind::Server, 5, 40),
        ];
        // A failed append: the prepared batch is dropped.
        let dropped = a.prepare(&spans);
        assert_eq!(dropped.len(), 2);
        drop(dropped);
        assert!(a.red(None, UnixNanos(10 * S), 6).is_empty());
        assert!(a.edges(UnixNanos(10 * S), 6).is_empty());
        // The retry succeeds.
        let batch = a.prepare(&spans);
        a.commit_at(batch, UnixNanos(10 * S));
        let red = a.red(None, UnixNanos(10 * S), 6);
        assert_eq!(red.iter().map(|r| r.stats.calls).sum::<u64>(), 2);
        let edges = a.edges(UnixNanos(10 * S), 6);
        assert_eq!(edges.len(), 1);
        assert_eq!(edges[0].client_stats.calls, 1);
        let text = a.prometheus(crate::Format::Prometheus, &[]);
        assert!(
            text.contains("faultline_analysis_spans_observed_total 2\n"),
            "{text}"
        );
    }

    #[test]
    fn windows_are_rounded_up_to_slots_and_bounded_by_the_horizon() {
        let a = Analyzer::new(AnalysisConfig::default()).unwrap();
        assert_eq!(
            a.window_slots(std::time::Duration::from_secs(5)).unwrap(),
            1
        );
        assert_eq!(
            a.window_slots(std::time::Duration::from_secs(300)).unwrap(),
            30
        );
        assert_eq!(
            a.window_slots(std::time::Duration::from_secs(600)).unwrap(),
            60
        );
        assert!(a.window_slots(std::time::Duration::from_secs(601)).is_err());
        assert!(a.window_slots(std::time::Duration::ZERO).is_err());
        assert!(Analyzer::new(AnalysisConfig {
            slots: 0,
            ..AnalysisConfig::default()
        })
        .is_err());
    }
}
