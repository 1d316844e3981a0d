//! OTLP trace receivers: gRPC (`TraceService/Export`) and HTTP (`POST /v1/traces`).

mod body;
pub mod grpc;
pub mod http;
