//! SQL over the lake only reads: one statement, and only `SELECT`, `WITH`, `VALUES`,
//! `EXPLAIN` of one of those, `SHOW` and `DESCRIBE`. Anything else (`CREATE EXTERNAL TABLE …
//! LOCATION '/etc/…'` reads any file the process can; `COPY` writes one; `SET` lifts limits)
//! is refused before planning, in one line. DataFusion's own plan check (no DDL, DML or
//! statements) stands behind it.

use datafusion::sql::parser::{DFParserBuilder, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;

/// What the refusal says can run.
const ALLOWED: &str = "only SELECT, WITH, EXPLAIN, SHOW and DESCRIBE run over the lake";

/// `Ok` when `sql` is one statement that only reads; otherwise why not, in one line.
pub fn check_read_only(sql: &str) -> Result<(), String> {
    let statements = DFParserBuilder::new(sql)
        .with_dialect(&PostgreSqlDialect {})
        .build()
        .and_then(|mut p| p.parse_statements())
        // A statement DataFusion cannot parse is left to the planner, which names the fault.
        .map_err(|_| ())
        .ok();
    let Some(statements) = statements else {
        return Ok(());
    };
    if statements.len() > 1 {
        return Err(format!(
            "one statement at a time ({} given); {ALLOWED}",
            statements.len()
        ));
    }
    match statements.front() {
        Some(s) if reads_only(s) => Ok(()),
        Some(_) => Err(format!("read-only: {} is refused; {ALLOWED}", head(sql))),
        None => Ok(()),
    }
}

fn reads_only(statement: &DfStatement) -> bool {
    match statement {
        DfStatement::Statement(s) => match s.as_ref() {
            Statement::Query(_)
            | Statement::ShowTables { .. }
            | Statement::ShowColumns { .. }
            | Statement::ShowFunctions { .. }
            | Statement::ShowVariable { .. }
            | Statement::ExplainTable { .. } => true,
            // EXPLAIN ANALYZE runs its statement: that must read only too.
            Statement::Explain { statement, .. } => {
                matches!(statement.as_ref(), Statement::Query(_))
            }
            _ => false,
        },
        DfStatement::Explain(explain) => reads_only(&explain.statement),
        DfStatement::CreateExternalTable(_) | DfStatement::CopyTo(_) | DfStatement::Reset(_) => {
            false
        }
    }
}

/// Words that name a statement, to say which was refused.
const KEYWORDS: [&str; 30] = [
    "ALTER",
    "ANALYZE",
    "BEGIN",
    "COMMIT",
    "COPY",
    "CREATE",
    "DATABASE",
    "DEALLOCATE",
    "DELETE",
    "DROP",
    "EXECUTE",
    "EXPLAIN",
    "EXTERNAL",
    "FUNCTION",
    "INSERT",
    "INTO",
    "MERGE",
    "OR",
    "PREPARE",
    "REPLACE",
    "RESET",
    "ROLLBACK",
    "SCHEMA",
    "SET",
    "TABLE",
    "TEMPORARY",
    "TRUNCATE",
    "UNBOUNDED",
    "UPDATE",
    "VIEW",
];

/// The statement's leading keywords, as a user would name it (`CREATE EXTERNAL TABLE`).
fn head(sql: &str) -> String {
    let words: Vec<String> = sql
        .split_whitespace()
        .map(str::to_ascii_uppercase)
        .take_while(|w| KEYWORDS.contains(&w.as_str()))
        .take(4)
        .collect();
    if words.is_empty() {
        "the statement".into()
    } else {
        words.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_runs_and_everything_else_is_refused_in_one_line() {
        for ok in [
            "SELECT 1",
            "WITH a AS (SELECT 1) SELECT * FROM a",
            "VALUES (1)",
            "EXPLAIN SELECT * FROM k8s_audit",
            "EXPLAIN ANALYZE SELECT 1",
            "SHOW TABLES",
            "SHOW COLUMNS FROM k8s_audit",
            "DESCRIBE k8s_audit",
            "SELECT * FROM nope WHERE", // a syntax error: the planner says what is wrong
        ] {
            assert_eq!(check_read_only(ok), Ok(()), "{ok}");
        }
        for (refused, named) in [
            (
                "CREATE EXTERNAL TABLE p (l VARCHAR) STORED AS CSV LOCATION '/etc/passwd'",
                "CREATE EXTERNAL TABLE",
            ),
            ("create table t as select 1", "CREATE TABLE is"),
            ("CREATE VIEW v AS SELECT 1", "CREATE VIEW is"),
            ("DROP TABLE k8s_audit", "DROP TABLE is"),
            ("COPY (SELECT 1) TO '/tmp/x.csv'", "COPY"),
            ("INSERT INTO alerts VALUES (1)", "INSERT INTO is"),
            ("SET datafusion.runtime.memory_limit = '100G'", "SET"),
            ("RESET datafusion.execution.batch_size", "RESET"),
            ("EXPLAIN COPY (SELECT 1) TO '/tmp/x.csv'", "EXPLAIN COPY"),
            (
                "EXPLAIN CREATE EXTERNAL TABLE p (l VARCHAR) STORED AS CSV LOCATION '/etc/passwd'",
                "EXPLAIN CREATE EXTERNAL TABLE",
            ),
        ] {
            let e = check_read_only(refused).unwrap_err();
            assert!(
                e.starts_with(&format!("read-only: {named}")) && !e.contains('\n'),
                "{refused}: {e}"
            );
        }
        let e = check_read_only("SELECT 1; DROP TABLE alerts").unwrap_err();
        assert!(e.starts_with("one statement at a time (2 given)"), "{e}");
    }
}
