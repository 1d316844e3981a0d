//! Network receivers, one folder per protocol.

pub mod otlp;
