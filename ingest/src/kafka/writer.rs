//! The async half of the Kafka ingester: writes the batches the consumer thread hands
//! over and commits them with their partition markers when asked.
//!
//! It owns one [`TableWriter`] per table. Requests arrive over one bounded channel in the
//! order the consumer made them, so a commit always covers every batch sent before it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use kubetrail_schemas::Table;
use tokio::sync::{mpsc, oneshot};

use super::position::MarkerKey;
use crate::metrics::IngestMetrics;
use kubetrail_lake::{CommitMarker, Lake, LakeError, Origin, TableWriter};

/// A partition marker to move forward in one commit.
#[derive(Debug, Clone)]
pub(crate) struct MarkerUpdate {
    pub key: MarkerKey,
    /// What this ingester believes the table holds now; anything else means another
    /// ingester wrote the partition meanwhile.
    pub expected: Option<i64>,
    pub version: i64,
    /// The records this commit covers, for its custody manifest.
    pub origin: Origin,
}

/// Per table, the versions of the app ids asked for, in the order asked.
pub(crate) type MarkersByTable = BTreeMap<Table, Vec<Option<i64>>>;

#[derive(Debug)]
pub(crate) enum WriterRequest {
    Stage(Table, RecordBatch),
    Commit {
        table: Table,
        markers: Vec<MarkerUpdate>,
        reply: oneshot::Sender<Result<(u64, u64), WriteError>>,
    },
    /// Forget everything staged in every table: the consumer is re-reading from the
    /// lake's markers, and what was staged would be staged again.
    DiscardAll,
    /// The marker versions of these app ids in every table.
    Markers {
        keys: Vec<MarkerKey>,
        reply: oneshot::Sender<Result<MarkersByTable, WriteError>>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(
        "table {table}: marker {app_id} is at {found:?}, expected {expected:?}: another ingester \
         wrote this partition (a consumer that lost its assignment must not commit)"
    )]
    Fenced {
        table: Table,
        app_id: String,
        expected: Option<i64>,
        found: Option<i64>,
    },
    #[error("an earlier batch of table {0} failed to write: {1}")]
    Poisoned(Table, String),
}

/// Serves requests until the consumer side drops its sender.
pub(crate) async fn serve(
    lake: Lake,
    mut requests: mpsc::Receiver<WriterRequest>,
    metrics: Arc<IngestMetrics>,
) {
    let mut writers: BTreeMap<Table, TableWriter> = BTreeMap::new();
    // A failed stage leaves the table's staged set incomplete: its next commit must fail
    // rather than publish a partial batch under an advancing marker.
    let mut poisoned: BTreeMap<Table, String> = BTreeMap::new();
    while let Some(request) = requests.recv().await {
        match request {
            WriterRequest::Stage(table, batch) => {
                metrics.batch(batch.num_rows());
                let staged = match writer_for(&lake, &mut writers, table).await {
                    Ok(w) => w.stage(batch).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = staged {
                    poisoned.insert(table, e.to_string());
                }
            }
            WriterRequest::Commit {
                table,
                markers,
                reply,
            } => {
                let started = Instant::now();
                let result = match poisoned.remove(&table) {
                    Some(reason) => {
                        if let Some(w) = writers.get_mut(&table) {
                            w.abandon().await;
                        }
                        Err(WriteError::Poisoned(table, reason))
                    }
                    None => commit(&lake, &mut writers, table, &markers).await,
                };
                if let Ok((_, rows)) = &result {
                    metrics.committed(table, *rows, started.elapsed());
                }
                if let Ok((version, rows)) = &result {
                    tracing::info!(
                        %table,
                        rows,
                        version,
                        partitions = markers.len(),
                        ms = started.elapsed().as_millis() as u64,
                        "committed"
                    );
                }
                let _ = reply.send(result);
            }
            WriterRequest::DiscardAll => {
                for w in writers.values_mut() {
                    w.abandon().await;
                }
                poisoned.clear();
            }
            WriterRequest::Markers { keys, reply } => {
                let mut all = BTreeMap::new();
                let mut failed = None;
                for table in Table::INGESTED {
                    match writer_for(&lake, &mut writers, table).await {
                        Ok(w) => match held(w, &keys).await {
                            Ok(v) => {
                                all.insert(table, v);
                            }
                            Err(e) => failed = Some(e),
                        },
                        Err(e) => failed = Some(e),
                    }
                }
                let _ = reply.send(match failed {
                    Some(e) => Err(e.into()),
                    None => Ok(all),
                });
            }
        }
    }
}

async fn writer_for<'a>(
    lake: &Lake,
    writers: &'a mut BTreeMap<Table, TableWriter>,
    table: Table,
) -> Result<&'a mut TableWriter, LakeError> {
    Ok(match writers.entry(table) {
        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::btree_map::Entry::Vacant(e) => {
            e.insert(TableWriter::open(lake, table).await?)
        }
    })
}

/// Checks that the markers are where this ingester left them, then commits the staged
/// files with the new versions. The check and the commit read the same snapshot, and
/// Delta refuses the commit if another one touching the same app ids lands in between.
async fn commit(
    lake: &Lake,
    writers: &mut BTreeMap<Table, TableWriter>,
    table: Table,
    markers: &[MarkerUpdate],
) -> Result<(u64, u64), WriteError> {
    let writer = writer_for(lake, writers, table).await?;
    let keys: Vec<MarkerKey> = markers.iter().map(|m| m.key.clone()).collect();
    let found = held(writer, &keys).await?;
    for (m, found) in markers.iter().zip(found) {
        if found != m.expected {
            writer.abandon().await;
            return Err(WriteError::Fenced {
                table,
                app_id: m.key.app_id.clone(),
                expected: m.expected,
                found,
            });
        }
    }
    let rows = writer.staged_rows() as u64;
    let new: Vec<CommitMarker> = markers
        .iter()
        .map(|m| CommitMarker {
            app_id: m.key.app_id.clone(),
            version: m.version,
        })
        .collect();
    let origins: Vec<Origin> = markers.iter().map(|m| m.origin.clone()).collect();
    let version = match writer.commit(&new, &origins).await {
        Ok(version) => version,
        // A failure may be the answer lost after the commit landed: the markers tell.
        Err(e) => match held(writer, &keys).await {
            Ok(now)
                if !markers.is_empty()
                    && markers.iter().zip(&now).all(|(m, v)| *v == Some(m.version)) =>
            {
                tracing::warn!(%table, "the commit landed though its answer was lost: {e}");
                writer.version()
            }
            _ => return Err(e.into()),
        },
    };
    Ok((version, rows))
}

/// What each marker says the table holds: its own app id, or for a table that has none
/// yet, the legacy one (see [`super::position`]). The same reading serves the fencing
/// check, so a carried-over marker is expected and checked like any other.
async fn held(writer: &mut TableWriter, keys: &[MarkerKey]) -> Result<Vec<Option<i64>>, LakeError> {
    let app_ids: Vec<String> = keys.iter().map(|k| k.app_id.clone()).collect();
    let mut versions = writer.marker_versions(&app_ids).await?;
    let missing: Vec<usize> = (0..keys.len()).filter(|i| versions[*i].is_none()).collect();
    if !missing.is_empty() {
        let legacy: Vec<String> = missing.iter().map(|i| keys[*i].legacy.clone()).collect();
        for (i, v) in missing
            .into_iter()
            .zip(writer.marker_versions(&legacy).await?)
        {
            versions[i] = v;
        }
    }
    Ok(versions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::position::PartitionId;

    fn update(key: &MarkerKey, expected: Option<i64>, version: i64) -> MarkerUpdate {
        MarkerUpdate {
            key: key.clone(),
            expected,
            version,
            origin: Origin::Kafka {
                topic: "audit".to_owned(),
                partition: 0,
                after: expected,
                last: version,
            },
        }
    }

    async fn ask<T>(
        requests: &mpsc::Sender<WriterRequest>,
        request: impl FnOnce(oneshot::Sender<T>) -> WriterRequest,
    ) -> T {
        let (reply, answer) = oneshot::channel();
        requests.send(request(reply)).await.unwrap();
        answer.await.unwrap()
    }

    /// A zombie: an ingester whose partition was reassigned while it still meant to commit
    /// for it. Its commit finds the marker where the new owner put it and is refused; the
    /// table does not move. The owner, who knows where the marker is, commits.
    #[tokio::test]
    async fn a_zombie_cannot_commit_over_the_new_owner() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(&dir.path().join("lake").to_string_lossy()).unwrap();
        let key = PartitionId::new("audit", 0).marker("g");
        let app_id = key.app_id.clone();
        let mut owner = TableWriter::open(&lake, Table::K8sAudit).await.unwrap();
        let marker = |version| CommitMarker {
            app_id: app_id.clone(),
            version,
        };
        let owned_at = owner.commit(&[marker(99)], &[]).await.unwrap();

        let (requests, inbox) = mpsc::channel(4);
        let writer = tokio::spawn(serve(lake.clone(), inbox, IngestMetrics::new()));
        let commit = |expected, version| {
            let requests = requests.clone();
            let key = key.clone();
            async move {
                ask(&requests, |reply| WriterRequest::Commit {
                    table: Table::K8sAudit,
                    markers: vec![update(&key, expected, version)],
                    reply,
                })
                .await
            }
        };
        // The zombie last saw the partition at 49.
        match commit(Some(49), 120).await {
            Err(WriteError::Fenced {
                expected, found, ..
            }) => assert_eq!((expected, found), (Some(49), Some(99))),
            other => panic!("the zombie's commit was not fenced: {other:?}"),
        }
        assert_eq!(owner.marker_version(&app_id).await.unwrap(), Some(99));
        let table = lake.open_table("k8s_audit").await.unwrap().unwrap();
        assert_eq!(table.version(), Some(owned_at));
        // The owner's next commit, from where the marker is, lands.
        let (version, _) = commit(Some(99), 150).await.unwrap();
        assert_eq!(version, owned_at + 1);
        assert_eq!(owner.marker_version(&app_id).await.unwrap(), Some(150));
        drop(requests);
        writer.await.unwrap();
    }

    /// A lake written when markers named the group: the ingester of that group reads the
    /// old marker, its next commit is checked against it and writes the new one, and from
    /// then on an ingester of any group finds where the table stands.
    #[tokio::test]
    async fn a_legacy_marker_is_carried_over_and_then_serves_every_group() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(&dir.path().join("lake").to_string_lossy()).unwrap();
        let partition = PartitionId::new("audit", 0);
        let old = partition.marker("kt");
        let mut before = TableWriter::open(&lake, Table::K8sAudit).await.unwrap();
        let legacy = CommitMarker {
            app_id: old.legacy.clone(),
            version: 41,
        };
        before.commit(&[legacy], &[]).await.unwrap();

        let (requests, inbox) = mpsc::channel(4);
        let writer = tokio::spawn(serve(lake.clone(), inbox, IngestMetrics::new()));
        let markers = |key: MarkerKey| {
            let requests = requests.clone();
            async move {
                let all = ask(&requests, |reply| WriterRequest::Markers {
                    keys: vec![key],
                    reply,
                })
                .await
                .unwrap();
                all[&Table::K8sAudit][0]
            }
        };
        assert_eq!(markers(old.clone()).await, Some(41));
        // Another group knows nothing of the legacy marker.
        assert_eq!(markers(partition.marker("renamed")).await, None);
        // A commit expecting nothing is fenced: the table holds 41 under the old name.
        let fenced = ask(&requests, |reply| WriterRequest::Commit {
            table: Table::K8sAudit,
            markers: vec![update(&old, None, 60)],
            reply,
        })
        .await;
        assert!(matches!(
            fenced,
            Err(WriteError::Fenced {
                found: Some(41),
                ..
            })
        ));
        ask(&requests, |reply| WriterRequest::Commit {
            table: Table::K8sAudit,
            markers: vec![update(&old, Some(41), 60)],
            reply,
        })
        .await
        .unwrap();
        assert_eq!(markers(partition.marker("renamed")).await, Some(60));
        assert_eq!(before.marker_version(&old.app_id).await.unwrap(), Some(60));
        drop(requests);
        writer.await.unwrap();
    }
}
