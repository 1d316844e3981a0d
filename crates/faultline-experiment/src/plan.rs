//! Which faults to inject, into which services, in which order and when: a seeded random plan.

use std::time::Duration;

use faultline_demo::fault::{FaultKind, ALL_FAULTS};
use serde::{Deserialize, Serialize};

use crate::metrics::Culprit;
use crate::ExperimentError;

/// The services each fault type is injected into by default (every target the demo supports
/// for it, except the gateway's `down`: with the entry point closed no trace is ever started,
/// which is outside of what a tracing backend can localise).
pub fn default_targets(fault: &str) -> &'static [&'static str] {
    match fault {
        "latency" | "errors" => &["inventory", "payment", "user", "order", "gateway"],
        "down" => &["inventory", "payment", "user", "order"],
        "cpu-saturation" => &["inventory", "order", "user"],
        "db-pool-exhaustion" | "slow-query" => &["inventory"],
        "third-party-timeout" => &["payment"],
        "queue-stall" => &["notification"],
        _ => &[],
    }
}

/// The fault each type is injected as: strong enough to matter to customers.
pub fn kind(fault: &str) -> Result<FaultKind, ExperimentError> {
    Ok(match fault {
        "latency" => FaultKind::Latency {
            fixed_ms: 300,
            jitter_ms: 100,
        },
        "errors" => FaultKind::Errors { rate: 0.5 },
        "db-pool-exhaustion" => FaultKind::DbPoolExhaustion { connections: 0 },
        "slow-query" => FaultKind::SlowQuery { delay_ms: 300 },
        "third-party-timeout" => FaultKind::ThirdPartyTimeout,
        "down" => FaultKind::Down,
        "cpu-saturation" => FaultKind::CpuSaturation { burn_ms: 25 },
        "queue-stall" => FaultKind::QueueStall,
        other => {
            return Err(ExperimentError::Config(format!(
                "unknown fault type {other:?}; expected one of {}",
                ALL_FAULTS.join(", ")
            )))
        }
    })
}

/// The culprit of a fault of type `fault` injected into `service`.
pub fn culprit(fault: &str, service: &str) -> Culprit {
    let mut culprit = Culprit::service(service);
    if fault == "third-party-timeout" {
        culprit.aliases.push("payment-provider".into());
    }
    culprit
}

/// One planned injection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedFault {
    /// Fault type (as `faultline demo fault inject` names it).
    pub fault: String,
    /// Service injected into.
    pub service: String,
    /// Quiet time before it.
    pub quiet_before: Duration,
}

/// A plan: faults in order, each after its quiet period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The injections in order.
    pub faults: Vec<PlannedFault>,
}

/// Options a plan is drawn from.
#[derive(Clone, Debug)]
pub struct PlanOptions {
    /// How many faults.
    pub count: usize,
    /// Random seed.
    pub seed: u64,
    /// Fault types to use (empty: all).
    pub types: Vec<String>,
    /// Services to inject into (empty: every default target of each type).
    pub targets: Vec<String>,
    /// Shortest quiet period; each is drawn uniformly from `quiet..=quiet * 1.5`.
    pub quiet: Duration,
}

/// Draws a plan: every (type, target) pair allowed by the options is a candidate; each type
/// appears at least once while `count` allows, the rest are drawn at random, and the order and
/// quiet periods are shuffled by the seed.
pub fn draw(options: &PlanOptions) -> Result<Plan, ExperimentError> {
    let types: Vec<String> = if options.types.is_empty() {
        ALL_FAULTS.iter().map(|s| (*s).to_owned()).collect()
    } else {
        options.types.clone()
    };
    let mut rng = fastrand::Rng::with_seed(options.seed);
    let mut per_type: Vec<(String, Vec<String>)> = Vec::new();
    for fault in &types {
        kind(fault)?;
        let targets: Vec<String> = default_targets(fault)
            .iter()
            .map(|s| (*s).to_owned())
            .filter(|s| options.targets.is_empty() || options.targets.contains(s))
            .collect();
        if !targets.is_empty() {
            per_type.push((fault.clone(), targets));
        }
    }
    if per_type.is_empty() {
        return Err(ExperimentError::Config(
            "no fault type can be injected into the given --targets".into(),
        ));
    }
    if options.count == 0 {
        return Err(ExperimentError::Config(
            "--faults must be at least 1".into(),
        ));
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    // Every type once (in random order when there are more types than faults).
    let mut order: Vec<usize> = (0..per_type.len()).collect();
    rng.shuffle(&mut order);
    for &i in order.iter().take(options.count) {
        let (fault, targets) = &per_type[i];
        pairs.push((fault.clone(), targets[rng.usize(..targets.len())].clone()));
    }
    // The rest: draw types, then targets, preferring pairs not used yet.
    while pairs.len() < options.count {
        let (fault, targets) = &per_type[rng.usize(..per_type.len())];
        let unused: Vec<&String> = targets
            .iter()
            .filter(|t| !pairs.iter().any(|(f, s)| f == fault && s == *t))
            .collect();
        let service = if unused.is_empty() {
            targets[rng.usize(..targets.len())].clone()
        } else {
            unused[rng.usize(..unused.len())].clone()
        };
        pairs.push((fault.clone(), service));
    }
    rng.shuffle(&mut pairs);
    let quiet_ms = u64::try_from(options.quiet.as_millis()).unwrap_or(u64::MAX);
    let faults = pairs
        .into_iter()
        .map(|(fault, service)| PlannedFault {
            fault,
            service,
            quiet_before: Duration::from_millis(quiet_ms.saturating_add(rng.u64(0..=quiet_ms / 2))),
        })
        .collect();
    Ok(Plan { faults })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(count: usize, seed: u64) -> PlanOptions {
        PlanOptions {
            count,
            seed,
            types: vec![],
            targets: vec![],
            quiet: Duration::from_secs(60),
        }
    }

    #[test]
    fn plans_cover_every_type_and_are_reproducible() {
        let plan = draw(&options(14, 7)).expect("plan");
        assert_eq!(plan.faults.len(), 14);
        for fault in ALL_FAULTS {
            assert!(
                plan.faults.iter().any(|f| f.fault == fault),
                "{fault} missing from {plan:?}"
            );
        }
        for f in &plan.faults {
            assert!(default_targets(&f.fault).contains(&f.service.as_str()));
            assert!(f.quiet_before >= Duration::from_secs(60));
            assert!(f.quiet_before <= Duration::from_secs(90));
        }
        assert_eq!(plan, draw(&options(14, 7)).expect("same seed"));
        assert_ne!(plan, draw(&options(14, 8)).expect("other seed"));
    }

    #[test]
    fn types_and_targets_restrict_the_plan() {
        let mut o = options(3, 1);
        o.types = vec!["errors".into(), "slow-query".into()];
        o.targets = vec!["inventory".into()];
        let plan = draw(&o).expect("plan");
        assert!(plan.faults.iter().all(|f| f.service == "inventory"));
        assert!(plan.faults.iter().any(|f| f.fault == "slow-query"));
        o.targets = vec!["notification".into()];
        o.types = vec!["slow-query".into()];
        assert!(draw(&o).is_err());
        o.types = vec!["meteor".into()];
        assert!(draw(&o).is_err());
        assert!(draw(&options(0, 1)).is_err());
    }

    #[test]
    fn every_type_has_a_kind_and_a_culprit() {
        for fault in ALL_FAULTS {
            assert_eq!(kind(fault).expect("known").name(), fault);
            assert!(!default_targets(fault).is_empty());
        }
        assert_eq!(
            culprit("third-party-timeout", "payment").aliases,
            ["payment-provider"]
        );
    }
}
