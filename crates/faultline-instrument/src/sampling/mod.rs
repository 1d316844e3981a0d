//! Samplers: the specification's built-ins, a rate-limited sampler and a Jaeger remote sampler,
//! chosen by `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`.

mod configured;
mod jaeger_remote;
mod rate_limited;

use std::time::Duration;

use opentelemetry_sdk::trace::{Sampler, ShouldSample};

pub(crate) use configured::{Candidate, ConfiguredSampler, Handoff, HandoffIdGenerator, Parent};

pub use jaeger_remote::{
    JaegerRemoteSampler, JaegerRemoteSamplerBuilder, OperationStrategy, PerOperationStrategies,
    ProbabilisticStrategy, RateLimitingStrategy, SamplingStrategyResponse,
};
pub use rate_limited::RateLimitingSampler;

use crate::Error;

/// A sampler chosen by configuration.
#[derive(Clone, Debug, PartialEq)]
pub enum SamplerConfig {
    /// Keep everything.
    AlwaysOn,
    /// Keep nothing.
    AlwaysOff,
    /// Keep this fraction of traces, decided from the trace id.
    TraceIdRatio(f64),
    /// Keep at most this many traces per second.
    RateLimited(f64),
    /// Follow a Jaeger sampling endpoint.
    JaegerRemote {
        /// Base URL of the endpoint.
        endpoint: String,
        /// Time between polls.
        poll_interval: Duration,
        /// Probability used until the endpoint answers.
        initial_sampling_rate: f64,
    },
    /// Follow a sampled (or unsampled) parent; use the inner config for roots.
    ParentBased(Box<SamplerConfig>),
}

impl SamplerConfig {
    /// Whether the sampler's decision depends on the span name (Jaeger per-operation
    /// strategies); the server layer then names spans fully before starting them.
    pub fn reads_span_name(&self) -> bool {
        match self {
            SamplerConfig::JaegerRemote { .. } => true,
            SamplerConfig::ParentBased(root) => root.reads_span_name(),
            _ => false,
        }
    }

    /// Parses `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` values.
    ///
    /// Besides the specification's names this accepts `ratelimiting` and
    /// `parentbased_ratelimiting`, whose argument is traces per second.
    ///
    /// ```
    /// use faultline_instrument::sampling::SamplerConfig;
    /// let config = SamplerConfig::parse("parentbased_traceidratio", Some("0.25")).unwrap();
    /// assert_eq!(config, SamplerConfig::ParentBased(Box::new(SamplerConfig::TraceIdRatio(0.25))));
    /// ```
    pub fn parse(name: &str, arg: Option<&str>) -> Result<SamplerConfig, Error> {
        let arg = arg.map(str::trim).filter(|a| !a.is_empty());
        let (parent_based, base) = match name.trim().strip_prefix("parentbased_") {
            Some(base) => (true, base),
            None => (false, name.trim()),
        };
        let config = match base {
            "always_on" => SamplerConfig::AlwaysOn,
            "always_off" => SamplerConfig::AlwaysOff,
            "traceidratio" => SamplerConfig::TraceIdRatio(parse_ratio(arg)?),
            "ratelimiting" => SamplerConfig::RateLimited(parse_rate(arg)?),
            "jaeger_remote" => parse_jaeger_remote(arg)?,
            _ => {
                return Err(Error::InvalidConfig {
                    name: "OTEL_TRACES_SAMPLER",
                    value: name.to_owned(),
                    reason: "unknown sampler",
                })
            }
        };
        Ok(if parent_based {
            SamplerConfig::ParentBased(Box::new(config))
        } else {
            config
        })
    }

    /// The configuration from the environment; `parentbased_always_on` when unset, as the spec says.
    pub fn from_env() -> Result<SamplerConfig, Error> {
        match std::env::var("OTEL_TRACES_SAMPLER") {
            Ok(name) if !name.trim().is_empty() => {
                let arg = std::env::var("OTEL_TRACES_SAMPLER_ARG").ok();
                SamplerConfig::parse(&name, arg.as_deref())
            }
            _ => Ok(SamplerConfig::ParentBased(Box::new(
                SamplerConfig::AlwaysOn,
            ))),
        }
    }

    /// Builds the sampler; a Jaeger remote sampler starts polling for `service`.
    pub fn build(&self, service: &str) -> Result<Box<dyn ShouldSample>, Error> {
        Ok(Box::new(self.build_configured(service)?))
    }

    /// The sampler as one tree that the server layer can also ask before any span exists.
    pub(crate) fn build_configured(&self, service: &str) -> Result<ConfiguredSampler, Error> {
        Ok(ConfiguredSampler::new(self.node(service)?))
    }

    fn node(&self, service: &str) -> Result<configured::Node, Error> {
        use configured::Node;
        Ok(match self {
            SamplerConfig::AlwaysOn => Node::AlwaysOn,
            SamplerConfig::AlwaysOff => Node::AlwaysOff,
            SamplerConfig::TraceIdRatio(ratio) => Node::TraceIdRatio(*ratio),
            SamplerConfig::RateLimited(rate) => Node::RateLimited(RateLimitingSampler::new(*rate)),
            SamplerConfig::JaegerRemote {
                endpoint,
                poll_interval,
                initial_sampling_rate,
            } => Node::JaegerRemote(
                JaegerRemoteSampler::builder(service)
                    .endpoint(endpoint.clone())
                    .poll_interval(*poll_interval)
                    .default_sampler(Sampler::TraceIdRatioBased(*initial_sampling_rate))
                    .build()?,
            ),
            SamplerConfig::ParentBased(root) => Node::ParentBased(Box::new(root.node(service)?)),
        })
    }
}

fn parse_ratio(arg: Option<&str>) -> Result<f64, Error> {
    let Some(arg) = arg else { return Ok(1.0) };
    match arg.parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err(Error::InvalidConfig {
            name: "OTEL_TRACES_SAMPLER_ARG",
            value: arg.to_owned(),
            reason: "a ratio must be a number from 0 to 1",
        }),
    }
}

fn parse_rate(arg: Option<&str>) -> Result<f64, Error> {
    let Some(arg) = arg else { return Ok(1.0) };
    match arg.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate >= 0.0 => Ok(rate),
        _ => Err(Error::InvalidConfig {
            name: "OTEL_TRACES_SAMPLER_ARG",
            value: arg.to_owned(),
            reason: "a rate must be a non-negative number of traces per second",
        }),
    }
}

/// `endpoint=http://host:5778,pollingIntervalMs=5000,initialSamplingRate=0.25`.
fn parse_jaeger_remote(arg: Option<&str>) -> Result<SamplerConfig, Error> {
    let mut endpoint = "http://localhost:5778".to_owned();
    let mut poll_interval = Duration::from_secs(60);
    let mut initial_sampling_rate = 0.001;
    let invalid = |reason| Error::InvalidConfig {
        name: "OTEL_TRACES_SAMPLER_ARG",
        value: arg.unwrap_or_default().to_owned(),
        reason,
    };
    for pair in arg
        .unwrap_or_default()
        .split(',')
        .filter(|p| !p.trim().is_empty())
    {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| invalid("entries must be key=value"))?;
        match key.trim() {
            "endpoint" => endpoint = value.trim().to_owned(),
            "pollingIntervalMs" => {
                let ms: u64 = value
                    .trim()
                    .parse()
                    .map_err(|_| invalid("pollingIntervalMs must be an integer"))?;
                poll_interval = Duration::from_millis(ms.max(1));
            }
            "initialSamplingRate" => initial_sampling_rate = parse_ratio(Some(value.trim()))?,
            _ => {
                return Err(invalid(
                    "keys are endpoint, pollingIntervalMs, initialSamplingRate",
                ))
            }
        }
    }
    Ok(SamplerConfig::JaegerRemote {
        endpoint,
        poll_interval,
        initial_sampling_rate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_spec_names_and_arguments() {
        assert_eq!(
            SamplerConfig::parse("always_off", None).expect("valid"),
            SamplerConfig::AlwaysOff
        );
        assert_eq!(
            SamplerConfig::parse("traceidratio", Some("0.5")).expect("valid"),
            SamplerConfig::TraceIdRatio(0.5)
        );
        assert_eq!(
            SamplerConfig::parse(
                "parentbased_jaeger_remote",
                Some("endpoint=http://h:1,pollingIntervalMs=250,initialSamplingRate=0.5")
            )
            .expect("valid"),
            SamplerConfig::ParentBased(Box::new(SamplerConfig::JaegerRemote {
                endpoint: "http://h:1".to_owned(),
                poll_interval: Duration::from_millis(250),
                initial_sampling_rate: 0.5,
            }))
        );
    }

    #[test]
    fn rejects_bad_values() {
        assert!(SamplerConfig::parse("sometimes", None).is_err());
        assert!(SamplerConfig::parse("traceidratio", Some("1.5")).is_err());
        assert!(SamplerConfig::parse("traceidratio", Some("NaN")).is_err());
        assert!(SamplerConfig::parse("ratelimiting", Some("-1")).is_err());
        assert!(SamplerConfig::parse("jaeger_remote", Some("port")).is_err());
    }
}
