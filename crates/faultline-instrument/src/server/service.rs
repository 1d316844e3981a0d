//! The service half of [`ServerLayer`](super::ServerLayer).

use std::borrow::Cow;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use axum::extract::{ConnectInfo, MatchedPath};
use http::{HeaderName, Request, Response};
use opentelemetry::trace::{Span, SpanContext, SpanKind, TraceContextExt, TraceFlags, Tracer};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SamplingDecision};
use tower::Service;

use super::future::ResponseFuture;
use super::ServerConfig;
use crate::logs::with_route;
use crate::sampling::{Candidate, ConfiguredSampler, Handoff};
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
        let cx = match &config.sampler {
            Some(sampler) => start_decided(config, sampler, &request),
            None => start_with_sdk(config, &request),
        };
        let cx = with_route(cx, config.logs.as_ref());
        let inner = &mut self.inner;
        let call = {
            let _attached = cx.clone().attach();
            catch_unwind(AssertUnwindSafe(|| inner.call(request)))
        };
        ResponseFuture::new(call, cx, Arc::clone(&self.config))
    }
}

/// Room for every attribute the layer records (request and response), so the span's vector
/// is allocated once.
const ATTRIBUTE_CAPACITY: usize = 16;

/// The request's context, for a layer that holds the provider's sampler: the sampler is asked
/// first, and a dropped request gets a non-recording span context without any SDK span.
fn start_decided<B>(
    config: &ServerConfig,
    sampler: &ConfiguredSampler,
    request: &Request<B>,
) -> Context {
    let incoming = config.propagation.extract_incoming(request.headers());
    let known = semconv::known_method(request.method());
    let route = matched_route(request);
    // The full name costs an allocation that only a sampler reading names needs before the
    // decision.
    let decision_name = config.sampler_reads_name.then(|| span_name(known, route));
    let (trace_id, root, decided) = {
        let parent = incoming.parent();
        let (trace_id, root) = match parent.valid_span_context() {
            Some(sc) => (sc.trace_id(), false),
            None => (RandomIdGenerator::default().new_trace_id(), true),
        };
        let decided = sampler.decide(&Candidate {
            parent,
            trace_id,
            name: decision_name
                .as_deref()
                .unwrap_or_else(|| known.unwrap_or("HTTP")),
            kind: &SpanKind::Server,
            attributes: &[],
            links: &[],
        });
        (trace_id, root, decided)
    };
    if decided.decision == SamplingDecision::Drop {
        // What the SDK makes of a dropped span, without making the span: the trace continues
        // (downstream calls carry this trace id, flagged unsampled), under a span id of its
        // own as the specification requires of every span whatever the decision, so log lines
        // of this hop are told apart from the caller's.
        let sc = SpanContext::new(
            trace_id,
            RandomIdGenerator::default().new_span_id(),
            TraceFlags::default(),
            false,
            decided.trace_state,
        );
        return incoming.with_span_context(sc);
    }
    let parent = incoming.into_context();
    let name = decision_name.unwrap_or_else(|| span_name(known, route));
    let mut attributes = Vec::with_capacity(ATTRIBUTE_CAPACITY);
    let mut record = |attribute| attributes.push(attribute);
    method_attributes(request, known, &mut record);
    request_attributes(request, route, &mut record);
    let builder = config
        .tracer
        .span_builder(name)
        .with_kind(SpanKind::Server)
        .with_attributes(attributes);
    let span = Handoff::run(trace_id, root, decided, || {
        builder.start_with_context(&config.tracer, &parent)
    });
    parent.with_span(span)
}

/// The request's context when the layer does not hold the provider's sampler: the SDK decides
/// while starting the span.
fn start_with_sdk<B>(config: &ServerConfig, request: &Request<B>) -> Context {
    let parent = config.propagation.extract_headers(request.headers());
    let known = semconv::known_method(request.method());
    let route = matched_route(request);
    // Formatting `GET /orders/{id}` costs an allocation that an unsampled request does not
    // need, so unless the sampler decides by name the span starts with the static method
    // and is renamed once it is known to record.
    let name = if config.sampler_reads_name {
        span_name(known, route)
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
        method_attributes(request, known, &mut record);
        request_attributes(request, route, &mut record);
    }
    parent.with_span(span)
}

fn matched_route<B>(request: &Request<B>) -> Option<&str> {
    request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
}

/// `GET /orders/{id}`: the method and the route template, so names stay few.
fn span_name(method: Option<&'static str>, route: Option<&str>) -> Cow<'static, str> {
    let method = method.unwrap_or("HTTP");
    match route {
        Some(route) => {
            let mut name = String::with_capacity(method.len() + 1 + route.len());
            name.push_str(method);
            name.push(' ');
            name.push_str(route);
            name.into()
        }
        None => method.into(),
    }
}

/// `http.request.method`, and the original when it is not one of the known nine.
fn method_attributes<B>(
    request: &Request<B>,
    known: Option<&'static str>,
    record: &mut impl FnMut(KeyValue),
) {
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
