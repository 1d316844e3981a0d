//! One fault end to end: Faultline's server, the demo shop and its load run in this process;
//! after the detector's warm-up, inventory starts failing half of its requests, and the test
//! polls the incidents API until an incident opened after the injection ranks inventory first
//! (bounded by a deadline).

use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline_demo::demo::{self, DemoConfig};
use faultline_demo::fault::{FaultKind, FaultRequest};
use faultline_demo::load::{run_load, LoadConfig, LoadStats};
use faultline_experiment::api::Api;
use faultline_experiment::metrics::{self, Culprit, Tracker};
use faultline_experiment::now_us;
use tokio::sync::watch;

/// The detector needs this much history before it judges anything (6 closed 10 s slots).
const WARMUP: Duration = Duration::from_secs(70);
/// From the injection until the culprit must be ranked first.
const DEADLINE: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_fault_is_localized_to_its_service() {
    let demo = demo::start(DemoConfig::ephemeral())
        .await
        .expect("the demo starts");
    let api = Api::new(demo.query_url().expect("embedded server")).expect("client");
    let (stop_tx, stop) = watch::channel(false);
    let load = tokio::spawn(run_load(
        LoadConfig::new(demo.shop.gateway_url(), 30.0),
        Arc::new(LoadStats::default()),
        stop,
    ));

    // Warm-up: the detector learns its baselines. Nothing is asserted about this period.
    tokio::time::sleep(WARMUP).await;

    let inventory = demo.shop.service("inventory").expect("inventory runs");
    let record = inventory
        .faults
        .inject(
            FaultRequest::new(FaultKind::Errors { rate: 0.5 })
                .lasting(DEADLINE + Duration::from_secs(30)),
        )
        .expect("inject");
    let start_us = record.started_at.0 * 1_000;
    let culprit = Culprit::service("inventory");
    let mut tracker = Tracker::default();
    let deadline = Instant::now() + DEADLINE;
    let mut last_error = None;
    let outcome = loop {
        match api.incidents(100).await {
            Ok(incidents) => tracker.observe(now_us(), &incidents),
            Err(err) => last_error = Some(err.to_string()),
        }
        let outcome = metrics::evaluate(start_us, now_us(), &culprit, &tracker.tracks());
        if outcome.localize_s.is_some() || Instant::now() >= deadline {
            break outcome;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    inventory.faults.clear(None).expect("clear");
    let _ = stop_tx.send(true);
    let _ = load.await;
    let seen = tracker.tracks();
    demo.shutdown().await.expect("clean shutdown");

    assert!(
        outcome.localize_s.is_some(),
        "inventory was not ranked first within {DEADLINE:?} of the injection; outcome {outcome:?}; \
         last API error {last_error:?}; incidents seen:\n{seen:#?}"
    );
    assert!(
        outcome.detect_s.is_some(),
        "localised without a detecting incident: {outcome:?}"
    );
}
