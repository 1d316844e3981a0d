//! Crash safety of the real binary: every span acknowledged before a SIGKILL is queryable
//! exactly once after restart, whether the kill lands mid-stream, mid-flush or mid-compaction.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faultline_integration_tests::{ServerProcess, TraceGenerator, TraceSpanIds};

/// Flags that make the server cut blocks and compact them constantly, so kills land in the
/// middle of that work.
const BUSY_STORAGE: &[&str] = &[
    "--max-head-bytes",
    "100000",
    "--max-head-age",
    "1s",
    "--maintenance-interval",
    "100ms",
];

type Acked = Arc<Mutex<Vec<TraceSpanIds>>>;

/// Sends batches until `stop` is set; records each acknowledged batch's IDs in `acked`.
async fn send_until_stopped(
    server_grpc_port: u16,
    seed: u64,
    acked: Acked,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let Ok(mut client) = opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient::connect(format!(
        "http://127.0.0.1:{server_grpc_port}"
    ))
    .await
    else {
        return;
    };
    let mut generator = TraceGenerator::new(seed);
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let (request, ids) = generator.batch(5, 8);
        match client.export(request).await {
            Ok(response) => {
                let rejected = response
                    .into_inner()
                    .partial_success
                    .map_or(0, |p| p.rejected_spans);
                assert_eq!(rejected, 0, "valid spans were rejected");
                acked.lock().unwrap().extend(ids);
            }
            // The server died under us: this batch was never acknowledged.
            Err(_) => return,
        }
    }
}

/// Checks that each acknowledged span is in its trace exactly once.
async fn verify(server: &ServerProcess, acked: &[TraceSpanIds]) {
    let mut expected: HashMap<String, HashSet<String>> = HashMap::new();
    for (trace, spans) in acked {
        expected
            .entry(hex(trace))
            .or_default()
            .extend(spans.iter().map(|s| hex(s)));
    }
    for (trace_id, spans) in &expected {
        let trace = server.jaeger_trace(trace_id).await.unwrap_or_else(|| {
            panic!(
                "acknowledged trace {trace_id} is missing after restart\n{}",
                server.logs()
            )
        });
        let got: Vec<String> = trace["spans"]
            .as_array()
            .expect("spans array")
            .iter()
            .map(|s| s["spanID"].as_str().expect("spanID").to_owned())
            .collect();
        let unique: HashSet<&String> = got.iter().collect();
        assert_eq!(
            unique.len(),
            got.len(),
            "trace {trace_id} has duplicated spans: {got:?}"
        );
        for s in spans {
            assert!(
                unique.contains(s),
                "acknowledged span {s} of trace {trace_id} is missing"
            );
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Counts committed blocks (their `meta.json` files) under the data directory.
fn committed_blocks(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                committed_blocks(&p)
            } else {
                usize::from(p.file_name().is_some_and(|n| n == "meta.json"))
            }
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_spans_survive_sigkill_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = ServerProcess::start(&data, BUSY_STORAGE).await;
    let acked: Acked = Arc::default();

    for round in 0u64..4 {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sender = tokio::spawn(send_until_stopped(
            server.grpc_port,
            round,
            Arc::clone(&acked),
            Arc::clone(&stop),
        ));
        // Let data flow until there is something acknowledged in this round.
        let before = acked.lock().unwrap().len();
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked.lock().unwrap().len() < before + 50 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            acked.lock().unwrap().len() >= before + 50,
            "no progress sending spans:\n{}",
            server.logs()
        );
        if round % 2 == 1 {
            // Aim the kill at background storage work: right after it is logged as started.
            let marker_len = server.logs().len();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                let logs = server.logs();
                let fresh = logs.get(marker_len..).unwrap_or("").to_lowercase();
                if fresh.contains("compact") || fresh.contains("flush") || fresh.contains("cut") {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        // SIGKILL while the sender is still streaming.
        server = server.crash_and_restart().await;
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = sender.await;
        let snapshot = acked.lock().unwrap().clone();
        verify(&server, &snapshot).await;
    }
    // The kills landed while the store was cutting blocks, not only while it held data in memory.
    assert!(
        committed_blocks(&data) > 0,
        "no block was ever written:\n{}",
        server.logs()
    );
}
