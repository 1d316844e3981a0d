//! Fault injection: what a fault is, who may receive which, and the ground-truth record of each
//! injection.
//!
//! A [`FaultRegistry`] belongs to one service and answers the questions the service's code asks
//! on its request path ("add latency to this route?", "fail this call?"); the [`FaultLedger`]
//! is shared by all services and keeps every injection with its start, end and target, so an
//! experiment can compare what a root-cause analysis found with what really happened.

mod admin;
mod effects;
mod registry;

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use admin::{admin_router, AdminClient, FaultListing};
pub use effects::{inject_http_faults, CpuCore, RequestFaults};
pub use registry::{FaultEvent, FaultLedger, FaultRegistry};

/// Milliseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixMillis(pub u64);

impl UnixMillis {
    /// The current wall-clock time.
    pub fn now() -> Self {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        UnixMillis(u64::try_from(millis).unwrap_or(u64::MAX))
    }
}

/// One kind of fault and its parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum FaultKind {
    /// Added latency: `fixed_ms` plus a uniformly random `0..=jitter_ms`.
    Latency {
        /// Always added.
        fixed_ms: u64,
        /// Upper bound of the random part.
        #[serde(default)]
        jitter_ms: u64,
    },
    /// A fraction of requests (or calls) fail: HTTP 500, or gRPC UNAVAILABLE.
    Errors {
        /// Probability in `0..=1`.
        rate: f64,
    },
    /// Connections of the database pool are taken and held, so queries wait for one.
    DbPoolExhaustion {
        /// How many connections to hold; 0 means all of them.
        #[serde(default)]
        connections: u32,
    },
    /// Every query holds its connection this much longer.
    SlowQuery {
        /// Extra time per query.
        delay_ms: u64,
    },
    /// The third-party payment provider stops answering, so calls to it time out.
    ThirdPartyTimeout,
    /// The service's listener closes: callers get "connection refused".
    Down,
    /// Each request needs this much CPU time on the service's single simulated core.
    CpuSaturation {
        /// CPU burnt per request.
        burn_ms: u64,
    },
    /// The queue consumer stops taking messages; they pile up until the fault ends.
    QueueStall,
}

impl FaultKind {
    /// The kebab-case name used on the command line and in JSON.
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::Latency { .. } => "latency",
            FaultKind::Errors { .. } => "errors",
            FaultKind::DbPoolExhaustion { .. } => "db-pool-exhaustion",
            FaultKind::SlowQuery { .. } => "slow-query",
            FaultKind::ThirdPartyTimeout => "third-party-timeout",
            FaultKind::Down => "down",
            FaultKind::CpuSaturation { .. } => "cpu-saturation",
            FaultKind::QueueStall => "queue-stall",
        }
    }

    /// Refuses parameters that make no sense.
    pub fn validate(&self) -> Result<(), FaultError> {
        const HOUR_MS: u64 = 3_600_000;
        let bad = |reason: &str| Err(FaultError::Invalid(format!("{}: {reason}", self.name())));
        match *self {
            FaultKind::Latency {
                fixed_ms,
                jitter_ms,
            } if fixed_ms.saturating_add(jitter_ms) > HOUR_MS => bad("latency above one hour"),
            FaultKind::Latency {
                fixed_ms: 0,
                jitter_ms: 0,
            } => bad("latency of zero; give --latency and/or --jitter"),
            FaultKind::Errors { rate } if !(rate > 0.0 && rate <= 1.0) => {
                bad("rate must be in (0, 1]")
            }
            FaultKind::SlowQuery { delay_ms } if delay_ms == 0 || delay_ms > HOUR_MS => {
                bad("delay must be between 1ms and one hour")
            }
            FaultKind::CpuSaturation { burn_ms } if burn_ms == 0 || burn_ms > 10_000 => {
                bad("burn must be between 1ms and 10s per request")
            }
            FaultKind::DbPoolExhaustion { connections } if connections > 1024 => {
                bad("more connections than any pool has")
            }
            _ => Ok(()),
        }
    }
}

/// A request to inject one fault, as sent to a service's admin endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRequest {
    /// What to inject.
    pub fault: FaultKind,
    /// Only requests whose path starts with this (latency, errors, cpu-saturation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Only calls to this dependency (latency, errors), e.g. `payment` or `db`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependency: Option<String>,
    /// Ends by itself after this long; without it the fault lasts until cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

impl FaultRequest {
    /// A fault on the whole service, until cleared.
    pub fn new(fault: FaultKind) -> Self {
        FaultRequest {
            fault,
            route: None,
            dependency: None,
            duration_ms: None,
        }
    }

    /// The same request ending by itself after `duration`.
    pub fn lasting(mut self, duration: Duration) -> Self {
        self.duration_ms = Some(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// The same request limited to calls to `dependency`.
    pub fn on_dependency(mut self, dependency: impl Into<String>) -> Self {
        self.dependency = Some(dependency.into());
        self
    }

    /// The same request limited to requests whose path starts with `route`.
    pub fn on_route(mut self, route: impl Into<String>) -> Self {
        self.route = Some(route.into());
        self
    }

    /// Checks parameters and that route/dependency are used only where they mean something.
    pub fn validate(&self) -> Result<(), FaultError> {
        self.fault.validate()?;
        let targeted = matches!(
            self.fault,
            FaultKind::Latency { .. } | FaultKind::Errors { .. } | FaultKind::CpuSaturation { .. }
        );
        if !targeted && (self.route.is_some() || self.dependency.is_some()) {
            return Err(FaultError::Invalid(format!(
                "{} applies to the whole service; drop --route/--dependency",
                self.fault.name()
            )));
        }
        if self.route.is_some() && self.dependency.is_some() {
            return Err(FaultError::Invalid(
                "give either --route or --dependency, not both".into(),
            ));
        }
        if matches!(self.fault, FaultKind::CpuSaturation { .. }) && self.dependency.is_some() {
            return Err(FaultError::Invalid(
                "cpu-saturation applies to requests, not dependencies; use --route".into(),
            ));
        }
        if let Some(route) = &self.route {
            if !route.starts_with('/') || route.len() > 256 {
                return Err(FaultError::Invalid(format!(
                    "route {route:?} must start with '/' and be at most 256 bytes"
                )));
            }
        }
        if let Some(dep) = &self.dependency {
            if dep.is_empty() || dep.len() > 64 {
                return Err(FaultError::Invalid(
                    "dependency must be 1 to 64 bytes".into(),
                ));
            }
        }
        if self.duration_ms == Some(0) {
            return Err(FaultError::Invalid("duration must be positive".into()));
        }
        Ok(())
    }
}

/// One injection, as recorded in the ledger: the ground truth of an experiment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    /// Unique within the process.
    pub id: u64,
    /// The service the fault was injected into.
    pub service: String,
    /// What was injected and where.
    pub request: FaultRequest,
    /// When it started.
    pub started_at: UnixMillis,
    /// When it ended, if it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<UnixMillis>,
    /// `cleared` or `expired`, once ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
}

impl fmt::Display for FaultRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{} {} {}",
            self.id,
            self.service,
            self.request.fault.name()
        )?;
        match &self.request.fault {
            FaultKind::Latency {
                fixed_ms,
                jitter_ms,
            } => write!(f, " {fixed_ms}ms±{jitter_ms}ms")?,
            FaultKind::Errors { rate } => write!(f, " rate={rate}")?,
            FaultKind::DbPoolExhaustion { connections: 0 } => write!(f, " all connections")?,
            FaultKind::DbPoolExhaustion { connections } => write!(f, " {connections} connections")?,
            FaultKind::SlowQuery { delay_ms } => write!(f, " +{delay_ms}ms")?,
            FaultKind::CpuSaturation { burn_ms } => write!(f, " {burn_ms}ms/request")?,
            FaultKind::ThirdPartyTimeout | FaultKind::Down | FaultKind::QueueStall => {}
        }
        if let Some(route) = &self.request.route {
            write!(f, " route={route}")?;
        }
        if let Some(dep) = &self.request.dependency {
            write!(f, " dependency={dep}")?;
        }
        if let Some(ms) = self.request.duration_ms {
            write!(
                f,
                " for {}",
                humantime::format_duration(Duration::from_millis(ms))
            )?;
        }
        Ok(())
    }
}

/// Why a fault request was refused.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    /// The parameters are invalid.
    #[error("invalid fault: {0}")]
    Invalid(String),
    /// The service has nothing this fault could act on.
    #[error("{service} does not support {fault}; it supports {supported}")]
    Unsupported {
        /// The service.
        service: String,
        /// The fault.
        fault: &'static str,
        /// What it does support.
        supported: String,
    },
    /// No active fault has this id.
    #[error("no active fault #{0}")]
    NotFound(u64),
}

/// Parses a command-line fault kind with its parameters.
pub fn parse_kind(
    name: &str,
    latency: Option<Duration>,
    jitter: Option<Duration>,
    rate: Option<f64>,
    connections: Option<u32>,
    burn: Option<Duration>,
) -> Result<FaultKind, FaultError> {
    let ms = |d: Option<Duration>| d.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let kind = match name {
        "latency" => FaultKind::Latency {
            fixed_ms: ms(latency).unwrap_or(if jitter.is_some() { 0 } else { 500 }),
            jitter_ms: ms(jitter).unwrap_or(0),
        },
        "errors" => FaultKind::Errors {
            rate: rate.unwrap_or(0.5),
        },
        "db-pool-exhaustion" => FaultKind::DbPoolExhaustion {
            connections: connections.unwrap_or(0),
        },
        "slow-query" => FaultKind::SlowQuery {
            delay_ms: ms(latency).unwrap_or(300),
        },
        "third-party-timeout" => FaultKind::ThirdPartyTimeout,
        "down" => FaultKind::Down,
        "cpu-saturation" => FaultKind::CpuSaturation {
            burn_ms: ms(burn).unwrap_or(25),
        },
        "queue-stall" => FaultKind::QueueStall,
        other => {
            return Err(FaultError::Invalid(format!(
                "unknown fault {other:?}; expected one of {}",
                ALL_FAULTS.join(", ")
            )))
        }
    };
    kind.validate()?;
    Ok(kind)
}

/// Every fault name, in the order `--help` lists them.
pub const ALL_FAULTS: [&str; 8] = [
    "latency",
    "errors",
    "db-pool-exhaustion",
    "slow-query",
    "third-party-timeout",
    "down",
    "cpu-saturation",
    "queue-stall",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_through_json() {
        let request = FaultRequest::new(FaultKind::Latency {
            fixed_ms: 200,
            jitter_ms: 50,
        })
        .on_route("/api/checkout")
        .lasting(Duration::from_secs(120));
        let json = serde_json::to_string(&request).expect("serialise");
        assert_eq!(
            json,
            r#"{"fault":{"kind":"latency","fixed_ms":200,"jitter_ms":50},"route":"/api/checkout","duration_ms":120000}"#
        );
        let back: FaultRequest = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, request);
    }

    #[test]
    fn unknown_fields_and_kinds_are_refused() {
        assert!(
            serde_json::from_str::<FaultRequest>(r#"{"fault":{"kind":"down"},"x":1}"#).is_err()
        );
        assert!(serde_json::from_str::<FaultRequest>(r#"{"fault":{"kind":"meteor"}}"#).is_err());
        assert!(parse_kind("meteor", None, None, None, None, None).is_err());
    }

    #[test]
    fn nonsense_parameters_are_refused() {
        assert!(FaultKind::Errors { rate: 1.5 }.validate().is_err());
        assert!(FaultKind::Errors { rate: f64::NAN }.validate().is_err());
        assert!(FaultKind::Latency {
            fixed_ms: 0,
            jitter_ms: 0
        }
        .validate()
        .is_err());
        assert!(FaultRequest::new(FaultKind::Down)
            .on_route("/x")
            .validate()
            .is_err());
        assert!(FaultRequest::new(FaultKind::Errors { rate: 0.5 })
            .on_route("no-slash")
            .validate()
            .is_err());
        assert!(FaultRequest::new(FaultKind::Errors { rate: 0.5 })
            .on_dependency("payment")
            .validate()
            .is_ok());
    }

    #[test]
    fn command_line_defaults_are_usable() {
        let kind = parse_kind(
            "latency",
            None,
            Some(Duration::from_millis(80)),
            None,
            None,
            None,
        )
        .expect("valid");
        assert_eq!(
            kind,
            FaultKind::Latency {
                fixed_ms: 0,
                jitter_ms: 80
            }
        );
        for name in ALL_FAULTS {
            assert_eq!(
                parse_kind(name, None, None, None, None, None)
                    .expect("defaults are valid")
                    .name(),
                name
            );
        }
    }
}
