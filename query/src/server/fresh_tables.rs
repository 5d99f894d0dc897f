//! The lake's tables as the server queries them: loaded once, then brought up to date
//! before each query by reading only the log entries committed since (one listing of each
//! table's `_delta_log/` on object storage), so a query sees every commit that landed
//! before it started without the whole log being read again.

use deltalake::DeltaTable;
use kubetrail_lake::Lake;
use kubetrail_schemas::Table;
use tokio::sync::Mutex;

use crate::QueryError;

pub(crate) struct FreshTables {
    lake: Lake,
    tables: Mutex<Vec<(Table, Option<DeltaTable>)>>,
}

impl FreshTables {
    pub(crate) async fn open(lake: &Lake) -> Result<FreshTables, QueryError> {
        lake.check_exists().await?;
        let mut tables = Vec::new();
        for table in Table::ALL {
            tables.push((table, lake.open_table(table.name()).await?));
        }
        Ok(FreshTables {
            lake: lake.clone(),
            tables: Mutex::new(tables),
        })
    }

    pub(crate) fn lake(&self) -> &Lake {
        &self.lake
    }

    /// Every table at its newest version (a table written since it was last seen
    /// included), as of now.
    pub(crate) async fn current(&self) -> Result<Vec<(Table, Option<DeltaTable>)>, QueryError> {
        let mut tables = self.tables.lock().await;
        for (table, delta) in tables.iter_mut() {
            match delta {
                Some(d) => d
                    .update_incremental(None)
                    .await
                    .map_err(|e| QueryError::Table(table.name().into(), e.to_string()))?,
                None => *delta = self.lake.open_table(table.name()).await?,
            }
        }
        Ok(tables.clone())
    }
}
