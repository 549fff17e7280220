//! A connection spoken frame by frame (no client SDK): the QUIC + TLS
//! connection, the `Hello` / `Welcome` handshake with the version and frame
//! limit a test asks for, then raw streams.

use switchyard_protocol::{Frame, HANDSHAKE_MAX_FRAME};
use switchyard_transport::{FrameReader, FrameWriter};

use super::Broker;

pub struct RawConnection {
    _endpoint: quinn::Endpoint,
    pub connection: quinn::Connection,
    /// The connection stream, kept open for the connection's life.
    _control: FrameWriter,
    /// The broker's answer to `Hello`.
    pub welcome: Option<Frame>,
}

/// Connects as guest saying protocol `version` and `max_frame` in `Hello`.
pub async fn connect(broker: &Broker, version: u16, max_frame: u32) -> RawConnection {
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(broker.trust().client_config().unwrap());
    let connection = endpoint
        .connect(broker.addr, "127.0.0.1")
        .unwrap()
        .await
        .unwrap();
    let (send, recv) = connection.open_bi().await.unwrap();
    let mut control = FrameWriter::new(send, HANDSHAKE_MAX_FRAME);
    control
        .send(&Frame::Hello {
            version,
            user: "guest".into(),
            password: "guest".into(),
            vhost: "/".into(),
            max_frame,
            client_name: "raw".into(),
        })
        .await
        .unwrap();
    let welcome = FrameReader::new(recv, HANDSHAKE_MAX_FRAME)
        .next()
        .await
        .unwrap();
    RawConnection {
        _endpoint: endpoint,
        connection,
        _control: control,
        welcome,
    }
}

/// A QUIC + TLS connection from `local` (any address of 127/8, so tests
/// can stand for several sources) that says nothing: no `Hello`. The
/// endpoint must outlive the connection.
pub async fn tls_only(
    broker: &Broker,
    local: std::net::IpAddr,
) -> Result<(quinn::Endpoint, quinn::Connection), quinn::ConnectionError> {
    let mut endpoint =
        switchyard_transport::bind_endpoint(std::net::SocketAddr::new(local, 0), None).unwrap();
    endpoint.set_default_client_config(broker.trust().client_config().unwrap());
    let connection = endpoint.connect(broker.addr, "127.0.0.1").unwrap().await?;
    Ok((endpoint, connection))
}
