//! Helpers for Faultline's cross-process tests: start the real `faultline` binary on free
//! loopback ports, kill it with SIGKILL, restart it on the same data, generate OTLP traffic and
//! read traces back through the Jaeger API.
//!
//! Only test code uses this crate; it must never be a dependency of the product.
#![deny(missing_docs)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use rand::{Rng, SeedableRng};

/// Path of the `faultline` binary under test: `$FAULTLINE_BIN`, or the one cargo built next to
/// this test executable (`target/<profile>/faultline`).
pub fn faultline_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("FAULTLINE_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test-binary> → target/<profile>/faultline
    let profile_dir = exe.parent().and_then(Path::parent).expect("target dir");
    profile_dir.join("faultline")
}

/// A free TCP port on 127.0.0.1 (bound, then released for the server to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A `faultline serve` child process.
pub struct ServerProcess {
    child: Child,
    /// OTLP/gRPC port.
    pub grpc_port: u16,
    /// OTLP/HTTP port.
    pub otlp_http_port: u16,
    /// Query API port.
    pub http_port: u16,
    /// Data directory (kept across restarts).
    pub data_dir: PathBuf,
    /// Extra flags it was started with.
    pub extra_args: Vec<String>,
    log_path: PathBuf,
}

impl ServerProcess {
    /// Starts `faultline serve` on fresh ports with `data_dir`, waiting until `/ready` answers.
    ///
    /// The ports come from [`free_port`], which releases them before the server binds, so a
    /// test running in parallel can take one in between; when the server exits because a port
    /// is taken, it is started again on other ports (a few times) instead of failing the test.
    pub async fn start(data_dir: &Path, extra_args: &[&str]) -> Self {
        const ATTEMPTS: usize = 5;
        let mut failures = Vec::new();
        for _ in 0..ATTEMPTS {
            let mut server = Self::spawn(data_dir, extra_args);
            match server.wait_ready(Duration::from_secs(120)).await {
                Ok(()) => return server,
                Err(exit) if server.logs().contains("cannot listen on") => failures.push(exit),
                Err(exit) => panic!("{exit}"),
            }
        }
        panic!(
            "faultline could not bind free ports in {ATTEMPTS} attempts:\n{}",
            failures.join("\n")
        );
    }

    fn spawn(data_dir: &Path, extra_args: &[&str]) -> Self {
        let extra_args: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
        let (grpc_port, otlp_http_port, http_port) = (free_port(), free_port(), free_port());
        let log_path = data_dir.with_extension(format!("{http_port}.log"));
        let log = std::fs::File::create(&log_path).expect("log file");
        let child = Command::new(faultline_bin())
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--otlp-grpc", &format!("127.0.0.1:{grpc_port}")])
            .args(["--otlp-http", &format!("127.0.0.1:{otlp_http_port}")])
            .args(["--http", &format!("127.0.0.1:{http_port}")])
            .args(&extra_args)
            .env("FAULTLINE_LOG", "info")
            .stdout(Stdio::from(log.try_clone().expect("log clone")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", faultline_bin().display()));
        Self {
            child,
            grpc_port,
            otlp_http_port,
            http_port,
            data_dir: data_dir.to_owned(),
            extra_args,
            log_path,
        }
    }

    /// Base URL of the query API.
    pub fn api(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The server's log so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Polls `/ready` until it answers 200; `Err` (with the server's log) when the process
    /// exits first. Not ready by `timeout` is a test failure at once.
    async fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let client = reqwest::Client::new();
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("faultline exited with {status}:\n{}", self.logs()));
            }
            if let Ok(r) = client.get(format!("{}/ready", self.api())).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("faultline not ready after {timeout:?}:\n{}", self.logs());
    }

    /// Kills the process with SIGKILL (no chance to flush) and waits for it to die.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the process with SIGKILL and starts a new one on the same data directory.
    pub async fn crash_and_restart(mut self) -> Self {
        self.kill9();
        let args: Vec<&str> = self.extra_args.iter().map(String::as_str).collect();
        Self::start(&self.data_dir.clone(), &args).await
    }

    /// An OTLP/gRPC client for this server.
    pub async fn grpc_client(&self) -> TraceServiceClient<tonic::transport::Channel> {
        TraceServiceClient::connect(format!("http://127.0.0.1:{}", self.grpc_port))
            .await
            .expect("connect OTLP/gRPC")
    }

    /// Fetches one trace through the Jaeger API; `None` on 404.
    pub async fn jaeger_trace(&self, trace_id: &str) -> Option<serde_json::Value> {
        let r = reqwest::get(format!("{}/api/traces/{trace_id}", self.api()))
            .await
            .expect("query API reachable");
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            return None;
        }
        assert!(
            r.status().is_success(),
            "GET trace {trace_id}: {}",
            r.status()
        );
        let body: serde_json::Value = r.json().await.expect("JSON body");
        body["data"].get(0).cloned()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        key_strindex: 0,
    }
}

/// A trace ID with the IDs of its spans.
pub type TraceSpanIds = ([u8; 16], Vec<[u8; 8]>);

/// Deterministic generator of realistic OTLP trace batches.
pub struct TraceGenerator {
    rng: rand::rngs::StdRng,
    clock_nanos: u64,
}

impl TraceGenerator {
    /// A generator seeded with `seed`, with span times starting now.
    pub fn new(seed: u64) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Self {
            rng: rand::rngs::StdRng::seed_from_u64(seed),
            clock_nanos: now,
        }
    }

    /// One request with `traces` traces of `spans_per_trace` spans each, spread over a few
    /// services; returns it with the (trace ID, span IDs) it holds.
    pub fn batch(
        &mut self,
        traces: usize,
        spans_per_trace: usize,
    ) -> (ExportTraceServiceRequest, Vec<TraceSpanIds>) {
        const SERVICES: [&str; 4] = ["gateway", "order", "inventory", "payment"];
        let mut per_service: Vec<Vec<Span>> = vec![Vec::new(); SERVICES.len()];
        let mut ids = Vec::with_capacity(traces);
        for _ in 0..traces {
            let trace_id: [u8; 16] = self.rng.random();
            let start = self.clock_nanos;
            self.clock_nanos += 1_000_000;
            let mut span_ids: Vec<[u8; 8]> = Vec::with_capacity(spans_per_trace);
            for i in 0..spans_per_trace {
                let span_id: [u8; 8] = self.rng.random();
                let parent = if i == 0 {
                    Vec::new()
                } else {
                    span_ids[self.rng.random_range(0..i)].to_vec()
                };
                let svc = if i == 0 {
                    0
                } else {
                    self.rng.random_range(0..SERVICES.len())
                };
                let s_start = start + i as u64 * 10_000;
                let error = self.rng.random_ratio(1, 50);
                per_service[svc].push(Span {
                    trace_id: trace_id.to_vec(),
                    span_id: span_id.to_vec(),
                    parent_span_id: parent,
                    name: format!("{} op{}", SERVICES[svc], self.rng.random_range(0..5)),
                    kind: if i == 0 {
                        2
                    } else {
                        self.rng.random_range(1..=3)
                    },
                    start_time_unix_nano: s_start,
                    end_time_unix_nano: s_start + self.rng.random_range(1_000..5_000_000),
                    attributes: vec![
                        kv(
                            "http.request.method",
                            any_value::Value::StringValue("GET".into()),
                        ),
                        kv(
                            "http.response.status_code",
                            any_value::Value::IntValue(if error { 500 } else { 200 }),
                        ),
                        kv("request.seq", any_value::Value::IntValue(i as i64)),
                    ],
                    status: error.then(|| opentelemetry_proto::tonic::trace::v1::Status {
                        code: 2,
                        message: "failed".into(),
                    }),
                    ..Default::default()
                });
                span_ids.push(span_id);
            }
            ids.push((trace_id, span_ids));
        }
        let resource_spans = per_service
            .into_iter()
            .enumerate()
            .filter(|(_, spans)| !spans.is_empty())
            .map(|(i, spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        kv(
                            "service.name",
                            any_value::Value::StringValue(SERVICES[i].into()),
                        ),
                        kv(
                            "host.name",
                            any_value::Value::StringValue(format!("{}-0", SERVICES[i])),
                        ),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                schema_url: String::new(),
            })
            .collect();
        (ExportTraceServiceRequest { resource_spans }, ids)
    }
}

/// `base?k=v&...` with values percent-encoded (reqwest here is built without `query`).
pub fn with_query(base: &str, params: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    let q: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    format!("{base}?{}", q.join("&"))
}
