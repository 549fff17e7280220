//! Examples of the Switchyard client SDK (see the `[[example]]` targets),
//! and the connection set-up they share.

use switchyard_client::{ConnectOptions, Connection, Error, Trust};

/// Connects as `$SWITCHYARD_URL` (default: guest on 127.0.0.1:5673),
/// trusting the CA in `$SWITCHYARD_CA` (default: the development CA a
/// broker started in this directory generated, `data/tls/ca.pem`).
pub async fn connect_from_env() -> Result<Connection, Error> {
    let url = std::env::var("SWITCHYARD_URL")
        .unwrap_or_else(|_| "switchyard://guest:guest@127.0.0.1:5673/".into());
    let ca = std::env::var("SWITCHYARD_CA").unwrap_or_else(|_| "data/tls/ca.pem".into());
    Connection::connect(&url, ConnectOptions::new(Trust::ca_file(ca.as_ref())?)).await
}
