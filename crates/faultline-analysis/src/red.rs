//! RED metrics (rate, errors, duration) per service, operation and span kind, streamed from
//! every span as it arrives, with bounded cardinality.
//!
//! Series are found by `&str` lookups through two maps (service, then operation), and the span
//! kind indexes a small array, so a span of a known series costs no allocation. Beyond
//! `max_series` distinct series, spans count into one overflow series whose labels are all
//! `__overflow__`, and the spans sent there are counted.

use std::collections::HashMap;
use std::sync::Arc;

use faultline_model::{Span, SpanKind, StatusCode, UnixNanos};

use crate::config::AnalysisConfig;
use crate::intern::{Interner, OVERFLOW};
use crate::window::{Observation, WindowStats, WindowedSeries};

const KINDS: usize = 6;

/// The series of one (service, operation, kind).
#[derive(Clone, Debug, Default)]
pub struct RedSeries {
    /// Latency and failures over windows, and cumulative.
    pub latency: WindowedSeries,
    /// Cumulative calls per status code (`Unset`, `Ok`, `Error`).
    pub status: [u64; 3],
}

impl RedSeries {
    #[inline]
    fn record(&mut self, obs: &Observation, code: StatusCode, slot: u64, slots: usize) {
        self.latency.record(obs, slot, slots);
        self.status[code as usize] += 1;
    }
}

type KindSeries = [Option<Box<RedSeries>>; KINDS];

/// All RED series.
#[derive(Debug)]
pub struct SpanMetrics {
    services: HashMap<Arc<str>, HashMap<String, KindSeries>>,
    names: Interner,
    overflow: RedSeries,
    series: usize,
    overflowed_spans: u64,
    slot_nanos: u64,
    slots: usize,
    max_series: usize,
}

/// One series over a window, for the JSON API.
#[derive(Clone, Debug)]
pub struct RedSnapshot {
    /// Service name.
    pub service: String,
    /// Span name.
    pub operation: String,
    /// Span kind.
    pub kind: SpanKind,
    /// Sums over the window.
    pub stats: WindowStats,
    /// Recent traces of this series, newest first.
    pub exemplars: Vec<crate::histogram::Exemplar>,
}

impl SpanMetrics {
    /// No series yet, with the limits of `config`.
    pub fn new(config: &AnalysisConfig) -> Self {
        Self {
            services: HashMap::new(),
            names: Interner::new(config.max_services),
            overflow: RedSeries::default(),
            series: 0,
            overflowed_spans: 0,
            slot_nanos: config.slot_nanos(),
            slots: config.slots,
            max_series: config.max_series,
        }
    }

    /// Counts the spans of one batch that arrived at `now`.
    pub fn observe(&mut self, spans: &[Span], now: UnixNanos) {
        let (slot, slots) = (now.0 / self.slot_nanos, self.slots);
        for span in spans {
            let code = span.status.code;
            let obs = Observation {
                nanos: span.duration_nanos(),
                error: code == StatusCode::Error,
                trace_id: span.trace_id,
                end: span.end,
            };
            let series = self.series_for(span.service_name(), &span.name, span.kind);
            series.record(&obs, code, slot, slots);
        }
    }

    fn series_for(&mut self, service: &str, operation: &str, kind: SpanKind) -> &mut RedSeries {
        let k = kind as usize;
        let exists = self
            .services
            .get(service)
            .and_then(|ops| ops.get(operation))
            .is_some_and(|kinds| kinds[k].is_some());
        if !exists {
            if self.series >= self.max_series {
                self.overflowed_spans += 1;
                return &mut self.overflow;
            }
            let name = self.names.get(service);
            if &*name == OVERFLOW {
                self.overflowed_spans += 1;
                return &mut self.overflow;
            }
            self.series += 1;
            let ops = self.services.entry(name).or_default();
            if !ops.contains_key(operation) {
                ops.insert(operation.to_owned(), Default::default());
            }
        }
        // Both levels exist now (inserted above or found), so these lookups succeed; falling
        // back to the overflow series keeps the hot path free of panics regardless.
        match self
            .services
            .get_mut(service)
            .and_then(|ops| ops.get_mut(operation))
        {
            Some(kinds) => kinds[k].get_or_insert_with(Default::default),
            None => &mut self.overflow,
        }
    }

    /// Spans counted into the overflow series.
    pub fn overflowed_spans(&self) -> u64 {
        self.overflowed_spans
    }

    /// Service names that fell beyond the service limit.
    pub fn names_overflowed(&self) -> u64 {
        self.names.overflowed()
    }

    /// Distinct series held.
    pub fn series_count(&self) -> usize {
        self.series
    }

    /// Every series with its labels (service, operation, kind), the overflow series last.
    pub fn all(&self) -> impl Iterator<Item = (&str, &str, SpanKind, &RedSeries)> {
        let overflow = (self.overflow.latency.total().count() > 0).then_some((
            OVERFLOW,
            OVERFLOW,
            SpanKind::Unspecified,
            &self.overflow,
        ));
        self.services
            .iter()
            .flat_map(|(service, ops)| {
                ops.iter().flat_map(move |(op, kinds)| {
                    kinds.iter().enumerate().filter_map(move |(k, s)| {
                        s.as_deref()
                            .map(|s| (&**service, op.as_str(), SpanKind::from_i32(k as i32), s))
                    })
                })
            })
            .chain(overflow)
    }

    /// Series of `service` (all when `None`) over the `window_slots` newest slots at `now`,
    /// those with traffic in the window, sorted by service, operation, kind.
    pub fn snapshot(
        &self,
        service: Option<&str>,
        now: UnixNanos,
        window_slots: u64,
    ) -> Vec<RedSnapshot> {
        let now_slot = now.0 / self.slot_nanos;
        let mut out: Vec<RedSnapshot> = self
            .all()
            .filter(|(s, ..)| service.is_none_or(|want| want == *s))
            .map(|(s, op, kind, series)| RedSnapshot {
                service: s.to_owned(),
                operation: op.to_owned(),
                kind,
                stats: series.latency.window(now_slot, window_slots),
                exemplars: series.latency.recent_exemplars(3),
            })
            .filter(|r| r.stats.calls > 0)
            .collect();
        out.sort_by(|a, b| {
            (&a.service, &a.operation, a.kind).cmp(&(&b.service, &b.operation, b.kind))
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_spans::span;

    const S: u64 = 1_000_000_000;

    #[test]
    fn counts_per_service_operation_kind_and_status() {
        let mut m = SpanMetrics::new(&AnalysisConfig::default());
        let a = span("cart", 1, 1, None, SpanKind::Server, 0, 3_000);
        let mut b = span("cart", 1, 1, None, SpanKind::Server, 0, 5_000);
        b.status.code = StatusCode::Error;
        let c = span("cart", 1, 1, None, SpanKind::Client, 0, 1_000);
        m.observe(&[a, b, c], UnixNanos(10 * S));
        let snap = m.snapshot(Some("cart"), UnixNanos(10 * S), 6);
        assert_eq!(snap.len(), 2);
        let server = snap.iter().find(|r| r.kind == SpanKind::Server).unwrap();
        assert_eq!((server.stats.calls, server.stats.errors), (2, 1));
        assert_eq!(server.stats.latency.counts[1], 1);
        assert_eq!(server.stats.latency.counts[2], 1);
        let (.., series) = m.all().find(|(_, _, k, _)| *k == SpanKind::Server).unwrap();
        assert_eq!(series.status, [1, 0, 1]);
        assert!(m.snapshot(Some("nope"), UnixNanos(10 * S), 6).is_empty());
        assert!(m.snapshot(None, UnixNanos(1000 * S), 6).is_empty());
    }

    #[test]
    fn cardinality_beyond_the_limit_goes_to_overflow_and_is_counted() {
        let mut m = SpanMetrics::new(&AnalysisConfig {
            max_series: 3,
            ..AnalysisConfig::default()
        });
        let spans: Vec<Span> = (1..=10u8)
            .map(|i| span("cart", 1, i, None, SpanKind::Server, 0, 100))
            .collect();
        m.observe(&spans, UnixNanos(S));
        m.observe(&spans[..1], UnixNanos(S));
        assert_eq!(m.series_count(), 3);
        assert_eq!(m.overflowed_spans(), 7);
        let snap = m.snapshot(None, UnixNanos(S), 1);
        assert_eq!(snap.len(), 4);
        let overflow = snap.iter().find(|r| r.service == OVERFLOW).unwrap();
        assert_eq!(overflow.stats.calls, 7);
        let first = snap.iter().find(|r| r.operation == "op-1").unwrap();
        assert_eq!(first.stats.calls, 2);
    }
}
