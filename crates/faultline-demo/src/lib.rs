//! The demo shop behind `faultline demo`: six real microservices (axum, a gRPC service with
//! tonic, SQLite through a bounded `sqlx` pool, an embedded message queue and an uninstrumented
//! third-party listener), faults that can be switched on and off at runtime, and an open-loop
//! load generator. It shows a new user the whole story in a minute and is the test bed for
//! root-cause analysis: each injection is recorded with its start, end and target as ground
//! truth.
//!
//! Every service is traced only through `faultline-instrument`: its own tracer provider and
//! `service.name`, the HTTP server and client layers, the gRPC layers, the messaging and
//! database helpers, the rate-limit and circuit-breaker layers, and the JSON log format. This crate
//! must not reach into Faultline's storage or query internals: it talks to the embedded server
//! over OTLP and the public query API like any user would, and it must not record which fault
//! is active in the spans it emits (that would hand the answer to the analysis it exists to
//! test).

#![deny(missing_docs)]

pub mod cli;
pub mod demo;
mod error;
pub mod fault;
pub mod grpc;
pub mod load;
pub mod queue;
pub mod scenario;
mod services;
pub mod shop;

pub use error::DemoError;
pub use services::inventory::{sku, POOL_ACQUIRE_TIMEOUT, POOL_SIZE, PRODUCT_COUNT};
pub use services::payment::PROVIDER_TIMEOUT;
pub use services::user::USER_COUNT;
pub use services::REQUEST_ID as REQUEST_ID_BAGGAGE;
