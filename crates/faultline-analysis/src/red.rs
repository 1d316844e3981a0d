//! RED metrics (rate, errors, duration) per service, operation and span kind, streamed from
//! every span as it arrives, with bounded cardinality.
//!
//! Series are found by one keyed hash of (service, operation) and a string comparison, and the
//! span kind indexes a small array, so a span of a known series costs no allocation. Beyond
//! `max_series` distinct series, spans count into one overflow series whose labels are all
//! `__overflow__`, and the spans sent there are counted.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::Arc;

use faultline_model::{Resource, Span, SpanKind, StatusCode, UnixNanos};

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

/// One operation of one service, with a series per span kind seen.
#[derive(Debug)]
struct Operation {
    service: Arc<str>,
    name: Box<str>,
    kinds: KindSeries,
}

/// A hasher for keys that are already the output of a keyed hash: it passes them through.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; fold anything else so the hasher stays correct.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// Where a prepared span will be counted.
#[derive(Clone, Copy, Debug)]
pub enum SeriesRef {
    /// An operation's series of one kind.
    Series {
        /// Index of the operation.
        operation: u32,
        /// The span kind's index.
        kind: u8,
    },
    /// The overflow series.
    Overflow,
}

/// A span resolved to its series, ready to be counted.
#[derive(Clone, Copy, Debug)]
pub struct PreparedSpan {
    series: SeriesRef,
    code: StatusCode,
    obs: Observation,
}

/// All RED series.
///
/// Operations are found by one keyed hash of (service, span name) and a string comparison, so
/// a span of a known series costs one hash and no allocation.
#[derive(Debug)]
pub struct SpanMetrics {
    index: HashMap<u64, Vec<u32>, BuildHasherDefault<Prehashed>>,
    operations: Vec<Operation>,
    keys: RandomState,
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
            index: HashMap::default(),
            operations: Vec::new(),
            keys: RandomState::new(),
            names: Interner::new(config.max_services),
            overflow: RedSeries::default(),
            series: 0,
            overflowed_spans: 0,
            slot_nanos: config.slot_nanos(),
            slots: config.slots,
            max_series: config.max_series,
        }
    }

    /// Counts the spans of one batch that arrived at `now` (tests; the analyzer prepares and
    /// commits).
    #[cfg(test)]
    pub fn observe(&mut self, spans: &[Span], now: UnixNanos) {
        let mut prepared = Vec::with_capacity(spans.len());
        self.prepare(spans, &mut prepared);
        self.commit(&prepared, now);
    }

    /// Resolves each span's series (creating it if needed) into `out`, recording nothing, so
    /// that the counts can be committed once the spans are stored.
    pub fn prepare(&mut self, spans: &[Span], out: &mut Vec<PreparedSpan>) {
        // Spans of one batch mostly share their resource: look its service name up once.
        let mut last: Option<(*const Resource, &str)> = None;
        for span in spans {
            let resource = Arc::as_ptr(&span.resource);
            let service = match last {
                Some((r, name)) if r == resource => name,
                _ => {
                    let name = span.service_name();
                    last = Some((resource, name));
                    name
                }
            };
            let code = span.status.code;
            out.push(PreparedSpan {
                series: self.resolve(service, &span.name, span.kind),
                code,
                obs: Observation {
                    nanos: span.duration_nanos(),
                    error: code == StatusCode::Error,
                    trace_id: span.trace_id,
                    end: span.end,
                },
            });
        }
    }

    /// Records prepared spans that arrived at `now`.
    pub fn commit(&mut self, prepared: &[PreparedSpan], now: UnixNanos) {
        let (slot, slots) = (now.0 / self.slot_nanos, self.slots);
        for p in prepared {
            let series = match p.series {
                SeriesRef::Series { operation, kind } => self
                    .operations
                    .get_mut(operation as usize)
                    .and_then(|op| op.kinds[usize::from(kind)].as_deref_mut()),
                SeriesRef::Overflow => None,
            };
            let series = match series {
                Some(s) => s,
                None => {
                    self.overflowed_spans += 1;
                    &mut self.overflow
                }
            };
            series.record(&p.obs, p.code, slot, slots);
        }
    }

    fn resolve(&mut self, service: &str, operation: &str, kind: SpanKind) -> SeriesRef {
        let hash = self.keys.hash_one((service, operation));
        let ops = &self.operations;
        let found = self.index.get(&hash).and_then(|ids| {
            ids.iter().copied().find(|&i| {
                let op = &ops[i as usize];
                &*op.service == service && &*op.name == operation
            })
        });
        let i = match found {
            Some(i) => i,
            None => {
                let name = self.names.get(service);
                if self.series >= self.max_series || &*name == OVERFLOW {
                    return SeriesRef::Overflow;
                }
                let Ok(i) = u32::try_from(self.operations.len()) else {
                    return SeriesRef::Overflow;
                };
                self.operations.push(Operation {
                    service: name,
                    name: operation.into(),
                    kinds: Default::default(),
                });
                self.index.entry(hash).or_default().push(i);
                i
            }
        };
        let slot = &mut self.operations[i as usize].kinds[kind as usize];
        if slot.is_none() {
            if self.series >= self.max_series {
                return SeriesRef::Overflow;
            }
            self.series += 1;
            *slot = Some(Box::default());
        }
        SeriesRef::Series {
            operation: i,
            kind: kind as u8,
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
        self.operations
            .iter()
            .flat_map(|op| {
                op.kinds.iter().enumerate().filter_map(move |(k, s)| {
                    s.as_deref()
                        .map(|s| (&*op.service, &*op.name, SpanKind::from_i32(k as i32), s))
                })
            })
            .chain(overflow)
    }

    /// Visits every series (not the overflow one) with a stable key: the operation's index
    /// and the kind, which never change once a series exists.
    pub fn visit(&self, mut f: impl FnMut(u32, SpanKind, &str, &str, &WindowedSeries)) {
        for (i, op) in self.operations.iter().enumerate() {
            for (k, s) in op.kinds.iter().enumerate() {
                if let Some(s) = s.as_deref() {
                    f(
                        i as u32,
                        SpanKind::from_i32(k as i32),
                        &op.service,
                        &op.name,
                        &s.latency,
                    );
                }
            }
        }
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
