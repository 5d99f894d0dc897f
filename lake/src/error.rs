//! What can go wrong with the lake, each in one line that names the table or location.

use deltalake::DeltaTableError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum LakeError {
    #[error("lake location '{0}': {1}")]
    Location(String, String),
    #[error("no lake at {0} (ingest something first, or pass --lake)")]
    NoLake(String),
    #[error("table {table}: {error}")]
    Delta {
        table: String,
        error: Box<DeltaTableError>,
    },
    #[error("table {table}: {message}")]
    Arrow { table: String, message: String },
    #[error("table {table}: the task writing a file ended without finishing it: {message}")]
    WriteTask { table: String, message: String },
    #[error("lake storage at {location}: {message}")]
    Storage { location: String, message: String },
    #[error(
        "lake storage at {location}: {problem}; check the credentials (AWS_ACCESS_KEY_ID and \
         AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE, or [lake.storage]) and what \
         they may access"
    )]
    Credentials { location: String, problem: String },
    #[error(
        "a retention of {hours} h is under Delta's floor of 168 h (7 days): a running query \
         or an ingest not yet committed may still need the files it would delete"
    )]
    RetentionBelowFloor { hours: u64 },
    #[error("lake I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl LakeError {
    pub(crate) fn delta(table: impl ToString, source: DeltaTableError) -> Self {
        if let Some(problem) = credentials_problem(&source.to_string()) {
            return LakeError::Credentials {
                location: format!("table {}", table.to_string()),
                problem,
            };
        }
        LakeError::Delta {
            table: table.to_string(),
            error: Box::new(source),
        }
    }

    /// A commit Delta refused because another landed first with something it cannot be
    /// put on top of (a metadata change, such as the table's creation by another writer);
    /// the writer has caught up with the table, so committing again may succeed.
    pub fn is_commit_conflict(&self) -> bool {
        matches!(
            self,
            LakeError::Delta { error, .. } if matches!(
                error.as_ref(),
                DeltaTableError::Transaction {
                    source: deltalake::kernel::transaction::TransactionError::CommitConflict(_)
                }
            )
        )
    }

    pub(crate) fn storage(location: impl ToString, error: impl ToString) -> Self {
        let message = error.to_string();
        match credentials_problem(&message) {
            Some(problem) => LakeError::Credentials {
                location: location.to_string(),
                problem,
            },
            None => LakeError::Storage {
                location: location.to_string(),
                message: one_line(&message),
            },
        }
    }
}

/// A refusal for want of credentials, told from object_store's text (its errors keep the
/// HTTP status and the body, not a kind for it): what the server said, without the XML,
/// request ids and URLs a responder does not need.
fn credentials_problem(text: &str) -> Option<String> {
    // The SDK chain's last resort: no variable, profile or web identity gave a key.
    if text.contains("169.254.169.254") {
        return Some(
            "no credentials found (none in the environment, and the instance metadata \
             service gave none)"
                .to_owned(),
        );
    }
    let refused = [
        "403 Forbidden",
        "401 Unauthorized",
        "lacked the necessary privileges",
    ];
    if !refused.iter().any(|r| text.contains(r)) {
        return None;
    }
    let tag = |name: &str| {
        let start = text.find(&format!("<{name}>"))? + name.len() + 2;
        let end = start + text[start..].find(&format!("</{name}>"))?;
        Some(text[start..end].trim().to_owned())
    };
    Some(match (tag("Code"), tag("Message")) {
        (Some(code), Some(message)) => format!("access denied ({code}: {message})"),
        (Some(code), None) => format!("access denied ({code})"),
        _ => "access denied (HTTP 403)".to_owned(),
    })
}

/// object_store's errors nest their sources over several lines; a responder gets one.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_for_credentials_says_so_in_plain_words() {
        let listed = "Generic S3 error: Error performing list request: Error performing GET \
            http://127.0.0.1:1/evidence?list-type=2 in 20ms - Server returned non-2xx status \
            code: 403 Forbidden: <?xml version=\"1.0\"?> <Error><Code>InvalidAccessKeyId</Code>\
            <Message>The AWS Access Key Id you provided does not exist in our records.</Message>\
            <RequestId>J8nd</RequestId></Error>";
        let e = LakeError::storage("s3://evidence/lake/", listed).to_string();
        assert!(
            e.starts_with(
                "lake storage at s3://evidence/lake/: access denied (InvalidAccessKeyId: The \
                 AWS Access Key Id you provided does not exist in our records.); check the \
                 credentials"
            ),
            "{e}"
        );
        assert!(!e.contains("RequestId") && !e.contains("http://"), "{e}");
        let head = "The operation lacked the necessary privileges to complete for path \
            lake/_kubetrail/lake: Error performing HEAD http://h/x - Server returned non-2xx \
            status code: 403 Forbidden:";
        let e = LakeError::storage("s3://evidence/lake/", head).to_string();
        assert!(e.contains(": access denied (HTTP 403); check"), "{e}");
        let imds = "Generic S3 error: Error performing PUT http://169.254.169.254/latest/api/token";
        let e = LakeError::storage("s3://evidence/lake/", imds).to_string();
        assert!(e.contains("no credentials found"), "{e}");
        // Anything else stays what it was, on one line.
        let e = LakeError::storage("s3://b/", "Generic S3 error:\n  bucket gone").to_string();
        assert_eq!(e, "lake storage at s3://b/: Generic S3 error: bucket gone");
    }
}
