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

use std::collections::BTreeSet;

use foldhash::HashSet;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use futures::TryFutureExt;
use thiserror::Error;

pub use crate::window::{parse_time, rfc3339, Window};
pub use addresses::{AddressBook, PodAddresses, SightingWindows};
pub use entity::{Entity, PodRef};
pub use event::{human_bytes, Detail, Evidence, Stream, TimelineEvent};
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
        TimelineError::Query(QueryError::from(e))
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
    // In order first, so that of a request logged twice alike the earlier row is kept.
    let mut lines = collapse::one_line_per_request(in_time_order(lines));
    evidence.mark(&mut lines);
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

/// Sorted by time, stream and lake row. Lines are large and scattered in memory: their
/// keys are sorted side by side, and the lines put in that order where they are.
fn in_time_order(mut lines: Vec<TimelineEvent>) -> Vec<TimelineEvent> {
    let mut keys: Vec<(i64, Stream, &str, i64, usize)> = (lines.iter().enumerate())
        .map(|(i, e)| (e.time, e.stream, &*e.evidence.source, e.evidence.offset, i))
        .collect();
    keys.sort_unstable();
    // order[k]: the line that belongs at k. Each cycle of the permutation is walked once.
    let mut order: Vec<usize> = keys.into_iter().map(|k| k.4).collect();
    for start in 0..order.len() {
        let mut at = start;
        while order[at] != start {
            let from = order[at];
            lines.swap(at, from);
            order[at] = at;
            at = from;
        }
        order[at] = at;
    }
    lines
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
    let windows = SightingWindows::new(window, request.address_lookback_micros);
    let mut reader = Reader {
        session,
        window,
        request,
        notes,
        addresses: AddressBook::new(windows),
        keys: ReadKeys::default(),
        events: Vec::new(),
        seen: HashSet::default(),
        strangers: BTreeSet::new(),
        look_up_strangers: false,
    };
    // The pod status scan (the whole lookback of the audit log) runs while the entity's
    // own rows are read; the rows of any address it adds are read right after.
    let (status, ()) = futures::try_join!(
        addresses::status_sightings(session, &windows).err_into(),
        reader.read_new_members(&scope)
    )?;
    reader.addresses.add_status(status);
    let mut hop = 0;
    loop {
        reader.read_new_members(&scope).await?;
        if hop == request.depth {
            break;
        }
        // Only audit lines lead to further entities (who acted on what); the addresses
        // that lead to pods are in the address book.
        let known = reader.addresses.known();
        let audit = reader.events.iter().filter(|e| e.stream == Stream::Audit);
        let lines = relate(&scope, audit.cloned().collect(), known);
        let (next, left_out) = scope.next_hop(&lines, known, window);
        if !left_out.is_empty() {
            reader.notes.push(format!(
                "hop {}: {} more entities not followed: {}",
                hop + 1,
                left_out.len(),
                left_out.join(", ")
            ));
        }
        if next.is_empty() {
            break;
        }
        scope.extend(next);
        // The addresses at flow ends no row named a pod for are looked up while the next
        // hop reads (they name the other ends of flows, never a member).
        reader.look_up_strangers = true;
        hop += 1;
    }
    let strangers = std::mem::take(&mut reader.strangers);
    let mut addresses = reader.addresses;
    addresses
        .learn(session, &BTreeSet::new(), &strangers)
        .await?;
    Ok((relate(&scope, reader.events, addresses.known()), scope))
}

/// Following an entity: the lake rows read so far, each once (a row may concern members
/// of two hops), and the pod addresses learned on the way.
struct Reader<'a> {
    session: &'a LakeSession,
    window: &'a Window,
    request: &'a TimelineRequest,
    notes: &'a mut Vec<String>,
    addresses: AddressBook,
    keys: ReadKeys,
    events: Vec<TimelineEvent>,
    seen: HashSet<Evidence>,
    /// Private addresses at flow ends that name no pod, not looked up yet.
    strangers: BTreeSet<String>,
    /// Whether the next read looks them up as it goes.
    look_up_strangers: bool,
}

impl Reader<'_> {
    /// Reads the rows of the scope's members not read yet; the address book learns the
    /// sightings that decide which flows concern a member (the next hop needs them too).
    async fn read_new_members(&mut self, scope: &Scope) -> Result<(), TimelineError> {
        let session = self.session;
        let pods: BTreeSet<PodRef> = scope.pods.keys().cloned().collect();
        let ips: BTreeSet<String> = scope.ips.keys().cloned().collect();
        self.addresses.learn(session, &pods, &ips).await?;
        let max_rows = self.request.max_rows;
        let selection = scope.selection(self.addresses.known(), max_rows, &mut self.keys);
        let strangers = match std::mem::take(&mut self.look_up_strangers) {
            true => std::mem::take(&mut self.strangers),
            false => BTreeSet::new(),
        };
        let (fetched, ()) = futures::try_join!(
            fetch::fetch(session, self.window, &selection, &self.seen),
            self.addresses.learn_holders(session, &strangers)
        )?;
        for stream in &fetched.truncated {
            self.notes.push(format!(
                "{stream}: the row limit ({max_rows}) was reached; later {stream} events are missing: narrow the window"
            ));
        }
        // Flow logs that know only addresses: whose the other ends were is looked up later.
        unnamed_flow_ends(&fetched.events, self.addresses.known(), &mut self.strangers);
        // The fetch left out rows read before, and reads each row once: all are new.
        self.seen
            .extend(fetched.events.iter().map(|e| e.evidence.clone()));
        if self.events.is_empty() {
            self.events = fetched.events;
        } else {
            self.events.extend(fetched.events);
        }
        Ok(())
    }
}

/// The rows that concern a member at their moment, each saying which.
fn relate(
    scope: &Scope,
    mut events: Vec<TimelineEvent>,
    addresses: &PodAddresses,
) -> Vec<TimelineEvent> {
    // In place: tens of thousands of large rows are not copied to a new vector.
    events.retain_mut(|e| match scope.relation(e, addresses) {
        Some(why) => {
            e.relation = why;
            true
        }
        None => false,
    });
    events
}

/// Adds the private addresses at the ends of flows that name no pod there (VPC flow logs)
/// to `out`, up to [`MAX_STRANGERS`] in all. Public addresses are left out: pods are not
/// given them (a cluster whose pods hold public addresses sees such flows attributed only
/// where a pod-naming source sighted the address).
fn unnamed_flow_ends(events: &[TimelineEvent], known: &PodAddresses, out: &mut BTreeSet<String>) {
    const MAX_STRANGERS: usize = 500;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn event(time: i64, stream: Stream, source: &str, offset: i64) -> TimelineEvent {
        let evidence = Evidence {
            table: stream.table(),
            source: source.into(),
            offset,
        };
        TimelineEvent::new(stream, time, evidence)
    }

    #[test]
    fn lines_are_put_in_time_stream_and_row_order_whatever_order_they_came_in() {
        // Few distinct times and sources, so ties are broken by stream, source and offset.
        let mut seed = 7_u64;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let lines: Vec<TimelineEvent> = (0..500)
            .map(|i| {
                let stream = Stream::ALL[next(3) as usize];
                let source = ["file:b", "file:a", "kafka:audit/0"][next(3) as usize];
                event(next(20) as i64, stream, source, i)
            })
            .collect();
        let mut expected = lines.clone();
        expected
            .sort_by(|a, b| (a.time, a.stream, &a.evidence).cmp(&(b.time, b.stream, &b.evidence)));
        assert_eq!(in_time_order(lines), expected);
        assert!(in_time_order(Vec::new()).is_empty());
    }
}
