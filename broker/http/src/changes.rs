//! The API's changes: declare / delete exchanges and queues, bind /
//! unbind, purge, vhosts, users and permissions, plugins (activate, roll
//! back, unload; the upload is `upload`). Each is one core call as the
//! requesting principal (connection 0: no client connection owns anything
//! over HTTP, so another connection's exclusive queue stays refused); the
//! core decides who may. Answers: `204` done, `200` with JSON when there is
//! something to say, errors as in `auth::Refused`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use switchyard_core::{
    BindingSpec, Broker, BrokerError, ExchangeSpec, Permission, QueueSpec,
    fields_from_json as arguments,
};
use switchyard_protocol::code;

use super::auth::{Authenticated, Refused};

/// No client connection: HTTP requests own no exclusive queue.
const NO_CONNECTION: u64 = 0;

fn done(result: Result<(), BrokerError>) -> Response {
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => Refused(e).into_response(),
    }
}

#[derive(Deserialize)]
pub struct ExchangeBody {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    durable: bool,
    #[serde(default)]
    auto_delete: bool,
    #[serde(default)]
    arguments: serde_json::Map<String, serde_json::Value>,
}

pub async fn declare_exchange(
    State(broker): State<Arc<Broker>>,
    Authenticated(principal): Authenticated,
    Path(name): Path<String>,
    Json(body): Json<ExchangeBody>,
) -> Response {
    done(arguments(&body.arguments).and_then(|arguments| {
        let spec = ExchangeSpec {
            name: &name,
            kind: &body.kind,
            durable: body.durable,
            auto_delete: body.auto_delete,
            passive: false,
            arguments,
        };
        broker.declare_exchange(&principal, spec)
    }))
}

#[derive(Deserialize, Default)]
pub struct DeleteOptions {
    #[serde(default)]
    if_unused: bool,
    #[serde(default)]
    if_empty: bool,
}

pub async fn delete_exchange(
    State(broker): State<Arc<Broker>>,
    Authenticated(principal): Authenticated,
    Path(name): Path<String>,
    Query(options): Query<DeleteOptions>,
) -> Response {
    done(broker.delete_exchange(&principal, &name, options.if_unused))
}

#[derive(Deserialize)]
pub struct QueueBody {
    #[serde(default)]
    durable: bool,
    #[serde(default)]
    auto_delete: bool,
    #[serde(default)]
    arguments: serde_json::Map<String, serde_json::Value>,
}

pub async fn declare_queue(
    State(broker): State<Arc<Broker>>,
    Authenticated(principal): Authenticated,
    Path(name): Path<String>,
    Json(body): Json<QueueBody>,
) -> Response {
    done(arguments(&body.arguments).and_then(|arguments| {
        let spec = QueueSpec {
            name: &name,
            durable: body.durable,
            exclusive: false,
            auto_delete: body.auto_delete,
            passive: false,
            arguments,
        };
        broker
            .declare_queue(&principal, NO_CONNECTION, spec)
            .map(drop)
    }))
}

pub async fn delete_queue(
    State(broker): State<Arc<Broker>>,
    Authenticated(principal): Authenticated,
    Path(name): Path<String>,
    Query(options): Query<DeleteOptions>,
) -> Response {
    let deleted = broker.delete_queue(
        &principal,
        NO_CONNECTION,
        &name,
        options.if_unused,
        options.if_empty,
    );
    match deleted {
        Ok(messages) => Json(serde_json::json!({ "messages": messages })).into_response(),
        Err(e) => Refused(e).into_response(),
    }
}

pub async fn purge_queue(
    State(broker): State<Arc<Broker>>,
    Authenticated(principal): Authenticated,
    Path(name): Path<String>,
) -> Response {
    match broker.purge_queue(&principal, NO_CONNECTION, &name) {
        Ok(messages) => Json(serde_json::json!({ "purged": messages })).into_response(),
        Err(e) => Refused(e).into_response(),
    }
}

#[derive(Deserialize)]
pub struct BindingBody {
    queue: String,
    exchange: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    arguments: serde_json::Map<String, serde_json::Value>,
}

/// `POST /api/bindings` binds; `DELETE /api/bindings` (same body) unbinds.
pub async fn bind(
    State(broker): State<Arc<Broker>>,
    Authenticated(principal): Authenticated,
    Json(body): Json<BindingBody>,
) -> Response {
    binding(&broker, &principal, &body, true)
}

pub async fn unbind(
    State(broker): State<Arc<Broker>>,
    Authenticated(principal): Authenticated,
    Json(body): Json<BindingBody>,
) -> Response {
    binding(&broker, &principal, &body, false)
}

fn binding(
    broker: &Broker,
    principal: &switchyard_core::Principal,
    body: &BindingBody,
    bind: bool,
) -> Response {
    done(arguments(&body.arguments).and_then(|arguments| {
        let spec = BindingSpec {
            queue: &body.queue,
            exchange: &body.exchange,
            key: &body.key,
            arguments: &arguments,
        };
        match bind {
            true => broker.bind(principal, NO_CONNECTION, &spec),
            false => broker.unbind(principal, NO_CONNECTION, &spec),
        }
    }))
}

pub async fn add_vhost(
    State(broker): State<Arc<Broker>>,
    Authenticated(principal): Authenticated,
    Path(name): Path<String>,
) -> Response {
    done(broker.add_vhost(&principal, &name))
}

pub async fn delete_vhost(
    State(broker): State<Arc<Broker>>,
    Authenticated(principal): Authenticated,
    Path(name): Path<String>,
) -> Response {
    done(broker.delete_vhost(&principal, &name))
}

#[derive(Deserialize)]
pub struct UserBody {
    password: String,
    #[serde(default)]
    tags: Vec<String>,
}

/// Adds a user (argon2: off the async threads).
pub async fn add_user(
    State(broker): State<Arc<Broker>>,
    Authenticated(principal): Authenticated,
    Path(name): Path<String>,
    Json(body): Json<UserBody>,
) -> Response {
    let added = tokio::task::spawn_blocking(move || {
        broker.add_user(&principal, &name, &body.password, body.tags)
    })
    .await
    .unwrap_or_else(|e| Err(BrokerError::new(code::INTERNAL_ERROR, e.to_string())));
    done(added)
}

pub async fn delete_user(
    State(broker): State<Arc<Broker>>,
    Authenticated(principal): Authenticated,
    Path(name): Path<String>,
) -> Response {
    done(broker.delete_user(&principal, &name))
}

#[derive(Deserialize)]
pub struct PermissionBody {
    vhost: String,
    configure: String,
    write: String,
    read: String,
}

pub async fn permit(
    State(broker): State<Arc<Broker>>,
    Authenticated(principal): Authenticated,
    Path(user): Path<String>,
    Json(body): Json<PermissionBody>,
) -> Response {
    let permission = Permission {
        configure: body.configure,
        write: body.write,
        read: body.read,
    };
    done(broker.permit(&principal, &user, &body.vhost, permission))
}

pub async fn activate_plugin(
    State(broker): State<Arc<Broker>>,
    Authenticated(principal): Authenticated,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    match broker.activate_plugin(&principal, &name, &version) {
        Ok(active) => Json(serde_json::json!({ "active": active.label() })).into_response(),
        Err(e) => Refused(e).into_response(),
    }
}

pub async fn rollback_plugin(
    State(broker): State<Arc<Broker>>,
    Authenticated(principal): Authenticated,
    Path(name): Path<String>,
) -> Response {
    match broker.rollback_plugin(&principal, &name) {
        Ok(active) => Json(serde_json::json!({ "active": active.label() })).into_response(),
        Err(e) => Refused(e).into_response(),
    }
}

pub async fn unload_plugin(
    State(broker): State<Arc<Broker>>,
    Authenticated(principal): Authenticated,
    Path(name): Path<String>,
) -> Response {
    done(broker.unload_plugin(&principal, &name))
}
