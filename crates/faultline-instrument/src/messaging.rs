//! Messaging helpers: PRODUCER spans whose context rides in message headers, and CONSUMER
//! spans that continue it (one message) or link to every message of a batch.
//!
//! Carriers are any [`Injector`]/[`Extractor`]; [`MapInjector`](crate::propagation::MapInjector)
//! and [`MapExtractor`](crate::propagation::MapExtractor) adapt a `HashMap<String, String>`,
//! and Kafka or NATS header types need only a few lines to do the same.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{Link, SpanKind, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;

use crate::logs::{with_route, LogRoute};
use crate::propagation::Propagation;
use crate::semconv;

/// Starts messaging spans for one messaging system (`kafka`, `nats`, `rabbitmq`, ...).
///
/// ```
/// use std::collections::HashMap;
/// use faultline_instrument::messaging::Messaging;
/// use faultline_instrument::propagation::{MapExtractor, MapInjector};
/// use faultline_instrument::Telemetry;
/// use opentelemetry::trace::TraceContextExt;
/// use opentelemetry_sdk::trace::InMemorySpanExporter;
///
/// let telemetry = Telemetry::builder("orders")
///     .install_global(false)
///     .install_with_exporter(InMemorySpanExporter::default())?;
/// let kafka = telemetry.messaging("kafka");
/// let mut headers = HashMap::new();
/// let send = kafka.producer_span("orders", &mut MapInjector(&mut headers));
/// send.span().end();
/// let process = kafka.consumer_span("orders", &MapExtractor(&headers));
/// assert_eq!(process.span().span_context().trace_id(), send.span().span_context().trace_id());
/// # Ok::<(), faultline_instrument::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Messaging {
    tracer: SdkTracer,
    propagation: Propagation,
    system: String,
    logs: Option<LogRoute>,
}

impl Messaging {
    /// Helpers for `system` (the `messaging.system` attribute).
    pub fn new(tracer: SdkTracer, propagation: Propagation, system: impl Into<String>) -> Self {
        Messaging {
            tracer,
            propagation,
            system: system.into(),
            logs: None,
        }
    }

    /// Exports events raised while a consumed message is processed as logs of `route`'s
    /// service; [`Telemetry::messaging`](crate::Telemetry::messaging) sets it.
    pub fn log_route(mut self, route: Option<LogRoute>) -> Self {
        self.logs = route;
        self
    }

    fn attributes(&self, destination: &str, operation: &'static str) -> Vec<KeyValue> {
        vec![
            KeyValue::new("messaging.system", self.system.clone()),
            KeyValue::new(
                "messaging.destination.name",
                semconv::truncate(destination, 256).to_owned(),
            ),
            KeyValue::new("messaging.operation.type", operation),
            KeyValue::new("messaging.operation.name", operation),
        ]
    }

    /// Starts a PRODUCER span `send {destination}` under the current context and writes its
    /// context into the message headers. End it when the broker acknowledged the message.
    pub fn producer_span(&self, destination: &str, headers: &mut dyn Injector) -> Context {
        let parent = Context::current();
        let span = self
            .tracer
            .span_builder(format!("send {destination}"))
            .with_kind(SpanKind::Producer)
            .with_attributes(self.attributes(destination, "send"))
            .start_with_context(&self.tracer, &parent);
        let cx = parent.with_span(span);
        self.propagation.inject_context(&cx, headers);
        cx
    }

    /// Starts a CONSUMER span `process {destination}` continuing the trace of one message.
    pub fn consumer_span(&self, destination: &str, headers: &dyn Extractor) -> Context {
        let parent = self.propagation.extract(headers);
        let span = self
            .tracer
            .span_builder(format!("process {destination}"))
            .with_kind(SpanKind::Consumer)
            .with_attributes(self.attributes(destination, "process"))
            .start_with_context(&self.tracer, &parent);
        with_route(parent.with_span(span), self.logs.as_ref())
    }

    /// Starts a CONSUMER span `process {destination}` for a batch: a child of the current
    /// context with a link to each message's context, since a span has only one parent.
    pub fn batch_consumer_span<'a>(
        &self,
        destination: &str,
        messages: impl IntoIterator<Item = &'a dyn Extractor>,
    ) -> Context {
        let links: Vec<Link> = messages
            .into_iter()
            .map(|headers| self.propagation.extract(headers))
            .filter_map(|cx| {
                let sc = cx.span().span_context().clone();
                sc.is_valid().then(|| Link::with_context(sc))
            })
            .collect();
        let mut attributes = self.attributes(destination, "process");
        attributes.push(KeyValue::new(
            "messaging.batch.message_count",
            i64::try_from(links.len()).unwrap_or(i64::MAX),
        ));
        let parent = Context::current();
        let span = self
            .tracer
            .span_builder(format!("process {destination}"))
            .with_kind(SpanKind::Consumer)
            .with_attributes(attributes)
            .with_links(links)
            .start_with_context(&self.tracer, &parent);
        with_route(parent.with_span(span), self.logs.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::propagation::{MapExtractor, MapInjector};
    use opentelemetry::trace::TracerProvider;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    use std::collections::HashMap;

    #[test]
    fn batch_consumers_link_every_message() {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let kafka = Messaging::new(provider.tracer("test"), Propagation::default(), "kafka");
        let mut batch = Vec::new();
        for _ in 0..3 {
            let mut headers = HashMap::new();
            kafka
                .producer_span("orders", &mut MapInjector(&mut headers))
                .span()
                .end();
            batch.push(headers);
        }
        // A message without context is consumed but cannot be linked.
        batch.push(HashMap::from([(
            "traceparent".to_owned(),
            "garbage".to_owned(),
        )]));
        let extractors: Vec<MapExtractor<'_, _>> = batch.iter().map(MapExtractor).collect();
        kafka
            .batch_consumer_span("orders", extractors.iter().map(|e| e as &dyn Extractor))
            .span()
            .end();
        let spans = exporter.get_finished_spans().expect("spans");
        let producers: Vec<_> = spans
            .iter()
            .filter(|s| s.span_kind == SpanKind::Producer)
            .collect();
        let consumer = spans
            .iter()
            .find(|s| s.span_kind == SpanKind::Consumer)
            .expect("consumer span");
        assert_eq!(producers.len(), 3);
        assert_eq!(consumer.name, "process orders");
        let linked: Vec<_> = consumer
            .links
            .iter()
            .map(|l| l.span_context.span_id())
            .collect();
        let produced: Vec<_> = producers.iter().map(|p| p.span_context.span_id()).collect();
        assert_eq!(linked, produced);
        assert!(consumer
            .attributes
            .iter()
            .any(|kv| kv.key.as_str() == "messaging.batch.message_count"
                && kv.value == opentelemetry::Value::I64(3)));
    }

    #[test]
    fn single_consumer_continues_the_producer_trace() {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let nats = Messaging::new(provider.tracer("test"), Propagation::default(), "nats");
        let mut headers = HashMap::new();
        let send = nats.producer_span("jobs", &mut MapInjector(&mut headers));
        send.span().end();
        nats.consumer_span("jobs", &MapExtractor(&headers))
            .span()
            .end();
        let spans = exporter.get_finished_spans().expect("spans");
        let producer = spans
            .iter()
            .find(|s| s.span_kind == SpanKind::Producer)
            .expect("producer");
        let consumer = spans
            .iter()
            .find(|s| s.span_kind == SpanKind::Consumer)
            .expect("consumer");
        assert_eq!(consumer.parent_span_id, producer.span_context.span_id());
        assert_eq!(producer.name, "send jobs");
    }
}
