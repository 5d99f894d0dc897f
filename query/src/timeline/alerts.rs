//! Alerts in a timeline: an alert id is a pivot (the alert's entity, around its time), and
//! every line whose lake row an alert stands on carries that alert's id.

use std::collections::BTreeMap;

use foldhash::HashSet;

use arrow::array::{Array, AsArray};

use super::entity::{literal, Entity, PodRef};
use super::event::TimelineEvent;
use super::fetch::{as_ints, as_text};
use super::TimelineError;
use crate::window::{rfc3339, Window};
use crate::LakeSession;

/// How much before and after an alert a pivot to it shows.
const AROUND_ALERT_MICROS: i64 = 3600 * 1_000_000;

/// The entity an alert is about, and the window around it.
pub(crate) async fn pivot(
    session: &LakeSession,
    id: &str,
    notes: &mut Vec<String>,
) -> Result<(Entity, Window), TimelineError> {
    let sql = format!(
        "SELECT rule_id, entity, CAST(first_seen AS BIGINT), CAST(last_seen AS BIGINT) FROM alerts WHERE alert_id = {} LIMIT 1",
        literal(id)
    );
    let batches = session.query(&sql).await?;
    let Some(b) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Err(TimelineError::Unknown(format!(
            "alert {id} is not in this lake's alerts table"
        )));
    };
    let (rule, entity) = (as_text(b.column(0))?, as_text(b.column(1))?);
    let (first, last) = (as_ints(b.column(2))?, as_ints(b.column(3))?);
    let (rule, entity) = (rule.value(0).to_owned(), entity.value(0).to_owned());
    let target = entity_of(&entity).ok_or_else(|| {
        TimelineError::Invalid(format!(
            "alert {id} ({rule}) is about '{entity}', which is not a pod, an identity or an address: pivot with --pod, --user or --ip"
        ))
    })?;
    let window = Window::new(
        first.value(0).saturating_sub(AROUND_ALERT_MICROS),
        last.value(0).saturating_add(AROUND_ALERT_MICROS),
    )
    .map_err(TimelineError::Invalid)?;
    notes.push(format!(
        "alert {id} ({rule}, {entity}, first seen {}): the timeline of {target}, an hour either side",
        rfc3339(first.value(0))
    ));
    Ok((target, window))
}

/// An alert's `col=value` entity as a timeline entity: a pod if it names one, else the
/// identity, else the address.
fn entity_of(label: &str) -> Option<Entity> {
    let pairs: BTreeMap<&str, &str> = label.split(' ').filter_map(|p| p.split_once('=')).collect();
    if let (Some(ns), Some(pod)) = (pairs.get("namespace"), pairs.get("pod")) {
        return Entity::pod(&format!("{ns}/{pod}")).ok();
    }
    for key in ["workload", "source"] {
        if let Some(v) = pairs.get(key) {
            if let Ok(p) = PodRef::parse(v) {
                return Some(Entity::Pod(p));
            }
            if let Ok(ip) = Entity::ip(v) {
                return Some(ip);
            }
        }
    }
    if let Some(u) = pairs.get("user_name") {
        return Entity::user(u).ok();
    }
    pairs.get("src_ip").and_then(|ip| Entity::ip(ip).ok())
}

/// Which alerts stand on which lake row (`table:source#offset` → alert ids).
#[derive(Debug, Default)]
pub(crate) struct AlertEvidence {
    by_row: BTreeMap<String, Vec<String>>,
    /// The offsets of those rows: most lines have none of them, and checking the number
    /// first spares writing each line's reference out.
    offsets: HashSet<i64>,
}

impl AlertEvidence {
    /// The evidence of the alerts that may stand on rows inside the window.
    pub(crate) async fn load(
        session: &LakeSession,
        window: &Window,
    ) -> Result<AlertEvidence, TimelineError> {
        // Alerts are filed under their first event; one that began a day before the window
        // may still stand on rows inside it.
        let span = window.reaching_back(86_400 * 1_000_000);
        let sql = format!(
            "SELECT alert_id, evidence FROM alerts WHERE {}",
            span.predicate()
        );
        let mut by_row: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for batch in session.query(&sql).await? {
            let ids = as_text(batch.column(0))?;
            let evidence = batch.column(1).as_list::<i32>();
            for row in 0..batch.num_rows() {
                if evidence.is_null(row) {
                    continue;
                }
                let refs = evidence.value(row);
                let refs = as_text(&refs)?;
                for r in refs.iter().flatten() {
                    by_row
                        .entry(r.to_owned())
                        .or_default()
                        .push(ids.value(row).to_owned());
                }
            }
        }
        let offsets = (by_row.keys())
            .filter_map(|r| r.rsplit_once('#')?.1.parse().ok())
            .collect();
        Ok(AlertEvidence { by_row, offsets })
    }

    /// Marks each line with the ids of the alerts whose evidence includes its lake row.
    pub(crate) fn mark(&self, lines: &mut [TimelineEvent]) {
        for line in lines.iter_mut() {
            if !self.offsets.contains(&line.evidence.offset) {
                continue;
            }
            if let Some(ids) = self.by_row.get(&line.evidence.to_string()) {
                for id in ids {
                    if !line.alert_ids.contains(id) {
                        line.alert_ids.push(id.clone());
                    }
                }
                line.alert_ids.sort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_entity_becomes_a_pod_an_identity_or_an_address() {
        assert_eq!(
            entity_of("user_name=x namespace=shop pod=api-1"),
            Some(Entity::pod("shop/api-1").unwrap())
        );
        assert_eq!(
            entity_of("workload=shop/api-1 dst_ip=1.2.3.4"),
            Some(Entity::pod("shop/api-1").unwrap())
        );
        assert_eq!(
            entity_of("workload=10.0.1.11"),
            Some(Entity::ip("10.0.1.11").unwrap())
        );
        assert_eq!(
            entity_of("user_name=system:serviceaccount:shop:api name=x"),
            Some(Entity::user("system:serviceaccount:shop:api").unwrap())
        );
        assert_eq!(
            entity_of("src_ip=203.0.113.66"),
            Some(Entity::ip("203.0.113.66").unwrap())
        );
        assert_eq!(entity_of("rule=x"), None);
    }
}
