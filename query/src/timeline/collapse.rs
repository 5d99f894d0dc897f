//! Tidying a timeline before anyone reads it: one line per audit request (the API server
//! may log a request at several stages), and repeated similar events folded into one line
//! with first and last time and a count (1,440 one-minute flow records to the same place
//! are one fact).

use foldhash::{HashMap, HashMapExt};

use super::event::{Detail, Stream, TimelineEvent};

/// Keeps one line per audit ID: the most complete stage (`ResponseComplete`, or none said,
/// over `ResponseStarted` over `RequestReceived`), of equals the first. Lines without an ID are
/// kept as they are, and the order is kept.
pub fn one_line_per_request(mut lines: Vec<TimelineEvent>) -> Vec<TimelineEvent> {
    let rank = |e: &TimelineEvent| match &e.detail {
        Detail::Audit { stage, .. } => match stage.as_deref() {
            // An export that left the stage out logged the request once: its last stage.
            Some("ResponseComplete") | Some("Panic") | None => 3,
            Some("ResponseStarted") => 2,
            Some("RequestReceived") => 1,
            _ => 0,
        },
        _ => 0,
    };
    let mut keep = vec![true; lines.len()];
    let mut best: HashMap<&str, usize> = HashMap::with_capacity(lines.len());
    for (i, e) in lines.iter().enumerate() {
        let Detail::Audit {
            audit_id: Some(id), ..
        } = &e.detail
        else {
            continue;
        };
        match best.get(id.as_str()) {
            Some(&j) if rank(&lines[j]) >= rank(e) => keep[i] = false,
            Some(&j) => {
                keep[j] = false;
                best.insert(id, i);
            }
            None => {
                best.insert(id, i);
            }
        }
    }
    drop(best);
    let mut kept = keep.into_iter();
    lines.retain(|_| kept.next().unwrap_or(true));
    lines
}

/// Folds lines that say the same thing (same stream, actor, action, target, details and
/// reason for being here; source ports and byte counts aside) into the first of them.
/// Input and output are in time order.
pub fn collapse(lines: Vec<TimelineEvent>) -> Vec<TimelineEvent> {
    // For each line, the first line like it; keys borrow from the lines, so nothing is
    // copied to compare them.
    let firsts: Vec<usize> = {
        let mut index: HashMap<Similarity<'_>, usize> = HashMap::with_capacity(lines.len());
        (lines.iter().enumerate())
            .map(|(i, e)| *index.entry(Similarity::of(e)).or_insert(i))
            .collect()
    };
    let mut out: Vec<TimelineEvent> = Vec::new();
    let mut position = vec![0; lines.len()];
    for (i, (e, first)) in lines.into_iter().zip(firsts).enumerate() {
        if first == i {
            position[i] = out.len();
            out.push(e);
            continue;
        }
        let first = &mut out[position[first]];
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
    out
}

/// What makes two lines the same fact.
#[derive(PartialEq, Eq, Hash)]
struct Similarity<'a> {
    stream: Stream,
    actor: Option<&'a str>,
    action: &'a str,
    target: Option<&'a str>,
    namespace: Option<&'a str>,
    pod: Option<&'a str>,
    format: &'a str,
    relation: &'a str,
    detail: DetailSimilarity<'a>,
}

#[derive(PartialEq, Eq, Hash)]
enum DetailSimilarity<'a> {
    Audit {
        command: Option<&'a str>,
        response_code: Option<i32>,
        impersonated: Option<&'a str>,
        src_ip: Option<&'a str>,
    },
    Flow {
        protocol: Option<&'a str>,
        verdict: Option<&'a str>,
        dns_query: Option<&'a str>,
        http: Option<&'a str>,
    },
    Runtime {
        event_type: &'a str,
        binary: Option<&'a str>,
        arguments: Option<&'a str>,
        file_path: Option<&'a str>,
        falco: Option<(&'a str, &'a str)>,
        exit_code: Option<i64>,
    },
}

impl<'a> Similarity<'a> {
    fn of(e: &'a TimelineEvent) -> Similarity<'a> {
        let detail = match &e.detail {
            Detail::Audit {
                command,
                response_code,
                impersonated,
                ..
            } => DetailSimilarity::Audit {
                command: command.as_deref(),
                response_code: *response_code,
                impersonated: impersonated.as_deref(),
                src_ip: e.src_ip.as_deref(),
            },
            Detail::Flow {
                protocol,
                verdict,
                dns_query,
                http,
                ..
            } => DetailSimilarity::Flow {
                protocol: protocol.as_deref(),
                verdict: verdict.as_deref(),
                dns_query: dns_query.as_deref(),
                http: http.as_deref(),
            },
            Detail::Runtime {
                event_type,
                binary,
                arguments,
                file_path,
                falco,
                exit_code,
                ..
            } => DetailSimilarity::Runtime {
                event_type,
                binary: binary.as_deref(),
                arguments: arguments.as_deref(),
                file_path: file_path.as_deref(),
                falco: falco.as_ref().map(|(r, p)| (r.as_str(), p.as_str())),
                exit_code: *exit_code,
            },
        };
        Similarity {
            stream: e.stream,
            actor: e.actor.as_deref(),
            action: &e.action,
            target: e.target.as_deref(),
            namespace: e.namespace.as_deref(),
            pod: e.pod.as_deref(),
            format: &e.format,
            relation: &e.relation,
            detail,
        }
    }
}
