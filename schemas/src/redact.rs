//! Secret values never reach the lake: they are replaced by a marker holding a keyed hash,
//! so a responder can still see that two places held the same value.

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// Annotation `kubectl apply` leaves on every object it applied: for a Secret, it holds
/// the whole Secret, values included.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Replaces secret values by `[REDACTED hmac:<hex>]`.
#[derive(Clone)]
pub struct Redactor {
    key: Arc<[u8]>,
    extra_paths: Arc<[Vec<String>]>,
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
        }
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
        format!("[REDACTED hmac:{}]", hex::encode(&digest[..12]))
    }

    /// Redacts a Secret, a SecretList, or a patch of a Secret, in place.
    pub fn redact_secret_object(&self, object: &mut Value) {
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
            *applied = match serde_json::from_str::<Value>(applied) {
                Ok(mut inner) => {
                    self.redact_secret_object(&mut inner);
                    inner.to_string()
                }
                Err(_) => self.marker(applied.as_bytes()),
            };
        }
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
}
