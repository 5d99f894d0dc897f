//! SQL functions responders reach for: IP ranges, private addresses, JSON paths.

use std::net::IpAddr;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, ListBuilder, StringArray, StringBuilder};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

use crate::k8s_object;

/// Registers kubetrail's functions (addresses, `succeeded`, what Kubernetes objects ask for)
/// and the JSON functions (`json_get_str(request_object,
/// 'spec', 'containers', 0, 'image')`, `request_object->'spec'->>'hostNetwork'`, …).
pub fn register(ctx: &mut SessionContext) -> Result<()> {
    ctx.register_udf(ScalarUDF::from(IpPredicate::cidr_contains()));
    ctx.register_udf(ScalarUDF::from(IpPredicate::is_private_ip()));
    for (name, of) in [
        (
            "workload_images",
            k8s_object::workload_images as fn(&str) -> _,
        ),
        ("pod_risks", k8s_object::pod_risks),
        ("role_risks", k8s_object::role_risks),
    ] {
        ctx.register_udf(ScalarUDF::from(ObjectList::new(name, of)));
    }
    ctx.register_udf(ScalarUDF::from(Succeeded {
        signature: Signature::any(2, Volatility::Immutable),
    }));
    datafusion_functions_json::register_all(ctx)?;
    Ok(())
}

/// A boolean function of text arguments, the last of which is an IP address.
#[derive(Debug)]
struct IpPredicate {
    name: &'static str,
    signature: Signature,
    /// Given the leading arguments' text (the CIDR) and the IP, the answer.
    test: fn(&[Option<&str>], IpAddr) -> Result<bool>,
}

impl IpPredicate {
    /// `cidr_contains('10.0.0.0/8', src_ip)`: null if either is null or the IP is not one.
    fn cidr_contains() -> Self {
        IpPredicate {
            name: "cidr_contains",
            signature: Signature::string(2, Volatility::Immutable),
            test: |args, ip| match args[0] {
                Some(cidr) => Cidr::parse(cidr).map(|c| c.contains(ip)),
                None => Ok(false),
            },
        }
    }

    /// `is_private_ip(dst_ip)`: RFC 1918, loopback, link-local, CGNAT, ULA and friends.
    fn is_private_ip() -> Self {
        IpPredicate {
            name: "is_private_ip",
            signature: Signature::string(1, Volatility::Immutable),
            test: |_, ip| Ok(is_private(ip)),
        }
    }
}

// Functions are identified by name: comparing function pointers means nothing.
impl PartialEq for IpPredicate {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for IpPredicate {}
impl std::hash::Hash for IpPredicate {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}

impl ScalarUDFImpl for IpPredicate {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let args = TextArguments::of(&args)?;
        let texts = args.columns()?;
        let (ips, leading) = texts
            .split_last()
            .ok_or_else(|| DataFusionError::Internal("no arguments".into()))?;
        let mut out = Vec::with_capacity(ips.len());
        for row in 0..ips.len() {
            if ips.is_null(row) || leading.iter().any(|a| a.is_null(row)) {
                out.push(None);
                continue;
            }
            let Ok(ip) = ips.value(row).parse::<IpAddr>() else {
                out.push(None);
                continue;
            };
            let leading_values: Vec<Option<&str>> =
                leading.iter().map(|a| Some(a.value(row))).collect();
            out.push(Some((self.test)(&leading_values, ip)?));
        }
        args.answer(Arc::new(BooleanArray::from(out)))
    }
}

/// A function's arguments as text columns, whatever type they came as; and its answer, a
/// scalar when every argument was one (a constant folds to a constant).
pub struct TextArguments {
    arrays: Vec<ArrayRef>,
    all_scalar: bool,
}

impl TextArguments {
    pub fn of(args: &ScalarFunctionArgs) -> Result<TextArguments> {
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?
            .iter()
            .map(|a| cast(a, &DataType::Utf8))
            .collect::<std::result::Result<_, _>>()?;
        Ok(TextArguments { arrays, all_scalar })
    }

    pub fn columns(&self) -> Result<Vec<&StringArray>> {
        self.arrays
            .iter()
            .map(|a| {
                a.as_any()
                    .downcast_ref::<StringArray>()
                    .ok_or_else(|| DataFusionError::Internal("expected text".into()))
            })
            .collect()
    }

    pub fn answer(&self, result: ArrayRef) -> Result<ColumnarValue> {
        if self.all_scalar {
            return Ok(ColumnarValue::Scalar(
                datafusion::scalar::ScalarValue::try_from_array(&result, 0)?,
            ));
        }
        Ok(ColumnarValue::Array(result))
    }
}

/// An IPv4 or IPv6 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Cidr> {
        let bad = || {
            DataFusionError::Execution(format!(
                "cidr_contains: '{text}' is not a CIDR like 10.0.0.0/8"
            ))
        };
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.trim(), None),
        };
        let network: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Cidr { network, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Addresses that never route on the public internet.
pub fn is_private(ip: IpAddr) -> bool {
    const RANGES: [&str; 12] = [
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "100.64.0.0/10",
        "0.0.0.0/8",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
        "::/128",
        "192.0.0.0/24",
    ];
    RANGES
        .iter()
        .filter_map(|r| Cidr::parse(r).ok())
        .any(|c| c.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_and_private_ranges() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains("10.1.200.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.0.9".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("fd00::/8")
            .unwrap()
            .contains("fd00::1".parse().unwrap()));
        assert!(Cidr::parse("1.2.3.4")
            .unwrap()
            .contains("1.2.3.4".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("nope/8").is_err());
        assert!(is_private("192.168.1.1".parse().unwrap()));
        assert!(is_private("169.254.169.254".parse().unwrap()));
        assert!(!is_private("64.225.45.153".parse().unwrap()));
        assert!(!is_private("2606:4700::1111".parse().unwrap()));
    }
}

/// A function of one text (a Kubernetes object) to a list of texts, null where the text is
/// null or not such an object: `workload_images(request_object)`, `pod_risks(…)`,
/// `role_risks(…)`, as [`crate::k8s_object`] defines them.
#[derive(Debug)]
struct ObjectList {
    name: &'static str,
    signature: Signature,
    of: fn(&str) -> Option<Vec<String>>,
}

impl ObjectList {
    fn new(name: &'static str, of: fn(&str) -> Option<Vec<String>>) -> Self {
        ObjectList {
            name,
            signature: Signature::string(1, Volatility::Immutable),
            of,
        }
    }
}

// Identified by name, as IpPredicate is.
impl PartialEq for ObjectList {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for ObjectList {}
impl std::hash::Hash for ObjectList {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}

impl ScalarUDFImpl for ObjectList {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::new_list(DataType::Utf8, true))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let text = cast(&arrays[0], &DataType::Utf8)?;
        let text = text
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| DataFusionError::Internal("expected text".into()))?;
        let mut builder = ListBuilder::new(StringBuilder::new());
        for row in 0..text.len() {
            match (!text.is_null(row))
                .then(|| (self.of)(text.value(row)))
                .flatten()
            {
                Some(items) => {
                    for i in items {
                        builder.values().append_value(i);
                    }
                    builder.append(true);
                }
                None => builder.append(false),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(builder.finish())))
    }
}

/// `succeeded(response_code, response_reason)`: whether an API request was not refused.
/// Unknown counts as not refused: exports that leave the response status out are still
/// judged. A code of 400 or more is a refusal, and so is a reason without a code (a
/// `Failure` status that named no code).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Succeeded {
    signature: Signature,
}

impl ScalarUDFImpl for Succeeded {
    fn name(&self) -> &str {
        "succeeded"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use arrow::array::AsArray;
        use arrow::datatypes::Int64Type;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [code, reason] = arrays.as_slice() else {
            return Err(DataFusionError::Plan(
                "succeeded(response_code, response_reason) takes two arguments".into(),
            ));
        };
        let code = cast(code, &DataType::Int64)?;
        let code = code.as_primitive::<Int64Type>();
        let reason = cast(reason, &DataType::Utf8)?;
        let out: BooleanArray = (0..code.len())
            .map(|row| {
                Some(if code.is_null(row) {
                    reason.is_null(row)
                } else {
                    code.value(row) < 400
                })
            })
            .collect();
        if args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)))
        {
            return Ok(ColumnarValue::Scalar(
                datafusion::scalar::ScalarValue::try_from_array(&out, 0)?,
            ));
        }
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}
