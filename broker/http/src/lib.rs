//! The HTTP front door: a JSON API over the broker core and Prometheus
//! metrics. Like the QUIC door it only translates: who a request is comes
//! from the broker's own login (`Broker::login`: the same argon2 check,
//! throttle and loopback rule), what it may do is decided by the core
//! calls it makes, exactly as for a QUIC channel.
//!
//! - `auth`, `login_cache` — HTTP Basic credentials → a principal of a
//!   vhost (successful logins remembered for 15 s: argon2 once, not per
//!   scrape).
//! - `api` — `/api/…`: listings as JSON.
//! - `changes` — `/api/…`: declare, delete, bind, purge, users, plugins.
//! - `metrics` — `/metrics`: Prometheus text exposition (`cell_metrics`:
//!   links to other cells and federated exchanges).
//! - `upload` — `POST /api/plugins`: refused before the body is read.
//! - `console` — `/`: the web console (embedded assets in `console/`).
//! - `origin`, `headers` — every request: changes from other sites
//!   refused (CSRF), anti-framing and content-policy headers.
//! - `limits`, `listener`, `login_turns` — what clients may hold:
//!   connections, request-head deadlines, turns at a password check.
//! - `https` — the same routes over TLS, with the broker's certificate.

mod api;
mod auth;
mod cell_metrics;
mod changes;
mod console;
mod headers;
mod histograms;
mod https;
mod limits;
mod listener;
mod login_cache;
mod login_turns;
mod metrics;
mod origin;
mod upload;

pub use limits::Limits;

use std::sync::Arc;

use axum::Router;
use axum::routing::{delete, get, post, put};
use switchyard_core::Broker;
use switchyard_protocol::Query;

/// The routes, over `broker`, within `limits`.
pub fn router(broker: Arc<Broker>, limits: &Limits) -> Router {
    let turns = login_turns::LoginTurns::new(
        broker.limits().max_concurrent_password_checks as usize,
        limits.login_wait,
    );
    Router::new()
        .route("/", get(console::page))
        .route("/console.js", get(console::script))
        .route("/console.css", get(console::style))
        .route("/metrics", get(metrics::metrics))
        .route("/api/overview", get(api::overview))
        .route("/api/definitions", get(api::definitions))
        .route("/api/{what}", get(api::list))
        .route("/api/connections/{id}", delete(api::close_connection))
        .route(
            "/api/exchanges/{name}",
            put(changes::declare_exchange).delete(changes::delete_exchange),
        )
        .route(
            "/api/queues/{name}",
            put(changes::declare_queue).delete(changes::delete_queue),
        )
        .route("/api/queues/{name}/purge", post(changes::purge_queue))
        .route(
            "/api/bindings",
            get(|s, a| api::listing(s, a, Query::Bindings))
                .post(changes::bind)
                .delete(changes::unbind),
        )
        .route(
            "/api/vhosts/{name}",
            put(changes::add_vhost).delete(changes::delete_vhost),
        )
        .route(
            "/api/users/{name}",
            put(changes::add_user).delete(changes::delete_user),
        )
        .route("/api/permissions/{user}", put(changes::permit))
        .route(
            "/api/plugins",
            get(|s, a| api::listing(s, a, Query::Plugins)).post(upload::load_plugin),
        )
        .route(
            "/api/plugins/{name}/activate/{version}",
            post(changes::activate_plugin),
        )
        .route(
            "/api/plugins/{name}/rollback",
            post(changes::rollback_plugin),
        )
        .route("/api/plugins/{name}", delete(changes::unload_plugin))
        .layer(axum::Extension(
            Arc::new(login_cache::LoginCache::default()),
        ))
        .layer(axum::Extension(Arc::new(turns)))
        // Before any login or body: a cross-site change costs nothing.
        .layer(axum::middleware::from_fn(origin::refuse_cross_site))
        .layer(axum::middleware::from_fn(headers::security_headers))
        .with_state(broker)
}

/// Serves HTTP on `listener` until `shutdown` resolves; HTTPS if `tls`
/// is given; within `limits`.
pub async fn serve(
    broker: Arc<Broker>,
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(broker, &limits);
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    listener::serve(app, listener, tls, limits, shutdown).await
}
