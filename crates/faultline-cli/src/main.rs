//! The `faultline` command.

use clap::{Parser, Subcommand};
use faultline_server::ServeOptions;

/// The server allocates and frees millions of small strings per second across threads (spans
/// decoded on one, freed after their block is written on another). glibc's malloc spent a
/// quarter of ingest CPU on that; mimalloc kept the kernel busy zeroing re-faulted pages (13%
/// of samples); jemalloc did best (BENCHMARKS.md, ingest run 4).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Faultline: distributed tracing and fault localisation in one binary.
///
/// Receives OpenTelemetry spans (OTLP gRPC :4317, OTLP HTTP :4318), stores them in Parquet
/// files, and answers Jaeger- and Grafana-compatible queries (:16686).
#[derive(Parser, Debug)]
#[command(name = "faultline", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the trace server: OTLP receivers, storage and query API.
    ///
    /// Every flag can also be set as FAULTLINE_<FLAG> (e.g. FAULTLINE_DATA_DIR) or in the TOML
    /// file given by --config; flags win over the environment, which wins over the file.
    Serve(Box<ServeOptions>),
    /// Measure Faultline: throughput, cost, size on disk and query latency.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Run the demo shop: Faultline, six traced services and load, with faults to inject.
    ///
    /// `faultline demo` runs everything until Ctrl-C; `faultline demo load` and
    /// `faultline demo fault inject|clear|list` work against a running demo.
    Demo(Box<faultline_demo::cli::DemoArgs>),
    /// Inject faults into the demo under load and measure how fast and how well Faultline
    /// detects and localises them; writes a Markdown report with SVG plots.
    Experiment(Box<faultline_experiment::cli::ExperimentArgs>),
    /// Work with log files: `faultline logs ingest FILE|-` ships JSON-lines logs.
    #[command(subcommand)]
    Logs(LogsCommand),
}

/// `faultline logs ...`.
#[derive(Subcommand, Debug)]
enum LogsCommand {
    /// Ship JSON-lines logs from FILE (or `-` for stdin) to Faultline's OTLP/HTTP /v1/logs.
    ///
    /// Recognises trace_id/traceId/trace.id/dd.trace_id/traceparent, span IDs, ts/time/
    /// timestamp/@timestamp (RFC 3339 or epoch s/ms/µs/ns), level/severity/lvl, msg/message/
    /// body and service/service.name; other fields become attributes. Lines that are not JSON
    /// objects are sent as plain messages and counted. Progress goes to stderr.
    Ingest(LogsIngestArgs),
}

/// Options of `faultline logs ingest`.
#[derive(clap::Args, Debug)]
struct LogsIngestArgs {
    /// The file to read, or `-` for standard input.
    #[arg(value_name = "FILE|-")]
    input: String,
    /// Keep reading as the file grows, like `tail -F` (follows rotation and truncation).
    #[arg(long, short = 'f')]
    follow: bool,
    /// Faultline's OTLP/HTTP address.
    #[arg(long, default_value = "http://127.0.0.1:4318", value_name = "URL")]
    endpoint: String,
    /// service.name for lines that name no service.
    #[arg(long, default_value = "unknown_service", value_name = "NAME")]
    service: String,
    /// Records per request.
    #[arg(long, default_value_t = 500, value_name = "N")]
    batch_size: usize,
    /// Longest a read line waits before it is sent, in milliseconds.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    flush_interval_ms: u64,
    /// Longest line kept, in bytes; longer lines are truncated and counted.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    max_line_bytes: usize,
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Durable OTLP/gRPC ingest: starts a server in a separate process, streams realistic
    /// spans at it, and reports spans/s, server CPU per span, peak RSS, bytes per span on disk,
    /// and trace-by-ID and search latency.
    Ingest(faultline_bench::ingest::IngestArgs),
    /// Durable OTLP/HTTP log ingest: starts a server in a separate process, sends generated
    /// log records (most inside traces), and reports records/s per server CPU-second, bytes
    /// per record on disk and logs-by-trace-ID latency.
    Logs(faultline_bench::logs::LogsArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Demo(args) = cli.command {
        // The demo sets up its own logging (JSON with trace ids) and runtime.
        return Ok(faultline_demo::cli::main(*args)?);
    }
    if let Command::Experiment(args) = cli.command {
        // Captures the shop's logs itself and runs its own runtime, like the demo.
        return Ok(faultline_experiment::cli::main(*args)?);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FAULTLINE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Serve(opts) => serve(*opts).await,
            Command::Bench(BenchCommand::Ingest(args)) => {
                let exe = std::env::current_exe()?;
                let report = faultline_bench::ingest::run(&args, &exe).await?;
                println!("{}", report.to_markdown());
                Ok(())
            }
            Command::Bench(BenchCommand::Logs(args)) => {
                let exe = std::env::current_exe()?;
                let report = faultline_bench::logs::run(&args, &exe).await?;
                println!("{}", report.to_markdown());
                Ok(())
            }
            Command::Logs(LogsCommand::Ingest(args)) => logs_ingest(args).await,
            Command::Demo(_) | Command::Experiment(_) => {
                unreachable!("handled before the runtime starts")
            }
        }
    })
}

async fn serve(opts: ServeOptions) -> anyhow::Result<()> {
    let config = opts.resolve()?;
    tracing::info!(
        data_dir = %config.data_dir.display(),
        storage = ?config.storage,
        retention = ?config.retention,
        ack = ?config.ack,
        "starting faultline {}",
        env!("CARGO_PKG_VERSION")
    );
    let server = faultline_server::start(config).await?;
    server.run_until(shutdown_signal()).await?;
    tracing::info!("stopped cleanly");
    Ok(())
}

async fn logs_ingest(args: LogsIngestArgs) -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let opts = faultline_logship::ShipOptions {
        path: (args.input != "-").then(|| args.input.clone().into()),
        follow: args.follow,
        endpoint: args.endpoint,
        service: args.service,
        batch_size: args.batch_size,
        flush_interval: std::time::Duration::from_millis(args.flush_interval_ms.max(1)),
        max_line_bytes: args.max_line_bytes,
        ..Default::default()
    };
    let progress = Arc::new(faultline_logship::Progress::default());
    let stop = Arc::new(AtomicBool::new(false));
    let ticker = {
        let progress = Arc::clone(&progress);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                eprintln!("{}", progress.summary());
            }
        })
    };
    let run = faultline_logship::run(opts, Arc::clone(&progress), Arc::clone(&stop));
    tokio::pin!(run);
    let result = tokio::select! {
        r = &mut run => r,
        _ = shutdown_signal() => {
            // Stop reading; what was read is still sent. A read blocked on stdin never sees
            // the flag, so give the last batch a few seconds and no more.
            stop.store(true, Ordering::Relaxed);
            match tokio::time::timeout(std::time::Duration::from_secs(10), run).await {
                Ok(r) => r,
                Err(_) => {
                    eprintln!("stopped while waiting for input; lines not yet sent were dropped");
                    Ok(())
                }
            }
        }
    };
    ticker.abort();
    eprintln!("{}", progress.summary());
    Ok(result?)
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
