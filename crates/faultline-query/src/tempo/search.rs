//! TraceQL search over the store: pre-filter with `Store::search`, evaluate in memory.
//!
//! The planner's pushdown (service, span name, kind, attribute equalities, status error,
//! span duration) goes to [`Store::search`] with the time window, which answers the trace IDs
//! with the latest matching spans. Those traces are fetched with [`Store::traces`] a few at a
//! time and the whole query is evaluated on each. If fewer than `limit` traces match, the next
//! round searches the window again, ending where the previous round's candidates began, so the
//! search walks back in time, newest first. A query with nothing to push down walks the window
//! the same way with only the time condition. Every search stops at a budget of inspected
//! traces, spans and wall time, and says so in `metrics.budgetExhausted`.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use faultline_model::query::SpanQuery;
use faultline_model::{Span, TraceId, UnixNanos};
use faultline_storage::{StorageError, Store};

use super::model::{
    AnyValue, KeyValue, SearchMetrics, SearchResponse, SearchSpan, SpanSet, TraceSearchMetadata,
};
use crate::traceql::ast::{Field, Intrinsic, Query, Scope};
use crate::traceql::eval::{SpanSetOut, TraceView};
use crate::traceql::plan::{plan, Pushdown};
use crate::traceql::shown_fields;

/// Traces fetched from the store at once.
const FETCH_CHUNK: usize = 32;
/// Most candidate IDs asked of the store per round.
const MAX_ROUND: usize = 500;
/// Root names Tempo shows for a trace whose root span has not arrived.
pub(crate) const NO_ROOT: &str = "<root span not yet received>";

/// How much one search may inspect before it answers with what it has.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    /// Candidate traces evaluated.
    pub max_traces: usize,
    /// Spans of those traces.
    pub max_spans: usize,
    /// Wall time.
    pub max_time: Duration,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            max_traces: 5_000,
            max_spans: 2_000_000,
            max_time: Duration::from_secs(10),
        }
    }
}

/// A parsed search.
#[derive(Debug, Clone)]
pub(crate) struct SearchRequest {
    /// The TraceQL query (tag searches are turned into one).
    pub query: Query,
    /// Minimum trace duration (tag search's `minDuration`).
    pub min_trace_nanos: Option<u64>,
    /// Maximum trace duration (tag search's `maxDuration`).
    pub max_trace_nanos: Option<u64>,
    /// Window start.
    pub start: UnixNanos,
    /// Window end.
    pub end: UnixNanos,
    /// Most traces returned.
    pub limit: usize,
    /// Most spans shown per spanset.
    pub spss: usize,
}

/// What a search inspected so far.
struct Progress {
    started: Instant,
    budget: Budget,
    traces: u64,
    spans: u64,
    bytes: u64,
    jobs: u64,
    exhausted: bool,
    seen: HashSet<TraceId>,
    /// Starts (sorted) of the spans of each fetched trace that match the round's pushdown,
    /// so that later rounds know where a trace they see again stands in their window.
    pushdown_starts: HashMap<TraceId, Vec<u64>>,
}

impl Progress {
    fn over_budget(&mut self) -> bool {
        if self.traces as usize >= self.budget.max_traces
            || self.spans as usize >= self.budget.max_spans
            || self.started.elapsed() >= self.budget.max_time
        {
            self.exhausted = true;
        }
        self.exhausted
    }
}

/// Runs `req` against `store`.
pub(crate) async fn search(
    store: &Store,
    req: &SearchRequest,
    budget: Budget,
) -> Result<SearchResponse, StorageError> {
    let mut progress = Progress {
        started: Instant::now(),
        budget,
        traces: 0,
        spans: 0,
        bytes: 0,
        jobs: 0,
        exhausted: false,
        seen: HashSet::new(),
        pushdown_starts: HashMap::new(),
    };
    let shown = shown_fields(&req.query);
    let mut found: Vec<(u64, TraceSearchMetadata)> = Vec::new();
    for alternative in plan(&req.query) {
        if req.limit == 0 || progress.exhausted {
            break;
        }
        walk_back(store, req, &alternative, &shown, &mut progress, &mut found).await?;
    }
    // Most recent traces first, as Grafana lists them.
    found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.trace_id.cmp(&b.1.trace_id)));
    found.truncate(req.limit);
    Ok(SearchResponse {
        traces: found.into_iter().map(|(_, t)| t).collect(),
        metrics: SearchMetrics {
            inspected_traces: progress.traces,
            inspected_bytes: progress.bytes.to_string(),
            inspected_spans: progress.spans.to_string(),
            completed_jobs: progress.jobs,
            total_jobs: progress.jobs,
            budget_exhausted: progress.exhausted,
        },
    })
}

/// Rounds of candidate search for one pushdown alternative, newest first, until `limit`
/// matches, the window is used up or the budget runs out.
async fn walk_back(
    store: &Store,
    req: &SearchRequest,
    alternative: &Pushdown,
    shown: &[Field],
    progress: &mut Progress,
    found: &mut Vec<(u64, TraceSearchMetadata)>,
) -> Result<(), StorageError> {
    let mut matched = 0usize;
    let mut end = req.end;
    // Starts are per pushdown: another alternative's do not place a trace in this walk.
    progress.pushdown_starts.clear();
    while end >= req.start && matched < req.limit && !progress.over_budget() {
        let remaining = progress
            .budget
            .max_traces
            .saturating_sub(progress.traces as usize);
        let round = (req.limit.saturating_mul(2))
            .clamp(64, MAX_ROUND)
            .min(remaining.max(1));
        let q = alternative.to_span_query(req.start, end, round);
        progress.jobs += 1;
        let ids = store.search(&q).await?;
        let full_round = ids.len() >= round;
        let fresh: Vec<TraceId> = ids
            .iter()
            .copied()
            .filter(|id| progress.seen.insert(*id))
            .collect();
        'fetch: for chunk in fresh.chunks(FETCH_CHUNK) {
            for (id, data) in store.traces(chunk).await? {
                inspect(
                    id,
                    &data.spans,
                    req,
                    &q,
                    shown,
                    progress,
                    found,
                    &mut matched,
                );
                if matched >= req.limit || progress.over_budget() {
                    break 'fetch;
                }
            }
        }
        if !full_round {
            break;
        }
        // The round held the `round` traces whose latest pushdown match in [start, end] is
        // latest; the next one looks before the earliest of those.
        let kth = ids
            .iter()
            .filter_map(|id| {
                let starts = progress.pushdown_starts.get(id)?;
                let at = starts.partition_point(|&s| s <= end.0);
                at.checked_sub(1).map(|i| starts[i])
            })
            .min();
        end = match kth {
            Some(k) if k < end.0 => UnixNanos(k),
            Some(k) if k > 0 => UnixNanos(k - 1),
            _ => break,
        };
    }
    Ok(())
}

/// Evaluates one fetched trace and records it.
#[allow(clippy::too_many_arguments)]
fn inspect(
    id: TraceId,
    spans: &[Span],
    req: &SearchRequest,
    q: &SpanQuery,
    shown: &[Field],
    progress: &mut Progress,
    found: &mut Vec<(u64, TraceSearchMetadata)>,
    matched: &mut usize,
) {
    progress.traces += 1;
    progress.spans += spans.len() as u64;
    progress.bytes += spans.iter().map(|s| s.heap_size() as u64).sum::<u64>();
    let mut starts: Vec<u64> = spans
        .iter()
        .filter(|s| q.matches(s))
        .map(|s| s.start.0)
        .collect();
    starts.sort_unstable();
    progress.pushdown_starts.insert(id, starts);
    if spans.is_empty() {
        return;
    }
    let view = TraceView::new(spans);
    if req.min_trace_nanos.is_some_and(|m| view.duration < m)
        || req.max_trace_nanos.is_some_and(|m| view.duration > m)
    {
        return;
    }
    let sets = view.evaluate(&req.query);
    if sets.is_empty() {
        return;
    }
    *matched += 1;
    found.push((view.start, metadata(id, &view, &sets, shown, req.spss)));
}

/// The search answer's entry for a matched trace.
fn metadata(
    id: TraceId,
    view: &TraceView<'_>,
    sets: &[SpanSetOut],
    shown: &[Field],
    spss: usize,
) -> TraceSearchMetadata {
    let (root_service, root_name) = view.root().map_or_else(
        || (NO_ROOT.to_owned(), NO_ROOT.to_owned()),
        |r| (r.service_name().to_owned(), r.name.to_string()),
    );
    let span_sets: Vec<SpanSet> = sets
        .iter()
        .map(|set| SpanSet {
            spans: set
                .spans
                .iter()
                .take(spss)
                .map(|&i| search_span(view, i, shown))
                .collect(),
            matched: set.spans.len(),
            attributes: set
                .by
                .iter()
                .map(|(k, v)| KeyValue {
                    key: k.clone(),
                    value: AnyValue(v.clone()),
                })
                .collect(),
        })
        .collect();
    TraceSearchMetadata {
        trace_id: id.to_hex(),
        root_service_name: root_service,
        root_trace_name: root_name,
        start_time_unix_nano: view.start.to_string(),
        duration_ms: view.duration / 1_000_000,
        span_set: span_sets.first().cloned(),
        span_sets,
    }
}

/// A matched span with the fields the query names (except those the span entry already
/// carries: name and duration).
fn search_span(view: &TraceView<'_>, i: usize, shown: &[Field]) -> SearchSpan {
    let span = &view.spans()[i];
    let attributes = shown
        .iter()
        .filter(|f| !matches!(f, Field::Intrinsic(Intrinsic::Name | Intrinsic::Duration)))
        .filter_map(|f| {
            let key = match f {
                Field::Attribute { name, .. } => name.clone(),
                Field::Intrinsic(i) => i.name().to_owned(),
            };
            view.out_value(f, i).map(|v| KeyValue {
                key,
                value: AnyValue(v),
            })
        })
        .collect();
    SearchSpan {
        span_id: span.span_id.to_hex(),
        name: span.name.to_string(),
        start_time_unix_nano: span.start.0.to_string(),
        duration_nanos: span.duration_nanos().to_string(),
        attributes,
    }
}

/// Whether an attribute field could be the resource's `service.name`.
pub(crate) fn is_service_name(field: &Field) -> bool {
    matches!(field, Field::Attribute { scope: Scope::Resource | Scope::Unscoped, name } if name == "service.name")
}
