//! Grafana Tempo's HTTP API (what Grafana's Tempo data source calls), over the same store.
//!
//! Trace by ID answers OTLP (protobuf `tempopb.TraceByIDResponse`/`Trace` when the client
//! asks for `application/protobuf`, as Grafana does; OTLP JSON otherwise); search evaluates
//! TraceQL ([`crate::traceql`]) over candidate traces found by [`search`]; tag names and values
//! feed the TraceQL editor's autocomplete ([`tags`]). Errors are plain text, which Grafana shows
//! as they are (a TraceQL error under the query box).

mod model;
pub(crate) mod params;
pub(crate) mod search;
mod tags;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use faultline_model::otlp::TracesData;
use faultline_model::Span;
use prost::Message;
use serde::Serialize;

use self::model::{BuildInfo, TagNames, TagScope, TagScopes, TagValuesV1, TagValuesV2};
use crate::api_v3::trace_resource_spans;
use crate::error::TempoError;
use crate::traceql::ast::{Field, Intrinsic, Scope};
use crate::traceql::{self};
use crate::{path_segment, query_pairs, QueryError, QueryPairs, QueryState};

type TempoAnswer<T> = Result<T, TempoError>;

/// `GET /api/echo`: Grafana's "Save & test".
pub(crate) async fn echo() -> &'static str {
    "echo"
}

/// `GET /api/status/buildinfo`.
pub(crate) async fn buildinfo() -> Json<BuildInfo> {
    Json(BuildInfo {
        version: env!("CARGO_PKG_VERSION"),
        revision: "",
        branch: "",
        build_date: "",
        build_user: "faultline",
        go_version: "",
    })
}

/// Whether the client asked for protobuf (`Accept: application/protobuf`, Grafana's choice).
pub(crate) fn wants_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.split(';').next().unwrap_or("").trim();
            t.eq_ignore_ascii_case("application/protobuf")
                || t.eq_ignore_ascii_case("application/x-protobuf")
        })
}

/// Tempo's `TraceByIDResponse` (`trace` = 1, `status` = 3, `message` = 4) around `trace`. Its
/// `tempopb.Trace` is wire-identical to OTLP `TracesData` (field 1, repeated `ResourceSpans`).
/// Written by hand so the trace is sized once, not once more for the wrapper.
fn trace_by_id_response(trace: &TracesData, partial: bool, message: &str) -> Vec<u8> {
    use prost::encoding::{encode_key, encode_varint, WireType};
    let trace_len = trace.encoded_len();
    let mut buf = Vec::with_capacity(trace_len + message.len() + 24);
    encode_key(1, WireType::LengthDelimited, &mut buf);
    encode_varint(trace_len as u64, &mut buf);
    trace.encode_raw(&mut buf);
    if partial {
        // `PartialStatus.PARTIAL`; `COMPLETE` is the default and, as in proto3, not written.
        encode_key(3, WireType::Varint, &mut buf);
        encode_varint(1, &mut buf);
    }
    if !message.is_empty() {
        prost::encoding::string::encode(4, &message.to_owned(), &mut buf);
    }
    buf
}

/// The v2 JSON answer.
#[derive(Serialize)]
struct TraceByIdJson {
    trace: TracesData,
    status: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    message: String,
}

fn protobuf(bytes: Vec<u8>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/protobuf"),
        )],
        bytes,
    )
        .into_response()
}

/// Tempo's v1 `/api/traces/{id}` protobuf answer (`tempopb.Trace`), for the Jaeger handler of
/// the same path to return when the client asks for protobuf.
pub(crate) fn trace_v1_protobuf(spans: &[Span]) -> Response {
    protobuf(
        TracesData {
            resource_spans: trace_resource_spans(spans),
        }
        .encode_to_vec(),
    )
}

/// `GET /api/v2/traces/{id}`: `TraceByIDResponse` as protobuf or JSON.
pub(crate) async fn trace_v2(
    State(state): State<QueryState>,
    path: Result<Path<String>, PathRejection>,
    query: QueryPairs,
    headers: HeaderMap,
) -> TempoAnswer<Response> {
    let raw_id = path_segment("traceID", path)?;
    let id = crate::params::trace_id("traceID", &raw_id)?;
    params::window(&query_pairs(query)?, state.now())?;
    let data = match state.store.trace(id).await.map_err(QueryError::from)? {
        Some(t) if !t.spans.is_empty() => t,
        _ => return Err(QueryError::TraceNotFound(id).into()),
    };
    let trace = TracesData {
        resource_spans: trace_resource_spans(&data.spans),
    };
    let partial = !data.warnings.is_empty();
    let message = data.warnings.join("; ");
    if wants_protobuf(&headers) {
        return Ok(protobuf(trace_by_id_response(&trace, partial, &message)));
    }
    Ok(Json(TraceByIdJson {
        trace,
        status: if partial { "PARTIAL" } else { "COMPLETE" },
        message,
    })
    .into_response())
}

/// `GET /api/search`: TraceQL (`q`) or tag (`tags`) search.
pub(crate) async fn search(
    State(state): State<QueryState>,
    query: QueryPairs,
) -> TempoAnswer<Json<model::SearchResponse>> {
    let req = params::search(&query_pairs(query)?, state.now())?;
    let answer = search::search(&state.store, &req, state.search_budget)
        .await
        .map_err(QueryError::from)?;
    Ok(Json(answer))
}

/// The scope of a tag names request.
#[derive(Clone, Copy, PartialEq)]
enum TagScopeParam {
    All,
    Span,
    Resource,
    Intrinsic,
}

fn tag_scope(pairs: &[(String, String)]) -> Result<TagScopeParam, QueryError> {
    match crate::params::first(pairs, "scope") {
        None | Some("all") => Ok(TagScopeParam::All),
        Some("span") => Ok(TagScopeParam::Span),
        Some("resource") => Ok(TagScopeParam::Resource),
        Some("intrinsic") => Ok(TagScopeParam::Intrinsic),
        Some(other) => Err(QueryError::bad_param(
            "scope",
            format!("{other:?} is not a supported scope; expected span, resource, intrinsic or all (Faultline does not index event, link or instrumentation attributes)"),
        )),
    }
}

/// `GET /api/search/tags[?scope=]`: `{"tagNames": [...]}`.
pub(crate) async fn search_tags(
    State(state): State<QueryState>,
    query: QueryPairs,
) -> TempoAnswer<Json<TagNames>> {
    let pairs = query_pairs(query)?;
    let scope = tag_scope(&pairs)?;
    let limit = params::tag_limit(&pairs)?;
    let window = params::window(&pairs, state.now())?;
    let names = tags::tag_names(&state.store, window, limit)
        .await
        .map_err(QueryError::from)?;
    let mut all = std::collections::BTreeSet::new();
    if matches!(scope, TagScopeParam::All | TagScopeParam::Span) {
        all.extend(names.span);
    }
    if matches!(scope, TagScopeParam::All | TagScopeParam::Resource) {
        all.extend(names.resource);
    }
    if scope == TagScopeParam::Intrinsic {
        all.extend(Intrinsic::ALL_NAMES.iter().map(|s| (*s).to_owned()));
    }
    Ok(Json(TagNames {
        tag_names: all.into_iter().take(limit).collect(),
    }))
}

/// `GET /api/v2/search/tags[?scope=]`: `{"scopes": [{"name", "tags"}]}`.
pub(crate) async fn search_tags_v2(
    State(state): State<QueryState>,
    query: QueryPairs,
) -> TempoAnswer<Json<TagScopes>> {
    let pairs = query_pairs(query)?;
    let scope = tag_scope(&pairs)?;
    let limit = params::tag_limit(&pairs)?;
    let window = params::window(&pairs, state.now())?;
    let mut scopes = Vec::new();
    if scope != TagScopeParam::Intrinsic {
        let names = tags::tag_names(&state.store, window, limit)
            .await
            .map_err(QueryError::from)?;
        if matches!(scope, TagScopeParam::All | TagScopeParam::Resource) {
            scopes.push(TagScope {
                name: "resource",
                tags: names.resource.into_iter().collect(),
            });
        }
        if matches!(scope, TagScopeParam::All | TagScopeParam::Span) {
            scopes.push(TagScope {
                name: "span",
                tags: names.span.into_iter().collect(),
            });
        }
    }
    if matches!(scope, TagScopeParam::All | TagScopeParam::Intrinsic) {
        scopes.push(TagScope {
            name: "intrinsic",
            tags: Intrinsic::ALL_NAMES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        });
    }
    Ok(Json(TagScopes { scopes }))
}

/// The optional `q` filter of the tag values endpoints. As in Tempo, a query that does not
/// parse (Grafana sends the half-typed query being edited) is ignored rather than refused.
fn values_filter(pairs: &[(String, String)]) -> Option<traceql::ast::Query> {
    crate::params::first(pairs, "q").and_then(|q| traceql::parse(q).ok())
}

/// `GET /api/search/tag/{tag}/values`: `{"tagValues": ["a", ...]}` for a plain attribute name.
pub(crate) async fn tag_values_v1(
    State(state): State<QueryState>,
    path: Result<Path<String>, PathRejection>,
    query: QueryPairs,
) -> TempoAnswer<Json<TagValuesV1>> {
    let tag = path_segment("tag", path)?;
    let pairs = query_pairs(query)?;
    let field = match Intrinsic::from_word(&tag) {
        Some(i) => Field::Intrinsic(i),
        None => Field::Attribute {
            scope: Scope::Unscoped,
            name: tag,
        },
    };
    let values = tags::tag_values(
        &state.store,
        &field,
        params::window(&pairs, state.now())?,
        values_filter(&pairs).as_ref(),
        params::tag_limit(&pairs)?,
    )
    .await
    .map_err(QueryError::from)?;
    Ok(Json(TagValuesV1 {
        tag_values: values.into_iter().map(|v| v.value).collect(),
    }))
}

/// `GET /api/v2/search/tag/{tag}/values`: typed values of a TraceQL field
/// (`resource.service.name`, `span.http.method`, `.x`, `name`, `status`, ...).
pub(crate) async fn tag_values_v2(
    State(state): State<QueryState>,
    path: Result<Path<String>, PathRejection>,
    query: QueryPairs,
) -> TempoAnswer<Json<TagValuesV2>> {
    let tag = path_segment("tag", path)?;
    let pairs = query_pairs(query)?;
    let field =
        traceql::parse_field(&tag).map_err(|e| QueryError::bad_param("tag", e.to_string()))?;
    let values = tags::tag_values(
        &state.store,
        &field,
        params::window(&pairs, state.now())?,
        values_filter(&pairs).as_ref(),
        params::tag_limit(&pairs)?,
    )
    .await
    .map_err(QueryError::from)?;
    Ok(Json(TagValuesV2 { tag_values: values }))
}
