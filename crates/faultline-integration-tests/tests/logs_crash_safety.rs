//! Crash safety of log ingest in the real binary: every log record acknowledged over OTLP/HTTP
//! before a SIGKILL is returned by `/api/logs` exactly once after restart, whether the kill
//! lands mid-stream, mid-flush or mid-compaction.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faultline_integration_tests::{with_query, ServerProcess};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

/// Cut the log head and compact constantly, so kills land in the middle of that work.
const BUSY_STORAGE: &[&str] = &[
    "--max-head-bytes",
    "50000",
    "--max-head-age",
    "1s",
    "--maintenance-interval",
    "100ms",
];

/// trace ID (hex) → bodies acknowledged for it.
type Acked = Arc<Mutex<HashMap<String, Vec<String>>>>;

fn string(s: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(s.to_owned())),
    })
}

/// One request of `n` records over a few traces; returns it with (trace hex, body) pairs.
fn batch(round: u64, seq: &mut u64, n: usize) -> (ExportLogsServiceRequest, Vec<(String, String)>) {
    let mut records = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..n {
        *seq += 1;
        // Ten records per trace, spread over several requests.
        let trace_no = *seq / 10 + 1;
        let mut trace = [0u8; 16];
        trace[..8].copy_from_slice(&round.to_be_bytes());
        trace[8..].copy_from_slice(&trace_no.to_be_bytes());
        let body = format!("round {round} record {seq}");
        // Current times: older records would fall to the (72 h) retention right away.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos() as u64;
        records.push(LogRecord {
            time_unix_nano: now,
            observed_time_unix_nano: now,
            severity_number: 9,
            severity_text: "INFO".into(),
            body: string(&body),
            attributes: vec![KeyValue {
                key: "seq".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::IntValue(*seq as i64)),
                }),
                ..Default::default()
            }],
            trace_id: trace.to_vec(),
            span_id: seq.to_be_bytes().to_vec(),
            ..Default::default()
        });
        ids.push((hex(&trace), body));
    }
    let request = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: string("crash-logs"),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    (request, ids)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn send_until_stopped(port: u16, round: u64, acked: Acked, stop: Arc<AtomicBool>) {
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/v1/logs");
    let mut seq = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let (request, ids) = batch(round, &mut seq, 7);
        let sent = client
            .post(&url)
            .header("content-type", "application/x-protobuf")
            .body(request.encode_to_vec())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {
                let mut acked = acked.lock().unwrap();
                for (trace, body) in ids {
                    acked.entry(trace).or_default().push(body);
                }
            }
            Ok(r) if r.status().as_u16() == 429 => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // The server died under us (or refused): this batch was never acknowledged.
            _ => return,
        }
    }
}

async fn verify(server: &ServerProcess, acked: &HashMap<String, Vec<String>>) {
    let client = reqwest::Client::new();
    for (trace, bodies) in acked {
        let answer: serde_json::Value = client
            .get(with_query(
                &format!("{}/api/logs", server.api()),
                &[("traceID", trace.as_str())],
            ))
            .send()
            .await
            .expect("query")
            .json()
            .await
            .expect("json");
        let got: Vec<&str> = answer["data"]
            .as_array()
            .unwrap_or_else(|| panic!("no data for {trace}: {answer}\n{}", server.logs()))
            .iter()
            .map(|r| r["body"].as_str().expect("string body"))
            .collect();
        for body in bodies {
            let n = got.iter().filter(|g| **g == body).count();
            assert_eq!(
                n,
                1,
                "acknowledged record {body:?} of trace {trace} is there {n} times\n{}",
                server.logs()
            );
        }
    }
}

fn log_blocks(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("blocks").join("logs"))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().join("meta.json").exists())
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_log_records_survive_sigkill_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = ServerProcess::start(&data, BUSY_STORAGE).await;
    let acked: Acked = Arc::default();
    let mut blocks_seen = 0;
    for round in 0u64..4 {
        let stop = Arc::new(AtomicBool::new(false));
        let sender = tokio::spawn(send_until_stopped(
            server.otlp_http_port,
            round + 1,
            Arc::clone(&acked),
            Arc::clone(&stop),
        ));
        let count = |a: &Acked| a.lock().unwrap().values().map(Vec::len).sum::<usize>();
        let before = count(&acked);
        let deadline = Instant::now() + Duration::from_secs(60);
        while count(&acked) < before + 300 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            count(&acked) >= before + 300,
            "no progress sending logs:\n{}",
            server.logs()
        );
        if round % 2 == 1 {
            // Aim at block writing: wait until a new log block appears, then kill at once.
            let blocks = log_blocks(&data);
            let deadline = Instant::now() + Duration::from_secs(30);
            while log_blocks(&data) == blocks && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        blocks_seen = blocks_seen.max(log_blocks(&data));
        server = server.crash_and_restart().await;
        stop.store(true, Ordering::SeqCst);
        let _ = sender.await;
        let snapshot = acked.lock().unwrap().clone();
        verify(&server, &snapshot).await;
    }
    assert!(
        blocks_seen > 0,
        "no log block was ever written:\n{}",
        server.logs()
    );
}
