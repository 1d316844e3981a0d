//! The HTTP API: `/metrics` and the JSON endpoints under `/api/analysis`.
//!
//! Every parameter is checked here and turned into an [`AnalysisError`] that names it; the
//! handlers never panic on input.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use faultline_model::{SpanKind, TraceId, UnixNanos};
use faultline_storage::Store;
use serde_json::{json, Value};

use crate::analyzer::Analyzer;
use crate::error::AnalysisError;
use crate::exposition::{Format, SelfMetric};
use crate::graph::EdgeKind;
use crate::incident::IncidentStatus;
use crate::trace::analyze_trace;
use crate::window::WindowStats;

/// Window used when the request names none.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(300);

/// Where `/metrics` gets the server's own numbers (receivers, storage), shown after the
/// analysis families. The server binary implements it over its ingest and store counters.
pub trait SelfMetricsSource: Send + Sync + 'static {
    /// The current values.
    fn collect(&self) -> Pin<Box<dyn Future<Output = Vec<SelfMetric>> + Send + '_>>;
}

/// No numbers of its own: for an embedder (or a test) that serves only the analysis.
impl SelfMetricsSource for () {
    fn collect(&self) -> Pin<Box<dyn Future<Output = Vec<SelfMetric>> + Send + '_>> {
        Box::pin(std::future::ready(Vec::new()))
    }
}

#[derive(Clone)]
struct AppState {
    analyzer: Arc<Analyzer>,
    store: Arc<Store>,
    own: Arc<dyn SelfMetricsSource>,
}

/// The routes: `GET /metrics`, `GET /api/analysis/service-graph`, `GET /api/analysis/red`,
/// `GET /api/analysis/dependencies` (Jaeger's `/api/dependencies` shape, from the live graph)
/// `GET /api/analysis/traces/{traceID}`, `GET /api/incidents`, `GET /api/incidents/{id}` and
/// `GET /api/rca`. `/metrics` ends with the numbers `own` reports.
pub fn router(
    analyzer: Arc<Analyzer>,
    store: Arc<Store>,
    own: Arc<dyn SelfMetricsSource>,
) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/api/analysis/service-graph", get(service_graph))
        .route("/api/analysis/red", get(red))
        .route("/api/analysis/dependencies", get(dependencies))
        .route("/api/analysis/traces/{trace_id}", get(trace))
        .route("/api/incidents", get(incidents))
        .route("/api/incidents/{id}", get(incident))
        .route("/api/rca", get(rca))
        .with_state(AppState {
            analyzer,
            store,
            own,
        })
}

type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::from_accept(accept);
    let own = state.own.collect().await;
    let body = state.analyzer.prometheus(format, &own);
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

async fn service_graph(
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<Value>, AnalysisError> {
    let params = known_params(params, &["window"])?;
    let (window, slots) = window_of(&state.analyzer, &params)?;
    let edges = state.analyzer.edges(UnixNanos::now(), slots);
    let secs = window.as_secs_f64();

    let mut nodes: HashMap<&str, (bool, WindowStats, WindowStats)> = HashMap::new();
    for e in &edges {
        let virtual_node = matches!(e.kind, EdgeKind::Virtual(_));
        nodes.entry(&e.client).or_default().2.merge(&e.client_stats);
        let server = nodes.entry(&e.server).or_default();
        server.0 |= virtual_node;
        server.1.merge(if virtual_node {
            &e.client_stats
        } else {
            &e.server_stats
        });
    }
    let mut node_list: Vec<Value> = nodes
        .iter()
        .map(|(name, (virtual_node, incoming, outgoing))| {
            json!({
                "id": name,
                "virtual": virtual_node,
                "incoming": red_json(incoming, secs),
                "outgoing": red_json(outgoing, secs),
            })
        })
        .collect();
    node_list.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    let edge_list: Vec<Value> = edges
        .iter()
        .map(|e| {
            let (kind, via) = match e.kind {
                EdgeKind::Request => ("request", None),
                EdgeKind::Messaging => ("messaging", None),
                EdgeKind::Virtual(attr) => ("virtual", Some(attr)),
            };
            json!({
                "client": &*e.client,
                "server": &*e.server,
                "kind": kind,
                "virtualNodeFrom": via,
                "clientSide": red_json(&e.client_stats, secs),
                "serverSide": (e.server_stats.calls > 0).then(|| red_json(&e.server_stats, secs)),
                "exemplarTraceIDs": e.exemplars.iter().map(TraceId::to_hex).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({
        "data": {"windowSeconds": secs, "nodes": node_list, "edges": edge_list},
        "errors": null,
    })))
}

/// Jaeger's `/api/dependencies` answer from the live graph: `endTs` (ms since the epoch,
/// default now) must be recent, `lookback` (ms, default 5 minutes) within the horizon.
async fn dependencies(
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<Value>, AnalysisError> {
    let params = known_params(params, &["endTs", "lookback"])?;
    let ms = |name: &'static str| -> Result<Option<u64>, AnalysisError> {
        params
            .get(name)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| AnalysisError::InvalidParameter {
                        name,
                        message: format!("{v:?} is not a whole number of milliseconds"),
                    })
            })
            .transpose()
    };
    let now = UnixNanos::now();
    let lookback =
        Duration::from_millis(ms("lookback")?.unwrap_or(DEFAULT_WINDOW.as_millis() as u64));
    if let Some(end) = ms("endTs")? {
        // The live graph only knows the recent past: an end more than one slot away from now
        // would silently answer for the wrong window.
        let end_ns = u128::from(end) * 1_000_000;
        let slot = state.analyzer.config().slot.as_nanos();
        if end_ns.abs_diff(u128::from(now.0)) > slot {
            return Err(AnalysisError::InvalidParameter {
                name: "endTs",
                message: "the live service graph answers only for windows ending now; omit endTs or use the query API's /api/dependencies for the past".into(),
            });
        }
    }
    let slots =
        state
            .analyzer
            .window_slots(lookback)
            .map_err(|_| AnalysisError::InvalidParameter {
                name: "lookback",
                message: format!(
                    "must be positive and at most {} ms (the retained horizon)",
                    state.analyzer.config().horizon().as_millis()
                ),
            })?;
    let links: Vec<Value> = state
        .analyzer
        .edges(now, slots)
        .iter()
        .map(|e| json!({"parent": &*e.client, "child": &*e.server, "callCount": e.client_stats.calls.max(e.server_stats.calls)}))
        .collect();
    Ok(Json(json!({
        "data": links,
        "total": links.len(),
        "limit": 0,
        "offset": 0,
        "errors": null,
    })))
}

async fn red(State(state): State<AppState>, params: Params) -> Result<Json<Value>, AnalysisError> {
    let params = known_params(params, &["window", "service", "spanKind"])?;
    let (window, slots) = window_of(&state.analyzer, &params)?;
    let kind = match params.get("spanKind") {
        None => None,
        Some(k) => Some(SpanKind::from_jaeger_str(k).ok_or_else(|| AnalysisError::InvalidParameter {
            name: "spanKind",
            message: format!(
                "{k:?} is not a span kind; expected server, client, producer, consumer, internal or unspecified"
            ),
        })?),
    };
    let service = params
        .get("service")
        .map(String::as_str)
        .filter(|s| !s.is_empty());
    let secs = window.as_secs_f64();
    let series: Vec<Value> = state
        .analyzer
        .red(service, UnixNanos::now(), slots)
        .into_iter()
        .filter(|r| kind.is_none_or(|k| k == r.kind))
        .map(|r| {
            let mut v = red_json(&r.stats, secs);
            v["service"] = json!(r.service);
            v["operation"] = json!(r.operation);
            v["spanKind"] = json!(r.kind.as_jaeger_str());
            v["exemplarTraceIDs"] = json!(r
                .exemplars
                .iter()
                .map(|e| e.trace_id.to_hex())
                .collect::<Vec<_>>());
            v
        })
        .collect();
    Ok(Json(json!({
        "data": series,
        "windowSeconds": secs,
        "errors": null,
    })))
}

async fn trace(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<Value>, AnalysisError> {
    let id: TraceId = raw.parse().map_err(|e| AnalysisError::InvalidParameter {
        name: "traceID",
        message: format!("{e}; expected up to 32 hex digits"),
    })?;
    let data = state
        .store
        .trace(id)
        .await?
        .ok_or(AnalysisError::TraceNotFound)?;
    let mut analysis = analyze_trace(&data.spans).ok_or(AnalysisError::TraceNotFound)?;
    analysis.warnings.extend(data.warnings);
    Ok(Json(json!({"data": analysis, "errors": null})))
}

/// Incidents kept at most per answer when `limit` is not given.
const DEFAULT_INCIDENT_LIMIT: usize = 20;

async fn incidents(
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<Value>, AnalysisError> {
    let params = known_params(params, &["status", "limit"])?;
    let status = match params.get("status").map(String::as_str) {
        None | Some("") | Some("all") => None,
        Some("open") => Some(IncidentStatus::Open),
        Some("resolved") => Some(IncidentStatus::Resolved),
        Some(other) => {
            return Err(AnalysisError::InvalidParameter {
                name: "status",
                message: format!("{other:?} is not a status; expected open, resolved or all"),
            })
        }
    };
    let limit = match params.get("limit") {
        None => DEFAULT_INCIDENT_LIMIT,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|&n| (1..=1000).contains(&n))
            .ok_or_else(|| AnalysisError::InvalidParameter {
                name: "limit",
                message: format!("{v:?} is not a whole number between 1 and 1000"),
            })?,
    };
    Ok(Json(
        json!({"data": state.analyzer.incidents(status, limit), "errors": null}),
    ))
}

async fn incident(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AnalysisError> {
    let found = state
        .analyzer
        .incident(&id)
        .ok_or(AnalysisError::IncidentNotFound)?;
    Ok(Json(json!({"data": found, "errors": null})))
}

/// Longest window `/api/rca` analyses (and longest baseline).
const MAX_RCA_WINDOW: Duration = Duration::from_secs(24 * 3600);

async fn rca(State(state): State<AppState>, params: Params) -> Result<Json<Value>, AnalysisError> {
    let params = known_params(params, &["start", "end", "baselineStart", "baselineEnd"])?;
    let micros = |name: &'static str| -> Result<Option<u64>, AnalysisError> {
        params
            .get(name)
            .map(|v| {
                v.parse::<u64>()
                    .ok()
                    .filter(|&us| us <= u64::MAX / 1_000)
                    .ok_or_else(|| AnalysisError::InvalidParameter {
                        name,
                        message: format!("{v:?} is not a time in microseconds since the epoch"),
                    })
            })
            .transpose()
    };
    let missing = |name: &'static str| AnalysisError::InvalidParameter {
        name,
        message: "required (microseconds since the epoch)".into(),
    };
    let start = micros("start")?.ok_or_else(|| missing("start"))?;
    let end = micros("end")?.ok_or_else(|| missing("end"))?;
    let max_us = MAX_RCA_WINDOW.as_micros() as u64;
    if end <= start || end - start > max_us {
        return Err(AnalysisError::InvalidParameter {
            name: "end",
            message: format!(
                "must be after start and at most {}h later",
                max_us / 3_600_000_000
            ),
        });
    }
    let (bs, be) = match (micros("baselineStart")?, micros("baselineEnd")?) {
        (None, None) => (start.saturating_sub(end - start), start),
        (Some(bs), Some(be)) if be > bs && be - bs <= max_us => (bs, be),
        (Some(_), Some(_)) => {
            return Err(AnalysisError::InvalidParameter {
                name: "baselineEnd",
                message: format!(
                    "must be after baselineStart and at most {}h later",
                    max_us / 3_600_000_000
                ),
            })
        }
        _ => {
            return Err(AnalysisError::InvalidParameter {
                name: "baselineStart",
                message: "give both baselineStart and baselineEnd, or neither".into(),
            })
        }
    };
    let ns = |us: u64| UnixNanos(us * 1_000);
    let cfg = state.analyzer.config().detection.clone();
    let analysis = crate::rca::analyze_window(
        &state.analyzer,
        &state.store,
        (ns(start), ns(end)),
        (ns(bs), ns(be)),
        &cfg,
    )
    .await?;
    Ok(Json(json!({"data": analysis, "errors": null})))
}

/// Rejects parameters the endpoint does not know, naming the first one.
fn known_params(
    params: Params,
    allowed: &[&str],
) -> Result<HashMap<String, String>, AnalysisError> {
    let Query(params) = params.map_err(|e| AnalysisError::InvalidParameter {
        name: "query",
        message: e.body_text(),
    })?;
    if let Some(unknown) = params.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(AnalysisError::InvalidParameter {
            name: "query",
            message: format!("unknown parameter {unknown:?}; expected one of {allowed:?}"),
        });
    }
    Ok(params)
}

fn window_of(
    analyzer: &Analyzer,
    params: &HashMap<String, String>,
) -> Result<(Duration, u64), AnalysisError> {
    let window = match params.get("window") {
        Some(w) => parse_duration(w).map_err(|message| AnalysisError::InvalidParameter {
            name: "window",
            message,
        })?,
        None => DEFAULT_WINDOW.min(analyzer.config().horizon()),
    };
    let slots = analyzer.window_slots(window)?;
    // Report the window actually summed: whole slots.
    Ok((analyzer.config().slot * slots as u32, slots))
}

/// Parses `250ms`, `30s`, `5m`, `1h` (one number, one unit).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let expected = "expected a duration such as 30s, 5m or 1h (units ms, s, m, h)";
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration; {expected}"))?;
    let nanos_per: u64 = match unit {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return Err(format!("{s:?} has no known unit; {expected}")),
    };
    n.checked_mul(nanos_per)
        .map(Duration::from_nanos)
        .ok_or_else(|| format!("{s:?} is too long"))
}

fn red_json(s: &WindowStats, secs: f64) -> Value {
    let ms = |q: f64| s.latency.quantile_seconds(q).map(|v| v * 1e3);
    json!({
        "calls": s.calls,
        "errors": s.errors,
        "ratePerSecond": if secs > 0.0 { s.calls as f64 / secs } else { 0.0 },
        "errorRatio": if s.calls > 0 { s.errors as f64 / s.calls as f64 } else { 0.0 },
        "p50Ms": ms(0.5),
        "p90Ms": ms(0.9),
        "p99Ms": ms(0.99),
        "meanMs": s.latency.mean_seconds().map(|v| v * 1e3),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_or_explain() {
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("").unwrap_err().contains("not a duration"));
        assert!(parse_duration("5").unwrap_err().contains("unit"));
        assert!(parse_duration("-5m").is_err());
        assert!(parse_duration("5 m").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
        assert!(parse_duration("9999999999999h")
            .unwrap_err()
            .contains("too long"));
    }
}
