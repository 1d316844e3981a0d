//! A real tonic server and client, both traced, exchanging unary calls over loopback.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use faultline_instrument::sampling::SamplerConfig;
use faultline_instrument::Telemetry;
use http::uri::PathAndQuery;
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use tonic::server::NamedService;
use tower::{Service, ServiceBuilder};

#[derive(Clone, PartialEq, prost::Message)]
struct Greeting {
    #[prost(string, tag = "1")]
    text: String,
}

/// What `tonic-build` would generate for `service Greeter { rpc Say(Greeting) returns (Greeting); }`.
#[derive(Clone)]
struct GreeterServer;

impl NamedService for GreeterServer {
    const NAME: &'static str = "test.Greeter";
}

struct Say;

impl tonic::server::UnaryService<Greeting> for Say {
    type Response = Greeting;
    type Future =
        Pin<Box<dyn Future<Output = Result<tonic::Response<Greeting>, tonic::Status>> + Send>>;

    fn call(&mut self, request: tonic::Request<Greeting>) -> Self::Future {
        Box::pin(async move {
            let text = request.into_inner().text;
            if text == "fail" {
                return Err(tonic::Status::internal("greeter broke"));
            }
            if text == "nobody" {
                return Err(tonic::Status::not_found("no such person"));
            }
            Ok(tonic::Response::new(Greeting {
                text: format!("hello {text}"),
            }))
        })
    }
}

impl Service<http::Request<tonic::body::Body>> for GreeterServer {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(async move {
            if request.uri().path() == "/test.Greeter/Say" {
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
                Ok(grpc.unary(Say, request).await)
            } else {
                Ok(tonic::Status::unimplemented("no such method").into_http())
            }
        })
    }
}

fn telemetry(service: &str) -> (Telemetry, InMemorySpanExporter) {
    let exporter = InMemorySpanExporter::default();
    let telemetry = Telemetry::builder(service)
        .sampler(SamplerConfig::AlwaysOn)
        .install_global(false)
        .install_with_exporter(exporter.clone())
        .expect("telemetry");
    (telemetry, exporter)
}

fn attr(span: &SpanData, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.clone())
}

#[tokio::test]
async fn unary_calls_are_traced_on_both_sides() {
    let (server_telemetry, server_spans) = telemetry("greeter");
    let (client_telemetry, client_spans) = telemetry("caller");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = tonic::transport::Server::builder()
        .layer(server_telemetry.grpc_server_layer())
        .add_service(GreeterServer);
    tokio::spawn(async move {
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let _ = router.serve_with_incoming(incoming).await;
    });
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let traced = ServiceBuilder::new()
        .layer(client_telemetry.grpc_client_layer())
        .service(channel);
    let mut client = tonic::client::Grpc::new(traced);

    let mut results = Vec::new();
    for text in ["ada", "fail", "nobody"] {
        client.ready().await.expect("ready");
        let reply = client
            .unary::<Greeting, Greeting, _>(
                tonic::Request::new(Greeting {
                    text: text.to_owned(),
                }),
                PathAndQuery::from_static("/test.Greeter/Say"),
                tonic_prost::ProstCodec::default(),
            )
            .await;
        results.push(reply.map(|r| r.into_inner().text).map_err(|s| s.code()));
    }
    assert_eq!(
        results,
        [
            Ok("hello ada".to_owned()),
            Err(tonic::Code::Internal),
            Err(tonic::Code::NotFound)
        ]
    );

    server_telemetry.force_flush().expect("flush");
    client_telemetry.force_flush().expect("flush");
    let servers = server_spans.get_finished_spans().expect("spans");
    let clients = client_spans.get_finished_spans().expect("spans");
    assert_eq!(servers.len(), 3);
    assert_eq!(clients.len(), 3);
    for (client, code) in clients.iter().zip([0_i64, 13, 5]) {
        assert_eq!(client.name, "test.Greeter/Say");
        assert_eq!(client.span_kind, SpanKind::Client);
        assert_eq!(attr(client, "rpc.system"), Some(Value::from("grpc")));
        assert_eq!(
            attr(client, "rpc.service"),
            Some(Value::from("test.Greeter"))
        );
        assert_eq!(attr(client, "rpc.method"), Some(Value::from("Say")));
        assert_eq!(attr(client, "rpc.grpc.status_code"), Some(Value::I64(code)));
        assert_eq!(
            client.status == Status::Unset,
            code == 0,
            "client status for {code}"
        );
        let server = servers
            .iter()
            .find(|s| s.parent_span_id == client.span_context.span_id())
            .expect("server span is a child of the client span");
        assert_eq!(server.span_kind, SpanKind::Server);
        assert_eq!(
            server.span_context.trace_id(),
            client.span_context.trace_id()
        );
        assert_eq!(attr(server, "rpc.grpc.status_code"), Some(Value::I64(code)));
        // NOT_FOUND is the caller's problem, INTERNAL is the server's.
        assert_eq!(
            server.status == Status::Unset,
            code != 13,
            "server status for {code}"
        );
    }
}
