//! Running an experiment: the demo under load, the planned faults one after the other with
//! quiet periods between them, the incidents API polled every second throughout.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faultline_demo::demo::{self, DemoConfig};
use faultline_demo::fault::FaultRequest;
use faultline_demo::load::{run_load, LoadConfig, LoadStats};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::api::{Api, GraphEdge};
use crate::logs::{self, LogCapture, LogEvaluation};
use crate::metrics::{self, FaultOutcome, Track, Tracker};
use crate::plan::{self, Plan};
use crate::{now_us, ExperimentError};

/// Everything an experiment needs to know.
#[derive(Clone, Debug)]
pub struct ExperimentConfig {
    /// What to inject, in which order.
    pub plan: Plan,
    /// The seed the plan was drawn with (recorded in the report).
    pub seed: u64,
    /// Load generator requests per second.
    pub rps: f64,
    /// How long each fault lasts.
    pub fault_duration: Duration,
    /// Load without faults before the first quiet period (the detector learns its baseline).
    pub warmup: Duration,
    /// After a fault ends, time excluded from the quiet windows (incidents may still be
    /// resolving or be opened late for it).
    pub settle: Duration,
    /// Quiet time after the last fault.
    pub final_quiet: Duration,
    /// How often to poll the incidents API.
    pub poll_every: Duration,
    /// Rate of the request-id-tagged checkout probe for log retrieval; 0 disables it.
    pub probe_rps: f64,
    /// ± windows of the baseline log search (each is scored).
    pub log_windows: Vec<Duration>,
    /// Failing requests scored for log retrieval at most.
    pub log_sample: usize,
    /// Faultline's query API address (port 0: any free port).
    pub http: SocketAddr,
}

/// One fault as it happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultResult {
    /// 1-based position in the plan.
    pub index: usize,
    /// Fault type.
    pub fault: String,
    /// Service injected into.
    pub service: String,
    /// Ledger id.
    pub ledger_id: u64,
    /// Start (µs, from the ledger).
    pub start_us: u64,
    /// End (µs, when cleared).
    pub end_us: u64,
    /// What Faultline made of it.
    pub outcome: FaultOutcome,
}

/// The service graph compared with the shop's real call edges.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Topology {
    /// The shop's call edges (client, server) that exist in its code.
    pub expected: Vec<(String, String)>,
    /// Those present in `/api/analysis/service-graph`.
    pub found: Vec<(String, String)>,
    /// Edges in the graph that are not in the expected list.
    pub extra: Vec<(String, String)>,
}

impl Topology {
    /// Found / expected.
    pub fn visibility(&self) -> f64 {
        if self.expected.is_empty() {
            0.0
        } else {
            self.found.len() as f64 / self.expected.len() as f64
        }
    }
}

/// The shop's real call edges, from its code: HTTP, gRPC, the queue, the uninstrumented third
/// party and the SQLite database (the last two are virtual nodes named by `peer.service` and
/// `db.system.name`).
pub const SHOP_EDGES: [(&str, &str); 9] = [
    ("gateway", "user"),
    ("gateway", "order"),
    ("gateway", "inventory"),
    ("order", "inventory"),
    ("order", "payment"),
    ("order", "notification"),
    ("notification", "user"),
    ("payment", "payment-provider"),
    ("inventory", "sqlite"),
];

/// Compares graph edges with [`SHOP_EDGES`].
pub fn topology(edges: &[GraphEdge]) -> Topology {
    let expected: Vec<(String, String)> = SHOP_EDGES
        .iter()
        .map(|(c, s)| ((*c).to_owned(), (*s).to_owned()))
        .collect();
    let present = |c: &str, s: &str| edges.iter().any(|e| e.client == c && e.server == s);
    let found = expected
        .iter()
        .filter(|(c, s)| present(c, s))
        .cloned()
        .collect();
    let mut extra: Vec<(String, String)> = edges
        .iter()
        .map(|e| (e.client.clone(), e.server.clone()))
        .filter(|e| !expected.contains(e))
        .collect();
    extra.sort();
    extra.dedup();
    Topology {
        expected,
        found,
        extra,
    }
}

/// Parameters as recorded in the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Parameters {
    /// Faults planned.
    pub faults: usize,
    /// Seed.
    pub seed: u64,
    /// Load rate.
    pub rps: f64,
    /// Fault duration, s.
    pub fault_duration_s: f64,
    /// Warm-up, s.
    pub warmup_s: f64,
    /// Settle time excluded from quiet windows, s.
    pub settle_s: f64,
    /// Poll interval, s.
    pub poll_s: f64,
    /// Probe rate.
    pub probe_rps: f64,
}

/// Everything measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExperimentResult {
    /// Parameters.
    pub parameters: Parameters,
    /// The plan.
    pub plan: Plan,
    /// Run start (µs).
    pub started_us: u64,
    /// Warm-up end (µs).
    pub warmup_end_us: u64,
    /// Run end (µs).
    pub ended_us: u64,
    /// Faults injected (fewer than planned when interrupted).
    pub faults: Vec<FaultResult>,
    /// Quiet windows where any incident is a false alarm (µs).
    pub quiet: Vec<(u64, u64)>,
    /// Every incident seen.
    pub incidents: Vec<Track>,
    /// Topology visibility, measured at the end.
    pub topology: Option<Topology>,
    /// Log retrieval accuracy.
    pub logs: Option<LogEvaluation>,
    /// Polls that failed, and the last error.
    pub poll_errors: u64,
    /// The last poll error.
    pub last_poll_error: Option<String>,
    /// The load generator's summary of the whole run.
    pub load_summary: String,
    /// Stopped early (Ctrl-C).
    pub interrupted: bool,
}

/// Shared state of the poller.
#[derive(Default)]
struct Polls {
    tracker: Tracker,
    errors: u64,
    last_error: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sleeps `d`; returns `true` when cancelled meanwhile.
async fn pause(d: Duration, cancel: &mut watch::Receiver<bool>) -> bool {
    if *cancel.borrow() {
        return true;
    }
    let cancelled = tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = cancel.wait_for(|c| *c) => true,
    };
    cancelled || *cancel.borrow()
}

fn secs(from_us: u64, to_us: u64) -> f64 {
    to_us.saturating_sub(from_us) as f64 / 1e6
}

/// Runs the experiment; `signal` (Ctrl-C) stops it early with what was measured so far.
/// Progress goes to stderr. `capture` holds the shop's log lines for log retrieval (`None`
/// skips that part).
pub async fn run(
    config: ExperimentConfig,
    capture: Option<LogCapture>,
    signal: impl Future<Output = ()> + Send + 'static,
) -> Result<ExperimentResult, ExperimentError> {
    let mut demo_config = DemoConfig::ephemeral();
    demo_config.http = config.http;
    let demo = demo::start(demo_config).await?;
    let query = demo
        .query_url()
        .ok_or_else(|| ExperimentError::Config("the demo started without its server".into()))?;
    let api = Api::new(query.clone())?;
    eprintln!(
        "[experiment] Faultline at {query}; shop at {}",
        demo.shop.gateway_url()
    );

    let (cancel_tx, mut cancel) = watch::channel(false);
    let signal_task = tokio::spawn(async move {
        signal.await;
        eprintln!("[experiment] interrupted: writing a partial report");
        let _ = cancel_tx.send(true);
    });
    let (stop_tx, stop) = watch::channel(false);

    let started_us = now_us();
    let stats = Arc::new(LoadStats::default());
    let load = tokio::spawn(run_load(
        LoadConfig::new(demo.shop.gateway_url(), config.rps),
        Arc::clone(&stats),
        stop.clone(),
    ));
    let probe = (config.probe_rps > 0.0).then(|| {
        tokio::spawn(logs::run_probe(
            demo.shop.gateway_url(),
            config.probe_rps,
            config.seed,
            stop.clone(),
        ))
    });
    let polls = Arc::new(Mutex::new(Polls::default()));
    let poller = {
        let (api, polls, mut stop, every) = (
            api.clone(),
            Arc::clone(&polls),
            stop.clone(),
            config.poll_every,
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                let answer = api.incidents(200).await;
                let poll_us = now_us();
                let mut p = lock(&polls);
                match answer {
                    Ok(incidents) => p.tracker.observe(poll_us, &incidents),
                    Err(err) => {
                        p.errors += 1;
                        p.last_error = Some(err.to_string());
                    }
                }
            }
        })
    };

    eprintln!(
        "[experiment] warm-up {} at {} requests/s",
        humantime::format_duration(config.warmup),
        config.rps
    );
    let mut interrupted = pause(config.warmup, &mut cancel).await;
    let warmup_end_us = now_us();
    let mut quiet = Vec::new();
    let mut quiet_from = warmup_end_us;
    let mut results = Vec::new();
    let total = config.plan.faults.len();
    for (i, planned) in config.plan.faults.iter().enumerate() {
        if interrupted {
            break;
        }
        eprintln!(
            "[experiment] quiet {}",
            humantime::format_duration(planned.quiet_before)
        );
        if pause(planned.quiet_before, &mut cancel).await {
            interrupted = true;
            quiet.push((quiet_from, now_us()));
            break;
        }
        let Some(service) = demo.shop.service(&planned.service) else {
            return Err(ExperimentError::Config(format!(
                "no service {} in the shop",
                planned.service
            )));
        };
        let kind = plan::kind(&planned.fault)?;
        let culprit = plan::culprit(&planned.fault, &planned.service);
        // The fault also ends by itself shortly after its time, should this process stall.
        let request =
            FaultRequest::new(kind).lasting(config.fault_duration + Duration::from_secs(30));
        let record = service.faults.inject(request)?;
        let start_us = record.started_at.0.saturating_mul(1_000);
        quiet.push((quiet_from, start_us));
        eprintln!(
            "[experiment] fault {}/{total}: {} into {} (#{})",
            i + 1,
            planned.fault,
            planned.service,
            record.id
        );
        let deadline = tokio::time::Instant::now() + config.fault_duration;
        let (mut said_detect, mut said_localize) = (false, false);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            if pause(left.min(config.poll_every), &mut cancel).await {
                interrupted = true;
                break;
            }
            let tracks = lock(&polls).tracker.tracks();
            let so_far = metrics::evaluate(start_us, now_us(), &culprit, &tracks);
            if let (false, Some(d)) = (said_detect, so_far.detect_s) {
                said_detect = true;
                eprintln!(
                    "[experiment]   detected after {d:.1} s (incident {})",
                    so_far.incident.as_deref().unwrap_or("?")
                );
            }
            if let (false, Some(l)) = (said_localize, so_far.localize_s) {
                said_localize = true;
                eprintln!("[experiment]   localized after {l:.1} s");
            }
        }
        // The last poll before the clear decides the final ranking.
        let end_us = now_us();
        let _ = service.faults.clear(Some(record.id));
        let tracks = lock(&polls).tracker.tracks();
        let outcome = metrics::evaluate(start_us, end_us, &culprit, &tracks);
        eprintln!(
            "[experiment]   ended after {:.0} s: detected {}, localized {}, culprit rank {}{}",
            secs(start_us, end_us),
            outcome
                .detect_s
                .map_or("never".into(), |d| format!("after {d:.1} s")),
            outcome
                .localize_s
                .map_or("never".into(), |d| format!("after {d:.1} s")),
            outcome.final_rank.map_or("-".into(), |r| r.to_string()),
            outcome
                .final_top
                .as_ref()
                .map_or(String::new(), |t| format!(" (rank 1: {t})"))
        );
        results.push(FaultResult {
            index: i + 1,
            fault: planned.fault.clone(),
            service: planned.service.clone(),
            ledger_id: record.id,
            start_us,
            end_us,
            outcome,
        });
        quiet_from = end_us.saturating_add(u64::try_from(config.settle.as_micros()).unwrap_or(0));
    }
    if !interrupted && !results.is_empty() {
        eprintln!(
            "[experiment] final quiet {}",
            humantime::format_duration(config.final_quiet)
        );
        interrupted = pause(config.final_quiet, &mut cancel).await;
        let now = now_us();
        if now > quiet_from {
            quiet.push((quiet_from, now));
        }
    }
    let topology = match api.service_graph(Duration::from_secs(300)).await {
        Ok(edges) => Some(topology(&edges)),
        Err(err) => {
            eprintln!("[experiment] service graph unavailable: {err}");
            None
        }
    };
    // A last poll so that every incident's latest state is in.
    if let Ok(incidents) = api.incidents(200).await {
        lock(&polls).tracker.observe(now_us(), &incidents);
    }
    let ended_us = now_us();
    let _ = stop_tx.send(true);
    let _ = poller.await;
    let load_summary = match load.await {
        Ok(Ok(report)) => report.to_string(),
        Ok(Err(err)) => format!("load generator failed: {err}"),
        Err(err) => format!("load generator crashed: {err}"),
    };
    let probes = match probe {
        Some(task) => match task.await {
            Ok(Ok(probes)) => Some(probes),
            Ok(Err(err)) => {
                eprintln!("[experiment] probe failed: {err}");
                None
            }
            Err(err) => {
                eprintln!("[experiment] probe crashed: {err}");
                None
            }
        },
        None => None,
    };
    signal_task.abort();
    demo.shop.flush().await;
    let logs = match (capture, probes) {
        (Some(capture), Some(probes)) => Some(logs::evaluate(
            &capture.lines(),
            &probes,
            &config.log_windows,
            config.log_sample,
            config.seed,
        )),
        _ => None,
    };
    demo.shutdown().await?;
    let polls = std::mem::take(&mut *lock(&polls));
    Ok(ExperimentResult {
        parameters: Parameters {
            faults: total,
            seed: config.seed,
            rps: config.rps,
            fault_duration_s: config.fault_duration.as_secs_f64(),
            warmup_s: config.warmup.as_secs_f64(),
            settle_s: config.settle.as_secs_f64(),
            poll_s: config.poll_every.as_secs_f64(),
            probe_rps: config.probe_rps,
        },
        plan: config.plan,
        started_us,
        warmup_end_us,
        ended_us,
        faults: results,
        quiet,
        incidents: polls.tracker.tracks(),
        topology,
        logs,
        poll_errors: polls.errors,
        last_poll_error: polls.last_error,
        load_summary,
        interrupted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topology_counts_expected_edges_and_lists_the_rest() {
        let edge = |c: &str, s: &str| GraphEdge {
            client: c.into(),
            server: s.into(),
            kind: String::new(),
        };
        let edges = vec![
            edge("gateway", "user"),
            edge("gateway", "user"),
            edge("inventory", "sqlite"),
            edge("payment", "payment-provider"),
            edge("gateway", "mystery"),
        ];
        let t = topology(&edges);
        assert_eq!(t.found.len(), 3);
        assert_eq!(t.extra, [("gateway".to_owned(), "mystery".to_owned())]);
        assert!((t.visibility() - 3.0 / 9.0).abs() < 1e-12);
    }
}
