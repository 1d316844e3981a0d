//! The service half of [`ServerLayer`](super::ServerLayer).

use std::borrow::Cow;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use axum::extract::{ConnectInfo, MatchedPath};
use http::{HeaderName, Request, Response};
use opentelemetry::trace::{Span, SpanKind, TraceContextExt, Tracer};
use opentelemetry::{KeyValue, Value};
use tower::Service;

use super::future::ResponseFuture;
use super::ServerConfig;
use crate::logs::with_route;
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
        let config = &*self.config;
        let parent = config.propagation.extract_headers(request.headers());
        let known = semconv::known_method(request.method());
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str);
        // Formatting `GET /orders/{id}` costs an allocation that an unsampled request does not
        // need, so unless the sampler decides by name the span starts with the static method
        // and is renamed once it is known to record.
        let name: Cow<'static, str> = if config.sampler_reads_name {
            span_name(known, route).into()
        } else {
            known.unwrap_or("HTTP").into()
        };
        let mut span = config
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .start_with_context(&config.tracer, &parent);
        if span.is_recording() {
            if !config.sampler_reads_name && route.is_some() {
                span.update_name(span_name(known, route));
            }
            // Straight into the span, which is not shared yet: no lock, no temporary vector.
            let mut record = |attribute| span.set_attribute(attribute);
            match known {
                Some(method) => record(KeyValue::new("http.request.method", method)),
                None => {
                    record(KeyValue::new("http.request.method", "_OTHER"));
                    record(KeyValue::new(
                        "http.request.method_original",
                        semconv::truncate(request.method().as_str(), 64).to_owned(),
                    ));
                }
            }
            request_attributes(&request, route, &mut record);
        }
        let cx = with_route(parent.with_span(span), config.logs.as_ref());
        let inner = &mut self.inner;
        let call = {
            let _attached = cx.clone().attach();
            catch_unwind(AssertUnwindSafe(|| inner.call(request)))
        };
        ResponseFuture::new(call, cx, Arc::clone(&self.config))
    }
}

/// `GET /orders/{id}`: the method and the route template, so names stay few.
fn span_name(method: Option<&'static str>, route: Option<&str>) -> String {
    let method = method.unwrap_or("HTTP");
    match route {
        Some(route) => {
            let mut name = String::with_capacity(method.len() + 1 + route.len());
            name.push_str(method);
            name.push(' ');
            name.push_str(route);
            name
        }
        None => method.to_owned(),
    }
}

static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The attributes known before the handler runs, besides the method.
fn request_attributes<B>(
    request: &Request<B>,
    route: Option<&str>,
    record: &mut impl FnMut(KeyValue),
) {
    if let Some(route) = route {
        record(KeyValue::new("http.route", route.to_owned()));
    }
    let uri = request.uri();
    record(KeyValue::new(
        "url.path",
        semconv::truncate(uri.path(), 2048).to_owned(),
    ));
    let headers = request.headers();
    let scheme = uri
        .scheme_str()
        .or_else(|| semconv::header_str(headers, &X_FORWARDED_PROTO, 8))
        .unwrap_or("http");
    let scheme: Value = match scheme {
        "http" => "http".into(),
        "https" => "https".into(),
        other => other.to_owned().into(),
    };
    record(KeyValue::new("url.scheme", scheme));
    let authority = uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| semconv::header_str(headers, http::header::HOST, 256));
    if let Some((host, port)) = authority.and_then(semconv::split_host_port) {
        record(KeyValue::new("server.address", host.to_owned()));
        if let Some(port) = port {
            record(KeyValue::new("server.port", i64::from(port)));
        }
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr);
    if let Some(peer) = peer {
        record(KeyValue::new("network.peer.address", peer.ip().to_string()));
        record(KeyValue::new("network.peer.port", i64::from(peer.port())));
    }
    // The original client, as reported by the nearest proxy, else the socket peer.
    let forwarded = semconv::header_str(headers, &X_FORWARDED_FOR, 256)
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    match (forwarded, peer) {
        (Some(client), _) => record(KeyValue::new("client.address", client.to_owned())),
        (None, Some(peer)) => record(KeyValue::new("client.address", peer.ip().to_string())),
        (None, None) => {}
    }
    if let Some(agent) = semconv::header_str(headers, http::header::USER_AGENT, 512) {
        record(KeyValue::new("user_agent.original", agent.to_owned()));
    }
    if let Some(version) = semconv::protocol_version(request.version()) {
        record(KeyValue::new("network.protocol.version", version));
    }
    if let Some(size) = semconv::content_length(headers) {
        record(KeyValue::new("http.request.body.size", size));
    }
}
