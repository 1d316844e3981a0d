//! The service from `docs/instrumenting.md`: an axum app traced end to end.
//!
//! ```text
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 \
//!   cargo run -p faultline-instrument --example order_service
//! curl -i localhost:3000/orders/42
//! ```
//!
//! `GET /orders/{id}` calls `GET /inventory/{id}` on the same service over HTTP (a CLIENT span
//! and a second SERVER span in the same trace) and runs a pretend query (a database CLIENT
//! span). `/orders/0` answers 500 via a panic, to show how panics are recorded.

use std::net::SocketAddr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use faultline_instrument::db::Database;
use faultline_instrument::logs::CorrelatedFormat;
use faultline_instrument::resilience::{CircuitBreakerConfig, CircuitBreakerLayer};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};

#[derive(Clone)]
struct AppState {
    http: ClientWithMiddleware,
    db: Database,
    self_url: String,
}

async fn order(State(state): State<AppState>, Path(id): Path<u64>) -> Result<String, StatusCode> {
    assert!(
        id != 0,
        "order 0 does not exist and this handler is sloppy about it"
    );
    tracing::info!(order_id = id, "looking up order");
    let stock = state
        .http
        .get(format!("{}/inventory/{id}", state.self_url))
        .send()
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)?
        .text()
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)?;
    let total: Result<u64, std::io::Error> = state
        .db
        .query(
            &format!("SELECT total FROM orders WHERE id = {id}"),
            async { Ok(()) },
            |()| async move { Ok(id * 100) },
        )
        .await;
    let total = total.map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok(format!("order {id}: total {total}, {stock}\n"))
}

async fn inventory(Path(id): Path<u64>) -> String {
    tracing::info!(item = id, "checking stock");
    format!("{} in stock", id % 7)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. Tracer provider, OTLP exporter, sampler and propagators from OTEL_* variables.
    let telemetry = faultline_instrument::Telemetry::builder("order-service")
        .service_version(env!("CARGO_PKG_VERSION"))
        .install()?;
    // 2. Logs with trace_id/span_id on every line.
    tracing_subscriber::fmt()
        .event_format(CorrelatedFormat::text())
        .init();

    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let state = AppState {
        // 3. Outgoing calls carry the context and get CLIENT spans.
        http: ClientBuilder::new(reqwest::Client::new())
            .with(telemetry.reqwest_middleware())
            .build(),
        db: telemetry.database("postgresql"),
        self_url: format!("http://{addr}"),
    };
    // 4. One layer traces every route; it goes last so it wraps the others.
    let app = Router::new()
        .route("/orders/{id}", get(order))
        .route("/inventory/{id}", get(inventory))
        .with_state(state)
        .layer(CircuitBreakerLayer::new(CircuitBreakerConfig::default()))
        .layer(telemetry.server_layer());

    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "listening");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    // 5. Flush what is still queued before exiting (dropping `telemetry` would too).
    let stats = telemetry.export_stats();
    tokio::task::spawn_blocking(move || telemetry.shutdown()).await??;
    tracing::info!(
        exported = stats.exported_spans(),
        dropped = stats.dropped_spans(),
        "telemetry flushed"
    );
    Ok(())
}
