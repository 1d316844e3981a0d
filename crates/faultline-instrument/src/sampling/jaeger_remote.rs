//! A sampler that follows the strategies a Jaeger sampling endpoint (`GET /?service=`) serves.
//!
//! Strategies are polled on a background thread; sampling decisions only read the last good
//! strategy, so a slow or dead endpoint never slows a request. Until the first successful poll,
//! and whenever the endpoint has never answered, the configured default sampler decides.

use std::collections::HashMap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use opentelemetry::trace::{Link, SpanKind, TraceId};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{Sampler, SamplingResult, ShouldSample};
use serde::Deserialize;

use super::configured::{ratio_keeps, result, Candidate, Parent};
use super::rate_limited::RateLimitingSampler;
use crate::{Error, TokenBucket};

/// The JSON document a Jaeger sampling endpoint serves.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SamplingStrategyResponse {
    /// `PROBABILISTIC` or `RATE_LIMITING`.
    #[serde(default)]
    pub strategy_type: Option<String>,
    /// Parameters of the probabilistic strategy.
    #[serde(default)]
    pub probabilistic_sampling: Option<ProbabilisticStrategy>,
    /// Parameters of the rate-limiting strategy.
    #[serde(default)]
    pub rate_limiting_sampling: Option<RateLimitingStrategy>,
    /// Per-operation strategies, which take precedence when present.
    #[serde(default)]
    pub operation_sampling: Option<PerOperationStrategies>,
}

/// `probabilisticSampling`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProbabilisticStrategy {
    /// Fraction of traces kept, 0.0 to 1.0.
    pub sampling_rate: f64,
}

/// `rateLimitingSampling`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitingStrategy {
    /// Traces kept per second.
    pub max_traces_per_second: f64,
}

/// `operationSampling`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PerOperationStrategies {
    /// Probability for operations without their own entry.
    #[serde(default)]
    pub default_sampling_probability: f64,
    /// Traces per second every operation keeps even when its probability would keep fewer.
    #[serde(default)]
    pub default_lower_bound_traces_per_second: f64,
    /// Entries for named operations (span names).
    #[serde(default)]
    pub per_operation_strategies: Vec<OperationStrategy>,
}

/// One `perOperationStrategies` entry.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OperationStrategy {
    /// The span name the entry applies to.
    pub operation: String,
    /// Its probability.
    pub probabilistic_sampling: ProbabilisticStrategy,
}

/// A strategy compiled into samplers, swapped atomically on every successful poll.
#[derive(Debug)]
enum Active {
    Default,
    /// A whole-service rate limit.
    RateLimited(RateLimitingSampler),
    /// A whole-service probability.
    Probabilistic(f64),
    PerOperation {
        default: GuaranteedThroughput,
        operations: HashMap<String, GuaranteedThroughput>,
    },
}

/// Jaeger's per-operation sampler: probabilistic, but never below a lower-bound rate.
#[derive(Debug)]
struct GuaranteedThroughput {
    probability: f64,
    lower_bound: Arc<TokenBucket>,
}

impl GuaranteedThroughput {
    fn new(probability: f64, lower_bound_per_sec: f64) -> Self {
        GuaranteedThroughput {
            probability: probability.clamp(0.0, 1.0),
            lower_bound: Arc::new(TokenBucket::new(lower_bound_per_sec, 1.0)),
        }
    }

    fn sample(&self, trace_id: TraceId) -> bool {
        let by_probability = ratio_keeps(self.probability, trace_id);
        // The lower-bound bucket must only be drawn from when probability said no, or it would
        // throttle operations that are already sampled enough.
        by_probability || (self.lower_bound.rate_per_sec() > 0.0 && self.lower_bound.try_acquire())
    }
}

impl Active {
    fn compile(response: &SamplingStrategyResponse) -> Result<Active, &'static str> {
        if let Some(ops) = &response.operation_sampling {
            let operations = ops
                .per_operation_strategies
                .iter()
                .map(|op| {
                    (
                        op.operation.clone(),
                        GuaranteedThroughput::new(
                            op.probabilistic_sampling.sampling_rate,
                            ops.default_lower_bound_traces_per_second,
                        ),
                    )
                })
                .collect();
            return Ok(Active::PerOperation {
                default: GuaranteedThroughput::new(
                    ops.default_sampling_probability,
                    ops.default_lower_bound_traces_per_second,
                ),
                operations,
            });
        }
        match response.strategy_type.as_deref() {
            Some("RATE_LIMITING") => {
                let rate = response
                    .rate_limiting_sampling
                    .as_ref()
                    .ok_or("RATE_LIMITING without rateLimitingSampling")?
                    .max_traces_per_second;
                Ok(Active::RateLimited(RateLimitingSampler::new(rate)))
            }
            Some("PROBABILISTIC") | None => {
                let rate = response
                    .probabilistic_sampling
                    .as_ref()
                    .ok_or("PROBABILISTIC without probabilisticSampling")?
                    .sampling_rate;
                Ok(Active::Probabilistic(rate.clamp(0.0, 1.0)))
            }
            Some(_) => Err("unknown strategyType"),
        }
    }
}

#[derive(Debug)]
struct Shared {
    default: Box<dyn ShouldSample>,
    active: RwLock<Active>,
    last_error: RwLock<Option<String>>,
    // Dropping the sender (with the last sampler clone) stops the poller at once.
    _stop: mpsc::Sender<()>,
}

/// Applies the strategies served by a Jaeger sampling endpoint.
///
/// ```no_run
/// use std::time::Duration;
/// use faultline_instrument::sampling::JaegerRemoteSampler;
/// use opentelemetry_sdk::trace::Sampler;
///
/// let sampler = JaegerRemoteSampler::builder("order-service")
///     .endpoint("http://localhost:5778")
///     .poll_interval(Duration::from_secs(60))
///     .default_sampler(Sampler::TraceIdRatioBased(0.001))
///     .build()?;
/// # Ok::<(), faultline_instrument::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct JaegerRemoteSampler {
    shared: Arc<Shared>,
}

/// Configures a [`JaegerRemoteSampler`].
#[derive(Debug)]
pub struct JaegerRemoteSamplerBuilder {
    service: String,
    endpoint: String,
    interval: Duration,
    default: Box<dyn ShouldSample>,
}

impl JaegerRemoteSampler {
    /// Starts configuring a sampler for `service`, polling `http://localhost:5778` every minute.
    pub fn builder(service: impl Into<String>) -> JaegerRemoteSamplerBuilder {
        JaegerRemoteSamplerBuilder {
            service: service.into(),
            endpoint: "http://localhost:5778".to_owned(),
            interval: Duration::from_secs(60),
            // The OpenTelemetry specification's initial rate for jaeger_remote.
            default: Box::new(Sampler::TraceIdRatioBased(0.001)),
        }
    }

    /// Whether a strategy from the endpoint is in force (rather than the default sampler).
    pub fn has_remote_strategy(&self) -> bool {
        self.shared
            .active
            .read()
            .map(|a| !matches!(*a, Active::Default))
            .unwrap_or(false)
    }

    /// The error of the last failed poll, if the last poll failed.
    pub fn last_error(&self) -> Option<String> {
        self.shared.last_error.read().ok().and_then(|e| e.clone())
    }

    /// Replaces the active strategy; used by the poller and useful for tests.
    pub fn apply(&self, response: &SamplingStrategyResponse) -> Result<(), Error> {
        let active = Active::compile(response).map_err(|reason| Error::InvalidConfig {
            name: "sampling strategy",
            value: format!("{response:?}"),
            reason,
        })?;
        if let Ok(mut slot) = self.shared.active.write() {
            *slot = active;
        }
        Ok(())
    }
}

impl JaegerRemoteSamplerBuilder {
    /// Base URL of the sampling endpoint; `/?service=` is appended.
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = endpoint.into();
        self
    }

    /// Time between polls.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Decides before the first successful poll and while the endpoint never answered.
    pub fn default_sampler(mut self, sampler: impl ShouldSample + 'static) -> Self {
        self.default = Box::new(sampler);
        self
    }

    /// Starts the poller and returns the sampler.
    pub fn build(self) -> Result<JaegerRemoteSampler, Error> {
        let (stop_tx, stop_rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            default: self.default,
            active: RwLock::new(Active::Default),
            last_error: RwLock::new(None),
            _stop: stop_tx,
        });
        let weak = Arc::downgrade(&shared);
        let url = format!(
            "{}/?service={}",
            self.endpoint.trim_end_matches('/'),
            encode_query(&self.service)
        );
        std::thread::Builder::new()
            .name("faultline-sampling-poll".to_owned())
            .spawn(move || poll_loop(&url, self.interval, &weak, &stop_rx))
            .map_err(Error::Worker)?;
        Ok(JaegerRemoteSampler { shared })
    }
}

fn encode_query(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn poll_loop(url: &str, interval: Duration, shared: &Weak<Shared>, stop: &mpsc::Receiver<()>) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    loop {
        let result = runtime.block_on(fetch(&client, url));
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let sampler = JaegerRemoteSampler { shared };
        let outcome =
            result.and_then(|response| sampler.apply(&response).map_err(|e| e.to_string()));
        if let Ok(mut last_error) = sampler.shared.last_error.write() {
            // On failure the last good strategy stays in force; only the error is recorded.
            *last_error = outcome.err();
        }
        drop(sampler);
        match stop.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => continue,
            _ => return,
        }
    }
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<SamplingStrategyResponse, String> {
    let response = client.get(url).send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("sampling endpoint answered {}", response.status()));
    }
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    serde_json::from_slice(&body).map_err(|e| format!("bad strategy document: {e}"))
}

impl JaegerRemoteSampler {
    /// The decision for `c`: the default sampler's until a strategy arrived, then the strategy's.
    pub(crate) fn decide(&self, c: &Candidate<'_>) -> SamplingResult {
        let Ok(active) = self.shared.active.read() else {
            return c.parent.ask(self.shared.default.as_ref(), c);
        };
        let keep = match &*active {
            Active::Default => return c.parent.ask(self.shared.default.as_ref(), c),
            Active::RateLimited(sampler) => sampler.admit(),
            Active::Probabilistic(ratio) => ratio_keeps(*ratio, c.trace_id),
            Active::PerOperation {
                default,
                operations,
            } => operations.get(c.name).unwrap_or(default).sample(c.trace_id),
        };
        result(keep, &c.parent)
    }
}

impl ShouldSample for JaegerRemoteSampler {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        self.decide(&Candidate {
            parent: Parent::context(parent_context),
            trace_id,
            name,
            kind: span_kind,
            attributes,
            links,
        })
    }
}
