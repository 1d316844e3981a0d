//! Scripted fault timelines for `faultline demo --scenario NAME`: the same experiment, repeatable,
//! with its ground truth in the fault ledger.

use std::time::Duration;

use tokio::sync::watch;

use crate::fault::{FaultKind, FaultRequest};
use crate::shop::ServiceInfo;
use crate::DemoError;

/// One injection at an offset from the scenario's start.
#[derive(Clone, Debug)]
pub struct Step {
    /// When, from the start.
    pub at: Duration,
    /// Into which service.
    pub service: &'static str,
    /// What (with its duration).
    pub request: FaultRequest,
}

/// A named timeline.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Its name.
    pub name: &'static str,
    /// One sentence for `--help` and the demo's output.
    pub description: &'static str,
    /// The injections, in time order.
    pub steps: Vec<Step>,
}

fn step(at_secs: u64, service: &'static str, fault: FaultKind, secs: u64) -> Step {
    Step {
        at: Duration::from_secs(at_secs),
        service,
        request: FaultRequest::new(fault).lasting(Duration::from_secs(secs)),
    }
}

/// Scenario names with their descriptions.
pub fn catalogue() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "tour",
            description: "every fault type in turn, 45s each with 30s of calm between",
            steps: vec![
                step(
                    30,
                    "payment",
                    FaultKind::Latency {
                        fixed_ms: 300,
                        jitter_ms: 100,
                    },
                    45,
                ),
                step(105, "inventory", FaultKind::Errors { rate: 0.3 }, 45),
                step(
                    180,
                    "inventory",
                    FaultKind::DbPoolExhaustion { connections: 0 },
                    45,
                ),
                step(255, "inventory", FaultKind::SlowQuery { delay_ms: 400 }, 45),
                step(330, "payment", FaultKind::ThirdPartyTimeout, 45),
                step(405, "user", FaultKind::Down, 45),
                step(480, "order", FaultKind::CpuSaturation { burn_ms: 30 }, 45),
                step(555, "notification", FaultKind::QueueStall, 45),
            ],
        },
        Scenario {
            name: "db-pool",
            description: "inventory's database pool is exhausted for 60s after 20s",
            steps: vec![step(
                20,
                "inventory",
                FaultKind::DbPoolExhaustion { connections: 0 },
                60,
            )],
        },
        Scenario {
            name: "payment-provider-timeout",
            description: "the third-party payment provider stops answering for 60s after 20s",
            steps: vec![step(20, "payment", FaultKind::ThirdPartyTimeout, 60)],
        },
        Scenario {
            name: "slow-checkout",
            description: "order's /orders route gets 400ms±200ms of latency for 60s after 20s",
            steps: vec![Step {
                at: Duration::from_secs(20),
                service: "order",
                request: FaultRequest::new(FaultKind::Latency {
                    fixed_ms: 400,
                    jitter_ms: 200,
                })
                .on_route("/orders")
                .lasting(Duration::from_secs(60)),
            }],
        },
    ]
}

/// The scenario called `name`.
pub fn find(name: &str) -> Result<Scenario, DemoError> {
    let all = catalogue();
    let names: Vec<&str> = all.iter().map(|s| s.name).collect();
    all.into_iter().find(|s| s.name == name).ok_or_else(|| {
        DemoError::Config(format!(
            "unknown scenario {name:?}; known: {}",
            names.join(", ")
        ))
    })
}

/// Plays `scenario` against `services` until its last step was injected or `stop` turns true.
pub async fn play(
    scenario: &Scenario,
    services: &[ServiceInfo],
    mut stop: watch::Receiver<bool>,
) -> Result<(), DemoError> {
    let start = tokio::time::Instant::now();
    for step in &scenario.steps {
        tokio::select! {
            _ = tokio::time::sleep_until(start + step.at) => {}
            _ = stop.wait_for(|s| *s) => return Ok(()),
        }
        let service = services
            .iter()
            .find(|s| s.name == step.service)
            .ok_or_else(|| {
                DemoError::Config(format!("scenario names unknown service {}", step.service))
            })?;
        service.faults.inject(step.request.clone())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_is_valid_and_in_time_order() {
        for scenario in catalogue() {
            let mut last = Duration::ZERO;
            for step in &scenario.steps {
                step.request.validate().expect("valid request");
                assert!(crate::shop::SERVICES.contains(&step.service));
                assert!(step.at >= last, "{} is out of order", scenario.name);
                last = step.at;
            }
        }
        assert!(find("tour").is_ok());
        assert!(find("nope").is_err());
    }
}
