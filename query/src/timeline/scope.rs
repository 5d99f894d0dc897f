//! The entities a timeline follows: the one asked for, and with `--depth`, those one hop
//! away (the identities that acted on a pod, the pods an identity touched, the pods that
//! held an address). Each line of the timeline is kept only if it concerns a member, and
//! says which one.

use std::collections::{BTreeMap, BTreeSet};

use super::addresses::PodAddresses;
use super::entity::{Entity, PodRef};
use super::event::{Detail, Stream, TimelineEvent};
use super::fetch::{any_of, in_condition, pods_condition, Selection};
use crate::window::{rfc3339, Window};

/// Why an entity is followed, and from when (a pod an identity touched at 09:31 is
/// followed from 09:31: what it did next).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub since: i64,
    pub why: String,
}

/// Identities whose every action would flood a timeline and that an attacker rarely is:
/// the lines they produce about a followed entity are shown, but they are not followed.
const INFRASTRUCTURE: [&str; 4] = [
    "system:node:",
    "system:kube-",
    "system:serviceaccount:kube-system:",
    "system:apiserver",
];

/// The keys whose rows a timeline has read: each hop reads only the rows of new ones.
#[derive(Debug, Default)]
pub(crate) struct ReadKeys {
    pods: BTreeSet<PodRef>,
    users: BTreeSet<String>,
    nodes: BTreeSet<String>,
    /// Addresses of members and of member pods: audit and flow rows match these.
    ips: BTreeSet<String>,
    /// Addresses that are members themselves: runtime rows match only these.
    member_ips: BTreeSet<String>,
}

/// The keys not read yet, now counted as read.
fn unread<K: Ord + Clone>(keys: impl IntoIterator<Item = K>, read: &mut BTreeSet<K>) -> Vec<K> {
    keys.into_iter()
        .filter(|k| read.insert(k.clone()))
        .collect()
}

/// At most this many new entities per hop; the rest are named in a note.
pub const MAX_NEW_PER_HOP: usize = 20;

#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub pods: BTreeMap<PodRef, Member>,
    pub users: BTreeMap<String, Member>,
    pub ips: BTreeMap<String, Member>,
    pub nodes: BTreeMap<String, Member>,
}

impl Scope {
    /// The entity asked for (containers and alerts are resolved to a pod before this).
    pub fn seed(entity: &Entity, window: &Window) -> Scope {
        let mut s = Scope::default();
        let member = |why: String| Member {
            since: window.from(),
            why,
        };
        match entity {
            Entity::Pod(p) => {
                s.pods.insert(p.clone(), member(format!("pod {p}")));
            }
            Entity::User(u) => {
                s.users.insert(u.clone(), member(format!("user {u}")));
            }
            Entity::Ip(ip) => {
                s.ips
                    .insert(ip.to_string(), member(format!("address {ip}")));
            }
            Entity::Node(n) => {
                s.nodes.insert(n.clone(), member(format!("node {n}")));
                s.users.insert(
                    format!("system:node:{n}"),
                    member(format!("node {n} (its kubelet)")),
                );
            }
            Entity::Container(_) | Entity::Alert(_) => {}
        }
        s
    }

    pub fn len(&self) -> usize {
        self.pods.len() + self.users.len() + self.ips.len() + self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The SQL that fetches every row that may concern a member whose rows are not read
    /// yet (`read` then counts them as read). Each condition is an OR over single keys, so
    /// the rows of all hops together are exactly the rows of one query over every member.
    /// It over-reads (an address matches whoever held it); [`Scope::relation`] decides.
    pub(crate) fn selection(
        &self,
        addresses: &PodAddresses,
        max_rows: usize,
        read: &mut ReadKeys,
    ) -> Selection {
        let mut ips: BTreeSet<String> = self.ips.keys().cloned().collect();
        for p in self.pods.keys() {
            ips.extend(addresses.ips_of(p));
        }
        let pods = unread(self.pods.keys().cloned(), &mut read.pods);
        let users = unread(self.users.keys().cloned(), &mut read.users);
        let nodes = unread(self.nodes.keys().cloned(), &mut read.nodes);
        let member_ips = unread(self.ips.keys().cloned(), &mut read.member_ips);
        let ips = unread(ips, &mut read.ips);
        let audit = any_of([
            in_condition("user_name", &users),
            in_condition("impersonated_user", &users),
            pods_condition(&pods, "namespace", "pod"),
            in_condition("src_ip", &ips),
            in_condition("node", &nodes),
            in_condition("name", &nodes).map(|c| format!("(resource = 'nodes' AND {c})")),
        ]);
        let network = any_of([
            pods_condition(&pods, "src_namespace", "src_pod"),
            pods_condition(&pods, "dst_namespace", "dst_pod"),
            pods_condition(&pods, "namespace", "pod"),
            in_condition("src_ip", &ips),
            in_condition("dst_ip", &ips),
            in_condition("node", &nodes),
        ]);
        let runtime = any_of([
            pods_condition(&pods, "namespace", "pod"),
            in_condition("src_ip", &member_ips),
            in_condition("dst_ip", &member_ips),
            in_condition("node", &nodes),
        ]);
        Selection {
            audit,
            network,
            runtime,
            max_rows,
        }
    }

    /// Which member a line concerns (its `why`), or `None` if it concerns none of them at
    /// that moment. Flows that know only addresses are attributed to pods here.
    pub fn relation(&self, e: &mut TimelineEvent, addresses: &PodAddresses) -> Option<String> {
        let t = e.time;
        let pod_member = |p: &PodRef| self.pods.get(p).filter(|m| m.since <= t);
        let ip_member = |ip: &Option<String>| {
            ip.as_ref()
                .and_then(|ip| self.ips.get(ip))
                .filter(|m| m.since <= t)
        };
        let held_by_member = |ip: &Option<String>| {
            ip.as_ref()
                .and_then(|ip| addresses.pod_at(ip, t))
                .and_then(|p| pod_member(p).map(|m| (p.clone(), m)))
        };
        let own_pod = match (&e.namespace, &e.pod) {
            (Some(ns), Some(name)) => Some(PodRef {
                namespace: ns.clone(),
                name: name.clone(),
            }),
            _ => None,
        };
        let node_member = e
            .node
            .as_ref()
            .and_then(|n| self.nodes.get(n))
            .filter(|m| m.since <= t);
        match e.stream {
            Stream::Audit => {
                let Detail::Audit {
                    impersonated,
                    resource,
                    name,
                    ..
                } = &e.detail
                else {
                    return None;
                };
                let user = e
                    .actor
                    .as_ref()
                    .and_then(|u| self.users.get(u))
                    .or_else(|| impersonated.as_ref().and_then(|u| self.users.get(u)))
                    .filter(|m| m.since <= t);
                if let Some(m) = own_pod.as_ref().and_then(pod_member) {
                    return Some(m.why.clone());
                }
                if let Some(m) = user.or_else(|| ip_member(&e.src_ip)) {
                    return Some(m.why.clone());
                }
                if let Some((p, m)) = held_by_member(&e.src_ip) {
                    return Some(format!("{} (a request from its address, as {p})", m.why));
                }
                if resource.as_deref() == Some("nodes") {
                    if let Some(m) = name.as_ref().and_then(|n| self.nodes.get(n)) {
                        return Some(m.why.clone());
                    }
                }
                node_member.map(|m| m.why.clone())
            }
            Stream::Network => {
                let (src_pod, dst_pod) = match &mut e.detail {
                    Detail::Flow {
                        src_pod, dst_pod, ..
                    } => (src_pod, dst_pod),
                    _ => return None,
                };
                // Address-only flow logs: name the pods the addresses belonged to then.
                let mut attributed = false;
                if src_pod.is_none() {
                    if let Some(p) = e.src_ip.as_ref().and_then(|ip| addresses.pod_at(ip, t)) {
                        *src_pod = Some(p.clone());
                        attributed = true;
                    }
                }
                if dst_pod.is_none() {
                    if let Some(p) = e.dst_ip.as_ref().and_then(|ip| addresses.pod_at(ip, t)) {
                        *dst_pod = Some(p.clone());
                        attributed = true;
                    }
                }
                let (src_pod, dst_pod) = (src_pod.clone(), dst_pod.clone());
                if attributed {
                    e.describe_flow_ends();
                }
                let ends = [(src_pod.as_ref(), &e.src_ip), (dst_pod.as_ref(), &e.dst_ip)];
                for (pod, ip) in ends {
                    if let Some(m) = pod.and_then(pod_member) {
                        let p = pod.expect("matched above");
                        e.namespace = Some(p.namespace.clone());
                        e.pod = Some(p.name.clone());
                        return Some(m.why.clone());
                    }
                    if let Some(m) = ip_member(ip) {
                        return Some(m.why.clone());
                    }
                }
                own_pod
                    .as_ref()
                    .and_then(pod_member)
                    .or(node_member)
                    .map(|m| m.why.clone())
            }
            Stream::Runtime => own_pod
                .as_ref()
                .and_then(pod_member)
                .or_else(|| ip_member(&e.src_ip))
                .or_else(|| ip_member(&e.dst_ip))
                .or(node_member)
                .map(|m| m.why.clone()),
        }
    }

    /// The entities one hop from the current members, as seen in the lines kept so far.
    /// Returns them with the names of those left out by the per-hop cap.
    pub fn next_hop(
        &self,
        lines: &[TimelineEvent],
        addresses: &PodAddresses,
        window: &Window,
    ) -> (Scope, Vec<String>) {
        let mut next = Scope::default();
        for e in lines.iter().filter(|e| e.stream == Stream::Audit) {
            let Some(actor) = &e.actor else { continue };
            let target_pod = match (&e.namespace, &e.pod) {
                (Some(ns), Some(name)) => Some(PodRef {
                    namespace: ns.clone(),
                    name: name.clone(),
                }),
                _ => None,
            };
            let deed = match &e.detail {
                Detail::Audit {
                    subresource: Some(s),
                    ..
                } if s == "exec" => "exec'd into",
                _ => "acted on",
            };
            // Who acted on a followed pod: follow what they did in the window.
            if let Some(p) = &target_pod {
                if self.pods.contains_key(p)
                    && !self.users.contains_key(actor)
                    && !is_infrastructure(actor)
                {
                    next.users.entry(actor.clone()).or_insert(Member {
                        since: window.from(),
                        why: format!("user {actor}, who {deed} {p}"),
                    });
                }
            }
            // A followed identity touched a pod: follow what the pod did next.
            if let Some(p) = &target_pod {
                if self.users.contains_key(actor) && !self.pods.contains_key(p) {
                    next.pods.entry(p.clone()).or_insert(Member {
                        since: e.time,
                        why: format!("pod {p}, which {actor} {deed} at {}", rfc3339(e.time)),
                    });
                }
            }
            // A followed address made API requests: follow the identities it used.
            if let Some(ip) = &e.src_ip {
                if self.ips.contains_key(ip)
                    && !self.users.contains_key(actor)
                    && !is_infrastructure(actor)
                {
                    next.users.entry(actor.clone()).or_insert(Member {
                        since: window.from(),
                        why: format!("user {actor}, seen from {ip}"),
                    });
                }
            }
        }
        // The pods that held a followed address.
        for ip in self.ips.keys() {
            for (pod, first) in addresses.holders(ip) {
                if !self.pods.contains_key(&pod) {
                    next.pods.entry(pod.clone()).or_insert(Member {
                        since: window.from(),
                        why: format!("pod {pod}, which held {ip} from {}", rfc3339(first)),
                    });
                }
            }
        }
        let left_out = next.cap(MAX_NEW_PER_HOP);
        (next, left_out)
    }

    fn cap(&mut self, max: usize) -> Vec<String> {
        let mut left_out = Vec::new();
        let mut room = max;
        let mut keep = |name: String| {
            if room > 0 {
                room -= 1;
                true
            } else {
                left_out.push(name);
                false
            }
        };
        self.users.retain(|u, _| keep(format!("user {u}")));
        self.pods.retain(|p, _| keep(format!("pod {p}")));
        left_out
    }

    pub fn extend(&mut self, other: Scope) {
        self.pods.extend(other.pods);
        self.users.extend(other.users);
        self.ips.extend(other.ips);
        self.nodes.extend(other.nodes);
    }

    /// Every member's `why`: identities, pods, addresses, nodes.
    pub fn describe(&self) -> Vec<String> {
        self.users
            .values()
            .chain(self.pods.values())
            .chain(self.ips.values())
            .chain(self.nodes.values())
            .map(|m| m.why.clone())
            .collect()
    }
}

fn is_infrastructure(user: &str) -> bool {
    INFRASTRUCTURE.iter().any(|p| user.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member() -> Member {
        Member {
            since: 0,
            why: "test".into(),
        }
    }

    #[test]
    fn each_hop_selects_only_the_rows_of_what_it_has_not_read() {
        let pod = PodRef {
            namespace: "shop".into(),
            name: "api-1".into(),
        };
        let mut scope = Scope::default();
        scope.pods.insert(pod.clone(), member());
        let mut addresses = PodAddresses::default();
        addresses.sighted("10.244.1.5", pod, 0, 10);
        let mut read = ReadKeys::default();
        let first = scope.selection(&addresses, 10, &mut read);
        let audit = first.audit.unwrap();
        assert!(
            audit.contains("'api-1'") && audit.contains("'10.244.1.5'"),
            "{audit}"
        );
        assert!(first.network.is_some() && first.runtime.is_some());

        // The same members again: nothing to read.
        let again = scope.selection(&addresses, 10, &mut read);
        assert!(again.audit.is_none() && again.network.is_none() && again.runtime.is_none());

        // A new identity: only its own rows (runtime events have no identity to match).
        scope.users.insert("alice".into(), member());
        let next = scope.selection(&addresses, 10, &mut read);
        let audit = next.audit.unwrap();
        assert!(
            audit.contains("'alice'") && !audit.contains("api-1"),
            "{audit}"
        );
        assert!(next.network.is_none() && next.runtime.is_none());

        // An address the pod is seen with later is new, though the pod is not.
        addresses.sighted(
            "10.244.9.9",
            scope.pods.keys().next().unwrap().clone(),
            20,
            30,
        );
        let later = scope.selection(&addresses, 10, &mut read);
        let network = later.network.unwrap();
        assert!(
            network.contains("'10.244.9.9'") && !network.contains("api-1"),
            "{network}"
        );
    }
}
