//! The span data model shared by every Faultline crate.
//!
//! A [`Span`] here is the backend's own representation of one OpenTelemetry span: IDs are
//! fixed-size newtypes, times are [`UnixNanos`], and the resource and instrumentation scope are
//! shared behind `Arc`s so that a batch of ten thousand spans from one process holds its
//! resource attributes once. [`otlp`] converts from and to the OTLP protobuf types.
//!
//! A [`LogRecord`] is one OpenTelemetry log line; [`otlp_logs`] converts it from and to OTLP.
//!
//! This crate holds data and conversions only: no I/O, no async, no storage or wire concerns.
#![deny(missing_docs)]

mod ids;
mod key;
pub mod log;
pub mod otlp;
pub mod otlp_logs;
pub mod query;
mod span;

/// The string of a string attribute value: up to 24 bytes are kept inline, so the short values
/// most attributes have (methods, routes, hosts, versions) cost no allocation of their own.
pub use compact_str::CompactString;
pub use ids::{IdParseError, SpanId, TraceId, UnixNanos};
pub(crate) use key::KeyCache;
pub use key::{Key, MAX_INTERNED, MAX_INTERNED_LEN};
pub use log::LogRecord;
pub use span::{
    AttributeValue, Event, InstrumentationScope, KeyValue, Link, Resource, Span, SpanKind, Status,
    StatusCode, UNKNOWN_SERVICE,
};
