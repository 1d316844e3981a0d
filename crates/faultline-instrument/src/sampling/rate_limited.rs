//! A sampler that keeps at most N traces per second.

use std::sync::Arc;

use opentelemetry::trace::{Link, SpanKind, TraceId};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SamplingResult, ShouldSample};

use super::configured::{result, Parent};

use crate::TokenBucket;

/// Samples root decisions with a token bucket: bursts up to the rate, then N traces per second.
///
/// Wrap it in a parent-based sampler so only trace roots spend tokens.
///
/// ```
/// use faultline_instrument::sampling::RateLimitingSampler;
/// use opentelemetry_sdk::trace::Sampler;
/// let sampler = Sampler::ParentBased(Box::new(RateLimitingSampler::new(5.0)));
/// # let _ = sampler;
/// ```
#[derive(Clone, Debug)]
pub struct RateLimitingSampler {
    bucket: Arc<TokenBucket>,
}

impl RateLimitingSampler {
    /// Keeps up to `traces_per_second` traces each second.
    pub fn new(traces_per_second: f64) -> Self {
        RateLimitingSampler {
            bucket: Arc::new(TokenBucket::new(traces_per_second, traces_per_second)),
        }
    }

    /// Uses an existing bucket, e.g. to test with a controlled clock.
    pub fn with_bucket(bucket: Arc<TokenBucket>) -> Self {
        RateLimitingSampler { bucket }
    }
}

impl RateLimitingSampler {
    /// Whether a token was left: the whole decision, whatever the parent.
    pub(crate) fn admit(&self) -> bool {
        self.bucket.try_acquire()
    }
}

impl ShouldSample for RateLimitingSampler {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        _trace_id: TraceId,
        _name: &str,
        _span_kind: &SpanKind,
        _attributes: &[KeyValue],
        _links: &[Link],
    ) -> SamplingResult {
        result(self.admit(), &Parent::context(parent_context))
    }
}
