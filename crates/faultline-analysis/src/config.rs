//! Limits and windows of the analysis, validated once when the [`Analyzer`](crate::Analyzer)
//! is built.

use std::time::Duration;

use crate::error::AnalysisError;

/// How much the analysis remembers and for how long. Every limit bounds memory; what falls
/// beyond a limit is counted, never silently dropped.
#[derive(Clone, Debug)]
pub struct AnalysisConfig {
    /// Width of one time slot of the sliding windows.
    pub slot: Duration,
    /// Slots kept per series; `slot × slots` is the longest window the API answers.
    pub slots: usize,
    /// How long a client (or server) half waits for its other half before it expires.
    pub pairing_wait: Duration,
    /// Half-edges waiting for their other half at most; the oldest is expired beyond it.
    pub max_pending_pairs: usize,
    /// Distinct service graph edges at most; later edges count into one overflow edge.
    pub max_edges: usize,
    /// Distinct RED series (service, operation, kind) at most; later ones count into an
    /// overflow series.
    pub max_series: usize,
    /// Distinct service and virtual node names at most.
    pub max_services: usize,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        Self {
            slot: Duration::from_secs(10),
            slots: 60,
            pairing_wait: Duration::from_secs(10),
            max_pending_pairs: 100_000,
            max_edges: 2_000,
            max_series: 10_000,
            max_services: 1_000,
        }
    }
}

impl AnalysisConfig {
    /// Rejects settings that make no sense, naming the setting.
    pub fn validate(&self) -> Result<(), AnalysisError> {
        let bad =
            |name: &str, why: &str| Err(AnalysisError::InvalidConfig(format!("{name}: {why}")));
        if self.slot < Duration::from_millis(100) {
            return bad("slot", "must be at least 100ms");
        }
        if self.slots == 0 || self.slots > 10_000 {
            return bad("slots", "must be between 1 and 10000");
        }
        if self.pairing_wait.is_zero() {
            return bad("pairing_wait", "must be positive");
        }
        for (name, v) in [
            ("max_pending_pairs", self.max_pending_pairs),
            ("max_edges", self.max_edges),
            ("max_series", self.max_series),
            ("max_services", self.max_services),
        ] {
            if v == 0 {
                return bad(name, "must be positive");
            }
        }
        Ok(())
    }

    /// The longest window the API can answer.
    pub fn horizon(&self) -> Duration {
        self.slot * self.slots as u32
    }

    pub(crate) fn slot_nanos(&self) -> u64 {
        self.slot.as_nanos().min(u128::from(u64::MAX)) as u64
    }
}
