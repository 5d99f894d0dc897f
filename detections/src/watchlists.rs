//! What only the operator can tell the rules: the image registries workloads may pull from,
//! the identities that deploy CronJobs and DaemonSets, and indicators of compromise
//! (addresses, user agents, images). Rules read them through three functions registered on
//! the detection session, so a rule's SQL stays the same whatever the lists hold:
//!
//! - `registry_allowed(image)`: whether an image comes from an allowed registry; null when
//!   no allow-list is configured (the rule that needs one stays quiet then);
//! - `is_deployer(user_name)`: whether an identity is one of the configured deployers;
//! - `indicator(kind, value)`: the indicator a value matches (`'address'`, `'user-agent'`
//!   or `'image'`), as `kind value (note)`, or null.
//!
//! Indicator files hold one indicator per line: `KIND VALUE [# note]`, kinds `address`
//! (an IP or a CIDR), `user-agent` (matched case-insensitively anywhere in the user agent)
//! and `image` (matched case-insensitively anywhere in the image reference). The pack ships
//! a default list ([`SHIPPED_INDICATORS`]) of attacker tooling; configured files add to it.
//!
//! On a Ballista cluster the lists travel inside each plan ([`cluster_codec`]), so the
//! scheduler and executors judge with exactly the client's lists.

use std::net::IpAddr;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, StringArray};
use arrow::datatypes::DataType;
use datafusion::common::Result as DfResult;
use datafusion::common::{plan_err, DataFusionError};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use kubetrail_query::cluster::FunctionCodec;
use kubetrail_query::udf::{Cidr, TextArguments};
use kubetrail_query::LakeSession;
use serde::{Deserialize, Serialize};

/// The indicators the pack ships: tools attackers run against clusters, by the user agent
/// they send and the images they come in. No addresses: published bad addresses go stale in
/// weeks, so they belong in a list the operator keeps fresh (`[detections] indicator_files`).
pub const SHIPPED_INDICATORS: &str = include_str!("../watchlists/indicators.txt");

/// The lists one detection session judges with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watchlists {
    allowed_registries: Vec<String>,
    deployers: Vec<IdentityPattern>,
    indicators: Vec<Indicator>,
    /// What they were read from: how they travel to a cluster.
    source: WatchlistSource,
}

/// Watchlists as the operator wrote them, every indicator file in one text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct WatchlistSource {
    allowed_registries: Vec<String>,
    deployers: Vec<String>,
    indicators: String,
}

impl Default for Watchlists {
    /// No allow-list, no deployers, the shipped indicators.
    fn default() -> Self {
        Watchlists::from_source(WatchlistSource {
            indicators: SHIPPED_INDICATORS.to_owned(),
            ..WatchlistSource::default()
        })
        .expect("the shipped indicator list parses (a unit test checks it)")
    }
}

/// An identity, exactly, or every identity that starts with a prefix (`NAME*`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum IdentityPattern {
    Exact(String),
    Prefix(String),
}

impl IdentityPattern {
    fn parse(text: &str) -> Result<IdentityPattern, String> {
        let text = text.trim();
        match text.strip_suffix('*') {
            _ if text.is_empty() || text == "*" => Err(format!(
                "deployer '{text}' names nobody (give a user name, or a prefix ending in *)"
            )),
            Some(prefix) if prefix.contains('*') => Err(format!(
                "deployer '{text}': only a trailing * is understood"
            )),
            Some(prefix) => Ok(IdentityPattern::Prefix(prefix.to_owned())),
            None if text.contains('*') => Err(format!(
                "deployer '{text}': only a trailing * is understood"
            )),
            None => Ok(IdentityPattern::Exact(text.to_owned())),
        }
    }

    fn matches(&self, user: &str) -> bool {
        match self {
            IdentityPattern::Exact(name) => user == name,
            IdentityPattern::Prefix(prefix) => user.starts_with(prefix.as_str()),
        }
    }
}

/// One indicator of compromise: what it matches, and how it reads in an alert
/// (`user-agent kube-hunter (Kubernetes weakness scanner)`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Indicator {
    what: IndicatorValue,
    label: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum IndicatorValue {
    Address(Cidr),
    /// Lower-case, matched anywhere in the lower-cased user agent.
    UserAgent(String),
    /// Lower-case, matched anywhere in the lower-cased image reference.
    Image(String),
}

/// The kinds of value an indicator matches, as rules name them in `indicator(kind, …)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IndicatorKind {
    Address,
    UserAgent,
    Image,
}

impl IndicatorKind {
    fn parse(kind: &str) -> Option<IndicatorKind> {
        match kind {
            "address" => Some(IndicatorKind::Address),
            "user-agent" => Some(IndicatorKind::UserAgent),
            "image" => Some(IndicatorKind::Image),
            _ => None,
        }
    }
}

impl IndicatorValue {
    fn kind(&self) -> IndicatorKind {
        match self {
            IndicatorValue::Address(_) => IndicatorKind::Address,
            IndicatorValue::UserAgent(_) => IndicatorKind::UserAgent,
            IndicatorValue::Image(_) => IndicatorKind::Image,
        }
    }
}

/// Reads an indicator list; `origin` names it in errors (`FILE:LINE: reason`).
fn parse_indicators(text: &str, origin: &str) -> Result<Vec<Indicator>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let at = |reason: String| format!("{origin}:{}: {reason}", n + 1);
        let (entry, note) = match line.split_once('#') {
            Some((entry, note)) => (entry.trim(), note.trim()),
            None => (line.trim(), ""),
        };
        if entry.is_empty() {
            continue;
        }
        let (kind, value) = entry
            .split_once(char::is_whitespace)
            .map(|(k, v)| (k, v.trim()))
            .ok_or_else(|| at(format!("'{entry}' needs a kind and a value")))?;
        let what = match kind {
            "address" => IndicatorValue::Address(
                Cidr::parse(value)
                    .map_err(|_| at(format!("'{value}' is not an IP address or a CIDR")))?,
            ),
            "user-agent" => IndicatorValue::UserAgent(value.to_ascii_lowercase()),
            "image" => IndicatorValue::Image(value.to_ascii_lowercase()),
            other => {
                return Err(at(format!(
                    "'{other}' is not an indicator kind (address, user-agent, image)"
                )))
            }
        };
        let label = if note.is_empty() {
            format!("{kind} {value}")
        } else {
            format!("{kind} {value} ({note})")
        };
        out.push(Indicator { what, label });
    }
    Ok(out)
}

impl Watchlists {
    /// Lists as the operator configures them. `indicator_files` add to the shipped
    /// indicators unless `shipped_indicators` is false.
    pub fn new(
        allowed_registries: &[String],
        deployers: &[String],
        indicator_files: &[std::path::PathBuf],
        shipped_indicators: bool,
    ) -> Result<Watchlists, String> {
        let mut indicators = String::new();
        if shipped_indicators {
            indicators.push_str(SHIPPED_INDICATORS);
        }
        for file in indicator_files {
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("indicator file {}: {e}", file.display()))?;
            // Each file on its own, so that a mistake names its file and line.
            parse_indicators(&text, &file.display().to_string())?;
            indicators.push('\n');
            indicators.push_str(&text);
        }
        Watchlists::from_source(WatchlistSource {
            allowed_registries: allowed_registries.to_vec(),
            deployers: deployers.to_vec(),
            indicators,
        })
    }

    fn from_source(source: WatchlistSource) -> Result<Watchlists, String> {
        Ok(Watchlists {
            allowed_registries: source.allowed_registries.clone(),
            deployers: source
                .deployers
                .iter()
                .map(|d| IdentityPattern::parse(d))
                .collect::<Result<_, _>>()?,
            indicators: parse_indicators(&source.indicators, "indicators")?,
            source,
        })
    }

    /// The shipped defaults with a test's own lists: its registries, its deployers, and its
    /// indicator lines (in the file format) added to the shipped ones.
    pub fn for_test(
        allowed_registries: &[String],
        deployers: &[String],
        indicators: &[String],
    ) -> Result<Watchlists, String> {
        let mut source = Watchlists::new(allowed_registries, deployers, &[], true)?.source;
        source.indicators.push('\n');
        source.indicators.push_str(&indicators.join("\n"));
        Watchlists::from_source(source)
    }

    /// How many indicators of compromise the rules compare with.
    pub fn indicator_count(&self) -> usize {
        self.indicators.len()
    }

    /// Registers the three functions on `session`, replacing any earlier lists.
    pub(crate) fn register(&self, session: &LakeSession) {
        let lists = Arc::new(self.clone());
        let codec = cluster_codec();
        for which in Function::ALL {
            session.register_function(WatchlistFunction::udf(which, lists.clone()), &codec);
        }
    }

    fn registry_allowed(&self, image: &str) -> Option<bool> {
        (!self.allowed_registries.is_empty()).then(|| {
            self.allowed_registries
                .iter()
                .any(|p| image.starts_with(p.as_str()))
        })
    }

    fn is_deployer(&self, user: &str) -> bool {
        self.deployers.iter().any(|d| d.matches(user))
    }

    fn indicator(&self, kind: &str, value: &str) -> Option<&str> {
        let kind = IndicatorKind::parse(kind)?;
        let mut of_kind = self
            .indicators
            .iter()
            .filter(|i| i.what.kind() == kind)
            .peekable();
        of_kind.peek()?;
        let found = match kind {
            IndicatorKind::Address => {
                let ip = value.trim().parse::<IpAddr>().ok()?;
                of_kind
                    .find(|i| matches!(&i.what, IndicatorValue::Address(net) if net.contains(ip)))
            }
            IndicatorKind::UserAgent | IndicatorKind::Image => {
                let value = value.to_ascii_lowercase();
                of_kind.find(|i| match &i.what {
                    IndicatorValue::UserAgent(needle) | IndicatorValue::Image(needle) => {
                        value.contains(needle.as_str())
                    }
                    IndicatorValue::Address(_) => false,
                })
            }
        };
        found.map(|i| i.label.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Function {
    RegistryAllowed,
    IsDeployer,
    Indicator,
}

impl Function {
    const ALL: [Function; 3] = [
        Function::RegistryAllowed,
        Function::IsDeployer,
        Function::Indicator,
    ];

    const fn name(self) -> &'static str {
        match self {
            Function::RegistryAllowed => "registry_allowed",
            Function::IsDeployer => "is_deployer",
            Function::Indicator => "indicator",
        }
    }

    fn arity(self) -> usize {
        match self {
            Function::Indicator => 2,
            _ => 1,
        }
    }
}

#[derive(Debug)]
struct WatchlistFunction {
    which: Function,
    signature: Signature,
    lists: Arc<Watchlists>,
}

impl WatchlistFunction {
    fn udf(which: Function, lists: Arc<Watchlists>) -> ScalarUDF {
        ScalarUDF::from(WatchlistFunction {
            which,
            signature: Signature::string(which.arity(), Volatility::Immutable),
            lists,
        })
    }
}

/// How the watchlist functions travel to a Ballista cluster: as the lists' source. The
/// binary gives it to its scheduler and executors; sessions learn it as they register
/// the functions.
pub fn cluster_codec() -> Arc<dyn FunctionCodec> {
    Arc::new(WatchlistCodec)
}

#[derive(Debug)]
struct WatchlistCodec;

impl FunctionCodec for WatchlistCodec {
    fn names(&self) -> &[&str] {
        const NAMES: [&str; 3] = [
            Function::RegistryAllowed.name(),
            Function::IsDeployer.name(),
            Function::Indicator.name(),
        ];
        &NAMES
    }

    fn encode(&self, udf: &ScalarUDF) -> DfResult<Vec<u8>> {
        match udf.inner().downcast_ref::<WatchlistFunction>() {
            Some(f) => serde_json::to_vec(&f.lists.source)
                .map_err(|e| DataFusionError::Plan(format!("{}: {e}", udf.name()))),
            None => plan_err!("{} is not a watchlist function", udf.name()),
        }
    }

    fn decode(&self, name: &str, state: &[u8]) -> DfResult<ScalarUDF> {
        let Some(which) = Function::ALL.into_iter().find(|f| f.name() == name) else {
            return plan_err!("{name} is not a watchlist function");
        };
        let source: WatchlistSource = serde_json::from_slice(state).map_err(|e| {
            DataFusionError::Plan(format!("{name}: its watchlists do not read: {e}"))
        })?;
        let lists = Watchlists::from_source(source)
            .map_err(|e| DataFusionError::Plan(format!("{name}: {e}")))?;
        Ok(WatchlistFunction::udf(which, Arc::new(lists)))
    }
}

// A session holds one function of each name: identified by name, as the query crate's are.
impl PartialEq for WatchlistFunction {
    fn eq(&self, other: &Self) -> bool {
        self.which == other.which
    }
}
impl Eq for WatchlistFunction {}
impl std::hash::Hash for WatchlistFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.which.hash(state)
    }
}

impl ScalarUDFImpl for WatchlistFunction {
    fn name(&self) -> &str {
        self.which.name()
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(match self.which {
            Function::Indicator => DataType::Utf8,
            _ => DataType::Boolean,
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let args = TextArguments::of(&args)?;
        let texts = args.columns()?;
        let value = |column: usize, row: usize| {
            let a = texts[column];
            (!a.is_null(row)).then(|| a.value(row))
        };
        let rows = texts.first().map_or(0, |a| a.len());
        let result: ArrayRef = match self.which {
            Function::RegistryAllowed => {
                Arc::new(BooleanArray::from_iter((0..rows).map(|r| {
                    value(0, r).and_then(|i| self.lists.registry_allowed(i))
                })))
            }
            Function::IsDeployer => Arc::new(BooleanArray::from_iter(
                (0..rows).map(|r| value(0, r).map(|u| self.lists.is_deployer(u))),
            )),
            Function::Indicator => Arc::new(StringArray::from_iter((0..rows).map(|r| {
                let (kind, v) = (value(0, r)?, value(1, r)?);
                self.lists.indicator(kind, v)
            }))),
        };
        args.answer(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_list_parses_and_matches_what_it_names() {
        let lists = Watchlists::default();
        assert!(lists.indicator_count() >= 10);
        assert!(lists
            .indicator("user-agent", "kube-hunter/0.6.8 (python)")
            .is_some());
        assert!(lists
            .indicator("image", "docker.io/metal3d/XMRig:latest")
            .is_some());
        assert_eq!(
            lists.indicator("user-agent", "kubectl/v1.30.2 (linux/amd64)"),
            None
        );
        assert_eq!(lists.indicator("image", "nginx:1.27"), None);
        // A kind the list does not know matches nothing.
        assert_eq!(lists.indicator("colour", "xmrig"), None);
    }

    #[test]
    fn indicator_files_and_deployers_are_read_and_every_mistake_is_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ioc.txt");
        std::fs::write(
            &file,
            "# from the incident of 2026-11-20\naddress 203.0.113.0/24 # scanner\naddress 2001:db8::7\n\nuser-agent Evil Bot\n",
        )
        .unwrap();
        let lists = Watchlists::new(
            &["registry.example.com/".into()],
            &[
                "ci-deployer@example.com".into(),
                "system:serviceaccount:argocd:*".into(),
            ],
            std::slice::from_ref(&file),
            false,
        )
        .unwrap();
        assert_eq!(lists.indicator_count(), 3);
        assert_eq!(
            lists.indicator("address", "203.0.113.77"),
            Some("address 203.0.113.0/24 (scanner)")
        );
        assert_eq!(
            lists.indicator("address", "2001:db8::7"),
            Some("address 2001:db8::7")
        );
        assert_eq!(lists.indicator("address", "198.51.100.1"), None);
        assert_eq!(lists.indicator("address", "not an address"), None);
        assert!(lists.indicator("user-agent", "an evil bot/1.0").is_some());
        assert_eq!(lists.indicator("user-agent", "xmrig"), None, "not shipped");
        assert!(lists.is_deployer("ci-deployer@example.com"));
        assert!(lists.is_deployer("system:serviceaccount:argocd:argocd-application-controller"));
        assert!(!lists.is_deployer("alice@example.com"));
        assert_eq!(
            lists.registry_allowed("registry.example.com/shop/api:1"),
            Some(true)
        );
        assert_eq!(lists.registry_allowed("docker.io/evil:1"), Some(false));
        assert_eq!(
            Watchlists::default().registry_allowed("docker.io/evil:1"),
            None
        );

        for (text, reason) in [
            (
                "address 10.0.0.0/33",
                "ioc.txt:1: '10.0.0.0/33' is not an IP address or a CIDR",
            ),
            (
                "\nuser-agent",
                "ioc.txt:2: 'user-agent' needs a kind and a value",
            ),
            (
                "domain evil.example",
                "ioc.txt:1: 'domain' is not an indicator kind",
            ),
        ] {
            std::fs::write(&file, text).unwrap();
            let e = Watchlists::new(&[], &[], std::slice::from_ref(&file), true).unwrap_err();
            assert!(e.contains(reason), "{e}");
            assert!(!e.contains('\n'));
        }
        let missing = dir.path().join("missing.txt");
        let e = Watchlists::new(&[], &[], &[missing], true).unwrap_err();
        assert!(
            e.starts_with("indicator file ") && e.contains("missing.txt"),
            "{e}"
        );
        for bad in ["", "*", "a*b", "*admin"] {
            let e = Watchlists::new(&[], &[bad.into()], &[], true).unwrap_err();
            assert!(e.starts_with("deployer '"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_lists_travel_whole_and_a_damaged_state_is_refused_in_one_line() {
        let lists = Watchlists::for_test(
            &["registry.example.com/".into()],
            &["system:serviceaccount:argocd:*".into()],
            &["address 203.0.113.0/24 # scanner".into()],
        )
        .unwrap();
        let codec = cluster_codec();
        for which in Function::ALL {
            let udf = WatchlistFunction::udf(which, Arc::new(lists.clone()));
            let state = codec.encode(&udf).unwrap();
            let rebuilt = codec.decode(which.name(), &state).unwrap();
            let inner = rebuilt.inner().downcast_ref::<WatchlistFunction>().unwrap();
            assert_eq!(inner.which, which);
            assert_eq!(*inner.lists, lists, "the same lists, labels and all");
        }
        let bad = br#"{"allowed_registries":[],"deployers":["*"],"indicators":""}"#;
        for (name, state, reason) in [
            (
                "indicator",
                &b"{not json"[..],
                "indicator: its watchlists do not read",
            ),
            ("is_deployer", &bad[..], "deployer '*' names nobody"),
            ("lower", &b"{}"[..], "lower is not a watchlist function"),
        ] {
            let e = codec.decode(name, state).unwrap_err().to_string();
            assert!(e.contains(reason) && !e.contains('\n'), "{e}");
        }
    }
}
