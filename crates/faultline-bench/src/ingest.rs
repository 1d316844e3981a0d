//! `faultline bench ingest`: durable OTLP/gRPC ingest throughput, cost, size and query latency.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use serde::Serialize;

use crate::generator::{service_name, SpanGenerator, SERVICES};
use crate::process;
use crate::settle::BlockWatcher;

/// Settings of `faultline bench ingest`.
#[derive(clap::Args, Debug, Clone)]
pub struct IngestArgs {
    /// Spans to send.
    #[arg(long, default_value_t = 1_000_000)]
    pub spans: u64,
    /// Traces per OTLP request (about 9 spans each).
    #[arg(long, default_value_t = 50)]
    pub traces_per_request: usize,
    /// Concurrent senders, each with its own gRPC connection.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Trace-by-ID queries to time once the data is stored.
    #[arg(long, default_value_t = 500)]
    pub queries: usize,
    /// Search queries (service + tag over the last hour) to time.
    #[arg(long, default_value_t = 50)]
    pub searches: usize,
    /// Data directory for the server under test [default: a temporary directory].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Extra flag for `faultline serve` (repeatable), e.g. `--server-arg=--ack=received`.
    #[arg(long = "server-arg", value_name = "FLAG", allow_hyphen_values = true)]
    pub server_args: Vec<String>,
}

/// Errors that stop a benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The server under test could not be started or died.
    #[error("server under test: {0}")]
    Server(String),
    /// Sending or querying failed.
    #[error("{0}")]
    Client(String),
    /// Local I/O failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Results of one run.
#[derive(Debug, Serialize)]
pub struct IngestReport {
    /// Spans acknowledged by the server.
    pub spans: u64,
    /// Wall-clock seconds spent sending.
    pub send_seconds: f64,
    /// Acknowledged spans per wall-clock second (client and server share the machine).
    pub spans_per_second: f64,
    /// Server CPU-seconds spent while ingesting.
    pub server_cpu_seconds: f64,
    /// Spans per server CPU-second.
    pub spans_per_server_cpu_second: f64,
    /// Server CPU-seconds per million spans.
    pub server_cpu_seconds_per_million: f64,
    /// Server CPU-seconds per million spans from the start until every span was in a block:
    /// adds the last head's flush and the compactions still running when sending ended.
    pub server_cpu_seconds_per_million_settled: f64,
    /// Server CPU-seconds per million spans from the start until the server was quiescent: the
    /// block set stopped changing and the server went idle, so every compaction the data
    /// caused is counted (`None` when that did not happen within the benchmark's patience).
    pub server_cpu_seconds_per_million_quiescent: Option<f64>,
    /// Spans written into blocks by flushes and compactions, divided by spans acknowledged:
    /// how many times each span was encoded into a block, on average, until quiescent.
    pub write_amplification: f64,
    /// Blocks that a compaction merged but the benchmark's polling never saw; when non-zero,
    /// `write_amplification` is a lower bound.
    pub blocks_missed: usize,
    /// Server peak RSS in bytes.
    pub server_peak_rss_bytes: u64,
    /// Bytes of Parquet block data per span once every span is in a block.
    pub block_bytes_per_span: Option<f64>,
    /// Committed blocks at the end.
    pub blocks: usize,
    /// Trace-by-ID latency percentiles in milliseconds (p50, p90, p99).
    pub trace_by_id_ms: [f64; 3],
    /// Search latency percentiles in milliseconds (p50, p90, p99).
    pub search_ms: [f64; 3],
    /// Requests the server refused as overloaded (retried by the client).
    pub overloaded_retries: u64,
}

pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) grpc: String,
    pub(crate) otlp_http: String,
    pub(crate) api: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16, BenchError> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub(crate) async fn start_server(
    exe: &Path,
    data_dir: &Path,
    extra: &[String],
) -> Result<Server, BenchError> {
    let (g, h, q) = (free_port()?, free_port()?, free_port()?);
    std::fs::create_dir_all(data_dir)?;
    let log = std::fs::File::create(data_dir.join("server.log"))?;
    let child = Command::new(exe)
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir.join("data"))
        .args(["--otlp-grpc", &format!("127.0.0.1:{g}")])
        .args(["--otlp-http", &format!("127.0.0.1:{h}")])
        .args(["--http", &format!("127.0.0.1:{q}")])
        .args(["--max-head-age", "10s", "--maintenance-interval", "5s"])
        .args(extra)
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| BenchError::Server(format!("cannot start {}: {e}", exe.display())))?;
    let mut server = Server {
        child,
        grpc: format!("http://127.0.0.1:{g}"),
        otlp_http: format!("http://127.0.0.1:{h}"),
        api: format!("http://127.0.0.1:{q}"),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let http = reqwest::Client::new();
    loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(BenchError::Server(format!(
                "exited with {status}; see {}",
                data_dir.join("server.log").display()
            )));
        }
        if http
            .get(format!("{}/ready", server.api))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(server);
        }
        if Instant::now() > deadline {
            return Err(BenchError::Server("not ready after 60s".into()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) fn percentiles(mut ms: Vec<f64>) -> [f64; 3] {
    if ms.is_empty() {
        return [0.0; 3];
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    [at(0.5), at(0.9), at(0.99)]
}

/// Sums `count_key` (`span_count`, `record_count`) over the committed blocks' `meta.json`
/// files under `dir`, and counts those blocks.
fn blocks_on_disk(dir: &Path, count_key: &str) -> (u64, usize) {
    let blocks = crate::settle::read_blocks(dir, count_key);
    (blocks.values().map(|b| b.items).sum(), blocks.len())
}

/// What the committed blocks under a directory hold once the benchmark's data is in them.
pub(crate) struct BlocksOnDisk {
    /// Committed blocks.
    pub(crate) blocks: usize,
    /// `data.parquet` bytes per item, when every sent item reached a block.
    pub(crate) bytes_per_item: Option<f64>,
}

/// Polls the blocks under `dir` until they hold `sent` items by `count_key`, or `patience`
/// has passed, then measures their data files.
pub(crate) async fn wait_for_blocks(
    dir: &Path,
    count_key: &str,
    sent: u64,
    patience: Duration,
) -> BlocksOnDisk {
    let deadline = Instant::now() + patience;
    let (mut items, mut blocks) = blocks_on_disk(dir, count_key);
    while items < sent && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        (items, blocks) = blocks_on_disk(dir, count_key);
    }
    let bytes = process::dir_bytes(dir, &|n| n.ends_with(".parquet"));
    BlocksOnDisk {
        blocks,
        bytes_per_item: (items >= sent && sent > 0).then(|| bytes as f64 / sent as f64),
    }
}

/// Runs the benchmark against a fresh server started from `exe`.
pub async fn run(args: &IngestArgs, exe: &Path) -> Result<IngestReport, BenchError> {
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
    let blocks_dir = dir.join("data").join("blocks");
    let watcher = BlockWatcher::start(blocks_dir.clone(), "span_count", pid);
    eprintln!(
        "bench ingest: sending {} spans with {} senders to {}",
        args.spans, args.concurrency, server.grpc
    );

    let remaining = Arc::new(AtomicU64::new(args.spans));
    let sent = Arc::new(AtomicU64::new(0));
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
        let (remaining, sent, overloaded, sample_ids) = (
            remaining.clone(),
            sent.clone(),
            overloaded.clone(),
            sample_ids.clone(),
        );
        let endpoint = server.grpc.clone();
        let per_request = args.traces_per_request;
        senders.push(tokio::spawn(async move {
            let mut client = TraceServiceClient::connect(endpoint)
                .await
                .map_err(|e| BenchError::Client(format!("connect: {e}")))?
                .max_decoding_message_size(64 << 20);
            let mut generator = SpanGenerator::new(i as u64 + 1, start_nanos + i as u64 * 1_000);
            let mut n_req = 0u64;
            loop {
                let (request, count, ids) = generator.request(per_request);
                let claimed = remaining.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| {
                    (r > 0).then(|| r.saturating_sub(count as u64))
                });
                if claimed.is_err() {
                    return Ok::<(), BenchError>(());
                }
                loop {
                    match client.export(request.clone()).await {
                        Ok(_) => break,
                        Err(status) if status.code() == tonic::Code::ResourceExhausted => {
                            overloaded.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(status) => return Err(BenchError::Client(format!("export: {status}"))),
                    }
                }
                let total = sent.fetch_add(count as u64, Ordering::Relaxed) + count as u64;
                n_req += 1;
                if n_req.is_multiple_of(20) {
                    if let Ok(mut s) = sample_ids.lock() {
                        s.extend(ids.into_iter().take(2));
                    }
                }
                if i == 0 && n_req.is_multiple_of(200) {
                    eprintln!(
                        "  {total} spans acknowledged ({:.0} spans/s)",
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
    let spans = sent.load(Ordering::Relaxed);
    let server_cpu_seconds = process::cpu_seconds(pid).unwrap_or(0.0) - cpu_before;

    eprintln!("bench ingest: waiting for every span to be in a block");
    let BlocksOnDisk {
        blocks,
        bytes_per_item: block_bytes_per_span,
    } = wait_for_blocks(&blocks_dir, "span_count", spans, Duration::from_secs(600)).await;
    let settled_cpu_seconds = process::cpu_seconds(pid).unwrap_or(0.0) - cpu_before;
    eprintln!("bench ingest: waiting until no flush or compaction is left");
    // Maintenance runs every 5 s (see `start_server`): three quiet intervals mean none was due.
    let quiescence = watcher
        .wait_quiescent(Duration::from_secs(15), Duration::from_secs(600))
        .await;
    drop(watcher);

    eprintln!("bench ingest: timing queries");
    let http = reqwest::Client::new();
    let ids = sample_ids.lock().map(|v| v.clone()).unwrap_or_default();
    let mut by_id = Vec::new();
    for id in ids.iter().cycle().take(args.queries.min(ids.len() * 10)) {
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let t = Instant::now();
        let r = http
            .get(format!("{}/api/traces/{hex}", server.api))
            .send()
            .await
            .map_err(|e| BenchError::Client(e.to_string()))?;
        let ok = r.status().is_success();
        let _ = r.bytes().await;
        by_id.push(t.elapsed().as_secs_f64() * 1e3);
        if !ok {
            return Err(BenchError::Client(format!("trace {hex} not found")));
        }
    }
    let mut search = Vec::new();
    for i in 0..args.searches {
        let t = Instant::now();
        let r = http
            .get(format!("{}/api/traces", server.api))
            .query(&[
                ("service", service_name(i % SERVICES).as_str()),
                ("tags", r#"{"http.response.status_code":"500"}"#),
                ("lookback", "1h"),
                ("limit", "20"),
            ])
            .send()
            .await
            .map_err(|e| BenchError::Client(e.to_string()))?;
        let _ = r.bytes().await;
        search.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let peak = process::peak_rss_bytes(pid).unwrap_or(0);
    drop(server);
    let report = IngestReport {
        spans,
        send_seconds,
        spans_per_second: spans as f64 / send_seconds,
        server_cpu_seconds,
        spans_per_server_cpu_second: spans as f64 / server_cpu_seconds.max(1e-9),
        server_cpu_seconds_per_million: server_cpu_seconds / (spans as f64 / 1e6),
        server_cpu_seconds_per_million_settled: settled_cpu_seconds / (spans as f64 / 1e6),
        server_cpu_seconds_per_million_quiescent: quiescence
            .reached
            .then(|| (quiescence.cpu_seconds_at_last_change - cpu_before) / (spans as f64 / 1e6)),
        write_amplification: quiescence.items_written as f64 / (spans as f64).max(1.0),
        blocks_missed: quiescence.blocks_missed,
        server_peak_rss_bytes: peak,
        block_bytes_per_span,
        blocks,
        trace_by_id_ms: percentiles(by_id),
        search_ms: percentiles(search),
        overloaded_retries: overloaded.load(Ordering::Relaxed),
    };
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report).unwrap_or_default())?;
    }
    Ok(report)
}

impl IngestReport {
    /// The report as a Markdown table.
    pub fn to_markdown(&self) -> String {
        let bps = self.block_bytes_per_span.map_or_else(
            || "not all spans reached a block in time".to_owned(),
            |b| format!("{b:.1}"),
        );
        format!(
            "| metric | value |\n|---|---|\n\
             | spans acknowledged | {} |\n\
             | wall-clock spans/s (client and server on the same 2 cores) | {:.0} |\n\
             | spans per server CPU-second | {:.0} |\n\
             | server CPU-seconds per million spans | {:.2} |\n\
             | server CPU-seconds per million spans, until all are in blocks | {:.2} |\n\
             | server CPU-seconds per million spans, until quiescent | {} |\n\
             | write amplification (spans written into blocks / spans) | {:.2}{} |\n\
             | server peak RSS | {:.0} MiB |\n\
             | bytes per span in Parquet blocks | {} |\n\
             | blocks | {} |\n\
             | trace by ID p50 / p90 / p99 | {:.1} / {:.1} / {:.1} ms |\n\
             | search (service + tag, 1 h) p50 / p90 / p99 | {:.1} / {:.1} / {:.1} ms |\n\
             | overload retries | {} |\n",
            self.spans,
            self.spans_per_second,
            self.spans_per_server_cpu_second,
            self.server_cpu_seconds_per_million,
            self.server_cpu_seconds_per_million_settled,
            self.server_cpu_seconds_per_million_quiescent
                .map_or_else(|| "not quiescent in time".to_owned(), |c| format!("{c:.2}")),
            self.write_amplification,
            if self.blocks_missed > 0 {
                format!(" (at least; {} blocks not seen)", self.blocks_missed)
            } else {
                String::new()
            },
            self.server_peak_rss_bytes as f64 / (1 << 20) as f64,
            bps,
            self.blocks,
            self.trace_by_id_ms[0],
            self.trace_by_id_ms[1],
            self.trace_by_id_ms[2],
            self.search_ms[0],
            self.search_ms[1],
            self.search_ms[2],
            self.overloaded_retries,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_picks() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentiles(v), [51.0, 90.0, 99.0]);
        assert_eq!(percentiles(vec![]), [0.0; 3]);
    }
}
