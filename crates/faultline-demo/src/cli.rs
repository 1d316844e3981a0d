//! The `faultline demo` command line: run the demo, run load on its own, and inject, clear or
//! list faults through the services' admin endpoints.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Args, Subcommand};
use faultline_instrument::logs::CorrelatedFormat;
use tokio::sync::watch;

use crate::demo::{DemoConfig, RunOptions};
use crate::fault::{parse_kind, AdminClient, FaultRequest};
use crate::load::{run_load, JourneyMix, LoadConfig, LoadStats, RateProfile};
use crate::shop::{ADMIN_OFFSET, SERVICES};
use crate::DemoError;

/// Run the demo shop: Faultline, six traced services, a third party and load, in one command.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DemoArgs {
    #[command(subcommand)]
    command: Option<DemoCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum DemoCommand {
    /// Open-loop load against a running shop's gateway, with a latency and error report.
    Load(LoadArgs),
    /// Inject, clear or list faults in a running demo's services.
    #[command(subcommand)]
    Fault(FaultCommand),
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (use e.g. 300ms, 30s, 2m)"))
}

/// `faultline demo` flags.
#[derive(Args, Debug)]
struct RunArgs {
    /// Keep Faultline's data, the inventory database, the fault ledger and the logs here
    /// (default: a temporary directory removed at exit).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Faultline's OTLP/gRPC address.
    #[arg(long, default_value = "127.0.0.1:4317", value_name = "ADDR")]
    otlp_grpc: SocketAddr,
    /// Faultline's OTLP/HTTP address.
    #[arg(long, default_value = "127.0.0.1:4318", value_name = "ADDR")]
    otlp_http: SocketAddr,
    /// Faultline's query API / UI address.
    #[arg(long, default_value = "127.0.0.1:16686", value_name = "ADDR")]
    http: SocketAddr,
    /// First shop port: gateway, user, order, inventory, payment, notification and the third
    /// party follow; admin ports are these plus 1000. 0 picks free ports.
    #[arg(long, default_value_t = 8080, value_name = "PORT")]
    shop_port: u16,
    /// Load generator rate, requests per second (0 turns it off).
    #[arg(long, default_value_t = 50.0, value_name = "N")]
    rps: f64,
    /// Journey mix of the load generator.
    #[arg(long, default_value = "browse=40,product=30,cart=20,checkout=10")]
    mix: String,
    /// Stop after this long (default: run until Ctrl-C).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    duration: Option<Duration>,
    /// Play a scripted fault timeline: tour, db-pool, payment-provider-timeout, slow-checkout.
    #[arg(long, value_name = "NAME")]
    scenario: Option<String>,
    /// Requests per second the gateway admits before answering 429.
    #[arg(long, default_value_t = 1000.0, value_name = "N")]
    gateway_rate_limit: f64,
    /// Cut the embedded server's in-memory head into a block at this size (smaller than
    /// `faultline serve`'s default to keep the demo's memory small).
    #[arg(long, default_value_t = 32 * 1024 * 1024, value_name = "BYTES")]
    max_head_bytes: usize,
    /// Send the shop's spans to this OTLP/HTTP base URL (e.g. another Faultline or any OTLP
    /// backend) instead of starting the embedded server.
    #[arg(long, value_name = "URL")]
    external_otlp: Option<String>,
    /// Print a load line this often.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    report_every: Duration,
}

/// `faultline demo load` flags.
#[derive(Args, Debug)]
struct LoadArgs {
    /// The gateway's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080", value_name = "URL")]
    target: String,
    /// Requests per second (the starting rate when stepping).
    #[arg(long, default_value_t = 200.0, value_name = "N")]
    rps: f64,
    /// How long to run.
    #[arg(long, default_value = "1m", value_parser = parse_duration, value_name = "DURATION")]
    duration: Duration,
    /// Add this many requests per second every --step-every (stepped load).
    #[arg(long, value_name = "N", requires = "step_every")]
    step_rps: Option<f64>,
    /// Time between steps.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION", requires = "step_rps")]
    step_every: Option<Duration>,
    /// Ceiling of a stepped rate.
    #[arg(long, value_name = "N")]
    max_rps: Option<f64>,
    /// Journey mix.
    #[arg(long, default_value = "browse=40,product=30,cart=20,checkout=10")]
    mix: String,
    /// Per-request timeout.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    timeout: Duration,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Where a service's admin endpoint is.
#[derive(Args, Debug)]
struct AdminTarget {
    /// The admin base URL (default: derived from --shop-port and the service).
    #[arg(long, value_name = "URL")]
    admin: Option<String>,
    /// The running demo's --shop-port.
    #[arg(long, default_value_t = 8080, value_name = "PORT")]
    shop_port: u16,
    /// Host of the running demo.
    #[arg(long, default_value = "127.0.0.1", value_name = "IP")]
    host: IpAddr,
}

impl AdminTarget {
    fn url(&self, service: &str) -> Result<String, DemoError> {
        if let Some(url) = &self.admin {
            return Ok(url.clone());
        }
        let index = SERVICES.iter().position(|s| *s == service).ok_or_else(|| {
            DemoError::Config(format!(
                "unknown service {service:?}; expected one of {}",
                SERVICES.join(", ")
            ))
        })?;
        let port = u16::try_from(index)
            .ok()
            .and_then(|i| self.shop_port.checked_add(ADMIN_OFFSET + i))
            .ok_or_else(|| DemoError::Config("--shop-port is too high".into()))?;
        Ok(format!("http://{}", SocketAddr::new(self.host, port)))
    }
}

#[derive(Subcommand, Debug)]
enum FaultCommand {
    /// Start a fault, e.g. `inject inventory db-pool-exhaustion --duration 2m`.
    Inject {
        /// gateway, user, order, inventory, payment or notification.
        service: String,
        /// latency, errors, db-pool-exhaustion, slow-query, third-party-timeout, down,
        /// cpu-saturation or queue-stall.
        fault: String,
        /// Only requests whose path starts with this.
        #[arg(long)]
        route: Option<String>,
        /// Only calls to this dependency (e.g. payment, inventory, db, payment-provider, user).
        #[arg(long)]
        dependency: Option<String>,
        /// Fixed latency (latency) or extra query time (slow-query).
        #[arg(long, value_parser = parse_duration)]
        latency: Option<Duration>,
        /// Random extra latency, up to this (latency).
        #[arg(long, value_parser = parse_duration)]
        jitter: Option<Duration>,
        /// Fraction of requests that fail (errors), 0 < rate <= 1.
        #[arg(long)]
        rate: Option<f64>,
        /// Connections to hold (db-pool-exhaustion; default all).
        #[arg(long)]
        connections: Option<u32>,
        /// CPU per request (cpu-saturation).
        #[arg(long, value_parser = parse_duration)]
        burn: Option<Duration>,
        /// End by itself after this long (default: until cleared).
        #[arg(long, value_parser = parse_duration)]
        duration: Option<Duration>,
        #[command(flatten)]
        target: AdminTarget,
    },
    /// End one fault (--id) or all faults of a service.
    Clear {
        /// The service.
        service: String,
        /// Only this fault.
        #[arg(long)]
        id: Option<u64>,
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Active faults of every service (or one), with --history every past one too.
    List {
        /// Only this service.
        service: Option<String>,
        /// Also show ended faults.
        #[arg(long)]
        history: bool,
        #[command(flatten)]
        target: AdminTarget,
    },
}

/// Runs `faultline demo ...` to completion on its own runtime.
pub fn main(args: DemoArgs) -> Result<(), DemoError> {
    if args.command.is_none() && std::env::var_os("OTEL_SERVICE_NAME").is_some() {
        // It would give all six services one name; each names itself. Removed while this is
        // the only thread, before the runtime starts.
        eprintln!("note: OTEL_SERVICE_NAME is ignored by the demo");
        std::env::remove_var("OTEL_SERVICE_NAME");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| DemoError::Io {
            what: "starting the async runtime".into(),
            source,
        })?;
    match args.command {
        None => runtime.block_on(run_demo(args.run)),
        Some(DemoCommand::Load(load)) => {
            init_plain_logging();
            runtime.block_on(run_load_command(load))
        }
        Some(DemoCommand::Fault(fault)) => {
            init_plain_logging();
            runtime.block_on(run_fault_command(fault))
        }
    }
}

fn init_plain_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FAULTLINE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

/// Service logs go to a JSON file with trace and span ids (and the request id), so the
/// terminal stays readable; each service also exports its own logs over OTLP.
fn init_json_logging(path: &std::path::Path) -> Result<(), DemoError> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let file = File::create(path).map_err(|source| DemoError::Io {
        what: format!("creating {}", path.display()),
        source,
    })?;
    let file = Arc::new(Mutex::new(file));
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::EnvFilter::try_from_env("FAULTLINE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .event_format(CorrelatedFormat::json().with_baggage(&["request_id"]))
                .with_writer(move || SharedFile(Arc::clone(&file))),
        )
        // Events raised while a service handles a request go to that service's logger.
        .with(faultline_instrument::logs::OtlpLogLayer::routed())
        .try_init();
    Ok(())
}

struct SharedFile(Arc<Mutex<File>>);

impl std::io::Write for SharedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut file = self
            .0
            .lock()
            .map_err(|_| std::io::Error::other("log file lock poisoned"))?;
        // One event is one write, so lines from concurrent requests never interleave.
        file.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn run_demo(args: RunArgs) -> Result<(), DemoError> {
    let temp = match &args.data_dir {
        Some(_) => None,
        None => Some(
            tempfile::Builder::new()
                .prefix("faultline-demo-")
                .tempdir()
                .map_err(|source| DemoError::Io {
                    what: "creating a temporary data directory".into(),
                    source,
                })?,
        ),
    };
    let data_dir = match (&args.data_dir, &temp) {
        (Some(dir), _) => dir.clone(),
        (None, Some(temp)) => temp.path().to_path_buf(),
        (None, None) => unreachable!("a temporary directory exists when none was given"),
    };
    std::fs::create_dir_all(&data_dir).map_err(|source| DemoError::Io {
        what: format!("creating {}", data_dir.display()),
        source,
    })?;
    let log_path = data_dir.join("logs.jsonl");
    init_json_logging(&log_path)?;
    let scenario = args
        .scenario
        .as_deref()
        .map(crate::scenario::find)
        .transpose()?;
    let load = if args.rps > 0.0 {
        let mut load = LoadConfig::new(String::new(), args.rps);
        load.mix = JourneyMix::parse(&args.mix)?;
        Some(load)
    } else {
        None
    };
    let config = DemoConfig {
        data_dir: Some(data_dir),
        otlp_grpc: args.otlp_grpc,
        otlp_http: args.otlp_http,
        http: args.http,
        shop_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        shop_port: args.shop_port,
        gateway_rate_limit: args.gateway_rate_limit,
        max_head_bytes: args.max_head_bytes,
        external_otlp: args.external_otlp,
    };
    println!(
        "service logs (JSON, with trace_id/span_id): {}",
        log_path.display()
    );
    crate::demo::run(
        config,
        RunOptions {
            load,
            duration: args.duration,
            scenario,
            report_every: args.report_every,
        },
        shutdown_signal(),
    )
    .await?;
    drop(temp);
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

async fn run_load_command(args: LoadArgs) -> Result<(), DemoError> {
    let profile = match (args.step_rps, args.step_every) {
        (Some(step), Some(every)) => RateProfile::Stepped {
            start: args.rps,
            step,
            every,
            max: args.max_rps.unwrap_or(f64::MAX.min(100_000.0)),
        },
        _ => RateProfile::Constant(args.rps),
    };
    let config = LoadConfig {
        target: args.target.clone(),
        profile,
        duration: Some(args.duration),
        mix: JourneyMix::parse(&args.mix)?,
        max_in_flight: 10_000,
        timeout: args.timeout,
    };
    eprintln!(
        "open-loop load against {} for {}: {:?}",
        args.target,
        humantime::format_duration(args.duration),
        config.profile
    );
    let (stop_tx, stop) = watch::channel(false);
    let stats = Arc::new(LoadStats::default());
    let reporter = {
        let stats = Arc::clone(&stats);
        let mut stop = stop.clone();
        tokio::spawn(async move {
            stats.take_window();
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(10)) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                eprintln!("[load] {}", stats.take_window().summary_line());
            }
        })
    };
    let run = run_load(config, stats, stop);
    let report = tokio::select! {
        r = run => r?,
        _ = shutdown_signal() => {
            let _ = stop_tx.send(true);
            return Ok(());
        }
    };
    let _ = stop_tx.send(true);
    let _ = reporter.await;
    if args.json {
        let json = serde_json::to_string_pretty(&report)
            .map_err(|e| DemoError::Config(format!("report: {e}")))?;
        println!("{json}");
    } else {
        println!("{report}");
    }
    Ok(())
}

async fn run_fault_command(command: FaultCommand) -> Result<(), DemoError> {
    match command {
        FaultCommand::Inject {
            service,
            fault,
            route,
            dependency,
            latency,
            jitter,
            rate,
            connections,
            burn,
            duration,
            target,
        } => {
            let kind = parse_kind(&fault, latency, jitter, rate, connections, burn)?;
            let request = FaultRequest {
                fault: kind,
                route,
                dependency,
                duration_ms: duration.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            };
            request.validate()?;
            let record = AdminClient::new(&target.url(&service)?)?
                .inject(&request)
                .await?;
            println!("started {record}");
        }
        FaultCommand::Clear {
            service,
            id,
            target,
        } => {
            let cleared = AdminClient::new(&target.url(&service)?)?.clear(id).await?;
            if cleared.is_empty() {
                println!("{service} had no active fault");
            }
            for record in cleared {
                println!("cleared {record}");
            }
        }
        FaultCommand::List {
            service,
            history,
            target,
        } => {
            let services: Vec<String> = match service {
                Some(s) => vec![s],
                None => SERVICES.iter().map(|s| (*s).to_owned()).collect(),
            };
            for service in services {
                let listing = match AdminClient::new(&target.url(&service)?)?.list().await {
                    Ok(l) => l,
                    Err(err) => {
                        println!("{service}: unreachable ({err})");
                        continue;
                    }
                };
                let records = if history {
                    listing.history
                } else {
                    listing.active
                };
                if records.is_empty() {
                    println!(
                        "{service}: no {}fault",
                        if history { "" } else { "active " }
                    );
                }
                for r in records {
                    let end = match (r.ended_at, &r.end_reason) {
                        (Some(end), Some(reason)) => format!(" ended {} ({reason})", end.0),
                        _ => " active".to_owned(),
                    };
                    println!("{r}  started {}{end}", r.started_at.0);
                }
            }
        }
    }
    Ok(())
}
