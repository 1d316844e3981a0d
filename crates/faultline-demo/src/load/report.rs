//! What a load run measured: per-journey counts, error classes and latency percentiles.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::{Histogram, Journey};

/// Counts of one journey in one window.
#[derive(Clone, Debug, Default)]
pub(super) struct Tally {
    pub(super) latency: Histogram,
    pub(super) ok: u64,
    pub(super) errors: BTreeMap<String, u64>,
}

impl Tally {
    pub(super) fn merge(&mut self, other: &Tally) {
        self.latency.merge(&other.latency);
        self.ok += other.ok;
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
    }
}

/// Latency and errors of one journey (or all).
#[derive(Clone, Debug, Default, Serialize)]
pub struct JourneyReport {
    /// `browse`, ..., or `all`.
    pub journey: String,
    /// Requests finished (answered, failed or dropped).
    pub requests: u64,
    /// 2xx answers.
    pub ok: u64,
    /// Failures by class: `429`, `4xx`, `5xx`, `timeout`, `connect`, `transport`, `dropped`.
    pub errors: BTreeMap<String, u64>,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Maximum, ms.
    pub max_ms: f64,
}

impl JourneyReport {
    pub(super) fn from_tally(journey: &str, tally: &Tally) -> Self {
        let ms = |d: Duration| (d.as_secs_f64() * 1e4).round() / 10.0;
        JourneyReport {
            journey: journey.to_owned(),
            requests: tally.latency.count(),
            ok: tally.ok,
            errors: tally.errors.clone(),
            p50_ms: ms(tally.latency.quantile(0.5)),
            p90_ms: ms(tally.latency.quantile(0.9)),
            p99_ms: ms(tally.latency.quantile(0.99)),
            max_ms: ms(tally.latency.max()),
        }
    }

    /// Failed fraction, 0 when nothing ran.
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            (self.requests - self.ok) as f64 / self.requests as f64
        }
    }
}

/// What a run (or a window of it) measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadReport {
    /// How long it covers, seconds.
    pub seconds: f64,
    /// Finished requests per second.
    pub achieved_rps: f64,
    /// All journeys together.
    pub all: JourneyReport,
    /// Per journey.
    pub journeys: Vec<JourneyReport>,
}

impl LoadReport {
    pub(super) fn from_tallies(tallies: &BTreeMap<Journey, Tally>, elapsed: Duration) -> Self {
        let mut all = Tally::default();
        let journeys = tallies
            .iter()
            .map(|(journey, tally)| {
                all.merge(tally);
                JourneyReport::from_tally(journey.name(), tally)
            })
            .collect();
        let all = JourneyReport::from_tally("all", &all);
        let seconds = elapsed.as_secs_f64();
        LoadReport {
            seconds,
            achieved_rps: if seconds > 0.0 {
                all.requests as f64 / seconds
            } else {
                0.0
            },
            all,
            journeys,
        }
    }

    /// One line: rate, latency percentiles, error rate and the errors by class.
    pub fn summary_line(&self) -> String {
        let errors: Vec<String> = self
            .all
            .errors
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!(
            "{:.1} req/s  p50 {:.1}ms  p90 {:.1}ms  p99 {:.1}ms  max {:.1}ms  errors {:.2}%{}",
            self.achieved_rps,
            self.all.p50_ms,
            self.all.p90_ms,
            self.all.p99_ms,
            self.all.max_ms,
            self.all.error_rate() * 100.0,
            if errors.is_empty() {
                String::new()
            } else {
                format!(" ({})", errors.join(" "))
            }
        )
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<10} {:>9} {:>8} {:>9} {:>9} {:>9} {:>9}  errors",
            "journey", "requests", "error %", "p50 ms", "p90 ms", "p99 ms", "max ms"
        )?;
        for j in self.journeys.iter().chain(std::iter::once(&self.all)) {
            let errors: Vec<String> = j.errors.iter().map(|(k, v)| format!("{k}={v}")).collect();
            writeln!(
                f,
                "{:<10} {:>9} {:>8.2} {:>9.1} {:>9.1} {:>9.1} {:>9.1}  {}",
                j.journey,
                j.requests,
                j.error_rate() * 100.0,
                j.p50_ms,
                j.p90_ms,
                j.p99_ms,
                j.max_ms,
                errors.join(" ")
            )?;
        }
        write!(
            f,
            "{:.1} s, {:.1} requests/s finished",
            self.seconds, self.achieved_rps
        )
    }
}
