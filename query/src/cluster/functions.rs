//! Functions whose state travels with the plan. The query crate's own functions are the
//! same in every process, so the scheduler and executors find them by name; a function
//! built from an operator's settings (the detection pack's watchlists) is not, and a
//! cluster holding its own copy would judge with other lists than the client's. Such a
//! function is registered with a [`FunctionCodec`] that writes its state into the plan,
//! and the cluster rebuilds it from there: every process judges with the client's lists.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, RwLock};

use datafusion::common::{plan_err, Result};
use datafusion::logical_expr::ScalarUDF;

/// How functions of one kind travel: the binary gives the scheduler and executors every
/// codec it knows; a client session learns one with each function registered through it.
pub trait FunctionCodec: Debug + Send + Sync {
    /// The functions it carries.
    fn names(&self) -> &[&str];
    /// `udf`'s state, for a function of [`FunctionCodec::names`].
    fn encode(&self, udf: &ScalarUDF) -> Result<Vec<u8>>;
    /// The function `name` with the state [`FunctionCodec::encode`] wrote.
    fn decode(&self, name: &str, state: &[u8]) -> Result<ScalarUDF>;
}

/// What starts a function's state in a plan; any other definition is Ballista's.
const STATE: &[u8] = b"kubetrail-function/1\n";

/// The codecs a process knows, by function name.
#[derive(Debug, Default)]
pub(crate) struct FunctionCodecs {
    by_name: RwLock<HashMap<String, Arc<dyn FunctionCodec>>>,
}

impl FunctionCodecs {
    pub(crate) fn new(codecs: &[Arc<dyn FunctionCodec>]) -> FunctionCodecs {
        let known = FunctionCodecs::default();
        for codec in codecs {
            known.learn(codec);
        }
        known
    }

    pub(crate) fn learn(&self, codec: &Arc<dyn FunctionCodec>) {
        let mut by_name = self.by_name.write().unwrap_or_else(|e| e.into_inner());
        for name in codec.names() {
            by_name.insert((*name).to_owned(), codec.clone());
        }
    }

    fn codec(&self, name: &str) -> Option<Arc<dyn FunctionCodec>> {
        let by_name = self.by_name.read().unwrap_or_else(|e| e.into_inner());
        by_name.get(name).cloned()
    }

    /// Writes `udf`'s state when a codec carries it; `Ok(false)` leaves it to Ballista's
    /// codec (nothing written: the cluster finds it by name).
    pub(crate) fn encode(&self, udf: &ScalarUDF, buf: &mut Vec<u8>) -> Result<bool> {
        let Some(codec) = self.codec(udf.name()) else {
            return Ok(false);
        };
        buf.extend_from_slice(STATE);
        buf.extend_from_slice(&codec.encode(udf)?);
        Ok(true)
    }

    /// [`FunctionCodecs::encode`], else `otherwise` (Ballista's codec).
    pub(crate) fn encode_or(
        &self,
        udf: &ScalarUDF,
        buf: &mut Vec<u8>,
        otherwise: impl FnOnce(&mut Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        match self.encode(udf, buf)? {
            true => Ok(()),
            false => otherwise(buf),
        }
    }

    /// [`FunctionCodecs::decode`], else `otherwise` (Ballista's codec).
    pub(crate) fn decode_or(
        &self,
        name: &str,
        definition: &[u8],
        otherwise: impl FnOnce() -> Result<Arc<ScalarUDF>>,
    ) -> Result<Arc<ScalarUDF>> {
        match self.decode(name, definition) {
            Some(udf) => udf.map(Arc::new),
            None => otherwise(),
        }
    }

    /// The function `name` from its definition in a plan; `None` when the definition is
    /// not one of ours. A function the registry lacked and no codec rebuilds ends here
    /// too, and is refused in one line naming it.
    pub(crate) fn decode(&self, name: &str, definition: &[u8]) -> Option<Result<ScalarUDF>> {
        if definition.is_empty() {
            return Some(plan_err!(
                "the cluster has no function {name}: its scheduler and executors run a kubetrail that does not define it"
            ));
        }
        let state = definition.strip_prefix(STATE)?;
        Some(match self.codec(name) {
            Some(codec) => codec.decode(name, state),
            None => plan_err!(
                "the cluster cannot rebuild function {name}: its scheduler and executors run a kubetrail that does not carry it"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::DataType;
    use datafusion::logical_expr::{
        ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
    };

    /// A function whose state is a word it answers with.
    #[derive(Debug, PartialEq, Eq, Hash)]
    struct Says {
        word: String,
        signature: Signature,
    }

    impl ScalarUDFImpl for Says {
        fn name(&self) -> &str {
            "says"
        }
        fn signature(&self) -> &Signature {
            &self.signature
        }
        fn return_type(&self, _: &[DataType]) -> Result<DataType> {
            Ok(DataType::Utf8)
        }
        fn invoke_with_args(&self, _: ScalarFunctionArgs) -> Result<ColumnarValue> {
            Ok(ColumnarValue::Scalar(self.word.as_str().into()))
        }
    }

    fn says(word: &str) -> ScalarUDF {
        ScalarUDF::from(Says {
            word: word.to_owned(),
            signature: Signature::nullary(Volatility::Immutable),
        })
    }

    #[derive(Debug)]
    struct SaysCodec;

    impl FunctionCodec for SaysCodec {
        fn names(&self) -> &[&str] {
            &["says"]
        }
        fn encode(&self, udf: &ScalarUDF) -> Result<Vec<u8>> {
            let says = udf.inner().downcast_ref::<Says>().unwrap();
            Ok(says.word.clone().into_bytes())
        }
        fn decode(&self, _: &str, state: &[u8]) -> Result<ScalarUDF> {
            Ok(says(std::str::from_utf8(state).unwrap()))
        }
    }

    #[test]
    fn a_function_travels_with_its_state_and_one_the_cluster_lacks_is_named() {
        let client = FunctionCodecs::default();
        let mut buf = Vec::new();
        assert!(!client.encode(&says("hello"), &mut buf).unwrap());
        assert!(
            buf.is_empty(),
            "left to Ballista before its codec is learned"
        );
        client.learn(&(Arc::new(SaysCodec) as Arc<dyn FunctionCodec>));
        assert!(client.encode(&says("hello"), &mut buf).unwrap());

        let cluster = FunctionCodecs::new(&[Arc::new(SaysCodec)]);
        let rebuilt = cluster.decode("says", &buf).unwrap().unwrap();
        let inner = rebuilt.inner().downcast_ref::<Says>().unwrap();
        assert_eq!(inner.word, "hello");
        // Ballista's own definitions pass through.
        assert!(cluster.decode("says", b"\x08\x01").is_none());

        let older = FunctionCodecs::default();
        for definition in [&buf[..], &[]] {
            let e = older
                .decode("says", definition)
                .unwrap()
                .unwrap_err()
                .to_string();
            assert!(e.contains("function says"), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
