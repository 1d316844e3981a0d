//! Added latency per request of the server layer, in process (tower `oneshot`, no sockets):
//! no instrumentation; our layer sampled and unsampled, from `Telemetry::server_layer` as users
//! get it, on every route and around the whole router; tower-http's `TraceLayer` feeding
//! `tracing-opentelemetry`, the common alternative; and `axum-tracing-opentelemetry`. Every
//! variant exports to a discarding exporter through the same bounded batch processor, so only
//! the request path is compared.

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use criterion::{criterion_group, criterion_main, Criterion};
use faultline_instrument::processor::{BatchSettings, BoundedBatchProcessor};
use faultline_instrument::propagation::Propagation;
use faultline_instrument::sampling::SamplerConfig;
use faultline_instrument::Telemetry;
use opentelemetry::trace::TracerProvider;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tower::ServiceExt;
use tracing_subscriber::layer::SubscriberExt;

#[derive(Debug)]
struct Discard;

impl SpanExporter for Discard {
    async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
        Ok(())
    }
}

fn batch_settings() -> BatchSettings {
    BatchSettings {
        max_queue_size: 65_536,
        ..BatchSettings::default()
    }
}

fn telemetry(sampler: SamplerConfig) -> Telemetry {
    Telemetry::builder("bench")
        .sampler(sampler)
        .propagation(Propagation::default())
        .batch(batch_settings())
        .install_global(false)
        .install_with_exporter(Discard)
        .expect("telemetry")
}

fn provider(sampler: SamplerConfig) -> SdkTracerProvider {
    let processor = BoundedBatchProcessor::new(Discard, batch_settings()).expect("export thread");
    SdkTracerProvider::builder()
        .with_sampler(sampler.build("bench").expect("sampler"))
        .with_span_processor(processor)
        .build()
}

fn app() -> Router {
    Router::new().route("/orders/{id}", get(|| async { "ok" }))
}

fn request() -> http::Request<Body> {
    http::Request::get("/orders/42")
        .header("host", "localhost:3000")
        .header("user-agent", "bench")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(Body::empty())
        .expect("request")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("server_request");

    // Each app is finalised as `axum::serve` does it (handlers become routes and layers wrap
    // them once), not on every request as a `Router` called directly would.
    let bare = app().with_state(());
    group.bench_function("no_instrumentation", |b| {
        b.iter(|| rt.block_on(bare.clone().oneshot(request())))
    });

    let sampled = telemetry(SamplerConfig::AlwaysOn);
    let ours = app().layer(sampled.server_layer()).with_state(());
    group.bench_function("faultline_sampled", |b| {
        b.iter(|| rt.block_on(ours.clone().oneshot(request())))
    });

    let unsampled = telemetry(SamplerConfig::AlwaysOff);
    let ours_off = app().layer(unsampled.server_layer()).with_state(());
    group.bench_function("faultline_unsampled", |b| {
        b.iter(|| rt.block_on(ours_off.clone().oneshot(request())))
    });

    // The same layers applied around the finished router (`Layer::layer`), which spares axum
    // wrapping every route again but leaves spans named by method alone.
    let around = tower::Layer::layer(&sampled.server_layer(), app().with_state(()));
    group.bench_function("faultline_sampled_around_router", |b| {
        b.iter(|| rt.block_on(around.clone().oneshot(request())))
    });
    let around_off = tower::Layer::layer(&unsampled.server_layer(), app().with_state(()));
    group.bench_function("faultline_unsampled_around_router", |b| {
        b.iter(|| rt.block_on(around_off.clone().oneshot(request())))
    });

    let other = provider(SamplerConfig::AlwaysOn);
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(other.tracer("bench")));
    let tower_http = app()
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(());
    tracing::subscriber::with_default(subscriber, || {
        group.bench_function("tower_http_tracing_opentelemetry", |b| {
            b.iter(|| rt.block_on(tower_http.clone().oneshot(request())))
        });
    });

    let axum_tracing = provider(SamplerConfig::AlwaysOn);
    // It extracts the caller's context with the global propagator.
    opentelemetry::global::set_text_map_propagator(Propagation::default());
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(axum_tracing.tracer("bench")));
    let axum_app = app()
        .layer(axum_tracing_opentelemetry::middleware::OtelInResponseLayer)
        .layer(axum_tracing_opentelemetry::middleware::OtelAxumLayer::default())
        .with_state(());
    tracing::subscriber::with_default(subscriber, || {
        group.bench_function("axum_tracing_opentelemetry", |b| {
            b.iter(|| rt.block_on(axum_app.clone().oneshot(request())))
        });
    });
    group.finish();
    for p in [other, axum_tracing] {
        let _ = p.shutdown();
    }
    for t in [sampled, unsampled] {
        let _ = t.shutdown();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
