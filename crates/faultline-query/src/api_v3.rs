//! Handlers of Jaeger's api_v3 HTTP API (`/api/v3/...`), which speaks OTLP JSON.

use std::collections::HashMap;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;
use faultline_model::otlp::{spans_to_otlp, ResourceSpans, TracesData};
use faultline_model::{Span, SpanKind, TraceId};
use faultline_storage::TraceData;
use serde::Serialize;

use crate::{params, path_segment, query_pairs, QueryError, QueryPairs, QueryState, V3Error};

/// `{"result": {"resourceSpans": [...]}}`, as Jaeger's grpc-gateway wraps a `TracesData`.
#[derive(Serialize)]
pub(crate) struct TracesResult {
    result: TracesData,
}

#[derive(Serialize)]
pub(crate) struct ServicesResult {
    services: Vec<String>,
}

#[derive(Serialize)]
pub(crate) struct OperationsResult {
    operations: Vec<Operation>,
}

#[derive(Serialize)]
pub(crate) struct Operation {
    name: String,
    #[serde(rename = "spanKind")]
    span_kind: &'static str,
}

/// OTLP resource spans of one trace, spans ordered by start time then ID.
pub(crate) fn trace_resource_spans(spans: &[Span]) -> Vec<ResourceSpans> {
    let mut ordered: Vec<&Span> = spans.iter().collect();
    ordered.sort_by_key(|s| (s.start, s.span_id));
    spans_to_otlp(ordered)
}

fn traces_result(resource_spans: Vec<ResourceSpans>) -> Json<TracesResult> {
    Json(TracesResult {
        result: TracesData { resource_spans },
    })
}

/// `GET /api/v3/traces/{trace_id}`: one trace as OTLP JSON, or 404.
pub(crate) async fn get_trace(
    State(state): State<QueryState>,
    path: Result<Path<String>, PathRejection>,
    query: QueryPairs,
) -> Result<Json<TracesResult>, V3Error> {
    let raw_id = path_segment("trace_id", path)?;
    let id = params::trace_id("trace_id", &raw_id)?;
    params::v3_trace_by_id_hints(&query_pairs(query)?)?;
    match state.store.trace(id).await? {
        Some(t) if !t.spans.is_empty() => Ok(traces_result(trace_resource_spans(&t.spans))),
        _ => Err(QueryError::TraceNotFound(id).into()),
    }
}

/// `GET /api/v3/traces?query.*=...`: matching traces, most recent first, their resource spans
/// concatenated into one `TracesData` as Jaeger does. No match is an empty list, not an error.
pub(crate) async fn find_traces(
    State(state): State<QueryState>,
    query: QueryPairs,
) -> Result<Json<TracesResult>, V3Error> {
    let span_query = params::v3_trace_search(&query_pairs(query)?)?;
    let ids = state.store.search(&span_query).await?;
    let mut found: HashMap<TraceId, TraceData> =
        state.store.traces(&ids).await?.into_iter().collect();
    let resource_spans = ids
        .iter()
        .filter_map(|id| found.remove(id))
        .flat_map(|t| trace_resource_spans(&t.spans))
        .collect();
    Ok(traces_result(resource_spans))
}

/// `GET /api/v3/services`.
pub(crate) async fn services(
    State(state): State<QueryState>,
) -> Result<Json<ServicesResult>, V3Error> {
    Ok(Json(ServicesResult {
        services: state.store.services().await?,
    }))
}

/// `GET /api/v3/operations[?service=S][&span_kind=K]`: without a service, every service's.
pub(crate) async fn operations(
    State(state): State<QueryState>,
    query: QueryPairs,
) -> Result<Json<OperationsResult>, V3Error> {
    let pairs = query_pairs(query)?;
    let kind = params::operations_kind(&pairs, &["spanKind", "span_kind"])?;
    let service = params::first(&pairs, "service");
    let operations = state
        .store
        .operations(service)
        .await?
        .into_iter()
        .filter(|(_, k)| kind.is_none_or(|want| want == *k))
        .map(|(name, k)| Operation {
            name,
            // Jaeger's gateway reports operations without a kind as internal.
            span_kind: match k {
                SpanKind::Unspecified => SpanKind::Internal.as_jaeger_str(),
                other => other.as_jaeger_str(),
            },
        })
        .collect();
    Ok(Json(OperationsResult { operations }))
}
