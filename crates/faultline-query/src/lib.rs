//! The query API of Faultline: the Jaeger HTTP JSON API (`/api/...`, used by Jaeger UI and
//! Grafana's Jaeger data source), Jaeger's api_v3 HTTP API (`/api/v3/...`, OTLP JSON) and
//! Grafana Tempo's HTTP API with TraceQL search (`/api/search`, `/api/v2/traces/...`, used by
//! Grafana's Tempo data source), as one axum [`Router`](axum::Router) over a
//! [`faultline_storage::Store`].
//!
//! Parameters are parsed in [`params`], model spans become Jaeger JSON in [`jaeger_json`] (and
//! are streamed as such by [`jaeger_stream`]), TraceQL is parsed and evaluated in [`traceql`], and
//! every error reaches the wire through [`QueryError`]'s single mapping in `error.rs`. This crate
//! only reads: it must not write to the store, hold state of its own between requests, or panic
//! on any request, however malformed. Listening, TLS and middleware belong to the server crate.
#![deny(missing_docs)]

mod api_v3;
mod error;
mod jaeger;
pub mod jaeger_json;
pub mod jaeger_stream;
pub mod logs;
pub mod params;
mod tempo;
#[cfg(test)]
mod tests;
pub mod traceql;

use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::routing::get;
use axum::Router;
use faultline_model::UnixNanos;
use faultline_storage::Store;

pub use error::{QueryError, TempoError, V3Error};

/// What every handler shares: the store, and the clock that supplies default time windows.
#[derive(Clone)]
pub struct QueryState {
    store: Arc<Store>,
    clock: fn() -> UnixNanos,
    search_budget: tempo::search::Budget,
}

impl QueryState {
    /// State over `store`, reading the wall clock for "now".
    pub fn new(store: Arc<Store>) -> Self {
        Self {
            store,
            clock: UnixNanos::now,
            search_budget: tempo::search::Budget::default(),
        }
    }

    /// Replaces the clock, so that default windows ("the last two days") are reproducible.
    pub fn with_clock(mut self, clock: fn() -> UnixNanos) -> Self {
        self.clock = clock;
        self
    }

    /// Replaces the search budget, so tests can exhaust it with a few traces.
    #[cfg(test)]
    fn with_search_budget(mut self, budget: tempo::search::Budget) -> Self {
        self.search_budget = budget;
        self
    }

    fn now(&self) -> UnixNanos {
        (self.clock)()
    }
}

/// The query API routes (Jaeger HTTP JSON and api_v3), ready to be merged into the server's
/// router. No fallback is set, so merging never conflicts.
///
/// ```no_run
/// # async fn serve(store: std::sync::Arc<faultline_storage::Store>) -> std::io::Result<()> {
/// let app = faultline_query::router(faultline_query::QueryState::new(store));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:16686").await?;
/// axum::serve(listener, app).await
/// # }
/// ```
pub fn router(state: QueryState) -> Router {
    Router::new()
        .route("/api/services", get(jaeger::services))
        .route(
            "/api/services/{service}/operations",
            get(jaeger::service_operations),
        )
        .route("/api/operations", get(jaeger::operations))
        .route("/api/traces", get(jaeger::search))
        .route("/api/traces/{trace_id}", get(jaeger::trace_by_id))
        .route("/api/dependencies", get(jaeger::dependencies))
        .route("/api/logs", get(logs::logs))
        .route("/api/v3/traces", get(api_v3::find_traces))
        .route("/api/v3/traces/{trace_id}", get(api_v3::get_trace))
        .route("/api/v3/services", get(api_v3::services))
        .route("/api/v3/operations", get(api_v3::operations))
        // Tempo (Grafana's Tempo data source); `/api/traces/{id}` above doubles as Tempo's v1
        // trace by ID when the client asks for protobuf.
        .route("/api/echo", get(tempo::echo))
        .route("/api/status/buildinfo", get(tempo::buildinfo))
        .route("/api/v2/traces/{trace_id}", get(tempo::trace_v2))
        .route("/api/search", get(tempo::search))
        .route("/api/search/tags", get(tempo::search_tags))
        .route("/api/v2/search/tags", get(tempo::search_tags_v2))
        .route("/api/search/tag/{tag}/values", get(tempo::tag_values_v1))
        .route("/api/v2/search/tag/{tag}/values", get(tempo::tag_values_v2))
        .with_state(state)
}

/// The decoded query string, as the extractor hands it over.
type QueryPairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// The query string's pairs, or a 400 naming the query string.
fn query_pairs(query: QueryPairs) -> Result<Vec<(String, String)>, QueryError> {
    query
        .map(|Query(pairs)| pairs)
        .map_err(|e| QueryError::bad_param("query string", e.body_text()))
}

/// One path segment, or a 400 naming it (e.g. for invalid percent-encoding).
fn path_segment(
    name: &str,
    path: Result<Path<String>, PathRejection>,
) -> Result<String, QueryError> {
    path.map(|Path(s)| s)
        .map_err(|e| QueryError::bad_param(name, e.body_text()))
}
