//! What every client command shares: where the broker is, how its
//! certificate is verified, and how results are printed.

use std::path::PathBuf;

use anyhow::{Context, anyhow};
use clap::Args;
use switchyard_client::{Channel, ConnectOptions, Connection, Field, Trust, Value};

use crate::server::DEV_CA;

#[derive(Args, Clone)]
pub struct ClientArgs {
    /// Broker URL: switchyard://user:password@host:port/vhost
    #[arg(
        long,
        env = "SWITCHYARD_URL",
        default_value = "switchyard://guest:guest@127.0.0.1:5673/"
    )]
    pub server: String,
    /// The broker's data dir, where its development CA (tls/ca.pem) is.
    #[arg(long, env = "SWITCHYARD_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// CA certificate (PEM) the broker's certificate must chain to.
    #[arg(long, env = "SWITCHYARD_CA")]
    pub ca: Option<PathBuf>,
}

impl ClientArgs {
    pub fn trust(&self) -> anyhow::Result<Trust> {
        let path = match &self.ca {
            Some(path) => path.clone(),
            None => {
                let path = self.data_dir.join(DEV_CA);
                if !path.exists() {
                    return Err(anyhow!(
                        "no CA certificate to verify the broker with: {} does not exist; pass --ca FILE \
                         or the broker's --data-dir",
                        path.display()
                    ));
                }
                path
            }
        };
        Ok(Trust::ca_file(&path)?)
    }

    pub async fn connect(&self) -> anyhow::Result<(Connection, Channel)> {
        let mut options = ConnectOptions::new(self.trust()?);
        options.client_name = format!(
            "switchyard-cli {}",
            std::env::args().nth(1).unwrap_or_default()
        );
        let connection = Connection::connect(&self.server, options).await?;
        let channel = connection.channel().await?;
        Ok((connection, channel))
    }
}

/// Closes the channel once the broker has applied everything sent on it,
/// then the connection.
pub async fn finish(connection: Connection, channel: Channel) {
    let _ = channel.close().await;
    connection.close().await;
}

/// Runs an async command on a fresh runtime.
pub fn block_on<T>(
    future: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(future)
}

/// Parses `k=v` arguments into typed fields (integers and booleans typed).
pub fn parse_fields(pairs: &[String]) -> anyhow::Result<Vec<Field>> {
    pairs
        .iter()
        .map(|pair| {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| anyhow!("'{pair}' is not of the form key=value"))?;
            Ok(Field::new(name, Value::parse_text(value)))
        })
        .collect()
}

pub fn value_text(value: &Value) -> String {
    match value {
        Value::Void => String::new(),
        Value::Binary(b) => format!("0x{}", hex::encode(b)),
        Value::TextList(items) => items.join(","),
        other => other.as_text().unwrap_or_default(),
    }
}

pub fn value_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Void => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Float(f) => (*f).into(),
        Value::Timestamp(t) => (*t).into(),
        Value::TextList(items) => items.clone().into(),
        other => value_text(other).into(),
    }
}

/// Prints rows as an aligned table (or JSON lines).
pub fn print_rows(rows: &[Vec<Field>], json: bool) {
    if json {
        for row in rows {
            let object: serde_json::Map<String, serde_json::Value> = row
                .iter()
                .map(|f| (f.name.clone(), value_json(&f.value)))
                .collect();
            println!("{}", serde_json::Value::Object(object));
        }
        return;
    }
    let Some(first) = rows.first() else {
        return;
    };
    let headers: Vec<&str> = first.iter().map(|f| f.name.as_str()).collect();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|f| value_text(&f.value)).collect())
        .collect();
    let widths: Vec<usize> = (0..headers.len())
        .map(|i| {
            cells
                .iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .chain([headers[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cols: Vec<&str>| {
        let padded: Vec<String> = cols
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.clone());
    for row in &cells {
        line(row.iter().map(String::as_str).collect());
    }
}
