//! What librdkafka says about its brokers, and the failures no retry mends.
//!
//! librdkafka retries every broker failure for ever. That is right for a broker that is
//! restarting and wrong for a setting the broker refuses: a password, a certificate no
//! trusted CA signed, a SASL mechanism it does not offer, plaintext spoken to a TLS
//! listener, a client without SASL at a SASL listener. Those never heal by themselves, and
//! a client stuck in a silent retry loop tells the responder nothing, so until a broker
//! has answered once they end the command with one line in librdkafka's own words. After
//! that, every failure is an outage to ride out: a warning every 30 s and a counter.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use tracing::{debug, error, warn};

use super::ClientOptions;
use crate::error::IngestError;
use crate::metrics::IngestMetrics;

/// A handshake cut this many times before any answer is a setting, not bad luck: a broker
/// that is restarting refuses connections rather than accepting and closing them.
const CUT_HANDSHAKES: u32 = 2;

/// Warnings about a broker that stays away come at most this often.
const WARN_EVERY: Duration = Duration::from_secs(30);

#[derive(Default)]
pub(crate) struct BrokerFailures {
    /// Counts broker errors in `/metrics` (the ingester's; `produce` has none).
    metrics: Option<Arc<IngestMetrics>>,
    /// The client's security settings, named in the line a refused setting ends on.
    security: String,
    /// A broker answered a request: failures from now on are outages.
    answered: AtomicBool,
    /// librdkafka's last `FAIL` line: the error a consumer's poll returns carries only
    /// the code, the line says what went wrong.
    last_fail: Mutex<Option<String>>,
    cut_handshakes: AtomicU32,
    unmendable: OnceLock<String>,
    last_warning: Mutex<Option<Instant>>,
}

impl BrokerFailures {
    pub fn new(options: &ClientOptions, metrics: Option<Arc<IngestMetrics>>) -> Self {
        let security = ["security.protocol", "sasl.mechanism", "sasl.username"]
            .iter()
            .map(|key| format!("{key}={}", options.get(key).unwrap_or("(not set)")))
            .collect::<Vec<_>>()
            .join(", ");
        BrokerFailures {
            metrics,
            security,
            ..BrokerFailures::default()
        }
    }

    /// A broker answered a request.
    pub fn answered(&self) {
        self.answered.store(true, Ordering::Relaxed);
    }

    /// `Err` with the one line to end on, once a failure no retry mends happened.
    pub fn check(&self) -> Result<(), IngestError> {
        match self.unmendable.get() {
            Some(line) => Err(IngestError::Kafka(line.clone())),
            None => Ok(()),
        }
    }

    /// librdkafka's log callback. The client must log at `Info`: a connection closed
    /// during the handshake is logged at that level and raises no error event.
    pub fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        if facility == "FAIL" {
            *lock(&self.last_fail) = Some(message.to_owned());
            if handshake_cut(message)
                && self.cut_handshakes.fetch_add(1, Ordering::Relaxed) + 1 >= CUT_HANDSHAKES
            {
                self.unmendable(&format!(
                    "{message}: the broker closes every connection during the handshake, as a \
                     TLS listener does to plaintext and a SASL listener to a client without \
                     SASL (check security.protocol)"
                ));
            }
            // Failures worth a word also come as error events, which say it (once).
            debug!(target: "librdkafka", "{facility}: {message}");
            return;
        }
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => error!(target: "librdkafka", "{facility}: {message}"),
            RDKafkaLogLevel::Warning => self.warn(&format!("librdkafka {facility}: {message}")),
            _ => debug!(target: "librdkafka", "{facility}: {message}"),
        }
    }

    /// An error event: the client's error callback, or an error a consumer's poll returned
    /// (`reason` empty).
    pub fn error(&self, error: &KafkaError, reason: &str) {
        if cannot_mend(error.rdkafka_error_code()) {
            let said = lock(&self.last_fail).clone();
            let text = match (reason.is_empty(), said) {
                (false, _) => reason.to_owned(),
                (true, Some(line)) => line,
                (true, None) => error.to_string(),
            };
            self.unmendable(&text);
            if self.unmendable.get().is_some() {
                // The command ends on that line; a warning would say it twice.
                return;
            }
        }
        if reason.is_empty() {
            self.warn(&format!("Kafka: {error}"));
        } else {
            self.warn(&format!("Kafka: {error}: {reason}"));
        }
    }

    /// A warning at most every [`WARN_EVERY`]; a broker that stays away would otherwise
    /// log several lines a second.
    fn warn(&self, message: &str) {
        if let Some(metrics) = &self.metrics {
            metrics.broker_error();
        }
        let mut last = lock(&self.last_warning);
        if last.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            warn!("{message}");
            *last = Some(Instant::now());
        } else {
            debug!("{message}");
        }
    }

    fn unmendable(&self, text: &str) {
        if !self.answered.load(Ordering::Relaxed) {
            let _ = self.unmendable.set(format!(
                "Kafka: {text} [{}] (a setting to fix, not an outage: not retried)",
                self.security
            ));
        }
    }
}

/// Whether an error with this code is a setting to fix.
fn cannot_mend(code: Option<RDKafkaErrorCode>) -> bool {
    matches!(
        code,
        Some(
            RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::SSL
                | RDKafkaErrorCode::UnsupportedSASLMechanism
                | RDKafkaErrorCode::IllegalSASLState
                | RDKafkaErrorCode::SaslAuthenticationFailed
        )
    )
}

/// A `FAIL` line of a connection the broker closed while the client was still opening it
/// (`… Disconnected: … (after 1ms in state APIVERSION_QUERY)`): a plaintext client at a
/// TLS listener, or, closed within moments of being up, a client without SASL at a SASL
/// listener.
fn handshake_cut(line: &str) -> bool {
    let Some((_, after)) = line.split_once("Disconnected") else {
        return false;
    };
    let Some((_, timing)) = after.rsplit_once("(after ") else {
        return false;
    };
    let Some((ms, rest)) = timing.split_once("ms in state ") else {
        return false;
    };
    let state: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    match (ms.parse::<u64>(), state.as_str()) {
        (Ok(_), "APIVERSION_QUERY") => true,
        // Only a client without SASL: a SASL client's own failures are named by SASL.
        (Ok(ms), "UP") => ms < 2000 && !line.starts_with("sasl_"),
        _ => false,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshakes_cut_are_told_from_outages() {
        let plaintext_at_tls = "sasl_plaintext://127.0.0.1:54357/bootstrap: Disconnected: \
            connection reset by peer (after 1ms in state APIVERSION_QUERY)";
        let tls_without_sasl = "ssl://127.0.0.1:54357/bootstrap: Disconnected: SSL connection \
            closed by peer (after 2ms in state UP, 1 identical error(s) suppressed)";
        let restarting = "127.0.0.1:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: \
            Connection refused (after 0ms in state CONNECT)";
        let idle_closed = "127.0.0.1:9092/1: Disconnected (after 600000ms in state UP)";
        assert!(handshake_cut(plaintext_at_tls));
        assert!(handshake_cut(tls_without_sasl));
        assert!(!handshake_cut(restarting));
        assert!(!handshake_cut(idle_closed));
        assert!(!handshake_cut("Disconnected (after"));
    }

    #[test]
    fn a_refused_setting_ends_only_until_a_broker_answered() {
        let auth = KafkaError::MessageConsumption(RDKafkaErrorCode::Authentication);
        let fresh = BrokerFailures::default();
        fresh.log(
            RDKafkaLogLevel::Error,
            "FAIL",
            "SASL authentication error: invalid-proof",
        );
        fresh.error(&auth, "");
        let line = fresh.check().unwrap_err().to_string();
        assert!(
            line.contains("invalid-proof") && line.contains("not retried"),
            "{line}"
        );

        let running = BrokerFailures::default();
        running.answered();
        running.error(&auth, "SASL authentication error");
        assert!(running.check().is_ok());

        let cut = BrokerFailures::default();
        let line =
            "x: Disconnected: connection reset by peer (after 1ms in state APIVERSION_QUERY)";
        cut.log(RDKafkaLogLevel::Info, "FAIL", line);
        assert!(cut.check().is_ok(), "one cut handshake may be bad luck");
        cut.log(RDKafkaLogLevel::Info, "FAIL", line);
        let said = cut.check().unwrap_err().to_string();
        assert!(said.contains("security.protocol"), "{said}");

        let outage = BrokerFailures::default();
        let transport = KafkaError::MessageConsumption(RDKafkaErrorCode::BrokerTransportFailure);
        outage.error(&transport, "Connection refused");
        assert!(outage.check().is_ok());
    }
}
