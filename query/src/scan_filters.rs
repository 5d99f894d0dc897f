//! A physical plan rule: each filter evaluated once in a Parquet scan.
//!
//! The Delta provider pushes a query's filters into its Parquet scan itself, and DataFusion
//! then pushes the same filters (kept above the scan, since the provider calls them inexact)
//! into it again. The reader evaluates every conjunct of the scan's predicate as a row
//! filter of its own, decoding its columns again for the rows still selected; with filters
//! ordered cheapest first the copy of `verb IN ('get', 'list')` runs right after the
//! original, over every row that passed it. Dropping the repeats keeps the reordering and
//! loses nothing: a conjunct is the same test whichever copy runs.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::datasource::physical_plan::{FileScanConfigBuilder, FileSource, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::physical_expr::utils::{conjunction, split_conjunction};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;

/// Drops the conjuncts a Parquet scan's predicate repeats.
#[derive(Debug, Default)]
pub(crate) struct DistinctScanFilters;

impl PhysicalOptimizerRule for DistinctScanFilters {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(scan) = node.downcast_ref::<DataSourceExec>() else {
                return Ok(Transformed::no(node));
            };
            let Some((config, parquet)) = scan.downcast_to_file_source::<ParquetSource>() else {
                return Ok(Transformed::no(node));
            };
            let Some(predicate) = parquet.filter() else {
                return Ok(Transformed::no(node));
            };
            let Some(distinct) = without_repeats(&predicate) else {
                return Ok(Transformed::no(node));
            };
            let source = Arc::new(parquet.with_predicate(distinct));
            let config = FileScanConfigBuilder::from(config.clone())
                .with_source(source)
                .build();
            let scan = scan.clone().with_data_source(Arc::new(config));
            Ok(Transformed::yes(Arc::new(scan) as Arc<dyn ExecutionPlan>))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "distinct_scan_filters"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The predicate with each conjunct once, in first-seen order; `None` if none repeats.
fn without_repeats(predicate: &Arc<dyn PhysicalExpr>) -> Option<Arc<dyn PhysicalExpr>> {
    let conjuncts = split_conjunction(predicate);
    let mut distinct: Vec<Arc<dyn PhysicalExpr>> = Vec::with_capacity(conjuncts.len());
    for c in conjuncts.iter() {
        if !distinct.iter().any(|d| d.as_ref() == c.as_ref()) {
            distinct.push(Arc::clone(c));
        }
    }
    (distinct.len() < conjuncts.len()).then(|| conjunction(distinct))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::logical_expr::Operator;
    use datafusion::physical_expr::expressions::{binary, col, lit};

    #[test]
    fn repeated_conjuncts_are_dropped_in_first_seen_order() {
        let schema = Schema::new(vec![
            Field::new("verb", DataType::Utf8, true),
            Field::new("resource", DataType::Utf8, true),
        ]);
        let eq = |c: &str, v: &str| {
            binary(col(c, &schema).unwrap(), Operator::Eq, lit(v), &schema).unwrap()
        };
        let and = |a, b| binary(a, Operator::And, b, &schema).unwrap();
        let once = and(eq("verb", "get"), eq("resource", "secrets"));
        let twice = and(
            once.clone(),
            and(eq("verb", "get"), eq("resource", "secrets")),
        );
        let distinct = without_repeats(&twice).expect("repeats are found");
        assert_eq!(distinct.to_string(), once.to_string());
        // Nothing repeated, nothing to do.
        assert!(without_repeats(&once).is_none());
        assert!(without_repeats(&eq("verb", "get")).is_none());
    }
}
