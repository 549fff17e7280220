//! Connecting: QUIC + TLS to the broker, the `Hello` / `Welcome` handshake,
//! and opening channels (one bidirectional stream each).
//!
//! A connection does not reconnect by itself: when it is lost every pending
//! operation and every later call fails with [`Error::ConnectionLost`] (or
//! [`Error::Closed`] when the broker closed it), and the application
//! decides whether to call [`Connection::connect`] again and redeclare what
//! it needs (publishes not yet confirmed may or may not have been stored;
//! republish them if they must arrive). The crate docs show the pattern.
//!
//! A broker that dies without closing (a killed process, a lost network)
//! sends nothing, so it is noticed by QUIC's idle timeout: the smaller of
//! [`ConnectOptions::idle_timeout`] and the broker's (10 s by default).
//! Keep-alives every [`ConnectOptions::keep_alive`] keep a quiet but live
//! connection open.

use std::net::SocketAddr;
use std::time::Duration;

use switchyard_protocol::{DEFAULT_MAX_FRAME, Frame, HANDSHAKE_MAX_FRAME, VERSION};

use crate::address::BrokerAddress;
use crate::channel::{Channel, WeakChannel};
use crate::error::Error;
use crate::tls::Trust;
use switchyard_transport::{FrameReader, FrameWriter, bind_endpoint, tune_transport};

/// How to connect.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// The CA certificates the broker's certificate must chain to.
    pub trust: Trust,
    /// Shown by `switchyard list connections`.
    pub client_name: String,
    /// The largest frame this client accepts (the broker may lower it).
    pub max_frame: u32,
    /// The connection is declared lost after this long without a packet
    /// (the broker's idle timeout applies if it is shorter).
    pub idle_timeout: Duration,
    /// Keep-alive interval: under a third of the idle timeout (the
    /// broker's, if shorter), so that a lost ping or two does not end a
    /// healthy connection.
    pub keep_alive: Duration,
    /// Give up if the QUIC + TLS handshake has not completed by then.
    pub connect_timeout: Duration,
}

impl ConnectOptions {
    pub fn new(trust: Trust) -> Self {
        ConnectOptions {
            trust,
            client_name: "switchyard-client".into(),
            max_frame: DEFAULT_MAX_FRAME,
            idle_timeout: Duration::from_secs(30),
            keep_alive: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// An authenticated connection to a broker.
/// How long [`Connection::close`] waits for each channel's close.
pub const CHANNEL_CLOSE_WAIT: Duration = Duration::from_secs(10);

pub struct Connection {
    connection: quinn::Connection,
    endpoint: quinn::Endpoint,
    control: tokio::sync::Mutex<FrameWriter>,
    max_frame: u32,
    server_name: String,
    connection_id: u64,
    /// Channels opened here, closed (in order after what each sent) by
    /// [`Connection::close`].
    channels: std::sync::Mutex<Vec<WeakChannel>>,
}

impl Connection {
    /// Connects to a broker URL (`switchyard://user:pass@host:port/vhost`).
    pub async fn connect(url: &str, options: ConnectOptions) -> Result<Connection, Error> {
        Connection::open(&BrokerAddress::parse(url)?, options).await
    }

    pub async fn open(
        address: &BrokerAddress,
        options: ConnectOptions,
    ) -> Result<Connection, Error> {
        let target = format!("{}:{}", address.host, address.port);
        let connect_error = |reason: String| Error::Connect {
            address: target.clone(),
            reason,
        };
        let peer: SocketAddr = tokio::net::lookup_host((address.host.as_str(), address.port))
            .await
            .map_err(|e| connect_error(e.to_string()))?
            .next()
            .ok_or_else(|| connect_error("the host name resolves to no address".into()))?;
        let local: SocketAddr = if peer.is_ipv6() {
            "[::]:0".parse().unwrap()
        } else {
            "0.0.0.0:0".parse().unwrap()
        };
        let mut endpoint = bind_endpoint(local, None).map_err(|e| connect_error(e.to_string()))?;
        if options.keep_alive >= options.idle_timeout {
            return Err(connect_error(format!(
                "the keep-alive interval ({:?}) must be shorter than the idle timeout ({:?})",
                options.keep_alive, options.idle_timeout
            )));
        }
        let mut config = options.trust.client_config()?;
        let mut transport = quinn::TransportConfig::default();
        transport
            .max_idle_timeout(Some(
                quinn::IdleTimeout::try_from(options.idle_timeout)
                    .map_err(|e| connect_error(e.to_string()))?,
            ))
            .keep_alive_interval(Some(options.keep_alive));
        tune_transport(&mut transport);
        config.transport_config(std::sync::Arc::new(transport));
        endpoint.set_default_client_config(config);

        let connecting = endpoint
            .connect(peer, &address.host)
            .map_err(|e| connect_error(e.to_string()))?;
        let connection = tokio::time::timeout(options.connect_timeout, connecting)
            .await
            .map_err(|_| {
                connect_error(format!(
                    "no answer within {} s (is a broker running and listening there?)",
                    options.connect_timeout.as_secs_f64()
                ))
            })?
            .map_err(|e| match e {
                quinn::ConnectionError::TransportError(t) if t.to_string().contains("certificate") => {
                    Error::Tls(format!(
                        "the broker's certificate is not trusted ({t}); pass the broker's CA with --ca \
                         or the broker's --data-dir"
                    ))
                }
                other => connect_error(other.to_string()),
            })?;
        let (send, recv) = connection.open_bi().await?;
        let mut writer = FrameWriter::new(send, HANDSHAKE_MAX_FRAME);
        let mut reader = FrameReader::new(recv, HANDSHAKE_MAX_FRAME);
        writer
            .send(&Frame::Hello {
                version: VERSION,
                user: address.user.clone(),
                password: address.password.clone(),
                vhost: address.vhost.clone(),
                max_frame: options.max_frame,
                client_name: options.client_name.clone(),
            })
            .await?;
        let welcome = match reader.next().await.map_err(Error::from) {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                return Err(Error::ConnectionLost(
                    "the broker ended the handshake".into(),
                ));
            }
            Err(Error::Closed { code, reason }) => return Err(Error::Refused { code, reason }),
            Err(e) => return Err(e),
        };
        match welcome {
            Frame::Welcome {
                max_frame,
                server_name,
                connection_id,
                ..
            } => {
                writer.set_max_frame(max_frame);
                Ok(Connection {
                    connection,
                    endpoint,
                    control: tokio::sync::Mutex::new(writer),
                    max_frame,
                    server_name,
                    connection_id,
                    channels: std::sync::Mutex::default(),
                })
            }
            Frame::Close { code, reason } => Err(Error::Refused { code, reason }),
            other => Err(Error::Unexpected(other.name())),
        }
    }

    /// Opens a channel: an independent, ordered stream of operations.
    pub async fn channel(&self) -> Result<Channel, Error> {
        let (send, recv) = self.connection.open_bi().await?;
        let channel = Channel::start(&self.connection, send, recv, self.max_frame);
        let mut channels = self.channels.lock().unwrap();
        channels.retain(|c| c.upgrade().is_some_and(|c| !c.is_ended()));
        channels.push(channel.downgrade());
        Ok(channel)
    }

    /// Why the connection ended, once it has: then every operation on it
    /// fails and only a new connection helps.
    pub fn close_reason(&self) -> Option<Error> {
        self.connection.close_reason().map(Error::from)
    }

    /// Resolves when the connection ends (the broker died or closed it, the
    /// network failed, or [`Connection::close`]), with why: a supervisor
    /// can wait on it to reconnect.
    pub async fn closed(&self) -> Error {
        self.connection.closed().await.into()
    }

    /// The largest frame the broker accepts on this connection.
    pub fn max_frame(&self) -> u32 {
        self.max_frame
    }

    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    pub fn connection_id(&self) -> u64 {
        self.connection_id
    }

    /// Closes every channel and the connection, waiting until the broker
    /// has been told. Each open channel is closed first, after everything
    /// sent on it: acks sent just before `close` are applied, not lost
    /// with the connection (a closing channel waits at most
    /// [`CHANNEL_CLOSE_WAIT`] for the broker).
    pub async fn close(self) {
        let open: Vec<Channel> = (self.channels.lock().unwrap().drain(..))
            .filter_map(|c| c.upgrade())
            .collect();
        futures::future::join_all(open.iter().map(|channel| async move {
            let _ = tokio::time::timeout(CHANNEL_CLOSE_WAIT, channel.close()).await;
        }))
        .await;
        let _ = self
            .control
            .lock()
            .await
            .send(&Frame::Close {
                code: 200,
                reason: "client closed the connection".into(),
            })
            .await;
        self.connection.close(quinn::VarInt::from_u32(200), b"bye");
        self.endpoint.wait_idle().await;
    }
}
