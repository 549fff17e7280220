//! `/api/…`: what `switchyard list …` shows, as JSON arrays of objects
//! (numbers stay numbers), for the principal's vhost.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use switchyard_core::{Broker, BrokerError, row_json};
use switchyard_protocol::Query;

use super::auth::{Authenticated, Refused};

/// `GET /api/{what}`: exchanges, queues, bindings, plugins, connections,
/// users, vhosts, groups or transactions.
pub async fn list(
    State(broker): State<Arc<Broker>>,
    Authenticated(principal): Authenticated,
    Path(what): Path<String>,
) -> Response {
    let Some(query) = Query::ALL.into_iter().find(|q| q.name() == what) else {
        let known: Vec<&str> = Query::ALL.iter().map(|q| q.name()).collect();
        return Refused(BrokerError::new(
            switchyard_protocol::code::NOT_FOUND,
            format!("no listing '{what}' (known: {})", known.join(", ")),
        ))
        .into_response();
    };
    rows(&broker, &principal, query)
}

/// `GET` of a listing whose path also takes changes (`/api/bindings`,
/// `/api/plugins`): the same rows as `/api/{what}`.
pub async fn listing(
    State(broker): State<Arc<Broker>>,
    Authenticated(principal): Authenticated,
    query: Query,
) -> Response {
    rows(&broker, &principal, query)
}

fn rows(broker: &Broker, principal: &switchyard_core::Principal, query: Query) -> Response {
    match broker.list(principal, query) {
        Ok(rows) => Json(rows.iter().map(|r| row_json(r)).collect::<Vec<_>>()).into_response(),
        Err(e) => Refused(e).into_response(),
    }
}

/// `DELETE /api/connections/{id}`: closes a client connection
/// (administrators any, users their own).
pub async fn close_connection(
    State(broker): State<Arc<Broker>>,
    Authenticated(principal): Authenticated,
    Path(id): Path<u64>,
) -> Response {
    match broker.close_connection(&principal, id, "over HTTP") {
        Ok(()) => axum::http::StatusCode::NO_CONTENT.into_response(),
        Err(e) => Refused(e).into_response(),
    }
}

/// `GET /api/definitions`: the broker's definitions (administrators).
pub async fn definitions(
    State(broker): State<Arc<Broker>>,
    Authenticated(principal): Authenticated,
) -> Response {
    match broker.export_definitions(&principal) {
        Ok(definitions) => Json(definitions).into_response(),
        Err(e) => Refused(e).into_response(),
    }
}

/// `GET /api/overview`: who is asking, and the vhost's totals.
pub async fn overview(
    State(broker): State<Arc<Broker>>,
    Authenticated(principal): Authenticated,
) -> Response {
    let queues = match broker.list(&principal, Query::Queues) {
        Ok(rows) => rows,
        Err(e) => return Refused(e).into_response(),
    };
    let sum = |column: &str| -> i64 {
        queues
            .iter()
            .flat_map(|row| row.iter().filter(|f| f.name == column))
            .filter_map(|f| match f.value {
                switchyard_protocol::Value::Int(n) => Some(n),
                _ => None,
            })
            .sum()
    };
    Json(serde_json::json!({
        "user": principal.user,
        "vhost": principal.vhost,
        "administrator": principal.administrator,
        "queues": queues.len(),
        "ready": sum("ready"),
        "unacked": sum("unacked"),
        "consumers": sum("consumers"),
        "version": env!("CARGO_PKG_VERSION"),
    }))
    .into_response()
}
