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

type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// Width of the time buckets of the edge tables this build writes, in seconds. Ten seconds keep
/// a store's tables small (about 26,000 buckets per edge over 72 hours, summed over all blocks)
/// while a dependencies window is rounded out by at most ten seconds at each end.
pub(crate) const EDGE_BUCKET_SECS: u64 = 10;

/// A span: (trace ID, span ID).
type Key = (TraceId, SpanId);

/// A span of an earlier generation.
struct Known {
    service: Arc<str>,
    generation: u64,
    /// The virtual node this span was counted as calling (callee, bucket), until a child of
    /// another service answers it and the count is taken back.
    peer: Option<(Arc<str>, u64)>,
}

/// A child whose parent had not been seen when its generation was written.
struct Orphan {
    service: Arc<str>,
    bucket: u64,
    generation: u64,
}

/// What earlier generations left for later ones to pair with (see the module docs).
#[derive(Default)]
pub(crate) struct Carry {
    generation: u64,
    known: HashMap<Key, Known>,
    /// Orphans by their parent.
    orphans: HashMap<Key, Vec<Orphan>>,
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

struct Update {
    known: Vec<(Key, Known)>,
    orphans: Vec<(Key, Orphan)>,
    /// Parents whose orphans found them.
    adopted: Vec<Key>,
    /// Carried spans whose virtual edge was taken back.
    answered: Vec<Key>,
    spans: u64,
}

/// A span of the generation being paired.
struct Local<'a> {
    span: &'a Span,
    service: &'a str,
    answered: bool,
}

fn bucket(table: &EdgeTable, span: &Span) -> u64 {
    table.bucket_of(span.start)
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
        self.known.len()
    }

    /// Pairs one generation's spans, counting their edges; with `record`, also returns what
    /// [`Carry::advance`] needs. A span already known (same trace and span ID, from a retried
    /// batch or a replay) is a repeat and counts nothing.
    pub(crate) fn pair<'a>(
        &self,
        spans: impl IntoIterator<Item = &'a Span>,
        record: bool,
    ) -> Pairing {
        let mut table = EdgeTable::new(EDGE_BUCKET_SECS);
        // The service name by the address of the span's shared resource: looking it up in the
        // resource's attributes for every span costs a scan each.
        let mut services: HashMap<usize, &'a str> = HashMap::default();
        let mut local: HashMap<Key, Local<'a>> = HashMap::default();
        let mut accepted: Vec<Key> = Vec::new();
        for s in spans {
            let key = (s.trace_id, s.span_id);
            if self.known.contains_key(&key) || local.contains_key(&key) {
                continue;
            }
            let service = *services
                .entry(Arc::as_ptr(&s.resource) as usize)
                .or_insert_with(|| s.service_name());
            local.insert(
                key,
                Local {
                    span: s,
                    service,
                    answered: false,
                },
            );
            accepted.push(key);
        }

        let mut counts: HashMap<(&str, &str, u64), i64> = HashMap::default();
        let mut answered: HashSet<Key> = HashSet::default();
        let mut orphans: Vec<(Key, &'a str, u64)> = Vec::new();
        for key in &accepted {
            let Some(child) = local.get(key) else {
                continue;
            };
            let (span, service) = (child.span, child.service);
            let Some(parent_id) = span.parent_span_id else {
                continue;
            };
            let parent_key = (span.trace_id, parent_id);
            let b = bucket(&table, span);
            if let Some(parent) = local.get_mut(&parent_key) {
                if parent.service != service {
                    parent.answered = true;
                    *counts.entry((parent.service, service, b)).or_default() += 1;
                }
            } else if let Some(parent) = self.known.get(&parent_key) {
                if *parent.service != *service {
                    *counts.entry((&parent.service, service, b)).or_default() += 1;
                    if let Some((peer, pb)) = &parent.peer {
                        if answered.insert(parent_key) {
                            *counts.entry((&parent.service, peer, *pb)).or_default() -= 1;
                        }
                    }
                }
            } else {
                orphans.push((parent_key, service, b));
            }
        }
        let mut adopted = Vec::new();
        for (parent_key, list) in &self.orphans {
            let Some(parent) = local.get_mut(parent_key) else {
                continue;
            };
            for o in list {
                if *o.service != *parent.service {
                    parent.answered = true;
                    *counts
                        .entry((parent.service, &o.service, o.bucket))
                        .or_default() += 1;
                }
            }
            adopted.push(*parent_key);
        }
        let mut peers: HashMap<Key, (&'a str, u64)> = HashMap::default();
        for key in &accepted {
            let Some(l) = local.get(key) else { continue };
            if l.answered || !matches!(l.span.kind, SpanKind::Client | SpanKind::Producer) {
                continue;
            }
            if let Some((_, peer)) = peer_of(l.span).filter(|(_, p)| *p != l.service) {
                let b = bucket(&table, l.span);
                *counts.entry((l.service, peer, b)).or_default() += 1;
                peers.insert(*key, (peer, b));
            }
        }
        for ((p, c, b), n) in counts {
            table.add(p, c, b, n);
        }

        let update = record.then(|| {
            // One allocation per distinct name, shared by every span naming it.
            let mut names: HashMap<&'a str, Arc<str>> = HashMap::default();
            let mut intern = |s: &'a str| -> Arc<str> {
                Arc::clone(names.entry(s).or_insert_with(|| Arc::from(s)))
            };
            let generation = self.generation + 1;
            let known = accepted
                .iter()
                .filter_map(|key| {
                    let l = local.get(key)?;
                    let peer = peers.get(key).map(|&(p, b)| (intern(p), b));
                    Some((
                        *key,
                        Known {
                            service: intern(l.service),
                            generation,
                            peer,
                        },
                    ))
                })
                .collect();
            let orphans = orphans
                .into_iter()
                .map(|(parent, service, bucket)| {
                    (
                        parent,
                        Orphan {
                            service: intern(service),
                            bucket,
                            generation,
                        },
                    )
                })
                .collect();
            Update {
                known,
                orphans,
                adopted,
                answered: answered.into_iter().collect(),
                spans: accepted.len() as u64,
            }
        });
        Pairing { table, update }
    }

    /// Learns a recorded pairing as the next generation and forgets what fell out of the
    /// window. A pairing made without `record` changes nothing.
    pub(crate) fn advance(&mut self, pairing: &mut Pairing) {
        let Some(u) = pairing.update.take() else {
            return;
        };
        self.generation += 1;
        for key in &u.answered {
            if let Some(k) = self.known.get_mut(key) {
                k.peer = None;
            }
        }
        for key in &u.adopted {
            self.orphans.remove(key);
        }
        self.known.extend(u.known);
        for (parent, o) in u.orphans {
            self.orphans.entry(parent).or_default().push(o);
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
            self.known.retain(|_, k| k.generation >= oldest);
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
                let mut p = carry.pair(spans.iter(), true);
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
    use crate::test_util::span;
    use faultline_model::query::service_edges;
    use faultline_model::{AttributeValue, KeyValue, UnixNanos};
    use std::collections::BTreeMap;

    const S: u64 = 1_000_000_000;

    /// Trace `t`: front (1) → back (2) → a database client span (3) named by
    /// `db.system.name`, and a second client span (4) of back calling `auth`, which answers
    /// with span 5.
    fn trace(t: u64) -> Vec<Span> {
        let mut front = span(t, 1, 100 * S, "front", "GET");
        front.kind = SpanKind::Server;
        let mut back = span(t, 2, 101 * S, "back", "handle");
        back.parent_span_id = Some(front.span_id);
        let mut db = span(t, 3, 102 * S, "back", "SELECT");
        db.parent_span_id = Some(back.span_id);
        db.kind = SpanKind::Client;
        db.attributes.push(KeyValue::new(
            "db.system.name",
            AttributeValue::String("postgresql".into()),
        ));
        let mut call = span(t, 4, 103 * S, "back", "POST /auth");
        call.parent_span_id = Some(back.span_id);
        call.kind = SpanKind::Client;
        call.attributes.push(KeyValue::new(
            "server.address",
            AttributeValue::String("auth.internal".into()),
        ));
        let mut auth = span(t, 5, 125 * S, "auth", "check");
        auth.parent_span_id = Some(call.span_id);
        auth.kind = SpanKind::Server;
        vec![front, back, db, call, auth]
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
            let mut p = carry.pair(g.iter(), true);
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
        let mut p = carry.pair(first.iter(), true);
        let mut edges = BTreeMap::new();
        p.table
            .sum_into(UnixNanos(0), UnixNanos(u64::MAX), &mut edges);
        // Before the callee arrives the call is a call to the virtual node it names.
        assert_eq!(
            edges.get(&("back".into(), "auth.internal".into())),
            Some(&1)
        );
        carry.advance(&mut p);
        let mut p = carry.pair(second.iter(), true);
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
        let p = carry.pair(second.iter(), true);
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
}
