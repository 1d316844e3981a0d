//! The `reqwest-middleware` middleware.

use std::sync::Arc;

use http::Extensions;
use opentelemetry::trace::FutureExt as _;
use opentelemetry_sdk::trace::SdkTracer;
use reqwest_middleware::{Middleware, Next};

use super::{classify_error, finish_error, finish_response, ClientConfig};
use crate::propagation::Propagation;

/// Traces every request sent through a `reqwest_middleware::ClientWithMiddleware`.
///
/// ```
/// use faultline_instrument::Telemetry;
/// use opentelemetry_sdk::trace::InMemorySpanExporter;
///
/// let telemetry = Telemetry::builder("order-service")
///     .install_global(false)
///     .install_with_exporter(InMemorySpanExporter::default())?;
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(telemetry.reqwest_middleware())
///     .build();
/// # let _ = client;
/// # Ok::<(), faultline_instrument::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct TracingMiddleware {
    config: Arc<ClientConfig>,
}

impl TracingMiddleware {
    /// A middleware recording with `tracer` and writing context with `propagation`.
    pub fn new(tracer: SdkTracer, propagation: Propagation) -> Self {
        TracingMiddleware {
            config: ClientConfig::new(tracer, propagation),
        }
    }

    /// A fixed `peer.service` for every request of this client (default: the target host).
    pub fn peer_service(
        tracer: SdkTracer,
        propagation: Propagation,
        peer: impl Into<String>,
    ) -> Self {
        TracingMiddleware {
            config: Arc::new(ClientConfig {
                tracer,
                propagation,
                peer_service: Some(peer.into()),
            }),
        }
    }
}

#[async_trait::async_trait]
impl Middleware for TracingMiddleware {
    async fn handle(
        &self,
        mut request: ::reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<::reqwest::Response> {
        let method = request.method().clone();
        let cx = self.config.start(
            &method,
            &to_http_uri(request.url()),
            request.version(),
            request.headers_mut(),
            extensions,
        );
        // The span must be current while the rest of the chain runs, so that nested
        // middleware and logs see it.
        let result = next.run(request, extensions).with_context(cx.clone()).await;
        match &result {
            Ok(response) => finish_response(&cx, response.status(), response.headers()),
            Err(reqwest_middleware::Error::Reqwest(err)) => {
                finish_error(&cx, classify_error(err), err.to_string());
            }
            Err(err @ reqwest_middleware::Error::Middleware(_)) => {
                finish_error(&cx, "_OTHER", err.to_string());
            }
        }
        result
    }
}

/// reqwest's URL as an `http::Uri`; an unparsable URL yields an empty one, which only costs attributes.
fn to_http_uri(url: &::reqwest::Url) -> http::Uri {
    url.as_str().parse().unwrap_or_default()
}
