//! `faultline logs ingest` against the real server: every field-name variant, malformed lines,
//! a huge line, and a file appended to while followed.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use faultline_integration_tests::{faultline_bin, with_query, ServerProcess};

const T: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

async fn logs(server: &ServerProcess, params: &[(&str, &str)]) -> Vec<serde_json::Value> {
    let answer: serde_json::Value = reqwest::Client::new()
        .get(with_query(&format!("{}/api/logs", server.api()), params))
        .send()
        .await
        .expect("query")
        .json()
        .await
        .expect("json");
    answer["data"].as_array().cloned().unwrap_or_default()
}

/// Polls until `params` finds `want` records (or a deadline passes) and returns them.
async fn wait_for(
    server: &ServerProcess,
    params: &[(&str, &str)],
    want: usize,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = logs(server, params).await;
        if got.len() >= want || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn trace_hex(n: u8) -> String {
    format!("{:032x}", u128::from(n) << 64 | 0xabc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_with_every_variant_malformed_and_huge_lines() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("data"), &[]).await;
    let file = dir.path().join("app.log");
    let t = |n| trace_hex(n);
    let long = "y".repeat(200_000);
    let huge = "z".repeat(3 << 20);
    let lines = [
        format!(
            r#"{{"trace_id":"{}","span_id":"00f067aa0ba902b7","msg":"v1","level":"info","ts":"2024-05-01T10:00:00Z"}}"#,
            t(1)
        ),
        format!(
            r#"{{"traceId":"{}","message":"v2","severity":"WARN","time":1714557601}}"#,
            t(2)
        ),
        format!(
            r#"{{"trace.id":"{}","body":"v3","lvl":"error","timestamp":1714557602000}}"#,
            t(3)
        ),
        format!(
            r#"{{"trace":{{"id":"{}"}},"msg":"v4","@timestamp":"2024-05-01T12:00:03+02:00"}}"#,
            t(4)
        ),
        r#"{"dd.trace_id":"1234567890123456789","dd.span_id":"42","msg":"v5","service":"dd-svc"}"#
            .to_owned(),
        format!(
            r#"{{"traceparent":"00-{T}-00f067aa0ba902b7-01","msg":"v6","service.name":"tp-svc","user":"ann"}}"#
        ),
        "this is not json".to_owned(),
        "{\"broken\": ".to_owned(),
        format!(r#"{{"trace_id":"{}","msg":"{long}"}}"#, t(7)),
        format!(r#"{{"msg":"hugemarker {huge}"}}"#),
    ];
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let out = Command::new(faultline_bin())
        .args(["logs", "ingest"])
        .arg(&file)
        .args([
            "--endpoint",
            &format!("http://127.0.0.1:{}", server.otlp_http_port),
        ])
        .args(["--service", "file-svc", "--max-line-bytes", "1048576"])
        .output()
        .expect("run faultline logs ingest");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("lines read 10"), "{stderr}");
    assert!(stderr.contains("shipped 10"), "{stderr}");
    assert!(
        stderr.contains("unparsed (sent as plain messages) 3"),
        "{stderr}"
    );
    assert!(stderr.contains("truncated 1"), "{stderr}");

    for (n, body, severity) in [(1u8, "v1", 9), (2, "v2", 13), (3, "v3", 17), (4, "v4", 0)] {
        let got = wait_for(&server, &[("traceID", &t(n))], 1).await;
        assert_eq!(got.len(), 1, "variant {n}: {got:?}");
        assert_eq!(got[0]["body"], body);
        assert_eq!(got[0]["severityNumber"], severity);
        assert_eq!(got[0]["serviceName"], "file-svc");
    }
    let v1 = &logs(&server, &[("traceID", &t(1))]).await[0];
    assert_eq!(v1["spanID"], "00f067aa0ba902b7");
    assert_eq!(v1["timeUnixNano"], "1714557600000000000");
    let v4 = &logs(&server, &[("traceID", &t(4))]).await[0];
    assert_eq!(v4["timeUnixNano"], "1714557603000000000");
    let dd = wait_for(&server, &[("traceID", "112210f47de98115")], 1).await;
    assert_eq!(dd.len(), 1, "{dd:?}");
    assert_eq!(dd[0]["body"], "v5");
    assert_eq!(dd[0]["spanID"], "000000000000002a");
    assert_eq!(dd[0]["serviceName"], "dd-svc");
    let tp = wait_for(&server, &[("traceID", T)], 1).await;
    assert_eq!(tp[0]["body"], "v6");
    assert_eq!(tp[0]["serviceName"], "tp-svc");
    assert_eq!(tp[0]["attributes"]["user"], "ann");
    // Malformed lines are kept as plain messages, searchable by text.
    let plain = wait_for(
        &server,
        &[("q", "not json"), ("service", "file-svc"), ("start", "0")],
        1,
    )
    .await;
    assert_eq!(plain.len(), 1, "{plain:?}");
    assert_eq!(plain[0]["body"], "this is not json");
    assert_eq!(plain[0]["traceID"], "");
    // A long message is cut to the server's body limit (64 KiB by default), not dropped.
    let big = wait_for(&server, &[("traceID", &t(7))], 1).await;
    assert_eq!(big.len(), 1);
    assert_eq!(
        big[0]["body"].as_str().expect("string body").len(),
        64 * 1024
    );
    // A line over --max-line-bytes is cut there (no longer JSON: kept as a plain message).
    let huge = wait_for(&server, &[("q", "hugemarker"), ("start", "0")], 1).await;
    assert_eq!(huge.len(), 1, "{}", huge.len());
    let body = huge[0]["body"].as_str().expect("string body");
    assert!(body.starts_with(r#"{"msg":"hugemarker zzz"#));
    assert_eq!(body.len(), 64 * 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followed_file_is_shipped_as_it_grows() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("data"), &[]).await;
    let file = dir.path().join("follow.log");
    std::fs::write(&file, "").unwrap();
    let mut child = Command::new(faultline_bin())
        .args(["logs", "ingest", "--follow"])
        .arg(&file)
        .args([
            "--endpoint",
            &format!("http://127.0.0.1:{}", server.otlp_http_port),
        ])
        .args(["--service", "follow-svc", "--flush-interval-ms", "50"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start follower");
    let trace = trace_hex(9);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    for i in 0..5 {
        writeln!(
            f,
            r#"{{"trace_id":"{trace}","msg":"line {i}","ts":{}}}"#,
            1_714_557_600 + i
        )
        .unwrap();
        f.flush().unwrap();
        let got = wait_for(&server, &[("traceID", &trace)], i as usize + 1).await;
        assert_eq!(got.len(), i as usize + 1, "line {i} not shipped: {got:?}");
    }
    // A line written in two pieces is shipped once, whole.
    write!(f, r#"{{"trace_id":"{trace}","msg":"#).unwrap();
    f.flush().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    writeln!(f, r#""joined","ts":1714557700}}"#).unwrap();
    f.flush().unwrap();
    let got = wait_for(&server, &[("traceID", &trace)], 6).await;
    let bodies: Vec<&str> = got.iter().filter_map(|r| r["body"].as_str()).collect();
    assert_eq!(
        bodies,
        ["line 0", "line 1", "line 2", "line 3", "line 4", "joined"]
    );
    let _ = child.kill();
    let _ = child.wait();
}
