//! `order`: orchestrates a checkout. Reserves stock from `inventory` over gRPC, charges through
//! `payment` over HTTP, then publishes `order.created` to the queue for `notification`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use opentelemetry::trace::TraceContextExt;
use reqwest_middleware::ClientWithMiddleware;
use serde::{Deserialize, Serialize};

use super::payment::ChargeRequest;
use super::{error_response, parse_json, ServiceBase};
use crate::grpc::{InventoryClient, LineItem, ReserveRequest};
use crate::queue::{QueueSender, QUEUE_SYSTEM};
use crate::DemoError;
use faultline_instrument::propagation::MapInjector;

/// The topic order events go to.
pub const ORDER_CREATED: &str = "order.created";

/// `POST /orders` body.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrderRequest {
    pub(crate) user_id: u32,
    pub(crate) items: Vec<LineItem>,
}

/// The `order.created` message body.
#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct OrderCreated {
    pub(crate) order_id: String,
    pub(crate) user_id: u32,
    pub(crate) total_cents: i64,
}

struct Order {
    base: ServiceBase,
    inventory: InventoryClient,
    payment_url: String,
    payment: ClientWithMiddleware,
    queue: QueueSender,
}

pub(crate) fn router(
    base: &ServiceBase,
    inventory_url: &str,
    payment_url: &str,
    queue: QueueSender,
) -> Result<Router, DemoError> {
    let order = Arc::new(Order {
        base: base.clone(),
        inventory: InventoryClient::new(inventory_url, &base.telemetry)?,
        payment_url: format!("{}/charges", payment_url.trim_end_matches('/')),
        payment: base.http_client("payment", Duration::from_secs(5))?,
        queue,
    });
    Ok(base.traced(
        Router::new()
            .route("/orders", post(place_order))
            .with_state(order),
    ))
}

async fn place_order(State(order): State<Arc<Order>>, body: Bytes) -> Response {
    let request: OrderRequest = match parse_json(&body) {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let order_id = format!("ord-{:016x}", fastrand::u64(..));
    let faults = &order.base.faults;
    if let Some(latency) = faults.dependency_latency("inventory") {
        tokio::time::sleep(latency).await;
    }
    let reserved = if faults.dependency_fails("inventory") {
        Err(tonic::Status::unavailable(
            "inventory call failed (injected fault)",
        ))
    } else {
        order
            .inventory
            .reserve(ReserveRequest {
                order_id: order_id.clone(),
                items: request.items,
            })
            .await
    };
    let total_cents = match reserved {
        Ok(reply) => reply.total_cents,
        Err(status) => {
            tracing::error!(%order_id, code = ?status.code(), message = status.message(), "stock reservation failed");
            let http_status = match status.code() {
                tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
                tonic::Code::NotFound | tonic::Code::FailedPrecondition => StatusCode::CONFLICT,
                _ => StatusCode::BAD_GATEWAY,
            };
            return error_response(http_status, format!("inventory: {}", status.message()));
        }
    };
    let charge = ChargeRequest {
        order_id: order_id.clone(),
        amount_cents: total_cents,
    };
    let charged = match serde_json::to_string(&charge) {
        Ok(body) => order
            .payment
            .post(&order.payment_url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| {
                if r.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("payment answered {}", r.status()))
                }
            }),
        Err(e) => Err(e.to_string()),
    };
    if let Err(reason) = charged {
        tracing::error!(%order_id, %reason, "payment failed");
        return error_response(StatusCode::BAD_GATEWAY, format!("payment failed: {reason}"));
    }
    publish_created(
        &order,
        &OrderCreated {
            order_id: order_id.clone(),
            user_id: request.user_id,
            total_cents,
        },
    );
    tracing::info!(%order_id, total_cents, "order placed");
    (
        StatusCode::CREATED,
        Json(serde_json::json!({ "order_id": order_id, "total_cents": total_cents })),
    )
        .into_response()
}

/// Publishes `order.created` with the trace context in its headers; a full queue loses the
/// notification, not the order.
fn publish_created(order: &Order, event: &OrderCreated) {
    let mut headers = HashMap::new();
    headers.insert("content-type".to_owned(), "application/json".to_owned());
    let cx = order
        .base
        .telemetry
        .messaging(QUEUE_SYSTEM)
        .producer_span(ORDER_CREATED, &mut MapInjector(&mut headers));
    let payload = match serde_json::to_vec(event) {
        Ok(p) => p,
        Err(e) => {
            fail(&cx, "serialize", e.to_string());
            return;
        }
    };
    match order.queue.publish(ORDER_CREATED, headers, payload) {
        Ok(id) => {
            cx.span().set_attribute(opentelemetry::KeyValue::new(
                "messaging.message.id",
                id.to_string(),
            ));
            cx.span().end();
        }
        Err(err) => {
            let _attached = cx.clone().attach();
            tracing::error!(order_id = %event.order_id, error = %err, "order.created not published");
            fail(&cx, "queue_full", err.to_string());
        }
    }
}

/// Marks the span of `cx` as failed and ends it.
pub(crate) fn fail(cx: &opentelemetry::Context, error_type: &'static str, message: String) {
    let span = cx.span();
    span.set_attribute(opentelemetry::KeyValue::new("error.type", error_type));
    span.set_status(opentelemetry::trace::Status::error(message));
    span.end();
}
