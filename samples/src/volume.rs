//! Large volumes of background for benchmarks: a realistic mix of kubelets, controllers,
//! workloads and people, spread evenly over a number of days. Streams: nothing is held
//! in memory beyond one event.

use serde_json::json;

use crate::cluster::{HUMANS, NODES, PODS};
use crate::model::{ApiCall, Endpoint, Flow, ProcessEvent, ProcessKind};
use crate::render;
use crate::rng::Rng;
use crate::scenario::start_time;

const DAY: i64 = 86_400_000_000;

/// The first event's time and the gap between events, for `n` events over `days` days
/// ending where the scenario starts.
fn spread(n: u64, days: i64) -> (i64, i64) {
    let span = days.max(1) * DAY;
    (start_time() - span, span / n.max(1) as i64)
}

/// `n` audit events (native JSON lines) over `days` days from the scenario's start.
pub fn audit_lines(n: u64, seed: u64, days: i64) -> impl Iterator<Item = String> {
    let mut rng = Rng::new(seed);
    let (t0, step) = spread(n, days);
    (0..n).map(move |i| {
        let time = t0 + i as i64 * step;
        render::audit_event(&random_call(&mut rng, time)).to_string()
    })
}

fn random_call(rng: &mut Rng, time: i64) -> ApiCall {
    let roll = rng.below(100);
    let mut c = ApiCall::new(time, rng.uuid(), "", &["system:authenticated"], "", "");
    if roll < 45 {
        let node = rng.pick(&NODES);
        c.user = format!("system:node:{}", node.name);
        c.groups.push("system:nodes".into());
        c.source_ip = node.ip.into();
        c.user_agent = "kubelet/v1.30.4 (linux/amd64) kubernetes/a51b3b7".into();
        let pod = rng.pick(&PODS);
        match rng.below(5) {
            0 => {
                c.verb = "patch";
                c.resource = "nodes";
                c.subresource = Some("status");
                c.name = Some(node.name.into());
            }
            1 => {
                c.verb = "watch";
                c.resource = "configmaps";
                c.namespace = Some(pod.namespace.into());
            }
            2 => {
                c.resource = "secrets";
                c.namespace = Some(pod.namespace.into());
                c.name = Some(format!("{}-token", pod.service_account));
            }
            3 => {
                c.verb = "list";
                c.namespace = Some(pod.namespace.into());
            }
            _ => {
                // The pod's own kubelet reports its status: mostly conditions; the address
                // only when the pod (re)starts and is given one.
                let home = &NODES[pod.node];
                c.user = format!("system:node:{}", home.name);
                c.source_ip = home.ip.into();
                c.verb = "patch";
                c.resource = "pods";
                c.subresource = Some("status");
                c.namespace = Some(pod.namespace.into());
                c.name = Some(pod.name.into());
                c.level = "Request";
                let mut status = json!({
                    "$setElementOrder/conditions": [
                        {"type": "Initialized"}, {"type": "Ready"},
                        {"type": "ContainersReady"}, {"type": "PodScheduled"}
                    ],
                    "conditions": [{
                        "lastProbeTime": null,
                        "lastTransitionTime": render::rfc3339(time),
                        "status": "True",
                        "type": "Ready"
                    }]
                });
                if rng.chance(0.02) {
                    status["podIP"] = json!(pod.ip);
                    status["podIPs"] = json!([{"ip": pod.ip}]);
                }
                c.request_object = Some(json!({
                    "metadata": {"uid": rng.uuid()},
                    "status": status
                }));
            }
        }
    } else if roll < 80 {
        let (user, resource, group) = *rng.pick(&[
            (
                "system:kube-controller-manager",
                "leases",
                "coordination.k8s.io",
            ),
            ("system:kube-scheduler", "leases", "coordination.k8s.io"),
            (
                "system:serviceaccount:kube-system:endpointslice-controller",
                "endpointslices",
                "discovery.k8s.io",
            ),
            (
                "system:serviceaccount:kube-system:replicaset-controller",
                "replicasets",
                "apps",
            ),
            (
                "system:serviceaccount:kube-system:deployment-controller",
                "deployments",
                "apps",
            ),
        ]);
        c.user = user.into();
        c.source_ip = "10.0.0.10".into();
        c.user_agent = "kube-controller-manager/v1.30.4 (linux/amd64) kubernetes/a51b3b7".into();
        c.verb = *rng.pick(&["get", "update", "list", "watch"]);
        c.resource = resource;
        c.api_group = group;
        c.namespace = Some(
            rng.pick(&["kube-system", "shop", "payments", "monitoring"])
                .to_string(),
        );
        c.name = Some(format!("{resource}-{}", rng.below(40)));
    } else if roll < 95 {
        let pod = rng.pick(&PODS);
        c.user = format!(
            "system:serviceaccount:{}:{}",
            pod.namespace, pod.service_account
        );
        c.groups.push("system:serviceaccounts".into());
        c.source_ip = pod.ip.into();
        c.user_agent = format!("{}/v0.0.0 (linux/amd64) kubernetes/$Format", pod.app);
        c.verb = *rng.pick(&["get", "list", "watch"]);
        c.resource = *rng.pick(&["configmaps", "endpoints", "pods", "services"]);
        c.namespace = Some(pod.namespace.into());
        if rng.chance(0.02) {
            c.code = 403;
        }
    } else {
        let human = rng.pick(&HUMANS);
        c.user = human.user.into();
        c.groups = human.groups.iter().map(|g| g.to_string()).collect();
        c.source_ip = human.ip.into();
        c.user_agent = human.agent.into();
        let pod = rng.pick(&PODS);
        c.verb = *rng.pick(&["get", "list", "create", "patch", "delete"]);
        c.namespace = Some(pod.namespace.into());
        c.name = Some(pod.name.into());
        if c.verb == "create" && rng.chance(0.3) {
            c.subresource = Some("exec");
            c.code = 101;
            c.stage = "ResponseStarted";
        }
        c.level = "Request";
        c.request_object = Some(
            json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}),
        );
    }
    c
}

/// `n` Hubble flows (JSON lines) between the cluster's pods and the world.
pub fn flow_lines(n: u64, seed: u64, days: i64) -> impl Iterator<Item = String> {
    let mut rng = Rng::new(seed);
    let (t0, step) = spread(n, days);
    (0..n).map(move |i| {
        let src = rng.below(PODS.len() as u64) as usize;
        let dst = if rng.chance(0.1) {
            Endpoint {
                ip: format!("52.94.{}.{}", rng.below(256), rng.below(256)),
                labels: vec!["reserved:world".into()],
                identity: 2,
                ..Endpoint::default()
            }
        } else {
            let d = &PODS[rng.below(PODS.len() as u64) as usize];
            Endpoint {
                ip: d.ip.into(),
                namespace: Some(d.namespace.into()),
                pod: Some(d.name.into()),
                labels: vec![format!("k8s:app={}", d.app)],
                identity: d.identity,
            }
        };
        let p = &PODS[src];
        let f = Flow {
            time: t0 + i as i64 * step,
            duration_secs: 1,
            src: Endpoint {
                ip: p.ip.into(),
                namespace: Some(p.namespace.into()),
                pod: Some(p.name.into()),
                labels: vec![format!("k8s:app={}", p.app)],
                identity: p.identity,
            },
            dst,
            protocol: if rng.chance(0.2) { "UDP" } else { "TCP" },
            src_port: 32768 + rng.below(28000) as i64,
            dst_port: *rng.pick(&[443, 8080, 5432, 53, 9090]),
            bytes: rng.below(100_000) as i64,
            packets: 1 + rng.below(100) as i64,
            verdict: if rng.chance(0.01) {
                "DROPPED"
            } else {
                "FORWARDED"
            },
            node: p.node,
            dns_query: None,
            attack_step: None,
        };
        render::hubble_flow(&f).to_string()
    })
}

/// `n` Tetragon events (JSON lines): execs and exits of ordinary workload processes.
pub fn runtime_lines(n: u64, seed: u64, days: i64) -> impl Iterator<Item = String> {
    let mut rng = Rng::new(seed);
    let (t0, step) = spread(n, days);
    (0..n).map(move |i| {
        let pod = rng.below(PODS.len() as u64) as usize;
        let (binary, args) = *rng.pick(&[
            ("/usr/local/bin/python", "manage.py clearsessions"),
            ("/usr/bin/pg_isready", "-U postgres"),
            ("/bin/sh", "-c /healthz.sh"),
            ("/usr/sbin/nginx", "-s reload"),
        ]);
        let pid = 1000 + rng.below(60_000) as i64;
        let e = ProcessEvent {
            time: t0 + i as i64 * step,
            pod,
            binary: binary.into(),
            arguments: args.into(),
            pid,
            parent_binary: "/usr/bin/containerd-shim-runc-v2".into(),
            parent_arguments: "-namespace k8s.io".into(),
            parent_pid: 1,
            kind: if rng.chance(0.5) {
                ProcessKind::Exec
            } else {
                ProcessKind::Exit { status: 0 }
            },
            attack_step: None,
        };
        render::tetragon_event(&e).to_string()
    })
}
