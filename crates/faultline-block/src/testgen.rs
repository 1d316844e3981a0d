//! A deterministic generator of realistic traces for tests and the size example: services with
//! Kubernetes-style resources, HTTP/RPC/DB spans carrying semantic-convention attributes, some
//! events and errors. Shared by `src/tests.rs` and `examples/block_size.rs` (via `#[path]`), so
//! it uses only `faultline_model`.

use std::sync::Arc;

use faultline_model::{
    AttributeValue as V, Event, InstrumentationScope, KeyValue, Resource, Span, SpanId, SpanKind,
    Status, StatusCode, TraceId, UnixNanos,
};

/// xorshift64*: tiny, deterministic, good enough for synthetic data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn chance(&mut self, percent: f64) -> bool {
        (self.below(1_000_000) as f64) < percent * 10_000.0
    }
    pub fn uuid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            (b >> 48) | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }
}

fn s(k: &str, v: impl Into<faultline_model::CompactString>) -> KeyValue {
    KeyValue::new(k, V::String(v.into()))
}
fn i(k: &str, v: i64) -> KeyValue {
    KeyValue::new(k, V::Int(v))
}

struct Service {
    name: String,
    pods: Vec<Arc<Resource>>,
    scope: Arc<InstrumentationScope>,
    ops: Vec<String>,
    /// 0 = HTTP, 1 = gRPC.
    protocol: u8,
}

/// A fixed world of `services` services with `ops` operations each.
pub struct World {
    services: Vec<Service>,
}

impl World {
    pub fn new(rng: &mut Rng, services: usize, ops: usize) -> Self {
        let services = (0..services)
            .map(|n| {
                let name = format!("svc-{n:02}");
                let protocol = (n % 3 == 2) as u8;
                let pods = (0..3)
                    .map(|p| {
                        let pod = format!("{name}-7d9f{p}c-{:05x}", rng.below(1 << 20));
                        Arc::new(Resource {
                            attributes: vec![
                                s("service.name", &name),
                                s("service.namespace", "shop"),
                                s("service.version", format!("1.{}.{}", n % 7, p)),
                                s("service.instance.id", rng.uuid()),
                                s("host.name", &pod),
                                s("host.arch", "amd64"),
                                s("os.type", "linux"),
                                s("os.description", "Debian GNU/Linux 12 (bookworm)"),
                                i("process.pid", 1 + rng.below(60_000) as i64),
                                s("process.executable.name", &name),
                                s("process.runtime.name", "OpenJDK Runtime Environment"),
                                s("process.runtime.version", "21.0.4+7-LTS"),
                                s("telemetry.sdk.name", "opentelemetry"),
                                s("telemetry.sdk.language", "java"),
                                s("telemetry.sdk.version", "1.42.1"),
                                s("k8s.namespace.name", "shop"),
                                s("k8s.pod.name", &pod),
                                s("k8s.pod.uid", rng.uuid()),
                                s("k8s.deployment.name", &name),
                                s("k8s.node.name", format!("node-{}", rng.below(12))),
                                s("k8s.cluster.name", "prod-eu-1"),
                                s("cloud.provider", "aws"),
                                s("cloud.region", "eu-west-1"),
                                s(
                                    "cloud.availability_zone",
                                    format!("eu-west-1{}", ["a", "b", "c"][p]),
                                ),
                                s(
                                    "container.id",
                                    format!("{:016x}{:016x}", rng.next(), rng.next()),
                                ),
                                s("container.name", &name),
                                s("deployment.environment.name", "production"),
                            ],
                            dropped_attributes_count: 0,
                            schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
                        })
                    })
                    .collect();
                let ops = (0..ops)
                    .map(|o| match protocol {
                        0 => format!("{} /api/v1/{name}/op{o}", ["GET", "POST", "PUT"][o % 3]),
                        _ => format!("shop.{name}.Service/Method{o}"),
                    })
                    .collect();
                Service {
                    name,
                    pods,
                    scope: Arc::new(InstrumentationScope {
                        name: "io.opentelemetry.spring-webmvc-6.0".into(),
                        version: "2.8.0-alpha".into(),
                        ..Default::default()
                    }),
                    ops,
                    protocol,
                }
            })
            .collect();
        Self { services }
    }

    /// Appends one trace of 3..=30 spans starting at `at` to `out`.
    pub fn trace(&self, rng: &mut Rng, at: UnixNanos, out: &mut Vec<Span>) {
        let mut tid = [0u8; 16];
        tid[..8].copy_from_slice(&rng.next().to_le_bytes());
        tid[8..].copy_from_slice(&rng.next().to_le_bytes());
        let trace_id = TraceId(tid);
        let target = 3 + rng.below(28) as usize;
        let root_svc = rng.below(3) as usize;
        let first = out.len();
        self.span(
            rng,
            trace_id,
            None,
            root_svc,
            SpanKind::Server,
            at,
            200_000_000,
            out,
        );
        while out.len() - first < target {
            // Children hang off random earlier spans of the trace.
            let parent_i = first + rng.below((out.len() - first) as u64) as usize;
            let (pid, pstart, pdur, psvc) = {
                let p = &out[parent_i];
                let svc = self
                    .services
                    .iter()
                    .position(|x| x.name == p.service_name())
                    .unwrap_or(0);
                (p.span_id, p.start, p.duration_nanos().max(1000), svc)
            };
            let start = UnixNanos(pstart.0 + rng.below(pdur / 2));
            let dur = (pdur / 2).max(1000);
            match rng.below(3) {
                0 => {
                    let child = rng.below(self.services.len() as u64) as usize;
                    let cid = self.span(
                        rng,
                        trace_id,
                        Some(pid),
                        psvc,
                        SpanKind::Client,
                        start,
                        dur,
                        out,
                    );
                    self.span(
                        rng,
                        trace_id,
                        Some(cid),
                        child,
                        SpanKind::Server,
                        UnixNanos(start.0 + 50_000),
                        dur - dur / 10,
                        out,
                    );
                }
                1 => {
                    self.span(
                        rng,
                        trace_id,
                        Some(pid),
                        psvc,
                        SpanKind::Client,
                        start,
                        dur / 3 + 1,
                        out,
                    );
                }
                _ => {
                    self.span(
                        rng,
                        trace_id,
                        Some(pid),
                        psvc,
                        SpanKind::Internal,
                        start,
                        dur / 2 + 1,
                        out,
                    );
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn span(
        &self,
        rng: &mut Rng,
        trace_id: TraceId,
        parent: Option<SpanId>,
        svc: usize,
        kind: SpanKind,
        start: UnixNanos,
        max_dur: u64,
        out: &mut Vec<Span>,
    ) -> SpanId {
        let service = &self.services[svc];
        let span_id = SpanId((rng.next() | 1).to_le_bytes());
        let op = rng.below(service.ops.len() as u64) as usize;
        let dur = 1000 + rng.below(max_dur.max(2)) / (1 + rng.below(8));
        let error = rng.chance(1.0);
        let mut attrs = Vec::with_capacity(12);
        let (name, status_code) = match (kind, service.protocol) {
            (SpanKind::Server, 0) => {
                let n = &service.ops[op];
                let (method, route) = n.split_once(' ').unwrap_or(("GET", n));
                let code = if error {
                    500
                } else {
                    [200, 200, 200, 201, 204, 404][rng.below(6) as usize]
                };
                attrs.extend([
                    s("http.request.method", method),
                    s("http.route", route),
                    i("http.response.status_code", code),
                    s(
                        "url.path",
                        route.replace("op", &format!("{}/op", rng.below(5000))),
                    ),
                    s("url.scheme", "http"),
                    s("server.address", format!("{}.shop.svc", service.name)),
                    i("server.port", 8080),
                    s(
                        "client.address",
                        format!("10.0.{}.{}", rng.below(8), rng.below(250)),
                    ),
                    s("user_agent.original", "okhttp/4.12.0"),
                    s("network.protocol.version", "1.1"),
                ]);
                (n.clone(), code)
            }
            (SpanKind::Server, _) => {
                let n = &service.ops[op];
                let (svc_name, method) = n.rsplit_once('/').unwrap_or((n, "Call"));
                let code = if error { 13 } else { 0 };
                attrs.extend([
                    s("rpc.system", "grpc"),
                    s("rpc.service", svc_name),
                    s("rpc.method", method),
                    i("rpc.grpc.status_code", code),
                    s("server.address", format!("{}.shop.svc", service.name)),
                    i("server.port", 9090),
                    s(
                        "network.peer.address",
                        format!("10.0.{}.{}", rng.below(8), rng.below(250)),
                    ),
                    i("network.peer.port", 30000 + rng.below(30000) as i64),
                ]);
                (n.clone(), code)
            }
            (SpanKind::Client, _) if rng.below(2) == 0 => {
                let table = ["orders", "users", "carts", "items"][rng.below(4) as usize];
                let op_name = ["SELECT", "INSERT", "UPDATE"][rng.below(3) as usize];
                attrs.extend([
                    s("db.system.name", "postgresql"),
                    s("db.namespace", "shop"),
                    s("db.operation.name", op_name),
                    s("db.collection.name", table),
                    s(
                        "db.query.text",
                        format!("{op_name} * FROM {table} WHERE id = $1"),
                    ),
                    s("server.address", "pg-main.shop.svc"),
                    i("server.port", 5432),
                    s("network.peer.address", format!("10.1.0.{}", rng.below(4))),
                    i("network.peer.port", 5432),
                ]);
                (format!("{op_name} shop.{table}"), 0)
            }
            (SpanKind::Client, _) => {
                let code = if error { 503 } else { 200 };
                attrs.extend([
                    s("http.request.method", "GET"),
                    s(
                        "url.full",
                        format!(
                            "http://svc-{:02}.shop.svc:8080/api/v1/x/{}",
                            rng.below(20),
                            rng.below(5000)
                        ),
                    ),
                    s(
                        "server.address",
                        format!("svc-{:02}.shop.svc", rng.below(20)),
                    ),
                    i("server.port", 8080),
                    i("http.response.status_code", code),
                    s("network.protocol.version", "1.1"),
                    s(
                        "network.peer.address",
                        format!("10.0.{}.{}", rng.below(8), rng.below(250)),
                    ),
                    i("network.peer.port", 8080),
                ]);
                ("GET".to_owned(), code)
            }
            _ => {
                attrs.extend([
                    s(
                        "code.function.name",
                        format!("com.shop.{}.Handler.step{}", service.name, rng.below(10)),
                    ),
                    i("thread.id", 20 + rng.below(200) as i64),
                    s(
                        "thread.name",
                        format!("http-nio-8080-exec-{}", rng.below(200)),
                    ),
                    i("app.items", rng.below(50) as i64),
                    KeyValue::new("app.cache_hit", V::Bool(rng.below(2) == 0)),
                    KeyValue::new("app.score", V::Double(rng.below(1000) as f64 / 7.0)),
                    s("app.tenant", format!("tenant-{}", rng.below(40))),
                    s("app.region", "eu"),
                ]);
                (format!("{}.step{}", service.name, rng.below(10)), 0)
            }
        };
        // Per-request identifiers: the incompressible tail of real attribute sets.
        if rng.below(2) == 0 {
            attrs.push(s("app.request_id", rng.uuid()));
        }
        if rng.below(3) == 0 {
            attrs.push(i("app.user_id", rng.below(100_000) as i64));
        }
        let mut events = Vec::new();
        if rng.chance(7.0) {
            events.push(Event {
                time: UnixNanos(start.0 + dur / 2),
                name: if error { "exception".into() } else { "log".into() },
                attributes: if error {
                    vec![
                        s("exception.type", "java.io.IOException"),
                        s("exception.message", "connection reset by peer"),
                        s("exception.stacktrace", "java.io.IOException: connection reset\n\tat com.shop.Client.call(Client.java:42)"),
                    ]
                } else {
                    vec![s("message", format!("cache refreshed in {} ms", rng.below(90))), s("level", "INFO")]
                },
                dropped_attributes_count: 0,
            });
        }
        let _ = status_code;
        out.push(Span {
            trace_id,
            span_id,
            parent_span_id: parent,
            trace_state: String::new(),
            flags: 0x101,
            name: name.into(),
            kind,
            start,
            end: UnixNanos(start.0 + dur),
            attributes: attrs,
            dropped_attributes_count: 0,
            events,
            dropped_events_count: 0,
            links: Vec::new(),
            dropped_links_count: 0,
            status: if error {
                Status {
                    code: StatusCode::Error,
                    message: "upstream failed".into(),
                }
            } else {
                Status::default()
            },
            resource: service.pods[rng.below(service.pods.len() as u64) as usize].clone(),
            scope: service.scope.clone(),
        });
        span_id
    }
}

/// About `n` spans of realistic traces starting within one hour after `t0`.
pub fn realistic_spans(seed: u64, n: usize, t0: UnixNanos) -> Vec<Span> {
    let mut rng = Rng::new(seed);
    let world = World::new(&mut rng, 20, 10);
    let mut out = Vec::with_capacity(n + 32);
    let hour = 3_600_000_000_000u64;
    let traces_guess = (n / 16).max(1) as u64;
    let mut k = 0u64;
    while out.len() < n {
        let at = UnixNanos(t0.0 + hour * k / traces_guess + rng.below(1_000_000));
        world.trace(&mut rng, at, &mut out);
        k += 1;
    }
    out
}
