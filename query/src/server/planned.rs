//! Statements planned for their flight info, kept briefly for the `DoGet` that follows. A
//! client asks for a statement's schema, then for its rows; the plan kept is the one that
//! runs (optimized, physical), so its schema is the batches' and nothing is planned, analysed
//! or checked for freshness twice.
//!
//! The ticket names the plan: its number, then the SQL. The statement started when its
//! flight info was asked, so the plan made then over the lake as it was is the one to run;
//! a commit that lands between the two calls came after the query started. A `DoGet` whose
//! plan is not here (another server behind a balancer, an entry expired or pushed out)
//! plans the SQL again over the lake as it is then.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::sync::Arc;

use datafusion::physical_plan::ExecutionPlan;

use crate::LakeSession;

/// Plans kept at most, and for how long: enough for a burst of clients, too few to matter
/// in memory (a plan holds no data).
const KEPT: usize = 64;
const KEPT_FOR: Duration = Duration::from_secs(10);

/// What starts a ticket that names a kept plan; a ticket without it is SQL alone.
const PLAN_PREFIX: &str = "kubetrail-plan/";

#[derive(Default)]
pub(crate) struct PlannedStatements {
    entries: Mutex<VecDeque<Planned>>,
    next_id: AtomicU64,
}

struct Planned {
    id: u64,
    sql: String,
    at: Instant,
    session: Arc<LakeSession>,
    plan: Arc<dyn ExecutionPlan>,
}

/// A statement to run, as its ticket gives it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TicketStatement {
    pub(crate) plan: Option<u64>,
    pub(crate) sql: String,
}

impl TicketStatement {
    /// The ticket for `sql`, planned as `plan`.
    pub(crate) fn encode(plan: u64, sql: &str) -> Vec<u8> {
        format!("{PLAN_PREFIX}{plan}\n{sql}").into_bytes()
    }

    pub(crate) fn decode(handle: &[u8]) -> Result<TicketStatement, &'static str> {
        let text = std::str::from_utf8(handle).map_err(|_| "the ticket is not a statement")?;
        let Some(named) = text.strip_prefix(PLAN_PREFIX) else {
            return Ok(TicketStatement {
                plan: None,
                sql: text.to_owned(),
            });
        };
        let (plan, sql) = named
            .split_once('\n')
            .and_then(|(id, sql)| Some((id.parse().ok()?, sql)))
            .ok_or("the ticket names no plan")?;
        Ok(TicketStatement {
            plan: Some(plan),
            sql: sql.to_owned(),
        })
    }
}

impl PlannedStatements {
    /// Keeps a plan; returns the number its ticket names it by.
    pub(crate) fn keep(
        &self,
        sql: &str,
        session: Arc<LakeSession>,
        plan: Arc<dyn ExecutionPlan>,
    ) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() == KEPT {
            entries.pop_front();
        }
        entries.push_back(Planned {
            id,
            sql: sql.to_owned(),
            at: Instant::now(),
            session,
            plan,
        });
        id
    }

    /// The plan a ticket names, taken: each serves one `DoGet`. The SQL must be the one it
    /// was planned for.
    pub(crate) fn take(
        &self,
        ticket: &TicketStatement,
    ) -> Option<(Arc<LakeSession>, Arc<dyn ExecutionPlan>)> {
        let id = ticket.plan?;
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        while entries.front().is_some_and(|p| p.at.elapsed() > KEPT_FOR) {
            entries.pop_front();
        }
        let found = entries
            .iter()
            .position(|p| p.id == id && p.sql == ticket.sql)?;
        entries.remove(found).map(|p| (p.session, p.plan))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_names_its_plan_and_plain_sql_is_still_a_ticket() {
        let sql = "SELECT 1\nFROM k8s_audit";
        let decoded = TicketStatement::decode(&TicketStatement::encode(7, sql)).unwrap();
        assert_eq!(decoded.plan, Some(7));
        assert_eq!(decoded.sql, sql);
        let plain = TicketStatement::decode(sql.as_bytes()).unwrap();
        assert_eq!((plain.plan, plain.sql.as_str()), (None, sql));
        for bad in [
            &b"kubetrail-plan/x\nSELECT 1"[..],
            b"kubetrail-plan/7",
            b"\xff\xfe",
        ] {
            assert!(TicketStatement::decode(bad).is_err(), "{bad:?}");
        }
    }
}
