//! The response future of [`GrpcService`](super::GrpcService).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use http::Response;
use opentelemetry::trace::{Status, TraceContextExt};
use opentelemetry::Context;
use pin_project_lite::pin_project;

use super::body::{status_from_headers, TracedGrpcBody};
use super::finish;

pin_project! {
    /// Hands the span to the response body, which ends it when the status arrives.
    pub struct GrpcResponseFuture<F> {
        #[pin]
        inner: F,
        cx: Option<Context>,
        server: bool,
    }
}

impl<F> GrpcResponseFuture<F> {
    pub(super) fn new(inner: F, cx: Context, server: bool) -> Self {
        GrpcResponseFuture {
            inner,
            cx: Some(cx),
            server,
        }
    }
}

impl<F, B, E> Future for GrpcResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: std::fmt::Display,
{
    type Output = Result<Response<TracedGrpcBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let polled = match this.cx.as_ref() {
            Some(cx) => {
                let _attached = cx.clone().attach();
                this.inner.poll(task)
            }
            None => this.inner.poll(task),
        };
        let result = match polled {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(result) => result,
        };
        let Some(cx) = this.cx.take() else {
            return Poll::Ready(result.map(|r| r.map(TracedGrpcBody::untraced)));
        };
        match result {
            Ok(response) => {
                // A trailers-only answer (typical for errors) carries the status in its headers.
                if let Some((code, message)) = status_from_headers(response.headers()) {
                    finish(&cx, code, message.as_deref(), *this.server);
                    return Poll::Ready(Ok(response.map(TracedGrpcBody::untraced)));
                }
                let server = *this.server;
                Poll::Ready(Ok(
                    response.map(|body| TracedGrpcBody::new(body, cx, server))
                ))
            }
            Err(err) => {
                let span = cx.span();
                span.set_attribute(opentelemetry::KeyValue::new("error.type", "transport"));
                span.set_status(Status::error(err.to_string()));
                span.end();
                Poll::Ready(Err(err))
            }
        }
    }
}
