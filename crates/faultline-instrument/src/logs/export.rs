//! OTLP log export: `tracing` events become OpenTelemetry log records (through
//! `opentelemetry-appender-tracing`) and leave through a bounded batch processor.
//!
//! Records take their trace and span ids from the current OpenTelemetry [`Context`], which is
//! what this crate's layers attach while a request is handled; no `tracing` span is needed.
//! Several services in one process (the demo shop) each have their own logger provider: the
//! layers of a service's [`Telemetry`](crate::Telemetry) put a [`LogRoute`] into the context
//! they attach, and [`OtlpLogLayer`] sends each event to the route it finds there.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::baggage::BaggageExt;
use opentelemetry::logs::{LogRecord as _, Severity};
use opentelemetry::InstrumentationScope;
use opentelemetry::{Context, Key};
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{
    LogBatch, LogExporter, LogProcessor, SdkLogRecord, SdkLogger, SdkLoggerProvider,
};
use opentelemetry_sdk::Resource;
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context as LayerContext, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::Error;

type Bridge = OpenTelemetryTracingBridge<SdkLoggerProvider, SdkLogger>;

/// Which logger provider the events of the current request belong to.
///
/// Put into the OpenTelemetry context by the layers of a [`Telemetry`](crate::Telemetry)
/// whose log export is on, read by [`OtlpLogLayer`].
#[derive(Clone)]
pub struct LogRoute {
    bridge: Arc<Bridge>,
}

impl LogRoute {
    pub(crate) fn new(provider: &SdkLoggerProvider) -> Self {
        LogRoute {
            bridge: Arc::new(OpenTelemetryTracingBridge::new(provider)),
        }
    }

    /// `cx` with this route; what the layers attach while serving a request.
    pub fn attach_to(&self, cx: Context) -> Context {
        cx.with_value(self.clone())
    }
}

impl fmt::Debug for LogRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogRoute").finish_non_exhaustive()
    }
}

/// `cx` with `route` when there is one; the layers call this on every context they attach.
pub(crate) fn with_route(cx: Context, route: Option<&LogRoute>) -> Context {
    match route {
        Some(route) => route.attach_to(cx),
        None => cx,
    }
}

/// A `tracing-subscriber` layer exporting every event as an OpenTelemetry log record.
///
/// The record goes to the logger provider named by the [`LogRoute`] in the current
/// OpenTelemetry context, else to the layer's own fallback; without either it is not exported.
/// Trace and span ids, severity, body (the `message` field) and the other fields as attributes
/// are filled in by `opentelemetry-appender-tracing` and the SDK.
///
/// ```
/// use faultline_instrument::logs::OtlpLogLayer;
/// use tracing_subscriber::layer::SubscriberExt;
/// // Several services in one process, each with its own `Telemetry` and log export on:
/// let subscriber = tracing_subscriber::registry().with(OtlpLogLayer::routed());
/// # let _ = subscriber;
/// ```
#[derive(Clone, Debug, Default)]
pub struct OtlpLogLayer {
    fallback: Option<LogRoute>,
}

impl OtlpLogLayer {
    /// Exports only events raised while a context with a [`LogRoute`] is current, i.e. while a
    /// request of a service with log export is handled.
    pub fn routed() -> Self {
        OtlpLogLayer { fallback: None }
    }

    pub(crate) fn with_fallback(route: LogRoute) -> Self {
        OtlpLogLayer {
            fallback: Some(route),
        }
    }
}

impl<S> Layer<S> for OtlpLogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) {
        let routed = Context::map_current(|cx| cx.get::<LogRoute>().cloned());
        if let Some(route) = routed.as_ref().or(self.fallback.as_ref()) {
            <Bridge as Layer<S>>::on_event(&route.bridge, event, ctx);
        }
    }
}

/// Copies chosen W3C baggage entries of the current context into every log record, e.g. a
/// `request_id` set at the edge that every service's logs should carry.
#[derive(Debug)]
pub(crate) struct BaggageAttributes {
    keys: Vec<Key>,
}

impl BaggageAttributes {
    pub(crate) fn new(keys: Vec<Key>) -> Self {
        BaggageAttributes { keys }
    }
}

impl LogProcessor for BaggageAttributes {
    fn emit(&self, record: &mut SdkLogRecord, _scope: &InstrumentationScope) {
        // Runs on the thread that logged, before the batch processor copies the record.
        Context::map_current(|cx| {
            let baggage = cx.baggage();
            for key in &self.keys {
                if let Some(value) = baggage.get(key.as_str()) {
                    record.add_attribute(key.clone(), value.as_str().to_owned());
                }
            }
        });
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// Runs an async OTLP exporter on a Tokio runtime of its own, so the SDK's thread-based batch
/// processor can drive it whether or not the application has a runtime.
pub(crate) struct RuntimeLogExporter<E> {
    inner: E,
    // Dropped after `inner`, whose connection tasks live on it.
    runtime: tokio::runtime::Runtime,
}

impl<E> RuntimeLogExporter<E> {
    /// Builds the exporter inside a fresh current-thread runtime: gRPC exporters spawn their
    /// connection tasks when built.
    pub(crate) fn build(make: impl FnOnce() -> Result<E, Error>) -> Result<Self, Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::Worker)?;
        let inner = {
            let _entered = runtime.enter();
            make()?
        };
        Ok(RuntimeLogExporter { inner, runtime })
    }
}

impl<E> fmt::Debug for RuntimeLogExporter<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeLogExporter").finish_non_exhaustive()
    }
}

impl<E: LogExporter> LogExporter for RuntimeLogExporter<E> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        // Called on the batch processor's own thread, never on an application runtime.
        self.runtime.block_on(self.inner.export(batch))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn event_enabled(&self, level: Severity, target: &str, name: Option<&str>) -> bool {
        self.inner.event_enabled(level, target, name)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
