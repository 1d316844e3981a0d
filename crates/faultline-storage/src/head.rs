//! The in-memory head: recent spans indexed by trace, serving queries until cut into a block.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasher;

use faultline_model::query::SpanQuery;
use faultline_model::{Span, SpanKind, TraceId, UnixNanos};

/// Where a span sits in [`Head::batches`]: batch, then position in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct At(u32, u32);

/// One trace's spans in a head, by where they sit, in arrival order.
#[derive(Default)]
pub(crate) struct HeadTrace {
    at: Vec<At>,
    pub(crate) dropped: u64,
}

/// Spans of one stretch of the WAL, indexed for queries.
#[derive(Default)]
pub(crate) struct Head {
    /// The spans, one vector per appended batch, as decoded. A batch's spans and their
    /// attribute lists lie in memory in the order they were allocated, so passes over all of
    /// them (search, and dropping a written head) stream through memory; visiting them trace
    /// by trace from a hash map cost a cache miss per span and per attribute list. An insert
    /// moves no span, it only notes where each one is.
    batches: Vec<Vec<Span>>,
    /// By client-chosen trace IDs, so with a seeded hasher: foldhash, a fraction of SipHash's
    /// cost per span.
    pub(crate) traces: foldhash::HashMap<TraceId, HeadTrace>,
    /// service → (operation, kind) pairs seen.
    pub(crate) operations: BTreeMap<String, BTreeSet<(String, SpanKind)>>,
    pub(crate) bytes: usize,
    pub(crate) spans: u64,
    pub(crate) dropped: u64,
    pub(crate) min_start: Option<UnixNanos>,
    pub(crate) max_start: Option<UnixNanos>,
    /// Hashes of the (service, operation, kind) triples in `operations`, seeded per head by
    /// `seed` so that a client cannot choose a triple whose hash hides another's.
    seen_operations: foldhash::HashSet<u64>,
    seed: foldhash::fast::RandomState,
}

impl Head {
    /// Adds a batch, keeping at most `max_per_trace` spans of each trace (the rest are counted
    /// as dropped).
    pub(crate) fn insert(&mut self, spans: Vec<Span>, max_per_trace: usize) {
        let bytes = spans.iter().map(span_bytes).sum();
        self.insert_sized(spans, bytes, max_per_trace);
    }

    /// [`insert`](Self::insert) of a batch whose [`span_bytes`] sum the caller has already
    /// taken (the append path does, for its budget check: one walk over every attribute
    /// less per span).
    pub(crate) fn insert_sized(
        &mut self,
        mut spans: Vec<Span>,
        bytes: usize,
        max_per_trace: usize,
    ) {
        // Positions are 32-bit; a batch beyond that (never within a memory budget) is split.
        if spans.len() > u32::MAX as usize {
            let rest = spans.split_off(u32::MAX as usize);
            self.insert(spans, max_per_trace);
            self.insert(rest, max_per_trace);
            return;
        }
        self.bytes += bytes;
        let Self {
            batches,
            traces,
            operations,
            bytes,
            spans: count,
            dropped,
            min_start,
            max_start,
            seen_operations,
            seed,
        } = self;
        // A head of 2^32 batches would need terabytes; should it happen, the batch is dropped
        // and counted rather than misplaced.
        let Ok(batch) = u32::try_from(batches.len()) else {
            *dropped += spans.len() as u64;
            *bytes -= spans.iter().map(span_bytes).sum::<usize>().min(*bytes);
            return;
        };
        // Positions (in `spans`) of spans over their trace's limit, removed at the end.
        let mut over: Vec<usize> = Vec::new();
        let mut i = 0;
        while let Some(first) = spans.get(i) {
            let id = first.trace_id;
            // Consecutive spans of one trace (a run) share one lookup.
            let run = spans
                .get(i..)
                .unwrap_or_default()
                .iter()
                .take_while(|s| s.trace_id == id)
                .count();
            let t = traces.entry(id).or_default();
            for (k, span) in spans.iter().enumerate().skip(i).take(run) {
                // Where the span will be once the spans over their limit are removed.
                let kept = (t.at.len() < max_per_trace)
                    .then(|| u32::try_from(k - over.len()).ok())
                    .flatten();
                let Some(kept) = kept else {
                    t.dropped += 1;
                    *dropped += 1;
                    *bytes -= span_bytes(span).min(*bytes);
                    over.push(k);
                    continue;
                };
                let svc = span.service_name();
                // Almost every span repeats a known operation; a hash check keeps that case free
                // of allocation (the set lookup would need an owned key).
                if seen_operations.insert(seed.hash_one((svc, span.name.as_str(), span.kind))) {
                    operations
                        .entry(svc.to_owned())
                        .or_default()
                        .insert((span.name.to_string(), span.kind));
                }
                *count += 1;
                *min_start = Some(min_start.map_or(span.start, |m| m.min(span.start)));
                *max_start = Some(max_start.map_or(span.start, |m| m.max(span.start)));
                t.at.push(At(batch, kept));
            }
            i += run;
        }
        if !over.is_empty() {
            let mut over = over.into_iter().peekable();
            let mut k = 0;
            spans.retain(|_| {
                let keep = over.next_if_eq(&k).is_none();
                k += 1;
                keep
            });
        }
        if !spans.is_empty() {
            batches.push(spans);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.spans == 0 && self.dropped == 0
    }

    /// The span at `at`.
    fn span(&self, at: At) -> Option<&Span> {
        self.batches.get(at.0 as usize)?.get(at.1 as usize)
    }

    /// The spans, batch by batch, in memory order (see `batches`).
    pub(crate) fn batches(&self) -> &[Vec<Span>] {
        &self.batches
    }

    /// Where a trace's spans sit in [`Head::batches`]: (batch, position in it), in arrival
    /// order.
    pub(crate) fn places_of<'h>(
        &self,
        t: &'h HeadTrace,
    ) -> impl Iterator<Item = (usize, usize)> + 'h {
        t.at.iter().map(|at| (at.0 as usize, at.1 as usize))
    }

    /// A trace's spans, in arrival order.
    pub(crate) fn spans_of<'h>(&'h self, t: &'h HeadTrace) -> impl Iterator<Item = &'h Span> {
        t.at.iter().filter_map(|at| self.span(*at))
    }

    /// Latest matching start per trace.
    pub(crate) fn search(&self, query: &SpanQuery, hits: &mut HashMap<TraceId, UnixNanos>) {
        if self
            .max_start
            .is_none_or(|m| m < query.start || self.min_start.is_some_and(|m| m > query.end))
        {
            return;
        }
        // In memory order (see `batches`): the per-trace answer is a maximum, so the order
        // the spans are visited in does not change it.
        for s in self.batches.iter().flatten() {
            if query.matches(s) {
                let e = hits.entry(s.trace_id).or_insert(s.start);
                *e = (*e).max(s.start);
            }
        }
    }
}

impl Head {
    /// Every span, borrowed, in memory order, for writing a block: a copy of a large head
    /// would double its memory while the block is encoded, and the writer reads them fastest
    /// in the order they lie. A retried batch sits in the head twice; the block writer keeps
    /// one copy of each span.
    pub(crate) fn all_spans(&self) -> Vec<&Span> {
        let mut out = Vec::with_capacity(usize::try_from(self.spans).unwrap_or(0));
        out.extend(self.batches.iter().flatten());
        out
    }

    /// Adds this head's spans of each wanted trace to `out`, with the per-trace drop count.
    pub(crate) fn collect_traces(
        &self,
        ids: &[TraceId],
        out: &mut HashMap<TraceId, (Vec<Span>, u64)>,
    ) {
        for id in ids {
            if let Some(t) = self.traces.get(id) {
                let e = out.entry(*id).or_default();
                e.0.extend(self.spans_of(t).cloned());
                e.1 += t.dropped;
            }
        }
    }
}

/// A head that has been cut off and is being written as a block; still queryable until the
/// block is committed.
pub(crate) struct FrozenHead {
    pub(crate) head: Head,
    /// The last WAL segment whose records are all in `head` (or in older blocks).
    pub(crate) wal_through: u64,
    /// The head's service dependencies, once paired with the carry (set under the carry's
    /// lock, exactly once, in cut order).
    pub(crate) edges: std::sync::OnceLock<faultline_block::EdgeTable>,
}

impl faultline_block::SpanSource for FrozenHead {
    fn spans(&self) -> Vec<&Span> {
        self.head.all_spans()
    }
}

/// Bytes a span is accounted for in the memory budget. [`Span::heap_size`] counts payload
/// bytes and struct sizes, which undercounts what the heap really holds: the allocator
/// (every allocation rounded up, about 16 bytes each on top), and the batch's `Vec<Span>` as
/// decoded (spare capacity) plus the span's place in its trace's index: half a span each
/// covers both. An interned key is no allocation of the span's.
pub(crate) fn span_bytes(span: &Span) -> usize {
    let kv_allocs = |attrs: &[faultline_model::KeyValue]| {
        1 + attrs
            .iter()
            .map(|kv| usize::from(kv.value.allocates()) + usize::from(!kv.key.is_interned()))
            .sum::<usize>()
    };
    let allocations = kv_allocs(&span.attributes)
        + span
            .events
            .iter()
            .map(|e| 1 + kv_allocs(&e.attributes))
            .sum::<usize>()
        + span
            .links
            .iter()
            .map(|l| 1 + kv_allocs(&l.attributes))
            .sum::<usize>()
        + usize::from(span.name.is_heap_allocated())
        + 1;
    span.heap_size() + std::mem::size_of::<Span>() / 2 + 16 * allocations
}

/// What makes two stored spans the same span: a retried batch or a replayed WAL record yields
/// spans equal in all of these.
type SpanKey = (faultline_model::SpanId, SpanKind, UnixNanos, UnixNanos);

fn key(s: &Span) -> SpanKey {
    (s.span_id, s.kind, s.start, s.end)
}

/// Removes repeated spans (same span ID, kind, start, end and name), keeping the first.
pub(crate) fn dedup_spans(spans: &mut Vec<Span>) {
    if spans.len() < 2 {
        return;
    }
    spans.sort_by(|a, b| key(a).cmp(&key(b)).then_with(|| a.name.cmp(&b.name)));
    spans.dedup_by(|a, b| key(a) == key(b) && a.name == b.name);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::span;

    #[test]
    fn dedup_keeps_distinct_spans() {
        let a = span(1, 1, 100, "svc", "op");
        let mut b = span(1, 1, 100, "svc", "op");
        let mut spans = vec![a.clone(), b.clone(), span(1, 2, 100, "svc", "op")];
        dedup_spans(&mut spans);
        assert_eq!(spans.len(), 2);
        b.name = "other".into();
        let mut spans = vec![a, b];
        dedup_spans(&mut spans);
        assert_eq!(spans.len(), 2);
    }

    #[test]
    fn all_spans_borrows_each_stored_span_in_memory_order() {
        let mut head = Head::default();
        let a = span(1, 1, 100, "svc", "op");
        let b = span(1, 2, 100, "svc", "op");
        let c = span(2, 1, 100, "svc", "op");
        // A retried batch: everything twice (the block writer keeps one of each).
        head.insert(vec![a.clone(), b.clone(), c.clone()], 100);
        head.insert(vec![a.clone(), b.clone(), c.clone()], 100);
        let got: Vec<Span> = head.all_spans().into_iter().cloned().collect();
        assert_eq!(got, vec![a.clone(), b.clone(), c.clone(), a, b, c]);
    }

    #[test]
    fn accounted_bytes_cover_more_than_the_payload() {
        let s = span(1, 1, 100, "svc", "op");
        assert!(span_bytes(&s) > s.heap_size() + 16 * s.attributes.len());
    }

    #[test]
    fn per_trace_limit_counts_drops() {
        let mut head = Head::default();
        head.insert((1..=5).map(|i| span(9, i, 100, "s", "o")).collect(), 3);
        assert_eq!(head.spans, 3);
        assert_eq!(head.dropped, 2);
        // Only the kept spans count against the budget.
        assert_eq!(head.bytes, 3 * span_bytes(&span(9, 1, 100, "s", "o")));
        assert_eq!(head.traces.len(), 1);
    }

    #[test]
    fn interleaved_runs_of_traces_keep_order_limits_and_operations() {
        let mut head = Head::default();
        // Runs of traces 1, 2, 1, 3, 2, 2: each trace's spans in arrival order, the limit of
        // two applied across runs and batches.
        let batch = [(1, 1), (1, 2), (2, 1), (1, 3), (3, 1), (2, 2), (2, 3)]
            .into_iter()
            .map(|(t, i)| span(t, i, 100 + i, "s", &format!("op{t}")))
            .collect();
        head.insert(batch, 2);
        head.insert(vec![span(3, 2, 200, "s", "late")], 2);
        let starts = |t: u64| -> Vec<u64> {
            head.spans_of(&head.traces[&crate::test_util::trace_id(t)])
                .map(|s| s.start.0)
                .collect()
        };
        assert_eq!(starts(1), [101, 102]);
        assert_eq!(starts(2), [101, 102]);
        assert_eq!(starts(3), [101, 200]);
        // The spans over the limit are gone from their batch, the rest stay in arrival order.
        let batches: Vec<Vec<(u64, u64)>> = head
            .batches
            .iter()
            .map(|b| {
                b.iter()
                    .map(|s| (s.trace_id.0[15].into(), s.start.0 - 100))
                    .collect()
            })
            .collect();
        assert_eq!(
            batches,
            [vec![(1, 1), (1, 2), (2, 1), (3, 1), (2, 2)], vec![(3, 100)]]
        );
        assert_eq!((head.spans, head.dropped), (6, 2));
        let ops: Vec<&str> = head.operations["s"]
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(ops, ["late", "op1", "op2", "op3"]);
        assert_eq!(head.min_start, Some(UnixNanos(101)));
        assert_eq!(head.max_start, Some(UnixNanos(200)));
    }
}
