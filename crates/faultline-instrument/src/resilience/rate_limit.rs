//! Rejects requests beyond a token-bucket rate with `429 Too Many Requests`.
//!
//! Unlike `tower::limit::RateLimit`, which makes callers wait, this answers at once: a queue of
//! waiting requests is exactly what an overloaded service must not build.

use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use futures::future::{Either, Ready};
use http::{HeaderValue, Request, Response, StatusCode};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, KeyValue};
use tower::{Layer, Service};

use crate::TokenBucket;

/// Limits the wrapped service to a rate of requests per second.
///
/// ```
/// use faultline_instrument::resilience::RateLimitLayer;
/// use axum::{routing::get, Router};
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hi" }))
///     .layer(RateLimitLayer::new(100.0, 20.0));
/// ```
#[derive(Clone, Debug)]
pub struct RateLimitLayer {
    bucket: Arc<TokenBucket>,
}

impl RateLimitLayer {
    /// `rate_per_sec` requests per second with bursts up to `burst`.
    pub fn new(rate_per_sec: f64, burst: f64) -> Self {
        RateLimitLayer {
            bucket: Arc::new(TokenBucket::new(rate_per_sec, burst)),
        }
    }

    /// Shares an existing bucket, e.g. one limit across several routers.
    pub fn with_bucket(bucket: Arc<TokenBucket>) -> Self {
        RateLimitLayer { bucket }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            bucket: Arc::clone(&self.bucket),
        }
    }
}

/// The service built by [`RateLimitLayer`].
#[derive(Clone, Debug)]
pub struct RateLimitService<S> {
    inner: S,
    bucket: Arc<TokenBucket>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimitService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Response<ResBody>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        if self.bucket.try_acquire() {
            return Either::Left(self.inner.call(request));
        }
        let limit = self.bucket.rate_per_sec();
        let cx = Context::current();
        let span = cx.span();
        span.set_attribute(KeyValue::new("rate_limit.rejected", true));
        span.add_event(
            "rate_limit.rejected",
            vec![KeyValue::new("rate_limit.limit_per_second", limit)],
        );
        let mut response = Response::new(ResBody::default());
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        // One token's worth of waiting, rounded up to whole seconds as Retry-After requires.
        let retry_after = if limit > 0.0 {
            (1.0 / limit).ceil().max(1.0) as u64
        } else {
            60
        };
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from(retry_after));
        Either::Right(futures::future::ready(Ok(response)))
    }
}
