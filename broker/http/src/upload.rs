//! `POST /api/plugins?name=&activate=&config.KEY=VALUE` with the component
//! as the body: loads a plugin version (administrators). Everything that
//! can refuse the upload is decided before a byte of the body is read, so
//! a refused client costs the broker no memory (issue 27: 24 unfinished
//! 64 MiB uploads by a non-administrator held 1.6 GB):
//!
//! 1. the principal must be an administrator (the core's rule, as for the
//!    QUIC door's `PluginUpload`): `403`;
//! 2. the body is `application/wasm` or `application/octet-stream`: `415`;
//! 3. its `Content-Length` is given (`411`) and at most `MAX_PLUGIN_BYTES`
//!    (`413`);
//! 4. that length is reserved of the broker-wide upload budget
//!    (`limits.max_upload_bytes`, shared with QUIC uploads): refused as
//!    the core says; the reservation is given back when the upload is
//!    loaded or refused, or the client goes away.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use switchyard_core::{Broker, BrokerError, MAX_PLUGIN_BYTES, PluginUpload};
use switchyard_protocol::code;

use super::auth::{Authenticated, Refused};

/// The content types a component may come as.
const COMPONENT_TYPES: [&str; 2] = ["application/wasm", "application/octet-stream"];

#[derive(Deserialize, Default)]
pub struct UploadOptions {
    /// Register under this name instead of the one the plugin reports.
    name: Option<String>,
    /// Make the new version active at once (default true).
    activate: Option<bool>,
}

/// The plugin configuration a query string carries as `config.KEY=VALUE`.
fn plugin_config(query: Option<&str>) -> Vec<switchyard_protocol::Field> {
    (query.unwrap_or_default().split('&'))
        .filter_map(|pair| pair.strip_prefix("config."))
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| {
            let decode = |s: &str| super::auth::percent_decode(s);
            switchyard_protocol::Field::new(
                decode(key),
                switchyard_protocol::Value::Text(decode(value)),
            )
        })
        .collect()
}

fn refused(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// Why the upload's headers refuse it, else its length.
fn length_of(headers: &HeaderMap) -> Result<u64, (StatusCode, String)> {
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    if !kind
        .as_deref()
        .is_some_and(|k| COMPONENT_TYPES.contains(&k))
    {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "a plugin component is sent as {}, not {}",
                COMPONENT_TYPES.join(" or "),
                kind.as_deref().unwrap_or("no Content-Type")
            ),
        ));
    }
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or_else(|| {
            (
                StatusCode::LENGTH_REQUIRED,
                "a plugin upload needs a Content-Length (the broker reserves it before reading)"
                    .into(),
            )
        })?;
    if length > MAX_PLUGIN_BYTES as u64 {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the component of {length} bytes is larger than {MAX_PLUGIN_BYTES} bytes, the most a plugin may be"
            ),
        ));
    }
    Ok(length)
}

pub async fn load_plugin(
    State(broker): State<Arc<Broker>>,
    Authenticated(principal): Authenticated,
    Query(options): Query<UploadOptions>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(e) = principal.require_administrator("loading a plugin") {
        return Refused(e).into_response();
    }
    let length = match length_of(&headers) {
        Ok(length) => length,
        Err((status, message)) => return refused(status, message),
    };
    let mut reservation = broker.upload_reservation();
    if let Err(e) = reservation.grow(length) {
        return Refused(e).into_response();
    }
    // hyper holds the body to its Content-Length: no more than reserved.
    let component = match axum::body::to_bytes(body, length as usize).await {
        Ok(component) => component,
        Err(e) => {
            return refused(
                StatusCode::BAD_REQUEST,
                format!("the upload did not arrive whole: {e}"),
            );
        }
    };
    let config = plugin_config(query.as_deref());
    let loaded = tokio::task::spawn_blocking(move || {
        let _reservation = reservation;
        let upload = PluginUpload {
            component: &component,
            name: options.name.as_deref(),
            config: &config,
            activate: options.activate.unwrap_or(true),
        };
        broker
            .load_plugin(&principal, upload)
            .map(|version| version.label().to_string())
    })
    .await
    .unwrap_or_else(|e| Err(BrokerError::new(code::INTERNAL_ERROR, e.to_string())));
    match loaded {
        Ok(label) => (
            StatusCode::CREATED,
            Json(serde_json::json!({ "loaded": label })),
        )
            .into_response(),
        Err(e) => Refused(e).into_response(),
    }
}
