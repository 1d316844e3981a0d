//! Log-retrieval accuracy: for failing requests, how many of their log lines are found by
//! trace ID, and how many by the common baseline (the services on the request's path, a time
//! window around it and a keyword search).
//!
//! The ground truth must not come from the trace ID itself. The probe tags each request with a
//! unique request id in W3C baggage; the shop's instrumentation propagates baggage to every
//! service the request reaches, and the capture layer records the request id from the current
//! OpenTelemetry context of each log line. Truth = every line carrying the request's id.
//!
//! The lines are the shop's own log events, captured in process by [`CaptureLayer`] (the same
//! events its JSON log lines are made of), and both queries are evaluated locally over them.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::baggage::BaggageExt;
use opentelemetry::Context;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context as LayerContext, Layer};

use crate::metrics::{average, score, Retrieval};
use crate::{now_us, ExperimentError};

/// The baggage key carrying the probe's request id: the demo's gateway puts the request's
/// `X-Request-Id` there, and the shop's instrumentation carries it to every service.
pub const REQUEST_ID_KEY: &str = faultline_demo::REQUEST_ID_BAGGAGE;

/// Keywords of the baseline's search (case-insensitive, over the level and the text).
pub const BASELINE_KEYWORDS: [&str; 2] = ["error", "fail"];

/// The services a checkout passes through, in order.
pub const CHECKOUT_PATH: [&str; 6] = [
    "gateway",
    "user",
    "order",
    "inventory",
    "payment",
    "notification",
];

/// One captured log line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// When it was written (µs since the epoch).
    pub time_us: u64,
    /// `ERROR`, `WARN`, `INFO`, ...
    pub level: String,
    /// The shop service whose code wrote it (from the event's module), or `shop`.
    pub service: String,
    /// The message and fields, `message k=v ...`.
    pub text: String,
    /// The OpenTelemetry trace id current when it was written.
    pub trace_id: Option<String>,
    /// The probe's request id from the current baggage (ground truth only).
    pub request_id: Option<String>,
}

/// Where captured lines go; clone it to read them.
#[derive(Clone, Debug)]
pub struct LogCapture {
    lines: Arc<Mutex<Vec<LogLine>>>,
    max_lines: usize,
}

impl LogCapture {
    /// Keeps at most `max_lines` (later lines are dropped and counted).
    pub fn new(max_lines: usize) -> Self {
        LogCapture {
            lines: Arc::new(Mutex::new(Vec::new())),
            max_lines,
        }
    }

    /// A `tracing` layer feeding this capture.
    pub fn layer(&self) -> CaptureLayer {
        CaptureLayer {
            capture: self.clone(),
        }
    }

    /// Every line captured so far.
    pub fn lines(&self) -> Vec<LogLine> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn push(&self, line: LogLine) {
        if let Ok(mut lines) = self.lines.lock() {
            if lines.len() < self.max_lines {
                lines.push(line);
            }
        }
    }
}

/// Records the shop's log events (targets `faultline_demo` and `faultline_instrument`).
#[derive(Clone, Debug)]
pub struct CaptureLayer {
    capture: LogCapture,
}

/// The shop service a log event's module belongs to.
pub fn service_of_target(target: &str) -> Option<&'static str> {
    if let Some(rest) = target.strip_prefix("faultline_demo::services::") {
        let module = rest.split("::").next().unwrap_or(rest);
        return Some(match module {
            "gateway" => "gateway",
            "user" => "user",
            "order" => "order",
            "inventory" => "inventory",
            "payment" => "payment",
            "notification" => "notification",
            "provider" => "payment-provider",
            _ => "shop",
        });
    }
    (target.starts_with("faultline_demo") || target.starts_with("faultline_instrument"))
        .then_some("shop")
}

struct TextVisitor(String);

impl Visit for TextVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for CaptureLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: LayerContext<'_, S>) {
        let meta = event.metadata();
        let Some(service) = service_of_target(meta.target()) else {
            return;
        };
        let mut text = TextVisitor(String::new());
        event.record(&mut text);
        let request_id = Context::map_current(|cx| {
            cx.baggage()
                .get(REQUEST_ID_KEY)
                .map(|v| v.as_str().to_owned())
        });
        self.capture.push(LogLine {
            time_us: now_us(),
            level: meta.level().to_string(),
            service: service.to_owned(),
            text: text.0,
            trace_id: faultline_instrument::logs::current_ids().map(|(trace, _)| trace),
            request_id,
        });
    }
}

/// One probe request and its answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeRequest {
    /// Its unique id (in baggage and `X-Request-Id`).
    pub request_id: String,
    /// The gateway's `X-Trace-Id`.
    pub trace_id: Option<String>,
    /// HTTP status, if an answer came.
    pub status: Option<u16>,
    /// Sent (µs).
    pub sent_us: u64,
    /// Answered or failed (µs).
    pub done_us: u64,
}

/// Sends checkouts at `rps` to the gateway, each tagged with a request id, until `stop`.
pub async fn run_probe(
    gateway: String,
    rps: f64,
    seed: u64,
    mut stop: watch::Receiver<bool>,
) -> Result<Vec<ProbeRequest>, ExperimentError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|source| ExperimentError::Http {
            url: gateway.clone(),
            source,
        })?;
    let results = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = tokio::task::JoinSet::new();
    let every = Duration::from_secs_f64(1.0 / rps.clamp(0.01, 1_000.0));
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut due = Instant::now();
    let mut n = 0_u64;
    loop {
        due += every;
        tokio::select! {
            _ = tokio::time::sleep_until(due) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        while tasks.try_join_next().is_some() {}
        n += 1;
        let request_id = format!("probe-{seed:x}-{n}");
        let body = serde_json::json!({
            "user_id": rng.u32(1..=faultline_demo::USER_COUNT),
            "items": [{"sku": faultline_demo::sku(rng.u32(1..=faultline_demo::PRODUCT_COUNT)), "quantity": 1}],
        })
        .to_string();
        let request = client
            .post(format!("{gateway}/api/checkout"))
            .header("content-type", "application/json")
            .header("x-request-id", &request_id)
            .body(body);
        let results = Arc::clone(&results);
        tasks.spawn(async move {
            let sent_us = now_us();
            let (status, trace_id) = match request.send().await {
                Ok(response) => {
                    let trace = response
                        .headers()
                        .get("x-trace-id")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let status = response.status().as_u16();
                    let _ = response.bytes().await;
                    (Some(status), trace)
                }
                Err(_) => (None, None),
            };
            if let Ok(mut r) = results.lock() {
                r.push(ProbeRequest {
                    request_id,
                    trace_id,
                    status,
                    sent_us,
                    done_us: now_us(),
                });
            }
        });
    }
    let drain = async { while tasks.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(Duration::from_secs(11), drain).await;
    let mut results = results.lock().map(|r| r.clone()).unwrap_or_default();
    results.sort_by_key(|r| r.sent_us);
    Ok(results)
}

/// Log-retrieval accuracy of both methods.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LogEvaluation {
    /// Probe requests sent.
    pub probes: usize,
    /// Of which answered 5xx with a trace id.
    pub failed: usize,
    /// Failing requests scored (a sample; those without any true line are skipped).
    pub evaluated: usize,
    /// Failing requests in the sample without any log line carrying their request id.
    pub without_lines: usize,
    /// Mean true lines per scored request.
    pub mean_true_lines: f64,
    /// Lines captured in all.
    pub lines: usize,
    /// ± window of the best baseline (highest mean F1), seconds.
    pub window_s: f64,
    /// By trace ID: mean precision/recall/F1/Jaccard.
    pub by_trace: Option<Retrieval>,
    /// The best baseline (highest mean F1 over the windows tried).
    pub baseline: Option<Retrieval>,
    /// Every baseline window tried (± seconds) with its mean scores.
    pub baselines: Vec<(f64, Retrieval)>,
}

/// The baseline's query for one request: lines of `services` between `from_us` and `to_us`
/// whose level or text contains one of [`BASELINE_KEYWORDS`].
pub fn baseline_query(
    lines: &[LogLine],
    services: &[&str],
    from_us: u64,
    to_us: u64,
) -> BTreeSet<usize> {
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.time_us >= from_us && l.time_us <= to_us)
        .filter(|(_, l)| services.contains(&l.service.as_str()))
        .filter(|(_, l)| {
            let haystack = format!("{} {}", l.level, l.text).to_lowercase();
            BASELINE_KEYWORDS.iter().any(|k| haystack.contains(k))
        })
        .map(|(i, _)| i)
        .collect()
}

/// Scores both methods over up to `sample` failing probe requests (chosen by `seed`), the
/// baseline once per ± window in `windows`.
pub fn evaluate(
    lines: &[LogLine],
    probes: &[ProbeRequest],
    windows: &[Duration],
    sample: usize,
    seed: u64,
) -> LogEvaluation {
    let mut by_request: HashMap<&str, BTreeSet<usize>> = HashMap::new();
    let mut by_trace: HashMap<&str, BTreeSet<usize>> = HashMap::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(id) = &line.request_id {
            by_request.entry(id).or_default().insert(i);
        }
        if let Some(id) = &line.trace_id {
            by_trace.entry(id).or_default().insert(i);
        }
    }
    let mut failed: Vec<&ProbeRequest> = probes
        .iter()
        .filter(|p| p.status.is_some_and(|s| s >= 500) && p.trace_id.is_some())
        .collect();
    let failed_count = failed.len();
    fastrand::Rng::with_seed(seed).shuffle(&mut failed);
    failed.truncate(sample);
    let empty = BTreeSet::new();
    let mut trace_scores = Vec::new();
    let mut baseline_scores: Vec<Vec<Retrieval>> = vec![Vec::new(); windows.len()];
    let mut true_lines = 0;
    let mut without_lines = 0;
    for probe in failed {
        let truth = by_request.get(probe.request_id.as_str()).unwrap_or(&empty);
        let trace = probe
            .trace_id
            .as_deref()
            .and_then(|t| by_trace.get(t))
            .unwrap_or(&empty);
        let Some(a) = score(truth, trace) else {
            without_lines += 1;
            continue;
        };
        true_lines += truth.len();
        trace_scores.push(a);
        for (window, scores) in windows.iter().zip(&mut baseline_scores) {
            let delta = u64::try_from(window.as_micros()).unwrap_or(u64::MAX);
            let baseline = baseline_query(
                lines,
                &CHECKOUT_PATH,
                probe.sent_us.saturating_sub(delta),
                probe.done_us.saturating_add(delta),
            );
            scores.extend(score(truth, &baseline));
        }
    }
    let evaluated = trace_scores.len();
    let baselines: Vec<(f64, Retrieval)> = windows
        .iter()
        .zip(&baseline_scores)
        .filter_map(|(w, scores)| average(scores).map(|r| (w.as_secs_f64(), r)))
        .collect();
    let best = baselines
        .iter()
        .copied()
        .max_by(|a, b| a.1.f1.total_cmp(&b.1.f1));
    LogEvaluation {
        probes: probes.len(),
        failed: failed_count,
        evaluated,
        without_lines,
        mean_true_lines: if evaluated == 0 {
            0.0
        } else {
            true_lines as f64 / evaluated as f64
        },
        lines: lines.len(),
        window_s: best.map_or(0.0, |b| b.0),
        by_trace: average(&trace_scores),
        baseline: best.map(|b| b.1),
        baselines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    fn line(t: u64, service: &str, level: &str, text: &str, trace: &str, req: &str) -> LogLine {
        LogLine {
            time_us: t,
            level: level.into(),
            service: service.into(),
            text: text.into(),
            trace_id: (!trace.is_empty()).then(|| trace.into()),
            request_id: (!req.is_empty()).then(|| req.into()),
        }
    }

    #[test]
    fn both_methods_are_scored_against_the_request_id() {
        let s = 1_000_000;
        let lines = vec![
            // Request r1 (trace t1): three lines, one of which an INFO line.
            line(
                10 * s,
                "gateway",
                "ERROR",
                "inventory call failed",
                "t1",
                "r1",
            ),
            line(10 * s, "inventory", "INFO", "reserving stock", "t1", "r1"),
            line(10 * s, "order", "WARN", "payment error", "t1", "r1"),
            // Another failing request nearby: the baseline picks it up.
            line(11 * s, "order", "ERROR", "payment error", "t2", "r2"),
            // Far away in time: outside the window.
            line(60 * s, "order", "ERROR", "payment error", "t3", "r3"),
            // A line of r1 written outside any span: only the baseline can find it.
            line(10 * s, "payment", "ERROR", "provider failed", "", "r1"),
            // Not on the path.
            line(10 * s, "payment-provider", "ERROR", "error", "", ""),
        ];
        let probes = vec![
            ProbeRequest {
                request_id: "r1".into(),
                trace_id: Some("t1".into()),
                status: Some(502),
                sent_us: 10 * s,
                done_us: 10 * s + 5_000,
            },
            ProbeRequest {
                request_id: "ok".into(),
                trace_id: Some("t9".into()),
                status: Some(201),
                sent_us: 10 * s,
                done_us: 10 * s,
            },
        ];
        let eval = evaluate(
            &lines,
            &probes,
            &[Duration::from_millis(1), Duration::from_secs(5)],
            10,
            1,
        );
        assert_eq!((eval.probes, eval.failed, eval.evaluated), (2, 1, 1));
        // ±1 ms: the three lines at 10 s that match the keywords; r2's line is outside.
        assert_eq!(eval.baselines.len(), 2);
        assert_eq!(eval.baselines[0].1.precision, 1.0);
        assert_eq!(eval.baselines[0].1.recall, 0.75);
        assert_eq!(eval.window_s, 0.001);
        assert_eq!(eval.mean_true_lines, 4.0);
        let trace = eval.by_trace.expect("scored");
        assert_eq!(trace.precision, 1.0);
        assert_eq!(trace.recall, 0.75);
        // ±5 s: gateway ERROR, order WARN "payment error", r2's line, payment's line.
        let baseline = eval.baselines[1].1;
        assert_eq!(baseline.precision, 0.75);
        assert_eq!(baseline.recall, 0.75);
        assert!((baseline.jaccard - 3.0 / 5.0).abs() < 1e-12);
    }

    #[test]
    fn failing_requests_without_tagged_lines_are_counted_not_scored() {
        let probes = vec![ProbeRequest {
            request_id: "r1".into(),
            trace_id: Some("t1".into()),
            status: Some(500),
            sent_us: 0,
            done_us: 1,
        }];
        let eval = evaluate(&[], &probes, &[Duration::from_secs(5)], 10, 1);
        assert_eq!((eval.failed, eval.evaluated, eval.without_lines), (1, 0, 1));
        assert_eq!(eval.by_trace, None);
    }

    #[test]
    fn targets_map_to_services() {
        assert_eq!(
            service_of_target("faultline_demo::services::inventory"),
            Some("inventory")
        );
        assert_eq!(
            service_of_target("faultline_demo::services::order::x"),
            Some("order")
        );
        assert_eq!(service_of_target("faultline_demo::grpc"), Some("shop"));
        assert_eq!(service_of_target("faultline_server::ingest"), None);
    }

    #[test]
    fn the_layer_records_the_request_id_from_baggage() {
        let capture = LogCapture::new(10);
        let subscriber = tracing_subscriber::registry().with(capture.layer());
        tracing::subscriber::with_default(subscriber, || {
            let cx = Context::current()
                .with_baggage([opentelemetry::KeyValue::new(REQUEST_ID_KEY, "req-42")]);
            let _guard = cx.attach();
            tracing::error!(target: "faultline_demo::services::payment", code = 7, "charge failed");
            tracing::info!(target: "faultline_server", "not the shop's");
        });
        let lines = capture.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0].service, "payment");
        assert_eq!(lines[0].level, "ERROR");
        assert_eq!(lines[0].text, "charge failed code=7");
        assert_eq!(lines[0].request_id.as_deref(), Some("req-42"));
        assert_eq!(lines[0].trace_id, None);
    }
}
