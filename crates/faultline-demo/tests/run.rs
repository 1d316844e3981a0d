//! The demo as a user runs it: the whole `run` with load, a scripted scenario, and the
//! `faultline demo fault|load` commands against a running demo.

mod support;

use std::time::{Duration, Instant};

use clap::Parser;
use faultline_demo::demo::{self, DemoConfig, RunOptions};
use faultline_demo::fault::{FaultKind, FaultRequest};
use faultline_demo::load::LoadConfig;
use faultline_demo::scenario::{self, Scenario, Step};
use support::Harness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_with_load_and_stops_cleanly() {
    let options = RunOptions {
        load: Some(LoadConfig::new(String::new(), 40.0)),
        duration: Some(Duration::from_secs(3)),
        scenario: None,
        report_every: Duration::from_secs(1),
    };
    let report = demo::run(DemoConfig::ephemeral(), options, std::future::pending())
        .await
        .expect("demo runs")
        .expect("load report");
    assert!(
        (100..=125).contains(&report.all.requests),
        "about 120 requests due in 3s at 40/s: {report}"
    );
    assert_eq!(report.all.ok, report.all.requests, "{report}");
    assert!(report.journeys.len() >= 3, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_injects_its_steps_on_time_and_they_expire() {
    let h = Harness::start().await;
    let scenario = Scenario {
        name: "test",
        description: "two short faults",
        steps: vec![
            Step {
                at: Duration::ZERO,
                service: "inventory",
                request: FaultRequest::new(FaultKind::SlowQuery { delay_ms: 100 })
                    .lasting(Duration::from_millis(300)),
            },
            Step {
                at: Duration::from_millis(400),
                service: "notification",
                request: FaultRequest::new(FaultKind::QueueStall)
                    .lasting(Duration::from_millis(300)),
            },
        ],
    };
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    scenario::play(&scenario, &h.demo.shop.services, stop)
        .await
        .expect("played");
    assert!(started.elapsed() >= Duration::from_millis(400));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ledger = h.demo.shop.ledger.records();
        if ledger.len() == 2 && ledger.iter().all(|r| r.ended_at.is_some()) {
            assert_eq!(ledger[0].service, "inventory");
            assert_eq!(ledger[1].service, "notification");
            assert!(ledger[1].started_at.0 >= ledger[0].started_at.0 + 350);
            assert!(ledger
                .iter()
                .all(|r| r.end_reason.as_deref() == Some("expired")));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "faults did not expire: {ledger:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.demo.shutdown().await.expect("clean shutdown");
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    demo: faultline_demo::cli::DemoArgs,
}

fn command(args: &[&str]) -> Result<(), faultline_demo::DemoError> {
    let cli = Cli::try_parse_from(std::iter::once("demo").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{args:?} does not parse: {e}"));
    faultline_demo::cli::main(cli.demo)
}

#[test]
fn fault_and_load_commands_drive_a_running_demo() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let h = runtime.block_on(Harness::start());
    let payment = h.demo.shop.service("payment").expect("payment").clone();
    let admin = payment.admin_url();
    command(&[
        "fault",
        "inject",
        "payment",
        "latency",
        "--latency",
        "200ms",
        "--jitter",
        "20ms",
        "--route",
        "/charges",
        "--duration",
        "1m",
        "--admin",
        &admin,
    ])
    .expect("inject");
    let active = payment.faults.active();
    assert_eq!(active.len(), 1);
    assert_eq!(
        active[0].request.fault,
        FaultKind::Latency {
            fixed_ms: 200,
            jitter_ms: 20
        }
    );
    assert_eq!(active[0].request.route.as_deref(), Some("/charges"));
    assert_eq!(active[0].request.duration_ms, Some(60_000));
    command(&["fault", "list", "payment", "--history", "--admin", &admin]).expect("list");
    command(&["fault", "clear", "payment", "--admin", &admin]).expect("clear");
    assert!(payment.faults.active().is_empty());

    let refused = command(&["fault", "inject", "payment", "meteor", "--admin", &admin]);
    assert!(refused.is_err());
    let unsupported = command(&[
        "fault",
        "inject",
        "payment",
        "queue-stall",
        "--admin",
        &admin,
    ])
    .expect_err("payment has no queue consumer");
    assert!(
        unsupported.to_string().contains("queue-stall"),
        "{unsupported}"
    );
    let unknown_service = command(&["fault", "clear", "warehouse"]).expect_err("no such service");
    assert!(unknown_service.to_string().contains("warehouse"));

    command(&[
        "load",
        "--target",
        &h.gateway(),
        "--rps",
        "20",
        "--duration",
        "1s",
        "--json",
    ])
    .expect("load runs");
    runtime.block_on(h.demo.shutdown()).expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shop_can_export_to_an_external_backend() {
    let dir = tempfile::tempdir().expect("temp dir");
    let local = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let backend = faultline_server::start(
        faultline_server::ServeOptions {
            data_dir: Some(dir.path().to_path_buf()),
            otlp_grpc: Some(local),
            otlp_http: Some(local),
            http: Some(local),
            ..Default::default()
        }
        .resolve()
        .expect("config"),
    )
    .await
    .expect("backend starts");
    let mut config = DemoConfig::ephemeral();
    config.external_otlp = Some(format!("http://{}", backend.otlp_http_addr));
    let demo = demo::start(config).await.expect("demo starts");
    assert!(demo.server.is_none() && demo.query_url().is_none());
    let http = reqwest::Client::new();
    let response = http
        .get(format!("{}/api/products/SKU-0001", demo.shop.gateway_url()))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 200);
    let trace_id = response
        .headers()
        .get("x-trace-id")
        .and_then(|v| v.to_str().ok())
        .expect("X-Trace-Id")
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        demo.shop.flush().await;
        let status = http
            .get(format!(
                "http://{}/api/traces/{trace_id}",
                backend.http_addr
            ))
            .send()
            .await
            .expect("query answers")
            .status();
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "trace never reached the backend");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    demo.shutdown().await.expect("demo stops");
    backend.shutdown().await.expect("backend stops");
}
