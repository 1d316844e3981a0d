//! A sampler that keeps at most N traces per second.

use std::sync::Arc;

use opentelemetry::trace::{Link, SpanKind, TraceContextExt, TraceId, TraceState};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SamplingDecision, SamplingResult, ShouldSample};

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
        let decision = if self.bucket.try_acquire() {
            SamplingDecision::RecordAndSample
        } else {
            SamplingDecision::Drop
        };
        SamplingResult {
            decision,
            attributes: Vec::new(),
            trace_state: parent_trace_state(parent_context),
        }
    }
}

pub(crate) fn parent_trace_state(parent_context: Option<&Context>) -> TraceState {
    parent_context
        .map(|cx| cx.span().span_context().trace_state().clone())
        .unwrap_or_default()
}
