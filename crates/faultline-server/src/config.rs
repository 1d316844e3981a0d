//! `faultline serve` settings: one struct that is at once the command-line flags, the TOML
//! config file and the `FAULTLINE_*` environment variables. Its doc comments are the user docs
//! (they are what `faultline serve --help` prints).
//!
//! Precedence, highest first: command-line flag, environment variable, config file, default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::storage_url::StorageUrl;
use crate::ServerError;

/// Settings of `faultline serve`. Every field is optional here; [`ServeOptions::resolve`] fills
/// in defaults and validates.
#[derive(clap::Args, Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServeOptions {
    /// TOML file with any of these settings (keys as the long flag names, e.g.
    /// `data-dir = "/var/lib/faultline"`).
    #[arg(long, env = "FAULTLINE_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Directory for the write-ahead log and, unless --storage says otherwise, the blocks.
    /// [default: ./faultline-data]
    #[arg(long, env = "FAULTLINE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Address for OTLP over gRPC. [default: 0.0.0.0:4317]
    #[arg(long, env = "FAULTLINE_OTLP_GRPC", value_name = "ADDR")]
    pub otlp_grpc: Option<SocketAddr>,

    /// Address for OTLP over HTTP (`POST /v1/traces`). [default: 0.0.0.0:4318]
    #[arg(long, env = "FAULTLINE_OTLP_HTTP", value_name = "ADDR")]
    pub otlp_http: Option<SocketAddr>,

    /// Address for the query APIs (Jaeger, api_v3), `/ready`, and later the UI and `/metrics`.
    /// [default: 0.0.0.0:16686]
    #[arg(long, env = "FAULTLINE_HTTP", value_name = "ADDR")]
    pub http: Option<SocketAddr>,

    /// How long spans are kept, e.g. `72h` or `14days`. [default: 72h]
    #[arg(long, env = "FAULTLINE_RETENTION", value_name = "DURATION")]
    pub retention: Option<String>,

    /// Where blocks are stored: `file:///absolute/dir`, `file://relative/dir`, or `memory://`
    /// (nothing survives a restart; for tests). `s3://bucket/prefix` is reserved for
    /// S3-compatible object storage. [default: file://<data-dir>/blocks]
    #[arg(long, env = "FAULTLINE_STORAGE", value_name = "URL")]
    pub storage: Option<String>,

    /// When a span is acknowledged: `durable` (after the write-ahead log is fsynced) or
    /// `received` (on receipt; faster, a crash can lose the last moments). [default: durable]
    #[arg(long, env = "FAULTLINE_ACK", value_name = "MODE")]
    pub ack: Option<String>,

    /// Largest accepted OTLP request, in bytes (compressed and uncompressed).
    /// [default: 16777216]
    #[arg(long, env = "FAULTLINE_MAX_REQUEST_BYTES", value_name = "BYTES")]
    pub max_request_bytes: Option<usize>,

    /// Longest attribute value kept, in bytes; longer values are truncated. [default: 16384]
    #[arg(long, env = "FAULTLINE_MAX_ATTRIBUTE_VALUE_LEN", value_name = "BYTES")]
    pub max_attribute_value_len: Option<usize>,

    /// Most attributes kept per span (and per event, link, resource). [default: 128]
    #[arg(long, env = "FAULTLINE_MAX_ATTRIBUTES_PER_SPAN", value_name = "N")]
    pub max_attributes_per_span: Option<usize>,

    /// Most spans kept per trace; the excess is counted and shown as a warning on the trace.
    /// [default: 100000]
    #[arg(long, env = "FAULTLINE_MAX_SPANS_PER_TRACE", value_name = "N")]
    pub max_spans_per_trace: Option<usize>,

    /// Memory the write path may hold (queued for the log plus the in-memory head) before
    /// new data is refused with RESOURCE_EXHAUSTED / HTTP 429. [default: 1073741824]
    #[arg(long, env = "FAULTLINE_MEMORY_BUDGET_BYTES", value_name = "BYTES")]
    pub memory_budget_bytes: Option<usize>,

    /// Cut the in-memory head into a block once it holds this many bytes. [default: 134217728]
    #[arg(long, env = "FAULTLINE_MAX_HEAD_BYTES", value_name = "BYTES")]
    pub max_head_bytes: Option<usize>,

    /// Cut the in-memory head into a block once its oldest data is this old. [default: 5m]
    #[arg(long, env = "FAULTLINE_MAX_HEAD_AGE", value_name = "DURATION")]
    pub max_head_age: Option<String>,

    /// How often compaction and retention run. [default: 30s]
    #[arg(long, env = "FAULTLINE_MAINTENANCE_INTERVAL", value_name = "DURATION")]
    pub maintenance_interval: Option<String>,

    /// Compaction leaves blocks of at least this many spans alone: a head cut for size already
    /// makes a block about this large, and merging it again costs about as much CPU as writing
    /// it did. Lower it for fewer, larger blocks (faster trace-by-ID over long retention) at
    /// that CPU cost. [default: 50000]
    #[arg(long, env = "FAULTLINE_COMPACTION_SMALL_BLOCK_SPANS", value_name = "N")]
    pub compaction_small_block_spans: Option<u64>,

    /// Spans of already written heads kept in memory (about 70 bytes each, outside the memory
    /// budget) so that a call whose two halves land in different heads still counts as a
    /// service dependency; calls whose halves arrive further apart are counted in
    /// `faultline_store_dependency_orphans_expired_total`. [default: 200000]
    #[arg(long, env = "FAULTLINE_DEPENDENCY_CARRY_SPANS", value_name = "N")]
    pub dependency_carry_spans: Option<u64>,

    /// Longest log record body kept, in bytes; longer bodies are truncated and counted.
    /// [default: 65536]
    #[arg(long, env = "FAULTLINE_MAX_LOG_BODY_BYTES", value_name = "BYTES")]
    pub max_log_body_bytes: Option<usize>,

    /// Most log records accepted in one OTLP export request; the rest are refused as a
    /// partial success. [default: 100000]
    #[arg(long, env = "FAULTLINE_MAX_LOG_RECORDS_PER_REQUEST", value_name = "N")]
    pub max_log_records_per_request: Option<usize>,

    /// Attributes whose values split the span metrics on `/metrics`
    /// (`traces_spanmetrics_*`), comma-separated, e.g.
    /// `http.response.status_code,deployment.environment`. Span attribute first, then resource
    /// attribute; each becomes a label with `.` and other characters outside `[A-Za-z0-9_]`
    /// replaced by `_`. In the config file, a list: `red-dimensions = ["http.route"]`.
    /// At most 10. [default: none]
    #[arg(
        long,
        env = "FAULTLINE_RED_DIMENSIONS",
        value_name = "KEYS",
        value_delimiter = ','
    )]
    pub red_dimensions: Option<Vec<String>>,
}

/// Whether a span is acknowledged after fsync or on receipt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckSetting {
    /// After the write-ahead log record is fsynced.
    Durable,
    /// On receipt.
    Received,
}

/// Validated settings with defaults applied.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Data directory (WAL, default block location).
    pub data_dir: PathBuf,
    /// OTLP/gRPC listen address.
    pub otlp_grpc: SocketAddr,
    /// OTLP/HTTP listen address.
    pub otlp_http: SocketAddr,
    /// Query API listen address.
    pub http: SocketAddr,
    /// How long spans are kept.
    pub retention: Duration,
    /// Where blocks go.
    pub storage: StorageUrl,
    /// Acknowledgement mode.
    pub ack: AckSetting,
    /// Request size limit.
    pub max_request_bytes: usize,
    /// Attribute value length limit.
    pub max_attribute_value_len: usize,
    /// Attributes-per-span limit.
    pub max_attributes_per_span: usize,
    /// Spans-per-trace limit.
    pub max_spans_per_trace: usize,
    /// Write-path memory budget.
    pub memory_budget_bytes: usize,
    /// Head size that triggers a block cut.
    pub max_head_bytes: usize,
    /// Head age that triggers a block cut.
    pub max_head_age: Duration,
    /// Compaction and retention period.
    pub maintenance_interval: Duration,
    /// Blocks of at least this many spans are not compacted.
    pub compaction_small_block_spans: u64,
    /// Spans of written heads kept for pairing dependencies across heads.
    pub dependency_carry_spans: u64,
    /// Log body length limit.
    pub max_log_body_bytes: usize,
    /// Log records per request limit.
    pub max_log_records_per_request: usize,
    /// Attribute keys that split the span metrics.
    pub red_dimensions: Vec<String>,
}

impl ServeOptions {
    /// Fills every unset field of `self` from `lower` (so `self` wins).
    pub fn or(self, lower: ServeOptions) -> ServeOptions {
        ServeOptions {
            config: self.config.or(lower.config),
            data_dir: self.data_dir.or(lower.data_dir),
            otlp_grpc: self.otlp_grpc.or(lower.otlp_grpc),
            otlp_http: self.otlp_http.or(lower.otlp_http),
            http: self.http.or(lower.http),
            retention: self.retention.or(lower.retention),
            storage: self.storage.or(lower.storage),
            ack: self.ack.or(lower.ack),
            max_request_bytes: self.max_request_bytes.or(lower.max_request_bytes),
            max_attribute_value_len: self
                .max_attribute_value_len
                .or(lower.max_attribute_value_len),
            max_attributes_per_span: self
                .max_attributes_per_span
                .or(lower.max_attributes_per_span),
            max_spans_per_trace: self.max_spans_per_trace.or(lower.max_spans_per_trace),
            memory_budget_bytes: self.memory_budget_bytes.or(lower.memory_budget_bytes),
            max_head_bytes: self.max_head_bytes.or(lower.max_head_bytes),
            max_head_age: self.max_head_age.or(lower.max_head_age),
            maintenance_interval: self.maintenance_interval.or(lower.maintenance_interval),
            compaction_small_block_spans: self
                .compaction_small_block_spans
                .or(lower.compaction_small_block_spans),
            dependency_carry_spans: self.dependency_carry_spans.or(lower.dependency_carry_spans),
            max_log_body_bytes: self.max_log_body_bytes.or(lower.max_log_body_bytes),
            max_log_records_per_request: self
                .max_log_records_per_request
                .or(lower.max_log_records_per_request),
            red_dimensions: self.red_dimensions.or(lower.red_dimensions),
        }
    }

    /// Reads a TOML config file.
    pub fn from_toml_file(path: &Path) -> Result<ServeOptions, ServerError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ServerError::Config(format!("cannot read config file {}: {e}", path.display()))
        })?;
        toml::from_str(&text)
            .map_err(|e| ServerError::Config(format!("config file {}: {e}", path.display())))
    }

    /// Layers the config file named by `--config` (if any) under these options, applies
    /// defaults and validates.
    pub fn resolve(self) -> Result<ServeConfig, ServerError> {
        let merged = match &self.config {
            Some(path) => {
                let file = Self::from_toml_file(path)?;
                self.or(file)
            }
            None => self,
        };
        let data_dir = merged
            .data_dir
            .unwrap_or_else(|| PathBuf::from("./faultline-data"));
        let storage = match merged.storage.as_deref() {
            Some(url) => StorageUrl::parse(url)?,
            None => StorageUrl::File(data_dir.join("blocks")),
        };
        let ack = match merged.ack.as_deref().unwrap_or("durable") {
            "durable" => AckSetting::Durable,
            "received" => AckSetting::Received,
            other => {
                return Err(ServerError::Config(format!(
                    "--ack must be `durable` or `received`, not {other:?}"
                )))
            }
        };
        let store_defaults = faultline_storage::StoreTuning::default();
        let cfg = ServeConfig {
            data_dir,
            otlp_grpc: merged
                .otlp_grpc
                .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 4317))),
            otlp_http: merged
                .otlp_http
                .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 4318))),
            http: merged
                .http
                .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 16686))),
            retention: duration("retention", merged.retention.as_deref().unwrap_or("72h"))?,
            storage,
            ack,
            max_request_bytes: positive(
                "max-request-bytes",
                merged.max_request_bytes.unwrap_or(16 << 20),
            )?,
            max_attribute_value_len: positive(
                "max-attribute-value-len",
                merged.max_attribute_value_len.unwrap_or(16 * 1024),
            )?,
            max_attributes_per_span: merged.max_attributes_per_span.unwrap_or(128),
            max_spans_per_trace: positive(
                "max-spans-per-trace",
                merged.max_spans_per_trace.unwrap_or(100_000),
            )?,
            memory_budget_bytes: positive(
                "memory-budget-bytes",
                merged.memory_budget_bytes.unwrap_or(1 << 30),
            )?,
            max_head_bytes: positive("max-head-bytes", merged.max_head_bytes.unwrap_or(128 << 20))?,
            max_head_age: duration(
                "max-head-age",
                merged.max_head_age.as_deref().unwrap_or("5m"),
            )?,
            maintenance_interval: duration(
                "maintenance-interval",
                merged.maintenance_interval.as_deref().unwrap_or("30s"),
            )?,
            compaction_small_block_spans: merged
                .compaction_small_block_spans
                .unwrap_or(store_defaults.compaction_small_block_spans),
            dependency_carry_spans: merged
                .dependency_carry_spans
                .unwrap_or(store_defaults.dependency_carry_spans),
            max_log_body_bytes: positive(
                "max-log-body-bytes",
                merged.max_log_body_bytes.unwrap_or(64 * 1024),
            )?,
            max_log_records_per_request: positive(
                "max-log-records-per-request",
                merged.max_log_records_per_request.unwrap_or(100_000),
            )?,
            red_dimensions: merged
                .red_dimensions
                .unwrap_or_default()
                .into_iter()
                .map(|d| d.trim().to_owned())
                .filter(|d| !d.is_empty())
                .collect(),
        };
        faultline_analysis::AnalysisConfig {
            red_dimensions: cfg.red_dimensions.clone(),
            ..Default::default()
        }
        .validate()
        .map_err(|e| ServerError::Config(format!("--red-dimensions: {e}")))?;
        Ok(cfg)
    }
}

fn duration(name: &str, text: &str) -> Result<Duration, ServerError> {
    let d = humantime::parse_duration(text).map_err(|e| {
        ServerError::Config(format!(
            "--{name}: {text:?} is not a duration ({e}); write e.g. `90s`, `5m` or `72h`"
        ))
    })?;
    if d.is_zero() {
        return Err(ServerError::Config(format!(
            "--{name} must be greater than zero"
        )));
    }
    Ok(d)
}

fn positive(name: &str, v: usize) -> Result<usize, ServerError> {
    if v == 0 {
        return Err(ServerError::Config(format!(
            "--{name} must be greater than zero"
        )));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config file holding `contents`, in a directory that lives as long as the guard.
    fn config_file(contents: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f.toml");
        std::fs::write(&file, contents).unwrap();
        (dir, file)
    }

    #[test]
    fn defaults() {
        let c = ServeOptions::default().resolve().unwrap();
        assert_eq!(c.otlp_grpc.port(), 4317);
        assert_eq!(c.otlp_http.port(), 4318);
        assert_eq!(c.http.port(), 16686);
        assert_eq!(c.retention, Duration::from_secs(72 * 3600));
        assert_eq!(
            c.storage,
            StorageUrl::File(PathBuf::from("./faultline-data/blocks"))
        );
        assert_eq!(c.ack, AckSetting::Durable);
        assert_eq!(c.max_request_bytes, 16 << 20);
    }

    #[test]
    fn red_dimensions_come_from_a_comma_list_flag_or_a_toml_list() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            serve: ServeOptions,
        }
        let cli = <Cli as clap::Parser>::try_parse_from([
            "faultline",
            "--red-dimensions",
            "http.response.status_code, deployment.environment",
        ])
        .unwrap();
        assert_eq!(
            cli.serve.resolve().unwrap().red_dimensions,
            ["http.response.status_code", "deployment.environment"]
        );

        let (_dir, file) = config_file("red-dimensions = [\"http.route\"]\n");
        let from_file = ServeOptions {
            config: Some(file),
            ..Default::default()
        };
        assert_eq!(from_file.resolve().unwrap().red_dimensions, ["http.route"]);
        assert!(ServeOptions::default()
            .resolve()
            .unwrap()
            .red_dimensions
            .is_empty());

        let clash = ServeOptions {
            red_dimensions: Some(vec!["status.code".into()]),
            ..Default::default()
        };
        let err = clash.resolve().unwrap_err().to_string();
        assert!(
            err.contains("--red-dimensions") && err.contains("status_code"),
            "{err}"
        );
    }

    #[test]
    fn store_tuning_defaults_to_the_stores_and_can_be_set_by_file_or_flag() {
        let store = faultline_storage::StoreTuning::default();
        let c = ServeOptions::default().resolve().unwrap();
        assert_eq!(
            (c.compaction_small_block_spans, c.dependency_carry_spans),
            (
                store.compaction_small_block_spans,
                store.dependency_carry_spans
            )
        );
        let (_dir, file) =
            config_file("compaction-small-block-spans = 1000000\ndependency-carry-spans = 5000\n");
        let flags = ServeOptions {
            config: Some(file),
            dependency_carry_spans: Some(7),
            ..Default::default()
        };
        let c = flags.resolve().unwrap();
        assert_eq!(
            (c.compaction_small_block_spans, c.dependency_carry_spans),
            (1_000_000, 7)
        );
    }

    #[test]
    fn flags_override_file_which_overrides_defaults() {
        let (_dir, file) =
            config_file("retention = \"24h\"\nhttp = \"127.0.0.1:9999\"\nack = \"received\"\n");
        let flags = ServeOptions {
            config: Some(file),
            http: Some("127.0.0.1:1234".parse().unwrap()),
            ..Default::default()
        };
        let c = flags.resolve().unwrap();
        assert_eq!(c.http.port(), 1234);
        assert_eq!(c.retention, Duration::from_secs(24 * 3600));
        assert_eq!(c.ack, AckSetting::Received);
    }

    #[test]
    fn log_limits_have_defaults_and_refuse_zero() {
        let c = ServeOptions::default().resolve().unwrap();
        assert_eq!(c.max_log_body_bytes, 64 * 1024);
        assert_eq!(c.max_log_records_per_request, 100_000);
        let err = ServeOptions {
            max_log_body_bytes: Some(0),
            ..Default::default()
        }
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(err.contains("--max-log-body-bytes"), "{err}");
        let (_dir, file) = config_file("max-log-records-per-request = 7\n");
        let c = ServeOptions {
            config: Some(file),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(c.max_log_records_per_request, 7);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let (_dir, file) = config_file("retension = \"24h\"\n");
        let err = ServeOptions {
            config: Some(file),
            ..Default::default()
        }
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(err.contains("retension"), "{err}");

        let err = ServeOptions {
            retention: Some("soon".into()),
            ..Default::default()
        }
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(err.contains("--retention") && err.contains("soon"), "{err}");

        let err = ServeOptions {
            ack: Some("maybe".into()),
            ..Default::default()
        }
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(err.contains("--ack"), "{err}");
    }
}
