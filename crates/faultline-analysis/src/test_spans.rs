//! Handcrafted spans for unit tests.

use std::sync::Arc;

use faultline_model::{
    AttributeValue, KeyValue, Resource, Span, SpanId, SpanKind, TraceId, UnixNanos,
};

/// A span of `service` in trace `[trace; 16]` with ID `[id; 8]`, from `start_us` to `end_us`
/// microseconds.
pub fn span(
    service: &str,
    trace: u8,
    id: u8,
    parent: Option<u8>,
    kind: SpanKind,
    start_us: u64,
    end_us: u64,
) -> Span {
    Span {
        trace_id: TraceId([trace; 16]),
        span_id: SpanId([id; 8]),
        parent_span_id: parent.map(|p| SpanId([p; 8])),
        name: format!("op-{id}").into(),
        kind,
        start: UnixNanos(start_us * 1_000),
        end: UnixNanos(end_us * 1_000),
        resource: Arc::new(Resource {
            attributes: vec![KeyValue::new(
                "service.name",
                AttributeValue::String(service.into()),
            )],
            dropped_attributes_count: 0,
            schema_url: String::new(),
        }),
        ..Default::default()
    }
}

/// How one synthetic shop request behaves: times in microseconds.
#[derive(Clone, Debug)]
pub struct Shop {
    pub gateway_self: u64,
    pub order_self: u64,
    pub inventory_self: u64,
    pub db: u64,
    pub pool_wait_secs: f64,
    pub payment_self: u64,
    pub provider: u64,
    /// inventory's server span fails by itself.
    pub inventory_error: bool,
    /// The provider call fails (timeout or refused).
    pub provider_error: bool,
    /// inventory is down: order's call fails fast without a server span.
    pub inventory_down: bool,
    /// order gives up waiting for inventory (its client span fails, inventory's does not).
    pub order_gives_up: bool,
    /// notification's own time consuming the order's message, after the checkout answered.
    pub notification_self: u64,
    /// Extra network time on order's calls to inventory, half each way: order's client span
    /// grows, inventory's server span does not.
    pub inventory_network: u64,
}

impl Default for Shop {
    fn default() -> Self {
        Self {
            gateway_self: 2_000,
            order_self: 3_000,
            inventory_self: 1_000,
            db: 2_000,
            pool_wait_secs: 0.0002,
            payment_self: 1_000,
            provider: 8_000,
            inventory_error: false,
            provider_error: false,
            inventory_down: false,
            order_gives_up: false,
            notification_self: 2_000,
            inventory_network: 0,
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn shop_span(
    service: &str,
    name: &str,
    trace: u64,
    id: u64,
    parent: Option<u64>,
    kind: SpanKind,
    start_us: u64,
    len_us: u64,
) -> Span {
    let mut s = span(service, 0, 0, None, kind, start_us, start_us + len_us);
    let mut t = [0u8; 16];
    t[..8].copy_from_slice(&trace.to_be_bytes());
    t[8] = 0xfa;
    s.trace_id = TraceId(t);
    s.span_id = SpanId((trace << 8 | id).to_be_bytes());
    s.parent_span_id = parent.map(|p| SpanId((trace << 8 | p).to_be_bytes()));
    s.name = name.into();
    s
}

fn fail(s: &mut Span, message: &str) {
    s.status.code = faultline_model::StatusCode::Error;
    s.status.message = message.to_owned();
}

/// One checkout through gateway → order → (inventory → sqlite, payment → provider), starting
/// at `start_us`; returns the spans.
pub fn shop_trace(trace: u64, start_us: u64, shop: &Shop) -> Vec<Span> {
    const NET: u64 = 100;
    let inv_server = shop.inventory_self + shop.db;
    let inv_client = if shop.inventory_down {
        300
    } else {
        inv_server + 2 * NET + shop.inventory_network
    };
    let pay_server = shop.payment_self + shop.provider;
    let pay_client = pay_server + 2 * NET;
    let order_server = shop.order_self + inv_client + pay_client;
    let gw_client = order_server + 2 * NET;
    let gw_server = shop.gateway_self + gw_client;

    let mut out = Vec::new();
    let s0 = start_us;
    let mut gws = shop_span(
        "gateway",
        "GET /checkout",
        trace,
        1,
        None,
        SpanKind::Server,
        s0,
        gw_server,
    );
    let s1 = s0 + shop.gateway_self / 2;
    let mut gwc = shop_span(
        "gateway",
        "POST /orders",
        trace,
        2,
        Some(1),
        SpanKind::Client,
        s1,
        gw_client,
    );
    gwc.attributes.push(KeyValue::new(
        "peer.service",
        AttributeValue::String("order".into()),
    ));
    let s2 = s1 + NET;
    let mut ords = shop_span(
        "order",
        "POST /orders",
        trace,
        3,
        Some(2),
        SpanKind::Server,
        s2,
        order_server,
    );
    let s3 = s2 + shop.order_self / 2;
    let mut oic = shop_span(
        "order",
        "GetProduct",
        trace,
        4,
        Some(3),
        SpanKind::Client,
        s3,
        inv_client,
    );
    oic.attributes.push(KeyValue::new(
        "peer.service",
        AttributeValue::String("inventory".into()),
    ));
    let mut failed = false;
    if shop.inventory_down {
        fail(&mut oic, "connection refused");
        failed = true;
    } else {
        let s4 = s3 + NET + shop.inventory_network / 2;
        let mut invs = shop_span(
            "inventory",
            "GetProduct",
            trace,
            5,
            Some(4),
            SpanKind::Server,
            s4,
            inv_server,
        );
        let s5 = s4 + shop.inventory_self / 2;
        let mut db = shop_span(
            "inventory",
            "SELECT products",
            trace,
            6,
            Some(5),
            SpanKind::Client,
            s5,
            shop.db,
        );
        db.attributes.push(KeyValue::new(
            "db.system.name",
            AttributeValue::String("sqlite".into()),
        ));
        db.attributes.push(KeyValue::new(
            "db.client.connection.wait_time",
            AttributeValue::Double(shop.pool_wait_secs),
        ));
        if shop.inventory_error {
            fail(&mut invs, "boom");
            fail(&mut oic, "inventory answered 500");
            failed = true;
        }
        if shop.order_gives_up {
            fail(&mut oic, "deadline exceeded");
            failed = true;
        }
        out.push(invs);
        out.push(db);
    }
    let s6 = s3 + inv_client;
    let mut opc = shop_span(
        "order",
        "POST /charges",
        trace,
        7,
        Some(3),
        SpanKind::Client,
        s6,
        pay_client,
    );
    opc.attributes.push(KeyValue::new(
        "peer.service",
        AttributeValue::String("payment".into()),
    ));
    let s7 = s6 + NET;
    let mut pays = shop_span(
        "payment",
        "POST /charges",
        trace,
        8,
        Some(7),
        SpanKind::Server,
        s7,
        pay_server,
    );
    let s8 = s7 + shop.payment_self / 2;
    let mut prov = shop_span(
        "payment",
        "POST",
        trace,
        9,
        Some(8),
        SpanKind::Client,
        s8,
        shop.provider,
    );
    prov.attributes.push(KeyValue::new(
        "server.address",
        AttributeValue::String("pay-provider".into()),
    ));
    if shop.provider_error {
        fail(&mut prov, "timed out");
        fail(&mut pays, "payment provider unreachable");
        fail(&mut opc, "payment answered 502");
        failed = true;
    }
    if failed {
        fail(&mut ords, "checkout failed");
        fail(&mut gwc, "order answered 500");
        fail(&mut gws, "checkout failed");
    }
    // order publishes an event before answering; notification consumes it later (async).
    let publish_at = s6 + pay_client;
    let mut publish = shop_span(
        "order",
        "publish order.created",
        trace,
        10,
        Some(3),
        SpanKind::Producer,
        publish_at,
        200,
    );
    publish.attributes.push(KeyValue::new(
        "messaging.system",
        AttributeValue::String("queue".into()),
    ));
    let consume_at = s2 + order_server + 5_000;
    let consume = shop_span(
        "notification",
        "process order.created",
        trace,
        11,
        Some(10),
        SpanKind::Consumer,
        consume_at,
        shop.notification_self,
    );
    out.extend([gws, gwc, ords, oic, opc, pays, prov, publish, consume]);
    out
}
