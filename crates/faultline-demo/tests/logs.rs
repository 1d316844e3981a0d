//! Service logs are JSON lines carrying the trace and span ids of the request they belong to.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faultline_instrument::logs::CorrelatedFormat;
use support::Harness;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_of_a_checkout_carry_its_trace_id() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .event_format(CorrelatedFormat::json())
        .with_writer(move || writer.clone())
        .init();
    let h = Harness::start().await;
    let (status, trace_id) = h.checkout().await;
    assert_eq!(status, 201);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut wanted = vec![
        "checkout completed",
        "order placed",
        "stock reserved",
        "charged",
        "confirmation sent",
    ];
    loop {
        let text = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
        for line in text.lines() {
            let json: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?} is not JSON: {e}"));
            if json["trace_id"] == trace_id.as_str() {
                assert_eq!(json["span_id"].as_str().map(str::len), Some(16), "{line}");
                wanted.retain(|m| json["message"] != *m);
            }
        }
        if wanted.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no log line with trace_id {trace_id} for {wanted:?} in\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    h.demo.shutdown().await.expect("clean shutdown");
}
