//! The service half of [`ServerLayer`](super::ServerLayer).

use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use axum::extract::{ConnectInfo, MatchedPath};
use http::{Request, Response};
use opentelemetry::trace::{
    Span, SpanBuilder, SpanContext, SpanKind, TraceContextExt, TraceFlags, Tracer,
};
use opentelemetry::{Context, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SamplingDecision};
use tower::Service;

use super::future::ResponseFuture;
use super::strings::{RouteStrings, Template};
use super::ServerConfig;
use crate::logs::with_route;
use crate::request_headers::RequestHeaders;
use crate::sampling::{Candidate, ConfiguredSampler, Handoff};
use crate::semconv;

/// Wraps a service so each request gets a SERVER span; built by [`ServerLayer`](super::ServerLayer).
#[derive(Clone, Debug)]
pub struct TracedService<S> {
    inner: S,
    // One `Arc`: axum clones a route's service for every request.
    shared: Arc<Shared>,
}

/// What every request of one wrapped service reads.
#[derive(Debug)]
struct Shared {
    config: Arc<ServerConfig>,
    strings: RouteStrings,
}

impl<S> TracedService<S> {
    pub(super) fn new(inner: S, config: Arc<ServerConfig>) -> Self {
        TracedService {
            inner,
            shared: Arc::new(Shared {
                config,
                strings: RouteStrings::default(),
            }),
        }
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
        let Shared { config, strings } = &*self.shared;
        let start = Start {
            config,
            strings,
            request: &request,
            headers: RequestHeaders::scan(request.headers()),
            known: semconv::known_method(request.method()),
        };
        let (cx, recording) = match &config.sampler {
            Some(sampler) => start.decided(sampler),
            None => start.with_sdk(),
        };
        let cx = with_route(cx, config.logs.as_ref());
        let inner = &mut self.inner;
        let call = {
            let _attached = cx.clone().attach();
            catch_unwind(AssertUnwindSafe(|| inner.call(request)))
        };
        // Only a recorded span writes response headers, so only it needs the configuration.
        let config = recording.then(|| Arc::clone(config));
        ResponseFuture::new(call, cx, config)
    }
}

/// Room for every attribute the layer records (request and response), so the span's vector
/// is allocated once.
const ATTRIBUTE_CAPACITY: usize = 16;

/// What starting a request's span needs to know about it.
struct Start<'a, B> {
    config: &'a ServerConfig,
    strings: &'a RouteStrings,
    request: &'a Request<B>,
    headers: RequestHeaders<'a>,
    known: Option<&'static str>,
}

impl<'a, B> Start<'a, B> {
    /// The route template axum matched, if any: looked up (a hashed lookup in the request's
    /// extensions) only where a name or attribute needs it, so not for a dropped request.
    fn route(&self) -> Option<Template<'a>> {
        self.request
            .extensions()
            .get::<MatchedPath>()
            .map(Template::matched)
    }

    /// The request's context and whether its span records, for a layer that holds the
    /// provider's sampler: the sampler is asked first, and a dropped request gets a
    /// non-recording span context without any SDK span.
    fn decided(&self, sampler: &ConfiguredSampler) -> (Context, bool) {
        let config = self.config;
        let incoming = config
            .propagation
            .extract_incoming(&self.headers, self.request.headers());
        // Only a sampler reading names needs the name (and so the route) before the decision.
        let early_route = config.sampler_reads_name.then(|| self.route());
        let decision_name = early_route.map(|route| self.strings.span_name(self.known, route));
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
                    .unwrap_or_else(|| self.known.unwrap_or("HTTP")),
                kind: &SpanKind::Server,
                attributes: &[],
                links: &[],
            });
            (trace_id, root, decided)
        };
        if decided.decision == SamplingDecision::Drop {
            // What the SDK makes of a dropped span, without making the span: the trace
            // continues (downstream calls carry this trace id, flagged unsampled), under a span
            // id of its own as the specification requires of every span whatever the decision,
            // so log lines of this hop are told apart from the caller's.
            let sc = SpanContext::new(
                trace_id,
                RandomIdGenerator::default().new_span_id(),
                TraceFlags::default(),
                false,
                decided.trace_state,
            );
            return (incoming.with_span_context(sc), false);
        }
        let parent = incoming.into_context();
        let route = early_route.unwrap_or_else(|| self.route());
        let name = decision_name.unwrap_or_else(|| self.strings.span_name(self.known, route));
        let mut attributes = Vec::with_capacity(ATTRIBUTE_CAPACITY);
        self.attributes(route, &mut |attribute| attributes.push(attribute));
        // Fields set in place: each `with_*` call moves the whole (large) builder.
        let mut builder = SpanBuilder::from_name(name);
        builder.span_kind = Some(SpanKind::Server);
        builder.attributes = Some(attributes);
        // The span goes into its context inside the closure: returned from it, the SDK span
        // (a few hundred bytes) was copied once more on its way.
        Handoff::run(trace_id, root, decided, || {
            let span = builder.start_with_context(&config.tracer, &parent);
            let recording = span.is_recording();
            (parent.with_span(span), recording)
        })
    }

    /// The request's context and whether its span records, when the layer does not hold the
    /// provider's sampler: the SDK decides while starting the span.
    fn with_sdk(&self) -> (Context, bool) {
        let config = self.config;
        let route = self.route();
        let parent = config
            .propagation
            .extract_incoming(&self.headers, self.request.headers())
            .into_context();
        // Unless the sampler decides by name, the span starts with the static method and is
        // renamed once it is known to record.
        let name = if config.sampler_reads_name {
            self.strings.span_name(self.known, route)
        } else {
            self.known.unwrap_or("HTTP").into()
        };
        let mut span = config
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .start_with_context(&config.tracer, &parent);
        let recording = span.is_recording();
        if recording {
            if !config.sampler_reads_name && route.is_some() {
                span.update_name(self.strings.span_name(self.known, route));
            }
            // Straight into the span, which is not shared yet: no lock, no temporary vector.
            self.attributes(route, &mut |attribute| span.set_attribute(attribute));
        }
        (parent.with_span(span), recording)
    }

    /// The attributes known before the handler runs.
    fn attributes(&self, route: Option<Template<'_>>, record: &mut impl FnMut(KeyValue)) {
        let request = self.request;
        let headers = &self.headers;
        method_attributes(request, self.known, record);
        if let Some(route) = route {
            record(KeyValue::new("http.route", self.strings.route_value(route)));
        }
        let uri = request.uri();
        record(KeyValue::new(
            "url.path",
            semconv::truncate(uri.path(), 2048).to_owned(),
        ));
        let scheme = uri
            .scheme_str()
            .or_else(|| semconv::value_str(headers.x_forwarded_proto, 8))
            .unwrap_or("http");
        let scheme: Value = match scheme {
            "http" => "http".into(),
            "https" => "https".into(),
            other => other.to_owned().into(),
        };
        record(KeyValue::new("url.scheme", scheme));
        // The URI's authority (absolute-form requests, HTTP/2) before the `Host` header.
        let authority = match uri.authority() {
            Some(authority) => Some((authority.as_str().as_bytes(), usize::MAX)),
            None => headers.host.map(|host| (host.as_bytes(), 256)),
        };
        if let Some((host, port)) =
            authority.and_then(|(raw, max)| self.strings.host_port(raw, max))
        {
            record(KeyValue::new("server.address", host));
            if let Some(port) = port {
                record(KeyValue::new("server.port", i64::from(port)));
            }
        }
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| *addr);
        // Formatted once for both attributes that may carry it.
        let peer_ip: Option<StringValue> =
            peer.map(|peer| Arc::<str>::from(peer.ip().to_string()).into());
        if let (Some(peer), Some(ip)) = (peer, &peer_ip) {
            record(KeyValue::new("network.peer.address", ip.clone()));
            record(KeyValue::new("network.peer.port", i64::from(peer.port())));
        }
        // The original client, as reported by the nearest proxy, else the socket peer.
        let forwarded = semconv::value_str(headers.x_forwarded_for, 256)
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty());
        match (forwarded, peer_ip) {
            (Some(client), _) => record(KeyValue::new("client.address", client.to_owned())),
            (None, Some(ip)) => record(KeyValue::new("client.address", ip)),
            (None, None) => {}
        }
        if let Some(agent) = headers
            .user_agent
            .and_then(|agent| self.strings.user_agent(agent.as_bytes(), 512))
        {
            record(KeyValue::new("user_agent.original", agent));
        }
        if let Some(version) = semconv::protocol_version(request.version()) {
            record(KeyValue::new("network.protocol.version", version));
        }
        if let Some(size) = semconv::content_length_value(headers.content_length) {
            record(KeyValue::new("http.request.body.size", size));
        }
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
