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
    /// Attribute keys whose values split the RED series on `/metrics` (span attribute first,
    /// then resource attribute; `""` when a span has neither), e.g.
    /// `http.response.status_code` or `deployment.environment`. Each becomes a label named
    /// after the key with every character outside `[A-Za-z0-9_]` replaced by `_`. Dimensioned
    /// series count against `max_series`. At most 10.
    pub red_dimensions: Vec<String>,
    /// Anomaly detection, incidents and root-cause ranking.
    pub detection: DetectionConfig,
}

/// How anomalies are detected, when incidents open and resolve, and how much evidence the
/// root-cause ranking may read. The defaults keep false alarms rare under steady demo load and
/// detect a fault within 30 s at 10 s slots.
#[derive(Clone, Debug)]
pub struct DetectionConfig {
    /// How often the detector compares the recent window with the baselines.
    pub tick: Duration,
    /// Slots in the recent window: the slot in progress plus the ones before it.
    pub recent_slots: u64,
    /// Weight of each closed slot in the exponentially weighted baselines (0..1); the first
    /// `1/alpha` slots are averaged equally so that a young baseline is not one slot's noise.
    pub baseline_alpha: f64,
    /// Closed slots a series needs in its baseline before it can raise an anomaly.
    pub warmup_slots: u32,
    /// Calls the recent window needs before latency or errors are judged.
    pub min_calls: u64,
    /// Latency anomaly: the recent mean must exceed the baseline mean by this factor...
    pub latency_ratio: f64,
    /// ...and by at least this much...
    pub latency_min_delta: Duration,
    /// ...and by this many standard deviations of the baseline (floored at 10% of it).
    pub z_threshold: f64,
    /// Error anomaly: the recent error ratio must exceed the baseline ratio by this much (and
    /// be twice it, and `z_threshold` binomial standard deviations above it).
    pub error_ratio_min_delta: f64,
    /// Throughput anomaly: the recent rate fell below this fraction of the baseline rate...
    pub throughput_drop_ratio: f64,
    /// ...whose baseline rate is at least this many calls per second.
    pub throughput_min_rate: f64,
    /// Consecutive ticks a deviation must persist before it counts.
    pub confirm_ticks: u32,
    /// An incident resolves once no symptom has deviated for this long.
    pub resolve_hold: Duration,
    /// Incidents kept (open and resolved); the oldest resolved ones are dropped and counted.
    pub max_incidents: usize,
    /// Symptoms kept per incident; later ones are counted.
    pub max_symptoms: usize,
    /// Traces the ranking reads per pass (anomalous and baseline together).
    pub max_rca_traces: usize,
    /// Time one ranking pass may spend reading the store.
    pub rca_budget: Duration,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(5),
            recent_slots: 2,
            baseline_alpha: 0.05,
            warmup_slots: 6,
            min_calls: 10,
            latency_ratio: 1.5,
            latency_min_delta: Duration::from_millis(10),
            z_threshold: 4.0,
            error_ratio_min_delta: 0.05,
            throughput_drop_ratio: 0.3,
            throughput_min_rate: 0.5,
            confirm_ticks: 2,
            resolve_hold: Duration::from_secs(30),
            max_incidents: 100,
            max_symptoms: 50,
            max_rca_traces: 160,
            rca_budget: Duration::from_secs(3),
        }
    }
}

/// Labels `/metrics` already uses on RED series; a dimension may not take them.
const RESERVED_LABELS: [&str; 4] = ["service", "span_name", "span_kind", "status_code"];

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
            red_dimensions: Vec::new(),
            detection: DetectionConfig::default(),
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
        let mut labels: Vec<String> = Vec::new();
        for key in &self.red_dimensions {
            let label = crate::exposition::label_name(key);
            if key.is_empty() {
                return bad("red_dimensions", "an attribute key is empty");
            }
            if RESERVED_LABELS.contains(&label.as_str()) || label.starts_with("__") {
                return bad(
                    "red_dimensions",
                    &format!("{key:?} would be the label {label}, which is reserved"),
                );
            }
            if labels.contains(&label) {
                return bad(
                    "red_dimensions",
                    &format!("{key:?} would be the label {label} twice"),
                );
            }
            labels.push(label);
        }
        if labels.len() > 10 {
            return bad("red_dimensions", "at most 10 dimensions");
        }
        let d = &self.detection;
        if d.tick < Duration::from_millis(100) {
            return bad("detection.tick", "must be at least 100ms");
        }
        if d.recent_slots == 0 || d.recent_slots as usize > self.slots {
            return bad("detection.recent_slots", "must be between 1 and slots");
        }
        if !(d.baseline_alpha > 0.0 && d.baseline_alpha <= 1.0) {
            return bad("detection.baseline_alpha", "must be in (0, 1]");
        }
        if !(d.latency_ratio >= 1.0 && d.z_threshold >= 0.0 && d.error_ratio_min_delta >= 0.0) {
            return bad(
                "detection",
                "latency_ratio must be at least 1, z_threshold and error_ratio_min_delta not negative",
            );
        }
        if !(0.0..1.0).contains(&d.throughput_drop_ratio)
            || d.throughput_min_rate.is_nan()
            || d.throughput_min_rate < 0.0
        {
            return bad(
                "detection.throughput_drop_ratio",
                "must be in [0, 1) with a non-negative throughput_min_rate",
            );
        }
        if d.confirm_ticks == 0 || d.max_incidents == 0 || d.max_symptoms == 0 {
            return bad(
                "detection",
                "confirm_ticks, max_incidents and max_symptoms must be positive",
            );
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
