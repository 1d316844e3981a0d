//! `init`-style setup exporting to real OTLP receivers (HTTP/protobuf and gRPC) on loopback.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use faultline_instrument::sampling::SamplerConfig;
use faultline_instrument::{Protocol, Telemetry};
use opentelemetry::trace::Tracer;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message;

type Received = Arc<Mutex<Vec<ExportTraceServiceRequest>>>;

fn resource_attr(request: &ExportTraceServiceRequest, key: &str) -> Option<String> {
    let resource = request.resource_spans.first()?.resource.as_ref()?;
    resource
        .attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref().cloned())
        .map(|v| match v {
            any_value::Value::StringValue(s) => s,
            any_value::Value::IntValue(i) => i.to_string(),
            other => format!("{other:?}"),
        })
}

fn span_names(received: &Received) -> Vec<String> {
    received
        .lock()
        .expect("lock")
        .iter()
        .flat_map(|r| r.resource_spans.iter())
        .flat_map(|rs| rs.scope_spans.iter())
        .flat_map(|ss| ss.spans.iter())
        .map(|s| s.name.clone())
        .collect()
}

async fn http_receiver(State(received): State<Received>, body: Bytes) -> Vec<u8> {
    if let Ok(request) = ExportTraceServiceRequest::decode(body) {
        received.lock().expect("lock").push(request);
    }
    ExportTraceServiceResponse::default().encode_to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_over_otlp_http() {
    let received = Received::default();
    let app = Router::new()
        .route("/v1/traces", post(http_receiver))
        .with_state(Arc::clone(&received));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let telemetry = Telemetry::builder("checkout")
        .service_version("9.9.9")
        .protocol(Protocol::HttpProtobuf)
        .endpoint(format!("http://{addr}"))
        .sampler(SamplerConfig::AlwaysOn)
        .install_global(false)
        .install()
        .expect("install");
    telemetry.tracer().in_span("charge card", |_| {});
    let stats = telemetry.export_stats();
    // Shutdown runs on a blocking thread: it waits for the export, which needs this runtime.
    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .expect("join")
        .expect("shutdown flushes");
    assert_eq!(span_names(&received), ["charge card"]);
    assert_eq!(stats.exported_spans(), 1);
    let first = received.lock().expect("lock")[0].clone();
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        assert_eq!(
            resource_attr(&first, "service.name").as_deref(),
            Some("checkout")
        );
    }
    assert_eq!(
        resource_attr(&first, "service.version").as_deref(),
        Some("9.9.9")
    );
    assert_eq!(
        resource_attr(&first, "telemetry.sdk.language").as_deref(),
        Some("rust")
    );
    assert!(resource_attr(&first, "host.name").is_some());
}

#[derive(Clone, Default)]
struct GrpcReceiver(Received);

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.lock().expect("lock").push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[test]
fn exports_over_otlp_grpc_without_a_caller_runtime() {
    // The receiver runs on its own runtime; the service under test has none at all.
    let receiver_runtime = tokio::runtime::Runtime::new().expect("runtime");
    let received = Received::default();
    let addr = receiver_runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let service = TraceServiceServer::new(GrpcReceiver(Arc::clone(&received)));
        tokio::spawn(async move {
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await;
        });
        addr
    });

    let telemetry = Telemetry::builder("checkout")
        .protocol(Protocol::Grpc)
        .endpoint(format!("http://{addr}"))
        .sampler(SamplerConfig::AlwaysOn)
        .install_global(false)
        .install()
        .expect("install");
    telemetry.tracer().in_span("reserve stock", |_| {});
    telemetry.shutdown().expect("shutdown flushes");
    assert_eq!(span_names(&received), ["reserve stock"]);
}
