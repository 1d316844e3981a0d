//! Reading lines (once, or following the file like `tail -F`), batching them per service and
//! posting them to `/v1/logs` with retries.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use tokio::sync::mpsc;

use crate::parse::parse_line;

/// Why shipping stopped.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    /// The input could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Input {
        /// The file (or `-` for stdin).
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The server refused a batch for a reason retrying cannot fix.
    #[error("the server refused a batch with HTTP {status}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// The server stayed unreachable or overloaded through every retry.
    #[error("gave up after {attempts} attempts to reach {endpoint}: {last}")]
    Unreachable {
        /// The `/v1/logs` URL.
        endpoint: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// A setting is unusable.
    #[error("invalid option: {0}")]
    Options(String),
}

/// How to ship.
#[derive(Clone, Debug)]
pub struct ShipOptions {
    /// The file to read; `None` reads stdin.
    pub path: Option<PathBuf>,
    /// Keep reading as the file grows, reopening it when it is rotated or truncated.
    pub follow: bool,
    /// Base URL of Faultline's OTLP/HTTP listener, e.g. `http://127.0.0.1:4318`.
    pub endpoint: String,
    /// `service.name` for lines that name no service.
    pub service: String,
    /// Records per request.
    pub batch_size: usize,
    /// Longest time a read line waits before it is sent.
    pub flush_interval: Duration,
    /// Longest line kept, in bytes; the rest of a longer line is dropped and the line counted
    /// as truncated (its start is still shipped).
    pub max_line_bytes: usize,
    /// Attempts per batch before giving up (429, 502-504 and connection errors are retried).
    pub max_attempts: u32,
}

impl Default for ShipOptions {
    fn default() -> Self {
        Self {
            path: None,
            follow: false,
            endpoint: "http://127.0.0.1:4318".into(),
            service: "unknown_service".into(),
            batch_size: 500,
            flush_interval: Duration::from_secs(1),
            max_line_bytes: 1 << 20,
            max_attempts: 20,
        }
    }
}

/// Counters of a run, shared with whoever prints progress.
#[derive(Debug, Default)]
pub struct Progress {
    /// Lines read.
    pub lines: AtomicU64,
    /// Records acknowledged by the server.
    pub shipped: AtomicU64,
    /// Lines that were not JSON objects, shipped as plain messages.
    pub unparsed: AtomicU64,
    /// Lines longer than `max_line_bytes`, shipped truncated.
    pub truncated: AtomicU64,
    /// Records the server refused (partial success).
    pub rejected: AtomicU64,
    /// Batches retried.
    pub retries: AtomicU64,
}

impl Progress {
    /// A one-line summary.
    pub fn summary(&self) -> String {
        format!(
            "lines read {}, shipped {}, unparsed (sent as plain messages) {}, truncated {}, refused by server {}, retries {}",
            self.lines.load(Ordering::Relaxed),
            self.shipped.load(Ordering::Relaxed),
            self.unparsed.load(Ordering::Relaxed),
            self.truncated.load(Ordering::Relaxed),
            self.rejected.load(Ordering::Relaxed),
            self.retries.load(Ordering::Relaxed),
        )
    }
}

/// One line as read, before parsing.
struct Line {
    text: String,
    truncated: bool,
}

/// Reads `opts` input and ships it until the input ends (or, following, until `stop` is set).
/// Returns when every read line has been acknowledged.
pub async fn run(
    opts: ShipOptions,
    progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
) -> Result<(), ShipError> {
    if opts.batch_size == 0 || opts.max_line_bytes == 0 || opts.max_attempts == 0 {
        return Err(ShipError::Options(
            "batch size, line size and attempts must be positive".into(),
        ));
    }
    let (tx, mut rx) = mpsc::channel::<Line>(opts.batch_size.saturating_mul(2).max(16));
    let reader_opts = opts.clone();
    let reader_stop = Arc::clone(&stop);
    let reader = tokio::task::spawn_blocking(move || read_lines(&reader_opts, &tx, &reader_stop));
    let url = format!("{}/v1/logs", opts.endpoint.trim_end_matches('/'));
    let client = reqwest::Client::new();
    let mut batch: Vec<(Option<String>, LogRecord)> = Vec::new();
    let mut batch_bytes = 0usize;
    let mut oldest: Option<Instant> = None;
    loop {
        let wait = oldest.map_or(Duration::from_secs(3600), |t| {
            opts.flush_interval.saturating_sub(t.elapsed())
        });
        let next = tokio::time::timeout(wait, rx.recv()).await;
        let done = match next {
            Ok(Some(line)) => {
                progress.lines.fetch_add(1, Ordering::Relaxed);
                if line.truncated {
                    progress.truncated.fetch_add(1, Ordering::Relaxed);
                }
                let p = parse_line(&line.text, now_nanos());
                if !p.parsed {
                    progress.unparsed.fetch_add(1, Ordering::Relaxed);
                }
                batch_bytes += line.text.len();
                batch.push((p.service, p.record));
                oldest.get_or_insert_with(Instant::now);
                false
            }
            Ok(None) => true,
            Err(_) => false,
        };
        let due = oldest.is_some_and(|t| t.elapsed() >= opts.flush_interval);
        if !batch.is_empty()
            && (done || due || batch.len() >= opts.batch_size || batch_bytes >= 4 << 20)
        {
            let request = build_request(std::mem::take(&mut batch), &opts.service);
            send(&client, &url, &request, &opts, &progress).await?;
            batch_bytes = 0;
            oldest = None;
        }
        if done {
            break;
        }
    }
    reader.await.map_err(|e| ShipError::Input {
        path: input_name(&opts),
        source: std::io::Error::other(e),
    })?
}

fn input_name(opts: &ShipOptions) -> String {
    opts.path
        .as_ref()
        .map_or_else(|| "-".to_owned(), |p| p.display().to_string())
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// One request: a resource per service, in order of first appearance.
fn build_request(
    records: Vec<(Option<String>, LogRecord)>,
    default_service: &str,
) -> ExportLogsServiceRequest {
    let mut resource_logs: Vec<ResourceLogs> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for (service, record) in records {
        let service = service.unwrap_or_else(|| default_service.to_owned());
        let at = match names.iter().position(|n| *n == service) {
            Some(at) => at,
            None => {
                resource_logs.push(ResourceLogs {
                    resource: Some(Resource {
                        attributes: vec![KeyValue {
                            key: "service.name".into(),
                            value: Some(AnyValue {
                                value: Some(any_value::Value::StringValue(service.clone())),
                            }),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                    scope_logs: vec![ScopeLogs {
                        scope: Some(InstrumentationScope {
                            name: "faultline-logship".into(),
                            version: env!("CARGO_PKG_VERSION").into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                });
                names.push(service);
                names.len() - 1
            }
        };
        if let Some(scope) = resource_logs
            .get_mut(at)
            .and_then(|r| r.scope_logs.first_mut())
        {
            scope.log_records.push(record);
        }
    }
    ExportLogsServiceRequest { resource_logs }
}

/// Posts one request, retrying what the server marks as retryable.
async fn send(
    client: &reqwest::Client,
    url: &str,
    request: &ExportLogsServiceRequest,
    opts: &ShipOptions,
    progress: &Progress,
) -> Result<(), ShipError> {
    let count: u64 = request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len() as u64)
        .sum();
    let body = bytes::Bytes::from(request.encode_to_vec());
    let mut backoff = Duration::from_millis(200);
    let mut last = String::new();
    for attempt in 1..=opts.max_attempts {
        let sent = client
            .post(url)
            .header("content-type", "application/x-protobuf")
            .body(body.clone())
            .send()
            .await;
        let wait = match sent {
            Ok(resp) if resp.status().is_success() => {
                let answer = resp.bytes().await.unwrap_or_default();
                let rejected = ExportLogsServiceResponse::decode(answer)
                    .ok()
                    .and_then(|r| r.partial_success)
                    .map_or(0, |p| u64::try_from(p.rejected_log_records).unwrap_or(0));
                if rejected > 0 {
                    tracing::warn!(rejected, "the server refused some records");
                }
                progress.rejected.fetch_add(rejected, Ordering::Relaxed);
                progress
                    .shipped
                    .fetch_add(count.saturating_sub(rejected), Ordering::Relaxed);
                return Ok(());
            }
            Ok(resp) => {
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let message = String::from_utf8_lossy(&resp.bytes().await.unwrap_or_default())
                    .chars()
                    .take(500)
                    .collect::<String>();
                if !matches!(status, 429 | 502 | 503 | 504) {
                    return Err(ShipError::Refused { status, message });
                }
                last = format!("HTTP {status}: {message}");
                retry_after.unwrap_or(backoff)
            }
            Err(e) => {
                last = e.to_string();
                backoff
            }
        };
        if attempt < opts.max_attempts {
            progress.retries.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(attempt, wait_ms = wait.as_millis() as u64, %last, "retrying a batch");
            tokio::time::sleep(wait.min(Duration::from_secs(60))).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }
    Err(ShipError::Unreachable {
        endpoint: url.to_owned(),
        attempts: opts.max_attempts,
        last,
    })
}

/// Reads lines into `tx`; runs on a blocking thread.
fn read_lines(
    opts: &ShipOptions,
    tx: &mpsc::Sender<Line>,
    stop: &AtomicBool,
) -> Result<(), ShipError> {
    let name = input_name(opts);
    let io = |source| ShipError::Input {
        path: name.clone(),
        source,
    };
    let Some(path) = &opts.path else {
        let stdin = std::io::stdin();
        let mut reader = stdin.lock();
        let mut partial = Vec::new();
        let mut truncated = false;
        while !stop.load(Ordering::Relaxed) {
            match read_line_capped(
                &mut reader,
                &mut partial,
                &mut truncated,
                opts.max_line_bytes,
            )
            .map_err(io)?
            {
                Step::Line(line) => {
                    if tx.blocking_send(line).is_err() {
                        return Ok(());
                    }
                }
                Step::Eof => break,
            }
        }
        flush_partial(&mut partial, &mut truncated, tx);
        return Ok(());
    };
    let mut file = File::open(path).map_err(io)?;
    let mut identity = file_identity(&file);
    let mut reader = BufReader::new(file.try_clone().map_err(io)?);
    let mut position = 0u64;
    let mut partial = Vec::new();
    let mut truncated = false;
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        match read_line_capped(
            &mut reader,
            &mut partial,
            &mut truncated,
            opts.max_line_bytes,
        )
        .map_err(io)?
        {
            Step::Line(line) => {
                position = reader.stream_position().unwrap_or(position);
                if tx.blocking_send(line).is_err() {
                    return Ok(());
                }
            }
            Step::Eof => {
                if !opts.follow {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
                // `tail -F`: a new file under the name (rotation) or a shorter one
                // (truncation) is read from its start.
                match File::open(path) {
                    Ok(reopened) => {
                        let id = file_identity(&reopened);
                        let len = reopened.metadata().map(|m| m.len()).unwrap_or(0);
                        if id != identity {
                            // Whatever the old file still held was read up to its end above.
                            flush_partial(&mut partial, &mut truncated, tx);
                            file = reopened;
                            identity = id;
                            reader = BufReader::new(file.try_clone().map_err(io)?);
                            position = 0;
                        } else if len < position {
                            partial.clear();
                            truncated = false;
                            reader.seek(SeekFrom::Start(0)).map_err(io)?;
                            position = 0;
                        }
                    }
                    // Between a rotation's rename and the new file's creation.
                    Err(_) => continue,
                }
            }
        }
    }
    flush_partial(&mut partial, &mut truncated, tx);
    Ok(())
}

fn flush_partial(partial: &mut Vec<u8>, truncated: &mut bool, tx: &mpsc::Sender<Line>) {
    if !partial.is_empty() {
        let text = String::from_utf8_lossy(partial).into_owned();
        let _ = tx.blocking_send(Line {
            text,
            truncated: *truncated,
        });
        partial.clear();
        *truncated = false;
    }
}

#[cfg(unix)]
fn file_identity(f: &File) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    f.metadata().ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn file_identity(_: &File) -> Option<(u64, u64)> {
    None
}

enum Step {
    Line(Line),
    Eof,
}

/// Reads up to the next newline, keeping at most `max` bytes of the line (the rest is
/// discarded as it is read, so a gigabyte line costs no gigabyte of memory). At the end of
/// the input, a line without a newline stays in `partial` (a follower may see it completed).
fn read_line_capped(
    reader: &mut impl BufRead,
    partial: &mut Vec<u8>,
    truncated: &mut bool,
    max: usize,
) -> std::io::Result<Step> {
    loop {
        let buf = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(Step::Eof);
        }
        let (chunk, newline) = match buf.iter().position(|b| *b == b'\n') {
            Some(at) => (buf.get(..at).unwrap_or_default(), Some(at)),
            None => (buf, None),
        };
        let room = max.saturating_sub(partial.len());
        if chunk.len() > room {
            *truncated = true;
        }
        partial.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
        let used = newline.map_or(buf.len(), |at| at + 1);
        reader.consume(used);
        if newline.is_some() {
            let mut bytes = std::mem::take(partial);
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
            let line = Line {
                text: String::from_utf8_lossy(&bytes).into_owned(),
                truncated: std::mem::take(truncated),
            };
            return Ok(Step::Line(line));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_without_buffering_them_whole() {
        let mut input = Vec::new();
        input.extend_from_slice(b"short\n");
        input.extend(std::iter::repeat_n(b'x', 100_000));
        input.extend_from_slice(b"\nafter\npartial");
        let mut reader = BufReader::with_capacity(1024, input.as_slice());
        let (mut partial, mut truncated) = (Vec::new(), false);
        let mut lines = Vec::new();
        while let Step::Line(l) =
            read_line_capped(&mut reader, &mut partial, &mut truncated, 10).unwrap()
        {
            lines.push((l.text, l.truncated));
        }
        assert_eq!(
            lines,
            vec![
                ("short".to_owned(), false),
                ("x".repeat(10), true),
                ("after".to_owned(), false)
            ]
        );
        assert_eq!(partial, b"partial");
        assert!(partial.capacity() < 1000);
    }

    #[test]
    fn requests_group_records_by_service() {
        let r = |s: Option<&str>| (s.map(str::to_owned), LogRecord::default());
        let req = build_request(vec![r(Some("a")), r(None), r(Some("a"))], "dflt");
        assert_eq!(req.resource_logs.len(), 2);
        assert_eq!(req.resource_logs[0].scope_logs[0].log_records.len(), 2);
    }
}
