//! One QUIC connection: the handshake on the first stream (authenticate,
//! negotiate the frame size), then a channel session per stream the client
//! opens. When the connection ends its exclusive queues are deleted.

use std::sync::Arc;
use std::time::Duration;

use switchyard_protocol::{
    BATCHED_DELIVERIES_SINCE, Frame, HANDSHAKE_MAX_FRAME, MIN_VERSION, VERSION, code,
};
use switchyard_transport::{FrameReader, FrameWriter, SharedBudget};
use tokio::sync::{Semaphore, mpsc};

use super::admission::{Ticket, open_after_login};
use super::channel::ChannelSession;
use switchyard_core::{Broker, BrokerError};

/// Frames queued for a channel's writer.
const CHANNEL_OUTBOUND: usize = 4096;

/// What every connection of a server is served with.
pub struct Settings {
    /// The largest frame the broker accepts.
    pub max_frame: u32,
    /// TLS and the `Hello` must be done within this.
    pub handshake_timeout: Duration,
    /// The broker-wide pool for frames being received.
    pub frames: SharedBudget,
    /// Each connection's share of it.
    pub frame_bytes_per_connection: usize,
}

/// `ticket`: the connection's place in the handshake phase and against its
/// address (`admission.rs`). `logins`: turns at checking a password (see
/// `handshake`).
pub async fn serve_connection(
    broker: Arc<Broker>,
    incoming: quinn::Incoming,
    mut ticket: Ticket,
    settings: Arc<Settings>,
    logins: Arc<Semaphore>,
) {
    // One deadline for TLS and the Hello: without one on TLS a client
    // could sit in it until the idle timeout, keep-alives and all.
    let deadline = tokio::time::Instant::now() + settings.handshake_timeout;
    let connection = match tokio::time::timeout_at(deadline, incoming).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "QUIC handshake failed");
            return;
        }
        Err(_) => {
            // Dropping the handshake abandons the connection.
            tracing::debug!("QUIC handshake timed out");
            return;
        }
    };
    let peer = connection.remote_address();
    let handshake = tokio::time::timeout_at(
        deadline,
        handshake(&broker, &connection, settings.max_frame, &logins),
    )
    .await;
    let (principal, info, mut control, negotiated, version) = match handshake {
        Ok(Ok(accepted)) => accepted,
        Ok(Err((code, reason))) => {
            tracing::info!(%peer, %reason, "connection refused");
            connection.close(quinn::VarInt::from_u32(code as u32), reason.as_bytes());
            return;
        }
        Err(_) => {
            connection.close(
                quinn::VarInt::from_u32(code::CONNECTION_FORCED as u32),
                b"handshake timed out",
            );
            return;
        }
    };
    ticket.logged_in();
    tracing::info!(%peer, user = %principal.user, vhost = %principal.vhost, id = info.id, "connection open");
    let budget = settings
        .frames
        .connection(settings.frame_bytes_per_connection);
    let principal = Arc::new(principal);
    let vhost = match broker.vhost(&principal.vhost) {
        Ok(vhost) => vhost,
        Err(e) => {
            connection.close(quinn::VarInt::from_u32(e.code as u32), e.message.as_bytes());
            return;
        }
    };
    let mut channels = tokio::task::JoinSet::new();
    let mut close_requested = info.close_requested.subscribe();
    loop {
        tokio::select! {
            _ = close_requested.changed() => {
                let reason = close_requested.borrow().clone().unwrap_or_default();
                tracing::info!(%peer, id = info.id, %reason, "connection closed by request");
                connection.close(quinn::VarInt::from_u32(code::CONNECTION_FORCED as u32), reason.as_bytes());
                break;
            }
            stream = connection.accept_bi() => {
                let Ok((send, recv)) = stream else { break };
                let (out, frames) = mpsc::channel(CHANNEL_OUTBOUND);
                tokio::spawn(FrameWriter::new(send, negotiated).pump(frames));
                if let Err(e) = broker.open_channel(&info) {
                    // Said on the refused stream; the connection goes on.
                    let _ = out.send(Frame::Close { code: e.code, reason: e.message }).await;
                    continue;
                }
                let batched = version >= BATCHED_DELIVERIES_SINCE;
                let session = ChannelSession::new(broker.clone(), principal.clone(), vhost.clone(), info.clone(), out, batched);
                let reader = FrameReader::new(recv, negotiated).with_budget(budget.clone());
                channels.spawn(session.run(reader));
            }
            frame = control.next() => {
                // Only Close is meaningful on the connection stream after the handshake.
                match frame {
                    Ok(Some(Frame::Close { .. })) | Ok(None) | Err(_) => break,
                    Ok(Some(other)) => {
                        let reason = format!("unexpected {} frame on the connection stream", other.name());
                        connection.close(quinn::VarInt::from_u32(code::UNEXPECTED_FRAME as u32), reason.as_bytes());
                        break;
                    }
                }
            }
            Some(_) = channels.join_next() => {}
        }
    }
    connection.close(quinn::VarInt::from_u32(200), b"closed");
    while channels.join_next().await.is_some() {}
    broker.disconnect(info.id);
    tracing::info!(%peer, id = info.id, "connection closed");
}

/// Who connected, the connection stream, the frame limit and the protocol
/// version agreed on.
type Accepted = (
    switchyard_core::Principal,
    Arc<switchyard_core::ConnectionInfo>,
    FrameReader,
    u32,
    u16,
);

async fn handshake(
    broker: &Arc<Broker>,
    connection: &quinn::Connection,
    max_frame: u32,
    logins: &Semaphore,
) -> Result<Accepted, (u16, String)> {
    let (send, recv) = connection
        .accept_bi()
        .await
        .map_err(|e| (code::CONNECTION_FORCED, e.to_string()))?;
    let mut reader = FrameReader::new(recv, HANDSHAKE_MAX_FRAME);
    let mut writer = FrameWriter::new(send, HANDSHAKE_MAX_FRAME);
    let hello = reader
        .next()
        .await
        .map_err(|e| (code::FRAME_ERROR, format!("handshake: {e}")))?;
    let Some(Frame::Hello {
        version,
        user,
        password,
        vhost,
        max_frame: client_max,
        client_name,
    }) = hello
    else {
        return Err((
            code::UNEXPECTED_FRAME,
            "the first frame of a connection must be Hello".into(),
        ));
    };
    if version < MIN_VERSION {
        return Err((
            code::NOT_ALLOWED,
            format!(
                "protocol version {version} is not supported (this broker speaks {MIN_VERSION} to {VERSION})"
            ),
        ));
    }
    // A newer client speaks this broker's version.
    let version = version.min(VERSION);
    let peer = connection.remote_address();
    // The core bounds password checks too, but a login waiting there holds
    // a blocking thread: a flood of them would starve the pool the confirm
    // pipelines and other blocking work share. Waiting here costs a future,
    // and a handshake that times out while waiting costs no argon2 at all.
    let _turn = logins
        .acquire()
        .await
        .map_err(|e| (code::INTERNAL_ERROR, e.to_string()))?;
    let auth_broker = broker.clone();
    let result = tokio::task::spawn_blocking(move || {
        auth_broker.connect(&user, &password, &vhost, peer, &client_name)
    })
    .await
    .map_err(|e| (code::INTERNAL_ERROR, e.to_string()))?;
    let (principal, info) = match result {
        Ok(accepted) => accepted,
        Err(BrokerError { code, message }) => {
            let _ = writer
                .send(&Frame::Close {
                    code,
                    reason: message.clone(),
                })
                .await;
            return Err((code, message));
        }
    };
    let negotiated = max_frame.min(client_max.max(HANDSHAKE_MAX_FRAME));
    // The client may now open its channels; the credit goes out before
    // (or with) the Welcome, so a client opening a channel at once does
    // not wait a round trip for it.
    open_after_login(connection);
    let welcome = Frame::Welcome {
        version,
        max_frame: negotiated,
        server_name: format!("switchyard {}", env!("CARGO_PKG_VERSION")),
        connection_id: info.id,
    };
    if let Err(e) = writer.send(&welcome).await {
        broker.disconnect(info.id);
        return Err((code::CONNECTION_FORCED, e.to_string()));
    }
    // Nothing more is sent on the connection stream; the client may still
    // send Close on its half.
    let _ = writer.finish().await;
    reader.set_max_frame(HANDSHAKE_MAX_FRAME);
    Ok((principal, info, reader, negotiated, version))
}
