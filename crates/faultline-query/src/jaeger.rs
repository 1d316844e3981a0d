//! Handlers of the Jaeger HTTP JSON API (`/api/...`).

use std::collections::{BTreeSet, HashMap, HashSet};

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use faultline_model::TraceId;
use faultline_storage::TraceData;
use serde::Serialize;

use crate::error::{Envelope, EnvelopeError, TempoError};
use crate::jaeger_stream::TraceJson;
use crate::{params, path_segment, query_pairs, tempo, QueryError, QueryPairs, QueryState};

type Answer<T> = Result<Json<Envelope<T>>, QueryError>;

/// One operation of `/api/operations`.
#[derive(Serialize, Debug)]
pub(crate) struct Operation {
    name: String,
    #[serde(rename = "spanKind")]
    span_kind: &'static str,
}

/// One edge of `/api/dependencies`.
#[derive(Serialize, Debug)]
pub(crate) struct DependencyLink {
    parent: String,
    child: String,
    #[serde(rename = "callCount")]
    call_count: u64,
}

/// `GET /api/services`: every service name, sorted.
pub(crate) async fn services(State(state): State<QueryState>) -> Answer<Vec<String>> {
    let services = state.store.services().await?;
    let total = services.len();
    Ok(Json(Envelope::ok(services, total)))
}

/// `GET /api/services/{service}/operations`: the service's operation names, sorted, each once.
pub(crate) async fn service_operations(
    State(state): State<QueryState>,
    path: Result<Path<String>, PathRejection>,
) -> Answer<Vec<String>> {
    let service = path_segment("service", path)?;
    let names: BTreeSet<String> = state
        .store
        .operations(Some(&service))
        .await?
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let names: Vec<String> = names.into_iter().collect();
    let total = names.len();
    Ok(Json(Envelope::ok(names, total)))
}

/// `GET /api/operations?service=S[&spanKind=K]`: operations with their kinds.
pub(crate) async fn operations(
    State(state): State<QueryState>,
    query: QueryPairs,
) -> Answer<Vec<Operation>> {
    let pairs = query_pairs(query)?;
    let service = params::first(&pairs, "service").ok_or_else(|| {
        QueryError::bad_param(
            "service",
            "is required: the service whose operations to list",
        )
    })?;
    let kind = params::operations_kind(&pairs, &["spanKind"])?;
    let ops: Vec<Operation> = state
        .store
        .operations(Some(service))
        .await?
        .into_iter()
        .filter(|(_, k)| kind.is_none_or(|want| want == *k))
        .map(|(name, k)| Operation {
            name,
            span_kind: k.as_jaeger_str(),
        })
        .collect();
    let total = ops.len();
    Ok(Json(Envelope::ok(ops, total)))
}

/// `GET /api/traces/{traceID}`: one trace, or 404. Tempo serves the same path: a client that
/// asks for `application/protobuf` (Grafana's Tempo data source) gets Tempo's answer.
pub(crate) async fn trace_by_id(
    State(state): State<QueryState>,
    path: Result<Path<String>, PathRejection>,
    query: QueryPairs,
    headers: HeaderMap,
) -> Result<Response, QueryError> {
    if tempo::wants_protobuf(&headers) {
        return Ok(tempo_trace_v1(state, path, query).await.into_response());
    }
    let raw_id = path_segment("traceID", path)?;
    let id = params::trace_id("traceID", &raw_id)?;
    params::trace_by_id_hints(&query_pairs(query)?)?;
    match state.store.trace(id).await? {
        Some(t) if !t.spans.is_empty() => {
            let trace = TraceJson::new(id, &t.spans, &t.warnings);
            let capacity = trace.size_hint();
            json_bytes(&Envelope::ok([trace], 1), capacity)
        }
        _ => Err(QueryError::TraceNotFound(id)),
    }
}

/// `value` written as JSON into a buffer of `capacity` bytes, answered as it is: large traces
/// are encoded in one pass with no intermediate tree and no buffer regrowth.
fn json_bytes<T: Serialize>(value: &T, capacity: usize) -> Result<Response, QueryError> {
    // A hint, not a promise: never reserve more than 256 MiB up front.
    let mut body = Vec::with_capacity(capacity.min(256 << 20));
    serde_json::to_writer(&mut body, value).map_err(|e| QueryError::Encode(e.to_string()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

/// Tempo's v1 trace by ID (`tempopb.Trace` protobuf), with Tempo's plain-text errors.
async fn tempo_trace_v1(
    state: QueryState,
    path: Result<Path<String>, PathRejection>,
    query: QueryPairs,
) -> Result<Response, TempoError> {
    let raw_id = path_segment("traceID", path)?;
    let id = params::trace_id("traceID", &raw_id)?;
    tempo::params::window(&query_pairs(query)?, state.now())?;
    match state.store.trace(id).await.map_err(QueryError::from)? {
        Some(t) if !t.spans.is_empty() => Ok(tempo::trace_v1_protobuf(&t.spans)),
        _ => Err(QueryError::TraceNotFound(id).into()),
    }
}

/// Fetches `ids` and returns the found traces in the order of `ids` (each once), plus the IDs
/// not found.
async fn fetch_in_order(
    state: &QueryState,
    ids: &[TraceId],
) -> Result<(Vec<(TraceId, TraceData)>, Vec<TraceId>), QueryError> {
    let mut seen = HashSet::with_capacity(ids.len());
    let unique: Vec<TraceId> = ids.iter().copied().filter(|id| seen.insert(*id)).collect();
    let mut found: HashMap<TraceId, TraceData> =
        state.store.traces(&unique).await?.into_iter().collect();
    let mut traces = Vec::with_capacity(unique.len());
    let mut missing = Vec::new();
    for id in unique {
        match found.remove(&id) {
            Some(t) if !t.spans.is_empty() => traces.push((id, t)),
            _ => missing.push(id),
        }
    }
    Ok((traces, missing))
}

/// The search answer for `traces`, encoded straight from their spans.
fn traces_answer(
    traces: &[(TraceId, TraceData)],
    errors: Option<Vec<EnvelopeError>>,
) -> Result<Response, QueryError> {
    let data: Vec<TraceJson<'_>> = traces
        .iter()
        .map(|(id, t)| TraceJson::new(*id, &t.spans, &t.warnings))
        .collect();
    let capacity = data.iter().map(TraceJson::size_hint).sum();
    let total = data.len();
    let mut envelope = Envelope::ok(data, total);
    envelope.errors = errors;
    json_bytes(&envelope, capacity)
}

/// `GET /api/traces?...`: search, most recent first; or, with `traceID=` values, those traces
/// (missing ones are listed in `errors`, as Jaeger does).
pub(crate) async fn search(
    State(state): State<QueryState>,
    query: QueryPairs,
) -> Result<Response, QueryError> {
    let search = params::trace_search(&query_pairs(query)?, state.now())?;
    if !search.trace_ids.is_empty() {
        let (traces, missing) = fetch_in_order(&state, &search.trace_ids).await?;
        let errors = (!missing.is_empty()).then(|| {
            missing
                .iter()
                .map(|id| EnvelopeError {
                    code: None,
                    msg: "trace not found".to_owned(),
                    trace_id: Some(id.to_hex()),
                })
                .collect()
        });
        return traces_answer(&traces, errors);
    }
    let ids = state.store.search(&search.query).await?;
    // Traces removed between search and fetch (retention) are simply left out.
    let (traces, _) = fetch_in_order(&state, &ids).await?;
    traces_answer(&traces, None)
}

/// `GET /api/dependencies?endTs=<ms>&lookback=<ms>`: service-to-service call counts.
pub(crate) async fn dependencies(
    State(state): State<QueryState>,
    query: QueryPairs,
) -> Answer<Vec<DependencyLink>> {
    let window = params::dependencies(&query_pairs(query)?, state.now())?;
    let links: Vec<DependencyLink> = state
        .store
        .dependencies(window.start, window.end)
        .await?
        .into_iter()
        .filter(|(parent, child, _)| {
            window
                .service
                .as_deref()
                .is_none_or(|s| s == parent || s == child)
        })
        .map(|(parent, child, call_count)| DependencyLink {
            parent,
            child,
            call_count,
        })
        .collect();
    let total = links.len();
    Ok(Json(Envelope::ok(links, total)))
}
