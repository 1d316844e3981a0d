//! `payment`: charges an order through the third-party provider, behind a circuit breaker.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use faultline_instrument::resilience::{CircuitBreakerConfig, CircuitBreakerLayer};
use reqwest_middleware::ClientWithMiddleware;
use serde::{Deserialize, Serialize};

use super::{error_response, parse_json, ServiceBase};
use crate::DemoError;

/// How long `payment` waits for the provider.
pub const PROVIDER_TIMEOUT: Duration = Duration::from_secs(2);

/// `POST /charges` body.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChargeRequest {
    pub(crate) order_id: String,
    pub(crate) amount_cents: i64,
}

struct Payment {
    provider_url: String,
    client: ClientWithMiddleware,
}

/// Opens after half of the last 20 charges failed (at least 10), probes after 10s.
fn breaker_config() -> CircuitBreakerConfig {
    CircuitBreakerConfig {
        failure_ratio: 0.5,
        window: 20,
        min_calls: 10,
        open_for: Duration::from_secs(10),
        half_open_probes: 2,
    }
}

pub(crate) fn router(base: &ServiceBase, provider_url: &str) -> Result<Router, DemoError> {
    let payment = Arc::new(Payment {
        provider_url: format!("{}/v1/charges", provider_url.trim_end_matches('/')),
        client: base.http_client("payment-provider", PROVIDER_TIMEOUT)?,
    });
    Ok(base.traced(
        Router::new()
            .route("/charges", post(charge))
            .with_state(payment)
            // Provider failures answer 5xx and count; while open, charges fail fast with 503.
            .layer(CircuitBreakerLayer::new(breaker_config())),
    ))
}

async fn charge(State(payment): State<Arc<Payment>>, body: Bytes) -> Response {
    let request: ChargeRequest = match parse_json(&body) {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    if request.order_id.is_empty() || request.order_id.len() > 64 || request.amount_cents <= 0 {
        return error_response(
            StatusCode::BAD_REQUEST,
            "order_id must be 1 to 64 bytes and amount_cents positive".into(),
        );
    }
    let body = serde_json::json!({
        "amount": request.amount_cents,
        "currency": "eur",
        "reference": request.order_id,
    });
    let result = payment
        .client
        .post(&payment.provider_url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await;
    match result {
        Ok(response) if response.status().is_success() => {
            let charge: serde_json::Value = response.json_value().await;
            tracing::info!(order_id = %request.order_id, amount_cents = request.amount_cents, "charged");
            (StatusCode::CREATED, Json(charge)).into_response()
        }
        Ok(response) => {
            let status = response.status();
            tracing::error!(order_id = %request.order_id, %status, "provider refused the charge");
            error_response(
                StatusCode::BAD_GATEWAY,
                format!("payment provider answered {status}"),
            )
        }
        Err(err) => {
            tracing::error!(order_id = %request.order_id, error = %err, "provider call failed");
            error_response(
                StatusCode::BAD_GATEWAY,
                format!("payment provider unreachable: {err}"),
            )
        }
    }
}

/// Reads a JSON body, or `null` when it is not JSON (the provider is not ours to trust).
trait JsonValue {
    async fn json_value(self) -> serde_json::Value;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> serde_json::Value {
        match self.bytes().await {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
            Err(_) => serde_json::Value::Null,
        }
    }
}
