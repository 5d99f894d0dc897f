//! Where each Kafka partition stands in the lake.
//!
//! Every table commit carries, for each partition it covers, the application transaction
//! `kubetrail:kafka/<topic>/<partition>` whose version is the last offset the table has
//! taken in (rows or not). Tables are committed one by one, so after a crash they may
//! disagree: reading resumes at the oldest of them, and a replayed record adds rows only to
//! the tables that do not already hold its offset.
//!
//! The marker names no consumer group: what a table holds does not depend on who read it,
//! so an ingester started under a new `--group` resumes where the lake stands instead of
//! reading the topics again, and two groups pointed at one lake by mistake fence each other
//! instead of writing every record twice. Lakes written before this (markers
//! `kubetrail/<group>/<topic>/<partition>`) are read through [`MarkerKey::legacy`] under the
//! ingester's own group; its first commit writes the new marker, after which any group
//! resumes.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use kubetrail_schemas::Table;

/// One partition of one topic. Ordered by partition number first: an ingester looks its
/// partition up for every record, and comparing numbers settles all but the last step,
/// where comparing topic names first cost a string comparison at every step.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionId {
    pub partition: i32,
    pub topic: Arc<str>,
}

impl PartitionId {
    pub fn new(topic: &str, partition: i32) -> Self {
        PartitionId {
            topic: Arc::from(topic),
            partition,
        }
    }

    /// The marker this partition's commits carry, with where an ingester of `group` may
    /// find it in a lake written before markers were group-independent.
    pub fn marker(&self, group: &str) -> MarkerKey {
        MarkerKey {
            // ':' keeps it apart from every legacy id, whatever the group was called.
            app_id: format!("kubetrail:kafka/{}/{}", self.topic, self.partition),
            legacy: format!("kubetrail/{group}/{}/{}", self.topic, self.partition),
        }
    }

    /// The `_source` of its rows.
    pub fn source(&self) -> String {
        format!("kafka:{}/{}", self.topic, self.partition)
    }
}

impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// A partition's marker: the app id commits write, and the legacy one read when a table
/// has no marker under the new id yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerKey {
    pub app_id: String,
    pub legacy: String,
}

/// The last offset of one partition each table holds; a table missing here holds none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableOffsets(BTreeMap<Table, i64>);

impl TableOffsets {
    pub fn get(&self, table: Table) -> Option<i64> {
        self.0.get(&table).copied()
    }

    pub fn set(&mut self, table: Table, offset: i64) {
        self.0.insert(table, offset);
    }

    /// Whether `table` already holds what the record at `offset` gives it.
    pub fn holds(&self, table: Table, offset: i64) -> bool {
        self.get(table).is_some_and(|last| offset <= last)
    }

    /// The first offset some table still lacks; `None` when a table holds nothing of the
    /// partition yet, so reading must start from the earliest record Kafka keeps.
    pub fn resume_at(&self) -> Option<i64> {
        Table::INGESTED
            .iter()
            .map(|t| self.get(*t).map(|last| last + 1))
            .collect::<Option<Vec<i64>>>()
            .and_then(|next| next.into_iter().min())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumes_at_the_oldest_table_and_filters_per_table() {
        let mut at = TableOffsets::default();
        assert_eq!(at.resume_at(), None);
        for t in Table::INGESTED {
            at.set(t, 99);
        }
        assert_eq!(at.resume_at(), Some(100));
        // A crash between two table commits: audit got to 149, dead letters stayed at 99.
        at.set(Table::K8sAudit, 149);
        assert_eq!(at.resume_at(), Some(100));
        assert!(at.holds(Table::K8sAudit, 120));
        assert!(!at.holds(Table::DeadLetters, 120));
        assert!(!at.holds(Table::K8sAudit, 150));
    }

    #[test]
    fn markers_name_topic_and_partition_not_the_group() {
        let p = PartitionId::new("k8s-audit", 2);
        assert_eq!(p.marker("kt").app_id, p.marker("other").app_id);
        assert_eq!(p.marker("kt").app_id, "kubetrail:kafka/k8s-audit/2");
        assert_eq!(p.marker("kt").legacy, "kubetrail/kt/k8s-audit/2");
        // A group called "kafka" under the old scheme cannot be mistaken for the new id.
        assert_ne!(p.marker("kafka").legacy, p.marker("kafka").app_id);
        assert_eq!(p.source(), "kafka:k8s-audit/2");
    }
}
