//! The response future of [`TracedService`](super::TracedService).

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode};
use http_body::Body;
use opentelemetry::trace::{Status, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use pin_project_lite::pin_project;

use super::ServerConfig;
use crate::semconv;

pin_project! {
    /// Completes the SERVER span when the inner service answers.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Option<F>,
        panic: Option<String>,
        cx: Context,
        // Present when the span records (known when it started; asking the span again
        // would take its lock): only then is there anything to record or a trace to
        // point the caller at.
        config: Option<Arc<ServerConfig>>,
    }
}

impl<F> ResponseFuture<F> {
    // Inlined into `call`, so the (large) inner future is moved into place once.
    #[inline(always)]
    pub(super) fn new(
        call: Result<F, Box<dyn Any + Send>>,
        cx: Context,
        config: Option<Arc<ServerConfig>>,
    ) -> Self {
        // Built in each arm: a tuple of the two first cost one more copy of the inner future.
        match call {
            Ok(future) => ResponseFuture {
                inner: Some(future),
                panic: None,
                cx,
                config,
            },
            Err(payload) => ResponseFuture {
                inner: None,
                panic: Some(panic_message(payload.as_ref())),
                cx,
                config,
            },
        }
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    E: std::fmt::Display,
    ResBody: Default + Body,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(message) = this.panic.take() {
            return Poll::Ready(Ok(panic_response(
                this.cx,
                this.config.as_deref(),
                &message,
            )));
        }
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            // Polled after completion: the caller broke the Future contract, but a hostile
            // request must not be able to turn that into a panic of ours.
            return Poll::Pending;
        };
        let polled = {
            let _attached = this.cx.clone().attach();
            catch_unwind(AssertUnwindSafe(|| inner.poll(task)))
        };
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(result)) => {
                this.inner.set(None);
                Poll::Ready(match result {
                    Ok(mut response) => {
                        // Nothing to record, and no trace to point the caller at, without a
                        // configuration. In place: the response is large to move.
                        if let Some(config) = this.config.as_deref() {
                            finish(this.cx, config, &mut response);
                        }
                        Ok(response)
                    }
                    Err(err) => {
                        let span = this.cx.span();
                        span.set_attribute(KeyValue::new("error.type", "_OTHER"));
                        span.set_status(Status::error(err.to_string()));
                        span.end();
                        Err(err)
                    }
                })
            }
            Err(payload) => {
                // The handler's future is unusable after a panic; drop it before answering.
                this.inner.set(None);
                let message = panic_message(payload.as_ref());
                Poll::Ready(Ok(panic_response(
                    this.cx,
                    this.config.as_deref(),
                    &message,
                )))
            }
        }
    }
}

fn finish<B: Body>(cx: &Context, config: &ServerConfig, response: &mut Response<B>) {
    let span = cx.span();
    let status = response.status();
    let status_code = KeyValue::new("http.response.status_code", i64::from(status.as_u16()));
    let body_size = semconv::content_length(response.headers()).or_else(|| {
        response
            .body()
            .size_hint()
            .exact()
            .and_then(|n| i64::try_from(n).ok())
    });
    // One call, so the span's lock is taken once; an array rather than a chain of iterators,
    // which moved each attribute several more times.
    match body_size {
        Some(size) => {
            span.set_attributes([status_code, KeyValue::new("http.response.body.size", size)])
        }
        None => span.set_attributes([status_code]),
    }
    // 4xx is the client's fault and is not an error of this server.
    if status.is_server_error() {
        span.set_attribute(KeyValue::new("error.type", status.as_u16().to_string()));
        span.set_status(semconv::error_status());
    }
    add_trace_headers(cx, config, response.headers_mut());
    span.end();
}

fn panic_response<B: Default>(
    cx: &Context,
    config: Option<&ServerConfig>,
    message: &str,
) -> Response<B> {
    let span = cx.span();
    span.add_event(
        "exception",
        vec![
            KeyValue::new("exception.type", "panic"),
            KeyValue::new("exception.message", message.to_owned()),
        ],
    );
    span.set_attribute(KeyValue::new("http.response.status_code", 500_i64));
    span.set_attribute(KeyValue::new("error.type", "panic"));
    span.set_status(Status::error(message.to_owned()));
    let mut response = Response::new(B::default());
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    if let Some(config) = config {
        add_trace_headers(cx, config, response.headers_mut());
    }
    span.end();
    response
}

static TRACERESPONSE: HeaderName = HeaderName::from_static("traceresponse");

/// `traceresponse` and the trace id header, for sampled spans only: an unsampled trace is
/// never stored, so its id would lead a support ticket nowhere.
fn add_trace_headers(cx: &Context, config: &ServerConfig, headers: &mut http::HeaderMap) {
    let span = cx.span();
    let sc = span.span_context();
    if !sc.is_valid() || !sc.is_sampled() {
        return;
    }
    // One allocation holds both values: the buffer is moved into a reference-counted owner,
    // and the trace id is a slice of it (copying each value cost an allocation apiece, and
    // slicing a `Bytes` made from a `Vec` promoted it to a second allocation).
    let traceresponse = Bytes::from_owner(semconv::traceresponse(sc));
    if let Some(name) = &config.trace_id_header {
        headers.insert(name.clone(), formatted_value(traceresponse.slice(3..35)));
    }
    if config.traceresponse {
        headers.insert(TRACERESPONSE.clone(), formatted_value(traceresponse));
    }
}

/// A header value of bytes that [`semconv::traceresponse`] formatted, or a slice of them,
/// without `http` checking them again one by one (about 250 instructions for the two values).
/// Only [`add_trace_headers`] calls it, with nothing else.
#[allow(unsafe_code)]
fn formatted_value(bytes: Bytes) -> HeaderValue {
    debug_assert!(bytes
        .iter()
        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f' | b'-')));
    // SAFETY: `semconv::traceresponse` writes only the digits `0`-`9`, the letters `a`-`f` and
    // `-` (its tests compare its output with the formatted ids, byte for byte), and the caller
    // passes that buffer or a slice of it. These are visible ASCII bytes: valid UTF-8, which is
    // what this constructor requires, and every one of them a byte that `HeaderValue`'s checked
    // constructors accept, so the value is the one `from_maybe_shared` would have built.
    unsafe { HeaderValue::from_maybe_shared_unchecked(bytes) }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::propagation::Propagation;
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceFlags, TraceId, TraceState, TracerProvider,
    };
    use opentelemetry_sdk::trace::SdkTracerProvider;

    /// The unchecked header values are exactly what the checked constructor builds from the
    /// formatted ids, and read back as text.
    #[test]
    fn trace_headers_are_valid_values_of_the_formatted_ids() {
        let provider = SdkTracerProvider::builder().build();
        let config = ServerConfig {
            tracer: provider.tracer("test"),
            propagation: Propagation::default(),
            trace_id_header: Some(HeaderName::from_static("x-trace-id")),
            traceresponse: true,
            logs: None,
            sampler_reads_name: false,
            sampler: None,
        };
        for (trace_id, span_id) in crate::semconv::TEST_IDS {
            let sc = SpanContext::new(
                TraceId::from(trace_id),
                SpanId::from(span_id),
                TraceFlags::SAMPLED,
                true,
                TraceState::default(),
            );
            let cx = Context::new().with_remote_span_context(sc.clone());
            let mut headers = http::HeaderMap::new();
            add_trace_headers(&cx, &config, &mut headers);
            let traceresponse = format!("00-{}-{}-01", sc.trace_id(), sc.span_id());
            let trace_id = sc.trace_id().to_string();
            for (name, expected) in [("traceresponse", &traceresponse), ("x-trace-id", &trace_id)] {
                let value = &headers[name];
                assert_eq!(value.to_str().ok(), Some(expected.as_str()));
                let checked = HeaderValue::from_maybe_shared(Bytes::from(expected.clone()))
                    .expect("hex digits and dashes are a valid header value");
                assert_eq!(*value, checked);
            }
        }
        // Unsampled: no headers at all.
        let sc = SpanContext::new(
            TraceId::from(1),
            SpanId::from(1),
            TraceFlags::default(),
            true,
            TraceState::default(),
        );
        let mut headers = http::HeaderMap::new();
        add_trace_headers(
            &Context::new().with_remote_span_context(sc),
            &config,
            &mut headers,
        );
        assert!(headers.is_empty());
    }
}
