//! Evidence from the store for the ranking: samples slow and failed traces of the symptoms in
//! the anomalous window and normal traces of the same operations before it, with a bounded
//! number of traces and time. Also answers `/api/rca` for any window, building the symptoms
//! from sampled spans instead of the live slots.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use faultline_model::query::SpanQuery;
use faultline_model::{Span, SpanKind, StatusCode, TraceId, UnixNanos};
use faultline_storage::Store;

use crate::analyzer::Analyzer;
use crate::config::DetectionConfig;
use crate::error::AnalysisError;
use crate::incident::{EdgeRef, RootCause, Signal, Symptom};
use crate::rank::{rank, RankInput};

/// Symptoms whose traces are sampled at most (the strongest, earliest first).
const MAX_SAMPLED_SYMPTOMS: usize = 4;

/// Instrumented services and recent edges, from the live analysis.
pub(crate) fn topology(analyzer: &Analyzer, now: UnixNanos) -> (HashSet<String>, Vec<EdgeRef>) {
    let mut known = HashSet::new();
    analyzer.with_red(|red| {
        red.visit(|_, _, service, _, _| {
            if !known.contains(service) {
                known.insert(service.to_owned());
            }
        })
    });
    let slots = analyzer.config().slots as u64;
    let edges = analyzer
        .edges(now, slots)
        .into_iter()
        .map(|e| EdgeRef {
            client: e.client.to_string(),
            server: e.server.to_string(),
        })
        .collect();
    (known, edges)
}

/// Reads the traces of `ids` (bounded by the caller), whole.
async fn fetch(store: &Store, ids: &[TraceId]) -> Result<Vec<Vec<Span>>, AnalysisError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(store
        .traces(ids)
        .await?
        .into_iter()
        .map(|(_, t)| t.spans)
        .collect())
}

fn push_unique(ids: &mut Vec<TraceId>, found: Vec<TraceId>, max: usize) {
    for id in found {
        if ids.len() >= max {
            return;
        }
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
}

/// Samples evidence for `symptoms` and ranks the causes.
pub(crate) async fn rank_symptoms(
    analyzer: &Analyzer,
    store: &Store,
    symptoms: &[Symptom],
    anomalous: (UnixNanos, UnixNanos),
    baseline: (UnixNanos, UnixNanos),
    cfg: &DetectionConfig,
) -> Result<Vec<RootCause>, AnalysisError> {
    let mut chosen: Vec<&Symptom> = symptoms.iter().collect();
    // Entry points first: their slow or failed spans are the traces users saw. An edge's
    // caller is sampled when there is room (or when only edges deviate).
    chosen.sort_by_key(|s| (s.peer.is_some(), s.detected_at));
    chosen.truncate(MAX_SAMPLED_SYMPTOMS);
    let per = (cfg.max_rca_traces / (2 * chosen.len().max(1))).max(1);
    let half = cfg.max_rca_traces / 2;
    let (mut bad_ids, mut normal_ids) = (Vec::new(), Vec::new());
    for s in &chosen {
        // An edge symptom has no operation: any slow or failed span of its caller will do.
        let base = SpanQuery {
            service: Some(s.service.clone()),
            operation: (!s.operation.is_empty()).then(|| s.operation.clone()),
            limit: per,
            ..SpanQuery::default()
        };
        let bad = match s.signal {
            Signal::Latency => Some(SpanQuery {
                min_duration_nanos: Some(((s.baseline + s.observed) / 2.0 * 1e3) as u64),
                ..base.clone()
            }),
            Signal::Errors => Some(SpanQuery {
                tags: vec![("error".into(), "true".into())],
                ..base.clone()
            }),
            // A stalled series has no spans to show; its callers' do not explain it.
            Signal::Throughput => None,
        };
        if let Some(q) = bad {
            let q = SpanQuery {
                start: anomalous.0,
                end: anomalous.1,
                ..q
            };
            push_unique(&mut bad_ids, store.search(&q).await?, half);
        }
        let q = SpanQuery {
            start: baseline.0,
            end: baseline.1,
            ..base
        };
        push_unique(&mut normal_ids, store.search(&q).await?, half);
    }
    let anomalous_traces = fetch(store, &bad_ids).await?;
    let normal_traces = fetch(store, &normal_ids).await?;
    let (known, edges) = topology(analyzer, anomalous.1);
    Ok(rank(&RankInput {
        symptoms,
        anomalous: &anomalous_traces,
        normal: &normal_traces,
        known_services: &known,
        edges: &edges,
    }))
}

/// Sums of one (service, operation) entry point over sampled spans.
#[derive(Debug, Default, Clone, Copy)]
struct Sums {
    calls: u64,
    errors: u64,
    nanos: u64,
}

fn entry_sums(
    traces: &[Vec<Span>],
    window: (UnixNanos, UnixNanos),
) -> HashMap<(String, String), Sums> {
    let mut out: HashMap<(String, String), Sums> = HashMap::new();
    for s in traces.iter().flatten() {
        if !matches!(s.kind, SpanKind::Server | SpanKind::Consumer)
            || s.start < window.0
            || s.start > window.1
        {
            continue;
        }
        let e = out
            .entry((s.service_name().to_owned(), s.name.to_string()))
            .or_default();
        e.calls += 1;
        e.errors += u64::from(s.status.code == StatusCode::Error);
        e.nanos = e.nanos.saturating_add(s.duration_nanos());
    }
    out
}

/// The answer of `/api/rca`.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowAnalysis {
    /// Entry points whose latency, errors or throughput deviate from the baseline window.
    pub symptoms: Vec<Symptom>,
    /// Ranked causes.
    pub root_causes: Vec<RootCause>,
    /// Traces read from each window (a sample when it hit the limit).
    pub traces_sampled: [usize; 2],
}

/// Symptoms and causes of `window` against `baseline`, from at most
/// `cfg.max_rca_traces` sampled traces per window (span start times).
pub(crate) async fn analyze_window(
    analyzer: &Analyzer,
    store: &Store,
    window: (UnixNanos, UnixNanos),
    baseline: (UnixNanos, UnixNanos),
    cfg: &DetectionConfig,
) -> Result<WindowAnalysis, AnalysisError> {
    let limit = cfg.max_rca_traces.max(1);
    let query = |w: (UnixNanos, UnixNanos)| SpanQuery {
        start: w.0,
        end: w.1,
        limit,
        ..SpanQuery::default()
    };
    let ids = store.search(&query(window)).await?;
    let base_ids = store.search(&query(baseline)).await?;
    // Throughput is only measurable when the whole window was read.
    let complete = ids.len() < limit && base_ids.len() < limit;
    let traces = fetch(store, &ids).await?;
    let base_traces = fetch(store, &base_ids).await?;
    let now_sums = entry_sums(&traces, window);
    let base_sums = entry_sums(&base_traces, baseline);
    let secs = |w: (UnixNanos, UnixNanos)| (w.1 .0.saturating_sub(w.0 .0) as f64 / 1e9).max(1e-3);
    let (secs_now, secs_base) = (secs(window), secs(baseline));
    let detected_at = window.0 .0 / 1_000;
    let mut symptoms = Vec::new();
    let mut symptom = |k: &(String, String), signal: Signal, baseline: f64, observed: f64| {
        symptoms.push(Symptom {
            service: k.0.clone(),
            operation: k.1.clone(),
            peer: None,
            signal,
            baseline,
            observed,
            unit: signal.unit(),
            detected_at,
        })
    };
    let min_delta_us = cfg.latency_min_delta.as_secs_f64() * 1e6;
    let mut keys: Vec<&(String, String)> = base_sums.keys().chain(now_sums.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let b = base_sums.get(k).copied().unwrap_or_default();
        let n = now_sums.get(k).copied().unwrap_or_default();
        if b.calls >= cfg.min_calls && n.calls >= cfg.min_calls {
            let (bm, nm) = (
                b.nanos as f64 / b.calls as f64 / 1e3,
                n.nanos as f64 / n.calls as f64 / 1e3,
            );
            if nm > bm * cfg.latency_ratio && nm - bm >= min_delta_us {
                symptom(k, Signal::Latency, bm, nm);
            }
            let (br, nr) = (
                b.errors as f64 / b.calls as f64,
                n.errors as f64 / n.calls as f64,
            );
            if n.errors >= 3 && nr - br >= cfg.error_ratio_min_delta && nr >= 2.0 * br {
                symptom(k, Signal::Errors, br, nr);
            }
        }
        if complete {
            let (brate, nrate) = (b.calls as f64 / secs_base, n.calls as f64 / secs_now);
            if brate >= cfg.throughput_min_rate
                && brate * secs_now >= cfg.min_calls as f64
                && nrate <= brate * cfg.throughput_drop_ratio
            {
                symptom(k, Signal::Throughput, brate, nrate);
            }
        }
    }
    // The anomalous traces: those where a symptom's entry point is slow or failed.
    let bad: Vec<Vec<Span>> = traces
        .into_iter()
        .filter(|t| {
            t.iter().any(|s| {
                symptoms.iter().any(|y| {
                    y.service == s.service_name()
                        && y.operation == s.name
                        && match y.signal {
                            Signal::Latency => {
                                s.duration_nanos() as f64 / 1e3 > (y.baseline + y.observed) / 2.0
                            }
                            Signal::Errors => s.status.code == StatusCode::Error,
                            Signal::Throughput => false,
                        }
                })
            })
        })
        .collect();
    let (known, edges) = topology(analyzer, UnixNanos::now());
    let root_causes = if symptoms.is_empty() {
        Vec::new()
    } else {
        rank(&RankInput {
            symptoms: &symptoms,
            anomalous: &bad,
            normal: &base_traces,
            known_services: &known,
            edges: &edges,
        })
    };
    Ok(WindowAnalysis {
        symptoms,
        root_causes,
        traces_sampled: [ids.len(), base_ids.len()],
    })
}

/// Handle of the background detector; [`stop`](Self::stop) ends it.
#[derive(Debug)]
pub struct DetectorHandle {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl DetectorHandle {
    /// Stops the detector and waits for its current tick to finish.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Runs one detection tick at `now` and, if an incident is open, re-ranks its causes from the
/// store within the configured time budget. What the background task does on every tick;
/// tests call it with their own clock.
pub async fn detect_and_rank(
    detector: &mut crate::detect::Detector,
    analyzer: &Analyzer,
    store: &Store,
    now: UnixNanos,
) {
    let Some(req) = detector.tick_at(analyzer, now) else {
        return;
    };
    let cfg = analyzer.config().detection.clone();
    let ranked = tokio::time::timeout(
        cfg.rca_budget,
        rank_symptoms(
            analyzer,
            store,
            &req.symptoms,
            req.anomalous,
            req.baseline,
            &cfg,
        ),
    )
    .await;
    match ranked {
        Ok(Ok(causes)) => {
            if let Some(incident) = analyzer.incident_log().get_mut(&req.incident_id) {
                // Keep the last ranking when a pass found nothing (e.g. traces not flushed yet).
                if !causes.is_empty() {
                    incident.root_causes = causes;
                }
            }
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "root-cause ranking failed"),
        Err(_) => tracing::warn!(
            budget_ms = cfg.rca_budget.as_millis() as u64,
            "root-cause ranking ran out of time"
        ),
    }
}

/// Starts detection in the background: a tick every `detection.tick`, ranking open incidents
/// from `store`. Call on a Tokio runtime.
pub fn spawn_detector(
    analyzer: std::sync::Arc<Analyzer>,
    store: std::sync::Arc<Store>,
) -> DetectorHandle {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let tick: Duration = analyzer.config().detection.tick;
    let task = tokio::spawn(async move {
        let mut detector = crate::detect::Detector::new(&analyzer);
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = stopped.wait_for(|s| *s) => return,
            }
            detect_and_rank(&mut detector, &analyzer, &store, UnixNanos::now()).await;
        }
    });
    DetectorHandle { stop, task }
}
