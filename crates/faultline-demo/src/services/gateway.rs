//! `gateway`: the shop's public HTTP API (browse, cart, checkout), behind a rate limiter.
//! Every answer carries `X-Trace-Id` (from the tracing layer) so a customer can quote it, and
//! `X-Request-Id`: the caller's, or one made up here. The request id travels to every service in
//! W3C baggage, so all log lines of one customer request carry the same `request_id`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use faultline_instrument::resilience::RateLimitLayer;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::trace::FutureExt as _;
use opentelemetry::{Context, KeyValue};
use reqwest_middleware::ClientWithMiddleware;
use serde::Deserialize;

use super::order::OrderRequest;
use super::{error_response, parse_json, ServiceBase, REQUEST_ID};
use crate::grpc::InventoryClient;
use crate::DemoError;

struct Gateway {
    inventory: InventoryClient,
    user_url: String,
    user: ClientWithMiddleware,
    order_url: String,
    order: ClientWithMiddleware,
}

/// Where the gateway sends its calls.
pub(crate) struct Upstreams<'a> {
    pub(crate) user: &'a str,
    pub(crate) order: &'a str,
    pub(crate) inventory: &'a str,
}

pub(crate) fn router(
    base: &ServiceBase,
    upstreams: Upstreams<'_>,
    rate_limit_per_sec: f64,
) -> Result<Router, DemoError> {
    let gateway = Arc::new(Gateway {
        inventory: InventoryClient::new(upstreams.inventory, &base.telemetry)?,
        user_url: upstreams.user.trim_end_matches('/').to_owned(),
        user: base.http_client("user", Duration::from_secs(5))?,
        order_url: upstreams.order.trim_end_matches('/').to_owned(),
        order: base.http_client("order", Duration::from_secs(10))?,
    });
    Ok(base.traced(
        Router::new()
            .route("/api/products", get(list_products))
            .route("/api/products/{sku}", get(get_product))
            .route("/api/cart/{user_id}", get(get_cart))
            .route("/api/cart/{user_id}/items", post(add_to_cart))
            .route("/api/checkout", post(checkout))
            .with_state(gateway)
            .layer(RateLimitLayer::new(
                rate_limit_per_sec,
                (rate_limit_per_sec / 5.0).max(1.0),
            ))
            .layer(axum::middleware::from_fn(request_id)),
    ))
}

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Request ids longer than this, or with other characters than `[A-Za-z0-9._:-]`, are replaced:
/// the id ends up in a baggage header and in every log line, so it must stay small and plain.
const MAX_REQUEST_ID_LEN: usize = 128;

/// The caller's `X-Request-Id` when it is acceptable, else a fresh random one.
fn request_id_of(request: &Request) -> String {
    request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= MAX_REQUEST_ID_LEN
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{:016x}", fastrand::u64(..)))
}

/// Puts the request id into the baggage the handler (and every call it makes) runs with, and
/// echoes it in the answer.
async fn request_id(request: Request, next: Next) -> Response {
    let id = request_id_of(&request);
    // `with_baggage` replaces the context's baggage whole: carry the caller's entries over.
    let cx = Context::map_current(|cx| {
        let mut entries: Vec<KeyValue> = cx
            .baggage()
            .iter()
            .filter(|(key, _)| key.as_str() != REQUEST_ID)
            .map(|(key, (value, _))| KeyValue::new(key.clone(), value.clone()))
            .collect();
        entries.push(KeyValue::new(REQUEST_ID, id.clone()));
        cx.with_baggage(entries)
    });
    let mut response = next.run(request).with_context(cx).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
    response
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<u32>,
}

fn grpc_error(status: &tonic::Status) -> Response {
    let http_status = match status.code() {
        tonic::Code::NotFound => StatusCode::NOT_FOUND,
        tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
        _ => StatusCode::BAD_GATEWAY,
    };
    tracing::error!(code = ?status.code(), message = status.message(), "inventory call failed");
    error_response(http_status, format!("inventory: {}", status.message()))
}

async fn list_products(State(gw): State<Arc<Gateway>>, Query(query): Query<ListQuery>) -> Response {
    match gw.inventory.list_products(query.limit.unwrap_or(20)).await {
        Ok(list) => Json(list.products).into_response(),
        Err(status) => grpc_error(&status),
    }
}

async fn get_product(State(gw): State<Arc<Gateway>>, Path(sku): Path<String>) -> Response {
    match gw.inventory.get_product(sku).await {
        Ok(product) => Json(product).into_response(),
        Err(status) => grpc_error(&status),
    }
}

/// Sends a prepared request upstream and relays the answer; transport failures become 502.
async fn relay(request: reqwest_middleware::RequestBuilder, what: &str) -> Response {
    match request.send().await {
        Ok(response) => {
            let status =
                StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            match response.bytes().await {
                Ok(body) => (
                    status,
                    [(http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
                    .into_response(),
                Err(err) => error_response(StatusCode::BAD_GATEWAY, format!("{what}: {err}")),
            }
        }
        Err(err) => {
            tracing::error!(error = %err, "{what} unreachable");
            error_response(
                StatusCode::BAD_GATEWAY,
                format!("{what} unreachable: {err}"),
            )
        }
    }
}

async fn get_cart(State(gw): State<Arc<Gateway>>, Path(user_id): Path<u32>) -> Response {
    relay(
        gw.user.get(format!("{}/users/{user_id}/cart", gw.user_url)),
        "user",
    )
    .await
}

async fn add_to_cart(
    State(gw): State<Arc<Gateway>>,
    Path(user_id): Path<u32>,
    body: Bytes,
) -> Response {
    relay(
        gw.user
            .post(format!("{}/users/{user_id}/cart", gw.user_url))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body),
        "user",
    )
    .await
}

async fn checkout(State(gw): State<Arc<Gateway>>, body: Bytes) -> Response {
    let request: OrderRequest = match parse_json(&body) {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    // "Authentication": the customer must exist.
    let who = gw
        .user
        .get(format!("{}/users/{}", gw.user_url, request.user_id))
        .send()
        .await;
    match who {
        Ok(r) if r.status().is_success() => {}
        Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => {
            return error_response(StatusCode::UNAUTHORIZED, "unknown customer".into())
        }
        Ok(r) => {
            return error_response(
                StatusCode::BAD_GATEWAY,
                format!("user answered {}", r.status()),
            )
        }
        Err(err) => {
            tracing::error!(error = %err, "user unreachable");
            return error_response(StatusCode::BAD_GATEWAY, format!("user unreachable: {err}"));
        }
    }
    let body = match serde_json::to_string(&request) {
        Ok(b) => b,
        Err(e) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let response = relay(
        gw.order
            .post(format!("{}/orders", gw.order_url))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body),
        "order",
    )
    .await;
    if response.status().is_success() {
        tracing::info!(user_id = request.user_id, "checkout completed");
    }
    response
}
