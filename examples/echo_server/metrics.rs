//! `--metrics ADDR`: the cache's metrics in Prometheus text at `http://ADDR/metrics`.
//!
//! The crate's [`SessionMetrics`] publishes the cache's counters into the `metrics`
//! facade; metrics-exporter-prometheus records and renders them. The example answers
//! the scrapes itself, in a few lines, instead of with the exporter's HTTP listener,
//! for two reasons: that listener takes an address and does not tell which port it
//! bound (the example prints the real one, for `--metrics 127.0.0.1:0`), and answering
//! here lets each scrape publish a fresh snapshot first, so a scrape is never stale.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use rustls_session_cache::metrics::SessionMetrics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tracing::debug;

/// The most a scrape's request head may hold; it is read for its first line only.
const MAX_REQUEST: usize = 8 * 1024;

/// Installs the Prometheus recorder. Metrics registered before this go nowhere, so it
/// comes first. Also drains its histograms every 5 s, scraped or not: each ClientHello
/// that waits for Redis adds a sample, and a peer decides how many hellos it sends.
pub fn install() -> Result<PrometheusHandle, String> {
    let prometheus = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|error| format!("cannot install the metrics recorder: {error}"))?;
    let upkeep = prometheus.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(5));
        loop {
            ticks.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(prometheus)
}

/// Serves `GET /metrics` on `addr` until the process ends; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    prometheus: PrometheusHandle,
    metrics: Arc<SessionMetrics>,
) -> Result<SocketAddr, String> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|error| format!("cannot listen for metrics on {addr}: {error}"))?;
    let bound = listener.local_addr().map_err(|error| error.to_string())?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (prometheus, metrics) = (prometheus.clone(), metrics.clone());
            tokio::spawn(async move {
                if let Err(error) = scrape(tcp, &prometheus, &metrics).await {
                    debug!(%error, "metrics scrape failed");
                }
            });
        }
    });
    Ok(bound)
}

/// One scrape: read the request head (at most [`MAX_REQUEST`] bytes, within 5 s), publish,
/// answer with the rendering, close.
async fn scrape(
    mut tcp: TcpStream,
    prometheus: &PrometheusHandle,
    metrics: &SessionMetrics,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let read_head = async {
        let mut buf = [0; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST {
            let n = tcp.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        std::io::Result::Ok(())
    };
    timeout(Duration::from_secs(5), read_head).await??;
    let response = if head.starts_with(b"GET /metrics ") {
        metrics.publish();
        let body = prometheus.render();
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    } else {
        "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
    };
    tcp.write_all(response.as_bytes()).await?;
    tcp.shutdown().await
}
