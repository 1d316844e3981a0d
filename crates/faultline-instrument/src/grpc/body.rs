//! A response body that ends the gRPC span when the trailers (and so the status) arrive.

use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use opentelemetry::Context;
use pin_project_lite::pin_project;

use super::finish;

pin_project! {
    /// The response body of a traced gRPC call.
    pub struct TracedGrpcBody<B> {
        #[pin]
        inner: B,
        cx: Option<Context>,
        server: bool,
    }
}

impl<B> TracedGrpcBody<B> {
    pub(super) fn new(inner: B, cx: Context, server: bool) -> Self {
        TracedGrpcBody {
            inner,
            cx: Some(cx),
            server,
        }
    }

    pub(super) fn untraced(inner: B) -> Self {
        TracedGrpcBody {
            inner,
            cx: None,
            server: false,
        }
    }
}

impl<B: Default> Default for TracedGrpcBody<B> {
    fn default() -> Self {
        TracedGrpcBody::untraced(B::default())
    }
}

/// `grpc-status` (and `grpc-message`) from headers or trailers; garbage counts as absent.
pub(super) fn status_from_headers(headers: &HeaderMap) -> Option<(i64, Option<String>)> {
    let code = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .trim()
        .parse::<i64>()
        .ok()?;
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Some((code, message))
}

impl<B: Body> Body for TracedGrpcBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        task: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(task);
        if let Some(cx) = this.cx.as_ref() {
            match &polled {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(trailers) = frame.trailers_ref() {
                        let status = status_from_headers(trailers);
                        // Trailers without a status are a protocol violation: UNKNOWN.
                        let (code, message) = status.unwrap_or((2, None));
                        finish(cx, code, message.as_deref(), *this.server);
                        *this.cx = None;
                    }
                }
                Poll::Ready(Some(Err(_))) => {
                    finish(cx, 2, Some("response body failed"), *this.server);
                    *this.cx = None;
                }
                Poll::Ready(None) => {
                    finish(cx, 2, Some("stream ended without a status"), *this.server);
                    *this.cx = None;
                }
                Poll::Pending => {}
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
