//! The admin endpoint every shop service serves on its own port, and the client the CLI uses.
//!
//! The admin listener is separate from the service's traffic port so that a service that is
//! "down" (its traffic listener closed) can still be told to come back.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{FaultError, FaultRecord, FaultRegistry, FaultRequest};
use crate::DemoError;

/// What `GET /admin/faults` answers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FaultListing {
    /// The service.
    pub service: String,
    /// Fault names it accepts.
    pub supported: Vec<String>,
    /// Faults active now.
    pub active: Vec<FaultRecord>,
    /// Every fault it had, with start and end.
    pub history: Vec<FaultRecord>,
}

#[derive(Serialize, Deserialize)]
struct Cleared {
    cleared: Vec<FaultRecord>,
}

#[derive(Serialize, Deserialize)]
struct ErrorBody {
    error: String,
}

/// `GET/POST/DELETE /admin/faults`, `DELETE /admin/faults/{id}` for one service.
pub fn admin_router(registry: FaultRegistry) -> Router {
    Router::new()
        .route("/admin/faults", get(list).post(inject).delete(clear_all))
        .route("/admin/faults/{id}", delete(clear_one))
        .route("/admin/health", get(|| async { "ok\n" }))
        .with_state(registry)
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(ErrorBody { error: message })).into_response()
}

fn fault_error(err: FaultError) -> Response {
    let status = match err {
        FaultError::Invalid(_) => StatusCode::BAD_REQUEST,
        FaultError::Unsupported { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        FaultError::NotFound(_) => StatusCode::NOT_FOUND,
    };
    error(status, err.to_string())
}

async fn list(State(registry): State<FaultRegistry>) -> Json<FaultListing> {
    Json(FaultListing {
        service: registry.service().to_owned(),
        supported: registry
            .supported()
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        active: registry.active(),
        history: registry.history(),
    })
}

async fn inject(State(registry): State<FaultRegistry>, body: Bytes) -> Response {
    let request: FaultRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(err) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid fault request: {err}"),
            )
        }
    };
    match registry.inject(request) {
        Ok(record) => {
            tracing::warn!(fault = %record, "fault injected");
            (StatusCode::CREATED, Json(record)).into_response()
        }
        Err(err) => fault_error(err),
    }
}

async fn clear_all(State(registry): State<FaultRegistry>) -> Response {
    match registry.clear(None) {
        Ok(cleared) => Json(Cleared { cleared }).into_response(),
        Err(err) => fault_error(err),
    }
}

async fn clear_one(State(registry): State<FaultRegistry>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("fault id {id:?} is not a number"),
        );
    };
    match registry.clear(Some(id)) {
        Ok(cleared) => Json(Cleared { cleared }).into_response(),
        Err(err) => fault_error(err),
    }
}

/// Talks to one service's admin endpoint.
#[derive(Clone, Debug)]
pub struct AdminClient {
    base: String,
    http: reqwest::Client,
}

impl AdminClient {
    /// A client for the admin endpoint at `base`, e.g. `http://127.0.0.1:9083`.
    pub fn new(base: &str) -> Result<Self, DemoError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| DemoError::Http {
                url: base.to_owned(),
                detail: e.to_string(),
            })?;
        Ok(AdminClient {
            base: base.trim_end_matches('/').to_owned(),
            http,
        })
    }

    /// Injects a fault.
    pub async fn inject(&self, request: &FaultRequest) -> Result<FaultRecord, DemoError> {
        let body = serde_json::to_vec(request).map_err(|e| self.err(e))?;
        let response = self
            .http
            .post(self.url())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| self.err(e))?;
        self.decode(response).await
    }

    /// Ends one fault or all of them.
    pub async fn clear(&self, id: Option<u64>) -> Result<Vec<FaultRecord>, DemoError> {
        let url = match id {
            Some(id) => format!("{}/{id}", self.url()),
            None => self.url(),
        };
        let response = self
            .http
            .delete(url)
            .send()
            .await
            .map_err(|e| self.err(e))?;
        let cleared: Cleared = self.decode(response).await?;
        Ok(cleared.cleared)
    }

    /// Active faults and history.
    pub async fn list(&self) -> Result<FaultListing, DemoError> {
        let response = self
            .http
            .get(self.url())
            .send()
            .await
            .map_err(|e| self.err(e))?;
        self.decode(response).await
    }

    fn url(&self) -> String {
        format!("{}/admin/faults", self.base)
    }

    fn err(&self, detail: impl std::fmt::Display) -> DemoError {
        DemoError::Http {
            url: self.url(),
            detail: detail.to_string(),
        }
    }

    async fn decode<T: for<'de> Deserialize<'de>>(
        &self,
        response: reqwest::Response,
    ) -> Result<T, DemoError> {
        let status = response.status();
        let body = response.bytes().await.map_err(|e| self.err(e))?;
        if !status.is_success() {
            let detail = serde_json::from_slice::<ErrorBody>(&body)
                .map(|b| b.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
            return Err(self.err(format!("{status}: {detail}")));
        }
        serde_json::from_slice(&body).map_err(|e| self.err(format!("unexpected answer: {e}")))
    }
}
