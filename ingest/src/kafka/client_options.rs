//! librdkafka settings for a client, with the secret ones kept out of sight.
//!
//! A password on a command line is in the shell's history and in `ps` for every user of
//! the machine, so secret settings are refused there and in the config file's
//! `[kafka.options]`; they come from a file or a variable instead
//! ([`ClientOptions::set_secret`]). Once in, a secret is never shown: `Debug` and
//! [`ClientOptions::describe`] print keys only, and nothing writes the options to the lake.

use std::fmt;

use rdkafka::ClientConfig;

/// librdkafka settings whose value is a credential.
pub const SECRET_KEYS: &[&str] = &[
    "sasl.password",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.client.credentials.client.secret",
    "sasl.oauthbearer.config",
    "sasl.oauthbearer.assertion.private.key.passphrase",
    "sasl.oauthbearer.assertion.private.key.pem",
    "ssl.key.password",
    "ssl.key.pem",
    "ssl.keystore.password",
];

/// Whether `key` holds a credential.
fn is_secret(key: &str) -> bool {
    SECRET_KEYS.contains(&key)
}

/// The variable a secret setting can come from: `KUBETRAIL_KAFKA_SASL_PASSWORD` for
/// `sasl.password`.
pub fn secret_variable(key: &str) -> String {
    format!(
        "KUBETRAIL_KAFKA_{}",
        key.to_ascii_uppercase().replace(['.', '-'], "_")
    )
}

/// Settings in the order given; a later one wins, as in librdkafka.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClientOptions {
    settings: Vec<(String, String)>,
}

impl ClientOptions {
    /// A setting given in the open (a flag, the config file's `[kafka.options]`).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        if is_secret(key) {
            return Err(format!(
                "{key} is a secret: give it in a file (--kafka-secret-file {key}=PATH or \
                 [kafka.secrets] \"{key}\" = \"PATH\") or in {}, not in the open",
                secret_variable(key)
            ));
        }
        self.push(key, value)
    }

    /// A setting read from a file or a variable; secret or not, its value is never shown.
    pub fn set_secret(&mut self, key: &str, value: &str) -> Result<(), String> {
        self.push(key, value)
    }

    fn push(&mut self, key: &str, value: &str) -> Result<(), String> {
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(format!("'{key}' is not a librdkafka setting name"));
        }
        self.settings.retain(|(k, _)| k != key);
        self.settings.push((key.to_owned(), value.to_owned()));
        Ok(())
    }

    /// An open setting's value; `None` for a secret one.
    pub fn get(&self, key: &str) -> Option<&str> {
        if is_secret(key) {
            return None;
        }
        let found = self.settings.iter().find(|(k, _)| k == key);
        found.map(|(_, v)| v.as_str())
    }

    /// The settings as pairs, secrets included: for building a client, nothing else.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.settings.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn apply(&self, config: &mut ClientConfig) {
        for (key, value) in self.pairs() {
            config.set(key, value);
        }
    }

    /// `key=value` for open settings, `key=<secret>` for the others.
    pub fn describe(&self) -> String {
        let shown: Vec<String> = self
            .settings
            .iter()
            .map(|(k, v)| {
                if is_secret(k) {
                    format!("{k}=<secret>")
                } else {
                    format!("{k}={v}")
                }
            })
            .collect();
        shown.join(", ")
    }
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientOptions({})", self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_refused_in_the_open_and_never_shown() {
        let mut options = ClientOptions::default();
        options.set("security.protocol", "SASL_SSL").unwrap();
        let refused = options.set("sasl.password", "hunter2").unwrap_err();
        assert!(
            refused.contains("KUBETRAIL_KAFKA_SASL_PASSWORD"),
            "{refused}"
        );
        assert!(!refused.contains("hunter2"), "{refused}");
        options.set_secret("sasl.password", "hunter2").unwrap();
        options
            .set_secret("ssl.key.pem", "-----BEGIN PRIVATE KEY-----")
            .unwrap();
        let shown = format!("{options:?} {}", options.describe());
        assert!(
            !shown.contains("hunter2") && !shown.contains("BEGIN"),
            "{shown}"
        );
        assert!(shown.contains("security.protocol=SASL_SSL"), "{shown}");
        assert!(shown.contains("sasl.password=<secret>"), "{shown}");
        assert!(options.pairs().any(|p| p == ("sasl.password", "hunter2")));
    }

    #[test]
    fn a_later_setting_wins_and_bad_names_are_refused() {
        let mut options = ClientOptions::default();
        options.set("linger.ms", "5").unwrap();
        options.set("linger.ms", "50").unwrap();
        assert_eq!(options.pairs().collect::<Vec<_>>(), [("linger.ms", "50")]);
        assert!(options.set("", "x").is_err());
        assert!(options.set("linger ms", "x").is_err());
        assert_eq!(
            secret_variable("sasl.oauthbearer.client.secret"),
            "KUBETRAIL_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET"
        );
    }
}
