//! A failed job's reason as a responder reads it. Ballista hands the client an executor's
//! error as the debug form of nested errors (`DataFusionError(Shared(External(…` with the
//! store's XML answer inside); the cause is the innermost message, and a refusal by the
//! lake's store is the executors' credentials.

use super::processes::EXECUTOR_TIMEOUT_SECONDS;

/// The one-line reason for a Ballista job failure in `message`; `None` when `message` is
/// not one.
pub(crate) fn job_failure(message: &str) -> Option<String> {
    let (_, after) = message.split_once("Job ")?;
    let (job, reason) = after.split_once(" failed: ")?;
    if job.is_empty() || job.contains(char::is_whitespace) {
        return None;
    }
    Some(format!(
        "the cluster's job {job} failed: {}",
        reason_of(reason)
    ))
}

fn reason_of(reason: &str) -> String {
    if reason.trim() == "Cancelled" {
        // Only the scheduler's own watch cancels a job a client is still waiting for.
        return format!(
            "cancelled by the scheduler: no executor was connected for {EXECUTOR_TIMEOUT_SECONDS} s (start executors; the scheduler's log says more)"
        );
    }
    let inner = innermost_literal(reason).unwrap_or_else(|| {
        let mut rest = reason;
        if let Some((_, tail)) = rest.split_once("Job failed due to stage ") {
            rest = tail.split_once(" failed: ").map_or(tail, |(_, t)| t);
        }
        if let Some((_, tail)) = rest.split_once("Task failed due to runtime execution error: ") {
            rest = tail;
        }
        rest.to_owned()
    });
    // The store's answer: its status and code say it all, the XML body around them not.
    let mut line = inner
        .split(" - Server returned")
        .next()
        .unwrap_or_default()
        .split(": Error performing ")
        .next()
        .unwrap_or_default()
        .to_owned();
    if reason.contains("403 Forbidden") {
        let code = between(reason, "<Code>", "</Code>").unwrap_or("403 Forbidden");
        line.push_str(&format!(
            ": access denied ({code}): check the executors' credentials and [lake.storage]"
        ));
    }
    let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(600) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line,
    }
}

/// The last string literal of a debug form (`General("…")`), unescaped.
fn innermost_literal(text: &str) -> Option<String> {
    let start = text.rfind("(\"")? + 2;
    let mut out = String::new();
    let mut chars = text[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                'n' => out.push(' '),
                other => out.push(other),
            },
            '"' => return Some(out),
            c => out.push(c),
        }
    }
    None
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let (_, rest) = text.split_once(open)?;
    Some(rest.split_once(close)?.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_executor_refused_by_the_store_reads_as_its_credentials() {
        let message = r#"Execution error: Job 038JGCK1WP000 failed: Job failed due to stage 1 failed: Task failed due to runtime execution error: DataFusionError(Shared(External(DataFusionError(ParquetError(General("Failed to fetch metadata for file lake/k8s_audit/part-0.parquet: Object Store error: The operation lacked the necessary privileges to complete for path lake/k8s_audit/part-0.parquet: Error performing GET http://127.0.0.1:33077/evidence/lake/k8s_audit/part-0.parquet in 11.5ms - Server returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match.</Message></Error>"))))))"#;
        let line = job_failure(message).unwrap();
        assert_eq!(
            line,
            "the cluster's job 038JGCK1WP000 failed: Failed to fetch metadata for file lake/k8s_audit/part-0.parquet: Object Store error: The operation lacked the necessary privileges to complete for path lake/k8s_audit/part-0.parquet: access denied (SignatureDoesNotMatch): check the executors' credentials and [lake.storage]"
        );
    }

    #[test]
    fn other_failures_lose_their_wrappers_and_stay_one_line() {
        let line = job_failure(
            "Execution error: Job 7 failed: Job failed due to stage 2 failed: Task failed due to runtime execution error: the executor's disk is full\nsecond line",
        )
        .unwrap();
        assert_eq!(
            line,
            "the cluster's job 7 failed: the executor's disk is full second line"
        );
        assert!(job_failure("Job 7 failed: Cancelled")
            .unwrap()
            .contains("no executor was connected for 20 s"));
        assert_eq!(job_failure("Schema error: No field named x"), None);
        assert_eq!(job_failure("the Job of a user failed: x"), None);
        let long = format!("Job 1 failed: {}", "x".repeat(2000));
        assert!(job_failure(&long).unwrap().chars().count() < 700);
    }
}
