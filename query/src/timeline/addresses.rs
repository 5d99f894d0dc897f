//! Which pod held an address at a given moment. Pods come and go and their addresses are
//! handed to the next pod, so "10.244.1.5" means one pod at 09:00 and another at 15:00.
//! Every source that names a pod next to its address is a sighting: kubelets' pod status
//! updates in the audit log (`status.podIP`, kept in the `pod_ip` column), both ends of Hubble and Calico flows, and
//! Tetragon's socket events. An address belongs, at time t, to the pod last sighted with
//! it at or before t (or, before any sighting, to the first pod sighted with it).
//!
//! Flows and runtime events sight a running pod all the time, so they are read from shortly
//! before the window ([`NEAR_LOOKBACK_MICROS`]); a pod's status update happens when it
//! starts, possibly long before, so the audit log is read from the full lookback, once per
//! timeline, for every pod (see [`AddressBook`]).

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::Array;

use super::entity::PodRef;
use super::fetch::{any_of, as_ints, as_text, in_condition, pods_condition};
use crate::window::Window;
use crate::{LakeSession, QueryError};

/// How far before the window flows and runtime events are read for sightings.
pub const NEAR_LOOKBACK_MICROS: i64 = 3600 * 1_000_000;

/// Where sightings are looked for: flows and runtime events in `near`, pod status updates
/// in `far` (both end where the timeline's window ends).
#[derive(Debug, Clone, Copy)]
pub struct SightingWindows {
    pub near: Window,
    pub far: Window,
}

impl SightingWindows {
    /// For a timeline window and how far back a pod's start may lie.
    pub fn new(window: &Window, lookback_micros: i64) -> SightingWindows {
        SightingWindows {
            near: window.reaching_back(lookback_micros.min(NEAR_LOOKBACK_MICROS)),
            far: window.reaching_back(lookback_micros),
        }
    }
}

/// A pod seen with an address during an hour (sightings are grouped by hour so that an
/// address handed back and forth keeps its order, and the answer stays small).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    pub pod: PodRef,
    pub first: i64,
    pub last: i64,
}

/// Address → its sightings, oldest first.
#[derive(Debug, Default, Clone)]
pub struct PodAddresses {
    by_ip: BTreeMap<String, Vec<Sighting>>,
}

/// The sightings a timeline has learned so far. Each hop asks the lake only about the pods
/// and addresses it has not asked about yet. The audit log's pod status updates (the one
/// costly scan: the whole lookback of audit events) are read once, for every pod, by
/// [`status_sightings`] while the first hop reads, and handed over with
/// [`AddressBook::add_status`].
#[derive(Debug)]
pub struct AddressBook {
    windows: SightingWindows,
    /// Every pod status sighting in the far window, once read.
    status: Option<PodAddresses>,
    asked_pods: BTreeSet<PodRef>,
    asked_ips: BTreeSet<String>,
    known: PodAddresses,
}

impl AddressBook {
    pub fn new(windows: SightingWindows) -> AddressBook {
        AddressBook {
            windows,
            status: None,
            asked_pods: BTreeSet::new(),
            asked_ips: BTreeSet::new(),
            known: PodAddresses::default(),
        }
    }

    /// Everything learned so far.
    pub fn known(&self) -> &PodAddresses {
        &self.known
    }

    /// Takes in the pod status sightings: those of the pods and addresses asked about so
    /// far count at once, the rest as they are asked about.
    pub fn add_status(&mut self, status: PodAddresses) {
        self.known
            .merge(status.select(&self.asked_pods, &self.asked_ips));
        self.status = Some(status);
    }

    /// Learns the sightings of the given pods and addresses (those not asked about yet).
    /// The pods' addresses may have been held by other pods too: [`AddressBook::learn_holders`]
    /// finds those, and can run while the pods' events are read.
    pub async fn learn(
        &mut self,
        session: &LakeSession,
        pods: &BTreeSet<PodRef>,
        ips: &BTreeSet<String>,
    ) -> Result<(), QueryError> {
        let new_pods: BTreeSet<PodRef> = pods.difference(&self.asked_pods).cloned().collect();
        let new_ips: BTreeSet<String> = ips.difference(&self.asked_ips).cloned().collect();
        if new_pods.is_empty() && new_ips.is_empty() {
            return Ok(());
        }
        let mut found = near_sightings(session, &self.windows.near, &new_pods, &new_ips).await?;
        if let Some(status) = &self.status {
            found.merge(status.select(&new_pods, &new_ips));
        }
        self.known.merge(found);
        self.asked_pods.extend(new_pods);
        self.asked_ips.extend(new_ips);
        Ok(())
    }

    /// Every sighting of the addresses learned so far (which other pods held them), and of
    /// `more` addresses, in one query.
    pub async fn learn_holders(
        &mut self,
        session: &LakeSession,
        more: &BTreeSet<String>,
    ) -> Result<(), QueryError> {
        let mut ips: BTreeSet<String> = self.known.by_ip.keys().cloned().collect();
        ips.extend(more.iter().cloned());
        self.learn(session, &BTreeSet::new(), &ips).await
    }
}

/// Both ends of flows that name their pods, and Tetragon's socket events, of the given
/// pods or addresses.
async fn near_sightings(
    session: &LakeSession,
    window: &Window,
    pods: &BTreeSet<PodRef>,
    ips: &BTreeSet<String>,
) -> Result<PodAddresses, QueryError> {
    let w = window.predicate();
    let sides = [
        (
            "src_ip",
            "src_namespace",
            "src_pod",
            "network_flows",
            "TRUE",
        ),
        (
            "dst_ip",
            "dst_namespace",
            "dst_pod",
            "network_flows",
            "TRUE",
        ),
        (
            "src_ip",
            "namespace",
            "pod",
            "runtime_events",
            "runtime_format = 'tetragon'",
        ),
    ];
    let mut parts = Vec::new();
    for (ip, ns, pod, table, only) in sides {
        let Some(which) = any_of([pods_condition(pods, ns, pod), in_condition(ip, ips)]) else {
            continue;
        };
        parts.push(format!(
            "SELECT {ip} AS ip, {ns} AS ns, {pod} AS pod, event_time AS t FROM {table} \
             WHERE {w} AND {only} AND {pod} IS NOT NULL AND {which}"
        ));
    }
    if parts.is_empty() {
        return Ok(PodAddresses::default());
    }
    read_sightings(session, &parts.join(" UNION ALL ")).await
}

/// Every pod status update (`status.podIP`) in the window, whoever's. Ingest keeps the
/// address in `pod_ip` (set on pod objects only, so it is the one condition: every further
/// column in the filter is one more column decoded over the whole lookback); row groups
/// without any address are skipped by their statistics. A lake no kubetrail with that
/// column has written to is read the slow way, from the request objects.
pub async fn status_sightings(
    session: &LakeSession,
    windows: &SightingWindows,
) -> Result<PodAddresses, QueryError> {
    let w = windows.far.predicate();
    let rows = if session.has_column("k8s_audit", "pod_ip").await {
        format!(
            "SELECT pod_ip AS ip, namespace AS ns, pod, event_time AS t FROM k8s_audit \
             WHERE {w} AND pod_ip IS NOT NULL"
        )
    } else {
        format!(
            "SELECT json_get_str(request_object, 'status', 'podIP') AS ip, namespace AS ns, \
             pod, event_time AS t FROM k8s_audit WHERE {w} AND resource = 'pods' \
             AND subresource = 'status' AND request_object IS NOT NULL"
        )
    };
    read_sightings(session, &rows).await
}

/// Runs a query of `(ip, ns, pod, t)` rows and groups them into hourly sightings.
async fn read_sightings(session: &LakeSession, rows: &str) -> Result<PodAddresses, QueryError> {
    let sql = format!(
        "SELECT ip, ns, pod, CAST(min(t) AS BIGINT) AS first, CAST(max(t) AS BIGINT) AS last \
         FROM ({rows}) WHERE ip IS NOT NULL AND ip <> '' \
         GROUP BY ip, ns, pod, date_trunc('hour', t)"
    );
    let mut out = PodAddresses::default();
    for batch in session.query(&sql).await? {
        let c = |i| batch.column(i);
        let (ip, ns, pod) = (as_text(c(0))?, as_text(c(1))?, as_text(c(2))?);
        let (first, last) = (as_ints(c(3))?, as_ints(c(4))?);
        for row in 0..batch.num_rows() {
            if pod.is_null(row) {
                continue;
            }
            out.sighted(
                ip.value(row),
                PodRef {
                    namespace: if ns.is_null(row) {
                        String::new()
                    } else {
                        ns.value(row).to_owned()
                    },
                    name: pod.value(row).to_owned(),
                },
                first.value(row),
                last.value(row),
            );
        }
    }
    for sightings in out.by_ip.values_mut() {
        sightings.sort_by_key(|s| (s.first, s.last));
    }
    Ok(out)
}

impl PodAddresses {
    /// The sightings of the given pods, and every sighting of the given addresses.
    fn select(&self, pods: &BTreeSet<PodRef>, ips: &BTreeSet<String>) -> PodAddresses {
        let mut out = PodAddresses::default();
        for (ip, sightings) in &self.by_ip {
            let whole = ips.contains(ip);
            let chosen: Vec<Sighting> = sightings
                .iter()
                .filter(|s| whole || pods.contains(&s.pod))
                .cloned()
                .collect();
            if !chosen.is_empty() {
                out.by_ip.insert(ip.clone(), chosen);
            }
        }
        out
    }

    /// Adds another set of sightings (of other addresses).
    pub fn merge(&mut self, other: PodAddresses) {
        for (ip, sightings) in other.by_ip {
            let mine = self.by_ip.entry(ip).or_default();
            mine.extend(sightings);
            mine.sort_by(|a, b| (a.first, a.last, &a.pod).cmp(&(b.first, b.last, &b.pod)));
            mine.dedup();
        }
    }

    pub fn knows(&self, ip: &str) -> bool {
        self.by_ip.contains_key(ip)
    }

    pub(crate) fn sighted(&mut self, ip: &str, pod: PodRef, first: i64, last: i64) {
        self.by_ip
            .entry(ip.to_owned())
            .or_default()
            .push(Sighting { pod, first, last });
    }

    /// The pod that held `ip` at time `t`, if any pod was ever seen with it.
    pub fn pod_at(&self, ip: &str, t: i64) -> Option<&PodRef> {
        let sightings = self.by_ip.get(ip)?;
        sightings
            .iter()
            .rev()
            .find(|s| s.first <= t)
            .or_else(|| sightings.first())
            .map(|s| &s.pod)
    }

    /// Every address the pod was seen with.
    pub fn ips_of(&self, pod: &PodRef) -> BTreeSet<String> {
        self.by_ip
            .iter()
            .filter(|(_, s)| s.iter().any(|s| &s.pod == pod))
            .map(|(ip, _)| ip.clone())
            .collect()
    }

    /// The pods seen with `ip`, with the first time each was seen holding it.
    pub fn holders(&self, ip: &str) -> Vec<(PodRef, i64)> {
        let mut out: Vec<(PodRef, i64)> = Vec::new();
        for s in self.by_ip.get(ip).into_iter().flatten() {
            if !out.iter().any(|(p, _)| p == &s.pod) {
                out.push((s.pod.clone(), s.first));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str) -> PodRef {
        PodRef {
            namespace: "shop".into(),
            name: name.into(),
        }
    }

    #[test]
    fn a_reused_address_maps_to_the_pod_that_held_it_then() {
        let mut a = PodAddresses::default();
        a.sighted("10.244.1.5", pod("api-1"), 100, 200);
        a.sighted("10.244.1.5", pod("worker-9"), 500, 900);
        for s in a.by_ip.values_mut() {
            s.sort_by_key(|s| (s.first, s.last));
        }
        assert_eq!(a.pod_at("10.244.1.5", 50), Some(&pod("api-1")));
        assert_eq!(a.pod_at("10.244.1.5", 150), Some(&pod("api-1")));
        assert_eq!(a.pod_at("10.244.1.5", 400), Some(&pod("api-1")));
        assert_eq!(a.pod_at("10.244.1.5", 600), Some(&pod("worker-9")));
        assert_eq!(a.pod_at("10.244.9.9", 600), None);
        assert_eq!(a.ips_of(&pod("worker-9")).len(), 1);
        assert_eq!(a.holders("10.244.1.5").len(), 2);
    }
}
