//! The server-side tower layer: one SERVER span per request, context extracted from any
//! supported propagation format, stable HTTP semantic-convention attributes, panics turned
//! into recorded 500s, and the trace id handed back in response headers.

mod future;
mod service;
mod strings;

use std::sync::Arc;

use http::HeaderName;
use opentelemetry_sdk::trace::SdkTracer;
use tower::Layer;

pub use future::ResponseFuture;
pub use service::TracedService;

use crate::logs::LogRoute;
use crate::propagation::Propagation;
use crate::sampling::ConfiguredSampler;

#[derive(Clone, Debug)]
pub(crate) struct ServerConfig {
    pub(crate) tracer: SdkTracer,
    pub(crate) propagation: Propagation,
    pub(crate) trace_id_header: Option<HeaderName>,
    pub(crate) traceresponse: bool,
    pub(crate) logs: Option<LogRoute>,
    pub(crate) sampler_reads_name: bool,
    /// The provider's own sampler, when this crate built the provider: requests are then
    /// decided before any SDK span is made.
    pub(crate) sampler: Option<ConfiguredSampler>,
}

/// Traces every request through the wrapped service.
///
/// Add it with axum's `Router::layer` so the route template (`MatchedPath`) is known and spans
/// are named `GET /orders/{id}`. axum then wraps every route in it, which costs each request
/// about 880 instructions whatever the layer does. Applied around the finished router instead
/// (`Layer::layer(&layer, router)`), it is spared that, but it sees each request before the
/// router has matched it: spans are named by the method alone and have no `http.route`, as
/// axum shows `MatchedPath` only to services inside the router.
///
/// ```
/// use axum::{routing::get, Router};
/// use faultline_instrument::{server::ServerLayer, propagation::Propagation, Telemetry};
/// use opentelemetry_sdk::trace::InMemorySpanExporter;
///
/// let telemetry = Telemetry::builder("order-service")
///     .install_global(false)
///     .install_with_exporter(InMemorySpanExporter::default())?;
/// let app: Router = Router::new()
///     .route("/orders/{id}", get(|| async { "order" }))
///     .layer(telemetry.server_layer());
/// # Ok::<(), faultline_instrument::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ServerLayer {
    config: Arc<ServerConfig>,
}

impl ServerLayer {
    /// A layer recording with `tracer` and reading context with `propagation`.
    pub fn new(tracer: SdkTracer, propagation: Propagation) -> Self {
        ServerLayer {
            config: Arc::new(ServerConfig {
                tracer,
                propagation,
                trace_id_header: Some(HeaderName::from_static("x-trace-id")),
                traceresponse: true,
                logs: None,
                sampler_reads_name: false,
                sampler: None,
            }),
        }
    }

    /// The response header carrying the bare trace id for support tickets (default
    /// `X-Trace-Id`); `None` turns it off.
    pub fn trace_id_header(mut self, header: Option<HeaderName>) -> Self {
        self.config_mut().trace_id_header = header;
        self
    }

    /// Whether to add the W3C `traceresponse` header (default yes).
    pub fn traceresponse(mut self, enabled: bool) -> Self {
        self.config_mut().traceresponse = enabled;
        self
    }

    /// Whether the tracer's sampler decides by span name (a Jaeger remote sampler with
    /// per-operation strategies does), so the full `GET /route` name must exist before the
    /// decision. Off by default: the span then starts as `GET` and is renamed only when it
    /// records, which saves an allocation per unsampled request.
    /// [`Telemetry::server_layer`](crate::Telemetry::server_layer) sets it from the sampler.
    pub fn sampler_reads_name(mut self, reads_name: bool) -> Self {
        self.config_mut().sampler_reads_name = reads_name;
        self
    }

    /// Exports events raised while a request is handled as logs of `route`'s service;
    /// [`Telemetry::server_layer`](crate::Telemetry::server_layer) sets it.
    pub fn log_route(mut self, route: Option<LogRoute>) -> Self {
        self.config_mut().logs = route;
        self
    }

    /// Decides requests with `sampler` before starting any span; only for a tracer whose
    /// provider has this same sampler and the [`HandoffIdGenerator`](crate::sampling::HandoffIdGenerator).
    pub(crate) fn decide_with(mut self, sampler: ConfiguredSampler) -> Self {
        self.config_mut().sampler = Some(sampler);
        self
    }

    fn config_mut(&mut self) -> &mut ServerConfig {
        // Layers are configured before they are cloned into services, so this rarely copies.
        Arc::make_mut(&mut self.config)
    }
}

impl<S> Layer<S> for ServerLayer {
    type Service = TracedService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TracedService::new(inner, Arc::clone(&self.config))
    }
}
