//! Headers on every response that keep browsers from misusing the API and
//! the console: no framing (clickjacking the console's buttons), scripts,
//! styles and fetches from this broker only, no content sniffing, no
//! Referer leaking the broker's URLs.

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// The middleware (`axum::middleware::from_fn`).
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let set = |value: &'static str| HeaderValue::from_static(value);
    headers.insert(header::X_FRAME_OPTIONS, set("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        set("frame-ancestors 'none'; default-src 'self'"),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, set("nosniff"));
    headers.insert(header::REFERRER_POLICY, set("no-referrer"));
    response
}
