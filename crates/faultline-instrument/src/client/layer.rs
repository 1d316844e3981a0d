//! The tower layer for hyper-style HTTP clients.

use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use http::{Request, Response};
use opentelemetry_sdk::trace::SdkTracer;
use tower::{BoxError, Layer, Service};

use super::future::ClientResponseFuture;
use super::ClientConfig;
use crate::propagation::Propagation;

/// Traces requests sent through a tower HTTP client service (e.g. `hyper_util`'s `Client`).
///
/// Errors are converted to [`BoxError`] so that timeouts from a `tower::timeout` layer below it
/// can be recognised.
///
/// ```
/// use faultline_instrument::client::ClientLayer;
/// use faultline_instrument::Telemetry;
/// use opentelemetry_sdk::trace::InMemorySpanExporter;
/// use tower::Layer;
///
/// let telemetry = Telemetry::builder("order-service")
///     .install_global(false)
///     .install_with_exporter(InMemorySpanExporter::default())?;
/// let layer: ClientLayer = telemetry.client_layer();
/// # let _ = layer;
/// # Ok::<(), faultline_instrument::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ClientLayer {
    config: Arc<ClientConfig>,
}

impl ClientLayer {
    /// A layer recording with `tracer` and writing context with `propagation`.
    pub fn new(tracer: SdkTracer, propagation: Propagation) -> Self {
        ClientLayer {
            config: ClientConfig::new(tracer, propagation),
        }
    }

    /// A fixed `peer.service` for every request through this layer (default: the target host).
    pub fn with_peer_service(self, peer: impl Into<String>) -> Self {
        ClientLayer {
            config: Arc::new(ClientConfig {
                tracer: self.config.tracer.clone(),
                propagation: self.config.propagation.clone(),
                peer_service: Some(peer.into()),
            }),
        }
    }
}

impl<S> Layer<S> for ClientLayer {
    type Service = ClientService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientService {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// Wraps a client service so each request gets a CLIENT span; built by [`ClientLayer`].
#[derive(Clone, Debug)]
pub struct ClientService<S> {
    inner: S,
    config: Arc<ClientConfig>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ClientService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<ResBody>;
    type Error = BoxError;
    type Future = ClientResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let (mut parts, body) = request.into_parts();
        let cx = self.config.start(
            &parts.method,
            &parts.uri,
            parts.version,
            &mut parts.headers,
            &parts.extensions,
        );
        let future = {
            let _attached = cx.clone().attach();
            self.inner.call(Request::from_parts(parts, body))
        };
        ClientResponseFuture::new(future, cx)
    }
}
