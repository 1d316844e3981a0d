//! The open-loop load generator: requests start on a schedule that does not wait for earlier
//! answers (so a slow shop cannot slow the load down and hide its own latency: no coordinated
//! omission), and each latency is measured from the moment the request was *due*, not from
//! when it was actually sent.

mod histogram;
mod report;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

pub use histogram::Histogram;
pub use report::{JourneyReport, LoadReport};

use report::Tally;

use crate::DemoError;

/// One user journey: a think-time-free request through the shop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Journey {
    /// `GET /api/products`.
    Browse,
    /// `GET /api/products/{sku}`.
    Product,
    /// `POST /api/cart/{user}/items`.
    Cart,
    /// `POST /api/checkout`: the full tree through order, inventory, payment and the queue.
    Checkout,
}

impl Journey {
    /// All journeys.
    pub const ALL: [Journey; 4] = [
        Journey::Browse,
        Journey::Product,
        Journey::Cart,
        Journey::Checkout,
    ];

    /// The name used in `--mix` and reports.
    pub fn name(self) -> &'static str {
        match self {
            Journey::Browse => "browse",
            Journey::Product => "product",
            Journey::Cart => "cart",
            Journey::Checkout => "checkout",
        }
    }
}

/// Relative weights of the journeys.
#[derive(Clone, Debug, PartialEq)]
pub struct JourneyMix {
    weights: Vec<(Journey, u32)>,
    total: u32,
}

impl Default for JourneyMix {
    fn default() -> Self {
        JourneyMix::new(&[
            (Journey::Browse, 40),
            (Journey::Product, 30),
            (Journey::Cart, 20),
            (Journey::Checkout, 10),
        ])
        .unwrap_or_else(|_| unreachable!("the default mix is valid"))
    }
}

impl JourneyMix {
    /// A mix from weights; at least one must be positive.
    pub fn new(weights: &[(Journey, u32)]) -> Result<Self, DemoError> {
        let total = weights
            .iter()
            .map(|(_, w)| *w)
            .fold(0_u32, u32::saturating_add);
        if total == 0 {
            return Err(DemoError::Config(
                "the journey mix needs at least one positive weight".into(),
            ));
        }
        Ok(JourneyMix {
            weights: weights.to_vec(),
            total,
        })
    }

    /// Parses `browse=40,product=30,cart=20,checkout=10` (missing journeys weigh 0).
    pub fn parse(text: &str) -> Result<Self, DemoError> {
        let mut weights = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part.split_once('=').ok_or_else(|| {
                DemoError::Config(format!("--mix entry {part:?} must look like checkout=10"))
            })?;
            let journey = Journey::ALL
                .into_iter()
                .find(|j| j.name() == name.trim())
                .ok_or_else(|| {
                    DemoError::Config(format!(
                        "unknown journey {name:?}; expected browse, product, cart or checkout"
                    ))
                })?;
            let weight = weight.trim().parse::<u32>().map_err(|_| {
                DemoError::Config(format!("--mix weight {weight:?} is not a whole number"))
            })?;
            weights.push((journey, weight));
        }
        JourneyMix::new(&weights)
    }

    /// A journey drawn by weight.
    pub fn pick(&self) -> Journey {
        let mut roll = fastrand::u32(0..self.total);
        for (journey, weight) in &self.weights {
            if roll < *weight {
                return *journey;
            }
            roll -= weight;
        }
        Journey::Browse
    }
}

/// How fast requests arrive.
#[derive(Clone, Debug, PartialEq)]
pub enum RateProfile {
    /// The same rate throughout.
    Constant(f64),
    /// Starts at `start`, adds `step` every `every`, never above `max`.
    Stepped {
        /// Initial requests per second.
        start: f64,
        /// Added at each step.
        step: f64,
        /// Time between steps.
        every: Duration,
        /// Ceiling.
        max: f64,
    },
}

impl RateProfile {
    /// Requests per second `elapsed` into the run.
    pub fn rate_at(&self, elapsed: Duration) -> f64 {
        match *self {
            RateProfile::Constant(rate) => rate,
            RateProfile::Stepped {
                start,
                step,
                every,
                max,
            } => {
                let steps = if every.is_zero() {
                    0.0
                } else {
                    (elapsed.as_secs_f64() / every.as_secs_f64()).floor()
                };
                (start + steps * step).min(max)
            }
        }
    }

    fn validate(&self) -> Result<(), DemoError> {
        let ok = |r: f64| r.is_finite() && r > 0.0 && r <= 100_000.0;
        let valid = match *self {
            RateProfile::Constant(rate) => ok(rate),
            RateProfile::Stepped {
                start,
                step,
                every,
                max,
            } => ok(start) && ok(max) && step.is_finite() && step >= 0.0 && !every.is_zero(),
        };
        if valid {
            Ok(())
        } else {
            Err(DemoError::Config(
                "request rates must be between 0 (exclusive) and 100000 per second, steps \
                 non-negative and step intervals positive"
                    .into(),
            ))
        }
    }
}

/// A load run.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// The gateway's base URL.
    pub target: String,
    /// Arrival rate.
    pub profile: RateProfile,
    /// How long to run; `None` until stopped.
    pub duration: Option<Duration>,
    /// Which journeys.
    pub mix: JourneyMix,
    /// Requests allowed in flight; arrivals beyond are counted as `dropped`, not delayed.
    pub max_in_flight: usize,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl LoadConfig {
    /// Constant `rps` against `target` until stopped, default mix.
    pub fn new(target: impl Into<String>, rps: f64) -> Self {
        LoadConfig {
            target: target.into(),
            profile: RateProfile::Constant(rps),
            duration: None,
            mix: JourneyMix::default(),
            max_in_flight: 10_000,
            timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Default)]
struct Tallies {
    total: BTreeMap<Journey, Tally>,
    window: BTreeMap<Journey, Tally>,
    window_started: Option<Instant>,
}

/// Counters shared between the scheduler, the requests and whoever reports.
#[derive(Debug, Default)]
pub struct LoadStats {
    tallies: Mutex<Tallies>,
    in_flight: AtomicUsize,
}

impl LoadStats {
    fn record(&self, journey: Journey, latency: Duration, outcome: Result<(), String>) {
        let Ok(mut guard) = self.tallies.lock() else {
            return;
        };
        let tallies = &mut *guard;
        for map in [&mut tallies.total, &mut tallies.window] {
            let tally = map.entry(journey).or_default();
            tally.latency.record(latency);
            match &outcome {
                Ok(()) => tally.ok += 1,
                Err(class) => *tally.errors.entry(class.clone()).or_default() += 1,
            }
        }
    }

    /// The report since the last call of this method (or the start), then starts a new window.
    pub fn take_window(&self) -> LoadReport {
        let Ok(mut tallies) = self.tallies.lock() else {
            return LoadReport::default();
        };
        let now = Instant::now();
        let elapsed = tallies
            .window_started
            .map_or(Duration::ZERO, |s| now.duration_since(s));
        tallies.window_started = Some(now);
        let window = std::mem::take(&mut tallies.window);
        LoadReport::from_tallies(&window, elapsed)
    }

    fn total(&self, elapsed: Duration) -> LoadReport {
        match self.tallies.lock() {
            Ok(t) => LoadReport::from_tallies(&t.total, elapsed),
            Err(_) => LoadReport::default(),
        }
    }

    /// Requests awaiting their answer.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// Runs load until the duration is over or `stop` turns true; returns the whole run's report.
/// `stats` can be read meanwhile (e.g. [`LoadStats::take_window`] for periodic lines).
pub async fn run_load(
    config: LoadConfig,
    stats: Arc<LoadStats>,
    mut stop: watch::Receiver<bool>,
) -> Result<LoadReport, DemoError> {
    config.profile.validate()?;
    let target = config.target.trim_end_matches('/').to_owned();
    if !(target.starts_with("http://") || target.starts_with("https://")) {
        return Err(DemoError::Config(format!(
            "--target {target:?} must be an http:// URL"
        )));
    }
    let client = reqwest::Client::builder()
        .timeout(config.timeout)
        .pool_max_idle_per_host(256)
        .build()
        .map_err(|e| DemoError::Config(format!("load generator HTTP client: {e}")))?;
    let target: Arc<str> = Arc::from(target);
    let start = Instant::now();
    let end = config.duration.map(|d| start + d);
    let mut due = start;
    let mut requests = tokio::task::JoinSet::new();
    loop {
        let rate = config.profile.rate_at(due.duration_since(start));
        due += Duration::from_secs_f64(1.0 / rate);
        if end.is_some_and(|end| due >= end) {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(due) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        // Reap finished tasks so the set does not grow with the run.
        while requests.try_join_next().is_some() {}
        let journey = config.mix.pick();
        if stats.in_flight.load(Ordering::Relaxed) >= config.max_in_flight {
            stats.record(journey, Duration::ZERO, Err("dropped".into()));
            continue;
        }
        stats.in_flight.fetch_add(1, Ordering::Relaxed);
        let (client, target, stats) = (client.clone(), Arc::clone(&target), Arc::clone(&stats));
        requests.spawn(async move {
            let outcome = send(&client, &target, journey).await;
            // From when the request was due: lateness of the generator counts as latency.
            stats.record(journey, due.elapsed(), outcome);
            stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        });
    }
    // Let requests already sent finish (bounded by their timeout).
    let drain = async { while requests.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(config.timeout + Duration::from_secs(1), drain).await;
    Ok(stats.total(start.elapsed()))
}

/// Sends one journey's request; `Err` holds the failure class.
async fn send(client: &reqwest::Client, target: &str, journey: Journey) -> Result<(), String> {
    let user = fastrand::u32(1..=crate::USER_COUNT);
    let sku = crate::sku(fastrand::u32(1..=crate::PRODUCT_COUNT));
    let request = match journey {
        Journey::Browse => client.get(format!("{target}/api/products?limit=20")),
        Journey::Product => client.get(format!("{target}/api/products/{sku}")),
        Journey::Cart => client
            .post(format!("{target}/api/cart/{user}/items"))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(serde_json::json!({ "sku": sku, "quantity": 1 }).to_string()),
        Journey::Checkout => {
            let items: Vec<serde_json::Value> = (0..fastrand::u32(1..=3))
                .map(|_| {
                    serde_json::json!({
                        "sku": crate::sku(fastrand::u32(1..=crate::PRODUCT_COUNT)),
                        "quantity": fastrand::u32(1..=3),
                    })
                })
                .collect();
            client
                .post(format!("{target}/api/checkout"))
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(serde_json::json!({ "user_id": user, "items": items }).to_string())
        }
    };
    match request.send().await {
        Ok(response) => {
            let status = response.status();
            // The answer counts as received once its body is in.
            let body = response.bytes().await;
            match (status.as_u16(), body) {
                (_, Err(e)) => Err(classify(&e)),
                (200..=299, Ok(_)) => Ok(()),
                (429, Ok(_)) => Err("429".into()),
                (400..=499, Ok(_)) => Err("4xx".into()),
                (_, Ok(_)) => Err("5xx".into()),
            }
        }
        Err(err) => Err(classify(&err)),
    }
}

fn classify(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "timeout".into()
    } else if err.is_connect() {
        "connect".into()
    } else {
        "transport".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse_and_pick_only_weighted_journeys() {
        let mix = JourneyMix::parse("checkout=1, browse=0").expect("valid");
        for _ in 0..100 {
            assert_eq!(mix.pick(), Journey::Checkout);
        }
        assert!(JourneyMix::parse("checkout=0").is_err());
        assert!(JourneyMix::parse("teleport=3").is_err());
        assert!(JourneyMix::parse("checkout").is_err());
    }

    #[test]
    fn stepped_rates_climb_to_the_ceiling() {
        let profile = RateProfile::Stepped {
            start: 10.0,
            step: 20.0,
            every: Duration::from_secs(10),
            max: 45.0,
        };
        assert_eq!(profile.rate_at(Duration::from_secs(0)), 10.0);
        assert_eq!(profile.rate_at(Duration::from_secs(19)), 30.0);
        assert_eq!(profile.rate_at(Duration::from_secs(600)), 45.0);
        assert!(RateProfile::Constant(0.0).validate().is_err());
        assert!(RateProfile::Constant(f64::INFINITY).validate().is_err());
    }

    /// A target that answers after 50ms, one request at a time: a closed-loop generator would
    /// slow down to 20 requests/s and report 50ms; the open-loop one keeps its schedule and
    /// sees the queue build up.
    #[tokio::test]
    async fn keeps_the_schedule_when_the_target_is_slow() {
        use axum::routing::get;
        let gate = Arc::new(tokio::sync::Mutex::new(()));
        let app = axum::Router::new().route(
            "/api/products",
            get(move || {
                let gate = Arc::clone(&gate);
                async move {
                    let _one_at_a_time = gate.lock().await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    "[]"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        let mut config = LoadConfig::new(format!("http://{addr}"), 100.0);
        config.duration = Some(Duration::from_millis(500));
        config.mix = JourneyMix::parse("browse=1").expect("mix");
        let (_stop_tx, stop) = watch::channel(false);
        let report = run_load(config, Arc::new(LoadStats::default()), stop)
            .await
            .expect("run");
        assert!(
            (45..=50).contains(&report.all.requests),
            "about 50 requests were due in 0.5s at 100/s: {report}"
        );
        assert_eq!(report.all.ok, report.all.requests, "{report}");
        // The last ones waited behind ~40 others: far above the 50ms service time.
        assert!(report.all.max_ms > 1_000.0, "{report}");
    }
}
