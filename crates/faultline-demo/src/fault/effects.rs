//! What faults do to incoming requests: added latency, failures and CPU burn, as an axum
//! middleware placed inside the service's tracing layer so the effects land in its spans.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use tokio::sync::Semaphore;

use super::FaultRegistry;

/// The single simulated CPU core of a service: CPU-saturation work queues for it.
///
/// All services share one process, so burning CPU on a Tokio worker would slow every service;
/// instead a saturated service's requests take turns on this "core" (burning real CPU on the
/// blocking pool), which slows that service alone, as a saturated container would be.
#[derive(Clone, Debug)]
pub struct CpuCore {
    core: Arc<Semaphore>,
}

impl Default for CpuCore {
    fn default() -> Self {
        CpuCore {
            core: Arc::new(Semaphore::new(1)),
        }
    }
}

impl CpuCore {
    /// Waits for the core, then keeps it busy for `work`.
    pub async fn burn(&self, work: Duration) {
        // The semaphore is never closed, so acquiring only fails if that changes; then the
        // work runs without queueing, which is still a CPU burn.
        let _permit = self.core.acquire().await;
        let _ = tokio::task::spawn_blocking(move || spin(work)).await;
    }
}

fn spin(work: Duration) {
    let start = Instant::now();
    let mut x: u64 = 1;
    while start.elapsed() < work {
        for _ in 0..1_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        }
        std::hint::black_box(x);
    }
}

/// The state of [`inject_http_faults`].
#[derive(Clone, Debug)]
pub struct RequestFaults {
    /// The service's faults.
    pub registry: FaultRegistry,
    /// Its simulated core.
    pub cpu: CpuCore,
}

/// Applies the service's route faults to one request: latency, then CPU burn, then failure.
pub async fn inject_http_faults(
    State(faults): State<RequestFaults>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let latency = faults.registry.route_latency(path);
    let burn = faults.registry.cpu_burn(path);
    let fails = faults.registry.route_fails(path);
    if let Some(latency) = latency {
        tokio::time::sleep(latency).await;
    }
    if let Some(burn) = burn {
        faults.cpu.burn(burn).await;
    }
    if fails {
        let grpc = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/grpc"));
        if grpc {
            // A trailers-only answer: the gRPC tracing layer reads the status from its headers.
            return tonic::Status::unavailable("injected fault: service unavailable")
                .into_http::<axum::body::Body>();
        }
        tracing::error!(path, "request failed (injected fault)");
        return (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response();
    }
    next.run(request).await
}
