//! `kubetrail.toml`: settings shared by every verb. Flags win over `KUBETRAIL_*` variables,
//! which win over the file, which wins over built-in defaults.
//!
//! ```toml
//! lake = "/var/lib/kubetrail/lake"   # or s3://bucket/prefix, gs://…, az://…
//! cluster = "prod-eu1"
//!
//! # or, for a lake on object storage with settings of its own:
//! # [lake]
//! # location = "s3://security-lake/kubetrail"
//! # [lake.storage]           # any object_store key, beside the AWS_* variables
//! # aws_region = "eu-west-1"
//!
//! [redaction]
//! key_file = "/etc/kubetrail/redaction.key"   # outside the lake; 0600
//! env_values = "all"                          # or "secret-like"
//! paths = ["metadata.annotations.internal-token"]
//!
//! [ingest]
//! batch_rows = 250000
//! batch_mib = 128
//! max_record_mib = 64
//!
//! [kafka]
//! brokers = "127.0.0.1:9092"
//! group = "kubetrail"
//! topics = ["k8s-audit=k8s-audit", "hubble-flows=hubble", "tetragon=tetragon"]
//! linger = "5s"
//! metrics_addr = "127.0.0.1:9898"
//! compact_closed_days = true
//! [kafka.options]                 # librdkafka settings, for ingest, produce and the alert sink
//! "security.protocol" = "SASL_SSL"
//! "sasl.mechanism" = "SCRAM-SHA-512"
//! "sasl.username" = "kubetrail"
//! "ssl.ca.location" = "/etc/kubetrail/kafka-ca.pem"
//! [kafka.secrets]                 # secret settings come from files (or KUBETRAIL_KAFKA_*)
//! "sasl.password" = "/run/secrets/kafka-password"
//!
//! [server]                          # kubetrail serve
//! addr = "127.0.0.1:50051"
//! tokens_file = "/etc/kubetrail/tokens"   # NAME SHA256 lines: kubetrail token create
//! tls_cert = "/etc/kubetrail/server.pem"
//! tls_key = "/etc/kubetrail/server.key"
//! query_memory_mib = 1024                  # per query; sorts and joins spill past it
//! server_memory_mib = 4096                 # all queries together
//! query_timeout = "5m"
//! concurrent_queries = 8                   # more wait for a turn
//! metrics_addr = "127.0.0.1:9899"          # Prometheus: queries, errors, bytes, running
//!
//! [detections]
//! allowed_registries = ["registry.example.com/"]
//! deployers = ["system:serviceaccount:argocd:*", "ci-deployer@example.com"]
//! indicator_files = ["/etc/kubetrail/indicators.txt"]
//! grouping = "update"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use kubetrail_detections::{Grouping, Watchlists};
use kubetrail_ingest::kafka::{self, ClientOptions};
use kubetrail_ingest::BatchLimits;
use kubetrail_lake::{Lake, StorageOptions};
use kubetrail_query::cluster::Engine;
use serde::Deserialize;

use crate::cli::KafkaClientArgs;

/// The file looked for in the working directory when no `--config` is given.
pub const DEFAULT_FILE: &str = "kubetrail.toml";
/// Where the lake is when nothing says otherwise.
pub const DEFAULT_LAKE: &str = "./kubetrail-lake";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `lake = "LOCATION"`, or a `[lake]` table with `location` and `[lake.storage]`.
    lake: Option<LakeSetting>,
    pub cluster: Option<String>,
    #[serde(default)]
    pub redaction: Redaction,
    #[serde(default)]
    pub ingest: IngestSettings,
    #[serde(default)]
    pub kafka: KafkaSettings,
    #[serde(default)]
    pub detections: DetectionSettings,
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub query: QuerySettings,
}

/// `[query]`: where `sql`, `detect` and `timeline` run their queries.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuerySettings {
    /// `local` (the default) or `ballista://HOST:PORT`.
    pub engine: Option<String>,
}

/// `[server]`: `kubetrail serve`'s address, tokens and limits.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub addr: Option<std::net::SocketAddr>,
    pub tokens_file: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub query_memory_mib: Option<usize>,
    pub server_memory_mib: Option<usize>,
    pub query_timeout: Option<String>,
    pub concurrent_queries: Option<usize>,
    pub metrics_addr: Option<std::net::SocketAddr>,
}

impl ServerConfig {
    /// The limits, the file's where it sets them.
    pub fn limits(&self) -> anyhow::Result<kubetrail_query::server::Limits> {
        let mut limits = kubetrail_query::server::Limits::default();
        const MOST: usize = 1 << 50;
        if let Some(b) = mib("server.query_memory_mib", self.query_memory_mib, MOST)? {
            limits.query_memory = b;
        }
        if let Some(b) = mib("server.server_memory_mib", self.server_memory_mib, MOST)? {
            limits.server_memory = b;
        }
        if limits.query_memory > limits.server_memory {
            anyhow::bail!(
                "server.query_memory_mib ({}) is more than server.server_memory_mib ({})",
                limits.query_memory >> 20,
                limits.server_memory >> 20
            );
        }
        if let Some(t) = &self.query_timeout {
            limits.query_timeout = kubetrail_query::window::parse_duration(t)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "server.query_timeout = {t:?}: expected a duration like 30s or 5m"
                    )
                })?;
        }
        match self.concurrent_queries {
            Some(0) => anyhow::bail!("server.concurrent_queries = 0: at least 1"),
            Some(n) => limits.concurrent_queries = n,
            None => {}
        }
        Ok(limits)
    }
}

#[derive(Debug)]
enum LakeSetting {
    Location(String),
    Table(LakeTable),
}

/// A string or a table; a mistake inside the table is named (serde's untagged enums only
/// say that nothing matched).
impl<'de> Deserialize<'de> for LakeSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Setting;
        impl<'de> serde::de::Visitor<'de> for Setting {
            type Value = LakeSetting;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a lake location, or a [lake] table with location and [lake.storage]")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<LakeSetting, E> {
                Ok(LakeSetting::Location(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<LakeSetting, A::Error> {
                LakeTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(LakeSetting::Table)
            }
        }
        d.deserialize_any(Setting)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LakeTable {
    location: Option<String>,
    /// object_store keys (`aws_endpoint`, `aws_region`, `google_service_account`, …).
    #[serde(default)]
    storage: BTreeMap<String, String>,
    /// MiB of data-file reads kept in memory on object storage (0: none).
    read_cache_mib: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectionSettings {
    /// Image name prefixes workloads may pull from (`registry.example.com/`); empty: the
    /// allow-list rule stays quiet.
    #[serde(default)]
    pub allowed_registries: Vec<String>,
    /// Identities that deploy CronJobs and DaemonSets as their job (exact, or a prefix
    /// ending in `*`): their changes do not alert.
    #[serde(default)]
    pub deployers: Vec<String>,
    /// Indicator files (`KIND VALUE [# note]` per line) added to the shipped indicators.
    #[serde(default)]
    pub indicator_files: Vec<PathBuf>,
    /// Whether the shipped indicators are used (default true).
    pub shipped_indicators: Option<bool>,
    /// `update` (default: one alert per fact, updated while it goes on) or `bucket` (one
    /// alert per entity per suppress bucket).
    pub grouping: Option<String>,
}

impl DetectionSettings {
    /// The lists the rules judge with; an unreadable or malformed indicator file is an error.
    pub fn watchlists(&self) -> anyhow::Result<Watchlists> {
        Watchlists::new(
            &self.allowed_registries,
            &self.deployers,
            &self.indicator_files,
            self.shipped_indicators.unwrap_or(true),
        )
        .map_err(|e| anyhow::anyhow!("[detections]: {e}"))
    }

    /// How repeated matches become alerts: the flag, else the file, else one per fact.
    pub fn grouping(&self, flag: Option<&str>) -> anyhow::Result<Grouping> {
        match flag.or(self.grouping.as_deref()) {
            Some(g) => g.parse().map_err(|e: String| anyhow::anyhow!(e)),
            None => Ok(Grouping::default()),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    pub brokers: Option<String>,
    pub group: Option<String>,
    /// `NAME=FORMAT` entries, as `--topic` takes them.
    #[serde(default)]
    pub topics: Vec<String>,
    pub linger: Option<String>,
    pub metrics_addr: Option<std::net::SocketAddr>,
    pub compact_closed_days: Option<bool>,
    /// librdkafka settings; secret ones are refused here.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// librdkafka settings read from files: key → path.
    #[serde(default)]
    pub secrets: BTreeMap<String, PathBuf>,
}

impl KafkaSettings {
    /// The librdkafka settings of a client: the file's `[kafka.options]`, then the
    /// flags', then the secrets: the file's `[kafka.secrets]`, `--kafka-secret-file`, and
    /// the `KUBETRAIL_KAFKA_*` variable of each secret setting. A secret given in the open
    /// is refused in one line that does not repeat it.
    pub fn client_options(&self, flags: &KafkaClientArgs) -> anyhow::Result<ClientOptions> {
        let mut options = ClientOptions::default();
        for (key, value) in &self.options {
            options
                .set(key, value)
                .map_err(|e| anyhow::anyhow!("[kafka.options] of the config file: {e}"))?;
        }
        for (key, value) in &flags.options {
            options
                .set(key, value)
                .map_err(|e| anyhow::anyhow!("--kafka-option: {e}"))?;
        }
        let files = self
            .secrets
            .iter()
            .map(|(k, p)| (k.as_str(), p.as_path()))
            .chain(
                flags
                    .secret_files
                    .iter()
                    .map(|(k, p)| (k.as_str(), Path::new(p))),
            );
        for (key, path) in files {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!(
                    "cannot read the file of Kafka setting {key} ({})",
                    path.display()
                )
            })?;
            let value = text.strip_suffix('\n').unwrap_or(&text);
            let value = value.strip_suffix('\r').unwrap_or(value);
            options.set_secret(key, value).map_err(anyhow::Error::msg)?;
        }
        for key in kafka::client_options::SECRET_KEYS {
            let variable = kafka::client_options::secret_variable(key);
            if let Ok(value) = std::env::var(&variable) {
                options
                    .set_secret(key, &value)
                    .map_err(anyhow::Error::msg)?;
            }
        }
        Ok(options)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redaction {
    /// Extra JSON paths redacted in every audit request/response object.
    #[serde(default)]
    pub paths: Vec<String>,
    /// The key's file (default `~/.config/kubetrail/redaction.key`), outside the lake.
    pub key_file: Option<PathBuf>,
    /// `all` (default) or `secret-like`: which environment values of pod specs.
    pub env_values: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSettings {
    pub batch_rows: Option<usize>,
    pub batch_mib: Option<usize>,
    pub max_record_mib: Option<usize>,
}

impl IngestSettings {
    /// The batch limits these settings give, the defaults where they say nothing.
    pub fn limits(&self) -> anyhow::Result<BatchLimits> {
        let defaults = BatchLimits::default();
        let max_rows = match self.batch_rows {
            Some(0) => anyhow::bail!("ingest.batch_rows = 0: a batch holds at least 1 row"),
            Some(rows) => rows,
            None => defaults.max_rows,
        };
        Ok(BatchLimits {
            max_rows,
            max_bytes: mib("ingest.batch_mib", self.batch_mib, BatchLimits::MOST_BYTES)?
                .unwrap_or(defaults.max_bytes),
        })
    }

    /// The largest record read, `default` where the settings say nothing.
    pub fn max_record_bytes(&self, default: usize) -> anyhow::Result<usize> {
        let most = BatchLimits::MOST_RECORD_BYTES;
        Ok(mib("ingest.max_record_mib", self.max_record_mib, most)?.unwrap_or(default))
    }
}

/// A setting in MiB, as bytes: at least 1 MiB, at most `most` bytes.
fn mib(name: &str, value: Option<usize>, most: usize) -> anyhow::Result<Option<usize>> {
    match value {
        None => Ok(None),
        Some(n) if (1..=most >> 20).contains(&n) => Ok(Some(n << 20)),
        Some(n) => anyhow::bail!("{name} = {n}: expected 1 to {} (MiB)", most >> 20),
    }
}

impl Config {
    /// Reads `explicit` (which must exist), else `./kubetrail.toml` if there is one.
    pub fn load(explicit: Option<&Path>) -> anyhow::Result<Config> {
        let path: PathBuf = match explicit {
            Some(p) => p.to_owned(),
            None if Path::new(DEFAULT_FILE).is_file() => PathBuf::from(DEFAULT_FILE),
            None => return Ok(Config::default()),
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))
    }

    /// The lake: the flag or `KUBETRAIL_LAKE`, else the file's, else `./kubetrail-lake`;
    /// with the file's `[lake.storage]` options wherever the location came from.
    /// Where queries run: the flag's engine, else `[query] engine`, else this process.
    pub fn engine(&self, flag: Option<&str>) -> anyhow::Result<Engine> {
        match flag.or(self.query.engine.as_deref()) {
            None => Ok(Engine::Local),
            Some(e) => e.parse().map_err(anyhow::Error::msg),
        }
    }

    pub fn lake(&self, flag: Option<&str>) -> anyhow::Result<Lake> {
        let (file_location, storage, read_cache_mib) = match &self.lake {
            None => (None, BTreeMap::new(), None),
            Some(LakeSetting::Location(l)) => (Some(l.as_str()), BTreeMap::new(), None),
            Some(LakeSetting::Table(t)) => {
                (t.location.as_deref(), t.storage.clone(), t.read_cache_mib)
            }
        };
        let location = flag.or(file_location).unwrap_or(DEFAULT_LAKE);
        let lake = Lake::parse(location, StorageOptions::new(storage))?;
        Ok(match read_cache_mib {
            Some(mib) => lake.with_read_cache(mib.saturating_mul(1 << 20)),
            None => lake,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lake_is_a_location_or_a_table_with_storage_options() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k.toml");
        std::fs::write(
            &file,
            "[lake]\nlocation = \"s3://evidence/lake\"\n[lake.storage]\naws_region = \"eu-west-1\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&file)).unwrap();
        let lake = c.lake(None).unwrap();
        assert_eq!(lake.display(), "s3://evidence/lake/");
        assert_eq!(lake.storage_options()["aws_region"], "eu-west-1");
        // The flag picks the location; the file's storage options still apply.
        let other = c.lake(Some("s3://other/l")).unwrap();
        assert_eq!(other.display(), "s3://other/l/");
        assert_eq!(other.storage_options()["aws_region"], "eu-west-1");
        std::fs::write(
            &file,
            "[lake]\nlocation = \"s3://e/l\"\nread_cache_mib = 0\n",
        )
        .unwrap();
        let lake = Config::load(Some(&file)).unwrap().lake(None).unwrap();
        assert_eq!(lake.read_cache_budget(), 0);
        for (text, needle) in [
            ("[lake]\nlocaton = \"/l\"\n", "unknown field `locaton`"),
            ("lake = 3\n", "a lake location, or a [lake] table"),
            ("lake = \"ftp://host/l\"\n", "'ftp' scheme"),
            (
                "[lake]\nread_cache_mib = \"lots\"\n",
                "invalid type: string \"lots\"",
            ),
            (
                "[lake]\nread_cache_mib = -1\n",
                "invalid value: integer `-1`",
            ),
        ] {
            std::fs::write(&file, text).unwrap();
            let e = Config::load(Some(&file))
                .and_then(|c| c.lake(None).map(|_| ()))
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle) && !e.contains('\n'), "{text}: {e}");
        }
    }

    #[test]
    fn files_parse_and_mistakes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.toml");
        std::fs::write(&good, "lake = \"/l\"\ncluster = \"c\"\n[redaction]\npaths = [\"a.b\"]\n[ingest]\nbatch_rows = 10\n").unwrap();
        let c = Config::load(Some(&good)).unwrap();
        assert_eq!(c.lake(None).unwrap().display(), "/l");
        assert_eq!(c.lake(Some("/flag")).unwrap().display(), "/flag");
        assert_eq!(
            (
                c.cluster.as_deref(),
                c.redaction.paths.len(),
                c.ingest.batch_rows
            ),
            (Some("c"), 1, Some(10))
        );
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "lakes = \"/l\"\n").unwrap();
        let e = Config::load(Some(&bad)).unwrap_err().to_string();
        assert!(e.contains("bad.toml") && e.contains("lakes"), "{e}");
        assert!(Config::load(Some(&dir.path().join("missing.toml"))).is_err());
        let default = Config::default().lake(None).unwrap().display();
        assert!(default.ends_with("/kubetrail-lake"), "{default}");
    }

    #[test]
    fn batch_sizes_are_taken_in_bounds_and_refused_beyond_them() {
        let ingest = |rows, batch, record| IngestSettings {
            batch_rows: rows,
            batch_mib: batch,
            max_record_mib: record,
        };
        assert_eq!(
            ingest(None, None, None).limits().unwrap(),
            BatchLimits::default()
        );
        let set = ingest(Some(10), Some(1024), Some(512));
        assert_eq!(
            set.limits().unwrap(),
            BatchLimits {
                max_rows: 10,
                max_bytes: 1 << 30
            }
        );
        assert_eq!(set.max_record_bytes(7).unwrap(), 512 << 20);
        assert_eq!(ingest(None, None, None).max_record_bytes(7).unwrap(), 7);
        for (settings, error) in [
            (
                ingest(Some(0), None, None),
                "ingest.batch_rows = 0: a batch holds at least 1 row",
            ),
            (
                ingest(None, Some(0), None),
                "ingest.batch_mib = 0: expected 1 to 1024 (MiB)",
            ),
            (
                ingest(None, Some(1025), None),
                "ingest.batch_mib = 1025: expected 1 to 1024 (MiB)",
            ),
            (
                ingest(None, Some(usize::MAX), None),
                "ingest.batch_mib = 18446744073709551615: expected 1 to 1024 (MiB)",
            ),
        ] {
            assert_eq!(settings.limits().unwrap_err().to_string(), error);
        }
        let err = ingest(None, None, Some(513))
            .max_record_bytes(7)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "ingest.max_record_mib = 513: expected 1 to 512 (MiB)"
        );
    }
}
