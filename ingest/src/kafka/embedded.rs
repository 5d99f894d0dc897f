//! An in-process Kafka cluster (librdkafka's mock cluster) for the demo and the tests:
//! real brokers speaking the Kafka protocol on loopback ports, with nothing to install.

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

use crate::error::IngestError;

pub struct EmbeddedKafka {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl EmbeddedKafka {
    /// Starts `brokers` brokers with the given topics and partition counts.
    pub fn start(brokers: i32, topics: &[(&str, i32)]) -> Result<Self, IngestError> {
        let cluster = MockCluster::new(brokers)
            .map_err(|e| IngestError::Kafka(format!("starting the embedded Kafka cluster: {e}")))?;
        for (name, partitions) in topics {
            cluster
                .create_topic(name, *partitions, 1)
                .map_err(|e| IngestError::Kafka(format!("creating topic '{name}': {e}")))?;
        }
        Ok(EmbeddedKafka { cluster })
    }

    /// `host:port,...` for `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Takes a broker down (connections refused) until [`EmbeddedKafka::broker_up`].
    pub fn broker_down(&self, broker_id: i32) -> Result<(), IngestError> {
        self.cluster
            .broker_down(broker_id)
            .map_err(|e| IngestError::Kafka(e.to_string()))
    }

    pub fn broker_up(&self, broker_id: i32) -> Result<(), IngestError> {
        self.cluster
            .broker_up(broker_id)
            .map_err(|e| IngestError::Kafka(e.to_string()))
    }

    /// Answers the next `heartbeats` heartbeats with "unknown member": the members'
    /// sessions count as expired and their assignments as lost, as when a broker or the
    /// network stalls past `session.timeout.ms` (fault injection, for the tests).
    pub fn expire_sessions(&self, heartbeats: usize) {
        let errors = vec![RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID; heartbeats];
        self.cluster
            .request_errors(RDKafkaApiKey::Heartbeat, &errors);
    }
}
