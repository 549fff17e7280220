//! Accepting HTTP connections within `Limits`: at most `max_connections`
//! at once — one more is answered `503` (plain HTTP; over TLS it is just
//! closed) and closed at once, so idle or slow HTTP clients never hold
//! the broker's file descriptors — each served by hyper with a deadline
//! for every request head (a silent, trickling or idle kept-alive
//! connection is closed), over TLS when the listener has a certificate.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use super::https;
use super::limits::Limits;

/// What a connection past `max_connections` is told before it is closed.
const TOO_MANY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
    Content-Type: application/json\r\n\
    Connection: close\r\n\
    Retry-After: 1\r\n\
    Content-Length: 82\r\n\r\n\
    {\"error\":\"too many HTTP connections are open (http.max_connections); retry later\"}";

/// Serves `app` on `listener` (over TLS with `tls`) until `shutdown`
/// resolves.
pub async fn serve(
    app: Router,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: pause rather
                    // than spin.
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "HTTP connection refused: max_connections reached");
            if tls.is_none()
                && let Ok(mut tcp) = tcp.into_std()
            {
                // Best effort, never waiting (the socket is non-blocking,
                // its send buffer empty); closed when dropped.
                let _ = std::io::Write::write(&mut tcp, TOO_MANY);
            }
            continue;
        };
        let app = app.clone();
        let tls = tls.clone();
        let head_timeout = limits.request_head_timeout;
        tokio::spawn(async move {
            let _slot = slot;
            match tls {
                None => serve_connection(app, tcp, peer, head_timeout).await,
                Some(acceptor) => {
                    if let Some(stream) = https::handshake(&acceptor, tcp, peer, head_timeout).await
                    {
                        serve_connection(app, stream, peer, head_timeout).await;
                    }
                }
            }
        });
    }
}

async fn serve_connection<S>(app: Router, stream: S, peer: SocketAddr, head_timeout: Duration)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
        // What `into_make_service_with_connect_info` would give: the
        // loopback-only users rule needs the peer address.
        request.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(request)
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        // Runs from the moment hyper waits for a request head: when the
        // connection opens and after each response.
        .header_read_timeout(head_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(e) = served {
        tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
    }
}
