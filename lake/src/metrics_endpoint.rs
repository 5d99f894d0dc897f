//! The Prometheus text endpoint of kubetrail's long-running commands (`ingest kafka`,
//! `serve`): `GET /metrics` on an address of the operator's, answered with what a command
//! renders. Here, below both, so that each serves its own metrics the one way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What a scrape answers: the metrics in Prometheus's text format.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// Binds `addr` now (so a taken port is reported at start) and answers `GET /metrics`
/// with `render()` in the background for as long as the runtime lives.
pub async fn serve(addr: SocketAddr, render: Render) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("metrics address {addr}: {e}")))?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let render = render.clone();
            tokio::spawn(async move {
                let mut request = vec![0u8; 8192];
                let mut len = 0;
                // Read the request head only; anything else a scraper sends is ignored.
                while len < request.len() {
                    match tokio::time::timeout(
                        Duration::from_secs(5),
                        stream.read(&mut request[len..]),
                    )
                    .await
                    {
                        Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
                        Ok(Ok(n)) => len += n,
                    }
                    if request[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let head = String::from_utf8_lossy(&request[..len]);
                let path = head.split_whitespace().nth(1).unwrap_or("");
                let (status, body) = if path == "/metrics" || path == "/" {
                    ("200 OK", render())
                } else {
                    ("404 Not Found", "not found; try /metrics\n".to_owned())
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Ok(bound)
}
