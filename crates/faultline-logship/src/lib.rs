//! `faultline logs ingest`: reads JSON-lines logs from a file or stdin (optionally following the
//! file like `tail -F`), recognises the common field names for trace and span IDs, time,
//! severity, message and service, and ships the records to Faultline's OTLP/HTTP `/v1/logs`.
//!
//! [`parse`] turns one line into an OTLP log record (lines that are not JSON objects are kept
//! as plain messages and counted, never dropped); [`ship`] batches, posts and retries. This
//! crate must not know how Faultline stores logs: it speaks OTLP/HTTP only, like any client.
#![deny(missing_docs)]

pub mod parse;
pub mod ship;

pub use parse::{parse_line, ParsedLine};
pub use ship::{run, Progress, ShipError, ShipOptions};
