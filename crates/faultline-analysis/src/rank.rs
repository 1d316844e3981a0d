//! Root-cause ranking from sampled traces: which service, operation, dependency or attribute
//! explains the symptoms. Pure functions over spans; [`crate::rca`] samples them from the store.
//!
//! Every trace is analysed with [`analyze_trace`]. A candidate is a (service, operation) and is
//! scored by how much it **changed** between anomalous and baseline traces:
//!
//! - **latency**: its critical-path self time per trace (CRISP's exclusive time on the critical
//!   path). Callers that merely wait for a slow callee keep their own self time, so victims
//!   score nothing; the shift's share of the total positive shift is its latency score.
//! - **errors**: how often it is the error origin (a failed span none of whose children failed),
//!   per trace, above how often it was before. A CLIENT span that failed while its callee's
//!   SERVER span did not gave up waiting: the callee is blamed. A CLIENT span that failed with no
//!   server span at all, calling an instrumented service by name, did not reach it: that service
//!   is blamed (it is down).
//! - **throughput**, only when nothing else has evidence: a series whose rate fell while its
//!   callers' did not (a stalled consumer).
//!
//! Symptom counts per signal weigh the scores; a service's score is the sum of its operations'.
//! The best operation of a service decides the kind: an attribute value that separates its slow
//! or failed spans from normal ones, else the uninstrumented dependency it calls, else the
//! operation when it holds most of the score, else the service.

use std::collections::{HashMap, HashSet};

use faultline_model::{AttributeValue, Span, SpanId, SpanKind, StatusCode};

use crate::incident::{
    AttributeEvidence, AttributeRef, CauseKind, EdgeRef, Evidence, RootCause, Signal, SpanRef,
    Symptom,
};
use crate::trace::analyze_trace;

/// Root causes reported at most.
const MAX_CAUSES: usize = 5;
/// Trace IDs and spans cited per cause at most.
const MAX_CITED: usize = 5;

/// What the ranking reads.
#[derive(Debug)]
pub struct RankInput<'a> {
    /// The incident's (or window's) symptoms.
    pub symptoms: &'a [Symptom],
    /// Traces from the anomalous window that show the symptoms (slow or failed).
    pub anomalous: &'a [Vec<Span>],
    /// Traces of the same operations from the baseline window.
    pub normal: &'a [Vec<Span>],
    /// Every instrumented service name (a failed call to one of these that never reached it
    /// blames it, not the caller).
    pub known_services: &'a HashSet<String>,
    /// Edges of the service graph (client, server) recently seen.
    pub edges: &'a [EdgeRef],
}

type Key = (String, String);

#[derive(Debug, Default)]
struct OpAgg {
    critical_us: f64,
    origins: u32,
    /// The uninstrumented dependency its CLIENT spans call.
    dependency: Option<String>,
    /// Failed calls blamed on it that never reached it.
    unreached: u32,
    /// The caller's timeouts blamed on it.
    abandoned: u32,
    /// Its spans run after a message was consumed (no critical path).
    asynchronous: bool,
    spans: Vec<SpanRef>,
}

#[derive(Debug, Default)]
struct SideAgg {
    traces: usize,
    failed: usize,
    ops: HashMap<Key, OpAgg>,
}

fn peer(span: &Span) -> Option<&str> {
    faultline_model::query::peer_of(span).map(|(_, p)| p)
}

fn key(span: &Span) -> Key {
    (span.service_name().to_owned(), span.name.to_string())
}

fn span_ref(span: &Span) -> SpanRef {
    SpanRef {
        trace_id: span.trace_id.to_hex(),
        span_id: span.span_id.to_hex(),
        service: span.service_name().to_owned(),
        operation: span.name.to_string(),
    }
}

fn summarize(traces: &[Vec<Span>], known: &HashSet<String>) -> SideAgg {
    let mut side = SideAgg::default();
    for spans in traces {
        let Some(analysis) = analyze_trace(spans) else {
            continue;
        };
        side.traces += 1;
        let by_hex: HashMap<String, &Span> =
            spans.iter().map(|s| (s.span_id.to_hex(), s)).collect();
        let mut children: HashMap<SpanId, Vec<&Span>> = HashMap::new();
        for s in spans {
            if let Some(p) = s.parent_span_id {
                children.entry(p).or_default().push(s);
            }
        }
        let asynchronous = consumer_subtrees(spans);
        for sa in &analysis.spans {
            let Some(span) = by_hex.get(&sa.span_id) else {
                continue;
            };
            let op = side.ops.entry(key(span)).or_default();
            // Work done after a message was consumed is on no request's critical path: its own
            // time is what can shift.
            let off_path = asynchronous.contains(&span.span_id);
            op.asynchronous |= off_path;
            op.critical_us += if off_path {
                sa.self_micros
            } else {
                sa.critical_micros
            } as f64;
            if matches!(span.kind, SpanKind::Client | SpanKind::Producer)
                && op.dependency.is_none()
                && !children.contains_key(&span.span_id)
            {
                if let Some(p) = peer(span).filter(|p| !known.contains(*p)) {
                    op.dependency = Some(p.to_owned());
                }
            }
        }
        if analysis.error_origins.is_empty() {
            continue;
        }
        side.failed += 1;
        let mut blamed_in_trace: HashSet<Key> = HashSet::new();
        for origin in &analysis.error_origins {
            let Some(span) = by_hex.get(&origin.span_id) else {
                continue;
            };
            let (blamed, cited, how) = blame(span, &children, known);
            if !blamed_in_trace.insert(blamed.clone()) {
                continue;
            }
            let op = side.ops.entry(blamed).or_default();
            op.origins += 1;
            match how {
                Blame::Itself => {}
                Blame::Unreached => op.unreached += 1,
                Blame::Abandoned => op.abandoned += 1,
            }
            if op.spans.len() < MAX_CITED {
                op.spans.push(span_ref(cited));
            }
        }
    }
    side
}

/// Spans that are CONSUMER spans or below one: asynchronous work.
fn consumer_subtrees(spans: &[Span]) -> HashSet<SpanId> {
    let parent: HashMap<SpanId, (Option<SpanId>, SpanKind)> = spans
        .iter()
        .map(|s| (s.span_id, (s.parent_span_id, s.kind)))
        .collect();
    let mut out = HashSet::new();
    for s in spans {
        let mut cursor = Some(s.span_id);
        // Bounded walk: a hostile parent cycle ends after as many steps as there are spans.
        for _ in 0..=spans.len() {
            let Some(id) = cursor else { break };
            let Some(&(up, kind)) = parent.get(&id) else {
                break;
            };
            if kind == SpanKind::Consumer || out.contains(&id) {
                out.insert(s.span_id);
                break;
            }
            cursor = up;
        }
    }
    out
}

enum Blame {
    Itself,
    Unreached,
    Abandoned,
}

/// Who an error origin blames: itself, the callee its caller gave up on, or the service it
/// could not reach.
fn blame<'a>(
    span: &'a Span,
    children: &HashMap<SpanId, Vec<&'a Span>>,
    known: &HashSet<String>,
) -> (Key, &'a Span, Blame) {
    if span.kind == SpanKind::Client {
        let callee = children.get(&span.span_id).and_then(|c| {
            c.iter()
                .copied()
                .filter(|c| c.service_name() != span.service_name())
                .max_by_key(|c| c.duration_nanos())
        });
        if let Some(callee) = callee {
            return (key(callee), callee, Blame::Abandoned);
        }
        if let Some(p) = peer(span).filter(|p| known.contains(*p) && *p != span.service_name()) {
            // None of its operations ran: the service as a whole is the candidate.
            return ((p.to_owned(), String::new()), span, Blame::Unreached);
        }
    }
    (key(span), span, Blame::Itself)
}

/// One candidate's numbers.
#[derive(Debug, Default)]
struct Candidate {
    latency_share: f64,
    error_share: f64,
    throughput_share: f64,
    score: f64,
    crit_before_us: f64,
    crit_after_us: f64,
    origins_after: u32,
    origins_before: u32,
}

/// Ranks candidate root causes; at most five, most likely first.
pub fn rank(input: &RankInput<'_>) -> Vec<RootCause> {
    let anom = summarize(input.anomalous, input.known_services);
    let norm = summarize(input.normal, input.known_services);
    let per = |agg: &SideAgg, k: &Key, f: &dyn Fn(&OpAgg) -> f64| {
        agg.ops.get(k).map_or(0.0, f) / agg.traces.max(1) as f64
    };
    let keys: HashSet<&Key> = anom.ops.keys().chain(norm.ops.keys()).collect();
    let mut cands: HashMap<Key, Candidate> = HashMap::new();
    let (mut lat_total, mut err_total) = (0.0, 0.0);
    for k in keys {
        let after = per(&anom, k, &|o| o.critical_us);
        let before = per(&norm, k, &|o| o.critical_us);
        let e_after = per(&anom, k, &|o| f64::from(o.origins));
        let e_before = per(&norm, k, &|o| f64::from(o.origins));
        let c = Candidate {
            // Below a millisecond per trace, a shift is noise.
            latency_share: if after - before >= 1_000.0 {
                after - before
            } else {
                0.0
            },
            error_share: (e_after - e_before).max(0.0),
            crit_before_us: before,
            crit_after_us: after,
            origins_after: anom.ops.get(k).map_or(0, |o| o.origins),
            origins_before: norm.ops.get(k).map_or(0, |o| o.origins),
            ..Candidate::default()
        };
        lat_total += c.latency_share;
        err_total += c.error_share;
        cands.insert(k.clone(), c);
    }
    let count = |s: Signal| input.symptoms.iter().filter(|x| x.signal == s).count() as f64;
    let mut w_lat = if lat_total > 0.0 {
        count(Signal::Latency)
    } else {
        0.0
    };
    let mut w_err = if err_total > 0.0 {
        count(Signal::Errors)
    } else {
        0.0
    };
    // Without symptoms (a direct call), whatever evidence there is counts.
    if input.symptoms.is_empty() {
        w_lat = f64::from(lat_total > 0.0);
        w_err = f64::from(err_total > 0.0);
    }
    let mut w_tp = 0.0;
    if w_lat + w_err == 0.0 {
        w_tp = throughput_origins(input, &mut cands);
    }
    let w_sum = w_lat + w_err + w_tp;
    if w_sum == 0.0 {
        return Vec::new();
    }
    for c in cands.values_mut() {
        if lat_total > 0.0 {
            c.latency_share /= lat_total;
        }
        if err_total > 0.0 {
            c.error_share /= err_total;
        }
        c.score =
            (w_lat * c.latency_share + w_err * c.error_share + w_tp * c.throughput_share) / w_sum;
    }

    // Services by summed score.
    let mut services: HashMap<&str, f64> = HashMap::new();
    for ((service, _), c) in &cands {
        *services.entry(service).or_default() += c.score;
    }
    let mut ordered: Vec<(&str, f64)> = services.into_iter().filter(|(_, s)| *s > 0.0).collect();
    ordered.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    ordered.truncate(MAX_CAUSES);
    let first_detected = first_detection(input.symptoms);
    ordered
        .iter()
        .enumerate()
        .map(|(i, &(service, score))| {
            let mut ops: Vec<(&Key, &Candidate)> =
                cands.iter().filter(|(k, _)| k.0 == service).collect();
            ops.sort_by(|a, b| b.1.score.total_cmp(&a.1.score).then(a.0.cmp(b.0)));
            let (top_key, top) = ops[0];
            describe(
                i + 1,
                service,
                score,
                top_key,
                top,
                &anom,
                &norm,
                input,
                &first_detected,
            )
        })
        .collect()
}

/// Gives each throughput symptom whose callers kept their rate a share; returns its weight.
///
/// Only a series' own drop counts: an edge's calls fall with either end (a stalled consumer
/// completes fewer pairs with its producer), so an edge symptom is cited as evidence, never
/// taken as its caller's drop.
fn throughput_origins(input: &RankInput<'_>, cands: &mut HashMap<Key, Candidate>) -> f64 {
    let dropped: Vec<&Symptom> = input
        .symptoms
        .iter()
        .filter(|s| s.signal == Signal::Throughput && s.peer.is_none())
        .collect();
    let dropped_services: HashSet<&str> = dropped.iter().map(|s| s.service.as_str()).collect();
    let origins: Vec<&Symptom> = dropped
        .iter()
        .copied()
        .filter(|s| {
            !input.edges.iter().any(|e| {
                e.server == s.service
                    && e.client != s.service
                    && dropped_services.contains(e.client.as_str())
            })
        })
        .collect();
    for s in &origins {
        let c = cands
            .entry((s.service.clone(), s.operation.clone()))
            .or_default();
        c.throughput_share += 1.0 / origins.len() as f64;
    }
    if origins.is_empty() {
        0.0
    } else {
        1.0
    }
}

/// When each service's own series first deviated (edge symptoms are the caller's view of a
/// callee and are cited separately, see [`edge_facts`]).
fn first_detection(symptoms: &[Symptom]) -> HashMap<&str, u64> {
    let mut first: HashMap<&str, u64> = HashMap::new();
    for s in symptoms.iter().filter(|s| s.peer.is_none()) {
        let e = first.entry(s.service.as_str()).or_insert(s.detected_at);
        *e = (*e).min(s.detected_at);
    }
    first
}

#[allow(clippy::too_many_arguments)]
fn describe(
    rank: usize,
    service: &str,
    score: f64,
    top_key: &Key,
    top: &Candidate,
    anom: &SideAgg,
    norm: &SideAgg,
    input: &RankInput<'_>,
    first_detected: &HashMap<&str, u64>,
) -> RootCause {
    let op_agg = anom.ops.get(top_key);
    let dependency = op_agg
        .and_then(|o| o.dependency.clone())
        .or_else(|| norm.ops.get(top_key).and_then(|o| o.dependency.clone()));
    let attributes = distinguishing_attributes(top_key, input);
    let service_total: f64 = score.max(f64::MIN_POSITIVE);
    let mut facts = Vec::new();
    let operation = &top_key.1;
    let label = if operation.is_empty() {
        service.to_owned()
    } else {
        format!("{service} {operation}")
    };
    if top.latency_share > 0.0 {
        facts.push(format!(
            "{label}: {} {:.1} ms per trace before, {:.1} ms now ({:.0}% of the added latency)",
            if op_agg.is_some_and(|o| o.asynchronous) {
                "self time (asynchronous, off the critical path)"
            } else {
                "critical-path self time"
            },
            top.crit_before_us / 1e3,
            top.crit_after_us / 1e3,
            top.latency_share * 100.0
        ));
    }
    if top.origins_after > 0 && top.error_share > 0.0 {
        facts.push(format!(
            "{label}: error origin in {} of {} failed traces ({} of {} traces before)",
            top.origins_after, anom.failed, top.origins_before, norm.traces
        ));
    }
    if let Some(o) = op_agg {
        if o.unreached > 0 {
            facts.push(format!(
                "{} failed call(s) to {service} never reached it (no server span): it is down or unreachable",
                o.unreached
            ));
        }
        if o.abandoned > 0 {
            facts.push(format!(
                "{} caller(s) gave up waiting for {label} (their call failed, this span did not)",
                o.abandoned
            ));
        }
    }
    if top.throughput_share > 0.0 {
        if let Some(s) = input.symptoms.iter().find(|s| {
            s.signal == Signal::Throughput
                && s.peer.is_none()
                && s.service == service
                && &s.operation == operation
        }) {
            facts.push(format!(
                "{label}: throughput fell from {:.2}/s to {:.2}/s while its callers kept theirs",
                s.baseline, s.observed
            ));
        }
    }
    if let Some(dep) = &dependency {
        facts.push(format!("{label} calls the uninstrumented dependency {dep}"));
    }
    for a in &attributes {
        facts.push(format!(
            "{} {} on {:.0}% of slow or failed {operation} spans, {:.0}% of normal ones",
            a.key,
            a.value,
            a.slow_or_failed_share * 100.0,
            a.normal_share * 100.0
        ));
    }
    if let Some(&first) = first_detected.get(service) {
        if first_detected.values().all(|&t| t >= first) && first_detected.len() > 1 {
            facts.push(format!("{service} deviated first; its callers followed"));
        }
    }
    let deviating = deviating_edges(service, dependency.as_deref(), input.symptoms);
    facts.extend(edge_facts(&deviating, input.symptoms));
    let mut edges: Vec<EdgeRef> = input
        .edges
        .iter()
        .filter(|e| e.server == service || dependency.as_deref() == Some(e.server.as_str()))
        .filter(|e| e.client != e.server)
        .cloned()
        .collect();
    for s in &deviating {
        let e = EdgeRef {
            client: s.service.clone(),
            server: s.peer.clone().unwrap_or_default(),
        };
        if !edges.contains(&e) {
            edges.push(e);
        }
    }
    // Edges in the order they degraded (their own baselines first, then their callers'
    // series): the order the degradation spread in.
    let edge_detected = |e: &EdgeRef| {
        deviating
            .iter()
            .filter(|s| s.service == e.client && s.peer.as_deref() == Some(e.server.as_str()))
            .map(|s| s.detected_at)
            .min()
    };
    edges.sort_by_key(|e| {
        (
            edge_detected(e).unwrap_or(u64::MAX),
            first_detected
                .get(e.client.as_str())
                .copied()
                .unwrap_or(u64::MAX),
            e.client.clone(),
        )
    });
    edges.truncate(MAX_CITED);
    let kind = if operation.is_empty() {
        CauseKind::Service
    } else if !attributes.is_empty() {
        CauseKind::Attribute
    } else if dependency.is_some() {
        CauseKind::Dependency
    } else if top.score >= 0.6 * service_total {
        CauseKind::Operation
    } else {
        CauseKind::Service
    };
    let attribute = (kind == CauseKind::Attribute).then(|| AttributeRef {
        key: attributes[0].key.clone(),
        value: attributes[0].value.clone(),
    });
    let mut spans: Vec<SpanRef> = op_agg.map(|o| o.spans.clone()).unwrap_or_default();
    if spans.len() < MAX_CITED {
        spans.extend(slowest_spans(
            top_key,
            input.anomalous,
            MAX_CITED - spans.len(),
        ));
    }
    let mut trace_ids: Vec<String> = Vec::new();
    for s in &spans {
        if !trace_ids.contains(&s.trace_id) && trace_ids.len() < MAX_CITED {
            trace_ids.push(s.trace_id.clone());
        }
    }
    let lead = match kind {
        CauseKind::Attribute => format!(
            "{service} {operation} with {} {}",
            attributes[0].key, attributes[0].value
        ),
        CauseKind::Dependency => format!(
            "{service}'s calls to {}",
            dependency.as_deref().unwrap_or_default()
        ),
        CauseKind::Operation => label.clone(),
        CauseKind::Service => service.to_owned(),
    };
    let prefix = format!("{label}: ");
    let explanation = match facts.first() {
        Some(f) => format!(
            "{lead} explains {:.0}% of the deviation: {}",
            score * 100.0,
            f.strip_prefix(&prefix).unwrap_or(f)
        ),
        None => format!("{lead} explains {:.0}% of the deviation", score * 100.0),
    };
    RootCause {
        rank,
        kind,
        service: service.to_owned(),
        operation: (!operation.is_empty()).then(|| operation.clone()),
        dependency,
        attribute,
        score: (score * 1000.0).round() / 1000.0,
        explanation,
        evidence: Evidence {
            trace_ids,
            spans,
            edges,
            attributes,
            facts,
        },
    }
}

/// Edge symptoms that touch `service`: its calls out, calls into it, and calls to its
/// uninstrumented `dependency`; earliest first.
fn deviating_edges<'a>(
    service: &str,
    dependency: Option<&str>,
    symptoms: &'a [Symptom],
) -> Vec<&'a Symptom> {
    let mut out: Vec<&Symptom> = symptoms
        .iter()
        .filter(|s| match s.peer.as_deref() {
            Some(peer) => s.service == service || peer == service || Some(peer) == dependency,
            None => false,
        })
        .collect();
    out.sort_by_key(|s| (s.detected_at, s.service.clone(), s.peer.clone()));
    out
}

/// "calls order → inventory: latency 3.2 ms → 152.0 ms, the first edge to degrade".
fn edge_facts(deviating: &[&Symptom], all: &[Symptom]) -> Vec<String> {
    let first_edge = all
        .iter()
        .filter(|s| s.peer.is_some())
        .map(|s| s.detected_at)
        .min();
    deviating
        .iter()
        .take(MAX_CITED)
        .map(|s| {
            let (what, before, after) = match s.signal {
                Signal::Latency => (
                    "latency",
                    format!("{:.1} ms", s.baseline / 1e3),
                    format!("{:.1} ms", s.observed / 1e3),
                ),
                Signal::Errors => (
                    "failed calls",
                    format!("{:.1}%", s.baseline * 100.0),
                    format!("{:.1}%", s.observed * 100.0),
                ),
                Signal::Throughput => (
                    "calls",
                    format!("{:.2}/s", s.baseline),
                    format!("{:.2}/s", s.observed),
                ),
            };
            let first = if Some(s.detected_at) == first_edge {
                ", the first edge to degrade"
            } else {
                ""
            };
            format!(
                "calls {} → {}: {what} {before} → {after} against the edge's baseline{first}",
                s.service,
                s.peer.as_deref().unwrap_or_default()
            )
        })
        .collect()
}

/// The `n` longest spans of `key` in `traces`.
fn slowest_spans(key: &Key, traces: &[Vec<Span>], n: usize) -> Vec<SpanRef> {
    let mut found: Vec<&Span> = traces
        .iter()
        .flatten()
        .filter(|s| s.name == key.1 && s.service_name() == key.0)
        .collect();
    found.sort_by_key(|s| std::cmp::Reverse(s.duration_nanos()));
    found.into_iter().take(n).map(span_ref).collect()
}

/// Attributes that describe the outcome rather than cause it (status, error, response), and
/// identifiers and ephemeral ports, which differ between any two windows (found on the demo:
/// `network.peer.port` of a new pooled connection, an error body's `http.response.body.size`).
fn uninformative(key: &str) -> bool {
    const PREFIXES: [&str; 6] = [
        "error",
        "exception",
        "otel.",
        "http.response.",
        "rpc.grpc.status_code",
        "rpc.response.",
    ];
    PREFIXES.iter().any(|p| key.starts_with(p))
        || key.ends_with(".id")
        || key.ends_with("_id")
        || key == "id"
        || key.ends_with(".message")
        || key.ends_with(".port")
}

/// A comparable form of an attribute value.
enum Value {
    Number(f64, bool),
    Text(String),
}

fn value_of(v: &AttributeValue) -> Option<Value> {
    match v {
        AttributeValue::Double(d) if d.is_finite() => Some(Value::Number(*d, false)),
        AttributeValue::Int(i) => Some(Value::Number(*i as f64, true)),
        AttributeValue::String(s) if s.len() <= 200 => Some(Value::Text(s.to_string())),
        AttributeValue::Bool(b) => Some(Value::Text(b.to_string())),
        _ => None,
    }
}

fn attributes_of(span: &Span) -> impl Iterator<Item = (&str, Value)> {
    let host = span
        .resource
        .attributes
        .iter()
        .filter(|kv| kv.key == "host.name");
    span.attributes
        .iter()
        .chain(host)
        .filter(|kv| !uninformative(&kv.key))
        .filter_map(|kv| value_of(&kv.value).map(|v| (kv.key.as_str(), v)))
}

/// Attribute values on `key`'s slow or failed spans (anomalous traces) that are rare on its
/// normal spans (baseline traces), best separated first.
fn distinguishing_attributes(key: &Key, input: &RankInput<'_>) -> Vec<AttributeEvidence> {
    let of = |traces: &'_ [Vec<Span>]| -> Vec<Span> {
        traces
            .iter()
            .flatten()
            .filter(|s| s.name == key.1 && s.service_name() == key.0)
            .cloned()
            .collect()
    };
    let normal = of(input.normal);
    let mut durations: Vec<u64> = normal.iter().map(Span::duration_nanos).collect();
    durations.sort_unstable();
    let slow = durations
        .get(durations.len() * 9 / 10)
        .copied()
        .unwrap_or(0);
    let bad: Vec<Span> = of(input.anomalous)
        .into_iter()
        .filter(|s| s.status.code == StatusCode::Error || s.duration_nanos() > slow)
        .collect();
    if bad.len() < 3 || normal.len() < 3 {
        return Vec::new();
    }
    let mut numbers: HashMap<&str, (Vec<f64>, Vec<f64>, bool)> = HashMap::new();
    let mut texts: HashMap<(&str, String), (usize, usize)> = HashMap::new();
    for (side, spans) in [(0, &bad), (1, &normal)] {
        for s in spans.iter() {
            for (k, v) in attributes_of(s) {
                match v {
                    Value::Number(n, int) => {
                        let e = numbers.entry(k).or_insert((Vec::new(), Vec::new(), true));
                        e.2 &= int;
                        if side == 0 {
                            e.0.push(n)
                        } else {
                            e.1.push(n)
                        }
                    }
                    Value::Text(t) => {
                        let e = texts.entry((k, t)).or_default();
                        if side == 0 {
                            e.0 += 1
                        } else {
                            e.1 += 1
                        }
                    }
                }
            }
        }
    }
    let (nb, nn) = (bad.len() as f64, normal.len() as f64);
    let mut out = Vec::new();
    for ((k, t), (b, n)) in texts {
        out.push(AttributeEvidence {
            key: k.to_owned(),
            value: t,
            slow_or_failed_share: b as f64 / nb,
            normal_share: n as f64 / nn,
        });
    }
    for (k, (b, mut n, int)) in numbers {
        let mut distinct: Vec<u64> = b.iter().chain(&n).map(|v| v.to_bits()).collect();
        distinct.sort_unstable();
        distinct.dedup();
        if int && distinct.len() <= 8 {
            // Few integer values: categories (e.g. a retry count).
            for v in distinct {
                let v = f64::from_bits(v);
                out.push(AttributeEvidence {
                    key: k.to_owned(),
                    value: format!("{v}"),
                    slow_or_failed_share: b.iter().filter(|&&x| x == v).count() as f64 / nb,
                    normal_share: n.iter().filter(|&&x| x == v).count() as f64 / nn,
                });
            }
            continue;
        }
        if n.is_empty() {
            continue;
        }
        n.sort_by(f64::total_cmp);
        let p95 = n[(n.len() * 95 / 100).min(n.len() - 1)];
        let threshold = if p95 > 0.0 { 2.0 * p95 } else { 0.0 };
        out.push(AttributeEvidence {
            key: k.to_owned(),
            value: format!("> {}", round_sig(threshold)),
            slow_or_failed_share: b.iter().filter(|&&x| x > threshold).count() as f64 / nb,
            normal_share: n.iter().filter(|&&x| x > threshold).count() as f64 / nn,
        });
    }
    out.retain(|a| a.slow_or_failed_share >= 0.6 && a.slow_or_failed_share - a.normal_share >= 0.5);
    out.sort_by(|a, b| {
        (b.slow_or_failed_share - b.normal_share)
            .total_cmp(&(a.slow_or_failed_share - a.normal_share))
            .then(a.key.cmp(&b.key))
    });
    out.truncate(3);
    for a in &mut out {
        a.slow_or_failed_share = (a.slow_or_failed_share * 1000.0).round() / 1000.0;
        a.normal_share = (a.normal_share * 1000.0).round() / 1000.0;
    }
    out
}

/// `x` with three significant digits, as text people read.
fn round_sig(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let digits = 3 - 1 - x.abs().log10().floor() as i32;
    let factor = 10f64.powi(digits);
    let r = (x * factor).round() / factor;
    format!("{r}")
}

#[cfg(test)]
mod tests;
