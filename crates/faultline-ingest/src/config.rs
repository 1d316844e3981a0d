//! Receiver settings, as read from the `[ingest]` table of the configuration file.

use faultline_model::otlp::SpanLimits;
use faultline_model::otlp_logs::LogLimits;
use faultline_storage::AckMode;
use serde::{Deserialize, Serialize};

use crate::IngestError;

/// Settings shared by the OTLP/gRPC and OTLP/HTTP receivers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Largest request accepted, in bytes. Applies both to the body as sent and to its size
    /// after gzip decompression, so a small compressed "bomb" cannot expand without bound.
    /// Larger requests are refused with HTTP 413 or gRPC `RESOURCE_EXHAUSTED` (not retryable).
    /// Default: 16 MiB.
    pub max_request_bytes: usize,
    /// Requests decoded at the same time. Further requests are refused at once with HTTP 429 or
    /// gRPC `RESOURCE_EXHAUSTED` with a retry hint, which bounds the receivers' memory to about
    /// `max_concurrent_requests × max_request_bytes × 4`. Default: 64.
    pub max_concurrent_requests: usize,
    /// Longest time, in seconds, a client may take to send one request body. Slower requests
    /// are refused (HTTP 408, gRPC `DEADLINE_EXCEEDED`) so that a few stalled connections
    /// cannot hold every concurrency slot. Default: 30 (OpenTelemetry SDKs give up after 10).
    pub body_timeout_secs: u64,
    /// Limits applied to each incoming span (attribute value length, attributes, events and
    /// links per span, nesting depth of values). Values over a limit are cut, not rejected.
    pub limits: SpanLimits,
    /// Limits applied to each incoming log record (body length, attribute value length,
    /// attributes per record, records per request). Long bodies and values are truncated and
    /// counted; records over the per-request limit are rejected (partial success).
    pub log_limits: LogLimits,
    /// When a request is answered: `durable` (default) once its spans are in the fsynced
    /// write-ahead log, or `received` once they are queued for it, which is faster but can lose
    /// the last moments of data in a crash.
    #[serde(with = "AckModeDef")]
    pub ack: AckMode,
}

/// The largest `max_request_bytes` accepted: the WAL takes records of at most 256 MiB, and a
/// bigger limit would only let one request take the memory of many.
const MAX_REQUEST_BYTES_CEILING: usize = 256 * 1024 * 1024;

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_request_bytes: 16 * 1024 * 1024,
            max_concurrent_requests: 64,
            body_timeout_secs: 30,
            limits: SpanLimits::default(),
            log_limits: LogLimits::default(),
            ack: AckMode::Durable,
        }
    }
}

impl IngestConfig {
    /// Checks values that deserialize fine but cannot work.
    pub fn validate(&self) -> Result<(), IngestError> {
        let invalid = |why: String| Err(IngestError::InvalidConfig(why));
        if self.max_request_bytes == 0 || self.max_request_bytes > MAX_REQUEST_BYTES_CEILING {
            return invalid(format!(
                "max_request_bytes must be between 1 and {MAX_REQUEST_BYTES_CEILING}, got {}",
                self.max_request_bytes
            ));
        }
        if self.max_concurrent_requests == 0 {
            return invalid("max_concurrent_requests must be at least 1".to_owned());
        }
        if self.body_timeout_secs == 0 {
            return invalid("body_timeout_secs must be at least 1".to_owned());
        }
        Ok(())
    }
}

/// Serde mirror of [`AckMode`], which lives in the storage crate and stays free of serde.
#[derive(Serialize, Deserialize)]
#[serde(remote = "AckMode", rename_all = "lowercase")]
enum AckModeDef {
    Durable,
    Received,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_to_missing_keys() {
        let c: IngestConfig = toml::from_str("ack = \"received\"\n[limits]\nmax_value_depth = 3\n")
            .expect("valid config");
        assert_eq!(c.ack, AckMode::Received);
        assert_eq!(c.max_request_bytes, 16 * 1024 * 1024);
        assert_eq!(c.limits.max_value_depth, 3);
        assert_eq!(
            c.limits.max_attribute_value_len,
            SpanLimits::default().max_attribute_value_len
        );
        c.validate().expect("valid");
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = toml::from_str::<IngestConfig>("max_request_byte = 5\n")
            .expect_err("typo must be refused");
        assert!(err.to_string().contains("max_request_byte"), "{err}");
        let err = toml::from_str::<IngestConfig>("[limits]\nmax_depth = 5\n")
            .expect_err("typo must be refused");
        assert!(err.to_string().contains("max_depth"), "{err}");
        let err =
            toml::from_str::<IngestConfig>("ack = \"eventually\"\n").expect_err("bad ack mode");
        assert!(err.to_string().contains("eventually"), "{err}");
    }

    #[test]
    fn validate_rejects_unusable_values() {
        let zero = IngestConfig {
            max_request_bytes: 0,
            ..IngestConfig::default()
        };
        assert!(zero.validate().is_err());
        let huge = IngestConfig {
            max_request_bytes: usize::MAX,
            ..IngestConfig::default()
        };
        assert!(huge.validate().is_err());
        let no_requests = IngestConfig {
            max_concurrent_requests: 0,
            ..IngestConfig::default()
        };
        assert!(no_requests.validate().is_err());
        let no_time = IngestConfig {
            body_timeout_secs: 0,
            ..IngestConfig::default()
        };
        assert!(no_time.validate().is_err());
    }
}
