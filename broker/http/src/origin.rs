//! Cross-site requests (CSRF): a browser sends cached Basic credentials
//! with a request any page makes, and a form or a `no-cors` fetch needs no
//! permission to POST. So a change — any method but GET, HEAD, OPTIONS and
//! TRACE — is refused before anything else (no login, no body read):
//!
//! - with an `Origin` that is not the broker's own (the host:port of the
//!   request's `Host`): `403`, naming the origin; browsers send `Origin`
//!   with every such request, a CLI or curl sends none and is unaffected;
//! - with a content type a cross-site form may send without asking
//!   (`text/plain`, `application/x-www-form-urlencoded`,
//!   `multipart/form-data`): `415`. JSON changes take `application/json`
//!   (axum's `Json` refuses any other), a plugin `application/wasm` or
//!   `application/octet-stream` (`upload`), the rest no body at all.

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The middleware (`axum::middleware::from_fn`).
pub async fn refuse_cross_site(request: Request, next: Next) -> Response {
    if request.method().is_safe() {
        return next.run(request).await;
    }
    if let Some(refusal) = refusal(request.headers()) {
        return refusal;
    }
    next.run(request).await
}

fn refusal(headers: &HeaderMap) -> Option<Response> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = String::from_utf8_lossy(origin.as_bytes());
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        if !same_origin(&origin, host) {
            let message = format!(
                "a change from origin '{origin}' is refused: only pages of this broker \
                 ({}) may make changes",
                host.unwrap_or("no Host header")
            );
            return Some(refused(StatusCode::FORBIDDEN, message));
        }
    }
    let kind = headers.get(header::CONTENT_TYPE)?;
    let kind = String::from_utf8_lossy(kind.as_bytes());
    let essence = kind
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if FORM_TYPES.contains(&essence.as_str()) {
        let message = format!(
            "a change with Content-Type '{essence}' is refused (any web page may send it); \
             send application/json, or a plugin as application/wasm"
        );
        return Some(refused(StatusCode::UNSUPPORTED_MEDIA_TYPE, message));
    }
    None
}

/// What an HTML form (or a fetch without a preflight) may send.
const FORM_TYPES: [&str; 3] = [
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
];

fn refused(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// Whether `origin` (`scheme://host[:port]`) names the server `host` (the
/// `Host` header) was asked as. A default port counts as none.
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    let Some((scheme, authority)) = origin.trim().split_once("://") else {
        return false; // `null`, or nonsense
    };
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => return false,
    };
    if authority.is_empty() || authority.contains(['/', '@', '?', '#']) {
        return false;
    }
    let bare = |a: &str| a.strip_suffix(default).unwrap_or(a).to_ascii_lowercase();
    bare(authority) == bare(host.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_brokers_own_origin_is_the_same() {
        let host = Some("127.0.0.1:15673");
        assert!(same_origin("http://127.0.0.1:15673", host));
        assert!(same_origin("https://127.0.0.1:15673", host));
        assert!(same_origin("HTTP://LOCALHOST", Some("localhost:80")));
        assert!(same_origin(
            "https://broker.example",
            Some("broker.example")
        ));
        assert!(!same_origin("http://evil.example", host));
        assert!(!same_origin("http://127.0.0.1:15674", host));
        assert!(!same_origin("null", host));
        assert!(!same_origin("http://127.0.0.1:15673", None));
        assert!(!same_origin("http://127.0.0.1:15673/x", host));
        assert!(!same_origin("file://127.0.0.1:15673", host));
    }

    #[test]
    fn form_content_types_are_refused_for_changes() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            "Text/Plain; charset=utf-8".parse().unwrap(),
        );
        assert_eq!(
            refusal(&headers).map(|r| r.status()),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        assert!(refusal(&headers).is_none());
        headers.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        headers.insert(header::HOST, "127.0.0.1:15673".parse().unwrap());
        assert_eq!(
            refusal(&headers).map(|r| r.status()),
            Some(StatusCode::FORBIDDEN)
        );
    }
}
