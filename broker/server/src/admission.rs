//! Who may begin a connection, and what a connection holds before it has
//! logged in (issue 27). An unauthenticated client must cost the broker
//! little, and a flood of them must not crowd out real clients:
//!
//! - before any TLS work, an `Incoming` is refused when too many
//!   connections are in the handshake phase (from its address, or in all),
//!   or when its address holds too many connections already; when the
//!   handshake phase fills up, unvalidated addresses must first answer a
//!   QUIC Retry, so a spoofed source cannot take another address's places;
//! - until the `Hello` is accepted the connection may open only the
//!   handshake stream and have 64 KiB in flight (the transport config
//!   says so from the first packet: [`restrict_before_login`]); the login
//!   raises both to the usual windows ([`open_after_login`]);
//! - the whole handshake, TLS included, has a deadline (`connection.rs`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchyard_base::ratelimit::LogLimiter;
use switchyard_core::Limits;

/// Bytes a connection may have in flight on all its streams before it has
/// logged in: a `Hello` is at most 64 KiB (`HANDSHAKE_MAX_FRAME`), and the
/// handshake reader gives the credit back as it reads. 150 connections
/// pushing on extra streams held 1.9 GB when this was the usual 16 MiB.
pub const PRE_LOGIN_WINDOW: u32 = 64 << 10;

/// The transport settings of a connection that has not logged in: the
/// handshake stream only (bidirectional, one), no unidirectional streams,
/// a small connection window. Datagrams are off for good: the protocol
/// has none, and quinn would buffer 1.25 MB of unread ones per connection.
pub fn restrict_before_login(transport: &mut quinn::TransportConfig) {
    transport
        .max_concurrent_bidi_streams(quinn::VarInt::from_u32(1))
        .max_concurrent_uni_streams(quinn::VarInt::from_u32(0))
        .receive_window(quinn::VarInt::from_u32(PRE_LOGIN_WINDOW))
        .datagram_receive_buffer_size(None);
}

/// After the login: the channel streams and windows every client had from
/// the start before issue 27 (`switchyard_transport::tune_transport`).
/// Unidirectional streams stay at none; the protocol uses none.
pub fn open_after_login(connection: &quinn::Connection) {
    connection.set_receive_window(quinn::VarInt::from_u32(
        switchyard_transport::CONNECTION_WINDOW,
    ));
    connection
        .set_max_concurrent_bi_streams(quinn::VarInt::from_u32(switchyard_transport::MAX_STREAMS));
}

/// The addresses' counts of connections, shared by the accept loop and the
/// connections' tickets.
pub struct Admission {
    max_handshakes: u32,
    max_handshakes_per_address: u32,
    max_connections_per_address: u32,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    handshakes: u32,
    by_source: HashMap<IpAddr, Counts>,
    /// Refusals are a flood's doing: logged once a second at most, per
    /// limit.
    log: HashMap<&'static str, LogLimiter>,
}

#[derive(Default, Clone, Copy)]
struct Counts {
    handshakes: u32,
    connections: u32,
}

/// Why an `Incoming` was turned away: the limit's key and value.
pub struct Refusal {
    pub key: &'static str,
    pub limit: u32,
}

/// What to do with an `Incoming`.
pub enum Decision {
    Admit(Ticket),
    /// Ask the client to prove its address first (a QUIC Retry).
    Validate,
    Refuse(Refusal),
}

/// A connection's place: in the handshake phase until [`Ticket::logged_in`],
/// counted against its address until dropped.
pub struct Ticket {
    admission: Arc<Admission>,
    source: IpAddr,
    handshaking: bool,
}

impl Admission {
    pub fn new(limits: &Limits) -> Arc<Admission> {
        Arc::new(Admission {
            max_handshakes: limits.max_handshakes,
            max_handshakes_per_address: limits.max_handshakes_per_address,
            max_connections_per_address: limits.max_connections_per_address,
            state: Mutex::new(State::default()),
        })
    }

    /// Decides on a connection attempt from `address`; `validated` if the
    /// client has already proved it receives at that address.
    pub fn decide(self: &Arc<Self>, address: IpAddr, validated: bool) -> Decision {
        let source = source(address);
        let mut state = self.state.lock().unwrap();
        let counts = state.by_source.get(&source).copied().unwrap_or_default();
        let refusal = if state.handshakes >= self.max_handshakes {
            Some(("max_handshakes", self.max_handshakes))
        } else if counts.handshakes >= self.max_handshakes_per_address {
            Some((
                "max_handshakes_per_address",
                self.max_handshakes_per_address,
            ))
        } else if counts.connections >= self.max_connections_per_address {
            Some((
                "max_connections_per_address",
                self.max_connections_per_address,
            ))
        } else {
            None
        };
        if let Some((key, limit)) = refusal {
            return Decision::Refuse(Refusal { key, limit });
        }
        // Half full: the places left go to clients that can show their
        // address is theirs (a Retry costs them a round trip, no more).
        let crowded = state.handshakes >= self.max_handshakes / 2
            || counts.handshakes >= self.max_handshakes_per_address / 2;
        if crowded && !validated {
            return Decision::Validate;
        }
        state.handshakes += 1;
        let counts = state.by_source.entry(source).or_default();
        counts.handshakes += 1;
        counts.connections += 1;
        Decision::Admit(Ticket {
            admission: self.clone(),
            source,
            handshaking: true,
        })
    }

    /// Logs a refusal, naming its key (the client only sees QUIC's
    /// CONNECTION_REFUSED: saying more would take the TLS work refused).
    pub fn log_refusal(&self, address: IpAddr, refusal: &Refusal) {
        let mut state = self.state.lock().unwrap();
        let log = (state.log)
            .entry(refusal.key)
            .or_insert_with(|| LogLimiter::new(Duration::from_secs(1)));
        let Some(held_back) = log.admit(Instant::now()) else {
            return;
        };
        tracing::warn!(
            %address,
            "connection refused before TLS: the limit is {} (limits.{} in the broker's \
             configuration); {held_back} more refused by it since the last warning",
            refusal.limit,
            refusal.key,
        );
    }

    fn release(&self, source: IpAddr, handshaking: bool, connection: bool) {
        let mut state = self.state.lock().unwrap();
        if handshaking {
            state.handshakes -= 1;
        }
        let Some(counts) = state.by_source.get_mut(&source) else {
            return;
        };
        if handshaking {
            counts.handshakes -= 1;
        }
        if connection {
            counts.connections -= 1;
        }
        if counts.connections == 0 {
            state.by_source.remove(&source);
        }
    }
}

impl Ticket {
    /// The connection logged in: it leaves the handshake phase (and stays
    /// counted against its address).
    pub fn logged_in(&mut self) {
        if std::mem::take(&mut self.handshaking) {
            self.admission.release(self.source, true, false);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admission.release(self.source, self.handshaking, true);
    }
}

/// The source a connection counts against: an IPv4 address (also when
/// mapped into IPv6), or an IPv6 address's /64, the least a site gets.
fn source(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(handshakes: u32, per_address: u32, connections: u32) -> Arc<Admission> {
        Admission::new(&Limits {
            max_handshakes: handshakes,
            max_handshakes_per_address: per_address,
            max_connections_per_address: connections,
            ..Limits::default()
        })
    }

    fn admit(admission: &Arc<Admission>, address: &str) -> Result<Ticket, &'static str> {
        match admission.decide(address.parse().unwrap(), true) {
            Decision::Admit(ticket) => Ok(ticket),
            Decision::Validate => Err("validate"),
            Decision::Refuse(refusal) => Err(refusal.key),
        }
    }

    #[test]
    fn handshakes_are_bounded_per_address_and_in_all_and_released() {
        let admission = admission(3, 2, 10);
        let a1 = admit(&admission, "192.0.2.1").unwrap();
        let _a2 = admit(&admission, "192.0.2.1").unwrap();
        assert_eq!(
            admit(&admission, "192.0.2.1").err(),
            Some("max_handshakes_per_address")
        );
        let _b1 = admit(&admission, "192.0.2.2").unwrap();
        assert_eq!(admit(&admission, "192.0.2.3").err(), Some("max_handshakes"));
        drop(a1);
        let _c1 = admit(&admission, "192.0.2.3").unwrap();
    }

    #[test]
    fn logged_in_connections_count_per_address_only() {
        let admission = admission(1, 1, 2);
        let mut first = admit(&admission, "2001:db8::1").unwrap();
        first.logged_in();
        // Same /64: the same source.
        let mut second = admit(&admission, "2001:db8::2").unwrap();
        second.logged_in();
        assert_eq!(
            admit(&admission, "2001:db8::3").err(),
            Some("max_connections_per_address")
        );
        // Another /64 has its own count.
        let mut other = admit(&admission, "2001:db8:0:1::1").unwrap();
        other.logged_in();
        drop(first);
        let _again = admit(&admission, "2001:db8::3").unwrap();
    }

    #[test]
    fn a_crowded_handshake_phase_asks_unvalidated_clients_to_retry() {
        let admission = admission(4, 4, 10);
        let _a = admit(&admission, "192.0.2.1").unwrap();
        let _b = admit(&admission, "192.0.2.2").unwrap();
        assert!(matches!(
            admission.decide("192.0.2.3".parse().unwrap(), false),
            Decision::Validate
        ));
        let _c = admit(&admission, "192.0.2.3").unwrap();
    }

    #[test]
    fn mapped_ipv4_counts_as_ipv4() {
        assert_eq!(
            source("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }
}
