//! The service half of [`ServerLayer`](super::ServerLayer).

use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use axum::extract::{ConnectInfo, MatchedPath};
use http::{Request, Response};
use opentelemetry::trace::{Span, SpanKind, TraceContextExt, Tracer};
use opentelemetry::KeyValue;
use tower::Service;

use super::future::ResponseFuture;
use super::ServerConfig;
use crate::semconv;

/// Wraps a service so each request gets a SERVER span; built by [`ServerLayer`](super::ServerLayer).
#[derive(Clone, Debug)]
pub struct TracedService<S> {
    inner: S,
    config: Arc<ServerConfig>,
}

impl<S> TracedService<S> {
    pub(super) fn new(inner: S, config: Arc<ServerConfig>) -> Self {
        TracedService { inner, config }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for TracedService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: std::fmt::Display,
    ResBody: Default + http_body::Body,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let parent = self.config.propagation.extract_headers(request.headers());
        let mut attributes = Vec::new();
        let method = semconv::method_attributes(request.method(), &mut attributes);
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str);
        let name = match route {
            Some(route) => format!("{method} {route}"),
            None => method.to_owned(),
        };
        // Attributes are added after the sampling decision: collecting them costs more than
        // the rest of an unsampled request, and none of our samplers looks at them.
        let mut span = self
            .config
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .start_with_context(&self.config.tracer, &parent);
        if span.is_recording() {
            request_attributes(&request, route, &mut attributes);
            span.set_attributes(attributes);
        }
        let cx = parent.with_span(span);
        let inner = &mut self.inner;
        let call = {
            let _attached = cx.clone().attach();
            catch_unwind(AssertUnwindSafe(|| inner.call(request)))
        };
        ResponseFuture::new(call, cx, Arc::clone(&self.config))
    }
}

/// The attributes known before the handler runs (the method ones are already in `attributes`).
fn request_attributes<B>(
    request: &Request<B>,
    route: Option<&str>,
    attributes: &mut Vec<KeyValue>,
) {
    attributes.reserve(12);
    if let Some(route) = route {
        attributes.push(KeyValue::new("http.route", route.to_owned()));
    }
    let uri = request.uri();
    attributes.push(KeyValue::new(
        "url.path",
        semconv::truncate(uri.path(), 2048).to_owned(),
    ));
    let headers = request.headers();
    let scheme = uri
        .scheme_str()
        .or_else(|| semconv::header_str(headers, "x-forwarded-proto", 8))
        .unwrap_or("http");
    attributes.push(KeyValue::new("url.scheme", scheme.to_owned()));
    let authority = uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| semconv::header_str(headers, "host", 256));
    if let Some((host, port)) = authority.and_then(semconv::split_host_port) {
        attributes.push(KeyValue::new("server.address", host.to_owned()));
        if let Some(port) = port {
            attributes.push(KeyValue::new("server.port", i64::from(port)));
        }
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr);
    if let Some(peer) = peer {
        attributes.push(KeyValue::new("network.peer.address", peer.ip().to_string()));
        attributes.push(KeyValue::new("network.peer.port", i64::from(peer.port())));
    }
    // The original client, as reported by the nearest proxy, else the socket peer.
    let forwarded = semconv::header_str(headers, "x-forwarded-for", 256)
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    match (forwarded, peer) {
        (Some(client), _) => attributes.push(KeyValue::new("client.address", client.to_owned())),
        (None, Some(peer)) => {
            attributes.push(KeyValue::new("client.address", peer.ip().to_string()))
        }
        (None, None) => {}
    }
    if let Some(agent) = semconv::header_str(headers, "user-agent", 512) {
        attributes.push(KeyValue::new("user_agent.original", agent.to_owned()));
    }
    if let Some(version) = semconv::protocol_version(request.version()) {
        attributes.push(KeyValue::new("network.protocol.version", version));
    }
    if let Some(size) = semconv::content_length(headers) {
        attributes.push(KeyValue::new("http.request.body.size", size));
    }
}
