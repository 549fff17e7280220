//! Who a request is: HTTP Basic credentials, checked by the broker's login
//! (argon2 off the async threads, after a turn in `login_turns`), in the
//! vhost `?vhost=` names (default `/`). Missing or wrong credentials are a
//! 401 that asks for them.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use switchyard_core::{Broker, BrokerError, Principal};

use super::login_cache::{self, LoginCache};
use super::login_turns::LoginTurns;
use switchyard_protocol::code;

/// The principal a request acts as.
pub struct Authenticated(pub Principal);

/// A refusal as HTTP: the status its code maps to, the message as JSON.
pub struct Refused(pub BrokerError);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let status = match self.0.code {
            code::ACCESS_REFUSED => StatusCode::FORBIDDEN,
            code::NOT_FOUND => StatusCode::NOT_FOUND,
            code::PRECONDITION_FAILED | code::RESOURCE_LOCKED => StatusCode::CONFLICT,
            code::SYNTAX_ERROR | code::COMMAND_INVALID | code::NOT_ALLOWED => {
                StatusCode::BAD_REQUEST
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let body = axum::Json(serde_json::json!({"error": self.0.message, "code": self.0.code}));
        (status, body).into_response()
    }
}

/// A 401. Browsers answer `WWW-Authenticate` with a password dialog: the
/// web console, which asks on its own page, says so with a header and gets
/// none.
fn unauthorized(parts: &Parts, why: &str) -> Response {
    let body = axum::Json(serde_json::json!({ "error": why }));
    if parts.headers.contains_key(CONSOLE_HEADER) {
        return (StatusCode::UNAUTHORIZED, body).into_response();
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"switchyard\"")],
        body,
    )
        .into_response()
}

/// Sent by the web console with every request.
const CONSOLE_HEADER: &str = "x-switchyard-console";

/// `user:password` from an `Authorization: Basic …` header.
fn basic_credentials(parts: &Parts) -> Option<(String, String)> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn vhost_of(parts: &Parts) -> String {
    parts
        .uri
        .query()
        .and_then(|q| {
            q.split('&')
                .find_map(|pair| pair.strip_prefix("vhost="))
                .map(percent_decode)
        })
        .unwrap_or_else(|| "/".into())
}

/// `%2F` → `/` (vhost names in a query string).
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1..i + 3)) {
            (b'%', Some(hex)) => {
                match u8::from_str_radix(std::str::from_utf8(hex).unwrap_or(""), 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            (b'+', _) => out.push(b' '),
            (byte, _) => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl FromRequestParts<Arc<Broker>> for Authenticated {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        broker: &Arc<Broker>,
    ) -> Result<Self, Self::Rejection> {
        let Some((user, password)) = basic_credentials(parts) else {
            return Err(unauthorized(parts, "credentials required (HTTP Basic)"));
        };
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .ok_or_else(|| unauthorized(parts, "no peer address"))?;
        let vhost = vhost_of(parts);
        let cache = parts.extensions.get::<Arc<LoginCache>>().cloned();
        let key = login_cache::key(&user, &password, &vhost, peer.is_loopback());
        if let Some(principal) = cache.as_ref().and_then(|c| c.get(&key)) {
            return Ok(Authenticated(principal));
        }
        // A turn first, waited for as a future: only then a blocking
        // thread (`login_turns`).
        let turns = parts
            .extensions
            .get::<Arc<LoginTurns>>()
            .cloned()
            .ok_or_else(|| {
                let missing = BrokerError::new(code::INTERNAL_ERROR, "no login turns installed");
                Refused(missing).into_response()
            })?;
        let turn = turns.turn().await?;
        let broker = broker.clone();
        let login = tokio::task::spawn_blocking(move || {
            let _turn = turn;
            broker.login(&user, &password, &vhost, peer)
        })
        .await
        .map_err(|e| Refused(BrokerError::new(code::INTERNAL_ERROR, e.to_string())))
        .map_err(IntoResponse::into_response)?;
        match login {
            Ok(principal) => {
                if let Some(cache) = cache {
                    cache.put(key, principal.clone());
                }
                Ok(Authenticated(principal))
            }
            Err(e) if e.code == code::ACCESS_REFUSED => Err(unauthorized(parts, &e.message)),
            Err(e) => Err(Refused(e).into_response()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vhost_names_are_percent_decoded() {
        assert_eq!(percent_decode("%2F"), "/");
        assert_eq!(percent_decode("shop%2Feu"), "shop/eu");
        assert_eq!(percent_decode("a%zzb"), "a%zzb");
    }
}
