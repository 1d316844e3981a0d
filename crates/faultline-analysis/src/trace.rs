//! Analysis of one stored trace: clock-skew adjustment, critical path, self time per span,
//! per-service breakdown and error origin. Pure functions over a slice of spans.
//!
//! - **Clock skew.** A server span that does not fit inside its remote parent was timed by a
//!   different clock; like Jaeger's adjuster, it is shifted (with its subtree) to sit centred in
//!   the parent, or aligned to the parent's start when it is longer. Only cross-service
//!   request/response children are moved: messaging consumers are asynchronous by nature.
//! - **Critical path.** Walking back from a span's end, the latest-finishing child that ended
//!   before the cursor is on the path, then the cursor jumps to that child's start (CRISP,
//!   Jaeger's critical path). Children that end after their parent (fire-and-forget) count only
//!   up to the parent's end; children that start after it are not on its path.
//! - **Missing parents.** Spans whose parent is not in the trace are roots; several roots hang
//!   under a virtual root spanning the trace, whose uncovered time is reported as a gap.
//! - **Error origin.** An error span none of whose children failed: the deepest one explains
//!   the failure best.

use std::collections::{BTreeMap, HashMap};

use faultline_model::{Span, SpanId, SpanKind, StatusCode, TraceId};
use serde::Serialize;

/// Critical-path recursion deeper than this stops (the deeper spans count as the parent's own
/// time) so that a hostile chain of spans cannot exhaust the stack.
const MAX_DEPTH: usize = 256;

/// Everything computed for one trace. Times are microseconds, as in the Jaeger API.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TraceAnalysis {
    /// The trace.
    #[serde(rename = "traceID")]
    pub trace_id: String,
    /// First start to last end, after skew adjustment.
    pub duration_micros: u64,
    /// The path, in time order: each segment is time a span spent on its own work.
    pub critical_path: Vec<PathSegment>,
    /// Every span with its self time and share of the critical path.
    pub spans: Vec<SpanAnalysis>,
    /// Per-service totals, largest critical-path share first.
    pub services: Vec<ServiceBreakdown>,
    /// Error spans not explained by a failed child, deepest first.
    pub error_origins: Vec<ErrorOrigin>,
    /// Things worth knowing: missing parents, skew adjustments, truncation.
    pub warnings: Vec<String>,
}

/// A stretch of the critical path.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PathSegment {
    /// The span working then; `None` for time no span covers (between roots).
    #[serde(rename = "spanID")]
    pub span_id: Option<String>,
    /// Its service (empty for gaps).
    pub service: String,
    /// Its operation (empty for gaps).
    pub operation: String,
    /// Start, microseconds since the Unix epoch (skew-adjusted).
    pub start_micros: u64,
    /// Length.
    pub duration_micros: u64,
}

/// One span's numbers.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SpanAnalysis {
    /// The span.
    #[serde(rename = "spanID")]
    pub span_id: String,
    /// Its parent when that is in the trace.
    #[serde(rename = "parentSpanID")]
    pub parent_span_id: Option<String>,
    /// Service name.
    pub service: String,
    /// Span name.
    pub operation: String,
    /// Distance from its root.
    pub depth: usize,
    /// Duration.
    pub duration_micros: u64,
    /// Time not covered by any child.
    pub self_micros: u64,
    /// Time this span itself (not its children) spends on the critical path.
    pub critical_micros: u64,
    /// Shift applied to correct clock skew (signed).
    pub skew_adjustment_micros: i64,
    /// Whether its status is ERROR.
    pub error: bool,
}

/// One service's share of the trace.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceBreakdown {
    /// Service name.
    pub service: String,
    /// Its spans.
    pub span_count: usize,
    /// Its spans with status ERROR.
    pub error_count: usize,
    /// Sum of its spans' self time.
    pub self_micros: u64,
    /// Its time on the critical path.
    pub critical_micros: u64,
}

/// A failure the trace's other failures are explained by.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ErrorOrigin {
    /// The span.
    #[serde(rename = "spanID")]
    pub span_id: String,
    /// Service name.
    pub service: String,
    /// Span name.
    pub operation: String,
    /// Distance from its root.
    pub depth: usize,
    /// The status message.
    pub message: String,
}

struct Node<'a> {
    span: &'a Span,
    parent: Option<usize>,
    children: Vec<usize>,
    start: i64,
    end: i64,
    shift: i64,
    depth: usize,
}

/// Analyses one trace's spans (in any order). Returns `None` for an empty slice.
pub fn analyze_trace(spans: &[Span]) -> Option<TraceAnalysis> {
    let first = spans.first()?;
    let trace_id: TraceId = first.trace_id;
    let base = spans.iter().map(|s| s.start.0).min().unwrap_or(0);
    let rel = |t: u64| (t.saturating_sub(base)).min(i64::MAX as u64) as i64;
    let mut warnings = Vec::new();

    let mut index: HashMap<SpanId, usize> = HashMap::with_capacity(spans.len());
    let mut nodes: Vec<Node> = Vec::with_capacity(spans.len());
    for s in spans {
        if index.contains_key(&s.span_id) {
            warnings.push(format!("duplicate span ID {} ignored", s.span_id.to_hex()));
            continue;
        }
        index.insert(s.span_id, nodes.len());
        let start = rel(s.start.0);
        nodes.push(Node {
            span: s,
            parent: None,
            children: Vec::new(),
            start,
            end: rel(s.end.0).max(start),
            shift: 0,
            depth: 0,
        });
    }
    let mut missing = 0usize;
    for i in 0..nodes.len() {
        let parent = nodes[i]
            .span
            .parent_span_id
            .and_then(|p| index.get(&p).copied());
        if nodes[i].span.parent_span_id.is_some() && parent.is_none() {
            missing += 1;
        }
        if let Some(p) = parent.filter(|&p| p != i) {
            nodes[i].parent = Some(p);
            nodes[p].children.push(i);
        }
    }
    if missing > 0 {
        warnings.push(format!(
            "{missing} span(s) reference a parent not in the trace"
        ));
    }

    let order = topological_order(&mut nodes);
    let adjusted = adjust_skew(&mut nodes, &order);
    if adjusted > 0 {
        warnings.push(format!("{adjusted} span(s) shifted to correct clock skew"));
    }
    for &i in &order {
        let mut kids = std::mem::take(&mut nodes[i].children);
        kids.sort_by_key(|&c| (nodes[c].end, nodes[c].start));
        nodes[i].children = kids;
    }

    let roots: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&i| nodes[i].parent.is_none())
        .collect();
    let t0 = nodes.iter().map(|n| n.start).min().unwrap_or(0);
    let t1 = nodes.iter().map(|n| n.end).max().unwrap_or(0);

    let mut path: Vec<(Option<usize>, i64, i64)> = Vec::new();
    let mut truncated = false;
    if let [root] = roots[..] {
        walk(
            &nodes,
            root,
            nodes[root].start,
            nodes[root].end,
            0,
            &mut path,
            &mut truncated,
        );
    } else {
        let mut sorted = roots.clone();
        sorted.sort_by_key(|&r| (nodes[r].end, nodes[r].start));
        walk_children(&nodes, &sorted, None, t0, t1, 0, &mut path, &mut truncated);
    }
    if truncated {
        warnings.push(format!("critical path stops at depth {MAX_DEPTH}"));
    }
    path.reverse();

    let micros = |n: i64| (n.max(0) as u64) / 1_000;
    // Skew correction can move a span before the earliest received start: signed arithmetic.
    let abs_micros = |t: i64| ((i128::from(base) + i128::from(t)).max(0) / 1_000) as u64;
    // Segment lengths are differences of rounded ends, so that segments tile the path exactly
    // in microseconds and per-span shares add up to it.
    let mut critical = vec![0u64; nodes.len()];
    let critical_path = path
        .iter()
        .filter(|(_, a, b)| b > a)
        .map(|&(i, a, b)| {
            let (start, end) = (abs_micros(a), abs_micros(b));
            if let Some(i) = i {
                critical[i] += end - start;
            }
            PathSegment {
                span_id: i.map(|i| nodes[i].span.span_id.to_hex()),
                service: i
                    .map(|i| nodes[i].span.service_name().to_owned())
                    .unwrap_or_default(),
                operation: i
                    .map(|i| nodes[i].span.name.to_string())
                    .unwrap_or_default(),
                start_micros: start,
                duration_micros: end - start,
            }
        })
        .collect();

    let mut services: BTreeMap<&str, ServiceBreakdown> = BTreeMap::new();
    let mut span_out = Vec::with_capacity(nodes.len());
    let mut origins = Vec::new();
    for &i in &order {
        let n = &nodes[i];
        let self_time = self_time(&nodes, i);
        let error = n.span.status.code == StatusCode::Error;
        let svc = services
            .entry(n.span.service_name())
            .or_insert_with(|| ServiceBreakdown {
                service: n.span.service_name().to_owned(),
                span_count: 0,
                error_count: 0,
                self_micros: 0,
                critical_micros: 0,
            });
        svc.span_count += 1;
        svc.error_count += usize::from(error);
        svc.self_micros += micros(self_time);
        svc.critical_micros += critical[i];
        if error
            && !n
                .children
                .iter()
                .any(|&c| nodes[c].span.status.code == StatusCode::Error)
        {
            origins.push(ErrorOrigin {
                span_id: n.span.span_id.to_hex(),
                service: n.span.service_name().to_owned(),
                operation: n.span.name.to_string(),
                depth: n.depth,
                message: n.span.status.message.clone(),
            });
        }
        span_out.push(SpanAnalysis {
            span_id: n.span.span_id.to_hex(),
            parent_span_id: n.parent.map(|p| nodes[p].span.span_id.to_hex()),
            service: n.span.service_name().to_owned(),
            operation: n.span.name.to_string(),
            depth: n.depth,
            duration_micros: abs_micros(n.end) - abs_micros(n.start),
            self_micros: micros(self_time),
            critical_micros: critical[i],
            skew_adjustment_micros: n.shift / 1_000,
            error,
        });
    }
    origins.sort_by_key(|o| std::cmp::Reverse(o.depth));
    let mut services: Vec<ServiceBreakdown> = services.into_values().collect();
    services.sort_by_key(|s| std::cmp::Reverse(s.critical_micros));

    Some(TraceAnalysis {
        trace_id: trace_id.to_hex(),
        duration_micros: abs_micros(t1) - abs_micros(t0),
        critical_path,
        spans: span_out,
        services,
        error_origins: origins,
        warnings,
    })
}

/// Parents before children, every node once; sets depths. Nodes caught in a parent cycle are
/// cut loose as roots.
fn topological_order(nodes: &mut [Node]) -> Vec<usize> {
    let mut order = Vec::with_capacity(nodes.len());
    let mut seen = vec![false; nodes.len()];
    let mut stack: Vec<usize> = (0..nodes.len())
        .filter(|&i| nodes[i].parent.is_none())
        .rev()
        .collect();
    loop {
        while let Some(i) = stack.pop() {
            if seen[i] {
                continue;
            }
            seen[i] = true;
            order.push(i);
            for k in 0..nodes[i].children.len() {
                let c = nodes[i].children[k];
                nodes[c].depth = nodes[i].depth + 1;
                stack.push(c);
            }
        }
        // Whatever is unseen sits in a cycle: make its first node a root.
        match (0..nodes.len()).find(|&i| !seen[i]) {
            Some(i) => {
                if let Some(p) = nodes[i].parent.take() {
                    nodes[p].children.retain(|&c| c != i);
                }
                nodes[i].depth = 0;
                stack.push(i);
            }
            None => return order,
        }
    }
}

/// Shifts cross-service synchronous children that do not fit in their parent; returns how many
/// subtrees were moved.
fn adjust_skew(nodes: &mut [Node], order: &[usize]) -> usize {
    let mut moved = 0;
    for &i in order {
        let Some(p) = nodes[i].parent else { continue };
        // The parent's own shift carries over to its subtree first.
        let inherited = nodes[p].shift;
        nodes[i].start += inherited;
        nodes[i].end += inherited;
        nodes[i].shift = inherited;
        let (ps, pe) = (nodes[p].start, nodes[p].end);
        let (cs, ce) = (nodes[i].start, nodes[i].end);
        let remote = nodes[i].span.service_name() != nodes[p].span.service_name();
        let synchronous =
            nodes[i].span.kind == SpanKind::Server && nodes[p].span.kind != SpanKind::Producer;
        if !remote || !synchronous || (cs >= ps && ce <= pe) {
            continue;
        }
        let (child_len, parent_len) = (ce - cs, pe - ps);
        let target = if child_len <= parent_len {
            ps + (parent_len - child_len) / 2
        } else {
            ps
        };
        let delta = target - cs;
        nodes[i].start += delta;
        nodes[i].end += delta;
        nodes[i].shift += delta;
        moved += 1;
    }
    moved
}

/// Appends (in reverse time order) the critical path of `i` within `[lo, hi]`: a child that
/// started before its parent (skew that was not corrected) counts only from the parent's start.
#[allow(clippy::too_many_arguments)]
fn walk(
    nodes: &[Node],
    i: usize,
    lo: i64,
    hi: i64,
    depth: usize,
    path: &mut Vec<(Option<usize>, i64, i64)>,
    truncated: &mut bool,
) {
    let n = &nodes[i];
    let (start, end) = (n.start.max(lo), n.end.min(hi));
    if end <= start {
        return;
    }
    if depth >= MAX_DEPTH {
        *truncated = true;
        path.push((Some(i), start, end));
        return;
    }
    walk_children(
        nodes,
        &n.children,
        Some(i),
        start,
        end,
        depth,
        path,
        truncated,
    );
}

/// The critical path through `children` (sorted by end) of the interval `[start, end]` owned
/// by `owner` (a span, or `None` for the virtual root).
#[allow(clippy::too_many_arguments)]
fn walk_children(
    nodes: &[Node],
    children: &[usize],
    owner: Option<usize>,
    start: i64,
    end: i64,
    depth: usize,
    path: &mut Vec<(Option<usize>, i64, i64)>,
    truncated: &mut bool,
) {
    let own = |a: i64, b: i64, path: &mut Vec<_>| {
        if b > a {
            path.push((owner, a, b));
        }
    };
    let mut cursor = end;
    // Children sorted by end ascending: scan from the back for the latest that ended by the
    // cursor. A child ending after the owner (asynchronous) is clipped to the owner's end.
    let mut k = children.len();
    while k > 0 && cursor > start {
        k -= 1;
        let c = children[k];
        let (cs, ce) = (nodes[c].start.max(start), nodes[c].end.min(end));
        if cs >= cursor || ce <= cs {
            continue; // starts after the cursor (or is empty): not waited for on this path
        }
        if ce > cursor {
            continue; // overlaps the child already on the path: ran in parallel
        }
        own(ce, cursor, path);
        walk(nodes, c, cs, ce, depth + 1, path, truncated);
        cursor = cs;
    }
    own(start, cursor, path);
}

/// A span's time not covered by the union of its children (clipped to the span).
fn self_time(nodes: &[Node], i: usize) -> i64 {
    let n = &nodes[i];
    let mut intervals: Vec<(i64, i64)> = n
        .children
        .iter()
        .map(|&c| (nodes[c].start.max(n.start), nodes[c].end.min(n.end)))
        .filter(|(a, b)| b > a)
        .collect();
    intervals.sort_unstable();
    let mut covered = 0;
    let mut current: Option<(i64, i64)> = None;
    for (a, b) in intervals {
        match current {
            Some((ca, cb)) if a <= cb => current = Some((ca, cb.max(b))),
            Some((ca, cb)) => {
                covered += cb - ca;
                current = Some((a, b));
            }
            None => current = Some((a, b)),
        }
    }
    if let Some((a, b)) = current {
        covered += b - a;
    }
    (n.end - n.start - covered).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_spans::span;
    use SpanKind::*;

    fn hex(id: u8) -> String {
        SpanId([id; 8]).to_hex()
    }

    fn path_of(a: &TraceAnalysis) -> Vec<(Option<String>, u64, u64)> {
        a.critical_path
            .iter()
            .map(|s| (s.span_id.clone(), s.start_micros, s.duration_micros))
            .collect()
    }

    fn span_of(a: &TraceAnalysis, id: u8) -> &SpanAnalysis {
        a.spans.iter().find(|s| s.span_id == hex(id)).unwrap()
    }

    #[test]
    fn sequential_children_are_all_on_the_path() {
        // root 0..100; a 10..40; b 50..90
        let spans = [
            span("fe", 1, 1, None, Server, 0, 100),
            span("fe", 1, 2, Some(1), Internal, 10, 40),
            span("fe", 1, 3, Some(1), Internal, 50, 90),
        ];
        let a = analyze_trace(&spans).unwrap();
        assert_eq!(
            path_of(&a),
            vec![
                (Some(hex(1)), 0, 10),
                (Some(hex(2)), 10, 30),
                (Some(hex(1)), 40, 10),
                (Some(hex(3)), 50, 40),
                (Some(hex(1)), 90, 10),
            ]
        );
        assert_eq!(span_of(&a, 1).self_micros, 30);
        assert_eq!(span_of(&a, 1).critical_micros, 30);
        assert_eq!(a.duration_micros, 100);
    }

    #[test]
    fn parallel_children_only_the_last_finishing_is_on_the_path() {
        // a 10..80 and b 20..60 in parallel: b is hidden behind a.
        let spans = [
            span("fe", 2, 1, None, Server, 0, 100),
            span("fe", 2, 2, Some(1), Client, 10, 80),
            span("fe", 2, 3, Some(1), Client, 20, 60),
        ];
        let a = analyze_trace(&spans).unwrap();
        assert_eq!(span_of(&a, 3).critical_micros, 0);
        assert_eq!(span_of(&a, 2).critical_micros, 70);
        assert_eq!(span_of(&a, 1).self_micros, 30);
    }

    #[test]
    fn async_children_past_the_parent_end_are_clipped_or_ignored() {
        // c1 fire-and-forget 80..300 (clipped to 100); c2 starts after the root ends.
        let spans = [
            span("fe", 3, 1, None, Server, 0, 100),
            span("fe", 3, 2, Some(1), Producer, 80, 300),
            span("fe", 3, 3, Some(1), Internal, 150, 200),
        ];
        let a = analyze_trace(&spans).unwrap();
        assert_eq!(span_of(&a, 2).critical_micros, 20);
        assert_eq!(span_of(&a, 3).critical_micros, 0);
        assert_eq!(span_of(&a, 1).critical_micros, 80);
        assert_eq!(span_of(&a, 1).self_micros, 80);
        let total: u64 = a.critical_path.iter().map(|s| s.duration_micros).sum();
        assert_eq!(total, 100);
    }

    #[test]
    fn clock_skew_is_corrected_for_remote_children_and_their_subtrees() {
        // The cart host's clock runs 1000 µs ahead: its server span 1030..1070 sits outside
        // the client 20..80 of 0..100.
        let spans = [
            span("fe", 4, 1, None, Server, 0, 100),
            span("fe", 4, 2, Some(1), Client, 20, 80),
            span("cart", 4, 3, Some(2), Server, 1030, 1070),
            span("cart", 4, 4, Some(3), Internal, 1040, 1060),
        ];
        let a = analyze_trace(&spans).unwrap();
        assert_eq!(span_of(&a, 3).skew_adjustment_micros, -1000);
        assert_eq!(span_of(&a, 4).skew_adjustment_micros, -1000);
        assert_eq!(a.duration_micros, 100);
        assert_eq!(span_of(&a, 2).self_micros, 20);
        assert_eq!(span_of(&a, 3).self_micros, 20);
        assert_eq!(span_of(&a, 4).critical_micros, 20);
        let cart = a.services.iter().find(|s| s.service == "cart").unwrap();
        assert_eq!(cart.critical_micros, 40);
        assert!(a.warnings.iter().any(|w| w.contains("clock skew")));
    }

    #[test]
    fn missing_parents_make_roots_under_a_virtual_root_with_gaps() {
        // Span 2's parent (9) was never received.
        let spans = [
            span("fe", 5, 1, None, Server, 0, 50),
            span("cart", 5, 2, Some(9), Server, 70, 100),
        ];
        let a = analyze_trace(&spans).unwrap();
        assert_eq!(
            path_of(&a),
            vec![
                (Some(hex(1)), 0, 50),
                (None, 50, 20),
                (Some(hex(2)), 70, 30)
            ]
        );
        assert!(a
            .warnings
            .iter()
            .any(|w| w.contains("parent not in the trace")));
        assert_eq!(span_of(&a, 2).depth, 0);
    }

    #[test]
    fn error_origin_is_the_deepest_unexplained_error() {
        let mut spans = vec![
            span("fe", 6, 1, None, Server, 0, 100),
            span("fe", 6, 2, Some(1), Client, 10, 90),
            span("cart", 6, 3, Some(2), Server, 15, 85),
            span("cart", 6, 4, Some(3), Client, 20, 80),
            span("cart", 6, 5, Some(1), Internal, 91, 95),
        ];
        for i in [0, 1, 2, 3, 4] {
            spans[i].status.code = StatusCode::Error;
        }
        spans[3].status.message = "pool timeout".into();
        let a = analyze_trace(&spans).unwrap();
        let ids: Vec<_> = a.error_origins.iter().map(|o| o.span_id.clone()).collect();
        assert_eq!(ids, vec![hex(4), hex(5)]);
        assert_eq!(a.error_origins[0].message, "pool timeout");
        assert_eq!(a.error_origins[0].depth, 3);
    }

    #[test]
    fn parent_cycles_and_duplicates_do_not_hang_or_panic() {
        let spans = [
            span("fe", 7, 1, Some(2), Server, 0, 10),
            span("fe", 7, 2, Some(1), Server, 0, 10),
            span("fe", 7, 2, Some(1), Server, 0, 10),
        ];
        let a = analyze_trace(&spans).unwrap();
        assert_eq!(a.spans.len(), 2);
        assert!(analyze_trace(&[]).is_none());
    }

    #[test]
    fn deep_chains_are_truncated_not_overflowing() {
        let spans: Vec<Span> = (0..3000u32)
            .map(|i| {
                let mut s = span("fe", 8, 1, None, Internal, 0, 10);
                s.span_id = SpanId((u64::from(i) + 1).to_be_bytes());
                s.parent_span_id = (i > 0).then(|| SpanId(u64::from(i).to_be_bytes()));
                s
            })
            .collect();
        let a = analyze_trace(&spans).unwrap();
        assert!(a.warnings.iter().any(|w| w.contains("depth")));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::test_spans::span;

    /// Random forests: span `i` (1-based) has parent `parents[i]` when that is a smaller ID
    /// (or a missing one), random kinds, services and times (some ending before they start).
    fn trace() -> impl Strategy<Value = Vec<Span>> {
        prop::collection::vec(
            (
                0u8..40,
                0u8..3,
                0u8..6,
                0u64..1_000,
                0u64..1_000,
                any::<bool>(),
            ),
            1..40,
        )
        .prop_map(|raw| {
            raw.iter()
                .enumerate()
                .map(|(i, &(parent, svc, kind, start, len, error))| {
                    let id = i as u8 + 1;
                    let parent = (parent != 0 && parent != id).then_some(parent);
                    let mut s = span(
                        ["fe", "cart", "db"][svc as usize],
                        1,
                        id,
                        parent,
                        SpanKind::from_i32(i32::from(kind)),
                        // Far from the epoch, as real spans are: skew correction may move a span
                        // before the earliest received start.
                        1_000_000 + start,
                        1_000_000 + start + len,
                    );
                    if error {
                        s.status.code = StatusCode::Error;
                    }
                    s
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn the_critical_path_is_contiguous_and_bounded(spans in trace()) {
            let a = analyze_trace(&spans).expect("non-empty");
            let path = &a.critical_path;
            for w in path.windows(2) {
                prop_assert_eq!(w[0].start_micros + w[0].duration_micros, w[1].start_micros);
            }
            let total: u64 = path.iter().map(|s| s.duration_micros).sum();
            prop_assert!(total <= a.duration_micros);
            for s in &a.spans {
                prop_assert!(s.self_micros <= s.duration_micros);
                prop_assert!(s.critical_micros <= s.duration_micros);
            }
            let critical: u64 = a.services.iter().map(|s| s.critical_micros).sum();
            let gaps: u64 = path.iter().filter(|s| s.span_id.is_none()).map(|s| s.duration_micros).sum();
            prop_assert_eq!(critical + gaps, total);
            prop_assert_eq!(a.spans.len(), spans.len());
            for o in &a.error_origins {
                prop_assert!(a.spans.iter().any(|s| s.span_id == o.span_id && s.error));
            }
        }
    }
}
