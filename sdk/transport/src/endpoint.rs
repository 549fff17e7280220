//! The UDP socket under a QUIC endpoint, with buffers sized for a fast link.
//!
//! With the kernel's default receive buffer (208 KiB here) a burst of
//! coalesced (GRO) datagrams from a fast sender overflows it, the kernel
//! drops them (`UdpRcvbufErrors`), and QUIC takes the drop for congestion:
//! it retransmits and shrinks its window. On loopback at 150 MB/s that
//! happened a few hundred times a second.

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Buffer size asked for in each direction; the kernel caps it at
/// `net.core.rmem_max` / `wmem_max` (4 MiB on a stock Debian kernel, of
/// which it doubles what it grants for its own bookkeeping).
const SOCKET_BUFFER: usize = 8 << 20;

/// A QUIC endpoint bound to `addr`: a server when `server` is given, else
/// a client-only endpoint.
pub fn bind_endpoint(
    addr: SocketAddr,
    server: Option<quinn::ServerConfig>,
) -> std::io::Result<quinn::Endpoint> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // As quinn's own `Endpoint::server` binds: IPv6 only when asked.
        let _ = socket.set_only_v6(false);
    }
    // Best effort: a smaller buffer costs speed, not correctness.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.bind(&addr.into())?;
    let runtime = quinn::default_runtime().ok_or_else(|| {
        std::io::Error::other("no async runtime for the QUIC endpoint (not inside tokio)")
    })?;
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        server,
        socket.into(),
        runtime,
    )
}
