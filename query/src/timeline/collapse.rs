//! Tidying a timeline before anyone reads it: one line per audit request (the API server
//! may log a request at several stages), and repeated similar events folded into one line
//! with first and last time and a count (1,440 one-minute flow records to the same place
//! are one fact).

use std::collections::HashMap;

use super::event::{Detail, TimelineEvent};

/// Keeps one line per audit ID: the most complete stage (`ResponseComplete` over
/// `ResponseStarted` over `RequestReceived`). Lines without an ID are kept as they are.
pub fn one_line_per_request(lines: Vec<TimelineEvent>) -> Vec<TimelineEvent> {
    let rank = |e: &TimelineEvent| match &e.detail {
        Detail::Audit { stage, .. } => match stage.as_deref() {
            Some("ResponseComplete") => 3,
            Some("Panic") => 3,
            Some("ResponseStarted") => 2,
            Some("RequestReceived") => 1,
            _ => 0,
        },
        _ => 0,
    };
    let mut best: HashMap<String, usize> = HashMap::new();
    let mut keep = vec![true; lines.len()];
    for (i, e) in lines.iter().enumerate() {
        let Detail::Audit {
            audit_id: Some(id), ..
        } = &e.detail
        else {
            continue;
        };
        match best.get(id) {
            Some(&j) if rank(&lines[j]) >= rank(e) => keep[i] = false,
            Some(&j) => {
                keep[j] = false;
                best.insert(id.clone(), i);
            }
            None => {
                best.insert(id.clone(), i);
            }
        }
    }
    lines
        .into_iter()
        .zip(keep)
        .filter_map(|(e, k)| k.then_some(e))
        .collect()
}

/// Folds lines that say the same thing (same stream, actor, action, target, details and
/// reason for being here; source ports and byte counts aside) into the first of them.
/// Input and output are in time order.
pub fn collapse(lines: Vec<TimelineEvent>) -> Vec<TimelineEvent> {
    let mut out: Vec<TimelineEvent> = Vec::with_capacity(lines.len());
    let mut index: HashMap<String, usize> = HashMap::new();
    for e in lines {
        let key = similarity_key(&e);
        match index.get(&key) {
            Some(&i) => {
                let first = &mut out[i];
                first.count += e.count;
                first.last_time = first.last_time.max(e.last_time);
                first.bytes = match (first.bytes, e.bytes) {
                    (Some(a), Some(b)) => Some(a + b),
                    (a, b) => a.or(b),
                };
                for id in e.alert_ids {
                    if !first.alert_ids.contains(&id) {
                        first.alert_ids.push(id);
                    }
                }
            }
            None => {
                index.insert(key, out.len());
                out.push(e);
            }
        }
    }
    out
}

fn similarity_key(e: &TimelineEvent) -> String {
    let detail = match &e.detail {
        Detail::Audit {
            command,
            response_code,
            impersonated,
            ..
        } => format!(
            "{command:?}|{response_code:?}|{impersonated:?}|{:?}",
            e.src_ip
        ),
        Detail::Flow {
            protocol,
            verdict,
            dns_query,
            http,
            ..
        } => format!("{protocol:?}|{verdict:?}|{dns_query:?}|{http:?}"),
        Detail::Runtime {
            event_type,
            binary,
            arguments,
            file_path,
            falco,
            exit_code,
            ..
        } => format!("{event_type}|{binary:?}|{arguments:?}|{file_path:?}|{falco:?}|{exit_code:?}"),
    };
    format!(
        "{}|{:?}|{}|{:?}|{:?}|{}|{}|{detail}",
        e.stream,
        e.actor,
        e.action,
        e.target,
        e.pod_ref(),
        e.format,
        e.relation
    )
}
