//! Credentials in free text: command lines, process arguments, Falco output, dead letters.
//!
//! Structured places (a Secret's `data`, a token request's `status.token`) are redacted by
//! their path; free text has no paths, so what is redacted there is what a credential looks
//! like: a value given to a password- or token-like flag or key, an `Authorization` header's
//! value, and the shapes credentials have whatever they are called (AWS access key ids,
//! JWTs, PEM private keys, passwords in URLs, GitHub, Slack and Google API tokens). Only the
//! value is replaced, so `mysql --password=[REDACTED hmac:…]` still says what ran.

use std::sync::LazyLock;

use regex_automata::meta::Regex;
use regex_automata::util::captures::Captures;

/// Names of flags and keys whose value is a credential. A name that goes on to say it
/// holds a place (`--token-file`, `secretName`, `password_path`) is not one: see
/// [`names_a_place`].
const SECRET_NAME: &str = r"[A-Za-z0-9_.-]*(?i:password|passwd|passphrase|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?)[A-Za-z0-9_.-]*";

/// A value: up to whitespace, a quote, a JSON escape or a separator of the text around it.
const VALUE: &str = r#"[^\s"'\\&;,|<>]+"#;

/// One pattern per shape; each names the credential `secret` (and the flag or key `name`
/// where there is one). Compiled once, searched together.
static PATTERNS: LazyLock<Regex> = LazyLock::new(|| {
    let patterns = [
        // `--password=x`, `--password x`, `-token x`.
        format!(r"(?:^|[\s'\x22])--?(?P<name>{SECRET_NAME})(?:=|%3[Dd]|\s+)['\x22]?(?P<secret>{VALUE})"),
        // `password=x`, `password: x`, `"password":"x"`, `DB_PASSWORD=x`, `?token=x`.
        format!(r"(?P<name>{SECRET_NAME})['\x22]?\s*(?:[=:]|%3[Dd])\s*['\x22]?(?P<secret>{VALUE})"),
        // `Authorization: Bearer x`, `Authorization: Basic x`, `bearer x`.
        r"(?i:authorization\x22?\s*[:=]\s*\x22?(?:bearer|basic)|bearer)\s+(?P<secret>[A-Za-z0-9._~+/=-]{8,})".to_owned(),
        r"\b(?P<secret>(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16})\b".to_owned(),
        r"\b(?P<secret>eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})".to_owned(),
        // To its END line, or to the end of a text that cut it short.
        r"(?P<secret>-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----(?s:.)*?(?:-----END[A-Z0-9 ]*PRIVATE KEY-----|$))"
            .to_owned(),
        // `scheme://user:password@host`.
        r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@\x22']+:(?P<secret>[^\s/@\x22']+)@".to_owned(),
        r"\b(?P<secret>gh[pousr]_[A-Za-z0-9]{36,})".to_owned(),
        r"\b(?P<secret>xox[abprs]-[A-Za-z0-9-]{10,})".to_owned(),
        r"\b(?P<secret>AIza[0-9A-Za-z_-]{35})".to_owned(),
    ];
    Regex::new_many(&patterns).expect("the credential patterns compile")
});

/// A flag naming a credential whose value is the next word (`["--api-token", "x"]`).
static SECRET_FLAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"^--?(?P<name>{SECRET_NAME})$")).expect("the flag pattern compiles")
});

/// Whether a word of a command line is a flag whose value, the next word, is a credential.
pub(crate) fn is_secret_flag(word: &str) -> bool {
    let re = &*SECRET_FLAG;
    let mut caps = re.create_captures();
    re.captures(word.as_bytes(), &mut caps);
    caps.get_group_by_name("name")
        .is_some_and(|name| !names_a_place(&word.as_bytes()[name.range()]))
}

/// An audit record about a Secret or a token, even inside a wrapper's escaped string.
static SECRET_OBJECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"\\?"(?:resource|kind)\\?"\s*:\s*\\?"(?:secrets|Secret|SecretList|tokenreviews|TokenReview|TokenRequest)\\?"|\\?"subresource\\?"\s*:\s*\\?"token\\?""#,
    )
    .expect("the secret object pattern compiles")
});

/// Whether a record is about a Secret or a token: where its values are, no pattern can say.
pub(crate) fn is_about_secrets(record: &[u8]) -> bool {
    SECRET_OBJECT.is_match(record)
}

/// A name that says where a credential is, not what it is.
fn names_a_place(name: &[u8]) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "file", "path", "dir", "name", "ref", "type", "len", "length", "ttl", "expiry",
        "expiration", "seconds", "count", "mount", "volume", "source", "audience", "url",
        "endpoint", "key_id", "keyid",
    ]
    .iter()
    .any(|suffix| name.ends_with(suffix.as_bytes()))
        // `--secret-name=…`, `token_file=…` and their camel-case kin end in their place.
        || name.ends_with(b"s")
            && ["secrets", "tokens", "credentials"]
                .iter()
                .any(|plural| name.ends_with(plural.as_bytes()))
}

/// A value that is not a credential: a variable to expand, a marker already, nothing.
fn is_stand_in(value: &[u8]) -> bool {
    value.is_empty()
        || value.starts_with(b"$")
        || value.starts_with(b"[REDACTED")
        || value.iter().all(|&b| b == b'*' || b == b'x' || b == b'X')
}

/// The spans of the credentials in `text`, in order, not overlapping.
pub(crate) fn find(text: &[u8]) -> Vec<std::ops::Range<usize>> {
    let re = &*PATTERNS;
    if !re.is_match(text) {
        return Vec::new();
    }
    let mut spans: Vec<std::ops::Range<usize>> = Vec::new();
    let mut caps = re.create_captures();
    let mut at = 0;
    while at < text.len() {
        let input = regex_automata::Input::new(text).span(at..text.len());
        re.search_captures(&input, &mut caps);
        let Some(m) = caps.get_match() else { break };
        if let Some(secret) = credential(&caps, text) {
            if spans.last().is_none_or(|last| last.end <= secret.start) {
                spans.push(secret);
            }
        }
        // Past the match; an empty match cannot happen, the patterns all consume.
        at = m.end().max(at + 1);
    }
    spans
}

fn credential(caps: &Captures, text: &[u8]) -> Option<std::ops::Range<usize>> {
    let secret = caps.get_group_by_name("secret")?.range();
    if is_stand_in(&text[secret.clone()]) {
        return None;
    }
    if let Some(name) = caps.get_group_by_name("name") {
        if names_a_place(&text[name.range()]) {
            return None;
        }
    }
    Some(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<&str> {
        find(text.as_bytes())
            .into_iter()
            .map(|r| &text[r])
            .collect()
    }

    #[test]
    fn credentials_are_found_by_name_and_by_shape() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJlLWJ5dGVz";
        let pem =
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----";
        for (text, want) in [
            ("mysql -u root --password=hunter2 db", vec!["hunter2"]),
            ("mysql --password hunter2", vec!["hunter2"]),
            ("psql -token s3cr3t", vec!["s3cr3t"]),
            ("env DB_PASSWORD=hunter2 ./run", vec!["hunter2"]),
            (r#"{"password":"hunter2","user":"x"}"#, vec!["hunter2"]),
            ("api_key: abcdef123", vec!["abcdef123"]),
            ("/exec?command=login&token%3Dabc123", vec!["abc123"]),
            (
                "curl -H 'Authorization: Bearer abcdefgh12345678' https://x",
                vec!["abcdefgh12345678"],
            ),
            ("Authorization: Basic dXNlcjpwYXNz", vec!["dXNlcjpwYXNz"]),
            (
                "aws configure set AKIAIOSFODNN7EXAMPLE",
                vec!["AKIAIOSFODNN7EXAMPLE"],
            ),
            (&format!("kubectl --server x {jwt}"), vec![jwt]),
            (&format!("echo '{pem}' > k"), vec![pem]),
            (
                "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg",
                vec!["-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg"],
            ),
            (
                "git clone https://bob:pa55w0rd@github.com/x/y",
                vec!["pa55w0rd"],
            ),
            (
                "GITHUB=ghp_abcdefghijklmnopqrstuvwxyz0123456789",
                vec!["ghp_abcdefghijklmnopqrstuvwxyz0123456789"],
            ),
            (
                "SLACK xoxb-1234567890-abcdef",
                vec!["xoxb-1234567890-abcdef"],
            ),
        ] {
            assert_eq!(found(text), want, "{text}");
        }
    }

    #[test]
    fn flags_whose_next_word_is_a_credential() {
        for word in ["--password", "-token", "--api-key", "--client-secret"] {
            assert!(is_secret_flag(word), "{word}");
        }
        for word in [
            "--token-file",
            "--password=x",
            "password",
            "--verbose",
            "--secret-name",
        ] {
            assert!(!is_secret_flag(word), "{word}");
        }
    }

    #[test]
    fn places_stand_ins_and_prose_are_not_credentials() {
        for text in [
            "kubelet --token-file=/var/run/secrets/token",
            "--service-account-key-file=/etc/k.pem",
            "secretName: db-credentials",
            "tokenExpirationSeconds: 3600",
            "--password=$DB_PASSWORD",
            "password=********",
            "password=[REDACTED hmac:0011]",
            "the token expired; basic usage follows",
            "/bin/sh -c ls -la /tmp",
            "GET /api/v1/namespaces/default/secrets?limit=500",
            "https://registry.example.com/v2/",
        ] {
            assert!(found(text).is_empty(), "{text}: {:?}", found(text));
        }
    }
}
