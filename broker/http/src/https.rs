//! HTTPS: the TLS handshake of an accepted connection, with the broker's
//! certificate; `listener` then serves the decrypted stream with the same
//! router and limits as plain HTTP. Each handshake runs on its
//! connection's own task (a slow client never holds up the accept loop).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// The TLS stream, or `None` if the handshake failed or did not finish
/// within `timeout` (the request-head deadline: a client that says
/// nothing is dropped as soon over TLS as over plain HTTP).
pub async fn handshake(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    timeout: Duration,
) -> Option<TlsStream<TcpStream>> {
    match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "HTTPS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "HTTPS handshake timed out");
            None
        }
    }
}
