//! The live service graph: pairs the two halves of each remote call as spans arrive and keeps
//! windowed RED statistics per edge.
//!
//! A CLIENT (or PRODUCER) span and the SERVER (or CONSUMER) span whose parent it is are the two
//! halves of one edge. They arrive in different batches, often from different processes,
//! seconds apart, so each half waits in a bounded pairing store keyed by (trace ID, client span
//! ID) until its other half comes or it expires. An expired client half that names its peer
//! (`peer.service`, `db.system.name`, `server.address`) becomes an edge to a virtual node: a
//! database, queue or third-party API nobody instruments. Other expired halves are counted as
//! unpaired.

use std::sync::Arc;

use faultline_model::query::PEER_ATTRIBUTES;
use faultline_model::{Resource, Span, SpanId, SpanKind, StatusCode, TraceId, UnixNanos};

use crate::config::AnalysisConfig;
use crate::intern::{Interner, NameId};
use crate::pairing::PairingStore;
use crate::window::{Observation, WindowStats, WindowedSeries};

/// Which side of a call a span is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Client,
    Server,
}

/// The pairing store's key: (trace ID, client span ID) as three words. Comparing two keys is
/// then three integer comparisons instead of two byte-array comparisons, and hashing one three
/// word writes to the seeded hasher instead of two length-prefixed byte slices; every half is
/// looked up, and most are inserted and later removed, so this is the store's inner loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PairKey([u64; 3]);

impl PairKey {
    fn new(trace_id: TraceId, span_id: SpanId) -> Self {
        let t = u128::from_ne_bytes(trace_id.0);
        Self([(t >> 64) as u64, t as u64, u64::from_ne_bytes(span_id.0)])
    }

    fn trace_id(self) -> TraceId {
        let [hi, lo, _] = self.0;
        TraceId(((u128::from(hi) << 64) | u128::from(lo)).to_ne_bytes())
    }
}

/// One half of a call. Kept small, with names as numbers, because the pairing store holds up
/// to `max_pending_pairs` of them and every half is looked up in it: 32 bytes, the flags in
/// what would otherwise be padding.
#[derive(Clone, Copy, Debug)]
struct Half {
    nanos: u64,
    end: UnixNanos,
    service: NameId,
    /// For client halves: the callee named by the span's attributes, and which of
    /// [`PEER_ATTRIBUTES`] named it.
    peer: Option<(NameId, u8)>,
    error: bool,
    side: Side,
    /// A PRODUCER or CONSUMER span.
    messaging: bool,
}

/// A call half extracted from a span, ready to be offered to the pairing store.
#[derive(Clone, Debug)]
pub struct PreparedHalf {
    key: PairKey,
    half: Half,
}

/// What is known about an edge's target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EdgeKind {
    /// CLIENT → SERVER between two instrumented services.
    Request,
    /// PRODUCER → CONSUMER through a broker.
    Messaging,
    /// CLIENT → a virtual node (uninstrumented dependency), named by this attribute.
    Virtual(&'static str),
}

/// Statistics of one edge.
#[derive(Clone, Debug)]
pub struct Edge {
    /// How the edge was found.
    pub kind: EdgeKind,
    /// Client-side latency and failures (a call fails if either side says so).
    pub client: WindowedSeries,
    /// Server-side latency (absent for virtual edges).
    pub server: WindowedSeries,
}

/// Counters of the pairing store, for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PairingStats {
    /// Pairs matched into an edge.
    pub paired: u64,
    /// Client halves that expired into a virtual-node edge.
    pub virtual_edges: u64,
    /// Halves that expired without a match and without a peer name.
    pub unpaired_client: u64,
    /// Server halves that expired without a match.
    pub unpaired_server: u64,
    /// Halves expired early because the store was full.
    pub evicted: u64,
    /// Pairs within one service (not edges of the graph).
    pub same_service: u64,
    /// Observations counted into the overflow edge.
    pub edge_overflow: u64,
    /// Halves waiting now.
    pub pending: u64,
}

/// An edge's (client, server) names.
type EdgeNames = (Arc<str>, Arc<str>);

/// The service graph: pairing store and edges.
#[derive(Debug)]
pub struct ServiceGraph {
    /// The half that came first of each call, waiting for the other side (a pair leaves the
    /// store as soon as both halves are there), in arrival order.
    pending: PairingStore<Half>,
    /// Edges by (client, server) number, each with its names.
    edges: foldhash::HashMap<(NameId, NameId), (EdgeNames, Edge)>,
    names: Interner,
    stats: PairingStats,
    wait_nanos: u64,
    slot_nanos: u64,
    slots: usize,
    max_pending: usize,
    max_edges: usize,
}

/// A snapshot of one edge over a window, for the JSON API.
#[derive(Clone, Debug)]
pub struct EdgeSnapshot {
    /// Calling service.
    pub client: Arc<str>,
    /// Called service or virtual node.
    pub server: Arc<str>,
    /// How the edge was found.
    pub kind: EdgeKind,
    /// Client side over the window.
    pub client_stats: WindowStats,
    /// Server side over the window.
    pub server_stats: WindowStats,
    /// Recent traces through the edge.
    pub exemplars: Vec<TraceId>,
}

impl ServiceGraph {
    /// An empty graph with the limits of `config`.
    pub fn new(config: &AnalysisConfig) -> Self {
        Self {
            pending: PairingStore::new(config.max_pending_pairs),
            edges: foldhash::HashMap::default(),
            names: Interner::new(config.max_services),
            stats: PairingStats::default(),
            wait_nanos: config.pairing_wait.as_nanos().min(u128::from(u64::MAX)) as u64,
            slot_nanos: config.slot_nanos(),
            slots: config.slots,
            max_pending: config.max_pending_pairs,
            max_edges: config.max_edges,
        }
    }

    /// Feeds the spans of one batch that arrived at `now` (tests; the analyzer prepares and
    /// commits).
    #[cfg(test)]
    pub fn observe(&mut self, spans: &[Span], now: UnixNanos) {
        let mut prepared = Vec::new();
        self.prepare(spans, &mut prepared);
        self.commit(prepared, now);
    }

    /// Extracts the call halves of `spans` into `out` (interning names), pairing nothing yet,
    /// so that they can be committed once the spans are stored.
    pub fn prepare(&mut self, spans: &[Span], out: &mut Vec<PreparedHalf>) {
        // Spans of one batch mostly share their resource: intern its service name once.
        let mut last: Option<(*const Resource, NameId)> = None;
        for span in spans {
            let (side, key) = match span.kind {
                SpanKind::Client | SpanKind::Producer => {
                    (Side::Client, PairKey::new(span.trace_id, span.span_id))
                }
                SpanKind::Server | SpanKind::Consumer => match span.parent_span_id {
                    Some(parent) => (Side::Server, PairKey::new(span.trace_id, parent)),
                    None => continue,
                },
                _ => continue,
            };
            let messaging = matches!(span.kind, SpanKind::Producer | SpanKind::Consumer);
            let resource = Arc::as_ptr(&span.resource);
            let service = match last {
                Some((r, name)) if r == resource => name,
                _ => {
                    let name = self.names.id(span.service_name());
                    last = Some((resource, name));
                    name
                }
            };
            let half = Half {
                service,
                nanos: span.duration_nanos(),
                error: span.status.code == StatusCode::Error,
                end: span.end,
                peer: match side {
                    Side::Client => self.peer_of(span),
                    Side::Server => None,
                },
                side,
                messaging,
            };
            out.push(PreparedHalf { key, half });
        }
    }

    /// Offers prepared halves that arrived at `now` to the pairing store.
    pub fn commit(&mut self, prepared: Vec<PreparedHalf>, now: UnixNanos) {
        self.expire(now);
        for p in prepared {
            self.offer(p.key, p.half, now);
        }
        self.stats.pending = self.pending.len() as u64;
    }

    fn peer_of(&mut self, span: &Span) -> Option<(NameId, u8)> {
        let (key, peer) = faultline_model::query::peer_of(span)?;
        let attribute = PEER_ATTRIBUTES.iter().position(|k| *k == key)?;
        Some((self.names.id(peer), attribute as u8))
    }

    fn offer(&mut self, key: PairKey, half: Half, now: UnixNanos) {
        if let Some(waiting) = self.pending.get(&key.0) {
            // A second half of the same side (a duplicate span) is ignored.
            if waiting.value.side != half.side {
                if let Some(waiting) = self.pending.remove(&key.0) {
                    let waiting = waiting.value;
                    let messaging = waiting.messaging || half.messaging;
                    let (client, server) = match half.side {
                        Side::Client => (half, waiting),
                        Side::Server => (waiting, half),
                    };
                    self.complete(key.trace_id(), client, server, messaging, now);
                }
            }
            return;
        }
        while self.pending.len() >= self.max_pending {
            let Some(oldest) = self.pending.pop_oldest_if(|_| true) else {
                break;
            };
            self.stats.evicted += 1;
            self.expired(PairKey(oldest.key).trace_id(), oldest.value, now);
        }
        let expires_at = now.0.saturating_add(self.wait_nanos);
        self.pending.insert(key.0, expires_at, half);
    }

    /// Expires every half whose wait is over at `now`.
    pub fn expire(&mut self, now: UnixNanos) {
        while let Some(w) = self.pending.pop_oldest_if(|w| w.expires_at <= now.0) {
            self.expired(PairKey(w.key).trace_id(), w.value, now);
        }
        self.stats.pending = self.pending.len() as u64;
    }

    fn expired(&mut self, trace_id: TraceId, client: Half, now: UnixNanos) {
        match (client.side, client.peer) {
            (Side::Client, Some((peer, attribute))) if peer != client.service => {
                self.stats.virtual_edges += 1;
                let (slot, slots) = (now.0 / self.slot_nanos, self.slots);
                let attribute = PEER_ATTRIBUTES
                    .get(usize::from(attribute))
                    .copied()
                    .unwrap_or(PEER_ATTRIBUTES[0]);
                let edge = self.edge(client.service, peer, EdgeKind::Virtual(attribute));
                edge.client
                    .record(&observation(&client, client.error, trace_id), slot, slots);
            }
            (Side::Client, _) => self.stats.unpaired_client += 1,
            (Side::Server, _) => self.stats.unpaired_server += 1,
        }
    }

    fn complete(
        &mut self,
        trace_id: TraceId,
        client: Half,
        server: Half,
        messaging: bool,
        now: UnixNanos,
    ) {
        if client.service == server.service {
            self.stats.same_service += 1;
            return;
        }
        self.stats.paired += 1;
        let kind = if messaging {
            EdgeKind::Messaging
        } else {
            EdgeKind::Request
        };
        let failed = client.error || server.error;
        let slot = now.0 / self.slot_nanos;
        let slots = self.slots;
        let edge = self.edge(client.service, server.service, kind);
        edge.client
            .record(&observation(&client, failed, trace_id), slot, slots);
        edge.server
            .record(&observation(&server, server.error, trace_id), slot, slots);
    }

    fn edge(&mut self, client: NameId, server: NameId, kind: EdgeKind) -> &mut Edge {
        let mut key = (client, server);
        if !self.edges.contains_key(&key) && self.edges.len() >= self.max_edges {
            self.stats.edge_overflow += 1;
            key = (NameId::OVERFLOW, NameId::OVERFLOW);
        }
        let names = &self.names;
        let (_, edge) = self.edges.entry(key).or_insert_with(|| {
            let names = (Arc::clone(names.name(key.0)), Arc::clone(names.name(key.1)));
            let edge = Edge {
                kind,
                client: WindowedSeries::default(),
                server: WindowedSeries::default(),
            };
            (names, edge)
        });
        edge
    }

    /// The pairing counters.
    pub fn stats(&self) -> PairingStats {
        PairingStats {
            pending: self.pending.len() as u64,
            ..self.stats
        }
    }

    /// Names that fell beyond the service limit.
    pub fn names_overflowed(&self) -> u64 {
        self.names.overflowed()
    }

    /// Every edge with its cumulative series, for `/metrics`.
    pub fn edges(&self) -> impl Iterator<Item = (&(Arc<str>, Arc<str>), &Edge)> {
        self.edges.values().map(|(names, edge)| (names, edge))
    }

    /// Every edge over the `window_slots` newest slots at `now`, with traffic in the window.
    pub fn snapshot(&self, now: UnixNanos, window_slots: u64) -> Vec<EdgeSnapshot> {
        let now_slot = now.0 / self.slot_nanos;
        let mut out: Vec<EdgeSnapshot> = self
            .edges
            .values()
            .map(|((c, s), e)| EdgeSnapshot {
                client: Arc::clone(c),
                server: Arc::clone(s),
                kind: e.kind,
                client_stats: e.client.window(now_slot, window_slots),
                server_stats: e.server.window(now_slot, window_slots),
                exemplars: e
                    .client
                    .recent_exemplars(3)
                    .iter()
                    .map(|x| x.trace_id)
                    .collect(),
            })
            .filter(|e| e.client_stats.calls > 0 || e.server_stats.calls > 0)
            .collect();
        out.sort_by(|a, b| (&a.client, &a.server).cmp(&(&b.client, &b.server)));
        out
    }
}

fn observation(half: &Half, error: bool, trace_id: TraceId) -> Observation {
    Observation {
        nanos: half.nanos,
        error,
        trace_id,
        end: half.end,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::intern::OVERFLOW;
    use crate::test_spans::span;

    const S: u64 = 1_000_000_000;

    fn graph() -> ServiceGraph {
        ServiceGraph::new(&AnalysisConfig {
            pairing_wait: Duration::from_secs(10),
            ..AnalysisConfig::default()
        })
    }

    fn edge_calls(g: &ServiceGraph, now: u64, client: &str, server: &str) -> (u64, u64, u64) {
        g.snapshot(UnixNanos(now), 60)
            .iter()
            .find(|e| &*e.client == client && &*e.server == server)
            .map(|e| {
                (
                    e.client_stats.calls,
                    e.client_stats.errors,
                    e.server_stats.calls,
                )
            })
            .unwrap_or_default()
    }

    #[test]
    fn halves_in_one_batch_pair() {
        let mut g = graph();
        let c = span("frontend", 1, 10, Some(1), SpanKind::Client, 0, 50);
        let s = span("cart", 1, 11, Some(10), SpanKind::Server, 5, 40);
        g.observe(&[c, s], UnixNanos(100 * S));
        assert_eq!(edge_calls(&g, 100 * S, "frontend", "cart"), (1, 0, 1));
        assert_eq!(g.stats().paired, 1);
        assert_eq!(g.stats().pending, 0);
    }

    #[test]
    fn halves_arriving_seconds_apart_in_either_order_pair() {
        let mut g = graph();
        let s = span("cart", 2, 11, Some(10), SpanKind::Server, 5, 40);
        g.observe(&[s], UnixNanos(100 * S));
        assert_eq!(g.stats().pending, 1);
        let mut c = span("frontend", 2, 10, Some(1), SpanKind::Client, 0, 50);
        c.status.code = StatusCode::Error;
        g.observe(&[c], UnixNanos(108 * S));
        assert_eq!(edge_calls(&g, 108 * S, "frontend", "cart"), (1, 1, 1));
        assert_eq!(g.stats().pending, 0);
    }

    #[test]
    fn halves_expire_and_are_counted_unpaired() {
        let mut g = graph();
        g.observe(
            &[span("cart", 3, 11, Some(10), SpanKind::Server, 5, 40)],
            UnixNanos(100 * S),
        );
        g.observe(
            &[span("frontend", 4, 10, Some(1), SpanKind::Client, 0, 50)],
            UnixNanos(101 * S),
        );
        g.expire(UnixNanos(109 * S));
        assert_eq!(g.stats().pending, 2);
        g.expire(UnixNanos(111 * S));
        let st = g.stats();
        assert_eq!(
            (st.unpaired_server, st.unpaired_client, st.pending),
            (1, 1, 0)
        );
        // The late other half no longer pairs with the expired one.
        g.observe(
            &[span("frontend", 3, 10, Some(1), SpanKind::Client, 0, 50)],
            UnixNanos(112 * S),
        );
        assert_eq!(edge_calls(&g, 112 * S, "frontend", "cart"), (0, 0, 0));
    }

    #[test]
    fn expired_client_with_a_peer_becomes_a_virtual_node() {
        let mut g = graph();
        let mut db = span("cart", 5, 20, Some(1), SpanKind::Client, 0, 3_000);
        db.attributes.push(faultline_model::KeyValue::new(
            "db.system.name",
            faultline_model::AttributeValue::String("postgresql".into()),
        ));
        g.observe(&[db], UnixNanos(100 * S));
        g.expire(UnixNanos(120 * S));
        let snap = g.snapshot(UnixNanos(120 * S), 60);
        assert_eq!(snap.len(), 1);
        assert_eq!(&*snap[0].server, "postgresql");
        assert_eq!(snap[0].kind, EdgeKind::Virtual("db.system.name"));
        assert_eq!(snap[0].client_stats.latency.counts[1], 1);
        assert_eq!(g.stats().virtual_edges, 1);
    }

    #[test]
    fn producer_consumer_pairs_as_messaging() {
        let mut g = graph();
        g.observe(
            &[span("orders", 6, 30, Some(1), SpanKind::Producer, 0, 2)],
            UnixNanos(10 * S),
        );
        g.observe(
            &[span("mailer", 6, 31, Some(30), SpanKind::Consumer, 50, 90)],
            UnixNanos(13 * S),
        );
        let snap = g.snapshot(UnixNanos(13 * S), 60);
        assert_eq!(snap[0].kind, EdgeKind::Messaging);
    }

    #[test]
    fn the_store_is_bounded_and_evicts_the_oldest() {
        let mut g = ServiceGraph::new(&AnalysisConfig {
            max_pending_pairs: 3,
            ..AnalysisConfig::default()
        });
        for i in 0..10u8 {
            g.observe(
                &[span(
                    "frontend",
                    7,
                    100 + i,
                    Some(1),
                    SpanKind::Client,
                    0,
                    5,
                )],
                UnixNanos(S),
            );
        }
        let st = g.stats();
        assert_eq!((st.pending, st.evicted, st.unpaired_client), (3, 7, 7));
    }

    #[test]
    fn edges_beyond_the_limit_count_into_overflow() {
        let mut g = ServiceGraph::new(&AnalysisConfig {
            max_edges: 1,
            ..AnalysisConfig::default()
        });
        for (i, server) in ["a", "b", "c"].iter().enumerate() {
            let sid = 10 + i as u8;
            g.observe(
                &[
                    span("frontend", 8, sid, Some(1), SpanKind::Client, 0, 5),
                    span(server, 8, sid + 100, Some(sid), SpanKind::Server, 1, 4),
                ],
                UnixNanos(S),
            );
        }
        assert_eq!(g.stats().edge_overflow, 2);
        assert_eq!(edge_calls(&g, S, OVERFLOW, OVERFLOW).0, 2);
    }

    #[test]
    fn pair_keys_are_exactly_the_ids() {
        let ids = [
            (TraceId([0; 16]), SpanId([0; 8])),
            (TraceId([0xff; 16]), SpanId([0xff; 8])),
            (TraceId(*b"0123456789abcdef"), SpanId(*b"ABCDEFGH")),
            (TraceId(*b"0123456789abcdeg"), SpanId(*b"ABCDEFGH")),
            (TraceId(*b"1123456789abcdef"), SpanId(*b"ABCDEFGH")),
            (TraceId(*b"0123456789abcdef"), SpanId(*b"ABCDEFGI")),
        ];
        for (i, &(t, s)) in ids.iter().enumerate() {
            assert_eq!(PairKey::new(t, s).trace_id(), t);
            for (j, &(u, r)) in ids.iter().enumerate() {
                assert_eq!(PairKey::new(t, s) == PairKey::new(u, r), i == j);
            }
        }
    }

    #[test]
    fn same_service_pairs_are_not_edges() {
        let mut g = graph();
        g.observe(
            &[
                span("cart", 9, 10, Some(1), SpanKind::Client, 0, 5),
                span("cart", 9, 11, Some(10), SpanKind::Server, 1, 4),
            ],
            UnixNanos(S),
        );
        assert!(g.snapshot(UnixNanos(S), 60).is_empty());
        assert_eq!(g.stats().same_service, 1);
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// The pairing store's memory bound in `docs/analysis.md` is computed from these sizes.
    #[test]
    fn waiting_halves_stay_small() {
        // An entry of the store's queue: key, deadline and half, its emptiness in a niche.
        assert_eq!(
            std::mem::size_of::<Option<crate::pairing::Waiting<Half>>>(),
            64
        );
        assert_eq!(std::mem::size_of::<PairKey>(), 24);
        assert!(
            std::mem::size_of::<Edge>() <= 1_600,
            "{}",
            std::mem::size_of::<Edge>()
        );
    }
}
