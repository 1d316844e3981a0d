//! The `faultline` command.

use clap::{Parser, Subcommand};
use faultline_server::ServeOptions;

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
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Durable OTLP/gRPC ingest: starts a server in a separate process, streams realistic
    /// spans at it, and reports spans/s, server CPU per span, peak RSS, bytes per span on disk,
    /// and trace-by-ID and search latency.
    Ingest(faultline_bench::ingest::IngestArgs),
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
