//! `user`: profile lookups (the gateway's "auth" check, the notification's e-mail address)
//! and shopping carts, kept in memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::{error_response, parse_json, Rejection, ServiceBase};
use crate::grpc::LineItem;

/// Users `1..=USER_COUNT` exist.
pub const USER_COUNT: u32 = 1_000;
/// Most lines in one cart.
const MAX_CART_LINES: usize = 50;

#[derive(Serialize)]
struct Profile {
    id: u32,
    name: String,
    email: String,
    tier: &'static str,
}

#[derive(Default)]
struct Carts {
    // Keys are valid user ids only, so the map is bounded by USER_COUNT.
    by_user: Mutex<HashMap<u32, Vec<LineItem>>>,
}

pub(crate) fn router(base: &ServiceBase) -> Router {
    let carts = Arc::new(Carts::default());
    base.traced(
        Router::new()
            .route("/users/{id}", get(profile))
            .route("/users/{id}/cart", get(cart).post(add_to_cart))
            .with_state(carts),
    )
}

fn user_id(raw: &str) -> Result<u32, Rejection> {
    match raw.parse::<u32>() {
        Ok(id) if (1..=USER_COUNT).contains(&id) => Ok(id),
        _ => Err(Rejection(StatusCode::NOT_FOUND, format!("no user {raw:?}"))),
    }
}

async fn profile(Path(id): Path<String>) -> Response {
    let id = match user_id(&id) {
        Ok(id) => id,
        Err(r) => return r.into_response(),
    };
    tracing::debug!(user_id = id, "profile looked up");
    Json(Profile {
        id,
        name: format!("Customer {id}"),
        email: format!("customer{id}@shop.example"),
        tier: if id % 10 == 0 { "gold" } else { "standard" },
    })
    .into_response()
}

async fn cart(State(carts): State<Arc<Carts>>, Path(id): Path<String>) -> Response {
    let id = match user_id(&id) {
        Ok(id) => id,
        Err(r) => return r.into_response(),
    };
    let lines = carts
        .by_user
        .lock()
        .map(|c| c.get(&id).cloned().unwrap_or_default())
        .unwrap_or_default();
    Json(lines).into_response()
}

async fn add_to_cart(
    State(carts): State<Arc<Carts>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let id = match user_id(&id) {
        Ok(id) => id,
        Err(r) => return r.into_response(),
    };
    let item: LineItem = match parse_json(&body) {
        Ok(i) => i,
        Err(r) => return r.into_response(),
    };
    if item.sku.is_empty() || item.sku.len() > 64 || !(1..=100).contains(&item.quantity) {
        return error_response(
            StatusCode::BAD_REQUEST,
            "sku must be 1 to 64 bytes and quantity 1 to 100".into(),
        );
    }
    let Ok(mut by_user) = carts.by_user.lock() else {
        return error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cart store broken".into(),
        );
    };
    let lines = by_user.entry(id).or_default();
    if let Some(line) = lines.iter_mut().find(|l| l.sku == item.sku) {
        line.quantity = line.quantity.saturating_add(item.quantity).min(100);
    } else {
        if lines.len() >= MAX_CART_LINES {
            // A full cart starts over: the load generator never checks out most carts.
            lines.clear();
        }
        lines.push(item);
    }
    tracing::info!(user_id = id, lines = lines.len(), "cart updated");
    Json(lines.clone()).into_response()
}
