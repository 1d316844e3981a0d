//! The response future of [`ClientService`](super::ClientService).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use http::Response;
use opentelemetry::Context;
use pin_project_lite::pin_project;
use tower::BoxError;

use super::{classify_error, finish_error, finish_response};

pin_project! {
    /// Completes the CLIENT span when the answer (or the error) arrives.
    pub struct ClientResponseFuture<F> {
        #[pin]
        inner: F,
        cx: Context,
    }
}

impl<F> ClientResponseFuture<F> {
    pub(super) fn new(inner: F, cx: Context) -> Self {
        ClientResponseFuture { inner, cx }
    }
}

impl<F, B, E> Future for ClientResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<B>, BoxError>;

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let polled = {
            let _attached = this.cx.clone().attach();
            this.inner.poll(task)
        };
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(response)) => {
                finish_response(this.cx, response.status(), response.headers());
                Poll::Ready(Ok(response))
            }
            Poll::Ready(Err(err)) => {
                let err: BoxError = err.into();
                finish_error(this.cx, classify_error(err.as_ref()), err.to_string());
                Poll::Ready(Err(err))
            }
        }
    }
}
