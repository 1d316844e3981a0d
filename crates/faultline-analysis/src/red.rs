//! RED metrics (rate, errors, duration) per service, operation and span kind, streamed from
//! every span as it arrives, with bounded cardinality.
//!
//! Series are found by one keyed hash of (service, operation) and a string comparison, and the
//! span kind indexes a small array, so a span of a known series costs no allocation. Beyond
//! `max_series` distinct series, spans count into one overflow series whose labels are all
//! `__overflow__`, and the spans sent there are counted.
//!
//! **Dimensions.** `AnalysisConfig::red_dimensions` names attributes (span first, then
//! resource) whose values split the series further for `/metrics`, as Tempo's span-metrics
//! `dimensions` do. Each span then also counts into a dimensioned series keyed by (operation,
//! kind, values); those share the `max_series` limit and have an overflow series of their own.
//! The undimensioned series stay: the detector and the JSON API read them.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::Arc;

use faultline_model::{AttributeValue, Resource, Span, SpanKind, StatusCode, UnixNanos};

use crate::config::AnalysisConfig;
use crate::intern::{Interner, OVERFLOW};
use crate::window::{Observation, WindowStats, WindowedSeries};

const KINDS: usize = 6;

/// Longest dimension value kept, in bytes; longer ones are cut at a character boundary.
pub const MAX_DIMENSION_VALUE_LEN: usize = 128;

/// Separates dimension values inside a series' key (a control character no label uses).
const SEP: char = '\u{1f}';

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
    /// Its dimensioned series, when dimensions are configured: an index into `dimensioned`,
    /// or `u32::MAX` for their overflow series.
    dimensioned: Option<u32>,
    code: StatusCode,
    obs: Observation,
}

/// One (operation, kind, dimension values) series.
#[derive(Debug)]
struct DimensionedSeries {
    operation: u32,
    kind: u8,
    /// The values joined by [`SEP`], in `dimensions` order; `""` when a span lacks one.
    key: Box<str>,
    series: RedSeries,
}

/// All RED series.
///
/// Operations are found by one keyed hash of (service, span name) and a string comparison, so
/// a span of a known series costs one hash and no allocation.
#[derive(Debug)]
pub struct SpanMetrics {
    index: HashMap<u64, Vec<u32>, BuildHasherDefault<Prehashed>>,
    operations: Vec<Operation>,
    /// Seeded (names come from clients); foldhash rather than std's SipHash, which cost as
    /// much as the rest of a span's lookup.
    keys: foldhash::fast::RandomState,
    names: Interner,
    overflow: RedSeries,
    series: usize,
    overflowed_spans: u64,
    slot_nanos: u64,
    slots: usize,
    max_series: usize,
    /// Attribute keys that split the dimensioned series.
    dimensions: Vec<Box<str>>,
    dim_index: HashMap<u64, Vec<u32>, BuildHasherDefault<Prehashed>>,
    dimensioned: Vec<DimensionedSeries>,
    dim_overflow: RedSeries,
    dim_overflowed_spans: u64,
    /// Reused to build a span's dimension key without allocating.
    key_buf: String,
}

/// One dimensioned series, for `/metrics`.
pub struct DimensionedRef<'a> {
    /// Service name.
    pub service: &'a str,
    /// Span name.
    pub operation: &'a str,
    /// Span kind.
    pub kind: SpanKind,
    /// One value per configured dimension, in order (`""` when absent).
    pub values: Vec<&'a str>,
    /// The series.
    pub series: &'a RedSeries,
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
            keys: foldhash::fast::RandomState::default(),
            names: Interner::new(config.max_services),
            overflow: RedSeries::default(),
            series: 0,
            overflowed_spans: 0,
            slot_nanos: config.slot_nanos(),
            slots: config.slots,
            max_series: config.max_series,
            dimensions: config
                .red_dimensions
                .iter()
                .map(|d| d.as_str().into())
                .collect(),
            dim_index: HashMap::default(),
            dimensioned: Vec::new(),
            dim_overflow: RedSeries::default(),
            dim_overflowed_spans: 0,
            key_buf: String::new(),
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
            let series = self.resolve(service, &span.name, span.kind);
            let dimensioned = if self.dimensions.is_empty() {
                None
            } else {
                Some(self.resolve_dimensioned(series, span))
            };
            out.push(PreparedSpan {
                series,
                dimensioned,
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
            if let Some(d) = p.dimensioned {
                let series = match self.dimensioned.get_mut(d as usize) {
                    Some(d) => &mut d.series,
                    None => {
                        self.dim_overflowed_spans += 1;
                        &mut self.dim_overflow
                    }
                };
                series.record(&p.obs, p.code, slot, slots);
            }
        }
    }

    /// The dimensioned series of `span`, whose plain series is `base`: an index into
    /// `dimensioned`, or `u32::MAX` (overflow).
    fn resolve_dimensioned(&mut self, base: SeriesRef, span: &Span) -> u32 {
        let SeriesRef::Series { operation, kind } = base else {
            return u32::MAX;
        };
        let mut key = std::mem::take(&mut self.key_buf);
        key.clear();
        for (i, d) in self.dimensions.iter().enumerate() {
            if i > 0 {
                key.push(SEP);
            }
            let value = span.attribute(d).or_else(|| {
                span.resource
                    .attributes
                    .iter()
                    .find(|kv| *kv.key == **d)
                    .map(|kv| &kv.value)
            });
            let start = key.len();
            match value {
                Some(AttributeValue::String(s)) => key.push_str(s),
                Some(AttributeValue::Bool(b)) => key.push_str(if *b { "true" } else { "false" }),
                Some(AttributeValue::Int(v)) => {
                    let _ = write!(key, "{v}");
                }
                Some(AttributeValue::Double(v)) => {
                    let _ = write!(key, "{v}");
                }
                Some(other) => key.push_str(&other.to_text()),
                None => {}
            }
            // Bound the value, and keep the separator out of it.
            let mut end = key.len().min(start + MAX_DIMENSION_VALUE_LEN);
            while !key.is_char_boundary(end) {
                end -= 1;
            }
            key.truncate(end);
            if key[start..].contains(SEP) {
                let cleaned = key[start..].replace(SEP, " ");
                key.truncate(start);
                key.push_str(&cleaned);
            }
        }
        let hash = self.keys.hash_one((operation, kind, key.as_str()));
        let all = &self.dimensioned;
        let found = self.dim_index.get(&hash).and_then(|ids| {
            ids.iter().copied().find(|&i| {
                let d = &all[i as usize];
                d.operation == operation && d.kind == kind && *d.key == *key
            })
        });
        let index = match found {
            Some(i) => i,
            None => match u32::try_from(self.dimensioned.len()) {
                Ok(i) if self.series < self.max_series && i < u32::MAX => {
                    self.series += 1;
                    self.dimensioned.push(DimensionedSeries {
                        operation,
                        kind,
                        key: key.as_str().into(),
                        series: RedSeries::default(),
                    });
                    self.dim_index.entry(hash).or_default().push(i);
                    i
                }
                _ => u32::MAX,
            },
        };
        self.key_buf = key;
        index
    }

    /// Whether dimensions are configured (then `/metrics` shows [`Self::dimensioned`]).
    pub fn has_dimensions(&self) -> bool {
        !self.dimensions.is_empty()
    }

    /// The configured dimension keys.
    pub fn dimensions(&self) -> impl Iterator<Item = &str> {
        self.dimensions.iter().map(|d| &**d)
    }

    /// Spans counted into the dimensioned overflow series.
    pub fn dimensioned_overflowed_spans(&self) -> u64 {
        self.dim_overflowed_spans
    }

    /// Every dimensioned series, then their overflow series (all labels `__overflow__`) if it
    /// counted anything.
    pub fn dimensioned(&self) -> impl Iterator<Item = DimensionedRef<'_>> {
        let n = self.dimensions.len();
        let overflow = (self.dim_overflow.latency.total().count() > 0).then(|| DimensionedRef {
            service: OVERFLOW,
            operation: OVERFLOW,
            kind: SpanKind::Unspecified,
            values: vec![OVERFLOW; n],
            series: &self.dim_overflow,
        });
        self.dimensioned
            .iter()
            .filter_map(move |d| {
                let op = self.operations.get(d.operation as usize)?;
                Some(DimensionedRef {
                    service: &op.service,
                    operation: &op.name,
                    kind: SpanKind::from_i32(i32::from(d.kind)),
                    values: d.key.split(SEP).collect(),
                    series: &d.series,
                })
            })
            .chain(overflow)
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

    /// Distinct series held (plain and dimensioned).
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

    #[test]
    fn dimensioned_series_share_the_limit_and_overflow_on_their_own() {
        use faultline_model::{AttributeValue, KeyValue};
        let mut m = SpanMetrics::new(&AnalysisConfig {
            max_series: 3,
            red_dimensions: vec!["user.id".into()],
            ..AnalysisConfig::default()
        });
        let spans: Vec<Span> = (0..6u8)
            .map(|i| {
                let mut s = span("cart", 1, 1, None, SpanKind::Server, 0, 100);
                // A value with the separator in it and one longer than the cap.
                let value = match i {
                    0 => "a\u{1f}b".to_owned(),
                    1 => "x".repeat(500),
                    _ => format!("user-{i}"),
                };
                s.attributes.push(KeyValue::new(
                    "user.id",
                    AttributeValue::String(value.into()),
                ));
                s
            })
            .collect();
        m.observe(&spans, UnixNanos(S));
        // One plain series, two dimensioned ones, then the limit.
        assert_eq!(m.series_count(), 3);
        assert_eq!(m.overflowed_spans(), 0, "plain series are never displaced");
        assert_eq!(m.dimensioned_overflowed_spans(), 4);
        let all: Vec<_> = m.dimensioned().collect();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].values, ["a b"]);
        assert_eq!(all[1].values[0].len(), MAX_DIMENSION_VALUE_LEN);
        assert_eq!(all[2].service, OVERFLOW);
        assert_eq!(all[2].series.latency.total().count(), 4);
        // The same value again finds its series.
        m.observe(&spans[..1], UnixNanos(S));
        assert_eq!(m.dimensioned().next().unwrap().series.status, [2, 0, 0]);
    }
}
