//! How a plan travels. Logical plans, client to scheduler: the lake's tables as the list
//! of files their snapshot holds ([`LakeFiles`]), which the scheduler plans as DataFusion's
//! own Parquet scan (so the executors need nothing of ours to read the lake). Logical and
//! physical plans: the state of functions that carry one ([`FunctionCodecs`]).
//! Everything else goes to Ballista's codecs.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::catalog::TableProvider;
use datafusion::common::{DataFusionError, Result, TableReference};
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{AggregateUDF, Extension, LogicalPlan, ScalarUDF, WindowUDF};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};

use super::functions::FunctionCodecs;
use super::lake_files::{LakeFiles, LakeFilesSpec};

/// What starts an encoded [`LakeFiles`]; any other table goes to Ballista's codec.
const LAKE_FILES: &[u8] = b"kubetrail-lake-files/1\n";

/// The logical plan's codec, on the client and the scheduler.
#[derive(Debug)]
pub(crate) struct LakeCodec {
    ballista: BallistaLogicalExtensionCodec,
    functions: Arc<FunctionCodecs>,
}

impl LakeCodec {
    pub(crate) fn new(functions: Arc<FunctionCodecs>) -> LakeCodec {
        LakeCodec {
            ballista: BallistaLogicalExtensionCodec::default(),
            functions,
        }
    }
}

impl LogicalExtensionCodec for LakeCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> Result<Extension> {
        self.ballista.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.ballista.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        let Some(json) = buf.strip_prefix(LAKE_FILES) else {
            return self
                .ballista
                .try_decode_table_provider(buf, table_ref, schema, ctx);
        };
        let spec: LakeFilesSpec = serde_json::from_slice(json).map_err(|e| {
            DataFusionError::Plan(format!(
                "table {table_ref}: its file list does not read: {e}"
            ))
        })?;
        Ok(Arc::new(LakeFiles::new(spec, schema)?))
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        let Some(files) = node.downcast_ref::<LakeFiles>() else {
            return self
                .ballista
                .try_encode_table_provider(table_ref, node, buf);
        };
        buf.extend_from_slice(LAKE_FILES);
        serde_json::to_writer(buf, files.spec())
            .map_err(|e| DataFusionError::Internal(format!("table {table_ref}: {e}")))
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> Result<Arc<dyn FileFormatFactory>> {
        self.ballista.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn FileFormatFactory>,
    ) -> Result<()> {
        self.ballista.try_encode_file_format(buf, node)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        self.functions
            .decode_or(name, buf, || self.ballista.try_decode_udf(name, buf))
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.functions
            .encode_or(node, buf, |buf| self.ballista.try_encode_udf(node, buf))
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
        self.ballista.try_decode_udaf(name, buf)
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.ballista.try_encode_udaf(node, buf)
    }

    fn try_decode_udwf(&self, name: &str, buf: &[u8]) -> Result<Arc<WindowUDF>> {
        self.ballista.try_decode_udwf(name, buf)
    }

    fn try_encode_udwf(&self, node: &WindowUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.ballista.try_encode_udwf(node, buf)
    }
}

/// The physical plan's codec, scheduler to executors: Ballista's (which implements only
/// plan nodes), with functions' state.
#[derive(Debug)]
pub(crate) struct LakePhysicalCodec {
    ballista: BallistaPhysicalExtensionCodec,
    functions: Arc<FunctionCodecs>,
}

impl LakePhysicalCodec {
    pub(crate) fn new(functions: Arc<FunctionCodecs>) -> LakePhysicalCodec {
        LakePhysicalCodec {
            ballista: BallistaPhysicalExtensionCodec::default(),
            functions,
        }
    }
}

impl PhysicalExtensionCodec for LakePhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.ballista.try_decode(buf, inputs, ctx, proto_converter)
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        self.ballista.try_encode(node, buf, proto_converter)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        self.functions
            .decode_or(name, buf, || self.ballista.try_decode_udf(name, buf))
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.functions
            .encode_or(node, buf, |buf| self.ballista.try_encode_udf(node, buf))
    }
}
