//! `faultline demo`: the embedded Faultline server, the shop and the load generator in one
//! process, with the URLs and fault commands printed for the user.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use faultline_server::{RunningServer, ServeOptions};
use tokio::sync::{broadcast, watch};

use crate::fault::{FaultEvent, FaultLedger};
use crate::load::{run_load, LoadConfig, LoadReport, LoadStats};
use crate::scenario::{self, Scenario};
use crate::shop::{start_shop, RunningShop, ServiceInfo, ShopConfig};
use crate::DemoError;

/// Where the demo listens and keeps its data.
#[derive(Clone, Debug)]
pub struct DemoConfig {
    /// Data directory; `None` uses a temporary one removed at exit.
    pub data_dir: Option<PathBuf>,
    /// Faultline's OTLP/gRPC address.
    pub otlp_grpc: SocketAddr,
    /// Faultline's OTLP/HTTP address (the shop exports here).
    pub otlp_http: SocketAddr,
    /// Faultline's query API and UI address.
    pub http: SocketAddr,
    /// Interface of the shop's services.
    pub shop_ip: IpAddr,
    /// First shop port (see [`ShopConfig::base_port`]); 0 picks free ports.
    pub shop_port: u16,
    /// Requests per second the gateway admits.
    pub gateway_rate_limit: f64,
    /// The embedded server's in-memory head is cut into a block at this size. Smaller than
    /// `faultline serve`'s default, so the demo's memory stays laptop-sized.
    pub max_head_bytes: usize,
    /// Export to this OTLP/HTTP base URL instead of starting the embedded server (to measure
    /// the shop alone, or to compare another backend).
    pub external_otlp: Option<String>,
}

impl Default for DemoConfig {
    fn default() -> Self {
        let local = |port| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        DemoConfig {
            data_dir: None,
            otlp_grpc: local(4317),
            otlp_http: local(4318),
            http: local(16686),
            shop_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            shop_port: 8080,
            gateway_rate_limit: 1_000.0,
            max_head_bytes: 32 * 1024 * 1024,
            external_otlp: None,
        }
    }
}

impl DemoConfig {
    /// Every listener on a free loopback port, data in a temporary directory: for tests.
    pub fn ephemeral() -> Self {
        let local = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
        DemoConfig {
            otlp_grpc: local,
            otlp_http: local,
            http: local,
            shop_port: 0,
            ..DemoConfig::default()
        }
    }
}

/// The server and the shop, running.
pub struct RunningDemo {
    /// The embedded Faultline server, unless the shop exports elsewhere.
    pub server: Option<RunningServer>,
    /// The shop.
    pub shop: RunningShop,
    /// Where data goes.
    pub data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

/// An address a browser can open: unspecified addresses become loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
    } else {
        addr
    }
}

impl RunningDemo {
    /// The embedded server's query API / UI base URL.
    pub fn query_url(&self) -> Option<String> {
        self.server
            .as_ref()
            .map(|s| format!("http://{}", reachable(s.http_addr)))
    }

    /// Stops the shop (flushing its spans into the server), then the server.
    pub async fn shutdown(self) -> Result<(), DemoError> {
        self.shop.shutdown().await;
        if let Some(server) = self.server {
            server.shutdown().await?;
        }
        Ok(())
    }
}

/// Creates (or takes) the data directory, starts the server, then the shop exporting to it.
pub async fn start(config: DemoConfig) -> Result<RunningDemo, DemoError> {
    let (data_dir, temp) = match &config.data_dir {
        Some(dir) => (dir.clone(), None),
        None => {
            let temp = tempfile::Builder::new()
                .prefix("faultline-demo-")
                .tempdir()
                .map_err(|source| DemoError::Io {
                    what: "creating a temporary data directory".into(),
                    source,
                })?;
            (temp.path().to_path_buf(), Some(temp))
        }
    };
    std::fs::create_dir_all(&data_dir).map_err(|source| DemoError::Io {
        what: format!("creating {}", data_dir.display()),
        source,
    })?;
    let ledger_path = data_dir.join("faults.jsonl");
    let ledger = FaultLedger::with_file(&ledger_path).map_err(|source| DemoError::Io {
        what: format!("opening {}", ledger_path.display()),
        source,
    })?;
    let (server, otlp_endpoint) = match &config.external_otlp {
        Some(url) => (None, url.trim_end_matches('/').to_owned()),
        None => {
            let serve = ServeOptions {
                data_dir: Some(data_dir.join("faultline")),
                otlp_grpc: Some(config.otlp_grpc),
                otlp_http: Some(config.otlp_http),
                http: Some(config.http),
                max_head_bytes: Some(config.max_head_bytes),
                ..ServeOptions::default()
            }
            .resolve()?;
            let server = faultline_server::start(serve).await?;
            let endpoint = format!("http://{}", reachable(server.otlp_http_addr));
            (Some(server), endpoint)
        }
    };
    let mut shop_config = ShopConfig::new(otlp_endpoint, data_dir.join("shop"));
    shop_config.ip = config.shop_ip;
    shop_config.base_port = config.shop_port;
    shop_config.gateway_rate_limit = config.gateway_rate_limit;
    shop_config.ledger = ledger;
    let shop = match start_shop(shop_config).await {
        Ok(shop) => shop,
        Err(err) => {
            if let Some(server) = server {
                let _ = server.shutdown().await;
            }
            return Err(err);
        }
    };
    Ok(RunningDemo {
        server,
        shop,
        data_dir,
        _temp: temp,
    })
}

/// What runs on top of the shop.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Load; `None` runs the shop idle.
    pub load: Option<LoadConfig>,
    /// Stop after this long; `None` runs until the signal.
    pub duration: Option<Duration>,
    /// A scripted fault timeline.
    pub scenario: Option<Scenario>,
    /// How often to print a load line.
    pub report_every: Duration,
}

/// Runs the whole demo until `signal` completes (Ctrl-C) or the duration is over; prints as it
/// goes and returns the load generator's report.
pub async fn run(
    config: DemoConfig,
    options: RunOptions,
    signal: impl Future<Output = ()>,
) -> Result<Option<LoadReport>, DemoError> {
    let demo = start(config).await?;
    println!("{}", banner(&demo, &options));
    let (stop_tx, stop) = watch::channel(false);
    let mut background = tokio::task::JoinSet::new();
    background.spawn(print_fault_events(
        demo.shop.ledger.subscribe(),
        stop.clone(),
    ));
    let stats = Arc::new(LoadStats::default());
    let load = options.load.clone().map(|mut load| {
        load.target = demo.shop.gateway_url();
        let stats = Arc::clone(&stats);
        tokio::spawn(run_load(load, stats, stop.clone()))
    });
    if load.is_some() {
        background.spawn(print_load_windows(
            Arc::clone(&stats),
            demo.shop.services.clone(),
            options.report_every,
            stop.clone(),
        ));
    }
    if let Some(scenario) = options.scenario.clone() {
        let services = demo.shop.services.clone();
        let stop = stop.clone();
        background.spawn(async move {
            println!(
                "[scenario] {}: {} ({} steps)",
                scenario.name,
                scenario.description,
                scenario.steps.len()
            );
            match scenario::play(&scenario, &services, stop).await {
                Ok(()) => println!("[scenario] {}: every step injected", scenario.name),
                Err(err) => println!("[scenario] {} stopped: {err}", scenario.name),
            }
        });
    }
    tokio::select! {
        _ = signal => println!("\nstopping..."),
        _ = sleep_or_forever(options.duration) => println!("\nduration over, stopping..."),
    }
    let _ = stop_tx.send(true);
    let report = match load {
        Some(task) => match task.await {
            Ok(Ok(report)) => Some(report),
            Ok(Err(err)) => {
                println!("load generator failed: {err}");
                None
            }
            Err(err) => {
                println!("load generator crashed: {err}");
                None
            }
        },
        None => None,
    };
    background.abort_all();
    if let Some(report) = &report {
        println!("\nload generator, whole run:\n{report}");
    }
    let ledger = demo.shop.ledger.records();
    if !ledger.is_empty() {
        println!(
            "\n{} fault(s) injected; ground truth in {}",
            ledger.len(),
            demo.data_dir.join("faults.jsonl").display()
        );
    }
    demo.shop.flush().await;
    let counts: Vec<String> = demo
        .shop
        .export_counts()
        .into_iter()
        .map(|(name, exported, dropped)| {
            if dropped > 0 {
                format!("{name} {exported} ({dropped} dropped)")
            } else {
                format!("{name} {exported}")
            }
        })
        .collect();
    println!("spans exported: {}", counts.join(", "));
    demo.shutdown().await?;
    println!("stopped cleanly");
    Ok(report)
}

async fn sleep_or_forever(duration: Option<Duration>) {
    match duration {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

async fn print_fault_events(
    mut events: broadcast::Receiver<FaultEvent>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let event = tokio::select! {
            e = events.recv() => e,
            _ = stop.wait_for(|s| *s) => return,
        };
        match event {
            Ok(FaultEvent::Started(record)) => println!("[fault] started {record}"),
            Ok(FaultEvent::Ended(record)) => println!(
                "[fault] ended   {record} ({})",
                record.end_reason.as_deref().unwrap_or("ended")
            ),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                println!("[fault] ({n} announcements skipped; see faults.jsonl)")
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

async fn print_load_windows(
    stats: Arc<LoadStats>,
    services: Vec<ServiceInfo>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    stats.take_window();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let active: Vec<String> = services
            .iter()
            .flat_map(|s| s.faults.active())
            .map(|r| format!("#{} {} {}", r.id, r.service, r.request.fault.name()))
            .collect();
        let faults = if active.is_empty() {
            String::new()
        } else {
            format!("  | active: {}", active.join(", "))
        };
        println!("[load] {}{faults}", stats.take_window().summary_line());
    }
}

fn banner(demo: &RunningDemo, options: &RunOptions) -> String {
    let mut out = String::new();
    match (&demo.server, demo.query_url()) {
        (Some(server), Some(ui)) => {
            out.push_str(&format!(
                "  UI and query API  {ui}   (e.g. {ui}/api/traces?service=gateway&limit=20)\n"
            ));
            out.push_str(&format!(
                "  OTLP              grpc {}  http {}\n",
                reachable(server.otlp_grpc_addr),
                reachable(server.otlp_http_addr)
            ));
        }
        _ => out.push_str(&format!(
            "  Spans go to       {} (OTLP/HTTP; no embedded server)\n",
            demo.shop.otlp_endpoint()
        )),
    }
    out.push_str("  Shop services     traffic                     admin (faults)\n");
    for s in &demo.shop.services {
        out.push_str(&format!(
            "    {:<14}  {:<26}  {}/admin/faults\n",
            s.name,
            s.url(),
            s.admin_url()
        ));
    }
    out.push_str(&format!(
        "    {:<14}  http://{}  (third party, not traced)\n",
        "pay-provider", demo.shop.provider_addr
    ));
    out.push_str(&format!(
        "  Data              {}\n",
        demo.data_dir.display()
    ));
    match &options.load {
        Some(load) => out.push_str(&format!(
            "  Load              open loop, {:?}, against {}\n",
            load.profile,
            demo.shop.gateway_url()
        )),
        None => out.push_str("  Load              off\n"),
    }
    let gateway = demo.shop.gateway_url();
    out.push_str(&format!(
        "\nTry it:\n  curl -si {gateway}/api/products | grep -i x-trace-id\n  \
         curl -si -X POST {gateway}/api/checkout -H 'content-type: application/json' \
         -d '{{\"user_id\":7,\"items\":[{{\"sku\":\"SKU-0003\",\"quantity\":1}}]}}'\n"
    ));
    out.push_str(
        "\nInject a fault (from another terminal):\n  \
         faultline demo fault inject inventory db-pool-exhaustion --duration 2m\n  \
         faultline demo fault inject payment latency --latency 300ms --jitter 100ms\n  \
         faultline demo fault list\n  \
         faultline demo fault clear inventory\n\
         Faults: latency, errors, db-pool-exhaustion, slow-query, third-party-timeout, down, \
         cpu-saturation, queue-stall.\n\nCtrl-C stops everything.\n",
    );
    out
}
