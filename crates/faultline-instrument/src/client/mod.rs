//! Client-side HTTP tracing: a `reqwest-middleware` middleware and a tower layer for hyper-style
//! clients. Both start a CLIENT span, inject its context into the outgoing headers and mark the
//! span as an error on 4xx/5xx answers, transport errors and timeouts, so calls to
//! uninstrumented third parties still show up as dependencies.

mod future;
mod layer;
mod reqwest;

use std::sync::Arc;

use http::{Extensions, HeaderMap, Method, StatusCode, Uri, Version};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;

pub use self::reqwest::TracingMiddleware;
pub use future::ClientResponseFuture;
pub use layer::{ClientLayer, ClientService};

use crate::propagation::Propagation;
use crate::semconv;

/// The logical name of the service a request goes to (`peer.service`); put it in the request
/// extensions to override the default, which is the target host.
///
/// ```
/// use faultline_instrument::client::PeerService;
/// let mut request = http::Request::new(());
/// request.extensions_mut().insert(PeerService("payments".to_owned()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerService(pub String);

#[derive(Debug)]
pub(crate) struct ClientConfig {
    pub(crate) tracer: SdkTracer,
    pub(crate) propagation: Propagation,
    pub(crate) peer_service: Option<String>,
}

impl ClientConfig {
    pub(crate) fn new(tracer: SdkTracer, propagation: Propagation) -> Arc<Self> {
        Arc::new(ClientConfig {
            tracer,
            propagation,
            peer_service: None,
        })
    }

    /// Starts the CLIENT span under the current context and writes its context into `headers`.
    pub(crate) fn start(
        &self,
        method: &Method,
        uri: &Uri,
        version: Version,
        headers: &mut HeaderMap,
        extensions: &Extensions,
    ) -> Context {
        let mut attributes = Vec::with_capacity(8);
        let name = semconv::method_attributes(method, &mut attributes);
        let host = uri
            .host()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'));
        if let Some(host) = host {
            attributes.push(KeyValue::new("server.address", host.to_owned()));
        }
        let port = uri.port_u16().or(match uri.scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        });
        if let Some(port) = port {
            attributes.push(KeyValue::new("server.port", i64::from(port)));
        }
        let peer = extensions
            .get::<PeerService>()
            .map(|p| p.0.clone())
            .or_else(|| self.peer_service.clone())
            .or_else(|| host.map(str::to_owned));
        if let Some(peer) = peer {
            attributes.push(KeyValue::new("peer.service", peer));
        }
        // The query string often carries tokens, so it is left out of url.full.
        if let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) {
            let authority = authority.as_str().rsplit('@').next().unwrap_or_default();
            attributes.push(KeyValue::new(
                "url.full",
                format!(
                    "{scheme}://{authority}{}",
                    semconv::truncate(uri.path(), 2048)
                ),
            ));
        }
        if let Some(version) = semconv::protocol_version(version) {
            attributes.push(KeyValue::new("network.protocol.version", version));
        }
        if let Some(size) = semconv::content_length(headers) {
            attributes.push(KeyValue::new("http.request.body.size", size));
        }
        let parent = Context::current();
        let span = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &parent);
        let cx = parent.with_span(span);
        self.propagation.inject_headers(&cx, headers);
        cx
    }
}

/// Records the answer and ends the span; 4xx and 5xx are errors for a client.
pub(crate) fn finish_response(cx: &Context, status: StatusCode, headers: &HeaderMap) {
    let span = cx.span();
    span.set_attribute(KeyValue::new(
        "http.response.status_code",
        i64::from(status.as_u16()),
    ));
    if let Some(size) = semconv::content_length(headers) {
        span.set_attribute(KeyValue::new("http.response.body.size", size));
    }
    if status.is_client_error() || status.is_server_error() {
        span.set_attribute(KeyValue::new("error.type", status.as_u16().to_string()));
        span.set_status(semconv::error_status());
    }
    span.end();
}

/// Records a failed call (no answer) and ends the span.
pub(crate) fn finish_error(cx: &Context, error_type: &'static str, message: String) {
    let span = cx.span();
    span.set_attribute(KeyValue::new("error.type", error_type));
    span.set_status(Status::error(message));
    span.end();
}

/// Classifies a transport error by walking its source chain.
pub(crate) fn classify_error(error: &(dyn std::error::Error + 'static)) -> &'static str {
    let mut current = Some(error);
    while let Some(err) = current {
        if err.is::<tower::timeout::error::Elapsed>() {
            return "timeout";
        }
        if let Some(reqwest_error) = err.downcast_ref::<::reqwest::Error>() {
            if reqwest_error.is_timeout() {
                return "timeout";
            }
            if reqwest_error.is_connect() {
                return "connect";
            }
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::TimedOut => return "timeout",
                std::io::ErrorKind::ConnectionRefused => return "connect",
                _ => {}
            }
        }
        current = err.source();
    }
    "_OTHER"
}
