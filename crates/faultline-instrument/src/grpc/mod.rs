//! gRPC tracing for tonic servers and clients, as tower layers over the HTTP/2 requests tonic
//! is built on: context travels in metadata (HTTP/2 headers), spans follow the RPC semantic
//! conventions (`rpc.system`, `rpc.service`, `rpc.method`, `rpc.grpc.status_code`), and the
//! span ends when the status arrives — in the headers of a trailers-only answer or in the
//! trailers after the last message.

mod body;
mod future;

use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use http::{Request, Response};
use opentelemetry::trace::{SpanKind, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;
use tower::{Layer, Service};

pub use body::TracedGrpcBody;
pub use future::GrpcResponseFuture;

use crate::logs::{with_route, LogRoute};
use crate::propagation::Propagation;
use crate::semconv;

#[derive(Debug)]
pub(crate) struct GrpcConfig {
    tracer: SdkTracer,
    propagation: Propagation,
    kind: SpanKind,
    logs: Option<LogRoute>,
}

/// Traces gRPC calls: SERVER spans for `tonic::transport::Server::builder().layer(...)`,
/// CLIENT spans when wrapped around a `tonic::transport::Channel`.
///
/// ```
/// use faultline_instrument::Telemetry;
/// use opentelemetry_sdk::trace::InMemorySpanExporter;
///
/// let telemetry = Telemetry::builder("order-service")
///     .install_global(false)
///     .install_with_exporter(InMemorySpanExporter::default())?;
/// let server = tonic::transport::Server::builder().layer(telemetry.grpc_server_layer());
/// # let _ = server;
/// # Ok::<(), faultline_instrument::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct GrpcLayer {
    config: Arc<GrpcConfig>,
}

impl GrpcLayer {
    /// A layer for servers: extracts context from metadata, records SERVER spans.
    pub fn server(tracer: SdkTracer, propagation: Propagation) -> Self {
        GrpcLayer {
            config: Arc::new(GrpcConfig {
                tracer,
                propagation,
                kind: SpanKind::Server,
                logs: None,
            }),
        }
    }

    /// A layer for clients: records CLIENT spans and injects their context into metadata.
    pub fn client(tracer: SdkTracer, propagation: Propagation) -> Self {
        GrpcLayer {
            config: Arc::new(GrpcConfig {
                tracer,
                propagation,
                kind: SpanKind::Client,
                logs: None,
            }),
        }
    }

    /// Exports events raised while a call is handled as logs of `route`'s service;
    /// [`Telemetry::grpc_server_layer`](crate::Telemetry::grpc_server_layer) sets it.
    pub fn log_route(self, route: Option<LogRoute>) -> Self {
        GrpcLayer {
            config: Arc::new(GrpcConfig {
                tracer: self.config.tracer.clone(),
                propagation: self.config.propagation.clone(),
                kind: self.config.kind.clone(),
                logs: route,
            }),
        }
    }
}

impl<S> Layer<S> for GrpcLayer {
    type Service = GrpcService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcService {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service built by [`GrpcLayer`].
#[derive(Clone, Debug)]
pub struct GrpcService<S> {
    inner: S,
    config: Arc<GrpcConfig>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for GrpcService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: std::fmt::Display,
{
    type Response = Response<TracedGrpcBody<ResBody>>;
    type Error = S::Error;
    type Future = GrpcResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let config = &self.config;
        let parent = match config.kind {
            SpanKind::Server => config.propagation.extract_headers(request.headers()),
            _ => Context::current(),
        };
        let (service, method) = split_path(request.uri().path());
        let mut attributes = vec![
            KeyValue::new("rpc.system", "grpc"),
            KeyValue::new("rpc.service", service.to_owned()),
            KeyValue::new("rpc.method", method.to_owned()),
        ];
        let authority = request
            .uri()
            .authority()
            .map(|a| a.as_str())
            .or_else(|| semconv::header_str(request.headers(), http::header::HOST, 256));
        if let Some((host, port)) = authority.and_then(semconv::split_host_port) {
            attributes.push(KeyValue::new("server.address", host.to_owned()));
            if let Some(port) = port {
                attributes.push(KeyValue::new("server.port", i64::from(port)));
            }
        }
        let name = if service.is_empty() {
            "grpc".to_owned()
        } else {
            format!("{service}/{method}")
        };
        let span = config
            .tracer
            .span_builder(name)
            .with_kind(config.kind.clone())
            .with_attributes(attributes)
            .start_with_context(&config.tracer, &parent);
        let cx = with_route(parent.with_span(span), config.logs.as_ref());
        if config.kind == SpanKind::Client {
            config
                .propagation
                .inject_headers(&cx, request.headers_mut());
        }
        let future = {
            let _attached = cx.clone().attach();
            self.inner.call(request)
        };
        GrpcResponseFuture::new(future, cx, config.kind == SpanKind::Server)
    }
}

/// `/package.Service/Method` → (`package.Service`, `Method`); nonsense paths give empty parts.
fn split_path(path: &str) -> (&str, &str) {
    let path = semconv::truncate(path.strip_prefix('/').unwrap_or(path), 256);
    path.split_once('/').unwrap_or(("", ""))
}

/// Records the gRPC status and ends the span. Servers only blame themselves for codes that
/// mean a server fault; clients treat every non-OK code as an error, as the conventions say.
pub(crate) fn finish(cx: &Context, code: i64, message: Option<&str>, server: bool) {
    let span = cx.span();
    span.set_attribute(KeyValue::new("rpc.grpc.status_code", code));
    let server_fault = matches!(code, 2 | 4 | 12 | 13 | 14 | 15);
    if code != 0 && (!server || server_fault) {
        span.set_status(opentelemetry::trace::Status::error(
            message
                .map(|m| semconv::truncate(m, 512).to_owned())
                .unwrap_or_default(),
        ));
    }
    span.end();
}

#[cfg(test)]
mod tests {
    use super::split_path;

    #[test]
    fn splits_grpc_paths() {
        assert_eq!(split_path("/shop.Orders/Get"), ("shop.Orders", "Get"));
        assert_eq!(split_path("/weird"), ("", ""));
        assert_eq!(split_path(""), ("", ""));
    }
}
