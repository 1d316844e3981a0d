//! `inventory`: products and stock in SQLite behind a small, bounded connection pool, served
//! over gRPC. Every statement gets a database span carrying how long it waited for its
//! connection, so an exhausted pool is visible in traces.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use opentelemetry::trace::{FutureExt as _, TraceContextExt};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{Connection, Sqlite};
use tonic::Status;

use super::ServiceBase;
use crate::fault::FaultKind;
use crate::grpc::{
    GetProductRequest, ListProductsRequest, Product, ProductList, ReserveReply, ReserveRequest,
    UnaryMethod, GET_PRODUCT, LIST_PRODUCTS, RESERVE,
};
use crate::spans;
use crate::DemoError;

/// Connections in the pool: few, so that exhausting it is real and quick.
pub const POOL_SIZE: u32 = 4;
/// How long a query waits for a connection before failing.
pub const POOL_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);
/// Products in the catalogue.
pub const PRODUCT_COUNT: u32 = 50;

const SELECT_PRODUCTS: &str =
    "SELECT sku, name, price_cents, stock FROM products ORDER BY sku LIMIT ?";
const SELECT_PRODUCT: &str = "SELECT sku, name, price_cents, stock FROM products WHERE sku = ?";
const RESERVE_STOCK: &str =
    "UPDATE products SET stock = stock - ? WHERE sku = ? AND stock >= ? RETURNING price_cents";
const INSERT_RESERVATION: &str =
    "INSERT INTO reservations (order_id, sku, quantity, reserved_at_ms) VALUES (?, ?, ?, ?)";
const COMMIT: &str = "COMMIT";

type ProductRow = (String, String, i64, i64);

pub(crate) struct Inventory {
    base: ServiceBase,
    pool: SqlitePool,
}

/// Opens (creating and seeding if needed) the database at `path`.
pub(crate) async fn open_database(path: &Path) -> Result<SqlitePool, DemoError> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(POOL_SIZE)
        .acquire_timeout(POOL_ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS products (sku TEXT PRIMARY KEY, name TEXT NOT NULL, \
         price_cents INTEGER NOT NULL, stock INTEGER NOT NULL)",
    )
    .execute(&pool)
    .await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS reservations (order_id TEXT NOT NULL, sku TEXT NOT NULL, \
         quantity INTEGER NOT NULL, reserved_at_ms INTEGER NOT NULL)",
    )
    .execute(&pool)
    .await?;
    const NAMES: [&str; 10] = [
        "Teapot",
        "Lantern",
        "Notebook",
        "Backpack",
        "Scarf",
        "Mug",
        "Umbrella",
        "Candle",
        "Headphones",
        "Kite",
    ];
    for i in 1..=PRODUCT_COUNT {
        let name = format!("{} {}", NAMES[(i as usize) % NAMES.len()], i);
        sqlx::query(
            "INSERT OR IGNORE INTO products (sku, name, price_cents, stock) VALUES (?, ?, ?, ?)",
        )
        .bind(sku(i))
        .bind(name)
        .bind(i64::from(199 + (i * 137) % 9_800))
        .bind(1_000_000_000_i64)
        .execute(&pool)
        .await?;
    }
    Ok(pool)
}

/// The SKU of product `i`.
pub fn sku(i: u32) -> String {
    format!("SKU-{i:04}")
}

pub(crate) fn router(base: &ServiceBase, pool: SqlitePool) -> Router {
    let inventory = Arc::new(Inventory {
        base: base.clone(),
        pool,
    });
    tokio::spawn(hold_connections_while_exhausted(Arc::clone(&inventory)));
    let list = {
        let inv = Arc::clone(&inventory);
        move |r: ListProductsRequest| {
            let inv = Arc::clone(&inv);
            async move { inv.list(r).await }
        }
    };
    let get = {
        let inv = Arc::clone(&inventory);
        move |r: GetProductRequest| {
            let inv = Arc::clone(&inv);
            async move { inv.get(r).await }
        }
    };
    let reserve = {
        let inv = Arc::clone(&inventory);
        move |r: ReserveRequest| {
            let inv = Arc::clone(&inv);
            async move { inv.reserve(r).await }
        }
    };
    base.traced(
        Router::new()
            .route_service(LIST_PRODUCTS, UnaryMethod::new(list))
            .route_service(GET_PRODUCT, UnaryMethod::new(get))
            .route_service(RESERVE, UnaryMethod::new(reserve)),
    )
}

/// How many connections a pool-exhaustion fault wants held, if one is active.
fn connections_to_hold(faults: &crate::fault::FaultRegistry) -> Option<usize> {
    faults.find(|k| match k {
        FaultKind::DbPoolExhaustion { connections: 0 } => Some(POOL_SIZE as usize),
        FaultKind::DbPoolExhaustion { connections } => Some((*connections).min(POOL_SIZE) as usize),
        _ => None,
    })
}

/// Takes pool connections and keeps them while a pool-exhaustion fault lasts.
async fn hold_connections_while_exhausted(inventory: Arc<Inventory>) {
    let faults = inventory.base.faults.clone();
    let shutdown = inventory.base.shutdown.clone();
    let mut held: Vec<PoolConnection<Sqlite>> = Vec::new();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let wanted = connections_to_hold(&faults);
        match wanted {
            Some(n) if held.len() < n => {
                // Busy connections come back soon; keep taking them while the fault lasts.
                if let Ok(Ok(conn)) =
                    tokio::time::timeout(Duration::from_millis(250), inventory.pool.acquire()).await
                {
                    held.push(conn);
                    if held.len() == n {
                        tracing::warn!(held = n, "holding database connections (injected fault)");
                    }
                }
                continue;
            }
            Some(_) => {}
            None if !held.is_empty() => {
                tracing::info!(released = held.len(), "released held database connections");
                held.clear();
            }
            None => {}
        }
        super::wait_until(&faults, &shutdown, |f| connections_to_hold(f) != wanted).await;
    }
}

impl Inventory {
    /// A pooled connection and how long it took; a timeout is itself recorded as a failed
    /// database span, since that is the query the caller was trying to run.
    async fn connection(
        &self,
        operation: &'static str,
        table: &'static str,
        query: &'static str,
    ) -> Result<(PoolConnection<Sqlite>, Duration), Status> {
        let start = Instant::now();
        match self.pool.acquire().await {
            Ok(conn) => Ok((conn, start.elapsed())),
            Err(err) => {
                let cx = spans::start_query(
                    &self.base.telemetry,
                    operation,
                    table,
                    query,
                    start.elapsed(),
                );
                spans::fail(&cx, "pool_timeout", err.to_string());
                tracing::error!(error = %err, "no database connection");
                Err(Status::unavailable(format!("database unavailable: {err}")))
            }
        }
    }

    /// Runs one statement inside its database span, with the database faults applied.
    async fn traced<T>(
        &self,
        operation: &'static str,
        table: &'static str,
        query: &'static str,
        pool_wait: Duration,
        statement: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, Status> {
        let cx = spans::start_query(&self.base.telemetry, operation, table, query, pool_wait);
        let faults = &self.base.faults;
        let result = async {
            if let Some(delay) = faults.find(|k| match k {
                FaultKind::SlowQuery { delay_ms } => Some(Duration::from_millis(*delay_ms)),
                _ => None,
            }) {
                tokio::time::sleep(delay).await;
            }
            if let Some(latency) = faults.dependency_latency("db") {
                tokio::time::sleep(latency).await;
            }
            if faults.dependency_fails("db") {
                return Err(("db_error", "database error (injected fault)".to_owned()));
            }
            statement.await.map_err(|e| ("db_error", e.to_string()))
        }
        .with_context(cx.clone())
        .await;
        match result {
            Ok(value) => {
                cx.span().end();
                Ok(value)
            }
            Err((error_type, message)) => {
                spans::fail(&cx, error_type, message.clone());
                tracing::error!(error = %message, query, "query failed");
                Err(Status::internal(format!("database: {message}")))
            }
        }
    }

    async fn list(&self, request: ListProductsRequest) -> Result<ProductList, Status> {
        let limit = i64::from(request.limit.clamp(1, 50));
        let (mut conn, wait) = self
            .connection("SELECT", "products", SELECT_PRODUCTS)
            .await?;
        let rows: Vec<ProductRow> = self
            .traced(
                "SELECT",
                "products",
                SELECT_PRODUCTS,
                wait,
                sqlx::query_as(SELECT_PRODUCTS)
                    .bind(limit)
                    .fetch_all(&mut *conn),
            )
            .await?;
        Ok(ProductList {
            products: rows.into_iter().map(product).collect(),
        })
    }

    async fn get(&self, request: GetProductRequest) -> Result<Product, Status> {
        if request.sku.is_empty() || request.sku.len() > 64 {
            return Err(Status::invalid_argument("sku must be 1 to 64 bytes"));
        }
        let (mut conn, wait) = self
            .connection("SELECT", "products", SELECT_PRODUCT)
            .await?;
        let row: Option<ProductRow> = self
            .traced(
                "SELECT",
                "products",
                SELECT_PRODUCT,
                wait,
                sqlx::query_as(SELECT_PRODUCT)
                    .bind(&request.sku)
                    .fetch_optional(&mut *conn),
            )
            .await?;
        row.map(product)
            .ok_or_else(|| Status::not_found(format!("no product {:?}", request.sku)))
    }

    async fn reserve(&self, request: ReserveRequest) -> Result<ReserveReply, Status> {
        if request.order_id.is_empty() || request.order_id.len() > 64 {
            return Err(Status::invalid_argument("order_id must be 1 to 64 bytes"));
        }
        if request.items.is_empty() || request.items.len() > 20 {
            return Err(Status::invalid_argument("an order has 1 to 20 items"));
        }
        if let Some(bad) = request
            .items
            .iter()
            .find(|i| i.sku.is_empty() || i.sku.len() > 64 || !(1..=100).contains(&i.quantity))
        {
            return Err(Status::invalid_argument(format!(
                "item {:?}: sku must be 1 to 64 bytes and quantity 1 to 100",
                bad.sku
            )));
        }
        let (mut conn, wait) = self.connection("UPDATE", "products", RESERVE_STOCK).await?;
        let mut tx = conn
            .begin()
            .await
            .map_err(|e| Status::internal(format!("database: {e}")))?;
        let mut total = 0_i64;
        let now_ms = i64::try_from(crate::fault::UnixMillis::now().0).unwrap_or(i64::MAX);
        for item in &request.items {
            let quantity = i64::from(item.quantity);
            let price: Option<(i64,)> = self
                .traced(
                    "UPDATE",
                    "products",
                    RESERVE_STOCK,
                    wait,
                    sqlx::query_as(RESERVE_STOCK)
                        .bind(quantity)
                        .bind(&item.sku)
                        .bind(quantity)
                        .fetch_optional(&mut *tx),
                )
                .await?;
            let Some((price,)) = price else {
                // Dropping the transaction rolls it back.
                return Err(Status::failed_precondition(format!(
                    "{:?} is unknown or out of stock",
                    item.sku
                )));
            };
            total = total.saturating_add(price.saturating_mul(quantity));
            self.traced(
                "INSERT",
                "reservations",
                INSERT_RESERVATION,
                wait,
                sqlx::query(INSERT_RESERVATION)
                    .bind(&request.order_id)
                    .bind(&item.sku)
                    .bind(quantity)
                    .bind(now_ms)
                    .execute(&mut *tx),
            )
            .await?;
        }
        self.traced("COMMIT", "products", COMMIT, wait, tx.commit())
            .await?;
        tracing::info!(order_id = %request.order_id, total_cents = total, "stock reserved");
        Ok(ReserveReply { total_cents: total })
    }
}

fn product((sku, name, price_cents, stock): ProductRow) -> Product {
    Product {
        sku,
        name,
        price_cents,
        stock,
    }
}
