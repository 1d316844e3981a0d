//! The inventory gRPC API: hand-written prost messages (no `protoc` at build time), a typed
//! client, and an adapter that serves a unary handler as an axum route.
//!
//! The protocol, as a `.proto` would say it:
//!
//! ```text
//! package faultline.demo.v1;
//! service Inventory {
//!   rpc ListProducts(ListProductsRequest) returns (ProductList);
//!   rpc GetProduct(GetProductRequest) returns (Product);
//!   rpc Reserve(ReserveRequest) returns (ReserveReply);
//! }
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use faultline_instrument::grpc::GrpcService;
use faultline_instrument::Telemetry;
use http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};
use tonic::Status;
use tonic_prost::ProstCodec;
use tower::{Layer, Service};

use crate::DemoError;

/// The gRPC service name.
pub const INVENTORY_SERVICE: &str = "faultline.demo.v1.Inventory";
/// Path of `ListProducts`.
pub const LIST_PRODUCTS: &str = "/faultline.demo.v1.Inventory/ListProducts";
/// Path of `GetProduct`.
pub const GET_PRODUCT: &str = "/faultline.demo.v1.Inventory/GetProduct";
/// Path of `Reserve`.
pub const RESERVE: &str = "/faultline.demo.v1.Inventory/Reserve";

/// A product and its stock.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
pub struct Product {
    /// Stock-keeping unit, e.g. `SKU-0007`.
    #[prost(string, tag = "1")]
    pub sku: String,
    /// Display name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Price in cents.
    #[prost(int64, tag = "3")]
    pub price_cents: i64,
    /// Units in stock.
    #[prost(int64, tag = "4")]
    pub stock: i64,
}

/// `ListProducts` request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListProductsRequest {
    /// Most products to return (capped by the server).
    #[prost(uint32, tag = "1")]
    pub limit: u32,
}

/// `ListProducts` answer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProductList {
    /// The products.
    #[prost(message, repeated, tag = "1")]
    pub products: Vec<Product>,
}

/// `GetProduct` request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetProductRequest {
    /// The product.
    #[prost(string, tag = "1")]
    pub sku: String,
}

/// One line of a reservation.
#[derive(Clone, PartialEq, prost::Message, serde::Deserialize, serde::Serialize)]
pub struct LineItem {
    /// The product.
    #[prost(string, tag = "1")]
    pub sku: String,
    /// Units.
    #[prost(uint32, tag = "2")]
    pub quantity: u32,
}

/// `Reserve` request: take stock for an order.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReserveRequest {
    /// The order.
    #[prost(string, tag = "1")]
    pub order_id: String,
    /// What to reserve.
    #[prost(message, repeated, tag = "2")]
    pub items: Vec<LineItem>,
}

/// `Reserve` answer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReserveReply {
    /// Total price of the reserved items, in cents.
    #[prost(int64, tag = "1")]
    pub total_cents: i64,
}

/// A typed, traced client of the inventory service.
#[derive(Clone, Debug)]
pub struct InventoryClient {
    grpc: tonic::client::Grpc<GrpcService<Channel>>,
}

impl InventoryClient {
    /// A client of the inventory service at `url`; connects lazily and reconnects as needed.
    pub fn new(url: &str, telemetry: &Telemetry) -> Result<Self, DemoError> {
        let channel = Endpoint::from_shared(url.to_owned())
            .map_err(|e| DemoError::Config(format!("inventory URL {url:?}: {e}")))?
            .connect_timeout(Duration::from_millis(500))
            .timeout(Duration::from_secs(3))
            .connect_lazy();
        let traced = telemetry.grpc_client_layer().layer(channel);
        Ok(InventoryClient {
            grpc: tonic::client::Grpc::new(traced),
        })
    }

    /// `ListProducts`.
    pub async fn list_products(&self, limit: u32) -> Result<ProductList, Status> {
        self.unary(LIST_PRODUCTS, ListProductsRequest { limit })
            .await
    }

    /// `GetProduct`.
    pub async fn get_product(&self, sku: String) -> Result<Product, Status> {
        self.unary(GET_PRODUCT, GetProductRequest { sku }).await
    }

    /// `Reserve`.
    pub async fn reserve(&self, request: ReserveRequest) -> Result<ReserveReply, Status> {
        self.unary(RESERVE, request).await
    }

    async fn unary<Req, Resp>(&self, path: &'static str, message: Req) -> Result<Resp, Status>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let mut grpc = self.grpc.clone();
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(format!("inventory not ready: {e}")))?;
        let request = tonic::Request::new(message);
        let codec: ProstCodec<Req, Resp> = ProstCodec::default();
        grpc.unary(request, PathAndQuery::from_static(path), codec)
            .await
            .map(tonic::Response::into_inner)
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Serves one unary gRPC method from an async function, as a tower service for
/// `axum::Router::route_service`.
pub struct UnaryMethod<F, Req, Resp> {
    handler: F,
    _messages: PhantomData<fn(Req) -> Resp>,
}

impl<F: Clone, Req, Resp> Clone for UnaryMethod<F, Req, Resp> {
    fn clone(&self) -> Self {
        UnaryMethod {
            handler: self.handler.clone(),
            _messages: PhantomData,
        }
    }
}

impl<F, Req, Resp> UnaryMethod<F, Req, Resp> {
    /// Wraps `handler`.
    pub fn new(handler: F) -> Self {
        UnaryMethod {
            handler,
            _messages: PhantomData,
        }
    }
}

struct Handler<F>(F);

impl<F, Fut, Req, Resp> tonic::server::UnaryService<Req> for Handler<F>
where
    F: Fn(Req) -> Fut,
    Fut: Future<Output = Result<Resp, Status>> + Send + 'static,
    Resp: Send + 'static,
{
    type Response = Resp;
    type Future = BoxFuture<Result<tonic::Response<Resp>, Status>>;

    fn call(&mut self, request: tonic::Request<Req>) -> Self::Future {
        let future = (self.0)(request.into_inner());
        Box::pin(async move { future.await.map(tonic::Response::new) })
    }
}

impl<F, Fut, Req, Resp> Service<http::Request<axum::body::Body>> for UnaryMethod<F, Req, Resp>
where
    F: Fn(Req) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Resp, Status>> + Send + 'static,
    Req: prost::Message + Default + Send + 'static,
    Resp: prost::Message + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<axum::body::Body>) -> Self::Future {
        let handler = Handler(self.handler.clone());
        Box::pin(async move {
            let codec: ProstCodec<Resp, Req> = ProstCodec::default();
            let mut grpc = tonic::server::Grpc::new(codec);
            Ok(grpc.unary(handler, request).await)
        })
    }
}
