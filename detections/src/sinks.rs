//! Where alerts go besides the `alerts` table: JSON lines (stdout or a file), a Kafka
//! topic, an HTTP webhook. Each alert goes as a change: `"change": "new"` when raised,
//! `"change": "update"` when an alert already sent has a later last seen, a higher count or
//! more evidence (same `alert_id`: a receiver keeps the latest; a compacted Kafka topic,
//! keyed by the id, does so by itself). Delivery is at least once: a round hands its
//! changes to the sinks before it commits them, so a crash in between re-sends them next
//! round.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use kubetrail_query::window::rfc3339;
use kubetrail_schemas::rows::Alert;

use crate::alerts::AlertChanges;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::{json, Value};

/// Attempts per webhook delivery, with doubling waits from one second.
pub const WEBHOOK_ATTEMPTS: u32 = 5;

pub enum AlertSink {
    /// `-` is standard output.
    JsonLines(Option<PathBuf>),
    Kafka {
        topic: String,
        producer: FutureProducer,
    },
    Webhook {
        url: String,
        client: reqwest::Client,
        first_wait: Duration,
    },
}

impl AlertSink {
    /// `jsonl:-`, `jsonl:/var/log/kubetrail/alerts.jsonl`, `kafka:HOST:PORT[,..]/TOPIC`,
    /// `webhook:https://hooks.example.com/kubetrail`. `kafka_settings` are librdkafka
    /// settings for a Kafka sink's producer (TLS, SASL), over ours.
    pub fn parse<'a>(
        spec: &str,
        kafka_settings: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<AlertSink, String> {
        let (kind, target) = spec.split_once(':').ok_or_else(|| {
            format!("sink '{spec}' must be jsonl:PATH, kafka:BROKERS/TOPIC or webhook:URL")
        })?;
        match kind {
            "jsonl" if target == "-" => Ok(AlertSink::JsonLines(None)),
            "jsonl" if !target.is_empty() => Ok(AlertSink::JsonLines(Some(PathBuf::from(target)))),
            "kafka" => {
                let (brokers, topic) = target
                    .rsplit_once('/')
                    .filter(|(b, t)| !b.is_empty() && !t.is_empty())
                    .ok_or_else(|| format!("kafka sink '{target}' must be BROKERS/TOPIC"))?;
                let mut config = ClientConfig::new();
                config
                    .set("bootstrap.servers", brokers)
                    .set("client.id", "kubetrail-alerts")
                    .set("message.timeout.ms", "30000");
                for (key, value) in kafka_settings {
                    config.set(key, value);
                }
                let producer = config.create().map_err(|e| format!("kafka sink: {e}"))?;
                Ok(AlertSink::Kafka {
                    topic: topic.to_owned(),
                    producer,
                })
            }
            "webhook" => {
                let url =
                    url::Url::parse(target).map_err(|e| format!("webhook sink '{target}': {e}"))?;
                if url.scheme() != "http" && url.scheme() != "https" {
                    return Err(format!("webhook sink '{target}' must be an http(s) URL"));
                }
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .user_agent(concat!("kubetrail/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| format!("webhook sink: {e}"))?;
                Ok(AlertSink::Webhook {
                    url: url.to_string(),
                    client,
                    first_wait: Duration::from_secs(1),
                })
            }
            _ => Err(format!(
                "sink '{spec}' must be jsonl:PATH, kafka:BROKERS/TOPIC or webhook:URL"
            )),
        }
    }

    /// The first wait between webhook attempts (it doubles after each); other sinks do
    /// not retry on their own (librdkafka does for Kafka).
    pub fn with_retry_wait(mut self, wait: Duration) -> Self {
        if let AlertSink::Webhook { first_wait, .. } = &mut self {
            *first_wait = wait;
        }
        self
    }

    pub fn describe(&self) -> String {
        match self {
            AlertSink::JsonLines(None) => "JSON lines to standard output".into(),
            AlertSink::JsonLines(Some(p)) => format!("JSON lines to {}", p.display()),
            AlertSink::Kafka { topic, .. } => format!("Kafka topic {topic}"),
            AlertSink::Webhook { url, .. } => format!("webhook {url}"),
        }
    }

    /// Hands the changes over; the error says what could not be delivered.
    pub async fn deliver(&self, changes: &AlertChanges) -> Result<(), String> {
        let alerts: Vec<Value> = changes
            .new
            .iter()
            .map(|a| alert_json(a, Change::New))
            .chain(
                changes
                    .updated
                    .iter()
                    .map(|a| alert_json(a, Change::Update)),
            )
            .collect();
        let ids = changes
            .new
            .iter()
            .chain(&changes.updated)
            .map(|a| &a.alert_id);
        if alerts.is_empty() {
            return Ok(());
        }
        match self {
            AlertSink::JsonLines(target) => {
                let mut text = String::new();
                for a in &alerts {
                    text.push_str(&a.to_string());
                    text.push('\n');
                }
                match target {
                    None => {
                        let mut out = std::io::stdout().lock();
                        out.write_all(text.as_bytes())
                            .and_then(|_| out.flush())
                            .map_err(|e| format!("stdout: {e}"))
                    }
                    Some(path) => std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .and_then(|mut f| f.write_all(text.as_bytes()))
                        .map_err(|e| format!("{}: {e}", path.display())),
                }
            }
            AlertSink::Kafka { topic, producer } => {
                for (a, id) in alerts.iter().zip(ids) {
                    let payload = a.to_string();
                    producer
                        .send(
                            FutureRecord::to(topic).key(id).payload(&payload),
                            Duration::from_secs(30),
                        )
                        .await
                        .map_err(|(e, _)| format!("kafka topic {topic}: {e}"))?;
                }
                Ok(())
            }
            AlertSink::Webhook {
                url,
                client,
                first_wait,
            } => {
                let body = json!({
                    "source": "kubetrail",
                    "alerts": alerts,
                })
                .to_string();
                let mut wait = *first_wait;
                let mut last = String::new();
                for attempt in 1..=WEBHOOK_ATTEMPTS {
                    let request = client
                        .post(url)
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body.clone());
                    match request.send().await {
                        Ok(r) if r.status().is_success() => return Ok(()),
                        Ok(r) => last = format!("HTTP {}", r.status()),
                        Err(e) => last = e.to_string(),
                    }
                    if attempt < WEBHOOK_ATTEMPTS {
                        tracing::warn!(%url, attempt, error = %last, "webhook delivery failed; retrying");
                        tokio::time::sleep(wait).await;
                        wait *= 2;
                    }
                }
                Err(format!(
                    "webhook {url}: {last} after {WEBHOOK_ATTEMPTS} attempts"
                ))
            }
        }
    }
}

/// Whether a sink is told of an alert for the first time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    New,
    Update,
}

/// An alert as sinks send it: times in RFC 3339.
pub fn alert_json(a: &Alert, change: Change) -> Value {
    json!({
        "change": match change {
            Change::New => "new",
            Change::Update => "update",
        },
        "alert_id": a.alert_id,
        "rule_id": a.rule_id,
        "title": a.title,
        "severity": a.severity,
        "mitre": a.mitre,
        "tags": a.tags,
        "entity": a.entity,
        "entity_values": a.entity_values,
        "first_seen": rfc3339(a.first_seen),
        "last_seen": rfc3339(a.last_seen),
        "event_count": a.event_count,
        "summary": a.summary,
        "evidence": a.evidence,
        "window_start": rfc3339(a.window_start),
        "window_end": rfc3339(a.window_end),
        "detected_at": rfc3339(a.detected_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinks_are_named_the_way_operators_write_them() {
        assert!(matches!(
            AlertSink::parse("jsonl:-", []),
            Ok(AlertSink::JsonLines(None))
        ));
        assert!(matches!(
            AlertSink::parse("kafka:127.0.0.1:9092/alerts", []),
            Ok(AlertSink::Kafka { .. })
        ));
        assert!(matches!(
            AlertSink::parse("webhook:https://hooks.example.com/x", []),
            Ok(AlertSink::Webhook { .. })
        ));
        for bad in [
            "jsonl:",
            "kafka:127.0.0.1:9092",
            "webhook:ftp://x",
            "webhook:not a url",
            "email:x",
            "stdout",
        ] {
            assert!(AlertSink::parse(bad, []).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_kafka_sink_takes_the_client_settings() {
        let secure = [
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", "kubetrail"),
            ("sasl.password", "s3cret"),
        ];
        if let Err(e) = AlertSink::parse("kafka:127.0.0.1:9092/alerts", secure) {
            panic!("{e}");
        }
        let refused = AlertSink::parse(
            "kafka:127.0.0.1:9092/alerts",
            [("security.protocol", "CARRIER_PIGEON")],
        );
        let e = refused.err().expect("librdkafka refuses the setting");
        assert!(e.contains("security.protocol"), "{e}");
    }
}
