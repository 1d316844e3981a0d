//! Faultline's server: turns a [`ServeConfig`] into running listeners.
//!
//! It opens the store, binds the OTLP/gRPC, OTLP/HTTP and query listeners, logs one line per
//! listener, and shuts everything down in order (listeners first, then the store flush). The
//! protocol logic lives in `faultline-ingest` and `faultline-query`; this crate only wires.

#![deny(missing_docs)]

mod config;
mod metrics;
mod storage_url;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use faultline_storage::{AckMode, Store, StoreConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use config::{AckSetting, ServeConfig, ServeOptions};
pub use storage_url::StorageUrl;

/// Errors that stop the server from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A setting is missing or invalid; the message says which and what to write instead.
    #[error("configuration error: {0}")]
    Config(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr} for {what}: {source}; is another process using the port? Pick another with --{flag}")]
    Bind {
        /// What the listener is for.
        what: &'static str,
        /// The flag that sets its address.
        flag: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The store failed to open or flush.
    #[error(transparent)]
    Storage(#[from] faultline_storage::StorageError),
    /// A listener failed while serving.
    #[error("{what} listener failed: {detail}")]
    Serve {
        /// Which listener.
        what: &'static str,
        /// The error.
        detail: String,
    },
}

/// A running server; drop-safe, but call [`RunningServer::shutdown`] to flush cleanly.
pub struct RunningServer {
    /// Bound OTLP/gRPC address (useful when the configured port was 0).
    pub otlp_grpc_addr: SocketAddr,
    /// Bound OTLP/HTTP address.
    pub otlp_http_addr: SocketAddr,
    /// Bound query/UI address.
    pub http_addr: SocketAddr,
    store: Arc<Store>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<(&'static str, Result<(), String>)>,
}

impl RunningServer {
    /// The store behind the server.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Stops accepting requests, waits for in-flight ones, then flushes the store.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        let _ = self.stop.send(true);
        let mut first_err = None;
        while let Some(joined) = self.tasks.join_next().await {
            let (what, res) = joined.unwrap_or_else(|e| ("listener", Err(e.to_string())));
            if let Err(detail) = res {
                first_err.get_or_insert(ServerError::Serve { what, detail });
            }
        }
        self.store.shutdown().await?;
        first_err.map_or(Ok(()), Err)
    }

    /// Runs until `signal` completes or a listener fails, then shuts down.
    pub async fn run_until(mut self, signal: impl Future<Output = ()>) -> Result<(), ServerError> {
        let failure = tokio::select! {
            _ = signal => {
                tracing::info!("shutting down");
                None
            }
            // A listener ending before shutdown was asked for has failed.
            Some(joined) = self.tasks.join_next() => {
                let (what, res) = joined.unwrap_or_else(|e| ("listener", Err(e.to_string())));
                let detail = res.err().unwrap_or_else(|| "stopped without an error".into());
                tracing::error!(listener = what, %detail, "listener stopped unexpectedly; shutting down");
                Some(ServerError::Serve { what, detail })
            }
        };
        let res = self.shutdown().await;
        match failure {
            Some(e) => Err(e),
            None => res,
        }
    }
}

/// Feeds every stored batch to the live analysis (service graph, RED metrics).
struct AnalysisTap(Arc<faultline_analysis::Analyzer>);

impl faultline_ingest::SpanTap for AnalysisTap {
    fn prepare(&self, spans: &[faultline_model::Span]) -> Box<dyn FnOnce() + Send> {
        let prepared = self.0.prepare(spans);
        let analyzer = Arc::clone(&self.0);
        Box::new(move || analyzer.commit(prepared))
    }
}

/// The largest HTTP/2 DATA frame the OTLP/gRPC listener lets clients send, advertised as
/// `SETTINGS_MAX_FRAME_SIZE`. The protocol default (16 KiB) cuts a typical 250 KB export into
/// sixteen frames, each read from the socket in 8 KiB pieces, woken and copied into one buffer
/// again; a frame as large as the stream window lets a client that honours the setting (tonic,
/// hyper, grpc-java) send the request as one frame that arrives in a few large reads and is
/// handed to the pipeline without a copy. Memory stays bounded: no frame can exceed the flow
/// control window, so a connection never holds more than [`GRPC_WINDOW_BYTES`] of unread data.
const GRPC_MAX_FRAME_BYTES: u32 = GRPC_WINDOW_BYTES;

/// The HTTP/2 flow-control window of each OTLP/gRPC stream and connection (hyper's default,
/// stated here because [`GRPC_MAX_FRAME_BYTES`] depends on it).
const GRPC_WINDOW_BYTES: u32 = 1024 * 1024;

async fn bind(
    addr: SocketAddr,
    what: &'static str,
    flag: &'static str,
) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind {
            what,
            flag,
            addr,
            source,
        })
}

/// Opens the store and starts every listener.
pub async fn start(config: ServeConfig) -> Result<RunningServer, ServerError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        ServerError::Config(format!(
            "cannot create data directory {}: {e}",
            config.data_dir.display()
        ))
    })?;
    let block_store = config.storage.open()?;
    let store = Store::open_with(
        StoreConfig {
            data_dir: config.data_dir.clone(),
            block_store,
            max_head_bytes: config.max_head_bytes,
            max_head_age: config.max_head_age,
            retention: config.retention,
            max_spans_per_trace: config.max_spans_per_trace,
            memory_budget_bytes: config.memory_budget_bytes,
            maintenance_interval: config.maintenance_interval,
        },
        faultline_storage::StoreTuning {
            compaction_small_block_spans: config.compaction_small_block_spans,
            dependency_carry_spans: config.dependency_carry_spans,
            ..Default::default()
        },
    )
    .await?;

    let ack = match config.ack {
        AckSetting::Durable => AckMode::Durable,
        AckSetting::Received => AckMode::Received,
    };
    let analyzer = Arc::new(
        faultline_analysis::Analyzer::new(faultline_analysis::AnalysisConfig {
            red_dimensions: config.red_dimensions.clone(),
            ..Default::default()
        })
        .map_err(|e| ServerError::Config(e.to_string()))?,
    );
    let tap: Arc<dyn faultline_ingest::SpanTap> = Arc::new(AnalysisTap(Arc::clone(&analyzer)));
    let ingest = faultline_ingest::IngestState::with_tap(
        Arc::clone(&store),
        faultline_ingest::IngestConfig {
            max_request_bytes: config.max_request_bytes,
            limits: faultline_model::otlp::SpanLimits {
                max_attribute_value_len: config.max_attribute_value_len,
                max_attributes_per_span: config.max_attributes_per_span,
                ..Default::default()
            },
            log_limits: faultline_model::otlp_logs::LogLimits {
                max_body_len: config.max_log_body_bytes,
                max_attribute_value_len: config.max_attribute_value_len,
                max_attributes_per_record: config.max_attributes_per_span,
                max_records_per_request: config.max_log_records_per_request,
                ..Default::default()
            },
            ack,
            ..Default::default()
        },
        Some(tap),
    )
    .map_err(|e| ServerError::Config(e.to_string()))?;

    let grpc_listener = bind(config.otlp_grpc, "OTLP/gRPC", "otlp-grpc").await?;
    let otlp_http_listener = bind(config.otlp_http, "OTLP/HTTP", "otlp-http").await?;
    let http_listener = bind(config.http, "query API", "http").await?;
    let local = |l: &TcpListener| {
        l.local_addr()
            .map_err(|e| ServerError::Config(e.to_string()))
    };
    let (otlp_grpc_addr, otlp_http_addr, http_addr) = (
        local(&grpc_listener)?,
        local(&otlp_http_listener)?,
        local(&http_listener)?,
    );

    let (stop, stop_rx) = watch::channel(false);
    let stopped = move |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let mut tasks = JoinSet::new();
    let grpc_svc = faultline_ingest::grpc_service(ingest.clone());
    let logs_grpc_svc = faultline_ingest::logs_grpc_service(ingest.clone());
    let rx = stop_rx.clone();
    tasks.spawn(async move {
        let what = "OTLP/gRPC";
        let res = tonic::transport::Server::builder()
            .initial_stream_window_size(GRPC_WINDOW_BYTES)
            .initial_connection_window_size(GRPC_WINDOW_BYTES)
            .max_frame_size(GRPC_MAX_FRAME_BYTES)
            .add_service(grpc_svc)
            .add_service(logs_grpc_svc)
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(grpc_listener),
                stopped(rx),
            )
            .await
            .map_err(|e| e.to_string());
        (what, res)
    });
    tracing::info!(addr = %otlp_grpc_addr, "OTLP/gRPC listening (TraceService/Export, LogsService/Export)");

    let otlp_router = faultline_ingest::http_router(ingest.clone());
    let rx = stop_rx.clone();
    tasks.spawn(async move {
        let what = "OTLP/HTTP";
        let res = axum::serve(otlp_http_listener, otlp_router)
            .with_graceful_shutdown(stopped(rx))
            .await
            .map_err(|e| e.to_string());
        (what, res)
    });
    tracing::info!(addr = %otlp_http_addr, "OTLP/HTTP listening (POST /v1/traces, POST /v1/logs)");

    let query_router =
        faultline_query::router(faultline_query::QueryState::new(Arc::clone(&store)))
            .route("/ready", get(|| async { "ready\n" }))
            .merge(faultline_analysis::router(
                Arc::clone(&analyzer),
                Arc::clone(&store),
                Arc::new(metrics::ServerMetrics {
                    store: Arc::clone(&store),
                    ingest: ingest.stats(),
                }),
            ))
            .fallback_service(faultline_ui::router());
    if let Some(problem) = faultline_ui::build_problem() {
        tracing::warn!(
            "the web UI is not built into this binary ({problem}); / shows how to build it"
        );
    }
    let rx = stop_rx.clone();
    tasks.spawn(async move {
        let what = "query API";
        let res = axum::serve(http_listener, query_router)
            .with_graceful_shutdown(stopped(rx))
            .await
            .map_err(|e| e.to_string());
        (what, res)
    });
    tracing::info!(addr = %http_addr, "query API and UI listening (UI /, Jaeger /api, /api/logs, /api/v3, /api/analysis, /metrics, /ready)");

    // Anomaly detection and root-cause ranking over the live analysis (/api/incidents).
    let detector = faultline_analysis::spawn_detector(Arc::clone(&analyzer), Arc::clone(&store));
    let rx = stop_rx.clone();
    tasks.spawn(async move {
        stopped(rx).await;
        detector.stop().await;
        ("anomaly detector", Ok(()))
    });

    Ok(RunningServer {
        otlp_grpc_addr,
        otlp_http_addr,
        http_addr,
        store,
        stop,
        tasks,
    })
}
