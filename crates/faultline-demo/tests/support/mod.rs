//! Helpers shared by the demo's integration tests: start the demo on free ports, drive the
//! gateway, and read traces back through the Jaeger query API with deadlines.

#![allow(dead_code)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use faultline_demo::demo::{self, DemoConfig, RunningDemo};
use serde_json::Value;

/// One span as the Jaeger API returns it, flattened for assertions.
#[derive(Clone, Debug)]
pub struct Span {
    pub id: String,
    pub parent: Option<String>,
    pub service: String,
    pub name: String,
    pub kind: String,
    pub duration: Duration,
    pub error: bool,
    pub tags: HashMap<String, Value>,
    pub events: Vec<String>,
}

impl Span {
    pub fn tag_str(&self, key: &str) -> Option<&str> {
        self.tags.get(key).and_then(Value::as_str)
    }

    pub fn tag_i64(&self, key: &str) -> Option<i64> {
        self.tags.get(key).and_then(Value::as_i64)
    }

    pub fn tag_f64(&self, key: &str) -> Option<f64> {
        self.tags.get(key).and_then(Value::as_f64)
    }
}

/// The spans of a trace.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    pub spans: Vec<Span>,
}

impl Trace {
    pub fn find(&self, service: &str, name: &str) -> Option<&Span> {
        self.spans
            .iter()
            .find(|s| s.service == service && s.name == name)
    }

    pub fn expect(&self, service: &str, name: &str) -> &Span {
        self.find(service, name)
            .unwrap_or_else(|| panic!("no span {service}/{name} in\n{}", self.describe()))
    }

    /// The CLIENT span of `service` calling `peer`.
    pub fn client(&self, service: &str, peer: &str) -> &Span {
        self.spans
            .iter()
            .find(|s| {
                s.service == service
                    && s.kind == "client"
                    && s.tag_str("peer.service") == Some(peer)
            })
            .unwrap_or_else(|| panic!("no {service} → {peer} client span in\n{}", self.describe()))
    }

    /// The gRPC CLIENT span of `service` calling `method`.
    pub fn grpc_client(&self, service: &str, method: &str) -> &Span {
        self.spans
            .iter()
            .find(|s| {
                s.service == service
                    && s.kind == "client"
                    && s.tag_str("rpc.method") == Some(method)
            })
            .unwrap_or_else(|| panic!("no {service} gRPC {method} call in\n{}", self.describe()))
    }

    pub fn by_kind(&self, service: &str, kind: &str) -> Vec<&Span> {
        self.spans
            .iter()
            .filter(|s| s.service == service && s.kind == kind)
            .collect()
    }

    pub fn parent_of(&self, span: &Span) -> Option<&Span> {
        let parent = span.parent.as_ref()?;
        self.spans.iter().find(|s| &s.id == parent)
    }

    /// Asserts `child`'s parent is `parent`.
    pub fn assert_child(&self, child: &Span, parent: &Span) {
        assert_eq!(
            child.parent.as_deref(),
            Some(parent.id.as_str()),
            "{}/{} should be a child of {}/{} in\n{}",
            child.service,
            child.name,
            parent.service,
            parent.name,
            self.describe()
        );
    }

    pub fn describe(&self) -> String {
        self.spans
            .iter()
            .map(|s| {
                format!(
                    "  {} {:<13} {:<45} {:<8} parent={:<16} {:>8.1}ms error={} {:?}",
                    s.id,
                    s.service,
                    s.name,
                    s.kind,
                    s.parent.as_deref().unwrap_or("-"),
                    s.duration.as_secs_f64() * 1000.0,
                    s.error,
                    s.tags
                        .iter()
                        .filter(|(k, _)| k.starts_with("error")
                            || k.starts_with("peer")
                            || k.starts_with("db.client")
                            || k.starts_with("rpc.method")
                            || k.starts_with("rpc.grpc")
                            || k.starts_with("messaging.message.queue"))
                        .collect::<Vec<_>>()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn parse_trace(json: &Value) -> Trace {
    let Some(data) = json["data"].as_array().and_then(|d| d.first()) else {
        return Trace::default();
    };
    let services: HashMap<String, String> = data["processes"]
        .as_object()
        .map(|p| {
            p.iter()
                .map(|(id, proc_)| {
                    (
                        id.clone(),
                        proc_["serviceName"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let spans = data["spans"]
        .as_array()
        .map(|spans| {
            spans
                .iter()
                .map(|s| {
                    let tags: HashMap<String, Value> = s["tags"]
                        .as_array()
                        .map(|t| {
                            t.iter()
                                .map(|t| {
                                    (
                                        t["key"].as_str().unwrap_or_default().to_owned(),
                                        t["value"].clone(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    let parent = s["references"].as_array().and_then(|r| {
                        r.iter()
                            .find(|r| r["refType"] == "CHILD_OF")
                            .and_then(|r| r["spanID"].as_str())
                            .map(str::to_owned)
                    });
                    let events = s["logs"]
                        .as_array()
                        .map(|logs| {
                            logs.iter()
                                .filter_map(|l| {
                                    l["fields"].as_array()?.iter().find_map(|f| {
                                        (f["key"] == "event")
                                            .then(|| f["value"].as_str().map(str::to_owned))?
                                    })
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    Span {
                        id: s["spanID"].as_str().unwrap_or_default().to_owned(),
                        parent,
                        service: services
                            .get(s["processID"].as_str().unwrap_or_default())
                            .cloned()
                            .unwrap_or_default(),
                        name: s["operationName"].as_str().unwrap_or_default().to_owned(),
                        kind: tags
                            .get("span.kind")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned(),
                        duration: Duration::from_micros(s["duration"].as_u64().unwrap_or(0)),
                        error: tags.get("error") == Some(&Value::Bool(true)),
                        tags,
                        events,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Trace { spans }
}

/// A running demo plus clients for its gateway and query API.
pub struct Harness {
    pub demo: RunningDemo,
    pub http: reqwest::Client,
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::start_with(DemoConfig::ephemeral()).await
    }

    pub async fn start_with(config: DemoConfig) -> Harness {
        let demo = demo::start(config).await.expect("demo starts");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .expect("client");
        Harness { demo, http }
    }

    pub fn gateway(&self) -> String {
        self.demo.shop.gateway_url()
    }

    pub fn admin(&self, service: &str) -> faultline_demo::fault::AdminClient {
        let info = self.demo.shop.service(service).expect("known service");
        faultline_demo::fault::AdminClient::new(&info.admin_url()).expect("admin client")
    }

    /// Places an order; returns the status and the `X-Trace-Id`.
    pub async fn checkout(&self) -> (u16, String) {
        let response = self
            .http
            .post(format!("{}/api/checkout", self.gateway()))
            .header("content-type", "application/json")
            .body(r#"{"user_id":42,"items":[{"sku":"SKU-0007","quantity":2},{"sku":"SKU-0011","quantity":1}]}"#)
            .send()
            .await
            .expect("gateway answers");
        let status = response.status().as_u16();
        let trace_id = response
            .headers()
            .get("x-trace-id")
            .and_then(|v| v.to_str().ok())
            .expect("every answer carries X-Trace-Id")
            .to_owned();
        let _ = response.bytes().await;
        (status, trace_id)
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!(
                "{}{path}",
                self.demo.query_url().expect("embedded server")
            ))
            .send()
            .await
            .expect("query API answers");
        let status = response.status().as_u16();
        let body = response.bytes().await.expect("body");
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// Polls the trace until `done` holds for it, flushing the shop's exporters each time.
    pub async fn trace_until(
        &self,
        trace_id: &str,
        timeout: Duration,
        done: impl Fn(&Trace) -> bool,
    ) -> Trace {
        let deadline = Instant::now() + timeout;
        let mut last = Trace::default();
        loop {
            self.demo.shop.flush().await;
            let (status, json) = self.get_json(&format!("/api/traces/{trace_id}")).await;
            if status == 200 {
                last = parse_trace(&json);
                if done(&last) {
                    return last;
                }
            }
            assert!(
                Instant::now() < deadline,
                "trace {trace_id} did not reach the expected shape in {timeout:?}; last seen:\n{}",
                last.describe()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A checkout's trace once the whole tree (including the queue consumer) has arrived.
    pub async fn complete_checkout_trace(&self, trace_id: &str) -> Trace {
        self.trace_until(trace_id, Duration::from_secs(20), |t| {
            t.spans.iter().any(|s| s.kind == "consumer")
                && t.spans
                    .iter()
                    .any(|s| s.service == "notification" && s.kind == "client")
                && t.spans
                    .iter()
                    .any(|s| s.service == "payment" && s.kind == "client")
                && t.spans
                    .iter()
                    .any(|s| s.tags.contains_key("db.system.name"))
                && t.find("gateway", "POST /api/checkout").is_some()
        })
        .await
    }
}
