//! The HTTP front door: a JSON API over the broker core and Prometheus
//! metrics. Like the QUIC door it only translates: who a request is comes
//! from the broker's own login (`Broker::login`: the same argon2 check,
//! throttle and loopback rule), what it may do is decided by the core
//! calls it makes, exactly as for a QUIC channel.
//!
//! - `auth` — HTTP Basic credentials → a principal of a vhost.
//! - `api` — `/api/…`: listings as JSON.
//! - `metrics` — `/metrics`: Prometheus text exposition.

mod api;
mod auth;
mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::{delete, get};
use switchyard_core::Broker;

/// The routes, over `broker`.
pub fn router(broker: Arc<Broker>) -> Router {
    Router::new()
        .route("/metrics", get(metrics::metrics))
        .route("/api/overview", get(api::overview))
        .route("/api/definitions", get(api::definitions))
        .route("/api/{what}", get(api::list))
        .route("/api/connections/{id}", delete(api::close_connection))
        .with_state(broker)
}

/// Serves HTTP on `listener` until `shutdown` resolves.
pub async fn serve(
    broker: Arc<Broker>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(broker).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
