//! OTLP receivers: gRPC (`TraceService/Export`, `LogsService/Export`) and HTTP (`POST /v1/traces`, `POST /v1/logs`).

mod body;
pub mod grpc;
pub mod http;
#[cfg(test)]
mod logs_tests;
