//! Statements planned for their flight info, kept briefly for the `DoGet` that follows. A
//! client asks for a statement's schema, then for its rows; planning it again was about a
//! twentieth of a 20 ms query. Tickets stay the SQL itself: a `DoGet` that finds nothing
//! here (another server behind a balancer, an entry expired or pushed out) plans again. A
//! kept plan serves only while the lake is as it was planned over (the same session of
//! `FreshTables`): a commit in between, and the `DoGet` plans over it.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::sync::Arc;

use datafusion::logical_expr::LogicalPlan;

use crate::LakeSession;

/// Plans kept at most, and for how long: enough for a burst of clients, too few to matter
/// in memory (a plan holds no data).
const KEPT: usize = 64;
const KEPT_FOR: Duration = Duration::from_secs(10);

#[derive(Default)]
pub(crate) struct PlannedStatements {
    entries: Mutex<VecDeque<Planned>>,
}

struct Planned {
    sql: String,
    at: Instant,
    /// The lake's tables it was planned over.
    over: Arc<LakeSession>,
    session: LakeSession,
    plan: LogicalPlan,
}

impl PlannedStatements {
    pub(crate) fn keep(
        &self,
        sql: &str,
        over: Arc<LakeSession>,
        session: LakeSession,
        plan: LogicalPlan,
    ) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() == KEPT {
            entries.pop_front();
        }
        entries.push_back(Planned {
            sql: sql.to_owned(),
            at: Instant::now(),
            over,
            session,
            plan,
        });
    }

    /// A plan of this statement made within the last few seconds over the lake as it is
    /// now (`current`), taken: each serves one `DoGet` (clients running the same statement
    /// at once each planned their own).
    pub(crate) fn take(
        &self,
        sql: &str,
        current: &Arc<LakeSession>,
    ) -> Option<(LakeSession, LogicalPlan)> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        while entries.front().is_some_and(|p| p.at.elapsed() > KEPT_FOR) {
            entries.pop_front();
        }
        let found = entries
            .iter()
            .rposition(|p| p.sql == sql && Arc::ptr_eq(&p.over, current))?;
        entries.remove(found).map(|p| (p.session, p.plan))
    }
}
