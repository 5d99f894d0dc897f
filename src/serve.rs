//! `kubetrail serve` and `kubetrail token`.

use std::path::PathBuf;

use anyhow::Context;
use kubetrail_query::server::tokens::{create_token, revoke_token};
use kubetrail_query::server::{serve as run_server, ServerSettings};

use crate::cli::{ServeCmd, TokenCmd};
use crate::config::Config;
use crate::Outcome;

const DEFAULT_ADDR: &str = "127.0.0.1:50051";

fn tokens_file(flag: Option<PathBuf>, config: &Config) -> anyhow::Result<PathBuf> {
    flag.or_else(|| config.server.tokens_file.clone()).context(
        "no tokens file: give --tokens-file or [server] tokens_file (kubetrail token create NAME --tokens-file FILE makes one)",
    )
}

pub async fn serve(cmd: ServeCmd, config: &Config) -> anyhow::Result<Outcome> {
    let lake = config.lake(cmd.lake.lake.as_deref())?;
    let tls = match (
        cmd.tls_cert.or_else(|| config.server.tls_cert.clone()),
        cmd.tls_key.or_else(|| config.server.tls_key.clone()),
    ) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => anyhow::bail!("[server] tls_cert and tls_key go together"),
    };
    let settings = ServerSettings {
        addr: cmd
            .addr
            .or(config.server.addr)
            .unwrap_or_else(|| DEFAULT_ADDR.parse().expect("a socket address")),
        tokens_file: tokens_file(cmd.tokens_file, config)?,
        limits: config.server.limits()?,
        metrics_addr: cmd.metrics_addr.or(config.server.metrics_addr),
        tls,
    };
    let scheme = if settings.tls.is_some() {
        "grpc+tls"
    } else {
        "grpc"
    };
    let lake_name = lake.display();
    run_server(&lake, &settings, crate::ingest::shutdown_signal(), |addr| {
        // The one line a script waits for.
        println!("serving {lake_name} at {scheme}://{addr}");
        tracing::info!(%addr, limits = ?settings.limits, "serving");
    })
    .await?;
    Ok(Outcome::Ok)
}

pub fn token(cmd: TokenCmd, config: &Config) -> anyhow::Result<Outcome> {
    match cmd {
        TokenCmd::Create {
            name,
            tokens_file: f,
        } => {
            let path = tokens_file(f, config)?;
            let token = create_token(&path, &name).map_err(anyhow::Error::msg)?;
            eprintln!(
                "token for {name} added to {} (only its hash is kept; this is the one time it is shown):",
                path.display()
            );
            println!("{token}");
        }
        TokenCmd::Revoke {
            name,
            tokens_file: f,
        } => {
            let path = tokens_file(f, config)?;
            revoke_token(&path, &name).map_err(anyhow::Error::msg)?;
            eprintln!("token for {name} revoked in {}", path.display());
        }
    }
    Ok(Outcome::Ok)
}
