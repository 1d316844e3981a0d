//! Service dependencies resolved when heads are written, so that a call whose parent and child
//! spans fall into different heads (and so different blocks) is still counted, once.
//!
//! Each head written as a block is one *generation*. Its spans are paired with their parents
//! among the spans of the same head and the [`Carry`]: what earlier generations left behind —
//! their spans (trace ID, span ID → service), and their *orphans*, children whose parent had
//! not arrived yet (children often end, and are exported, before their parents). The edges
//! found go into the block's [`EdgeTable`], bucketed by the start of the span that makes them.
//!
//! A CLIENT or PRODUCER span naming its callee in a peer attribute and answered by no child of
//! another service is counted at once as a call to that *virtual node* (as
//! [`faultline_model::query::service_edges`] counts it). If a child of another service arrives
//! in a later generation, that generation's table counts the parent→child edge and takes the
//! virtual edge back with −1 in the client span's bucket: summed over blocks, every call counts
//! once, and nothing waits in memory to be counted.
//!
//! The carry is bounded by [`StoreTuning::dependency_carry_spans`](crate::StoreTuning): the
//! newest generation is always kept, older ones only while all kept generations together hold
//! at most that many spans. Orphans of a generation that expires are counted in
//! [`Carry::expired_orphans`] (no edge: their parent never arrived in time). On open the carry
//! is rebuilt from the newest blocks ([`rebuild`]), so the heads replayed from the WAL pair with
//! them as if the process had not stopped.

use std::collections::VecDeque;
use std::sync::Arc;

use faultline_block::{BlockMeta, EdgeTable, FooterCache};
use faultline_model::query::peer_of;
use faultline_model::{Span, SpanId, SpanKind, TraceId};
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;

use crate::head::Head;

type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Width of the time buckets of the edge tables this build writes, in seconds. Ten seconds keep
/// a store's tables small (about 26,000 buckets per edge over 72 hours, summed over all blocks)
/// while a dependencies window is rounded out by at most ten seconds at each end.
pub(crate) const EDGE_BUCKET_SECS: u64 = 10;

/// Traces up to this many spans (or carried spans) are searched by a linear scan; larger ones
/// get a map for the time they are paired.
const SCAN: usize = 24;

/// A span of an earlier generation.
struct Known {
    span_id: SpanId,
    service: Arc<str>,
    generation: u64,
    /// The virtual node this span was counted as calling (callee, bucket), until a child of
    /// another service answers it and the count is taken back.
    peer: Option<(Arc<str>, u64)>,
}

/// A child whose parent had not been seen when its generation was written.
struct Orphan {
    parent: SpanId,
    service: Arc<str>,
    bucket: u64,
    generation: u64,
}

/// What earlier generations left for later ones to pair with (see the module docs), by trace:
/// one map operation per trace rather than per span.
#[derive(Default)]
pub(crate) struct Carry {
    generation: u64,
    known: HashMap<TraceId, Vec<Known>>,
    orphans: HashMap<TraceId, Vec<Orphan>>,
    /// (generation, spans) of the generations kept, oldest first.
    generations: VecDeque<(u64, u64)>,
    budget_spans: u64,
    /// Orphans dropped with their generation, parent never seen.
    pub(crate) expired_orphans: u64,
}

/// The result of pairing spans: the edges they make, and (when recorded) what the carry must
/// learn from them.
pub(crate) struct Pairing {
    pub(crate) table: EdgeTable,
    update: Option<Update>,
}

#[derive(Default)]
struct Update {
    known: Vec<(TraceId, Vec<Known>)>,
    orphans: Vec<(TraceId, Orphan)>,
    /// Orphans (trace, parent) whose parent arrived.
    adopted: Vec<(TraceId, SpanId)>,
    /// Carried spans whose virtual edge was taken back.
    answered: Vec<(TraceId, SpanId)>,
    spans: u64,
}

/// What pairing needs of a span, taken in one pass over the spans in memory order (a head's
/// batches as decoded): pairing then visits the spans trace by trace, and reading these small
/// records in that order costs far fewer cache misses than reading the spans and their
/// attribute lists there.
#[derive(Clone, Copy)]
struct Brief {
    span_id: SpanId,
    parent: Option<SpanId>,
    /// Bucket of the span's start.
    bucket: u64,
    service: u32,
    /// For a CLIENT or PRODUCER span: the callee its attributes name (see [`peer_of`]).
    peer: Option<u32>,
    /// A CLIENT or PRODUCER span.
    calls: bool,
}

/// A span of the trace being paired.
struct Local {
    brief: Brief,
    answered: bool,
    /// Seen before (earlier in this trace or carried): counts nothing.
    repeat: bool,
}

/// Names (services and virtual nodes) of one pairing as small integers, so that counting
/// hashes integers, not strings.
#[derive(Default)]
struct Names<'s> {
    ids: HashMap<&'s str, u32>,
    list: Vec<&'s str>,
    arcs: Vec<Option<Arc<str>>>,
}

impl<'s> Names<'s> {
    fn id(&mut self, name: &'s str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = u32::try_from(self.list.len()).unwrap_or(u32::MAX);
        self.ids.insert(name, id);
        self.list.push(name);
        self.arcs.push(None);
        id
    }

    fn name(&self, id: u32) -> &'s str {
        self.list.get(id as usize).copied().unwrap_or_default()
    }

    /// The name as an `Arc` for the carry, allocated once per pairing.
    fn shared(&mut self, id: u32) -> Arc<str> {
        let name = self.name(id);
        match self.arcs.get_mut(id as usize) {
            Some(Some(a)) => Arc::clone(a),
            Some(slot) => Arc::clone(slot.insert(Arc::from(name))),
            None => Arc::from(name),
        }
    }
}

/// Position of span `id` among `ids` (the first one): through `map` when it was built for
/// them, by a scan otherwise.
fn find(
    id: SpanId,
    len: usize,
    nth: impl Fn(usize) -> SpanId,
    map: &HashMap<SpanId, usize>,
) -> Option<usize> {
    if len > SCAN {
        map.get(&id).copied()
    } else {
        (0..len).find(|&i| nth(i) == id)
    }
}

/// The spans of one pairing as [`Brief`]s, with the names they use.
struct Briefing<'s> {
    briefs: Vec<Brief>,
    names: Names<'s>,
    /// The service by the address of the span's shared resource: looking it up in the
    /// resource's attributes for every span costs a scan each.
    by_resource: HashMap<usize, u32>,
    /// The table the pairing fills (it knows the buckets).
    table: EdgeTable,
}

impl Default for Briefing<'_> {
    fn default() -> Self {
        Self {
            briefs: Vec::new(),
            names: Names::default(),
            by_resource: HashMap::default(),
            table: EdgeTable::new(EDGE_BUCKET_SECS),
        }
    }
}

impl<'s> Briefing<'s> {
    /// Briefs `spans`, in their order.
    fn add(&mut self, spans: &'s [Span]) {
        self.briefs.reserve(spans.len());
        for s in spans {
            let names = &mut self.names;
            let service = *self
                .by_resource
                .entry(Arc::as_ptr(&s.resource) as usize)
                .or_insert_with(|| names.id(s.service_name()));
            let calls = matches!(s.kind, SpanKind::Client | SpanKind::Producer);
            let peer = if calls {
                peer_of(s).map(|(_, peer)| self.names.id(peer))
            } else {
                None
            };
            self.briefs.push(Brief {
                span_id: s.span_id,
                parent: s.parent_span_id,
                bucket: self.table.bucket_of(s.start),
                service,
                peer,
                calls,
            });
        }
    }
}

impl Carry {
    /// An empty carry keeping at most `budget_spans` spans of older generations (and always
    /// the newest).
    pub(crate) fn new(budget_spans: u64) -> Self {
        Self {
            budget_spans,
            ..Self::default()
        }
    }

    /// Spans of earlier generations currently known.
    #[cfg(test)]
    pub(crate) fn known_spans(&self) -> usize {
        self.known.values().map(Vec::len).sum()
    }

    /// Pairs the spans of `heads` as one generation (a trace may be spread over several).
    pub(crate) fn pair_heads(&self, heads: &[&Head], record: bool) -> Pairing {
        let mut briefing = Briefing::default();
        // Where each head's batches start among the briefs.
        let mut starts: Vec<Vec<usize>> = Vec::with_capacity(heads.len());
        for h in heads {
            let mut offsets = Vec::with_capacity(h.batches().len());
            for batch in h.batches() {
                offsets.push(briefing.briefs.len());
                briefing.add(batch);
            }
            starts.push(offsets);
        }
        let at = |offsets: &[usize], (batch, i): (usize, usize)| offsets.get(batch).map(|o| o + i);
        match heads {
            [head] => {
                let offsets = starts.first().map_or(&[][..], Vec::as_slice);
                let traces = head
                    .traces
                    .iter()
                    .map(|(id, t)| (*id, head.places_of(t).filter_map(|p| at(offsets, p))));
                self.pair(briefing, traces, record)
            }
            _ => {
                let mut by_trace: HashMap<TraceId, Vec<usize>> = HashMap::default();
                for (h, offsets) in heads.iter().zip(&starts) {
                    for (id, t) in &h.traces {
                        by_trace
                            .entry(*id)
                            .or_default()
                            .extend(h.places_of(t).filter_map(|p| at(offsets, p)));
                    }
                }
                self.pair(briefing, by_trace, record)
            }
        }
    }

    /// Pairs `spans` (in any order) as one generation.
    pub(crate) fn pair_spans(&self, spans: &[Span], record: bool) -> Pairing {
        let mut briefing = Briefing::default();
        briefing.add(spans);
        if spans.is_sorted_by_key(|s| s.trace_id) {
            let mut runs = Vec::new();
            let mut i = 0;
            for run in spans.chunk_by(|a, b| a.trace_id == b.trace_id) {
                if let Some(first) = run.first() {
                    runs.push((first.trace_id, i..i + run.len()));
                }
                i += run.len();
            }
            self.pair(briefing, runs, record)
        } else {
            let mut by_trace: HashMap<TraceId, Vec<usize>> = HashMap::default();
            for (i, s) in spans.iter().enumerate() {
                by_trace.entry(s.trace_id).or_default().push(i);
            }
            self.pair(briefing, by_trace, record)
        }
    }

    /// Pairs one generation, given trace by trace (each item a trace ID and the positions of
    /// all its spans among `briefing`'s), counting their edges; with `record`, also returns
    /// what [`Carry::advance`] needs. A span already known (same trace and span ID, from a
    /// retried batch or a replay) is a repeat and counts nothing.
    fn pair<'s, G>(
        &'s self,
        briefing: Briefing<'s>,
        traces: impl IntoIterator<Item = (TraceId, G)>,
        record: bool,
    ) -> Pairing
    where
        G: IntoIterator<Item = usize>,
    {
        let Briefing {
            briefs,
            mut names,
            mut table,
            ..
        } = briefing;
        let mut counts: HashMap<(u32, u32, u64), i64> = HashMap::default();
        let mut update = record.then(Update::default);
        let mut local: Vec<Local> = Vec::new();
        let mut local_map: HashMap<SpanId, usize> = HashMap::default();
        let mut known_map: HashMap<SpanId, usize> = HashMap::default();
        let mut answered_known: Vec<usize> = Vec::new();
        let no_known: &[Known] = &[];
        let no_orphans: &[Orphan] = &[];
        for (trace_id, group) in traces {
            local.clear();
            local.extend(group.into_iter().filter_map(|i| {
                briefs.get(i).map(|&brief| Local {
                    brief,
                    answered: false,
                    repeat: false,
                })
            }));
            if local.is_empty() {
                continue;
            }
            let known = self.known.get(&trace_id).map_or(no_known, Vec::as_slice);
            let orphans = self
                .orphans
                .get(&trace_id)
                .map_or(no_orphans, Vec::as_slice);
            if local.len() > SCAN {
                local_map.clear();
                for (i, l) in local.iter().enumerate() {
                    local_map.entry(l.brief.span_id).or_insert(i);
                }
            }
            if known.len() > SCAN {
                known_map.clear();
                for (i, k) in known.iter().enumerate() {
                    known_map.entry(k.span_id).or_insert(i);
                }
            }
            let n = local.len();
            let local_at =
                |local: &[Local], id: SpanId| find(id, n, |i| local[i].brief.span_id, &local_map);
            let known_at = |id: SpanId| find(id, known.len(), |i| known[i].span_id, &known_map);
            for i in 0..n {
                let id = local[i].brief.span_id;
                local[i].repeat = local_at(&local, id) != Some(i) || known_at(id).is_some();
            }
            answered_known.clear();
            let mut new_orphans = Vec::new();
            for i in 0..n {
                let Brief {
                    service, bucket, ..
                } = local[i].brief;
                let Some(parent) = local[i].brief.parent.filter(|_| !local[i].repeat) else {
                    continue;
                };
                if let Some(j) = local_at(&local, parent).filter(|&j| !local[j].repeat) {
                    let ps = local[j].brief.service;
                    if ps != service {
                        local[j].answered = true;
                        *counts.entry((ps, service, bucket)).or_default() += 1;
                    }
                } else if let Some(k) = known_at(parent) {
                    let ps = names.id(&known[k].service);
                    if ps != service {
                        *counts.entry((ps, service, bucket)).or_default() += 1;
                        if let Some((peer, pb)) = &known[k].peer {
                            if !answered_known.contains(&k) {
                                answered_known.push(k);
                                *counts.entry((ps, names.id(peer), *pb)).or_default() -= 1;
                            }
                        }
                    }
                } else if record {
                    new_orphans.push((parent, service, bucket));
                }
            }
            for o in orphans {
                let Some(j) = local_at(&local, o.parent).filter(|&j| !local[j].repeat) else {
                    continue;
                };
                let (ps, cs) = (local[j].brief.service, names.id(&o.service));
                if ps != cs {
                    local[j].answered = true;
                    *counts.entry((ps, cs, o.bucket)).or_default() += 1;
                }
                if let Some(u) = update.as_mut() {
                    u.adopted.push((trace_id, o.parent));
                }
            }
            // Virtual edges: calls that named their callee and that no child answered.
            let called = |l: &Local| {
                let b = &l.brief;
                b.peer
                    .filter(|&p| b.calls && !l.repeat && !l.answered && p != b.service)
            };
            for l in &local {
                if let Some(peer) = called(l) {
                    *counts
                        .entry((l.brief.service, peer, l.brief.bucket))
                        .or_default() += 1;
                }
            }
            let Some(u) = update.as_mut() else { continue };
            let generation = self.generation + 1;
            for &k in &answered_known {
                if let Some(kn) = known.get(k) {
                    u.answered.push((trace_id, kn.span_id));
                }
            }
            for (parent, service, bucket) in new_orphans {
                let service = names.shared(service);
                u.orphans.push((
                    trace_id,
                    Orphan {
                        parent,
                        service,
                        bucket,
                        generation,
                    },
                ));
            }
            let mut learnt = Vec::with_capacity(n);
            for l in &local {
                if l.repeat {
                    continue;
                }
                let peer = called(l).map(|peer| (names.shared(peer), l.brief.bucket));
                learnt.push(Known {
                    span_id: l.brief.span_id,
                    service: names.shared(l.brief.service),
                    generation,
                    peer,
                });
            }
            u.spans += learnt.len() as u64;
            u.known.push((trace_id, learnt));
        }
        for ((p, c, b), n) in counts {
            table.add(names.name(p), names.name(c), b, n);
        }
        Pairing { table, update }
    }

    /// Learns a recorded pairing as the next generation and forgets what fell out of the
    /// window. A pairing made without `record` changes nothing.
    pub(crate) fn advance(&mut self, pairing: &mut Pairing) {
        let Some(u) = pairing.update.take() else {
            return;
        };
        self.generation += 1;
        for (trace, span) in &u.answered {
            if let Some(list) = self.known.get_mut(trace) {
                for k in list.iter_mut().filter(|k| k.span_id == *span) {
                    k.peer = None;
                }
            }
        }
        for (trace, parent) in &u.adopted {
            if let Some(list) = self.orphans.get_mut(trace) {
                list.retain(|o| o.parent != *parent);
                if list.is_empty() {
                    self.orphans.remove(trace);
                }
            }
        }
        for (trace, list) in u.known {
            if !list.is_empty() {
                self.known.entry(trace).or_default().extend(list);
            }
        }
        for (trace, o) in u.orphans {
            self.orphans.entry(trace).or_default().push(o);
        }
        self.generations.push_back((self.generation, u.spans));
        let mut total: u64 = self.generations.iter().map(|g| g.1).sum();
        let mut expired = false;
        while self.generations.len() > 1 && total > self.budget_spans {
            if let Some((_, n)) = self.generations.pop_front() {
                total -= n;
                expired = true;
            }
        }
        if expired {
            let oldest = self.generations.front().map_or(0, |g| g.0);
            self.known.retain(|_, list| {
                list.retain(|k| k.generation >= oldest);
                !list.is_empty()
            });
            let mut dropped = 0u64;
            self.orphans.retain(|_, list| {
                let before = list.len();
                list.retain(|o| o.generation >= oldest);
                dropped += (before - list.len()) as u64;
                !list.is_empty()
            });
            self.expired_orphans += dropped;
        }
    }
}

/// Rebuilds the carry after a restart from the newest blocks (by WAL position), as many as the
/// budget keeps, each paired as one generation in the order they were written. Their edges are
/// already in their tables and are not counted again; what is rebuilt is what later heads pair
/// with. A block that cannot be read is left out (with a warning): its calls to spans of later
/// heads are then missed, nothing is counted twice.
pub(crate) async fn rebuild(
    objects: &dyn ObjectStore,
    root: &ObjectPath,
    blocks: &[Arc<BlockMeta>],
    budget_spans: u64,
    footers: &FooterCache,
) -> Carry {
    let mut carry = Carry::new(budget_spans);
    let mut newest: Vec<&Arc<BlockMeta>> = blocks.iter().collect();
    newest.sort_by(|a, b| (b.wal_through, &b.id).cmp(&(a.wal_through, &a.id)));
    let mut spans = 0u64;
    let mut take = 0;
    for b in &newest {
        take += 1;
        spans += b.span_count;
        if spans >= budget_spans {
            break;
        }
    }
    for meta in newest.into_iter().take(take).rev() {
        match faultline_block::read_edge_spans(objects, root, meta, footers).await {
            Ok(spans) => {
                let mut p = carry.pair_spans(&spans, true);
                carry.advance(&mut p);
            }
            Err(e) => {
                tracing::warn!(block = %meta.id, error = %e, "could not read a block to rebuild pending service dependencies; calls between it and newer spans will not be counted");
            }
        }
    }
    carry
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{calling_trace, span};
    use faultline_model::query::service_edges;
    use faultline_model::UnixNanos;
    use std::collections::BTreeMap;

    const S: u64 = 1_000_000_000;

    /// Trace `t` of [`calling_trace`]; every trace starts at the same time.
    fn trace(t: u64) -> Vec<Span> {
        calling_trace(t, 100 * S)
    }

    fn want(spans: &[Span]) -> BTreeMap<(String, String), i64> {
        let mut e = BTreeMap::new();
        let mut by_trace: BTreeMap<TraceId, Vec<Span>> = BTreeMap::new();
        for s in spans {
            by_trace.entry(s.trace_id).or_default().push(s.clone());
        }
        for t in by_trace.values() {
            service_edges(t, UnixNanos(0), UnixNanos(u64::MAX), &mut e);
        }
        e.into_iter().map(|(k, n)| (k, n as i64)).collect()
    }

    /// Pairs `generations` in order through one carry, summing every table.
    fn paired(generations: &[Vec<Span>], budget: u64) -> (BTreeMap<(String, String), i64>, Carry) {
        let mut carry = Carry::new(budget);
        let mut total = EdgeTable::new(EDGE_BUCKET_SECS);
        for g in generations {
            let mut p = carry.pair_spans(g, true);
            assert!(total.merge(&p.table));
            carry.advance(&mut p);
        }
        let mut out = BTreeMap::new();
        total.sum_into(UnixNanos(0), UnixNanos(u64::MAX), &mut out);
        out.retain(|_, n| *n != 0);
        (out, carry)
    }

    #[test]
    fn every_split_of_a_trace_counts_like_one_block() {
        let spans: Vec<Span> = (1..=3).flat_map(trace).collect();
        let whole = want(&spans);
        assert_eq!(whole.len(), 3, "{whole:?}");
        // Every way of cutting each trace's five spans into up to three heads, in any order of
        // arrival: parents before children, children before parents.
        let n = spans.len();
        for seed in 0..200u64 {
            let mut gens: Vec<Vec<Span>> = vec![Vec::new(); 3];
            for (i, s) in spans.iter().enumerate() {
                let h = (seed.wrapping_mul(2654435761).wrapping_add(i as u64 * 40503) >> 7) % 3;
                gens[h as usize].push(s.clone());
            }
            let (got, _) = paired(&gens, 1_000);
            assert_eq!(got, whole, "seed {seed} of {n} spans");
        }
    }

    #[test]
    fn callee_in_the_next_head_takes_the_virtual_edge_back() {
        let t = trace(7);
        let (first, second) = (t[..4].to_vec(), t[4..].to_vec());
        let mut carry = Carry::new(1_000);
        let mut p = carry.pair_spans(&first, true);
        let mut edges = BTreeMap::new();
        p.table
            .sum_into(UnixNanos(0), UnixNanos(u64::MAX), &mut edges);
        // Before the callee arrives the call is a call to the virtual node it names.
        assert_eq!(
            edges.get(&("back".into(), "auth.internal".into())),
            Some(&1)
        );
        carry.advance(&mut p);
        let mut p = carry.pair_spans(&second, true);
        let mut later = BTreeMap::new();
        p.table
            .sum_into(UnixNanos(0), UnixNanos(u64::MAX), &mut later);
        assert_eq!(
            later.get(&("back".into(), "auth.internal".into())),
            Some(&-1)
        );
        assert_eq!(later.get(&("back".into(), "auth".into())), Some(&1));
        carry.advance(&mut p);
        // A repeat of the callee (a retried batch) counts nothing more.
        let p = carry.pair_spans(&second, true);
        assert!(p.table.counts.is_empty());
    }

    #[test]
    fn the_window_is_bounded_and_expired_orphans_counted() {
        let t = trace(1);
        // The child first, then two generations of other spans, then its parent: with room for
        // one older generation the orphan has expired and the call is not counted.
        let child = vec![t[1].clone()];
        let filler = |base: u64| -> Vec<Span> {
            (0..5)
                .map(|i| span(50 + base, i + 1, 10 * S, "x", "op"))
                .collect()
        };
        let gens = vec![child.clone(), filler(0), filler(1), vec![t[0].clone()]];
        let (got, carry) = paired(&gens, 6);
        assert!(got.is_empty(), "{got:?}");
        assert_eq!(carry.expired_orphans, 1);
        assert!(carry.known_spans() <= 10);
        // With room for them all, the same arrival order counts the call.
        let (got, carry) = paired(&gens, 1_000);
        assert_eq!(got.get(&("front".into(), "back".into())), Some(&1));
        assert_eq!(carry.expired_orphans, 0);
    }

    #[test]
    fn large_traces_pair_through_maps_as_small_ones_do_by_scan() {
        // A chain of 100 spans alternating between three services: each span's parent is the
        // one before it. Every third span arrives in the first head, the rest in the second,
        // the first head's spans twice (a retried batch).
        let chain: Vec<Span> = (1..=100u64)
            .map(|i| {
                let mut s = span(9, i, i * S, ["a", "b", "c"][(i % 3) as usize], "op");
                s.parent_span_id = (i > 1).then(|| SpanId((i - 1).to_be_bytes()));
                s
            })
            .collect();
        let first: Vec<Span> = chain
            .iter()
            .filter(|s| u64::from_be_bytes(s.span_id.0) % 3 == 0)
            .cloned()
            .collect();
        let mut first_twice = first.clone();
        first_twice.extend(first);
        let second: Vec<Span> = chain
            .iter()
            .filter(|s| u64::from_be_bytes(s.span_id.0) % 3 != 0)
            .cloned()
            .collect();
        assert!(first_twice.len() > SCAN && second.len() > SCAN);
        let (got, _) = paired(&[first_twice, second.clone()], 1_000);
        assert_eq!(got, want(&chain));
        // The second head again counts nothing.
        let (got, _) = paired(&[chain.clone(), second], 1_000);
        assert_eq!(got, want(&chain));
    }
}
