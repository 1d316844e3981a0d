//! `inventory`: products and stock in SQLite behind a small, bounded connection pool, served
//! over gRPC. Every statement gets a database span (from `faultline-instrument`) carrying how
//! long it waited for its connection, so an exhausted pool is visible in traces.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use faultline_instrument::db::Database;
use opentelemetry::KeyValue;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{Sqlite, Transaction};
use tonic::Status;

use super::ServiceBase;
use crate::fault::FaultKind;
use crate::grpc::{
    GetProductRequest, ListProductsRequest, Product, ProductList, ReserveReply, ReserveRequest,
    UnaryMethod, GET_PRODUCT, LIST_PRODUCTS, RESERVE,
};
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
    db: Database,
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
        db: base
            .telemetry
            .database("sqlite")
            .with_attribute(KeyValue::new("db.namespace", "inventory")),
    });
    tokio::spawn(base.in_background(hold_connections_while_exhausted(Arc::clone(&inventory))));
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
    base.traced_grpc(
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
    /// Runs one statement under a database span (from `faultline-instrument`) that times the
    /// wait for its connection (`acquire`) and the statement (`run`), with the database faults
    /// applied inside it.
    async fn query<C, T, A, R, F>(&self, sql: &'static str, acquire: A, run: R) -> Result<T, Status>
    where
        A: Future<Output = Result<C, sqlx::Error>>,
        R: FnOnce(C) -> F,
        F: Future<Output = Result<T, sqlx::Error>>,
    {
        let faults = self.base.faults.clone();
        let result = self
            .db
            .query(sql, acquire, move |conn| async move {
                let slow = faults.find(|k| match k {
                    FaultKind::SlowQuery { delay_ms } => Some(Duration::from_millis(*delay_ms)),
                    _ => None,
                });
                if let Some(delay) = slow {
                    tokio::time::sleep(delay).await;
                }
                if let Some(latency) = faults.dependency_latency("db") {
                    tokio::time::sleep(latency).await;
                }
                if faults.dependency_fails("db") {
                    return Err(sqlx::Error::Io(std::io::Error::other(
                        "database error (injected fault)",
                    )));
                }
                run(conn).await
            })
            .await;
        result.map_err(|err| {
            tracing::error!(error = %err, query = sql, "query failed");
            match err {
                sqlx::Error::PoolTimedOut => {
                    Status::unavailable(format!("database unavailable: {err}"))
                }
                _ => Status::internal(format!("database: {err}")),
            }
        })
    }

    async fn list(&self, request: ListProductsRequest) -> Result<ProductList, Status> {
        let limit = i64::from(request.limit.clamp(1, 50));
        let rows: Vec<ProductRow> = self
            .query(
                SELECT_PRODUCTS,
                self.pool.acquire(),
                |mut conn| async move {
                    sqlx::query_as(SELECT_PRODUCTS)
                        .bind(limit)
                        .fetch_all(&mut *conn)
                        .await
                },
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
        let sku = request.sku.clone();
        let row: Option<ProductRow> = self
            .query(SELECT_PRODUCT, self.pool.acquire(), |mut conn| async move {
                sqlx::query_as(SELECT_PRODUCT)
                    .bind(sku)
                    .fetch_optional(&mut *conn)
                    .await
            })
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
        // The first statement waits for a connection and opens the transaction; the others
        // reuse it. Dropping it on an early return rolls it back.
        let mut open: Option<Transaction<'static, Sqlite>> = None;
        let mut total = 0_i64;
        let now_ms = i64::try_from(crate::fault::UnixMillis::now().0).unwrap_or(i64::MAX);
        for item in &request.items {
            let quantity = i64::from(item.quantity);
            let sku = item.sku.clone();
            let acquire = async {
                match open.take() {
                    Some(tx) => Ok(tx),
                    None => self.pool.begin().await,
                }
            };
            let (price, tx) = self
                .query(RESERVE_STOCK, acquire, |mut tx| async move {
                    let price: Option<(i64,)> = sqlx::query_as(RESERVE_STOCK)
                        .bind(quantity)
                        .bind(sku)
                        .bind(quantity)
                        .fetch_optional(&mut *tx)
                        .await?;
                    Ok((price, tx))
                })
                .await?;
            let Some((price,)) = price else {
                return Err(Status::failed_precondition(format!(
                    "{:?} is unknown or out of stock",
                    item.sku
                )));
            };
            total = total.saturating_add(price.saturating_mul(quantity));
            let (order_id, sku) = (request.order_id.clone(), item.sku.clone());
            let tx = self
                .query(INSERT_RESERVATION, async { Ok(tx) }, |mut tx| async move {
                    sqlx::query(INSERT_RESERVATION)
                        .bind(order_id)
                        .bind(sku)
                        .bind(quantity)
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await?;
                    Ok(tx)
                })
                .await?;
            open = Some(tx);
        }
        let committing = async { open.take().ok_or(sqlx::Error::WorkerCrashed) };
        self.query(COMMIT, committing, |tx| tx.commit()).await?;
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
