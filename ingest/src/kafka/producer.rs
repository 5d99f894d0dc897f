//! `produce`: native-format files into a topic, one Kafka record per event, framed the
//! same way file ingestion frames them (JSON lines, pretty JSON, arrays, text lines).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, ClientContext};

use super::broker_failures::BrokerFailures;
use super::ClientOptions;
use crate::error::IngestError;
use crate::source::{input, InputPath, NoProgress, RecordReader, DEFAULT_MAX_RECORD_BYTES};

#[derive(Debug, Clone)]
pub struct Produce {
    pub brokers: String,
    pub topic: String,
    /// Records per second; `None` sends as fast as the brokers take them.
    pub rate: Option<u32>,
    /// Key each record by its file's name: one file's records keep their order in one
    /// partition. Without keys, records spread over every partition.
    pub key_by_file: bool,
    pub client_options: ClientOptions,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProduceReport {
    pub records: u64,
    pub bytes: u64,
    /// Records the framing refused (too long, cut off): reported, never sent.
    pub skipped: u64,
}

struct Deliveries {
    failed: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
    failures: BrokerFailures,
}

struct DeliveryCount(Arc<Deliveries>);

impl ClientContext for DeliveryCount {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        self.0.failures.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.0.failures.error(&error, reason);
    }
}

impl ProducerContext for DeliveryCount {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_ok() {
            self.0.failures.answered();
        }
        if let Err((e, _)) = result {
            self.0.failed.fetch_add(1, Ordering::Relaxed);
            let mut first = self.0.first_error.lock().unwrap_or_else(|p| p.into_inner());
            first.get_or_insert_with(|| e.to_string());
        }
    }
}

/// Sends every record of `paths`, in order, and waits until the brokers have them all.
/// Blocking: call it from a blocking thread.
pub fn produce(options: &Produce, paths: &[InputPath]) -> Result<ProduceReport, IngestError> {
    let deliveries = Arc::new(Deliveries {
        failed: AtomicU64::new(0),
        first_error: Default::default(),
        failures: BrokerFailures::new(&options.client_options, None),
    });
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &options.brokers)
        .set("client.id", "kubetrail-produce")
        // Records without keys spread over the partitions one by one, not in sticky runs.
        .set("sticky.partitioning.linger.ms", "0")
        .set("linger.ms", "5")
        .set_log_level(RDKafkaLogLevel::Info);
    options.client_options.apply(&mut config);
    let producer: ThreadedProducer<DeliveryCount> = config
        .create_with_context(DeliveryCount(deliveries.clone()))
        .map_err(|e| IngestError::Kafka(format!("cannot create the Kafka producer: {e}")))?;
    let mut report = ProduceReport::default();
    let started = Instant::now();
    for path in paths {
        let key = options.key_by_file.then(|| path.source());
        let opened = input::open(path, Arc::new(NoProgress))?;
        for record in RecordReader::with_max_record_bytes(opened.reader, DEFAULT_MAX_RECORD_BYTES) {
            if record.head.problem.is_some() {
                report.skipped += 1;
                continue;
            }
            if let Some(rate) = options.rate.filter(|r| *r > 0) {
                let due = started + Duration::from_secs_f64(report.records as f64 / rate as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            send(
                &producer,
                &deliveries,
                &options.topic,
                key.as_deref(),
                &record.bytes,
            )?;
            report.records += 1;
            report.bytes += record.bytes.len() as u64;
        }
    }
    // A second at a time, so that a failure no retry mends ends the wait.
    let mut flushed = Err(KafkaError::Canceled);
    for _ in 0..60 {
        deliveries.failures.check()?;
        flushed = producer.flush(Duration::from_secs(1));
        if flushed.is_ok() {
            break;
        }
    }
    deliveries.failures.check()?;
    flushed.map_err(|e| {
        IngestError::Kafka(format!("waiting for the brokers to take the records: {e}"))
    })?;
    let failed = deliveries.failed.load(Ordering::Relaxed);
    if failed > 0 {
        let first = deliveries
            .first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default();
        return Err(IngestError::Kafka(format!(
            "{failed} of {} records were not delivered to '{}' (first error: {first})",
            report.records, options.topic
        )));
    }
    Ok(report)
}

fn send(
    producer: &ThreadedProducer<DeliveryCount>,
    deliveries: &Deliveries,
    topic: &str,
    key: Option<&str>,
    payload: &[u8],
) -> Result<(), IngestError> {
    let mut record = BaseRecord::<str, [u8]>::to(topic).payload(payload);
    if let Some(key) = key {
        record = record.key(key);
    }
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            // The local queue is full: wait for deliveries instead of buffering more.
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                deliveries.failures.check()?;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err((e, _)) => {
                return Err(IngestError::Kafka(format!("sending to '{topic}': {e}")));
            }
        }
    }
}
