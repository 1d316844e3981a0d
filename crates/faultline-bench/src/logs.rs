//! `faultline bench logs`: durable OTLP/HTTP log ingest throughput, server CPU per record,
//! bytes per record in log blocks, and logs-by-trace-ID latency.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::ingest::{percentiles, start_server, wait_for_blocks, BenchError, BlocksOnDisk};
use crate::process;

/// Settings of `faultline bench logs`.
#[derive(clap::Args, Debug, Clone)]
pub struct LogsArgs {
    /// Log records to send.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    /// Records per OTLP/HTTP request.
    #[arg(long, default_value_t = 2_000)]
    pub records_per_request: usize,
    /// Concurrent senders.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Logs-by-trace-ID queries to time once everything is in blocks.
    #[arg(long, default_value_t = 500)]
    pub queries: usize,
    /// Data directory for the server under test [default: a temporary directory].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Extra flag for `faultline serve` (repeatable).
    #[arg(long = "server-arg", value_name = "FLAG", allow_hyphen_values = true)]
    pub server_args: Vec<String>,
}

/// Results of one run.
#[derive(Debug, Serialize)]
pub struct LogsReport {
    /// Records acknowledged.
    pub records: u64,
    /// Wall-clock seconds spent sending.
    pub send_seconds: f64,
    /// Acknowledged records per wall-clock second.
    pub records_per_second: f64,
    /// Server CPU-seconds spent while ingesting.
    pub server_cpu_seconds: f64,
    /// Records per server CPU-second.
    pub records_per_server_cpu_second: f64,
    /// Server peak RSS in bytes.
    pub server_peak_rss_bytes: u64,
    /// Bytes of log block data per record once every record is in a block.
    pub block_bytes_per_record: Option<f64>,
    /// OTLP protobuf bytes sent per record (uncompressed), for comparison.
    pub otlp_bytes_per_record: f64,
    /// Committed log blocks at the end.
    pub blocks: usize,
    /// Logs-by-trace-ID latency percentiles in ms (p50, p90, p99).
    pub logs_by_trace_ms: [f64; 3],
    /// Records per trace-ID answer, on average.
    pub records_per_trace_answer: f64,
    /// Requests refused as overloaded (retried).
    pub overloaded_retries: u64,
}

const SERVICES: [&str; 6] = [
    "gateway",
    "checkout",
    "payment",
    "inventory",
    "shipping",
    "email",
];
const ROUTES: [&str; 5] = ["/cart", "/checkout", "/pay", "/items/{id}", "/ship"];

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// Generates requests: a trace writes 8-12 lines across its services, one in five lines has no
/// trace (startup, background jobs).
struct LogGenerator {
    rng: StdRng,
    time: u64,
}

impl LogGenerator {
    fn request(&mut self, n: usize) -> (ExportLogsServiceRequest, usize, Vec<[u8; 16]>) {
        let mut per_service: Vec<Vec<LogRecord>> = vec![Vec::new(); SERVICES.len()];
        let mut ids = Vec::new();
        let mut made = 0;
        while made < n {
            let traced = self.rng.random_bool(0.8);
            let trace: [u8; 16] = self.rng.random();
            let lines = if traced {
                self.rng.random_range(8..=12)
            } else {
                1
            };
            if traced {
                ids.push(trace);
            }
            for _ in 0..lines {
                self.time += self.rng.random_range(1_000..200_000);
                let svc = self.rng.random_range(0..SERVICES.len());
                let sev = match self.rng.random_range(0..100) {
                    0..=4 => 17,
                    5..=14 => 13,
                    15..=29 => 5,
                    _ => 9,
                };
                let route = ROUTES[self.rng.random_range(0..ROUTES.len())];
                let user: u32 = self.rng.random_range(0..50_000);
                let ms: u32 = self.rng.random_range(1..2_000);
                let body = match sev {
                    17 => format!(
                        "request to {route} failed for user {user}: upstream timeout after {ms}ms"
                    ),
                    13 => format!("slow call to {route} took {ms}ms (user {user})"),
                    5 => format!("cache lookup key=user:{user} hit={}", ms.is_multiple_of(2)),
                    _ => format!("handled {route} for user {user} in {ms}ms"),
                };
                let span: [u8; 8] = self.rng.random();
                per_service[svc].push(LogRecord {
                    time_unix_nano: self.time,
                    observed_time_unix_nano: self.time + 50_000,
                    severity_number: sev,
                    severity_text: match sev {
                        17 => "ERROR",
                        13 => "WARN",
                        5 => "DEBUG",
                        _ => "INFO",
                    }
                    .into(),
                    body: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(body)),
                    }),
                    attributes: vec![
                        kv("http.route", any_value::Value::StringValue(route.into())),
                        kv("user.id", any_value::Value::IntValue(i64::from(user))),
                        kv("duration_ms", any_value::Value::IntValue(i64::from(ms))),
                    ],
                    trace_id: if traced { trace.to_vec() } else { Vec::new() },
                    span_id: if traced { span.to_vec() } else { Vec::new() },
                    flags: u32::from(traced),
                    ..Default::default()
                });
                made += 1;
            }
        }
        let resource_logs = per_service
            .into_iter()
            .enumerate()
            .filter(|(_, r)| !r.is_empty())
            .map(|(i, log_records)| ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![
                        kv(
                            "service.name",
                            any_value::Value::StringValue(SERVICES[i].into()),
                        ),
                        kv(
                            "host.name",
                            any_value::Value::StringValue(format!("node-{}", i % 3)),
                        ),
                    ],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect();
        (ExportLogsServiceRequest { resource_logs }, made, ids)
    }
}

/// Runs the benchmark against a fresh server started from `exe`.
pub async fn run(args: &LogsArgs, exe: &Path) -> Result<LogsReport, BenchError> {
    let tmp;
    let dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let server = start_server(exe, &dir, &args.server_args).await?;
    let pid = server.child.id();
    let cpu_before = process::cpu_seconds(pid).unwrap_or(0.0);
    let url = format!("{}/v1/logs", server.otlp_http);
    eprintln!(
        "bench logs: sending {} records with {} senders to {url}",
        args.records, args.concurrency
    );
    let remaining = Arc::new(AtomicU64::new(args.records));
    let sent = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let overloaded = Arc::new(AtomicU64::new(0));
    let sample_ids = Arc::new(Mutex::new(Vec::<[u8; 16]>::new()));
    let start_nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        .saturating_sub(30 * 60 * 1_000_000_000);
    let started = Instant::now();
    let mut senders = Vec::new();
    for i in 0..args.concurrency {
        let (remaining, sent, bytes, overloaded, sample_ids, url) = (
            remaining.clone(),
            sent.clone(),
            bytes.clone(),
            overloaded.clone(),
            sample_ids.clone(),
            url.clone(),
        );
        let per_request = args.records_per_request.max(1);
        senders.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut generator = LogGenerator {
                rng: StdRng::seed_from_u64(i as u64 + 1),
                time: start_nanos + i as u64,
            };
            let mut n_req = 0u64;
            loop {
                let (request, count, ids) = generator.request(per_request);
                let claimed = remaining.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| {
                    (r > 0).then(|| r.saturating_sub(count as u64))
                });
                if claimed.is_err() {
                    return Ok::<(), BenchError>(());
                }
                let body = request.encode_to_vec();
                bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                loop {
                    let r = client
                        .post(&url)
                        .header("content-type", "application/x-protobuf")
                        .body(body.clone())
                        .send()
                        .await
                        .map_err(|e| BenchError::Client(format!("export: {e}")))?;
                    match r.status().as_u16() {
                        200 => break,
                        429 | 503 => {
                            overloaded.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        s => return Err(BenchError::Client(format!("export answered HTTP {s}"))),
                    }
                }
                let total = sent.fetch_add(count as u64, Ordering::Relaxed) + count as u64;
                n_req += 1;
                // Two traces of every request, spread over the whole run.
                if let Ok(mut s) = sample_ids.lock() {
                    s.extend(ids.into_iter().take(2));
                }
                if i == 0 && n_req.is_multiple_of(100) {
                    eprintln!(
                        "  {total} records acknowledged ({:.0} records/s)",
                        total as f64 / started.elapsed().as_secs_f64()
                    );
                }
            }
        }));
    }
    for s in senders {
        s.await.map_err(|e| BenchError::Client(e.to_string()))??;
    }
    let send_seconds = started.elapsed().as_secs_f64();
    let records = sent.load(Ordering::Relaxed);
    let server_cpu_seconds = process::cpu_seconds(pid).unwrap_or(0.0) - cpu_before;

    eprintln!("bench logs: waiting for every record to be in a log block");
    let BlocksOnDisk {
        blocks,
        bytes_per_item: block_bytes_per_record,
    } = wait_for_blocks(
        &dir.join("data").join("blocks").join("logs"),
        "record_count",
        records,
        Duration::from_secs(900),
    )
    .await;

    eprintln!("bench logs: timing logs-by-trace-ID queries");
    let http = reqwest::Client::new();
    let ids = sample_ids.lock().map(|v| v.clone()).unwrap_or_default();
    let mut by_trace = Vec::new();
    let mut answered = 0u64;
    let step = (ids.len() / args.queries.max(1)).max(1);
    for id in ids.iter().step_by(step).take(args.queries) {
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let t = Instant::now();
        let r = http
            .get(format!("{}/api/logs", server.api))
            .query(&[("traceID", hex.as_str())])
            .send()
            .await
            .map_err(|e| BenchError::Client(e.to_string()))?;
        let body: serde_json::Value = r
            .json()
            .await
            .map_err(|e| BenchError::Client(e.to_string()))?;
        by_trace.push(t.elapsed().as_secs_f64() * 1e3);
        let n = body["data"].as_array().map_or(0, Vec::len) as u64;
        if n == 0 {
            return Err(BenchError::Client(format!("no logs for trace {hex}")));
        }
        answered += n;
    }
    let peak = process::peak_rss_bytes(pid).unwrap_or(0);
    drop(server);
    let report = LogsReport {
        records,
        send_seconds,
        records_per_second: records as f64 / send_seconds,
        server_cpu_seconds,
        records_per_server_cpu_second: records as f64 / server_cpu_seconds.max(1e-9),
        server_peak_rss_bytes: peak,
        block_bytes_per_record,
        otlp_bytes_per_record: bytes.load(Ordering::Relaxed) as f64 / records.max(1) as f64,
        blocks,
        records_per_trace_answer: answered as f64 / by_trace.len().max(1) as f64,
        logs_by_trace_ms: percentiles(by_trace),
        overloaded_retries: overloaded.load(Ordering::Relaxed),
    };
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report).unwrap_or_default())?;
    }
    Ok(report)
}

impl LogsReport {
    /// The report as a Markdown table.
    pub fn to_markdown(&self) -> String {
        let bpr = self.block_bytes_per_record.map_or_else(
            || "not all records reached a block in time".to_owned(),
            |b| format!("{b:.1}"),
        );
        format!(
            "| metric | value |\n|---|---|\n\
             | records acknowledged | {} |\n\
             | wall-clock records/s (client and server on the same machine) | {:.0} |\n\
             | records per server CPU-second | {:.0} |\n\
             | server CPU-seconds | {:.1} |\n\
             | server peak RSS | {:.0} MiB |\n\
             | bytes per record in log blocks | {} |\n\
             | OTLP protobuf bytes per record sent | {:.1} |\n\
             | log blocks | {} |\n\
             | logs by trace ID p50 / p90 / p99 | {:.1} / {:.1} / {:.1} ms |\n\
             | records per trace answer | {:.1} |\n\
             | overload retries | {} |\n",
            self.records,
            self.records_per_second,
            self.records_per_server_cpu_second,
            self.server_cpu_seconds,
            self.server_peak_rss_bytes as f64 / (1 << 20) as f64,
            bpr,
            self.otlp_bytes_per_record,
            self.blocks,
            self.logs_by_trace_ms[0],
            self.logs_by_trace_ms[1],
            self.logs_by_trace_ms[2],
            self.records_per_trace_answer,
            self.overloaded_retries,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_makes_what_it_says() {
        let mut g = LogGenerator {
            rng: StdRng::seed_from_u64(1),
            time: 0,
        };
        let (req, n, ids) = g.request(500);
        let counted: usize = req
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum();
        assert_eq!(counted, n);
        assert!(n >= 500 && !ids.is_empty());
    }
}
