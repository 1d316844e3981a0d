//! Anomaly detection over the RED slot windows: a baseline per series learned from closed
//! slots, a recent window judged against it on every tick, and the incident lifecycle.
//!
//! Each SERVER and CONSUMER series (the entry points of a service's operations) and each edge
//! of the service graph (the caller's view of a dependency, virtual nodes included) keeps
//! exponentially weighted mean and variance of its per-slot rate and mean latency and of its
//! call and error counts. A slot is learnt two slots after it closed, and only if no tick saw
//! the series deviate while the slot was recent and no incident was open: a fault never becomes
//! the baseline. The recent window (the slot in progress and the one before) deviates when:
//!
//! - **latency**: its mean exceeds the baseline mean by a factor, an absolute amount and a
//!   number of standard deviations;
//! - **errors**: its error ratio exceeds the baseline ratio by an absolute amount, twice over,
//!   and by a number of binomial standard deviations, with a minimum of errors;
//! - **throughput**: its rate fell below a fraction of a baseline rate that is high enough for
//!   a drop to mean something (a stalled consumer).
//!
//! A deviation must persist for `confirm_ticks` ticks to become a symptom. The first symptom
//! opens an incident; later ones join it; it resolves when nothing has deviated for
//! `resolve_hold`.

use std::collections::HashMap;
use std::sync::Arc;

use faultline_model::{SpanKind, UnixNanos};

use crate::analyzer::Analyzer;
use crate::config::DetectionConfig;
use crate::incident::{Incident, IncidentStatus, Signal, Symptom};
use crate::intern::OVERFLOW;
use crate::window::{WindowStats, WindowedSeries};

/// Exponentially weighted statistics of one series' closed slots.
#[derive(Clone, Debug, Default)]
pub(crate) struct Baseline {
    samples: u32,
    rate_mean: f64,
    rate_var: f64,
    calls_mean: f64,
    errors_mean: f64,
    latency_samples: u32,
    latency_mean: f64,
    latency_var: f64,
}

fn ewma(mean: &mut f64, var: &mut f64, x: f64, a: f64) {
    let d = x - *mean;
    *mean += a * d;
    *var = (1.0 - a) * (*var + a * d * d);
}

/// One signal of one series off its baseline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Deviation {
    pub signal: Signal,
    pub baseline: f64,
    pub observed: f64,
}

impl Baseline {
    /// Learns one closed slot.
    pub fn absorb(&mut self, slot: &WindowStats, slot_secs: f64, alpha: f64) {
        self.samples += 1;
        // Equal weights while young, so the first slot's noise does not dominate.
        let a = alpha.max(1.0 / f64::from(self.samples));
        let calls = slot.calls as f64;
        ewma(
            &mut self.rate_mean,
            &mut self.rate_var,
            calls / slot_secs,
            a,
        );
        self.calls_mean += a * (calls - self.calls_mean);
        self.errors_mean += a * (slot.errors as f64 - self.errors_mean);
        if slot.calls > 0 {
            self.latency_samples += 1;
            let a = alpha.max(1.0 / f64::from(self.latency_samples));
            let mean_us = slot.latency.sum_nanos as f64 / calls / 1e3;
            ewma(&mut self.latency_mean, &mut self.latency_var, mean_us, a);
        }
    }

    fn error_ratio(&self) -> f64 {
        if self.calls_mean > 0.0 {
            (self.errors_mean / self.calls_mean).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    /// The signals of `recent` (covering `recent_secs`) that deviate.
    pub fn judge(
        &self,
        recent: &WindowStats,
        recent_secs: f64,
        cfg: &DetectionConfig,
    ) -> Vec<Deviation> {
        let mut out = Vec::new();
        if self.samples < cfg.warmup_slots {
            return out;
        }
        let n = recent.calls as f64;
        if recent.calls >= cfg.min_calls && self.latency_samples >= cfg.warmup_slots {
            let observed = recent.latency.sum_nanos as f64 / n / 1e3;
            let base = self.latency_mean;
            let sd = self.latency_var.sqrt().max(0.1 * base).max(1.0);
            let min_delta = cfg.latency_min_delta.as_secs_f64() * 1e6;
            if observed > base * cfg.latency_ratio
                && observed - base >= min_delta
                && (observed - base) / sd >= cfg.z_threshold
            {
                out.push(Deviation {
                    signal: Signal::Latency,
                    baseline: base,
                    observed,
                });
            }
        }
        if recent.calls >= cfg.min_calls && recent.errors >= 3 {
            let observed = recent.errors as f64 / n;
            let base = self.error_ratio();
            let p = base.clamp(0.01, 0.99);
            let sd = (p * (1.0 - p) / n).sqrt();
            if observed - base >= cfg.error_ratio_min_delta
                && observed >= 2.0 * base
                && (observed - p) / sd >= cfg.z_threshold
            {
                out.push(Deviation {
                    signal: Signal::Errors,
                    baseline: base,
                    observed,
                });
            }
        }
        let base_rate = self.rate_mean;
        if base_rate >= cfg.throughput_min_rate
            && base_rate * recent_secs >= cfg.min_calls as f64
            && recent_secs > 0.0
        {
            let observed = n / recent_secs;
            if observed <= base_rate * cfg.throughput_drop_ratio {
                out.push(Deviation {
                    signal: Signal::Throughput,
                    baseline: base_rate,
                    observed,
                });
            }
        }
        out
    }
}

/// What the detector remembers of one series.
#[derive(Debug, Default)]
struct SeriesState {
    baseline: Baseline,
    /// Newest slot learnt or skipped.
    learnt_through: Option<u64>,
    /// Bit `i`: a tick in slot `mask_slot - i` saw a deviation in a window covering it.
    suspect_mask: u64,
    mask_slot: u64,
    /// Consecutive deviating ticks per signal (latency, errors, throughput).
    streak: [u32; 3],
}

impl SeriesState {
    fn advance_mask(&mut self, now_slot: u64) {
        let shift = now_slot.saturating_sub(self.mask_slot);
        self.suspect_mask = if shift >= 64 {
            0
        } else {
            self.suspect_mask << shift
        };
        self.mask_slot = self.mask_slot.max(now_slot);
    }

    fn tainted(&self, slot: u64) -> bool {
        let i = self.mask_slot.saturating_sub(slot);
        i < 64 && self.suspect_mask & (1 << i) != 0
    }
}

fn signal_index(s: Signal) -> usize {
    match s {
        Signal::Latency => 0,
        Signal::Errors => 1,
        Signal::Throughput => 2,
    }
}

/// A confirmed deviation of one series at one tick.
#[derive(Clone, Debug)]
struct Finding {
    service: String,
    operation: String,
    peer: Option<String>,
    deviation: Deviation,
}

/// What one tick knows while it visits the series.
struct Tick<'a> {
    cfg: &'a DetectionConfig,
    now_slot: u64,
    slots: u64,
    slot_secs: f64,
    recent_secs: f64,
    /// Slots up to this one are never learnt.
    blocked: Option<u64>,
    /// Whether closed slots may be learnt (no incident is open).
    learn: bool,
}

impl Tick<'_> {
    /// Learns `series`' closed slots into `state`, judges its recent window, and hands every
    /// deviation confirmed for `confirm_ticks` ticks to `confirmed`. Returns whether anything
    /// deviated at all.
    fn watch(
        &self,
        state: &mut SeriesState,
        series: &WindowedSeries,
        stats: &mut DetectorStats,
        mut confirmed: impl FnMut(Deviation),
    ) -> bool {
        let cfg = self.cfg;
        state.advance_mask(self.now_slot);
        if self.learn {
            learn(state, series, self, stats);
        }
        let recent = series.window(self.now_slot, cfg.recent_slots);
        let deviations = state.baseline.judge(&recent, self.recent_secs, cfg);
        let deviated = !deviations.is_empty();
        if deviated {
            for i in 0..cfg.recent_slots.min(64) {
                state.suspect_mask |= 1 << i;
            }
        }
        let mut seen = [false; 3];
        for d in deviations {
            let i = signal_index(d.signal);
            seen[i] = true;
            state.streak[i] = state.streak[i].saturating_add(1);
            if state.streak[i] >= cfg.confirm_ticks {
                confirmed(d);
            }
        }
        for (i, s) in seen.iter().enumerate() {
            if !s {
                state.streak[i] = 0;
            }
        }
        deviated
    }
}

/// What the ranking should look at after a tick: the open incident and its windows.
#[derive(Clone, Debug)]
pub struct RankRequest {
    /// The incident to rank.
    pub incident_id: String,
    /// Its symptoms so far.
    pub symptoms: Vec<Symptom>,
    /// Span-time window of the anomaly.
    pub anomalous: (UnixNanos, UnixNanos),
    /// Span-time window of normal behaviour before it.
    pub baseline: (UnixNanos, UnixNanos),
}

/// Counters of the detector, for tests and `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DetectorStats {
    /// Ticks run.
    pub ticks: u64,
    /// Series with a baseline (RED series and graph edges).
    pub series: u64,
    /// Visits of series beyond the limit, which are not watched (counted once per tick).
    pub series_overflow: u64,
    /// Closed slots learnt into baselines.
    pub slots_learnt: u64,
    /// Closed slots skipped because they deviated or an incident was open.
    pub slots_skipped: u64,
}

/// The steppable core of detection: call [`tick_at`](Self::tick_at) with the time.
#[derive(Debug)]
pub struct Detector {
    cfg: DetectionConfig,
    slot_nanos: u64,
    slots: u64,
    max_series: usize,
    series: HashMap<(u32, u8), SeriesState>,
    /// Per service graph edge (caller, callee).
    edges: HashMap<(Arc<str>, Arc<str>), SeriesState>,
    /// Slots up to this one are never learnt (they overlap an incident).
    blocked_through: Option<u64>,
    last_deviation: u64,
    stats: DetectorStats,
}

impl Detector {
    /// A detector for `analyzer`'s series, with its settings.
    pub fn new(analyzer: &Analyzer) -> Self {
        let config = analyzer.config();
        Self {
            cfg: config.detection.clone(),
            slot_nanos: config.slot_nanos(),
            slots: config.slots as u64,
            max_series: config.max_series,
            series: HashMap::new(),
            edges: HashMap::new(),
            blocked_through: None,
            last_deviation: 0,
            stats: DetectorStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> DetectorStats {
        DetectorStats {
            series: (self.series.len() + self.edges.len()) as u64,
            ..self.stats
        }
    }

    /// Learns closed slots, judges the recent window of every series, opens, updates or
    /// resolves the incident, and says what to rank if an incident is open.
    pub fn tick_at(&mut self, analyzer: &Analyzer, now: UnixNanos) -> Option<RankRequest> {
        self.stats.ticks += 1;
        let now_slot = now.0 / self.slot_nanos;
        let slot_secs = self.slot_nanos as f64 / 1e9;
        let into_slot = (now.0 % self.slot_nanos) as f64 / 1e9;
        let recent_secs = (self.cfg.recent_slots - 1) as f64 * slot_secs + into_slot;
        let incident_open = analyzer.incident_log().open_mut().is_some();
        let mut findings: Vec<Finding> = Vec::new();
        let mut any_deviation = false;

        let tick = Tick {
            cfg: &self.cfg,
            now_slot,
            slots: self.slots,
            slot_secs,
            recent_secs,
            blocked: self.blocked_through,
            learn: !incident_open,
        };
        let (series_map, stats) = (&mut self.series, &mut self.stats);
        let max_series = self.max_series;
        analyzer.with_red(|red| {
            red.visit(|op, kind, service, operation, series| {
                if !matches!(kind, SpanKind::Server | SpanKind::Consumer) {
                    return;
                }
                let key = (op, kind as u8);
                if !series_map.contains_key(&key) && series_map.len() >= max_series {
                    stats.series_overflow += 1;
                    return;
                }
                let state = series_map.entry(key).or_default();
                any_deviation |= tick.watch(state, series, stats, |deviation| {
                    findings.push(Finding {
                        service: service.to_owned(),
                        operation: operation.to_owned(),
                        peer: None,
                        deviation,
                    })
                });
            });
        });
        // Edges: the caller's view of each dependency, including virtual nodes (databases,
        // third parties) that have no series of their own and calls that never reached their
        // server. The graph bounds the number of edges.
        let edge_map = &mut self.edges;
        analyzer.with_graph(now, |graph| {
            for ((client, server), edge) in graph.edges() {
                // The overflow edge (and edges to names beyond the limit) mixes unrelated
                // calls: no baseline describes it, as the RED overflow series has none.
                if &**client == OVERFLOW || &**server == OVERFLOW {
                    continue;
                }
                let state = edge_map
                    .entry((Arc::clone(client), Arc::clone(server)))
                    .or_default();
                any_deviation |= tick.watch(state, &edge.client, stats, |deviation| {
                    findings.push(Finding {
                        service: client.to_string(),
                        operation: String::new(),
                        peer: Some(server.to_string()),
                        deviation,
                    })
                });
            }
        });
        if any_deviation {
            self.last_deviation = now.0;
        }
        self.update_incident(analyzer, now, now_slot, findings)
    }

    fn update_incident(
        &mut self,
        analyzer: &Analyzer,
        now: UnixNanos,
        now_slot: u64,
        mut findings: Vec<Finding>,
    ) -> Option<RankRequest> {
        let now_us = now.0 / 1_000;
        // Strongest deviations first, so that the symptom limit keeps those.
        findings.sort_by(|a, b| severity(&b.deviation).total_cmp(&severity(&a.deviation)));
        let mut log = analyzer.incident_log();
        let incident = match log.open_mut() {
            Some(open) => {
                if now.0.saturating_sub(self.last_deviation)
                    >= self.cfg.resolve_hold.as_nanos() as u64
                {
                    open.status = IncidentStatus::Resolved;
                    open.resolved_at = Some(now_us);
                    // Slots overlapping the incident never enter a baseline.
                    self.blocked_through = Some(now_slot);
                    tracing::info!(id = %open.id, "incident resolved");
                    return None;
                }
                open
            }
            None if findings.is_empty() => return None,
            None => {
                let id = format!("inc-{now_us}");
                log.push(
                    Incident {
                        id: id.clone(),
                        status: IncidentStatus::Open,
                        opened_at: now_us,
                        resolved_at: None,
                        symptoms: Vec::new(),
                        symptoms_dropped: 0,
                        root_causes: Vec::new(),
                    },
                    self.cfg.max_incidents,
                );
                tracing::warn!(%id, symptoms = findings.len(), "incident opened");
                log.get_mut(&id)?
            }
        };
        for f in findings {
            let held = incident.symptoms.len();
            let existing = incident.symptoms.iter_mut().find(|s| {
                s.signal == f.deviation.signal
                    && s.service == f.service
                    && s.operation == f.operation
                    && s.peer == f.peer
            });
            match existing {
                Some(s) => s.observed = f.deviation.observed,
                None if held >= self.cfg.max_symptoms => {
                    incident.symptoms_dropped += 1;
                }
                None => incident.symptoms.push(Symptom {
                    service: f.service,
                    operation: f.operation,
                    peer: f.peer,
                    signal: f.deviation.signal,
                    baseline: f.deviation.baseline,
                    observed: f.deviation.observed,
                    unit: f.deviation.signal.unit(),
                    detected_at: now_us,
                }),
            }
        }
        let first = incident
            .symptoms
            .iter()
            .map(|s| s.detected_at)
            .min()
            .unwrap_or(incident.opened_at);
        // The deviation began up to a recent window before it was confirmed.
        let recent_nanos = self.cfg.recent_slots * self.slot_nanos;
        let onset = (first * 1_000).saturating_sub(recent_nanos);
        let anomalous_start = onset.max(now.0.saturating_sub(4 * recent_nanos));
        let baseline_end = onset.saturating_sub(self.slot_nanos);
        let baseline_start = baseline_end.saturating_sub(15 * recent_nanos);
        Some(RankRequest {
            incident_id: incident.id.clone(),
            symptoms: incident.symptoms.clone(),
            anomalous: (UnixNanos(anomalous_start), now),
            baseline: (UnixNanos(baseline_start), UnixNanos(baseline_end)),
        })
    }
}

/// Learns the slots of `series` that closed two slots ago or earlier and were not learnt yet.
fn learn(
    state: &mut SeriesState,
    series: &WindowedSeries,
    tick: &Tick<'_>,
    stats: &mut DetectorStats,
) {
    let (now_slot, slots, blocked) = (tick.now_slot, tick.slots, tick.blocked);
    let Some(target) = now_slot.checked_sub(2) else {
        return;
    };
    let oldest_kept = now_slot.saturating_sub(slots.saturating_sub(1));
    let first_seen = series.oldest_slot().unwrap_or(now_slot);
    let next = match state.learnt_through {
        Some(t) => t + 1,
        None => first_seen,
    }
    .max(oldest_kept);
    let from = next.max(blocked.map_or(0, |b| b + 1));
    stats.slots_skipped += from.min(target + 1).saturating_sub(next);
    let mut k = from;
    while k <= target {
        if state.tainted(k) {
            stats.slots_skipped += 1;
        } else {
            let slot = series.window(k, 1);
            state
                .baseline
                .absorb(&slot, tick.slot_secs, tick.cfg.baseline_alpha);
            stats.slots_learnt += 1;
        }
        k += 1;
    }
    if from <= target {
        state.learnt_through = Some(target);
    }
}

fn severity(d: &Deviation) -> f64 {
    match d.signal {
        Signal::Latency => d.observed / d.baseline.max(1.0),
        Signal::Errors => 1.0 + 10.0 * (d.observed - d.baseline),
        Signal::Throughput => d.baseline / d.observed.max(0.01),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::Histogram;

    fn stats(calls: u64, errors: u64, mean_ms: u64) -> WindowStats {
        let mut latency = Histogram::default();
        for _ in 0..calls {
            latency.record(mean_ms * 1_000_000);
        }
        WindowStats {
            calls,
            errors,
            latency,
        }
    }

    fn learnt(calls: u64, errors: u64, mean_ms: u64) -> Baseline {
        let mut b = Baseline::default();
        for i in 0..20 {
            // A little noise: ±10% latency, ±2 calls.
            let jitter = if i % 2 == 0 { 1 } else { 0 };
            b.absorb(
                &stats(calls + 2 * jitter, errors, mean_ms + mean_ms * jitter / 10),
                10.0,
                0.05,
            );
        }
        b
    }

    #[test]
    fn a_young_baseline_judges_nothing() {
        let mut b = Baseline::default();
        b.absorb(&stats(100, 0, 10), 10.0, 0.05);
        let cfg = DetectionConfig::default();
        assert!(b.judge(&stats(100, 100, 1000), 15.0, &cfg).is_empty());
    }

    #[test]
    fn latency_needs_ratio_delta_and_sigma() {
        let b = learnt(100, 0, 20);
        let cfg = DetectionConfig::default();
        assert!(b.judge(&stats(150, 0, 22), 15.0, &cfg).is_empty());
        let d = b.judge(&stats(150, 0, 200), 15.0, &cfg);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].signal, Signal::Latency);
        assert!(
            d[0].baseline > 20_000.0 && d[0].baseline < 23_000.0,
            "{d:?}"
        );
        // Tiny services: 3x of 1 ms is below the absolute minimum.
        let b = learnt(100, 0, 1);
        assert!(b.judge(&stats(150, 0, 3), 15.0, &cfg).is_empty());
    }

    #[test]
    fn errors_need_a_real_rise_and_enough_calls() {
        let b = learnt(100, 1, 20);
        let cfg = DetectionConfig::default();
        // 2 of 150: at the baseline.
        assert!(b.judge(&stats(150, 2, 20), 15.0, &cfg).is_empty());
        // 5 of 8: too few calls (only the throughput drop counts).
        assert!(b
            .judge(&stats(8, 5, 20), 15.0, &cfg)
            .iter()
            .all(|d| d.signal == Signal::Throughput));
        let d = b.judge(&stats(150, 40, 20), 15.0, &cfg);
        assert_eq!(d[0].signal, Signal::Errors);
        assert!((d[0].observed - 40.0 / 150.0).abs() < 1e-9);
    }

    #[test]
    fn throughput_drops_only_count_for_busy_series() {
        let cfg = DetectionConfig::default();
        let busy = learnt(100, 0, 20);
        let d = busy.judge(&stats(0, 0, 0), 15.0, &cfg);
        assert_eq!(d[0].signal, Signal::Throughput);
        assert!(d[0].baseline > 9.0);
        assert!(busy.judge(&stats(120, 0, 20), 15.0, &cfg).is_empty());
        // 0.2 calls/s: a quiet minute says nothing.
        let quiet = learnt(2, 0, 20);
        assert!(quiet.judge(&stats(0, 0, 0), 15.0, &cfg).is_empty());
    }

    use crate::config::AnalysisConfig;
    use crate::incident::IncidentStatus;
    use crate::test_spans::{shop_trace, span, Shop};

    /// A deterministic noisy stream of shop traffic, one second at a time.
    struct Stream {
        rng: u64,
        trace: u64,
    }

    impl Stream {
        fn new() -> Self {
            Self {
                rng: 0x9E37_79B9_7F4A_7C15,
                trace: 0,
            }
        }

        fn next(&mut self) -> u64 {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            self.rng
        }

        /// Feeds second `t` (in seconds) of traffic shaped by `fault`.
        fn second(&mut self, a: &Analyzer, t: u64, fault: &Shop, stalled: bool) {
            let mut spans = Vec::new();
            let n = 6 + self.next() % 9;
            for _ in 0..n {
                self.trace += 1;
                let mut shop = fault.clone();
                let r = self.next();
                // ±50% on every self time, 1% slow outliers, 0.5% stray errors.
                let jitter = |v: u64, r: u64| v / 2 + v * (r % 100) / 100;
                shop.gateway_self = jitter(shop.gateway_self, r);
                shop.order_self = jitter(shop.order_self, r >> 8);
                shop.inventory_self = jitter(shop.inventory_self, r >> 16);
                shop.db = jitter(shop.db, r >> 24);
                shop.provider = jitter(shop.provider, r >> 32);
                if r >> 40 & 127 == 0 {
                    shop.provider *= 8;
                }
                if r >> 48 & 255 == 0 {
                    shop.inventory_error = true;
                }
                let start = t * 1_000_000 + (r >> 20) % 900_000;
                spans.extend(shop_trace(self.trace, start, &shop));
                if !stalled {
                    let mut c = span(
                        "notification",
                        1,
                        1,
                        None,
                        SpanKind::Consumer,
                        start,
                        start + 3_000,
                    );
                    c.name = "orders process".into();
                    spans.push(c);
                }
            }
            a.observe_at(&spans, UnixNanos(t * 1_000_000_000));
        }
    }

    const T0: u64 = 1_700_000_000;

    /// Runs `normal` seconds of normal traffic, then `fault` until an incident opens or
    /// `within` seconds pass; returns the seconds it took and the incident.
    fn detect(normal: u64, fault: &Shop, stalled: bool, within: u64) -> Option<(u64, Incident)> {
        let a = Analyzer::new(AnalysisConfig::default()).unwrap();
        let mut d = Detector::new(&a);
        let mut s = Stream::new();
        for t in T0..T0 + normal {
            s.second(&a, t, &Shop::default(), false);
            if t % 5 == 0 {
                assert!(d.tick_at(&a, UnixNanos(t * 1_000_000_000)).is_none());
            }
        }
        let onset = T0 + normal;
        for t in onset..onset + within {
            s.second(&a, t, fault, stalled);
            if t % 5 == 0 && d.tick_at(&a, UnixNanos(t * 1_000_000_000)).is_some() {
                return Some((t - onset, a.incidents(None, 1).pop()?));
            }
        }
        None
    }

    #[test]
    fn a_long_stretch_of_noisy_normal_traffic_opens_no_incident() {
        // 30 minutes; `detect` asserts that no tick opens an incident.
        assert!(detect(1_800, &Shop::default(), false, 60).is_none());
    }

    #[test]
    fn latency_in_a_leaf_is_detected_within_30_seconds() {
        let fault = Shop {
            inventory_self: 150_000,
            ..Shop::default()
        };
        let (took, incident) = detect(300, &fault, false, 60).expect("detected");
        assert!(took <= 30, "{took}s");
        assert_eq!(incident.status, IncidentStatus::Open);
        assert!(incident
            .symptoms
            .iter()
            .any(|s| s.service == "inventory" && s.signal == Signal::Latency));
        let s = &incident.symptoms[0];
        assert!(s.observed > s.baseline * 1.5, "{s:?}");
    }

    #[test]
    fn errors_are_detected_within_30_seconds() {
        let fault = Shop {
            inventory_error: true,
            ..Shop::default()
        };
        let (took, incident) = detect(300, &fault, false, 60).expect("detected");
        assert!(took <= 30, "{took}s");
        assert!(incident
            .symptoms
            .iter()
            .any(|s| s.service == "inventory" && s.signal == Signal::Errors));
    }

    #[test]
    fn a_stalled_consumer_is_detected_by_its_throughput() {
        let (took, incident) = detect(300, &Shop::default(), true, 60).expect("detected");
        assert!(took <= 30, "{took}s");
        let s = &incident.symptoms[0];
        assert_eq!(
            (s.service.as_str(), s.signal),
            ("notification", Signal::Throughput)
        );
        assert_eq!(s.unit, "per_s");
    }

    #[test]
    fn a_slow_network_between_two_services_is_an_edge_symptom() {
        // inventory itself is as fast as ever; only order's calls to it take longer.
        let fault = Shop {
            inventory_network: 150_000,
            ..Shop::default()
        };
        let (took, incident) = detect(300, &fault, false, 60).expect("detected");
        assert!(took <= 30, "{took}s");
        let edge = incident
            .symptoms
            .iter()
            .find(|s| s.peer.is_some())
            .expect("an edge symptom");
        assert_eq!(
            (
                edge.service.as_str(),
                edge.peer.as_deref(),
                edge.operation.as_str(),
                edge.signal
            ),
            ("order", Some("inventory"), "", Signal::Latency),
            "{incident:#?}"
        );
        // The recent window still holds some calls from before the onset.
        assert!(edge.observed > 5.0 * edge.baseline, "{edge:?}");
        assert!(
            !incident.symptoms.iter().any(|s| s.service == "inventory"),
            "inventory's own series did not move: {incident:#?}"
        );
        let json = serde_json::to_value(edge).unwrap();
        assert_eq!(json["peer"], "inventory");
    }

    /// Runs `normal` seconds of normal traffic, then `fault` for `faulty` seconds, ticking
    /// every 5 s; returns the newest incident and the detector's counters.
    fn run_fault(normal: u64, fault: &Shop, faulty: u64) -> (Option<Incident>, DetectorStats) {
        let a = Analyzer::new(AnalysisConfig::default()).unwrap();
        let mut d = Detector::new(&a);
        let mut s = Stream::new();
        let healthy = Shop::default();
        for t in T0..T0 + normal + faulty {
            s.second(&a, t, if t < T0 + normal { &healthy } else { fault }, false);
            if t % 5 == 0 {
                d.tick_at(&a, UnixNanos(t * 1_000_000_000));
            }
        }
        (a.incidents(None, 1).pop(), d.stats())
    }

    #[test]
    fn a_dependency_nobody_instruments_has_a_baseline_of_its_own() {
        // The database is a virtual node: only inventory's client spans see it. Its edge
        // counts a call once the call's pairing wait is over, so give it the time.
        let fault = Shop {
            db: 120_000,
            ..Shop::default()
        };
        let (incident, stats) = run_fault(300, &fault, 60);
        let incident = incident.expect("opened");
        assert!(
            incident.symptoms.iter().any(|s| s.service == "inventory"
                && s.peer.as_deref() == Some("sqlite")
                && s.signal == Signal::Latency),
            "{incident:#?}"
        );
        // gateway, order, inventory, payment entry points, the consumer, and the edges.
        assert!(stats.series > 5, "{stats:?}");
    }

    #[test]
    fn calls_to_a_service_that_is_down_deviate_on_their_edge() {
        let fault = Shop {
            inventory_down: true,
            ..Shop::default()
        };
        let (incident, _) = run_fault(300, &fault, 60);
        let incident = incident.expect("opened");
        assert!(
            incident.symptoms.iter().any(|s| s.service == "order"
                && s.peer.as_deref() == Some("inventory")
                && s.signal == Signal::Errors),
            "{incident:#?}"
        );
    }

    #[test]
    fn incidents_resolve_after_the_hold_and_the_fault_never_enters_the_baseline() {
        let a = Analyzer::new(AnalysisConfig::default()).unwrap();
        let mut d = Detector::new(&a);
        let mut s = Stream::new();
        let slow = Shop {
            inventory_self: 150_000,
            ..Shop::default()
        };
        let normal = Shop::default();
        let mut opened = None;
        for t in T0..T0 + 900 {
            // Ten minutes of fault in the middle: long enough to poison a learning baseline.
            let fault = (T0 + 300..T0 + 600).contains(&t);
            s.second(&a, t, if fault { &slow } else { &normal }, false);
            if t % 5 == 0 {
                d.tick_at(&a, UnixNanos(t * 1_000_000_000));
                if opened.is_none() {
                    opened = a.incidents(None, 1).pop().map(|i| i.id);
                }
            }
        }
        let id = opened.expect("opened");
        let all = a.incidents(None, 10);
        assert_eq!(all.len(), 1, "one incident, its id stable: {all:#?}");
        let incident = &all[0];
        assert_eq!(incident.id, id);
        assert_eq!(incident.status, IncidentStatus::Resolved);
        let resolved = incident.resolved_at.unwrap() / 1_000_000;
        assert!((T0 + 600..=T0 + 660).contains(&resolved), "{resolved}");
        assert!(d.stats().slots_skipped > 0);
        // The same fault again is still an anomaly: the baseline did not learn it.
        let mut again = false;
        for t in T0 + 900..T0 + 960 {
            s.second(&a, t, &slow, false);
            if t % 5 == 0 {
                again |= d.tick_at(&a, UnixNanos(t * 1_000_000_000)).is_some();
            }
        }
        assert!(again);
        assert_eq!(a.incidents(None, 10).len(), 2);
    }

    #[test]
    fn the_overflow_edge_has_no_baseline() {
        // Room for one edge only: every later edge counts into the overflow edge.
        let a = Analyzer::new(AnalysisConfig {
            max_edges: 1,
            ..AnalysisConfig::default()
        })
        .unwrap();
        let mut d = Detector::new(&a);
        let mut s = Stream::new();
        for t in T0..T0 + 120 {
            s.second(&a, t, &Shop::default(), false);
            if t % 5 == 0 {
                d.tick_at(&a, UnixNanos(t * 1_000_000_000));
            }
        }
        let edges = a.edges(UnixNanos((T0 + 120) * 1_000_000_000), 6);
        assert!(edges.iter().any(|e| &*e.client == OVERFLOW), "{edges:?}");
        // The RED entry points plus the one real edge.
        let entry_points = a
            .red(None, UnixNanos((T0 + 120) * 1_000_000_000), 60)
            .iter()
            .filter(|r| matches!(r.kind, SpanKind::Server | SpanKind::Consumer))
            .count() as u64;
        assert_eq!(d.stats().series, entry_points + 1);
    }

    #[test]
    fn the_suspect_mask_follows_the_slots() {
        let mut s = SeriesState::default();
        s.advance_mask(10);
        s.suspect_mask |= 0b11;
        assert!(s.tainted(10) && s.tainted(9) && !s.tainted(8));
        s.advance_mask(12);
        assert!(s.tainted(10) && s.tainted(9) && !s.tainted(11));
        s.advance_mask(200);
        assert!(!s.tainted(10));
    }
}
