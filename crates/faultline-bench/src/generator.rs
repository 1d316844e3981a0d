//! Realistic span batches: the shape measured in `storage-findings.md` (20 services with 10
//! operations each, 8–12 semantic-convention attributes per span, ~7% of spans with events,
//! ~1% errors, ~29 resource attributes per pod).

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span::Event, ResourceSpans, ScopeSpans, Span, Status};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Services in the generated system.
pub const SERVICES: usize = 20;
/// Operations per service.
pub const OPERATIONS: usize = 10;
const PODS_PER_SERVICE: usize = 3;

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        key_strindex: 0,
    }
}

fn s(v: impl Into<String>) -> Value {
    Value::StringValue(v.into())
}

/// Name of service `i`.
pub fn service_name(i: usize) -> String {
    format!("svc-{i:02}")
}

/// Deterministic batch generator.
pub struct SpanGenerator {
    rng: StdRng,
    clock: u64,
    resources: Vec<Resource>,
}

impl SpanGenerator {
    /// A generator whose traces start at `start_nanos`.
    pub fn new(seed: u64, start_nanos: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut resources = Vec::new();
        for svc in 0..SERVICES {
            for pod in 0..PODS_PER_SERVICE {
                let name = service_name(svc);
                let pod_id: u64 = rng.random();
                let mut attrs = vec![
                    kv("service.name", s(name.clone())),
                    kv("service.version", s(format!("1.{}.{}", svc % 4, pod))),
                    kv("service.namespace", s("shop")),
                    kv("deployment.environment.name", s("production")),
                    kv("host.name", s(format!("node-{}", (svc * 7 + pod) % 12))),
                    kv("host.arch", s("amd64")),
                    kv("os.type", s("linux")),
                    kv("process.pid", Value::IntValue(1000 + pod as i64)),
                    kv("process.runtime.name", s("rust")),
                    kv("telemetry.sdk.name", s("opentelemetry")),
                    kv("telemetry.sdk.language", s("rust")),
                    kv("telemetry.sdk.version", s("0.33.0")),
                    kv("k8s.namespace.name", s("shop")),
                    kv("k8s.pod.name", s(format!("{name}-{pod_id:x}"))),
                    kv("k8s.pod.uid", s(format!("{:032x}", rng.random::<u128>()))),
                    kv("k8s.deployment.name", s(name.clone())),
                    kv("k8s.node.name", s(format!("node-{}", (svc * 7 + pod) % 12))),
                    kv("k8s.cluster.name", s("prod-eu-1")),
                    kv("cloud.provider", s("aws")),
                    kv("cloud.region", s("eu-west-1")),
                    kv(
                        "cloud.availability_zone",
                        s(format!("eu-west-1{}", ['a', 'b', 'c'][pod % 3])),
                    ),
                    kv("container.name", s(name.clone())),
                    kv("container.id", s(format!("{:064x}", rng.random::<u128>()))),
                    kv(
                        "container.image.name",
                        s(format!("registry.local/shop/{name}")),
                    ),
                    kv("container.image.tag", s(format!("v1.{}", svc % 4))),
                ];
                attrs.truncate(29);
                resources.push(Resource {
                    attributes: attrs,
                    ..Default::default()
                });
            }
        }
        Self {
            rng,
            clock: start_nanos,
            resources,
        }
    }

    /// One request holding `traces` traces of 3–15 spans each; returns it with its span count
    /// and its trace IDs.
    pub fn request(&mut self, traces: usize) -> (ExportTraceServiceRequest, usize, Vec<[u8; 16]>) {
        let mut by_resource: Vec<Vec<Span>> = vec![Vec::new(); self.resources.len()];
        let mut trace_ids = Vec::with_capacity(traces);
        let mut count = 0;
        for _ in 0..traces {
            let trace_id: [u8; 16] = self.rng.random();
            trace_ids.push(trace_id);
            let n = self.rng.random_range(3..=15);
            let start = self.clock;
            self.clock += self.rng.random_range(100_000..2_000_000);
            let mut ids: Vec<([u8; 8], u64, u64)> = Vec::with_capacity(n);
            for i in 0..n {
                let span_id: [u8; 8] = self.rng.random();
                let (parent, p_start, p_dur) = if i == 0 {
                    (Vec::new(), start, 50_000_000)
                } else {
                    let (p, ps, pd) = ids[self.rng.random_range(0..i)];
                    (p.to_vec(), ps, pd)
                };
                let s_start = p_start + self.rng.random_range(0..(p_dur / 4).max(1));
                let dur = self.rng.random_range(50_000..(p_dur / 2).max(60_000));
                ids.push((span_id, s_start, dur));
                let svc = if i == 0 {
                    0
                } else {
                    self.rng.random_range(0..SERVICES)
                };
                let res = svc * PODS_PER_SERVICE + self.rng.random_range(0..PODS_PER_SERVICE);
                let op = self.rng.random_range(0..OPERATIONS);
                let error = self.rng.random_ratio(1, 87);
                let span = self.span(trace_id, span_id, parent, svc, op, s_start, dur, error);
                by_resource[res].push(span);
                count += 1;
            }
        }
        let resource_spans = by_resource
            .into_iter()
            .enumerate()
            .filter(|(_, spans)| !spans.is_empty())
            .map(|(i, spans)| ResourceSpans {
                resource: Some(self.resources[i].clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "faultline-instrument".into(),
                        version: "0.1.0".into(),
                        ..Default::default()
                    }),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            })
            .collect();
        (
            ExportTraceServiceRequest { resource_spans },
            count,
            trace_ids,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn span(
        &mut self,
        trace_id: [u8; 16],
        span_id: [u8; 8],
        parent: Vec<u8>,
        svc: usize,
        op: usize,
        start: u64,
        dur: u64,
        error: bool,
    ) -> Span {
        let kind = self.rng.random_range(1..=3);
        let route = format!(
            "/api/v1/{}/{}",
            service_name(svc),
            ["items", "orders", "users", "carts", "stock"][op % 5]
        );
        let mut attrs = vec![
            kv(
                "http.request.method",
                s(["GET", "POST", "PUT", "DELETE"][op % 4]),
            ),
            kv("http.route", s(route.clone())),
            kv(
                "url.path",
                s(format!("{route}/{}", self.rng.random_range(0..10_000))),
            ),
            kv(
                "http.response.status_code",
                Value::IntValue(if error { 500 } else { 200 }),
            ),
            kv(
                "server.address",
                s(format!("{}.shop.svc", service_name(svc))),
            ),
            kv("server.port", Value::IntValue(8080)),
            kv("network.protocol.version", s("1.1")),
            kv("user_agent.original", s("faultline-bench/1.0")),
        ];
        let extra = self.rng.random_range(0..=4);
        let optional = [
            (
                "client.address",
                s(format!(
                    "10.0.{}.{}",
                    self.rng.random_range(0..255),
                    self.rng.random_range(0..255)
                )),
            ),
            ("db.system.name", s("postgresql")),
            ("db.operation.name", s("SELECT")),
            (
                "request.id",
                s(format!("{:032x}", self.rng.random::<u128>())),
            ),
            (
                "user.id",
                Value::IntValue(self.rng.random_range(0..100_000)),
            ),
        ];
        attrs.extend(optional.into_iter().take(extra).map(|(k, v)| kv(k, v)));
        let events = if self.rng.random_ratio(66, 1000) || error {
            vec![Event {
                time_unix_nano: start + dur / 2,
                name: if error {
                    "exception".into()
                } else {
                    "cache.miss".into()
                },
                attributes: if error {
                    vec![
                        kv("exception.type", s("TimeoutError")),
                        kv("exception.message", s("upstream timed out after 2s")),
                    ]
                } else {
                    vec![kv(
                        "cache.key",
                        s(format!("item:{}", self.rng.random_range(0..1000))),
                    )]
                },
                dropped_attributes_count: 0,
            }]
        } else {
            Vec::new()
        };
        Span {
            trace_id: trace_id.to_vec(),
            span_id: span_id.to_vec(),
            parent_span_id: parent,
            name: format!("{} {}", ["GET", "POST", "PUT", "DELETE"][op % 4], route),
            kind,
            start_time_unix_nano: start,
            end_time_unix_nano: start + dur,
            attributes: attrs,
            events,
            status: error.then(|| Status {
                message: "upstream timed out".into(),
                code: 2,
            }),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_deterministic_and_well_formed() {
        let (a, n, ids) = SpanGenerator::new(7, 1_000).request(50);
        let (b, m, _) = SpanGenerator::new(7, 1_000).request(50);
        assert_eq!(a, b);
        assert_eq!(n, m);
        assert_eq!(ids.len(), 50);
        let spans: Vec<&Span> = a
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .collect();
        assert_eq!(spans.len(), n);
        assert!((150..=750).contains(&n));
        for sp in spans {
            assert_eq!(sp.trace_id.len(), 16);
            assert_eq!(sp.span_id.len(), 8);
            assert!(sp.end_time_unix_nano > sp.start_time_unix_nano);
            assert!((8..=12).contains(&sp.attributes.len()));
        }
    }
}
