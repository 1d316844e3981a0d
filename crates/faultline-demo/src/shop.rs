//! Starting and stopping the whole shop: every service on its own traffic port and admin port,
//! each with its own tracer provider.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use faultline_instrument::Telemetry;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::fault::{admin_router, CpuCore, FaultLedger, FaultRegistry};
use crate::queue::queue;
use crate::services::{self, bind, ServiceBase};
use crate::DemoError;

/// The shop's services, in the order their ports are numbered from `--shop-port`.
pub const SERVICES: [&str; 6] = [
    "gateway",
    "user",
    "order",
    "inventory",
    "payment",
    "notification",
];

/// The third party's port offset from `--shop-port`.
const PROVIDER_OFFSET: u16 = 6;
/// Admin ports are the traffic ports plus this.
pub const ADMIN_OFFSET: u16 = 1000;

/// How to run the shop.
#[derive(Clone, Debug)]
pub struct ShopConfig {
    /// Interface to listen on.
    pub ip: IpAddr,
    /// First port (`gateway`); the others follow in [`SERVICES`] order, then the payment
    /// provider; admin ports are the same plus [`ADMIN_OFFSET`]. 0 picks free ports.
    pub base_port: u16,
    /// OTLP/HTTP base URL the services export to, e.g. `http://127.0.0.1:4318`.
    pub otlp_endpoint: String,
    /// Where the inventory database lives.
    pub data_dir: PathBuf,
    /// Requests per second the gateway admits before answering 429.
    pub gateway_rate_limit: f64,
    /// Where injections are recorded.
    pub ledger: FaultLedger,
    /// Whether the services also export their logs over OTLP (`/v1/logs` at the same endpoint).
    pub otlp_logs: bool,
}

impl ShopConfig {
    /// Defaults: loopback, ports from 8080, gateway limit 1000 requests/s, logs exported.
    pub fn new(otlp_endpoint: impl Into<String>, data_dir: PathBuf) -> Self {
        ShopConfig {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            base_port: 8080,
            otlp_endpoint: otlp_endpoint.into(),
            data_dir,
            gateway_rate_limit: 1_000.0,
            ledger: FaultLedger::new(),
            otlp_logs: true,
        }
    }

    fn addr(&self, offset: u16) -> Result<SocketAddr, DemoError> {
        if self.base_port == 0 {
            return Ok(SocketAddr::new(self.ip, 0));
        }
        self.base_port
            .checked_add(offset)
            .map(|port| SocketAddr::new(self.ip, port))
            .ok_or_else(|| {
                DemoError::Config(format!(
                    "--shop-port {} leaves no room for {} more ports",
                    self.base_port, offset
                ))
            })
    }
}

/// One running service.
#[derive(Clone, Debug)]
pub struct ServiceInfo {
    /// Its name (`service.name` in its spans).
    pub name: &'static str,
    /// Traffic address.
    pub addr: SocketAddr,
    /// Admin address (`/admin/faults`).
    pub admin_addr: SocketAddr,
    /// Its faults.
    pub faults: FaultRegistry,
}

impl ServiceInfo {
    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://admin_addr`.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin_addr)
    }
}

/// The running shop; call [`RunningShop::shutdown`] to stop it and flush its spans.
pub struct RunningShop {
    /// Every service, in [`SERVICES`] order.
    pub services: Vec<ServiceInfo>,
    /// The third-party provider's address.
    pub provider_addr: SocketAddr,
    /// The shared ground-truth ledger.
    pub ledger: FaultLedger,
    otlp_endpoint: String,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    telemetry: Vec<Arc<Telemetry>>,
}

impl RunningShop {
    /// The service called `name`.
    pub fn service(&self, name: &str) -> Option<&ServiceInfo> {
        self.services.iter().find(|s| s.name == name)
    }

    /// Where the services export spans.
    pub fn otlp_endpoint(&self) -> &str {
        &self.otlp_endpoint
    }

    /// The gateway's base URL.
    pub fn gateway_url(&self) -> String {
        self.services
            .first()
            .map(ServiceInfo::url)
            .unwrap_or_default()
    }

    /// Per service: spans exported and spans dropped because its export queue was full.
    pub fn export_counts(&self) -> Vec<(&'static str, u64, u64)> {
        self.services
            .iter()
            .zip(&self.telemetry)
            .map(|(s, t)| {
                let stats = t.export_stats();
                (s.name, stats.exported_spans(), stats.dropped_spans())
            })
            .collect()
    }

    /// Exports every span finished so far (blocking; run off the request path).
    pub async fn flush(&self) {
        let telemetry = self.telemetry.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for t in telemetry {
                if let Err(err) = t.force_flush() {
                    tracing::warn!(error = %err, "span flush failed");
                }
            }
        })
        .await;
    }

    /// Ends active faults (recording why in the ledger), stops every listener and the consumer,
    /// then flushes and shuts down the tracers.
    pub async fn shutdown(self) {
        for service in &self.services {
            service.faults.end_all_at_shutdown();
        }
        let _ = self.stop.send(true);
        for task in self.tasks {
            // In-flight requests finish; a hung one (a third-party timeout) is cut short.
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        let telemetry = self.telemetry;
        let _ = tokio::task::spawn_blocking(move || {
            for t in telemetry {
                match Arc::try_unwrap(t) {
                    Ok(t) => {
                        if let Err(err) = t.shutdown() {
                            tracing::warn!(error = %err, "tracer shutdown failed");
                        }
                    }
                    Err(t) => {
                        if let Err(err) = t.force_flush() {
                            tracing::warn!(error = %err, "span flush failed");
                        }
                    }
                }
            }
        })
        .await;
    }
}

/// The faults each service can act on.
fn supported(name: &str) -> &'static [&'static str] {
    match name {
        "inventory" => &[
            "latency",
            "errors",
            "down",
            "cpu-saturation",
            "db-pool-exhaustion",
            "slow-query",
        ],
        "payment" => &[
            "latency",
            "errors",
            "down",
            "cpu-saturation",
            "third-party-timeout",
        ],
        "notification" => &["latency", "errors", "down", "cpu-saturation", "queue-stall"],
        _ => &["latency", "errors", "down", "cpu-saturation"],
    }
}

/// Binds every port, then starts every service.
pub async fn start_shop(config: ShopConfig) -> Result<RunningShop, DemoError> {
    let (stop, stop_rx) = watch::channel(false);
    let mut listeners = Vec::new();
    let mut admins = Vec::new();
    for (i, name) in SERVICES.iter().enumerate() {
        let offset = u16::try_from(i).unwrap_or(0);
        listeners.push(bind(name.to_string(), config.addr(offset)?).await?);
        admins.push(bind(format!("{name} admin"), config.addr(offset + ADMIN_OFFSET)?).await?);
    }
    let provider_listener = bind(
        "payment provider (third party)".into(),
        config.addr(PROVIDER_OFFSET)?,
    )
    .await?;
    let local =
        |l: &tokio::net::TcpListener| l.local_addr().map_err(|e| DemoError::Config(e.to_string()));
    let addrs: Vec<SocketAddr> = listeners.iter().map(local).collect::<Result<_, _>>()?;
    let admin_addrs: Vec<SocketAddr> = admins.iter().map(local).collect::<Result<_, _>>()?;
    let provider_addr = local(&provider_listener)?;
    let url = |i: usize| format!("http://{}", addrs[i]);

    let mut bases = Vec::new();
    for name in SERVICES {
        bases.push(ServiceBase {
            name,
            telemetry: services::telemetry(name, &config.otlp_endpoint, config.otlp_logs)?,
            faults: FaultRegistry::new(name, supported(name), config.ledger.clone()),
            cpu: CpuCore::default(),
            shutdown: stop_rx.clone(),
        });
    }
    std::fs::create_dir_all(&config.data_dir).map_err(|source| DemoError::Io {
        what: format!("creating {}", config.data_dir.display()),
        source,
    })?;
    let pool =
        services::inventory::open_database(&config.data_dir.join("inventory.sqlite")).await?;
    let (queue_tx, queue_rx) = queue(10_000);

    let [gateway, user, order, inventory, payment, notification] =
        [0, 1, 2, 3, 4, 5].map(|i| &bases[i]);
    let routers = vec![
        services::gateway::router(
            gateway,
            services::gateway::Upstreams {
                user: &url(1),
                order: &url(2),
                inventory: &url(3),
            },
            config.gateway_rate_limit,
        )?,
        services::user::router(user),
        services::order::router(order, &url(3), &url(4), queue_tx)?,
        services::inventory::router(inventory, pool),
        services::payment::router(payment, &format!("http://{provider_addr}"))?,
        services::notification::start(notification, queue_rx, &url(1))?,
    ];

    let mut tasks = Vec::new();
    tasks.push(services::serve_plain(
        provider_listener,
        services::provider::router(payment.faults.clone(), stop_rx.clone()),
        stop_rx.clone(),
    ));
    let mut infos = Vec::new();
    for (((base, router), listener), admin) in bases.iter().zip(routers).zip(listeners).zip(admins)
    {
        tasks.push(services::serve_supervised(
            listener,
            router,
            base.faults.clone(),
            stop_rx.clone(),
        ));
        tasks.push(services::serve_plain(
            admin,
            admin_router(base.faults.clone()),
            stop_rx.clone(),
        ));
        infos.push(ServiceInfo {
            name: base.name,
            addr: addrs[infos.len()],
            admin_addr: admin_addrs[infos.len()],
            faults: base.faults.clone(),
        });
    }
    Ok(RunningShop {
        services: infos,
        provider_addr,
        ledger: config.ledger,
        otlp_endpoint: config.otlp_endpoint,
        stop,
        tasks,
        telemetry: bases.iter().map(|b| Arc::clone(&b.telemetry)).collect(),
    })
}
