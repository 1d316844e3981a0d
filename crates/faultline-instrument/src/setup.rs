//! One-call setup: resource, sampler, propagators, OTLP exporter and a flushing guard.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Context, Key, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::logs::{BatchConfigBuilder, BatchLogProcessor, SdkLoggerProvider};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SpanExporter};
use opentelemetry_sdk::Resource;

use crate::client::{ClientLayer, TracingMiddleware};
use crate::db::Database;
use crate::grpc::GrpcLayer;
use crate::logs::{BaggageAttributes, LogRoute, OtlpLogLayer, RuntimeLogExporter};
use crate::messaging::Messaging;
use crate::processor::{BatchSettings, BoundedBatchProcessor, ExportStats};
use crate::propagation::Propagation;
use crate::sampling::{ConfiguredSampler, HandoffIdGenerator, SamplerConfig};
use crate::server::ServerLayer;
use crate::Error;

/// The OTLP transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC (`grpc`), port 4317 by default.
    Grpc,
    /// OTLP/HTTP with protobuf bodies (`http/protobuf`), port 4318 by default.
    HttpProtobuf,
}

impl Protocol {
    fn parse(name: &'static str, value: &str) -> Result<Protocol, Error> {
        match value.trim() {
            "grpc" => Ok(Protocol::Grpc),
            "http/protobuf" => Ok(Protocol::HttpProtobuf),
            _ => Err(Error::InvalidConfig {
                name,
                value: value.to_owned(),
                reason: "supported protocols are grpc and http/protobuf",
            }),
        }
    }

    /// The protocol for one signal: the code's choice, else `signal_variable`, else
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`, else `http/protobuf` as the specification says.
    fn resolve(chosen: Option<Protocol>, signal_variable: &'static str) -> Result<Self, Error> {
        if let Some(protocol) = chosen {
            return Ok(protocol);
        }
        for name in [signal_variable, "OTEL_EXPORTER_OTLP_PROTOCOL"] {
            if let Some(value) = env_non_empty(name) {
                return Protocol::parse(name, &value);
            }
        }
        Ok(Protocol::HttpProtobuf)
    }
}

/// Sets up tracing for `service_name` from the `OTEL_*` environment and installs it globally.
///
/// Hold the returned [`Telemetry`] for the life of the process: dropping it flushes and
/// shuts down the exporter.
///
/// ```no_run
/// let telemetry = faultline_instrument::init("order-service")?;
/// // ... serve requests with telemetry.server_layer() ...
/// telemetry.shutdown()?;
/// # Ok::<(), faultline_instrument::Error>(())
/// ```
pub fn init(service_name: &str) -> Result<Telemetry, Error> {
    Telemetry::builder(service_name).install()
}

/// Configures [`Telemetry`]; every option left unset comes from the `OTEL_*` environment.
#[derive(Debug)]
pub struct TelemetryBuilder {
    service_name: String,
    service_version: Option<String>,
    attributes: Vec<KeyValue>,
    protocol: Option<Protocol>,
    endpoint: Option<String>,
    sampler: Option<SamplerConfig>,
    propagation: Option<Propagation>,
    batch: Option<BatchSettings>,
    install_global: bool,
    otlp_logs: Option<bool>,
    log_baggage: Vec<Key>,
}

impl TelemetryBuilder {
    /// `service.version`, usually `env!("CARGO_PKG_VERSION")`.
    pub fn service_version(mut self, version: impl Into<String>) -> Self {
        self.service_version = Some(version.into());
        self
    }

    /// An extra resource attribute.
    pub fn resource_attribute(mut self, attribute: KeyValue) -> Self {
        self.attributes.push(attribute);
        self
    }

    /// The OTLP transport, instead of `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = Some(protocol);
        self
    }

    /// The collector base URL, instead of `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// The sampler, instead of `OTEL_TRACES_SAMPLER`.
    pub fn sampler(mut self, sampler: SamplerConfig) -> Self {
        self.sampler = Some(sampler);
        self
    }

    /// The propagation formats, instead of `OTEL_PROPAGATORS`.
    pub fn propagation(mut self, propagation: Propagation) -> Self {
        self.propagation = Some(propagation);
        self
    }

    /// Queue and batch sizes, instead of `OTEL_BSP_*`.
    pub fn batch(mut self, settings: BatchSettings) -> Self {
        self.batch = Some(settings);
        self
    }

    /// Whether to install the provider and propagator as the process-wide globals (default yes).
    pub fn install_global(mut self, install: bool) -> Self {
        self.install_global = install;
        self
    }

    /// Whether to export logs over OTLP (`/v1/logs`) too, instead of `OTEL_LOGS_EXPORTER`
    /// (`otlp` or `none`; unset means none). Logs go to the same collector with the same
    /// protocol and resource as spans; add [`Telemetry::log_layer`] to your subscriber.
    ///
    /// ```no_run
    /// use tracing_subscriber::layer::SubscriberExt;
    /// use tracing_subscriber::util::SubscriberInitExt;
    /// let telemetry = faultline_instrument::Telemetry::builder("order-service")
    ///     .otlp_logs(true)
    ///     .install()?;
    /// tracing_subscriber::registry()
    ///     .with(tracing_subscriber::fmt::layer())
    ///     .with(telemetry.log_layer())
    ///     .init();
    /// # Ok::<(), faultline_instrument::Error>(())
    /// ```
    pub fn otlp_logs(mut self, enabled: bool) -> Self {
        self.otlp_logs = Some(enabled);
        self
    }

    /// W3C baggage entries copied into every exported log record as attributes, e.g.
    /// `request_id` set by the edge service.
    pub fn log_baggage<K: Into<Key>>(mut self, keys: impl IntoIterator<Item = K>) -> Self {
        self.log_baggage = keys.into_iter().map(Into::into).collect();
        self
    }

    /// Builds the OTLP exporter and everything around it.
    pub fn install(self) -> Result<Telemetry, Error> {
        let protocol = Protocol::resolve(self.protocol, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")?;
        let timeout = Duration::from_secs(10);
        let endpoint = self.endpoint.clone();
        match protocol {
            Protocol::Grpc => self.install_with(move || {
                let mut builder = opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_timeout(timeout);
                if let Some(endpoint) = endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                Ok(builder.build()?)
            }),
            Protocol::HttpProtobuf => self.install_with(move || {
                let mut builder = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_http_client(reqwest::Client::new())
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_timeout(timeout);
                if let Some(endpoint) = endpoint {
                    // A programmatic endpoint is used verbatim by the exporter, so add the
                    // signal path the environment variable would have implied.
                    builder = builder
                        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')));
                }
                Ok(builder.build()?)
            }),
        }
    }

    /// Like [`install`](Self::install) but sends spans to `exporter`, e.g. an in-memory one in tests.
    pub fn install_with_exporter<E: SpanExporter + 'static>(
        self,
        exporter: E,
    ) -> Result<Telemetry, Error> {
        self.install_with(move || Ok(exporter))
    }

    fn install_with<E, F>(self, make_exporter: F) -> Result<Telemetry, Error>
    where
        E: SpanExporter + 'static,
        F: FnOnce() -> Result<E, Error> + Send + 'static,
    {
        // Operators rename services without rebuilding them, so the environment wins.
        let service_name = env_non_empty("OTEL_SERVICE_NAME").unwrap_or(self.service_name);
        let sampler_config = match self.sampler {
            Some(s) => s,
            None => SamplerConfig::from_env()?,
        };
        let propagation = match self.propagation {
            Some(p) => p,
            None => Propagation::from_env()?,
        };
        let log_batch = self.batch.clone();
        let batch = match self.batch {
            Some(b) => b,
            None => BatchSettings::from_env()?,
        };
        let mut resource = Resource::builder()
            .with_attributes(host_attributes())
            .with_attributes(self.attributes);
        if let Some(version) = self.service_version {
            resource = resource.with_attribute(KeyValue::new("service.version", version));
        }
        let resource = resource.with_service_name(service_name.clone()).build();
        let logs_enabled = match self.otlp_logs {
            Some(enabled) => enabled,
            None => logs_exporter_from_env()?,
        };
        let logger_provider = if logs_enabled {
            Some(logger_provider(
                Protocol::resolve(self.protocol, "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL")?,
                self.endpoint.clone(),
                log_batch.as_ref(),
                self.log_baggage,
                resource.clone(),
            )?)
        } else {
            None
        };
        let processor = BoundedBatchProcessor::spawn(make_exporter, batch)?;
        let stats = processor.stats();
        let sampler = sampler_config.build_configured(&service_name)?;
        // The server layer decides requests with this same sampler before the SDK is asked,
        // and hands its decision over through the id generator and the sampler.
        let provider = SdkTracerProvider::builder()
            .with_resource(resource)
            .with_sampler(sampler.clone())
            .with_id_generator(HandoffIdGenerator::default())
            .with_span_processor(processor)
            .build();
        let tracer = provider.tracer("faultline-instrument");
        if self.install_global {
            opentelemetry::global::set_tracer_provider(provider.clone());
            opentelemetry::global::set_text_map_propagator(propagation.clone());
        }
        let log_route = logger_provider.as_ref().map(LogRoute::new);
        Ok(Telemetry {
            sampler_reads_name: sampler_config.reads_span_name(),
            sampler,
            provider: Some(provider),
            logger_provider,
            log_route,
            tracer,
            propagation,
            stats,
        })
    }
}

/// `OTEL_LOGS_EXPORTER`: `otlp` turns log export on, `none` or nothing leaves it off.
fn logs_exporter_from_env() -> Result<bool, Error> {
    parse_logs_exporter(env_non_empty("OTEL_LOGS_EXPORTER").as_deref())
}

fn parse_logs_exporter(value: Option<&str>) -> Result<bool, Error> {
    match value.map(str::trim) {
        None | Some("none") => Ok(false),
        Some("otlp") => Ok(true),
        Some(other) => Err(Error::InvalidConfig {
            name: "OTEL_LOGS_EXPORTER",
            value: other.to_owned(),
            reason: "supported exporters are otlp and none",
        }),
    }
}

/// A logger provider exporting over OTLP through the SDK's batch processor, whose queue is
/// bounded and which drops instead of blocking the thread that logs.
fn logger_provider(
    protocol: Protocol,
    endpoint: Option<String>,
    batch: Option<&BatchSettings>,
    baggage: Vec<Key>,
    resource: Resource,
) -> Result<SdkLoggerProvider, Error> {
    let timeout = Duration::from_secs(10);
    let exporter = RuntimeLogExporter::build(move || match protocol {
        Protocol::Grpc => {
            let mut builder = opentelemetry_otlp::LogExporter::builder()
                .with_tonic()
                .with_timeout(timeout);
            if let Some(endpoint) = endpoint {
                builder = builder.with_endpoint(endpoint);
            }
            Ok(builder.build()?)
        }
        Protocol::HttpProtobuf => {
            let mut builder = opentelemetry_otlp::LogExporter::builder()
                .with_http()
                .with_http_client(reqwest::Client::new())
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_timeout(timeout);
            if let Some(endpoint) = endpoint {
                builder =
                    builder.with_endpoint(format!("{}/v1/logs", endpoint.trim_end_matches('/')));
            }
            Ok(builder.build()?)
        }
    })?;
    // OTEL_BLRP_* apply unless the code chose batch settings (for spans and logs alike).
    let mut config = BatchConfigBuilder::default();
    if let Some(batch) = batch {
        config = config
            .with_max_queue_size(batch.max_queue_size.max(1))
            .with_max_export_batch_size(
                batch
                    .max_export_batch_size
                    .clamp(1, batch.max_queue_size.max(1)),
            )
            .with_scheduled_delay(batch.scheduled_delay);
    }
    let processor = BatchLogProcessor::builder(exporter)
        .with_batch_config(config.build())
        .build();
    let mut builder = SdkLoggerProvider::builder().with_resource(resource);
    if !baggage.is_empty() {
        // Before the batch processor, which copies the record.
        builder = builder.with_log_processor(BaggageAttributes::new(baggage));
    }
    Ok(builder.with_log_processor(processor).build())
}

fn env_non_empty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn host_attributes() -> Vec<KeyValue> {
    let mut attributes = vec![KeyValue::new("process.pid", i64::from(std::process::id()))];
    if let Some(host) = host_name() {
        attributes.push(KeyValue::new("host.name", host));
    }
    attributes
}

/// The kernel's idea of the host name, without a libc dependency.
fn host_name() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| env_non_empty("HOSTNAME"))
        .or_else(|| env_non_empty("COMPUTERNAME"))
}

/// Owns the tracer provider; flushes and shuts it down when dropped.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    logger_provider: Option<SdkLoggerProvider>,
    log_route: Option<LogRoute>,
    sampler_reads_name: bool,
    sampler: ConfiguredSampler,
    tracer: SdkTracer,
    propagation: Propagation,
    stats: Arc<ExportStats>,
}

impl Telemetry {
    /// Starts configuring telemetry for `service_name`.
    ///
    /// ```
    /// use faultline_instrument::Telemetry;
    /// use opentelemetry_sdk::trace::InMemorySpanExporter;
    /// let telemetry = Telemetry::builder("order-service")
    ///     .service_version("1.2.3")
    ///     .install_global(false)
    ///     .install_with_exporter(InMemorySpanExporter::default())?;
    /// # Ok::<(), faultline_instrument::Error>(())
    /// ```
    pub fn builder(service_name: &str) -> TelemetryBuilder {
        TelemetryBuilder {
            service_name: service_name.to_owned(),
            service_version: None,
            attributes: Vec::new(),
            protocol: None,
            endpoint: None,
            sampler: None,
            propagation: None,
            batch: None,
            install_global: true,
            otlp_logs: None,
            log_baggage: Vec::new(),
        }
    }

    /// The tracer every layer of this crate records with.
    pub fn tracer(&self) -> &SdkTracer {
        &self.tracer
    }

    /// The configured propagation formats.
    pub fn propagation(&self) -> &Propagation {
        &self.propagation
    }

    /// Export counters, including spans dropped because the queue was full.
    pub fn export_stats(&self) -> Arc<ExportStats> {
        Arc::clone(&self.stats)
    }

    /// The underlying provider, for components that take one.
    pub fn provider(&self) -> Option<&SdkTracerProvider> {
        self.provider.as_ref()
    }

    /// The logger provider, when log export is on.
    pub fn logger_provider(&self) -> Option<&SdkLoggerProvider> {
        self.logger_provider.as_ref()
    }

    /// A `tracing-subscriber` layer exporting events over OTLP with this service's resource;
    /// `None` (a layer that does nothing) when log export is off.
    ///
    /// Events raised while a request of another service with log export is handled (several
    /// services in one process) go to that service instead; see [`OtlpLogLayer`].
    pub fn log_layer(&self) -> Option<OtlpLogLayer> {
        self.log_route.clone().map(OtlpLogLayer::with_fallback)
    }

    /// `cx` marked so that events raised while it is current are exported as this service's
    /// logs. The layers of this crate do this for every request; use it for work started
    /// elsewhere (a background job) when several services share a process.
    pub fn log_context(&self, cx: Context) -> Context {
        crate::logs::with_route(cx, self.log_route.as_ref())
    }

    /// A tower layer tracing incoming HTTP requests; see [`ServerLayer`].
    pub fn server_layer(&self) -> ServerLayer {
        ServerLayer::new(self.tracer.clone(), self.propagation.clone())
            .sampler_reads_name(self.sampler_reads_name)
            .log_route(self.log_route.clone())
            .decide_with(self.sampler.clone())
    }

    /// A `reqwest-middleware` middleware tracing outgoing requests; see [`TracingMiddleware`].
    pub fn reqwest_middleware(&self) -> TracingMiddleware {
        TracingMiddleware::new(self.tracer.clone(), self.propagation.clone())
    }

    /// A tower layer tracing outgoing requests of a hyper-style client; see [`ClientLayer`].
    pub fn client_layer(&self) -> ClientLayer {
        ClientLayer::new(self.tracer.clone(), self.propagation.clone())
    }

    /// A tower layer for tonic servers; see [`GrpcLayer`].
    pub fn grpc_server_layer(&self) -> GrpcLayer {
        GrpcLayer::server(self.tracer.clone(), self.propagation.clone())
            .log_route(self.log_route.clone())
    }

    /// A tower layer for tonic clients (wrap the `Channel`); see [`GrpcLayer`].
    pub fn grpc_client_layer(&self) -> GrpcLayer {
        GrpcLayer::client(self.tracer.clone(), self.propagation.clone())
    }

    /// Messaging helpers for `system` (`kafka`, `nats`, ...); see [`Messaging`].
    pub fn messaging(&self, system: &str) -> Messaging {
        Messaging::new(self.tracer.clone(), self.propagation.clone(), system)
            .log_route(self.log_route.clone())
    }

    /// Query spans for database `system` (`postgresql`, `mysql`, ...); see [`Database`].
    pub fn database(&self, system: &str) -> Database {
        Database::new(self.tracer.clone(), system)
    }

    /// Exports every span finished and every log record emitted so far.
    pub fn force_flush(&self) -> Result<(), Error> {
        let logs = match &self.logger_provider {
            Some(p) => p.force_flush(),
            None => Ok(()),
        };
        if let Some(p) = &self.provider {
            p.force_flush()?;
        }
        Ok(logs?)
    }

    /// Flushes and shuts down; dropping does the same but cannot report errors.
    pub fn shutdown(mut self) -> Result<(), Error> {
        // Both are shut down even when the first fails.
        let logs = match self.logger_provider.take() {
            Some(p) => p.shutdown(),
            None => Ok(()),
        };
        if let Some(p) = self.provider.take() {
            p.shutdown()?;
        }
        Ok(logs?)
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.logger_provider.take() {
            if let Err(err) = provider.shutdown() {
                tracing::warn!(error = %err, "logger provider shutdown failed");
            }
        }
        if let Some(provider) = self.provider.take() {
            if let Err(err) = provider.shutdown() {
                tracing::warn!(error = %err, "tracer provider shutdown failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::Tracer;
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
    use std::sync::Mutex;

    /// Keeps the resource the provider hands to its exporter.
    #[derive(Debug, Clone, Default)]
    struct ResourceRecorder {
        spans: InMemorySpanExporter,
        resource: Arc<Mutex<Option<Resource>>>,
    }

    impl SpanExporter for ResourceRecorder {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.spans.export(batch).await
        }

        fn set_resource(&mut self, resource: &Resource) {
            if let Ok(mut slot) = self.resource.lock() {
                *slot = Some(resource.clone());
            }
        }
    }

    #[test]
    fn logs_exporter_is_opt_in_and_validated() {
        assert!(!parse_logs_exporter(None).expect("unset"));
        assert!(!parse_logs_exporter(Some("none")).expect("none"));
        assert!(parse_logs_exporter(Some(" otlp ")).expect("otlp"));
        assert!(matches!(
            parse_logs_exporter(Some("console")),
            Err(Error::InvalidConfig {
                name: "OTEL_LOGS_EXPORTER",
                ..
            })
        ));
    }

    #[test]
    fn resource_carries_service_host_and_sdk_attributes() {
        let exporter = ResourceRecorder::default();
        let telemetry = Telemetry::builder("order-service")
            .service_version("1.2.3")
            .sampler(SamplerConfig::AlwaysOn)
            .propagation(Propagation::default())
            .batch(BatchSettings::default())
            .install_global(false)
            .install_with_exporter(exporter.clone())
            .expect("install");
        telemetry.tracer().in_span("work", |_| {});
        telemetry.shutdown().expect("shutdown flushes");
        let spans = exporter.spans.get_finished_spans().expect("spans");
        assert_eq!(spans.len(), 1);
        let resource = exporter
            .resource
            .lock()
            .expect("lock")
            .clone()
            .expect("resource was set");
        let get = |k: &'static str| resource.get(&opentelemetry::Key::from_static_str(k));
        if std::env::var("OTEL_SERVICE_NAME").is_err() {
            assert_eq!(
                get("service.name").map(|v| v.to_string()),
                Some("order-service".to_owned())
            );
        }
        assert_eq!(
            get("service.version").map(|v| v.to_string()),
            Some("1.2.3".to_owned())
        );
        assert_eq!(
            get("process.pid").map(|v| v.to_string()),
            Some(std::process::id().to_string())
        );
        assert_eq!(
            get("telemetry.sdk.language").map(|v| v.to_string()),
            Some("rust".to_owned())
        );
        assert!(get("telemetry.sdk.version").is_some());
    }
}
