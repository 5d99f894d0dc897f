//! Secret values never reach the lake: they are replaced by a marker holding a keyed hash,
//! so a responder can still see that two places held the same value.
//!
//! Where they are: Secrets and every patch of one; the tokens of `serviceaccounts/token`
//! and `tokenreviews`; environment values and command lines in the specs of pods and the
//! workloads that template them (and `kubectl apply`'s copy of them in an annotation);
//! credentials in free text ([`credentials`]): process arguments, Falco output, dead
//! letters, request URIs.

mod credentials;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// Annotation `kubectl apply` leaves on every object it applied: for a Secret, it holds
/// the whole Secret, values included.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Bytes of HMAC-SHA256 a marker keeps: 128 bits, beyond any search for a collision.
/// (Markers written before 2026-12 kept 12; theirs are the first 24 hex digits of these.)
const MARKER_BYTES: usize = 16;

/// Which environment values of a pod spec are redacted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EnvValues {
    /// Every value: a connection string or an API key hides behind any name.
    #[default]
    All,
    /// Values whose variable's name looks like a credential's (`*PASSWORD*`, `*TOKEN*`,
    /// `*KEY*`, `*SECRET*`, `*CRED*`, `*AUTH*`, `*DSN*`, …) or whose value has a
    /// credential's shape; the rest stay readable.
    SecretLike,
}

impl std::str::FromStr for EnvValues {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" => Ok(EnvValues::All),
            "secret-like" => Ok(EnvValues::SecretLike),
            other => Err(format!("'{other}' is not all or secret-like")),
        }
    }
}

/// What an audited object is, as far as its secrets go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// A Secret or SecretList, or a patch of one.
    Secret,
    /// A TokenRequest (`serviceaccounts/token`) or TokenReview.
    Token,
    /// A pod, a workload that templates pods, or a patch of one.
    Workload,
    Other,
}

impl ObjectKind {
    /// The kind an audit event's objects are, from its resource and subresource.
    pub fn of(resource: Option<&str>, subresource: Option<&str>) -> ObjectKind {
        match (resource, subresource) {
            (Some("secrets"), _) => ObjectKind::Secret,
            (Some("tokenreviews"), _) | (Some("serviceaccounts"), Some("token")) => {
                ObjectKind::Token
            }
            (
                Some(
                    "pods"
                    | "podtemplates"
                    | "replicationcontrollers"
                    | "deployments"
                    | "replicasets"
                    | "statefulsets"
                    | "daemonsets"
                    | "jobs"
                    | "cronjobs",
                ),
                _,
            ) => ObjectKind::Workload,
            _ => ObjectKind::Other,
        }
    }

    /// The kind an object's own `kind` field says.
    pub fn of_kind(kind: &str) -> ObjectKind {
        match kind {
            "Secret" | "SecretList" => ObjectKind::Secret,
            "TokenRequest" | "TokenReview" => ObjectKind::Token,
            "Pod"
            | "PodTemplate"
            | "ReplicationController"
            | "Deployment"
            | "ReplicaSet"
            | "StatefulSet"
            | "DaemonSet"
            | "Job"
            | "CronJob"
            | "PodList"
            | "DeploymentList" => ObjectKind::Workload,
            _ => ObjectKind::Other,
        }
    }
}

/// Replaces secret values by `[REDACTED hmac:<hex>]`.
#[derive(Clone)]
pub struct Redactor {
    key: Arc<[u8]>,
    extra_paths: Arc<[Vec<String>]>,
    env_values: EnvValues,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key itself is never printed.
        f.debug_struct("Redactor")
            .field("extra_paths", &self.extra_paths)
            .finish_non_exhaustive()
    }
}

impl Default for Redactor {
    /// A fixed, public key: markers still hide values but can be brute-forced for guessable
    /// ones. Ingestion always supplies the lake's own key instead.
    fn default() -> Self {
        Redactor::new(b"kubetrail-default-redaction-key", &[])
    }
}

impl Redactor {
    /// `extra_paths` are dotted JSON paths (`*` matches every element or key) whose values
    /// are redacted in every request and response object, Secret or not.
    pub fn new(key: &[u8], extra_paths: &[String]) -> Self {
        Redactor {
            key: Arc::from(key),
            extra_paths: extra_paths
                .iter()
                .map(|p| p.split('.').map(str::to_owned).collect())
                .collect(),
            env_values: EnvValues::default(),
        }
    }

    pub fn with_env_values(mut self, env_values: EnvValues) -> Self {
        self.env_values = env_values;
        self
    }

    pub fn has_extra_paths(&self) -> bool {
        !self.extra_paths.is_empty()
    }

    /// The marker for a value: same value and key, same marker.
    pub fn marker(&self, value: &[u8]) -> String {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(value);
        let digest = mac.finalize().into_bytes();
        format!("[REDACTED hmac:{}]", hex::encode(&digest[..MARKER_BYTES]))
    }

    /// `text` with the credentials in it replaced by markers; borrowed if it has none.
    pub fn redact_text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.redact_bytes(text.as_bytes()) {
            // Markers are ASCII and replace whole matches of ASCII-bounded patterns.
            Cow::Owned(bytes) => Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
            Cow::Borrowed(_) => Cow::Borrowed(text),
        }
    }

    /// Bytes (a dead letter's record, text or not) with the credentials in them replaced.
    pub fn redact_bytes<'a>(&self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        let spans = credentials::find(bytes);
        if spans.is_empty() {
            return Cow::Borrowed(bytes);
        }
        let mut out = Vec::with_capacity(bytes.len());
        let mut at = 0;
        for span in spans {
            out.extend_from_slice(&bytes[at..span.start]);
            out.extend_from_slice(self.marker(&bytes[span.clone()]).as_bytes());
            at = span.end;
        }
        out.extend_from_slice(&bytes[at..]);
        Cow::Owned(out)
    }

    /// A dead letter made safe to keep. A record about a Secret or a token is not kept at
    /// all (where its values were, a record that did not decode cannot say), and its
    /// reason loses what it quoted; any other record and reason have their credentials
    /// replaced. The reason says which happened.
    pub fn redact_dead_letter(&self, raw: &mut Vec<u8>, reason: &mut String) {
        if credentials::is_about_secrets(raw) {
            raw.clear();
            *reason = format!(
                "{} (raw record not kept: it is about a Secret or a token)",
                without_quotes(reason)
            );
            return;
        }
        if let Cow::Owned(redacted) = self.redact_text(reason) {
            *reason = redacted;
        }
        if let Cow::Owned(redacted) = self.redact_bytes(raw) {
            *raw = redacted;
            reason.push_str(" (credentials in the raw record redacted)");
        }
    }

    /// Whether `bytes` hold something shaped like a credential.
    pub fn has_credentials(&self, bytes: &[u8]) -> bool {
        !credentials::find(bytes).is_empty()
    }

    /// Redacts an optional text field in place.
    pub fn redact_field(&self, field: &mut Option<String>) {
        if let Some(text) = field {
            if let Cow::Owned(redacted) = self.redact_text(text) {
                *text = redacted;
            }
        }
    }

    /// Redacts an audited object (a request or response object, or a patch) of `kind`.
    pub fn redact_object(&self, kind: ObjectKind, object: &mut Value) {
        match kind {
            ObjectKind::Secret => self.redact_secret_object(object),
            ObjectKind::Token => self.redact_token_object(object),
            ObjectKind::Workload => self.redact_workload(object),
            ObjectKind::Other => {}
        }
        self.redact_paths(object);
    }

    /// A TokenRequest's issued token, a TokenReview's reviewed one.
    fn redact_token_object(&self, object: &mut Value) {
        for part in ["spec", "status"] {
            if let Some(Value::String(token)) =
                object.get_mut(part).and_then(|p| p.get_mut("token"))
            {
                *token = self.marker(token.as_bytes());
            }
        }
    }

    /// Environment values and command lines of every container spec in a pod, a
    /// workload's templates, a list of them, a patch of one, and `kubectl apply`'s copy.
    fn redact_workload(&self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                if let Some(Value::Array(env)) = map.get_mut("env") {
                    env.iter_mut().for_each(|var| self.redact_env_var(var));
                }
                for key in ["command", "args"] {
                    if let Some(Value::Array(words)) = map.get_mut(key) {
                        self.redact_words(words);
                    }
                }
                if let Some(op) = JsonPatchOp::of(map) {
                    return self.redact_workload_patch(op, map);
                }
                if let Some(Value::String(applied)) = map
                    .get_mut("metadata")
                    .and_then(|m| m.get_mut("annotations"))
                    .and_then(|a| a.get_mut(LAST_APPLIED))
                {
                    if let Ok(mut inner) = serde_json::from_str::<Value>(applied) {
                        self.redact_workload(&mut inner);
                        *applied = inner.to_string();
                    }
                }
                for (key, child) in map.iter_mut() {
                    if !matches!(key.as_str(), "env" | "command" | "args") {
                        self.redact_workload(child);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_workload(v)),
            _ => {}
        }
    }

    /// One operation of a JSON patch (RFC 6902) of a workload: a value added under an
    /// `env` list, a command or its arguments.
    fn redact_workload_patch(&self, op: JsonPatchOp, map: &mut serde_json::Map<String, Value>) {
        let Some(value) = map.get_mut("value") else {
            return;
        };
        let segments: Vec<&str> = op.path.split('/').collect();
        let in_env = segments.contains(&"env");
        match (in_env, segments.last().copied(), value) {
            // `/spec/containers/0/env/1/value`: the name is not in the patch.
            (true, Some("value"), value) => self.redact_plain(value),
            // `/…/env/1` with a variable, `/…/env` with the list.
            (true, _, var @ Value::Object(_)) => self.redact_env_var(var),
            (true, _, Value::Array(vars)) => vars.iter_mut().for_each(|v| self.redact_env_var(v)),
            (false, _, value) if segments.contains(&"command") || segments.contains(&"args") => {
                match value {
                    Value::Array(words) => self.redact_words(words),
                    word => self.redact_text_value(word),
                }
            }
            (false, _, value) => self.redact_workload(value),
            _ => {}
        }
    }

    fn redact_env_var(&self, var: &mut Value) {
        let Some(map) = var.as_object_mut() else {
            return;
        };
        let secret_like = map
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(is_secret_like_name);
        let Some(value) = map.get_mut("value") else {
            return;
        };
        match self.env_values {
            EnvValues::All => self.redact_plain(value),
            EnvValues::SecretLike if secret_like => self.redact_plain(value),
            EnvValues::SecretLike => self.redact_text_value(value),
        }
    }

    /// A whole value becomes a marker.
    fn redact_plain(&self, value: &mut Value) {
        let plain = match &*value {
            Value::Null => return,
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        *value = Value::String(self.marker(plain.as_bytes()));
    }

    /// A command line as a list of words: credentials in each, and the word after a flag
    /// that names one (`["--api-token", "…"]`).
    fn redact_words(&self, words: &mut [Value]) {
        let mut next_is_secret = false;
        for word in words {
            let flag = word.as_str().is_some_and(credentials::is_secret_flag);
            match next_is_secret {
                true => self.redact_plain(word),
                false => self.redact_text_value(word),
            }
            next_is_secret = flag;
        }
    }

    /// The credentials in a string value become markers.
    fn redact_text_value(&self, value: &mut Value) {
        if let Value::String(text) = value {
            if let Cow::Owned(redacted) = self.redact_text(text) {
                *text = redacted;
            }
        }
    }

    /// Redacts a Secret, a SecretList, or a patch of a Secret (merge, strategic merge or
    /// JSON patch), in place.
    pub fn redact_secret_object(&self, object: &mut Value) {
        if let Value::Array(ops) = object {
            return ops
                .iter_mut()
                .for_each(|op| self.redact_secret_patch_op(op));
        }
        let Some(map) = object.as_object_mut() else {
            return;
        };
        if let Some(Value::Array(items)) = map.get_mut("items") {
            for item in items {
                self.redact_secret_object(item);
            }
        }
        if let Some(Value::Object(data)) = map.get_mut("data") {
            for value in data.values_mut() {
                if let Value::String(s) = value {
                    // `data` is base64: hash the decoded bytes so that the same value under
                    // `data` and `stringData` gets the same marker.
                    let decoded = base64::engine::general_purpose::STANDARD.decode(s.as_bytes());
                    *s = self.marker(decoded.as_deref().unwrap_or(s.as_bytes()));
                } else if !value.is_null() {
                    *value = Value::String(self.marker(value.to_string().as_bytes()));
                }
            }
        }
        if let Some(Value::Object(data)) = map.get_mut("stringData") {
            for value in data.values_mut() {
                let plain = match &*value {
                    Value::String(s) => s.clone(),
                    Value::Null => continue,
                    other => other.to_string(),
                };
                *value = Value::String(self.marker(plain.as_bytes()));
            }
        }
        let annotations = map
            .get_mut("metadata")
            .and_then(|m| m.get_mut("annotations"))
            .and_then(Value::as_object_mut);
        if let Some(Value::String(applied)) = annotations.and_then(|a| a.get_mut(LAST_APPLIED)) {
            self.redact_applied_secret(applied);
        }
    }

    /// One JSON patch operation on a Secret: values under `data` or `stringData`, a whole
    /// object, or `kubectl apply`'s annotation.
    fn redact_secret_patch_op(&self, op: &mut Value) {
        let Some(map) = op.as_object_mut() else {
            return;
        };
        let Some(JsonPatchOp { path }) = JsonPatchOp::of(map) else {
            return;
        };
        let Some(value) = map.get_mut("value") else {
            return;
        };
        let base64 = path.starts_with("/data");
        if path.is_empty() || path == "/" {
            self.redact_secret_object(value);
        } else if base64 || path.starts_with("/stringData") {
            let redact_one = |v: &mut Value| match v {
                Value::String(s) if base64 => {
                    let decoded = base64::engine::general_purpose::STANDARD.decode(s.as_bytes());
                    *s = self.marker(decoded.as_deref().unwrap_or(s.as_bytes()));
                }
                other => self.redact_plain(other),
            };
            match value {
                Value::Object(values) => values.values_mut().for_each(redact_one),
                one => redact_one(one),
            }
        } else if path.starts_with("/metadata") {
            // The annotation itself, the annotations, or the whole metadata.
            let applied = if path.ends_with(&LAST_APPLIED.replace('/', "~1")) {
                Some(value)
            } else if path.ends_with("/annotations") {
                value.get_mut(LAST_APPLIED)
            } else {
                value
                    .get_mut("annotations")
                    .and_then(|a| a.get_mut(LAST_APPLIED))
            };
            if let Some(Value::String(applied)) = applied {
                self.redact_applied_secret(applied);
            }
        }
    }

    /// `kubectl apply`'s copy of a Secret, in its annotation.
    fn redact_applied_secret(&self, applied: &mut String) {
        *applied = match serde_json::from_str::<Value>(applied) {
            Ok(mut inner) => {
                self.redact_secret_object(&mut inner);
                inner.to_string()
            }
            Err(_) => self.marker(applied.as_bytes()),
        };
    }

    /// Redacts the configured paths in any object, in place.
    pub fn redact_paths(&self, object: &mut Value) {
        for path in self.extra_paths.iter() {
            self.redact_at(object, path);
        }
    }

    fn redact_at(&self, value: &mut Value, path: &[String]) {
        let Some((head, rest)) = path.split_first() else {
            let plain = match &*value {
                Value::Null => return,
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            *value = Value::String(self.marker(plain.as_bytes()));
            return;
        };
        match value {
            Value::Object(map) if head == "*" => {
                map.values_mut().for_each(|v| self.redact_at(v, rest))
            }
            Value::Object(map) => {
                if let Some(v) = map.get_mut(head) {
                    self.redact_at(v, rest)
                }
            }
            Value::Array(items) if head == "*" => {
                items.iter_mut().for_each(|v| self.redact_at(v, rest))
            }
            Value::Array(items) => {
                if let Some(v) = head.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                    self.redact_at(v, rest)
                }
            }
            _ => {}
        }
    }
}

/// A parser's message with what it quoted (a value it did not expect) left out.
fn without_quotes(reason: &str) -> String {
    reason
        .split('"')
        .enumerate()
        .map(|(i, part)| if i % 2 == 0 { part } else { "…" })
        .collect::<Vec<_>>()
        .join("\"")
}

/// An operation of a JSON patch: an object with `op` and `path`.
struct JsonPatchOp {
    path: String,
}

impl JsonPatchOp {
    fn of(map: &serde_json::Map<String, Value>) -> Option<JsonPatchOp> {
        map.get("op")?.as_str()?;
        let path = map.get("path")?.as_str()?;
        Some(JsonPatchOp {
            path: path.to_owned(),
        })
    }
}

/// A variable name that says it holds a credential.
fn is_secret_like_name(name: &str) -> bool {
    let name = name.to_ascii_uppercase();
    [
        "PASS", "PWD", "SECRET", "TOKEN", "KEY", "CRED", "AUTH", "CERT", "PRIVATE", "SESSION",
        "COOKIE", "DSN", "CONN", "SALT", "SIGN",
    ]
    .iter()
    .any(|part| name.contains(part))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_values_become_markers_that_match_across_data_and_string_data() {
        let r = Redactor::new(b"k", &[]);
        let applied = json!({"kind": "Secret", "data": {"password": "aHVudGVyMg=="}}).to_string();
        let mut secret = json!({
            "kind": "Secret",
            "metadata": {"name": "db", "annotations": {LAST_APPLIED: applied}},
            "data": {"password": "aHVudGVyMg=="},
            "stringData": {"also": "hunter2"}
        });
        r.redact_secret_object(&mut secret);
        let text = secret.to_string();
        assert!(!text.contains("aHVudGVyMg=="), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(secret["data"]["password"], secret["stringData"]["also"]);
        assert_eq!(secret["metadata"]["name"], "db");
        assert!(secret["data"]["password"]
            .as_str()
            .unwrap()
            .starts_with("[REDACTED hmac:"));
    }

    #[test]
    fn lists_and_configured_paths_are_redacted_and_keys_matter() {
        let r = Redactor::new(b"k", &["spec.containers.*.env.*.value".to_owned()]);
        let mut list =
            json!({"kind": "SecretList", "items": [{"data": {"a": "eA=="}}, {"data": {"b": 5}}]});
        r.redact_secret_object(&mut list);
        assert!(!list.to_string().contains("eA=="));
        assert!(list["items"][1]["data"]["b"].is_string());
        let mut pod =
            json!({"spec": {"containers": [{"env": [{"name": "TOKEN", "value": "s3cr3t"}]}]}});
        r.redact_paths(&mut pod);
        assert!(!pod.to_string().contains("s3cr3t"));
        assert_eq!(pod["spec"]["containers"][0]["env"][0]["name"], "TOKEN");
        assert_ne!(
            Redactor::new(b"a", &[]).marker(b"v"),
            Redactor::new(b"b", &[]).marker(b"v")
        );
        assert!(format!("{r:?}").contains("extra_paths"));
    }

    #[test]
    fn secret_like_env_values_keep_harmless_names_readable() {
        let r = Redactor::new(b"k", &[]).with_env_values(EnvValues::SecretLike);
        let mut pod = json!({"spec": {"containers": [{"env": [
            {"name": "LOG_LEVEL", "value": "debug"},
            {"name": "DB_PASSWORD", "value": "hunter2"},
            {"name": "CONFIG", "value": "url=https://u:pa55word@db/x"},
            {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "db", "key": "p"}}},
        ]}]}});
        r.redact_object(ObjectKind::Workload, &mut pod);
        let env = &pod["spec"]["containers"][0]["env"];
        assert_eq!(env[0]["value"], "debug");
        assert!(env[1]["value"]
            .as_str()
            .unwrap()
            .starts_with("[REDACTED hmac:"));
        let config = env[2]["value"].as_str().unwrap();
        assert!(
            config.starts_with("url=https://u:[REDACTED hmac:") && !config.contains("pa55word")
        );
        assert_eq!(env[3]["valueFrom"]["secretKeyRef"]["key"], "p");
        // By default every value goes.
        let mut pod =
            json!({"spec": {"containers": [{"env": [{"name": "LOG_LEVEL", "value": "debug"}]}]}});
        Redactor::new(b"k", &[]).redact_object(ObjectKind::Workload, &mut pod);
        assert_ne!(pod["spec"]["containers"][0]["env"][0]["value"], "debug");
    }

    #[test]
    fn json_patches_of_secrets_lose_their_values_and_keep_their_shape() {
        let r = Redactor::new(b"k", &[]);
        let applied = json!({"kind": "Secret", "stringData": {"p": "hunter2"}}).to_string();
        let mut patch = json!([
            {"op": "replace", "path": "/data/p", "value": "aHVudGVyMg=="},
            {"op": "add", "path": "/stringData", "value": {"p": "hunter2"}},
            {"op": "add", "path": "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration", "value": applied},
            {"op": "replace", "path": "", "value": {"kind": "Secret", "data": {"p": "aHVudGVyMg=="}}},
            {"op": "replace", "path": "/metadata/labels/team", "value": "payments"},
            {"op": "remove", "path": "/data/old"},
        ]);
        r.redact_object(ObjectKind::Secret, &mut patch);
        let text = patch.to_string();
        assert!(
            !text.contains("hunter2") && !text.contains("aHVudGVyMg=="),
            "{text}"
        );
        // The same value under data and stringData: one marker.
        assert_eq!(patch[0]["value"], patch[1]["value"]["p"]);
        assert_eq!(patch[4]["value"], "payments");
        assert_eq!(patch[5]["path"], "/data/old");
    }

    #[test]
    fn tokens_of_requests_and_reviews_become_markers() {
        let r = Redactor::new(b"k", &[]);
        let mut review =
            json!({"kind": "TokenReview", "spec": {"token": "eyJ.x.y", "audiences": ["api"]}});
        r.redact_object(ObjectKind::Token, &mut review);
        assert!(review["spec"]["token"]
            .as_str()
            .unwrap()
            .starts_with("[REDACTED hmac:"));
        assert_eq!(review["spec"]["audiences"][0], "api");
        assert_eq!(
            ObjectKind::of(Some("serviceaccounts"), Some("token")),
            ObjectKind::Token
        );
        assert_eq!(
            ObjectKind::of(Some("serviceaccounts"), None),
            ObjectKind::Other
        );
        assert_eq!(ObjectKind::of(Some("cronjobs"), None), ObjectKind::Workload);
        assert_eq!(ObjectKind::of_kind("TokenRequest"), ObjectKind::Token);
        assert_eq!("secret-like".parse(), Ok(EnvValues::SecretLike));
        assert!("some".parse::<EnvValues>().is_err());
    }
}
