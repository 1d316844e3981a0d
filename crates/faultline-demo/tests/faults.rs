//! Each fault type, injected through the services' admin endpoints into a running demo,
//! leaves its signature in the spans read back through the query API; clearing it restores
//! normal traces, and the ledger holds the ground truth.

mod support;

use std::time::{Duration, Instant};

use faultline_demo::fault::{FaultKind, FaultRequest};
use support::{Harness, Trace};

/// After a clear, checkouts succeed again and their traces have no error span.
async fn assert_restored(h: &Harness) -> Trace {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, trace_id) = h.checkout().await;
        if status == 201 {
            let t = h.complete_checkout_trace(&trace_id).await;
            assert!(t.spans.iter().all(|s| !s.error), "{}", t.describe());
            return t;
        }
        assert!(Instant::now() < deadline, "checkouts still fail ({status})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn inject(h: &Harness, service: &str, request: FaultRequest) -> u64 {
    h.admin(service)
        .inject(&request)
        .await
        .expect("injected")
        .id
}

async fn clear(h: &Harness, service: &str, id: u64) {
    let cleared = h.admin(service).clear(None).await.expect("cleared");
    assert_eq!(cleared.len(), 1);
    assert_eq!(cleared[0].id, id);
    assert!(cleared[0].ended_at.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_leaves_its_signature_and_clearing_restores() {
    let h = Harness::start().await;
    let baseline = assert_restored(&h).await;
    let baseline_charge = baseline.expect("payment", "POST /charges").duration;
    assert!(
        baseline_charge < Duration::from_millis(250),
        "{}",
        baseline.describe()
    );

    // Latency on a route: payment's /charges is slow.
    let id = inject(
        &h,
        "payment",
        FaultRequest::new(FaultKind::Latency {
            fixed_ms: 300,
            jitter_ms: 50,
        })
        .on_route("/charges"),
    )
    .await;
    let (status, trace_id) = h.checkout().await;
    assert_eq!(status, 201);
    let t = h.complete_checkout_trace(&trace_id).await;
    assert!(t.expect("payment", "POST /charges").duration >= Duration::from_millis(300));
    assert!(t.client("payment", "payment-provider").duration < Duration::from_millis(250));
    clear(&h, "payment", id).await;
    let t = assert_restored(&h).await;
    assert!(t.expect("payment", "POST /charges").duration < Duration::from_millis(250));

    // Latency on a dependency: order's calls to payment are slow inside its client span.
    let id = inject(
        &h,
        "order",
        FaultRequest::new(FaultKind::Latency {
            fixed_ms: 250,
            jitter_ms: 0,
        })
        .on_dependency("payment"),
    )
    .await;
    let (_, trace_id) = h.checkout().await;
    let t = h.complete_checkout_trace(&trace_id).await;
    let call = t.client("order", "payment");
    let served = t.expect("payment", "POST /charges");
    assert!(
        call.duration >= served.duration + Duration::from_millis(250),
        "{}",
        t.describe()
    );
    clear(&h, "order", id).await;
    assert_restored(&h).await;

    // Error rate on a gRPC service: inventory answers UNAVAILABLE.
    let id = inject(
        &h,
        "inventory",
        FaultRequest::new(FaultKind::Errors { rate: 1.0 }),
    )
    .await;
    let (status, trace_id) = h.checkout().await;
    assert_eq!(status, 502);
    let t = h
        .trace_until(&trace_id, Duration::from_secs(20), |t| {
            t.find("inventory", "faultline.demo.v1.Inventory/Reserve")
                .is_some()
                && t.find("gateway", "POST /api/checkout").is_some()
        })
        .await;
    let reserve = t.expect("inventory", "faultline.demo.v1.Inventory/Reserve");
    assert!(reserve.error, "{}", t.describe());
    assert_eq!(reserve.tag_i64("rpc.grpc.status_code"), Some(14));
    assert!(t.expect("gateway", "POST /api/checkout").error);
    assert!(
        t.find("payment", "POST /charges").is_none(),
        "no charge after a failed reservation"
    );
    clear(&h, "inventory", id).await;
    assert_restored(&h).await;

    // Error rate on an HTTP service: payment answers 500.
    let id = inject(
        &h,
        "payment",
        FaultRequest::new(FaultKind::Errors { rate: 1.0 }),
    )
    .await;
    let (status, trace_id) = h.checkout().await;
    assert_eq!(status, 502);
    let t = h
        .trace_until(&trace_id, Duration::from_secs(20), |t| {
            t.find("payment", "POST /charges").is_some()
        })
        .await;
    let charge = t.expect("payment", "POST /charges");
    assert!(charge.error);
    assert_eq!(charge.tag_i64("http.response.status_code"), Some(500));
    assert!(t.client("order", "payment").error);
    clear(&h, "payment", id).await;
    assert_restored(&h).await;

    // DB pool exhaustion: every connection held, queries wait for one and time out.
    let id = inject(
        &h,
        "inventory",
        FaultRequest::new(FaultKind::DbPoolExhaustion { connections: 0 }),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let t = loop {
        let (status, trace_id) = h.checkout().await;
        if status == 502 {
            break h
                .trace_until(&trace_id, Duration::from_secs(20), |t| {
                    t.spans
                        .iter()
                        .any(|s| s.tags.contains_key("db.system.name"))
                })
                .await;
        }
        assert!(Instant::now() < deadline, "the pool never ran out");
    };
    let db = t
        .spans
        .iter()
        .find(|s| s.tags.contains_key("db.system.name"))
        .expect("a database span");
    assert!(db.error, "{}", t.describe());
    assert_eq!(db.tag_str("error.type"), Some("pool.acquire"));
    let waited = db
        .tag_f64("db.client.connection.wait_time")
        .expect("pool wait attribute");
    assert!(waited >= 0.9, "waited only {waited}s for a connection");
    clear(&h, "inventory", id).await;
    let t = assert_restored(&h).await;
    for span in t
        .spans
        .iter()
        .filter(|s| s.tags.contains_key("db.system.name"))
    {
        assert!(
            span.tag_f64("db.client.connection.wait_time")
                .unwrap_or(f64::MAX)
                < 0.5
        );
    }

    // Slow query: every statement holds its connection 200ms longer.
    let id = inject(
        &h,
        "inventory",
        FaultRequest::new(FaultKind::SlowQuery { delay_ms: 200 }),
    )
    .await;
    let (status, trace_id) = h.checkout().await;
    assert_eq!(status, 201);
    let t = h.complete_checkout_trace(&trace_id).await;
    let db: Vec<_> = t
        .spans
        .iter()
        .filter(|s| s.tags.contains_key("db.system.name"))
        .collect();
    assert!(!db.is_empty());
    assert!(
        db.iter().all(|s| s.duration >= Duration::from_millis(200)),
        "{}",
        t.describe()
    );
    clear(&h, "inventory", id).await;
    assert_restored(&h).await;

    // Third-party timeout: the provider stops answering; payment's client span times out.
    let id = inject(
        &h,
        "payment",
        FaultRequest::new(FaultKind::ThirdPartyTimeout),
    )
    .await;
    let (status, trace_id) = h.checkout().await;
    assert_eq!(status, 502);
    let t = h
        .trace_until(&trace_id, Duration::from_secs(20), |t| {
            t.spans
                .iter()
                .any(|s| s.service == "payment" && s.kind == "client")
        })
        .await;
    let call = t.client("payment", "payment-provider");
    assert!(call.error);
    assert_eq!(call.tag_str("error.type"), Some("timeout"));
    assert!(call.duration >= faultline_demo::PROVIDER_TIMEOUT - Duration::from_millis(50));
    clear(&h, "payment", id).await;
    assert_restored(&h).await;

    // Dependency down: payment's listener closes; order's call is refused.
    let id = inject(&h, "payment", FaultRequest::new(FaultKind::Down)).await;
    let payment_addr = h.demo.shop.service("payment").expect("payment").addr;
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(payment_addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "payment's listener did not close"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let t = loop {
        let (status, trace_id) = h.checkout().await;
        assert_eq!(status, 502);
        let t = h
            .trace_until(&trace_id, Duration::from_secs(20), |t| {
                t.spans
                    .iter()
                    .any(|s| s.tag_str("peer.service") == Some("payment"))
            })
            .await;
        // A pooled connection opened before the fault may still deliver one last request.
        if t.client("order", "payment").tag_str("error.type") == Some("connect") {
            break t;
        }
        assert!(Instant::now() < deadline, "never refused: {}", t.describe());
    };
    assert!(t.client("order", "payment").error);
    assert!(t.find("payment", "POST /charges").is_none());
    clear(&h, "payment", id).await;
    assert_restored(&h).await;

    // CPU saturation: order's requests each need 150ms on its one simulated core.
    let id = inject(
        &h,
        "order",
        FaultRequest::new(FaultKind::CpuSaturation { burn_ms: 150 }),
    )
    .await;
    let (status, trace_id) = h.checkout().await;
    assert_eq!(status, 201);
    let t = h.complete_checkout_trace(&trace_id).await;
    let order = t.expect("order", "POST /orders");
    let children: Duration = [
        t.grpc_client("order", "Reserve"),
        t.client("order", "payment"),
    ]
    .iter()
    .map(|s| s.duration)
    .sum();
    assert!(
        order.duration >= children + Duration::from_millis(150),
        "{}",
        t.describe()
    );
    clear(&h, "order", id).await;
    assert_restored(&h).await;

    // Queue consumer stall: the order is placed, its notification waits until the stall ends.
    let id = inject(&h, "notification", FaultRequest::new(FaultKind::QueueStall)).await;
    let (status, trace_id) = h.checkout().await;
    assert_eq!(status, 201);
    let t = h
        .trace_until(&trace_id, Duration::from_secs(20), |t| {
            t.find("order", "send order.created").is_some()
        })
        .await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    h.demo.shop.flush().await;
    let (_, json) = h.get_json(&format!("/api/traces/{trace_id}")).await;
    let consumed = json.to_string().contains("process order.created");
    assert!(!consumed, "consumed during a stall: {}", t.describe());
    clear(&h, "notification", id).await;
    let t = h.complete_checkout_trace(&trace_id).await;
    let process = t.expect("notification", "process order.created");
    let queued = process
        .tag_i64("messaging.message.queue_time_ms")
        .expect("queue time");
    assert!(queued >= 1_000, "queued only {queued}ms");
    t.assert_child(process, t.expect("order", "send order.created"));
    assert_restored(&h).await;

    // The ledger holds every injection, each with its end.
    let ledger = h.demo.shop.ledger.records();
    assert_eq!(ledger.len(), 10);
    assert!(ledger
        .iter()
        .all(|r| r.ended_at.is_some() && r.end_reason.as_deref() == Some("cleared")));
    let file = std::fs::read_to_string(h.demo.data_dir.join("faults.jsonl")).expect("ledger file");
    assert_eq!(
        file.lines().count(),
        20,
        "a start and an end line per fault"
    );
    let listing = h.admin("inventory").list().await.expect("list");
    assert!(listing.active.is_empty());
    assert_eq!(listing.history.len(), 3);
    h.demo.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_endpoint_refuses_nonsense_and_expires_faults() {
    let h = Harness::start().await;
    let admin = h.admin("user");
    let err = admin
        .inject(&FaultRequest::new(FaultKind::DbPoolExhaustion {
            connections: 0,
        }))
        .await
        .expect_err("user has no database");
    assert!(err.to_string().contains("422"), "{err}");
    let err = admin
        .inject(&FaultRequest::new(FaultKind::Errors { rate: 7.0 }))
        .await
        .expect_err("rate above 1");
    assert!(err.to_string().contains("400"), "{err}");
    let raw = h
        .http
        .post(format!(
            "{}/admin/faults",
            h.demo.shop.service("user").expect("user").admin_url()
        ))
        .body("{\"fault\":{\"kind\":\"down\"},\"surprise\":true}")
        .send()
        .await
        .expect("answer");
    assert_eq!(raw.status(), 400);
    assert!(admin.clear(Some(999)).await.is_err());

    let record = admin
        .inject(&FaultRequest::new(FaultKind::Down).lasting(Duration::from_millis(300)))
        .await
        .expect("injected");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listing = admin.list().await.expect("list");
        if listing.active.is_empty() {
            let ended = &listing.history[0];
            assert_eq!(ended.id, record.id);
            assert_eq!(ended.end_reason.as_deref(), Some("expired"));
            break;
        }
        assert!(Instant::now() < deadline, "the fault never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Back up: the gateway's calls to user work again.
    assert_restored(&h).await;
    h.demo.shutdown().await.expect("clean shutdown");
}
