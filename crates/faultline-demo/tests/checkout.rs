//! A checkout through the running demo, read back through the query API: every service, every
//! hop and every parent link.

mod support;

use std::time::Duration;

use support::Harness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_trace_crosses_every_hop_with_correct_parents() {
    let h = Harness::start().await;
    let (status, trace_id) = h.checkout().await;
    assert_eq!(status, 201);
    assert_eq!(
        trace_id.len(),
        32,
        "X-Trace-Id is a W3C trace id: {trace_id}"
    );
    let t = h.complete_checkout_trace(&trace_id).await;

    // The gateway's X-Trace-Id finds that exact trace, and the gateway is its root.
    let root = t.expect("gateway", "POST /api/checkout");
    assert_eq!(root.kind, "server");
    assert_eq!(root.parent, None, "{}", t.describe());
    assert!(t.spans.iter().all(|s| !s.error), "{}", t.describe());

    // gateway → user (auth) and gateway → order over HTTP.
    let to_user = t.client("gateway", "user");
    t.assert_child(to_user, root);
    t.assert_child(t.expect("user", "GET /users/{id}"), to_user);
    let to_order = t.client("gateway", "order");
    t.assert_child(to_order, root);
    let order = t.expect("order", "POST /orders");
    t.assert_child(order, to_order);

    // order → inventory over gRPC → SQLite.
    let to_inventory = t.grpc_client("order", "Reserve");
    t.assert_child(to_inventory, order);
    let reserve = t.expect("inventory", "faultline.demo.v1.Inventory/Reserve");
    t.assert_child(reserve, to_inventory);
    assert_eq!(reserve.tag_i64("rpc.grpc.status_code"), Some(0));
    let db: Vec<_> = t
        .spans
        .iter()
        .filter(|s| s.tag_str("db.system.name") == Some("sqlite"))
        .collect();
    // Two items: an UPDATE and an INSERT each, then the COMMIT.
    assert_eq!(db.len(), 5, "{}", t.describe());
    for span in &db {
        assert_eq!(span.service, "inventory");
        assert_eq!(span.kind, "client");
        t.assert_child(span, reserve);
        assert!(span.tag_f64("db.client.connection.wait_time").is_some());
        assert!(span.tag_str("db.query.text").is_some());
    }
    assert!(t.find("inventory", "UPDATE products").is_some());
    assert!(t.find("inventory", "INSERT reservations").is_some());
    assert!(t.find("inventory", "COMMIT").is_some());

    // order → payment → the uninstrumented third party.
    let to_payment = t.client("order", "payment");
    t.assert_child(to_payment, order);
    let charge = t.expect("payment", "POST /charges");
    t.assert_child(charge, to_payment);
    let to_provider = t.client("payment", "payment-provider");
    t.assert_child(to_provider, charge);
    assert!(
        t.spans.iter().all(|s| s.service != "payment-provider"),
        "the third party is not instrumented"
    );
    assert_eq!(charge.tag_str("circuit_breaker.state"), Some("closed"));

    // order → queue → notification, trace context carried in the message headers.
    let publish = t.expect("order", "send order.created");
    assert_eq!(publish.kind, "producer");
    t.assert_child(publish, order);
    let process = t.expect("notification", "process order.created");
    assert_eq!(process.kind, "consumer");
    t.assert_child(process, publish);
    let lookup = t.client("notification", "user");
    t.assert_child(lookup, process);

    // Every service appears in the service list.
    let (_, services) = h.get_json("/api/services").await;
    let services: Vec<&str> = services["data"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    for name in faultline_demo::shop::SERVICES {
        assert!(services.contains(&name), "{name} missing from {services:?}");
    }
    h.demo.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browse_and_cart_answers_carry_their_trace_id() {
    let h = Harness::start().await;
    for path in [
        "/api/products?limit=5",
        "/api/products/SKU-0003",
        "/api/cart/5",
    ] {
        let response = h
            .http
            .get(format!("{}{path}", h.gateway()))
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status(), 200, "{path}");
        let trace_id = response
            .headers()
            .get("x-trace-id")
            .and_then(|v| v.to_str().ok())
            .expect("X-Trace-Id")
            .to_owned();
        let t = h
            .trace_until(&trace_id, Duration::from_secs(20), |t| {
                t.spans
                    .iter()
                    .any(|s| s.service == "gateway" && s.kind == "server")
                    && t.spans
                        .iter()
                        .any(|s| s.service != "gateway" && s.kind == "server")
            })
            .await;
        let root = t.spans.iter().find(|s| s.parent.is_none()).expect("root");
        assert_eq!(root.service, "gateway", "{}", t.describe());
    }
    // Hostile input is refused with a clear 4xx, not a crash.
    for (path, body) in [
        ("/api/checkout", "not json"),
        ("/api/checkout", r#"{"user_id":1,"items":[],"extra":1}"#),
        ("/api/cart/1/items", r#"{"sku":"","quantity":0}"#),
    ] {
        let response = h
            .http
            .post(format!("{}{path}", h.gateway()))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status(), 400, "{path} {body}");
    }
    let unknown = h
        .http
        .get(format!("{}/api/products/SKU-9999", h.gateway()))
        .send()
        .await
        .expect("answer");
    assert_eq!(unknown.status(), 404);
    h.demo.shutdown().await.expect("clean shutdown");
}
