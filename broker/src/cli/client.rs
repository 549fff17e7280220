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
        Value::Timestamp(ms) => utc_time(*ms),
        other => other.as_text().unwrap_or_default(),
    }
}

/// `2026-11-29T22:57:33Z`: the broker sends times as milliseconds since
/// the Unix epoch, which people cannot read; whole seconds are enough for
/// a table. (JSON output keeps the number, for scripts.)
pub fn utc_time(ms: u64) -> String {
    let seconds = ms / 1000;
    let (days, second_of_day) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

/// The Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`), so that printing a time needs no date crate.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153; // 0 = March
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

pub use crate::broker::{row_json, value_json};

/// Prints rows as an aligned table (or JSON lines).
pub fn print_rows(rows: &[Vec<Field>], json: bool) {
    if json {
        for row in rows {
            println!("{}", row_json(row));
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

#[cfg(test)]
mod tests {
    use super::utc_time;

    #[test]
    fn times_print_as_utc() {
        assert_eq!(utc_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_time(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(utc_time(1_796_000_253_999), "2026-11-30T00:57:33Z");
        assert_eq!(utc_time(4_102_444_799_000), "2099-12-31T23:59:59Z");
    }
}
