//! `--scrape-metrics`: during the run, fetch the broker's `/metrics` once
//! a second (as guest), as a Prometheus server would scrape it — so that
//! a run with and one without measure what metrics cost.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;

/// One scrape; the bytes of the answer.
fn scrape(address: SocketAddr) -> std::io::Result<usize> {
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let token = base64::engine::general_purpose::STANDARD.encode("guest:guest");
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {address}\r\nAuthorization: Basic {token}\r\n\
         Accept: application/openmetrics-text\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    Ok(answer.len())
}

/// Scrapes `address` every second until the task is aborted; how many
/// scrapes succeeded is logged at the end of the run by the caller.
pub async fn scrape_every_second(address: SocketAddr) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let scraped = tokio::task::spawn_blocking(move || scrape(address)).await;
        if let Ok(Err(e)) = scraped {
            tracing::warn!(error = %e, "scraping /metrics failed");
        }
    }
}
