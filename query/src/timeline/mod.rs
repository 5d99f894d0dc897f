//! Incident timelines: everything the lake knows about one entity, across the three
//! streams, in time order, one readable line per fact, each traceable to its lake row.
//!
//! ```text
//! entity ─► scope (the entity, and with --depth the entities one hop away)
//!        ─► addresses (which pod held which IP, when)
//!        ─► fetch (one bounded query per stream over the window's partitions)
//!        ─► relation (keep what concerns a member; attribute address-only flows to pods)
//!        ─► one line per request, collapse repeats ─► export
//! ```

mod addresses;
mod alerts;
mod collapse;
mod entity;
mod event;
pub mod export;
mod fetch;
mod scope;

use std::collections::{BTreeSet, HashSet};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use thiserror::Error;

pub use crate::window::{parse_time, rfc3339, Window};
pub use addresses::{AddressBook, PodAddresses, SightingWindows};
pub use entity::{Entity, PodRef};
pub use event::{Detail, Evidence, Stream, TimelineEvent};
pub use export::TimelineFormat;

use crate::{LakeSession, QueryError};
use entity::literal;
use scope::{ReadKeys, Scope};

#[derive(Debug, Error)]
pub enum TimelineError {
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The entity never appears in the lake.
    #[error("{0}")]
    Unknown(String),
    #[error("{0}")]
    Invalid(String),
}

impl From<datafusion::error::DataFusionError> for TimelineError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        TimelineError::Query(QueryError::Sql(e))
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct TimelineRequest {
    pub entity: Entity,
    /// `None`: the last 24 hours of the lake's data.
    pub window: Option<Window>,
    /// Hops to follow from the entity (0: the entity alone).
    pub depth: u8,
    /// Fold repeated similar events into one line.
    pub collapse: bool,
    /// Rows read per stream and hop at most (bounds memory and time on a window of years).
    pub max_rows: usize,
    /// How far before the window to look for which pod held an address.
    pub address_lookback_micros: i64,
}

impl TimelineRequest {
    pub const MAX_DEPTH: u8 = 3;

    pub fn new(entity: Entity) -> Self {
        TimelineRequest {
            entity,
            window: None,
            depth: 1,
            collapse: true,
            max_rows: 100_000,
            address_lookback_micros: 24 * 3600 * 1_000_000,
        }
    }
}

/// A built timeline.
#[derive(Debug, Clone)]
pub struct Timeline {
    pub entity: Entity,
    pub window: Window,
    /// In time order.
    pub lines: Vec<TimelineEvent>,
    /// Every entity followed and why, the asked-for one first.
    pub followed: Vec<String>,
    /// What the reader must know: defaults taken, limits hit, entities left out.
    pub notes: Vec<String>,
}

pub async fn build(
    session: &LakeSession,
    request: &TimelineRequest,
) -> Result<Timeline, TimelineError> {
    if request.depth > TimelineRequest::MAX_DEPTH {
        return Err(TimelineError::Invalid(format!(
            "--depth {} is too deep (at most {})",
            request.depth,
            TimelineRequest::MAX_DEPTH
        )));
    }
    let mut notes = Vec::new();
    let (entity, alert_window) = resolve_entity(session, &request.entity, &mut notes).await?;
    let window = match request.window.or(alert_window) {
        Some(w) => w,
        None => {
            let w = last_day(session).await?;
            notes.push(format!(
                "window: the lake's last 24 hours ({w}); choose one with --from/--to or --around"
            ));
            w
        }
    };
    if window.days() > 31 {
        notes.push(format!(
            "the window spans {} days; each stream returns at most {} rows",
            window.days(),
            request.max_rows
        ));
    }
    let root = Scope::seed(&entity, &window);
    // The alerts' evidence is read while the entity is followed: neither needs the other.
    let (evidence, (lines, scope)) = futures::try_join!(
        alerts::AlertEvidence::load(session, &window),
        follow(session, &root, &window, request, &mut notes)
    )?;
    if lines.is_empty() {
        let (first, last) = seen(session, &root).await?;
        match (first, last) {
            (Some(f), Some(l)) => notes.push(format!(
                "no events for {entity} between {window}; it appears in the lake from {} to {}",
                rfc3339(f),
                rfc3339(l)
            )),
            _ => {
                return Err(TimelineError::Unknown(format!(
                    "{entity} does not appear anywhere in this lake"
                )))
            }
        }
    }
    let (started, rows) = (std::time::Instant::now(), lines.len());
    let mut lines = collapse::one_line_per_request(lines);
    evidence.mark(&mut lines);
    lines.sort_by(|a, b| (a.time, a.stream, &a.evidence).cmp(&(b.time, b.stream, &b.evidence)));
    if request.collapse {
        lines = collapse::collapse(lines);
    }
    // With the queries' own log lines, says where a slow timeline spends its time.
    tracing::debug!(
        rows,
        lines = lines.len(),
        seconds = started.elapsed().as_secs_f64(),
        "rows made lines"
    );
    let mut followed = root.describe();
    for why in scope.describe() {
        if !followed.contains(&why) {
            followed.push(why);
        }
    }
    let mut said = BTreeSet::new();
    notes.retain(|n| said.insert(n.clone()));
    Ok(Timeline {
        entity,
        window,
        lines,
        followed,
        notes,
    })
}

/// The lines that concern the entity and, hop by hop up to the request's depth, the
/// entities next to it; and the scope they ended with.
async fn follow(
    session: &LakeSession,
    root: &Scope,
    window: &Window,
    request: &TimelineRequest,
    notes: &mut Vec<String>,
) -> Result<(Vec<TimelineEvent>, Scope), TimelineError> {
    let mut scope = root.clone();
    let mut addresses = AddressBook::new(SightingWindows::new(
        window,
        request.address_lookback_micros,
    ));
    let mut rows = ReadRows::default();
    let mut hop = 0;
    loop {
        read_new_members(
            session,
            &scope,
            window,
            &mut addresses,
            &mut rows,
            request,
            notes,
        )
        .await?;
        if hop == request.depth {
            let lines = relate(&scope, rows.events, addresses.known());
            return Ok((lines, scope));
        }
        // Relating fills in flows' pods: the next hop relates the rows again, with more
        // members and addresses known, so this one works on a copy.
        let lines = relate(&scope, rows.events.clone(), addresses.known());
        let (next, left_out) = scope.next_hop(&lines, addresses.known(), window);
        if !left_out.is_empty() {
            notes.push(format!(
                "hop {}: {} more entities not followed: {}",
                hop + 1,
                left_out.len(),
                left_out.join(", ")
            ));
        }
        if next.is_empty() {
            return Ok((lines, scope));
        }
        scope.extend(next);
        hop += 1;
    }
}

/// Every lake row read so far, each once (a row may concern members of two hops).
#[derive(Default)]
struct ReadRows {
    keys: ReadKeys,
    events: Vec<TimelineEvent>,
    seen: HashSet<Evidence>,
}

/// Reads the rows of the scope's members not read yet; the address book learns the
/// sightings that decide which flows concern a member (the next hop needs them too).
async fn read_new_members(
    session: &LakeSession,
    scope: &Scope,
    window: &Window,
    addresses: &mut AddressBook,
    rows: &mut ReadRows,
    request: &TimelineRequest,
    notes: &mut Vec<String>,
) -> Result<(), TimelineError> {
    let pods: BTreeSet<PodRef> = scope.pods.keys().cloned().collect();
    let ips: BTreeSet<String> = scope.ips.keys().cloned().collect();
    addresses.learn(session, &pods, &ips).await?;
    let selection = scope.selection(addresses.known(), request.max_rows, &mut rows.keys);
    let (fetched, ()) = futures::try_join!(
        fetch::fetch(session, window, &selection),
        addresses.learn_holders(session)
    )?;
    // Flow logs that know only addresses: find whose the other ends were, too.
    let strangers = unnamed_flow_ends(&fetched.events, addresses.known());
    addresses
        .learn(session, &BTreeSet::new(), &strangers)
        .await?;
    for stream in &fetched.truncated {
        notes.push(format!(
            "{stream}: the row limit ({}) was reached; later {stream} events are missing: narrow the window",
            request.max_rows
        ));
    }
    for e in fetched.events {
        if rows.seen.insert(e.evidence.clone()) {
            rows.events.push(e);
        }
    }
    Ok(())
}

/// The rows that concern a member at their moment, each saying which.
fn relate(
    scope: &Scope,
    events: Vec<TimelineEvent>,
    addresses: &PodAddresses,
) -> Vec<TimelineEvent> {
    let mut lines = Vec::with_capacity(events.len());
    for mut e in events {
        if let Some(why) = scope.relation(&mut e, addresses) {
            e.relation = why;
            lines.push(e);
        }
    }
    lines
}

/// Private addresses at the ends of flows that name no pod there (VPC flow logs), at most
/// [`MAX_STRANGERS`] of them. Public addresses are left out: pods are not given them (a
/// cluster whose pods hold public addresses sees such flows attributed only where a
/// pod-naming source sighted the address).
fn unnamed_flow_ends(events: &[TimelineEvent], known: &PodAddresses) -> BTreeSet<String> {
    const MAX_STRANGERS: usize = 500;
    let mut out = BTreeSet::new();
    for e in events {
        let Detail::Flow {
            src_pod, dst_pod, ..
        } = &e.detail
        else {
            continue;
        };
        for (pod, ip) in [(src_pod, &e.src_ip), (dst_pod, &e.dst_ip)] {
            if let (None, Some(ip)) = (pod, ip) {
                let private = ip.parse().is_ok_and(crate::udf::is_private);
                if private && !known.knows(ip) && out.len() < MAX_STRANGERS {
                    out.insert(ip.clone());
                }
            }
        }
    }
    out
}

/// Containers and alerts are pivots: a container to its pod, an alert to its entity and
/// the window around it.
async fn resolve_entity(
    session: &LakeSession,
    entity: &Entity,
    notes: &mut Vec<String>,
) -> Result<(Entity, Option<Window>), TimelineError> {
    match entity {
        Entity::Container(id) => {
            let sql = format!(
                "SELECT DISTINCT namespace, pod FROM runtime_events \
                 WHERE starts_with(container_id, {}) AND pod IS NOT NULL LIMIT 10",
                literal(id)
            );
            let mut pods = Vec::new();
            for batch in session.query(&sql).await? {
                let (ns, pod) = (
                    fetch::as_text(batch.column(0))?,
                    fetch::as_text(batch.column(1))?,
                );
                for row in 0..batch.num_rows() {
                    pods.push(PodRef {
                        namespace: ns.value(row).to_owned(),
                        name: pod.value(row).to_owned(),
                    });
                }
            }
            match pods.as_slice() {
                [] => Err(TimelineError::Unknown(format!(
                    "container {id} does not appear in runtime_events"
                ))),
                [pod] => {
                    notes.push(format!("container {id} runs in pod {pod}"));
                    Ok((Entity::Pod(pod.clone()), None))
                }
                many => {
                    Err(TimelineError::Invalid(format!(
                    "container {id} is ambiguous: it matches containers of {}; give more of the ID",
                    many.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
                )))
                }
            }
        }
        Entity::Alert(id) => {
            let (target, window) = alerts::pivot(session, id, notes).await?;
            Ok((target, Some(window)))
        }
        other => Ok((other.clone(), None)),
    }
}

/// The 24 hours before the lake's newest event.
async fn last_day(session: &LakeSession) -> Result<Window, TimelineError> {
    let sql = "SELECT CAST(max(t) AS BIGINT) FROM (\
               SELECT max(event_time) AS t FROM k8s_audit UNION ALL \
               SELECT max(event_time) FROM network_flows UNION ALL \
               SELECT max(event_time) FROM runtime_events)";
    let newest = int_at(&session.query(sql).await?, 0).ok_or_else(|| {
        TimelineError::Unknown("the lake holds no events yet (ingest some first)".into())
    })?;
    Window::new(newest + 1 - 24 * 3600 * 1_000_000, newest + 1).map_err(TimelineError::Invalid)
}

/// When the entity appears in the lake at all (for the "nothing in this window" message).
async fn seen(
    session: &LakeSession,
    root: &Scope,
) -> Result<(Option<i64>, Option<i64>), TimelineError> {
    let selection = root.selection(&PodAddresses::default(), 0, &mut ReadKeys::default());
    let mut parts = Vec::new();
    for (table, condition) in [
        ("k8s_audit", &selection.audit),
        ("network_flows", &selection.network),
        ("runtime_events", &selection.runtime),
    ] {
        if let Some(c) = condition {
            parts.push(format!(
                "SELECT min(event_time) AS f, max(event_time) AS l FROM {table} WHERE {c}"
            ));
        }
    }
    if parts.is_empty() {
        return Ok((None, None));
    }
    let sql = format!(
        "SELECT CAST(min(f) AS BIGINT), CAST(max(l) AS BIGINT) FROM ({})",
        parts.join(" UNION ALL ")
    );
    let batches = session.query(&sql).await?;
    let (first, last) = (int_at(&batches, 0), int_at(&batches, 1));
    Ok((first, last))
}

/// The integer in the given column of a one-row answer.
fn int_at(batches: &[RecordBatch], column: usize) -> Option<i64> {
    let b = batches.iter().find(|b| b.num_rows() > 0)?;
    let a = b.column(column).as_primitive::<Int64Type>();
    (!a.is_null(0)).then(|| a.value(0))
}
