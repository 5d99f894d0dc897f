//! A lake table as the Parquet files one Delta snapshot holds: what travels to a Ballista
//! cluster in place of the Delta provider. Its scan is DataFusion's own Parquet scan over
//! exactly those files, each with its `event_date`, so the scheduler splits it over
//! executors by file and every executor reads its share straight from the lake; row groups
//! are pruned by the Parquet statistics and days by the partition values.

use std::sync::Arc;

use arrow::array::{Array, BooleanArray, Date32Array, RecordBatch};
use arrow::datatypes::{Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::config::TableParquetOptions;
use datafusion::common::{DFSchema, DataFusionError, Result, ScalarValue};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::ExecutionPlan;
use kubetrail_schemas::table::PARTITION_COLUMN;
use serde::{Deserialize, Serialize};

/// One data file of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LakeFile {
    /// From the object store's root (a bucket, or `/` on a disk).
    pub(crate) path: String,
    pub(crate) size: u64,
    /// Days since the epoch; `None` for a file written without one.
    pub(crate) event_date: Option<i32>,
}

/// A table at one version, as its files.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LakeFilesSpec {
    pub(crate) table: String,
    /// Where the files' paths start: `file:///` or `s3://bucket/`.
    pub(crate) store: String,
    pub(crate) files: Vec<LakeFile>,
}

#[derive(Debug)]
pub(crate) struct LakeFiles {
    spec: LakeFilesSpec,
    schema: SchemaRef,
    store: ObjectStoreUrl,
    /// The partition column's place in `schema`.
    partition_at: usize,
    /// `schema` without the partition column: what each file holds.
    file_schema: SchemaRef,
}

impl LakeFiles {
    pub(crate) fn new(spec: LakeFilesSpec, schema: SchemaRef) -> Result<LakeFiles> {
        let store = ObjectStoreUrl::parse(&spec.store)?;
        let partition_at = schema.index_of(PARTITION_COLUMN).map_err(|_| {
            DataFusionError::Plan(format!("{}: no {PARTITION_COLUMN} column", spec.table))
        })?;
        let file_fields: Vec<Field> = schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != partition_at)
            .map(|(_, f)| f.as_ref().clone())
            .collect();
        Ok(LakeFiles {
            spec,
            file_schema: Arc::new(Schema::new(file_fields)),
            schema,
            store,
            partition_at,
        })
    }

    pub(crate) fn spec(&self) -> &LakeFilesSpec {
        &self.spec
    }

    fn partition_field(&self) -> Arc<Field> {
        self.schema.fields()[self.partition_at].clone()
    }

    /// Which files the filters on `event_date` alone leave, evaluated over the files' own
    /// dates as one column.
    fn files_left(&self, state: &dyn Session, filters: &[Expr]) -> Result<Vec<&LakeFile>> {
        let on_date: Vec<Expr> = filters
            .iter()
            .filter(|f| f.column_refs().iter().all(|c| c.name == PARTITION_COLUMN))
            .filter(|f| !f.column_refs().is_empty())
            .cloned()
            .collect();
        let Some(predicate) = conjunction(on_date) else {
            return Ok(self.spec.files.iter().collect());
        };
        let dates = Schema::new(vec![self.partition_field().as_ref().clone()]);
        let df_schema = DFSchema::try_from(dates.clone())?;
        let predicate = state.create_physical_expr(predicate, &df_schema)?;
        let column: Date32Array = self.spec.files.iter().map(|f| f.event_date).collect();
        let batch = RecordBatch::try_new(Arc::new(dates), vec![Arc::new(column)])?;
        let kept = predicate.evaluate(&batch)?.into_array(batch.num_rows())?;
        let kept = kept
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| DataFusionError::Internal("a date filter is not boolean".into()))?;
        Ok(self
            .spec
            .files
            .iter()
            .enumerate()
            .filter(|(i, _)| kept.is_valid(*i) && kept.value(*i))
            .map(|(_, f)| f)
            .collect())
    }
}

#[async_trait]
impl TableProvider for LakeFiles {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Used to prune days and row groups; DataFusion still applies every filter.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // The scan's columns are the file's, then the partition column.
        let scan_index = |i: usize| match i.cmp(&self.partition_at) {
            std::cmp::Ordering::Less => i,
            std::cmp::Ordering::Equal => self.file_schema.fields().len(),
            std::cmp::Ordering::Greater => i - 1,
        };
        let indices: Vec<usize> = match projection {
            Some(p) => p.iter().map(|i| scan_index(*i)).collect(),
            None => (0..self.schema.fields().len()).map(scan_index).collect(),
        };
        let files = self.files_left(state, filters)?;
        if files.is_empty() {
            let projected = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => self.schema.clone(),
            };
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        let table_schema = TableSchema::builder(self.file_schema.clone())
            .with_table_partition_cols(vec![self.partition_field()])
            .build();
        let scan_schema = table_schema.table_schema().clone();
        let options = TableParquetOptions {
            global: state.config_options().execution.parquet.clone(),
            ..Default::default()
        };
        let mut source = ParquetSource::new(table_schema).with_table_parquet_options(options);
        if let Some(predicate) = conjunction(filters.iter().cloned()) {
            let df_schema = DFSchema::try_from(scan_schema.as_ref().clone())?;
            source = source.with_predicate(state.create_physical_expr(predicate, &df_schema)?);
        }
        let groups = file_groups(&files, state.config_options().execution.target_partitions);
        let config = FileScanConfigBuilder::new(self.store.clone(), Arc::new(source))
            .with_file_groups(groups)
            .with_limit(limit)
            .with_projection_indices(Some(indices))?
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}

/// The files in `partitions` groups of about the same bytes, largest first into the
/// lightest group.
fn file_groups(files: &[&LakeFile], partitions: usize) -> Vec<FileGroup> {
    let mut sorted: Vec<&&LakeFile> = files.iter().collect();
    sorted.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.path.cmp(&b.path)));
    let count = partitions.clamp(1, files.len().max(1));
    let mut groups: Vec<(u64, Vec<PartitionedFile>)> = vec![(0, Vec::new()); count];
    for file in sorted {
        let lightest = groups
            .iter_mut()
            .min_by_key(|(bytes, _)| *bytes)
            .expect("at least one group");
        let mut partitioned = PartitionedFile::new(file.path.clone(), file.size);
        partitioned.partition_values = vec![ScalarValue::Date32(file.event_date)];
        lightest.0 += file.size;
        lightest.1.push(partitioned);
    }
    groups
        .into_iter()
        .map(|(_, files)| FileGroup::new(files))
        .collect()
}
