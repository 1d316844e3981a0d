//! The simulated third-party payment provider: a plain, uninstrumented listener, so the shop's
//! traces show it only through `payment`'s CLIENT spans, as a real external API would appear.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use tokio::sync::watch;

use super::wait_until;
use crate::fault::{FaultKind, FaultRegistry};

#[derive(Clone)]
struct Provider {
    /// `payment`'s faults: a third-party timeout is injected there, where it is observed.
    faults: FaultRegistry,
    shutdown: watch::Receiver<bool>,
}

/// The longest the provider hangs during a third-party timeout, should nobody clear it.
const MAX_HANG: Duration = Duration::from_secs(60);

pub(crate) fn router(payment_faults: FaultRegistry, shutdown: watch::Receiver<bool>) -> Router {
    Router::new()
        .route("/v1/charges", post(charge))
        .with_state(Provider {
            faults: payment_faults,
            shutdown,
        })
}

async fn charge(State(provider): State<Provider>, body: Bytes) -> Response {
    let hanging = |f: &FaultRegistry| {
        f.find(|k| matches!(k, FaultKind::ThirdPartyTimeout).then_some(()))
            .is_some()
    };
    if hanging(&provider.faults) {
        // Never answer while the fault lasts: the caller's timeout fires first.
        let _ = tokio::time::timeout(
            MAX_HANG,
            wait_until(&provider.faults, &provider.shutdown, |f| !hanging(f)),
        )
        .await;
        return (StatusCode::GATEWAY_TIMEOUT, "upstream bank timed out\n").into_response();
    }
    if serde_json::from_slice::<serde_json::Value>(&body).is_err() {
        return (StatusCode::BAD_REQUEST, "body must be JSON\n").into_response();
    }
    // A bank round trip.
    tokio::time::sleep(Duration::from_millis(fastrand::u64(15..=35))).await;
    Json(serde_json::json!({
        "id": format!("ch_{:016x}", fastrand::u64(..)),
        "status": "succeeded",
    }))
    .into_response()
}
