//! The `faultline experiment` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::logs::LogCapture;
use crate::plan::{self, PlanOptions};
use crate::report;
use crate::run::{self, ExperimentConfig};
use crate::ExperimentError;

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (use e.g. 30s, 2m)"))
}

/// Inject faults into the demo shop under load and measure detection and localisation.
///
/// Runs Faultline, the demo shop and its load generator in this process, injects `--faults`
/// faults (every type, several target services, seeded random order and quiet periods) and
/// polls Faultline's incidents API every second. Writes a Markdown report, SVG plots and the
/// raw results (results.json). Ctrl-C stops early and writes a partial report.
#[derive(Args, Debug, Clone)]
pub struct ExperimentArgs {
    /// How many faults to inject (each type at least once when there are enough).
    #[arg(long, default_value_t = 14)]
    faults: usize,
    /// Random seed of the order, targets and quiet periods.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Load generator requests per second.
    #[arg(long, default_value_t = 50.0)]
    rps: f64,
    /// How long each fault lasts.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    fault_duration: Duration,
    /// Shortest quiet period before each fault (each is drawn from this to 1.5 times it).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    quiet: Duration,
    /// After a fault, time not counted as quiet (its incidents may still resolve or open late).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    settle: Duration,
    /// Load without faults before the first quiet period.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    warmup: Duration,
    /// Where the SVG plots and results.json go.
    #[arg(long, default_value = "docs/experiment", value_name = "DIR")]
    out: PathBuf,
    /// The Markdown report.
    #[arg(long, default_value = "docs/experiment.md", value_name = "FILE")]
    report: PathBuf,
    /// Fault types to use, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    types: Vec<String>,
    /// Services to inject into, comma-separated (default: every supported target).
    #[arg(long, value_delimiter = ',')]
    targets: Vec<String>,
    /// Rate of the request-id-tagged checkout probe for log retrieval (0: off).
    #[arg(long, default_value_t = 2.0)]
    probe_rps: f64,
    /// ± windows of the baseline log search around a failing request, comma-separated; each
    /// is scored and the best is the headline baseline.
    #[arg(long, default_value = "1s,5s", value_delimiter = ',', value_parser = parse_duration)]
    log_window: Vec<Duration>,
    /// Failing requests scored for log retrieval, at most.
    #[arg(long, default_value_t = 300)]
    log_sample: usize,
    /// Faultline's query API / UI address, to watch the run in a browser (port 0: any).
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    http: SocketAddr,
}

/// Runs `faultline experiment`: sets up logging (captured for log retrieval, warnings to
/// stderr), the runtime, and writes the report.
pub fn main(args: ExperimentArgs) -> Result<(), ExperimentError> {
    if !(args.rps.is_finite() && args.rps > 0.0) {
        return Err(ExperimentError::Config("--rps must be positive".into()));
    }
    if args.fault_duration < Duration::from_secs(5) {
        return Err(ExperimentError::Config(
            "--fault-duration must be at least 5s".into(),
        ));
    }
    let plan = plan::draw(&PlanOptions {
        count: args.faults,
        seed: args.seed,
        types: args.types.clone(),
        targets: args.targets.clone(),
        quiet: args.quiet,
    })?;
    let capture = LogCapture::new(2_000_000);
    let stderr_filter = tracing_subscriber::EnvFilter::try_from_env("FAULTLINE_LOG")
        // The shop's own errors are the point of the experiment, not news: they are captured,
        // not printed.
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("error,faultline_demo=off,faultline_instrument=off")
        });
    let _ = tracing_subscriber::registry()
        .with(
            capture
                .layer()
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(stderr_filter),
        )
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| ExperimentError::Io {
            what: "starting the async runtime".into(),
            source,
        })?;
    let planned: f64 = plan
        .faults
        .iter()
        .map(|f| (f.quiet_before + args.fault_duration).as_secs_f64())
        .sum::<f64>()
        + args.warmup.as_secs_f64()
        + args.quiet.as_secs_f64();
    eprintln!(
        "[experiment] {} faults, seed {}, about {:.0} min:",
        plan.faults.len(),
        args.seed,
        planned / 60.0
    );
    for (i, f) in plan.faults.iter().enumerate() {
        eprintln!(
            "[experiment]   {:>2}. {} into {}",
            i + 1,
            f.fault,
            f.service
        );
    }
    let config = ExperimentConfig {
        plan,
        seed: args.seed,
        rps: args.rps,
        fault_duration: args.fault_duration,
        warmup: args.warmup,
        settle: args.settle,
        final_quiet: args.quiet,
        poll_every: Duration::from_secs(1),
        probe_rps: args.probe_rps,
        log_windows: args.log_window,
        log_sample: args.log_sample,
        http: args.http,
    };
    let command = std::iter::once("faultline".to_owned())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let result = runtime.block_on(run::run(config, Some(capture), async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }))?;
    report::write(&result, &args.report, &args.out, &command)?;
    let s = report::summarize(&result);
    let or_dash = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.1} s"));
    println!(
        "{} faults: detected {} (median {}), localized {} (median {}), top-1 {:.0}%, top-3 {:.0}%, \
         {} false alarm(s) in {:.1} min of quiet time",
        s.faults,
        s.detected,
        or_dash(s.detect_median_s),
        s.localized,
        or_dash(s.localize_median_s),
        100.0 * s.top1,
        100.0 * s.top3,
        s.false_alarms,
        s.quiet_hours * 60.0
    );
    println!(
        "report: {}; plots and results.json in {}",
        args.report.display(),
        args.out.display()
    );
    Ok(())
}
