//! `kubetrail produce`: sample or captured files into a Kafka topic.

use kubetrail_ingest::kafka::{produce, Produce};
use kubetrail_ingest::InputPath;

use anyhow::Context;

use crate::cli::ProduceCmd;
use crate::config::Config;
use crate::Outcome;

pub async fn run(cmd: ProduceCmd, config: &Config) -> anyhow::Result<Outcome> {
    let brokers = cmd
        .brokers
        .or_else(|| config.kafka.brokers.clone())
        .context("no brokers: pass --brokers HOST:PORT or set kafka.brokers")?;
    let options = Produce {
        brokers,
        topic: cmd.topic,
        rate: cmd.rate,
        key_by_file: cmd.key_by_file,
        client_options: config.kafka.client_options(&cmd.kafka)?,
    };
    let paths: Vec<InputPath> = cmd.paths.iter().map(|p| InputPath::parse(p)).collect();
    let topic = options.topic.clone();
    let report = tokio::task::spawn_blocking(move || produce(&options, &paths)).await??;
    println!(
        "{} records ({} bytes) sent to {topic}{}",
        report.records,
        report.bytes,
        if report.skipped > 0 {
            format!("; {} records skipped (too long or cut off)", report.skipped)
        } else {
            String::new()
        }
    );
    Ok(Outcome::Ok)
}
