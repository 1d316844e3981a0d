//! An axum hello-world in the instrumentation variants that BENCHMARKS.md compares, as a real
//! server for a load tool or as a loop of in-process requests for a profiler:
//!
//! ```sh
//! cargo run --release -p faultline-instrument --example hello_world -- faultline serve 127.0.0.1:3000
//! wrk -t1 -c32 -d10s http://127.0.0.1:3000/orders/42
//! valgrind --tool=callgrind target/release/examples/hello_world faultline-unsampled oneshot 10000
//! ```
//!
//! Variants: `bare`, `noop-layer` (a layer that does nothing: what axum charges for any layer),
//! `faultline` (sampled), `faultline-unsampled` (built with `Telemetry`, as users do),
//! `faultline-no-headers` (sampled, without the `traceresponse` and `X-Trace-Id` headers, which
//! the other stacks do not write), `faultline-no-trace-id` (sampled, `traceresponse` only),
//! `faultline-sdk` and `faultline-sdk-unsampled` (a hand-built `ServerLayer` on a plain provider,
//! where the SDK decides), `tower-http` (tower-http's `TraceLayer` feeding `tracing-opentelemetry`)
//! and `axum-tracing` (`axum-tracing-opentelemetry`). Those are applied with `Router::layer`,
//! which wraps every route; `faultline-around`, `faultline-unsampled-around`,
//! `faultline-no-headers-around` and `tower-http-around` apply the same layers with
//! `Layer::layer` to the finished router instead (no route template is known there). Every
//! traced variant exports through the same bounded batch processor to an exporter that
//! discards, so only the request path differs.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::body::Body;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use faultline_instrument::processor::{BatchSettings, BoundedBatchProcessor};
use faultline_instrument::propagation::Propagation;
use faultline_instrument::sampling::SamplerConfig;
use faultline_instrument::server::ServerLayer;
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

fn provider(sampler: SamplerConfig) -> Result<SdkTracerProvider, Box<dyn std::error::Error>> {
    let processor = BoundedBatchProcessor::new(Discard, batch_settings())?;
    Ok(SdkTracerProvider::builder()
        .with_sampler(sampler.build("hello")?)
        .with_span_processor(processor)
        .build())
}

fn hello() -> Router {
    Router::new().route("/orders/{id}", get(|| async { "ok" }))
}

/// What to shut down at the end.
enum Guard {
    Provider(SdkTracerProvider),
    Telemetry(Telemetry),
}

/// Where a variant's layer sits: on the routes (`Router::layer`) or around the whole router.
enum Application {
    Routes(Router),
    Around(faultline_instrument::server::TracedService<Router>),
}

/// The app of `variant`, and what to shut down at the end.
fn app(variant: &str) -> Result<(Application, Option<Guard>), Box<dyn std::error::Error>> {
    if let Some(inner) = variant.strip_suffix("-around") {
        // The same layer applied with `Layer::layer` to the finished router: routing happens
        // inside it, so axum does not wrap every route again.
        let telemetry = Telemetry::builder("hello")
            .sampler(if inner == "faultline-unsampled" {
                SamplerConfig::AlwaysOff
            } else {
                SamplerConfig::AlwaysOn
            })
            .propagation(Propagation::default())
            .batch(batch_settings())
            .install_global(false)
            .install_with_exporter(Discard)?;
        let mut layer = telemetry.server_layer();
        match inner {
            "faultline" | "faultline-unsampled" => {}
            "faultline-no-headers" => layer = layer.trace_id_header(None).traceresponse(false),
            other => return Err(format!("unknown variant {other:?}-around").into()),
        }
        let service = tower::Layer::layer(&layer, hello().with_state(()));
        return Ok((
            Application::Around(service),
            Some(Guard::Telemetry(telemetry)),
        ));
    }
    let (router, guard) = routes_app(variant)?;
    // What `axum::serve` does first: handlers become routes (and layers wrap them) once,
    // instead of on every request of a `Router` called directly.
    Ok((Application::Routes(router.with_state(())), guard))
}

/// The app of a variant whose layer (if any) axum applies to every route.
fn routes_app(variant: &str) -> Result<(Router, Option<Guard>), Box<dyn std::error::Error>> {
    let sampler = |sampled| {
        if sampled {
            SamplerConfig::AlwaysOn
        } else {
            SamplerConfig::AlwaysOff
        }
    };
    Ok(match variant {
        "bare" => (hello(), None),
        "noop-layer" => (hello().layer(tower::layer::util::Identity::new()), None),
        "faultline" | "faultline-unsampled" | "faultline-no-headers" | "faultline-no-trace-id" => {
            let telemetry = Telemetry::builder("hello")
                .sampler(sampler(variant != "faultline-unsampled"))
                .propagation(Propagation::default())
                .batch(batch_settings())
                .install_global(false)
                .install_with_exporter(Discard)?;
            let mut layer = telemetry.server_layer();
            if variant == "faultline-no-headers" {
                layer = layer.trace_id_header(None).traceresponse(false);
            } else if variant == "faultline-no-trace-id" {
                layer = layer.trace_id_header(None);
            }
            (hello().layer(layer), Some(Guard::Telemetry(telemetry)))
        }
        "faultline-sdk" | "faultline-sdk-unsampled" => {
            let provider = provider(sampler(variant == "faultline-sdk"))?;
            let layer = ServerLayer::new(provider.tracer("hello"), Propagation::default());
            (hello().layer(layer), Some(Guard::Provider(provider)))
        }
        "tower-http" | "axum-tracing" => {
            let provider = tracing_stack()?;
            let app = if variant == "tower-http" {
                hello().layer(tower_http::trace::TraceLayer::new_for_http())
            } else {
                hello()
                    .layer(axum_tracing_opentelemetry::middleware::OtelInResponseLayer)
                    .layer(axum_tracing_opentelemetry::middleware::OtelAxumLayer::default())
            };
            (app, Some(Guard::Provider(provider)))
        }
        other => return Err(format!("unknown variant {other:?}").into()),
    })
}

/// A provider feeding `tracing-opentelemetry`, installed as the global subscriber.
fn tracing_stack() -> Result<SdkTracerProvider, Box<dyn std::error::Error>> {
    let provider = provider(SamplerConfig::AlwaysOn)?;
    opentelemetry::global::set_text_map_propagator(Propagation::default());
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("hello")));
    tracing::subscriber::set_global_default(subscriber)?;
    Ok(provider)
}

fn request() -> Result<http::Request<Body>, http::Error> {
    http::Request::get("/orders/42")
        .header("host", "localhost:3000")
        .header("user-agent", "bench")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(Body::empty())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: hello_world <bare|noop-layer|faultline|faultline-unsampled|faultline-no-headers|faultline-no-trace-id|faultline-sdk|\
                 faultline-sdk-unsampled|tower-http|axum-tracing|faultline-around|faultline-unsampled-around|\
                 faultline-no-headers-around|tower-http-around> <serve ADDR | oneshot COUNT>";
    let [variant, mode, arg] = args.as_slice() else {
        return Err(usage.into());
    };
    if variant == "tower-http-around" {
        // tower-http's layer around the finished router, for comparison with ours there.
        let provider = tracing_stack()?;
        let traced = tower::Layer::layer(
            &tower_http::trace::TraceLayer::new_for_http(),
            hello().with_state(()),
        );
        let service = ServiceExt::<http::Request<Body>>::map_response(
            traced,
            |response: http::Response<_>| response.map(Body::new),
        );
        drive(service, variant, mode, arg)?;
        provider.shutdown()?;
        return Ok(());
    }
    let (app, guard) = app(variant)?;
    match app {
        Application::Routes(router) => drive(router, variant, mode, arg)?,
        Application::Around(service) => drive(service, variant, mode, arg)?,
    }
    match guard {
        Some(Guard::Provider(provider)) => provider.shutdown()?,
        Some(Guard::Telemetry(telemetry)) => telemetry.shutdown()?,
        None => {}
    }
    Ok(())
}

/// Serves `app` over TCP or runs `COUNT` requests through it in process.
fn drive<S>(app: S, variant: &str, mode: &str, arg: &str) -> Result<(), Box<dyn std::error::Error>>
where
    S: tower::Service<http::Request<Body>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send,
{
    let usage = "mode must be `serve ADDR` or `oneshot COUNT`";
    match mode {
        "serve" => {
            let addr: SocketAddr = arg.parse()?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind(addr).await?;
                eprintln!("{variant} listening on {}", listener.local_addr()?);
                axum::serve(listener, axum::ServiceExt::into_make_service(app))
                    .with_graceful_shutdown(async {
                        let _ = tokio::signal::ctrl_c().await;
                    })
                    .await
            })?;
        }
        "oneshot" => {
            let count: u64 = arg.parse()?;
            let runtime = tokio::runtime::Builder::new_current_thread().build()?;
            for _ in 0..count {
                let response = runtime.block_on(app.clone().oneshot(request()?))?;
                if !response.status().is_success() {
                    return Err(format!("answered {}", response.status()).into());
                }
            }
        }
        _ => return Err(usage.into()),
    }
    Ok(())
}
