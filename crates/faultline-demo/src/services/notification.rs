//! `notification`: consumes `order.created` from the queue and "sends" a confirmation, looking
//! up the customer's address at `user`. Its HTTP port answers queue statistics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use opentelemetry::trace::{FutureExt as _, TraceContextExt};
use reqwest_middleware::ClientWithMiddleware;

use super::order::OrderCreated;
use super::ServiceBase;
use crate::fault::FaultKind;
use crate::queue::{QueueMessage, QueueReceiver, QUEUE_SYSTEM};
use crate::DemoError;
use faultline_instrument::propagation::MapExtractor;
use opentelemetry::KeyValue;

#[derive(Default)]
struct Stats {
    sent: AtomicU64,
    failed: AtomicU64,
}

pub(crate) fn start(
    base: &ServiceBase,
    queue: QueueReceiver,
    user_url: &str,
) -> Result<Router, DemoError> {
    let stats = Arc::new(Stats::default());
    let user = base.http_client("user", Duration::from_secs(2))?;
    tokio::spawn(base.in_background(consume(
        base.clone(),
        queue,
        user,
        user_url.trim_end_matches('/').to_owned(),
        Arc::clone(&stats),
    )));
    Ok(base.traced(
        Router::new()
            .route("/notifications/stats", get(stats_handler))
            .with_state(stats),
    ))
}

async fn stats_handler(State(stats): State<Arc<Stats>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "sent": stats.sent.load(Ordering::Relaxed),
        "failed": stats.failed.load(Ordering::Relaxed),
    }))
}

fn stalled(faults: &crate::fault::FaultRegistry) -> bool {
    faults
        .find(|k| matches!(k, FaultKind::QueueStall).then_some(()))
        .is_some()
}

async fn consume(
    base: ServiceBase,
    mut queue: QueueReceiver,
    user: ClientWithMiddleware,
    user_url: String,
    stats: Arc<Stats>,
) {
    let mut shutdown = base.shutdown.clone();
    let messaging = base.telemetry.messaging(QUEUE_SYSTEM);
    loop {
        if stalled(&base.faults) {
            tracing::warn!(waiting = queue.depth(), "consumer stalled (injected fault)");
            super::wait_until(&base.faults, &shutdown, |f| !stalled(f)).await;
            tracing::info!(waiting = queue.depth(), "consumer resumed");
        }
        let message = tokio::select! {
            m = queue.recv() => m,
            _ = shutdown.wait_for(|s| *s) => None,
        };
        let Some(message) = message else {
            return;
        };
        // A stall injected while this message was being awaited still holds it back.
        if stalled(&base.faults) {
            super::wait_until(&base.faults, &shutdown, |f| !stalled(f)).await;
        }
        let cx = messaging.consumer_span(&message.topic, &MapExtractor(&message.headers));
        let queued = std::time::SystemTime::now()
            .duration_since(message.published_at)
            .unwrap_or_default();
        cx.span().set_attribute(KeyValue::new(
            "messaging.message.id",
            message.id.to_string(),
        ));
        cx.span().set_attribute(KeyValue::new(
            "messaging.message.queue_time_ms",
            i64::try_from(queued.as_millis()).unwrap_or(i64::MAX),
        ));
        let result = handle(&base, &user, &user_url, &message)
            .with_context(cx.clone())
            .await;
        match result {
            Ok(()) => {
                stats.sent.fetch_add(1, Ordering::Relaxed);
                cx.span().end();
            }
            Err(reason) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                let _attached = cx.clone().attach();
                tracing::error!(%reason, "confirmation not sent");
                super::order::fail(&cx, "notification_failed", reason);
            }
        }
    }
}

async fn handle(
    base: &ServiceBase,
    user: &ClientWithMiddleware,
    user_url: &str,
    message: &QueueMessage,
) -> Result<(), String> {
    let event: OrderCreated =
        serde_json::from_slice(&message.payload).map_err(|e| format!("bad message: {e}"))?;
    if let Some(burn) = base.faults.cpu_burn("/consume") {
        base.cpu.burn(burn).await;
    }
    let response = user
        .get(format!("{user_url}/users/{}", event.user_id))
        .send()
        .await
        .map_err(|e| format!("user lookup: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("user lookup answered {}", response.status()));
    }
    // Handing the e-mail to the outbox.
    tokio::time::sleep(Duration::from_millis(fastrand::u64(1..=3))).await;
    tracing::info!(order_id = %event.order_id, user_id = event.user_id, "confirmation sent");
    Ok(())
}
