//! The shop's services and what they share: per-service telemetry, the traced router stack,
//! outgoing HTTP clients, and a listener that really closes while the service is "down".

pub(crate) mod gateway;
pub(crate) mod inventory;
pub(crate) mod notification;
pub(crate) mod order;
pub(crate) mod payment;
pub(crate) mod provider;
pub(crate) mod user;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use faultline_instrument::client::TracingMiddleware;
use faultline_instrument::processor::BatchSettings;
use faultline_instrument::propagation::Propagation;
use faultline_instrument::sampling::SamplerConfig;
use faultline_instrument::{Protocol, Telemetry};
use http::Extensions;
use opentelemetry::KeyValue;
use reqwest_middleware::{ClientWithMiddleware, Middleware, Next};
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::fault::{inject_http_faults, CpuCore, FaultRegistry, RequestFaults};
use crate::DemoError;

/// What every service has: its name, its own tracer provider, its faults and its "core".
#[derive(Clone, Debug)]
pub(crate) struct ServiceBase {
    pub(crate) name: &'static str,
    pub(crate) telemetry: Arc<Telemetry>,
    pub(crate) faults: FaultRegistry,
    pub(crate) cpu: CpuCore,
    pub(crate) shutdown: watch::Receiver<bool>,
}

/// The W3C baggage entry naming the customer request a log line belongs to; the gateway sets it
/// from `X-Request-Id` and every service's logs carry it.
pub const REQUEST_ID: &str = "request_id";

/// Sets up a tracer provider whose resource says `service.name = name`, exporting over
/// OTLP/HTTP to `endpoint`, with the service's logs too when `otlp_logs` is set.
pub(crate) fn telemetry(
    name: &'static str,
    endpoint: &str,
    otlp_logs: bool,
) -> Result<Arc<Telemetry>, DemoError> {
    Telemetry::builder(name)
        .service_version(env!("CARGO_PKG_VERSION"))
        .resource_attribute(KeyValue::new("deployment.environment.name", "demo"))
        .protocol(Protocol::HttpProtobuf)
        .endpoint(endpoint)
        .sampler(SamplerConfig::AlwaysOn)
        .propagation(Propagation::default())
        .batch(BatchSettings {
            max_queue_size: 16_384,
            max_export_batch_size: 1_024,
            // Short, so a trace is searchable about a second after the request.
            scheduled_delay: Duration::from_millis(500),
        })
        .otlp_logs(otlp_logs)
        .log_baggage([REQUEST_ID])
        .install_global(false)
        .install()
        .map(Arc::new)
        .map_err(|source| DemoError::Telemetry {
            service: name,
            source,
        })
}

impl ServiceBase {
    /// `future` with this service's logs routed to its own logger provider, for work that
    /// runs outside any request (a queue consumer, a fault that holds resources).
    pub(crate) fn in_background<F: std::future::Future>(
        &self,
        future: F,
    ) -> opentelemetry::trace::WithContext<F> {
        use opentelemetry::trace::FutureExt as _;
        future.with_context(self.telemetry.log_context(opentelemetry::Context::new()))
    }

    /// `router` with injected faults inside and the server tracing layer outside.
    pub(crate) fn traced(&self, router: Router) -> Router {
        let faults = RequestFaults {
            registry: self.faults.clone(),
            cpu: self.cpu.clone(),
        };
        router
            .layer(axum::middleware::from_fn_with_state(
                faults,
                inject_http_faults,
            ))
            .layer(self.telemetry.server_layer())
    }

    /// `router` (gRPC methods) with injected faults inside and the gRPC tracing layer outside.
    pub(crate) fn traced_grpc(&self, router: Router) -> Router {
        let faults = RequestFaults {
            registry: self.faults.clone(),
            cpu: self.cpu.clone(),
        };
        router
            .layer(axum::middleware::from_fn_with_state(
                faults,
                inject_http_faults,
            ))
            .layer(self.telemetry.grpc_server_layer())
    }

    /// A traced HTTP client for calls to `peer`, with `peer`'s dependency faults applied
    /// inside the CLIENT span.
    pub(crate) fn http_client(
        &self,
        peer: &'static str,
        timeout: Duration,
    ) -> Result<ClientWithMiddleware, DemoError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_millis(500))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| DemoError::Config(format!("HTTP client for {peer}: {e}")))?;
        let tracing = TracingMiddleware::peer_service(
            self.telemetry.tracer().clone(),
            self.telemetry.propagation().clone(),
            peer,
        );
        Ok(reqwest_middleware::ClientBuilder::new(client)
            .with(tracing)
            .with(DependencyFaults {
                registry: self.faults.clone(),
                dependency: peer,
            })
            .build())
    }
}

/// Applies latency and error faults targeted at one dependency to outgoing HTTP calls.
struct DependencyFaults {
    registry: FaultRegistry,
    dependency: &'static str,
}

/// An outgoing call failed because a fault said so.
#[derive(Debug, thiserror::Error)]
#[error("call to {0} failed (injected fault)")]
pub(crate) struct InjectedCallFailure(pub(crate) &'static str);

#[async_trait::async_trait]
impl Middleware for DependencyFaults {
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        if let Some(latency) = self.registry.dependency_latency(self.dependency) {
            tokio::time::sleep(latency).await;
        }
        if self.registry.dependency_fails(self.dependency) {
            return Err(reqwest_middleware::Error::middleware(InjectedCallFailure(
                self.dependency,
            )));
        }
        next.run(request, extensions).await
    }
}

/// Binds a listener with an error that names what it is for.
pub(crate) async fn bind(what: String, addr: SocketAddr) -> Result<TcpListener, DemoError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| DemoError::Bind { what, addr, source })
}

/// Serves `router` on `listener` until shutdown; while the service has a `down` fault the
/// listener is closed (callers get "connection refused") and re-opened on the same port after.
pub(crate) fn serve_supervised(
    listener: TcpListener,
    router: Router,
    faults: FaultRegistry,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let Ok(addr) = listener.local_addr() else {
            return;
        };
        let mut listener = Some(listener);
        loop {
            if *shutdown.borrow() {
                return;
            }
            let current = match listener.take() {
                Some(l) => l,
                None => {
                    wait_until(&faults, &shutdown, |f| !f.is_down()).await;
                    if *shutdown.borrow() {
                        return;
                    }
                    match TcpListener::bind(addr).await {
                        Ok(l) => {
                            tracing::info!(service = faults.service(), %addr, "listener reopened");
                            l
                        }
                        Err(err) => {
                            tracing::warn!(%addr, error = %err, "cannot reopen listener; retrying");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue;
                        }
                    }
                }
            };
            let stop_faults = faults.clone();
            let stop_shutdown = shutdown.clone();
            let stop = async move {
                wait_until(&stop_faults, &stop_shutdown, |f| f.is_down()).await;
            };
            let served = axum::serve(
                current,
                router
                    .clone()
                    .into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(stop)
            .await;
            if let Err(err) = served {
                tracing::error!(service = faults.service(), error = %err, "listener failed");
            }
            if faults.is_down() && !*shutdown.borrow() {
                tracing::warn!(service = faults.service(), %addr, "listener closed (injected fault: down)");
            }
        }
    })
}

/// Serves an admin or uninstrumented router until shutdown.
pub(crate) fn serve_plain(
    listener: TcpListener,
    router: Router,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut shutdown = shutdown;
        let stop = async move {
            let _ = shutdown.wait_for(|s| *s).await;
        };
        if let Err(err) = axum::serve(listener, router)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(error = %err, "listener failed");
        }
    })
}

/// Returns once `condition` holds or shutdown was asked for.
pub(crate) async fn wait_until(
    faults: &FaultRegistry,
    shutdown: &watch::Receiver<bool>,
    condition: impl Fn(&FaultRegistry) -> bool,
) {
    let mut changes = faults.changes();
    let mut shutdown = shutdown.clone();
    loop {
        if condition(faults) || *shutdown.borrow() {
            return;
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            changed = shutdown.changed() => if changed.is_err() { return },
            // Faults with a duration also end without a change notification racing us.
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

/// A request refused before any work: status and reason, answered as `{"error": ...}`.
#[derive(Debug)]
pub(crate) struct Rejection(pub(crate) StatusCode, pub(crate) String);

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        error_response(self.0, self.1)
    }
}

/// Parses a JSON request body, refusing it with 400 and the reason when it is not acceptable.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &Bytes) -> Result<T, Rejection> {
    serde_json::from_slice(body).map_err(|e| {
        Rejection(
            StatusCode::BAD_REQUEST,
            format!("invalid request body: {e}"),
        )
    })
}

/// `{"error": message}` with `status`.
pub(crate) fn error_response(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}
