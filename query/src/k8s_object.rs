//! What a Kubernetes object in an audit event's `request_object` asks for, as rules judge
//! it: a workload's images and its risky settings, a role's risky grants.
//!
//! Objects are walked whole rather than at fixed paths, so that a Pod, every workload kind
//! (its `template`), a CronJob (its `jobTemplate`), a strategic-merge patch of any of them
//! and a JSON Patch are judged alike: a setting counts wherever in the object it is.

use serde_json::Value;

/// Every container image a Pod, a workload or a CronJob asks for, init and ephemeral
/// containers included; `None` when the text is not such an object.
pub fn workload_images(object: &str) -> Option<Vec<String>> {
    let v: Value = serde_json::from_str(object).ok()?;
    let spec = v.get("spec")?;
    let pod_spec = if spec.get("containers").is_some() {
        spec
    } else if let Some(s) = spec.pointer("/template/spec") {
        s
    } else {
        spec.pointer("/jobTemplate/spec/template/spec")?
    };
    let mut images = Vec::new();
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for c in pod_spec
            .get(list)
            .and_then(|l| l.as_array())
            .into_iter()
            .flatten()
        {
            if let Some(image) = c.get("image").and_then(|i| i.as_str()) {
                images.push(image.to_owned());
            }
        }
    }
    Some(images)
}

/// A workload's settings that give it the node, one word each: `privileged`,
/// `allowPrivilegeEscalation`, `hostPID`, `hostIPC`, `hostNetwork`, `hostPath` (any),
/// `sensitiveHostPath` (the node's root, its configuration, kubelet's or a container
/// runtime's state or socket), `dangerousCapability`, and `capability:<NAME>` for every
/// capability added. Sorted, each once; `None` when the text is not JSON.
pub fn pod_risks(object: &str) -> Option<Vec<String>> {
    let v: Value = serde_json::from_str(object).ok()?;
    let mut found = Vec::new();
    match &v {
        // A JSON Patch: each operation's value, and a flag set by its path.
        Value::Array(ops) => {
            for op in ops {
                let Some(value) = op.get("value") else {
                    continue;
                };
                if let Some(key) = op
                    .get("path")
                    .and_then(Value::as_str)
                    .and_then(|p| p.rsplit('/').next())
                {
                    flag(key, value, &mut found);
                }
                walk_pod(value, &mut found);
            }
        }
        v => walk_pod(v, &mut found),
    }
    found.sort();
    found.dedup();
    Some(found)
}

fn walk_pod(v: &Value, found: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (key, value) in map {
                flag(key, value, found);
                walk_pod(value, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| walk_pod(i, found)),
        _ => {}
    }
}

/// What one key of an object says, wherever it stands.
fn flag(key: &str, value: &Value, found: &mut Vec<String>) {
    let set = value.as_bool() == Some(true);
    match key {
        "privileged" | "allowPrivilegeEscalation" | "hostPID" | "hostIPC" | "hostNetwork"
            if set =>
        {
            found.push(key.to_owned())
        }
        "hostPath" => {
            found.push("hostPath".into());
            let path = value.get("path").and_then(Value::as_str).or(value.as_str());
            if path.is_some_and(is_sensitive_host_path) {
                found.push("sensitiveHostPath".into());
            }
        }
        "add" => {
            // `capabilities.add`: a list of names, with or without `CAP_`.
            for cap in value
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                let name = cap.trim().to_ascii_uppercase();
                let name = name.strip_prefix("CAP_").unwrap_or(&name).to_owned();
                if DANGEROUS_CAPABILITIES.contains(&name.as_str()) {
                    found.push("dangerousCapability".into());
                }
                found.push(format!("capability:{name}"));
            }
        }
        _ => {}
    }
}

/// Capabilities that reach past the container: mounts, kernel modules, other processes'
/// memory, raw devices, the network stack, files regardless of permissions.
const DANGEROUS_CAPABILITIES: [&str; 11] = [
    "ALL",
    "SYS_ADMIN",
    "SYS_MODULE",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_BOOT",
    "NET_ADMIN",
    "DAC_READ_SEARCH",
    "DAC_OVERRIDE",
    "BPF",
    "PERFMON",
];

/// The node's root, its configuration and home directories, the kernel's interfaces, and
/// the state and sockets of kubelet and the container runtimes. Log directories (which
/// log shippers mount) are not among them.
fn is_sensitive_host_path(path: &str) -> bool {
    const UNDER: [&str; 16] = [
        "/etc",
        "/root",
        "/home",
        "/proc",
        "/sys",
        "/dev",
        "/boot",
        "/var/lib/kubelet",
        "/var/lib/etcd",
        "/var/run/docker.sock",
        "/run/docker.sock",
        "/var/run/containerd",
        "/run/containerd",
        "/var/run/crio",
        "/run/crio",
        "/var/run/cri-dockerd.sock",
    ];
    let trimmed = path.trim();
    let p = trimmed.trim_end_matches('/');
    if p.is_empty() {
        return trimmed.starts_with('/');
    }
    UNDER
        .iter()
        .any(|s| p == *s || p.strip_prefix(s).is_some_and(|rest| rest.starts_with('/')))
}

/// What a Role or ClusterRole grants that an attacker wants, one word each: `wildcard`
/// (`*` verbs or resources), `escalate`, `bind`, `impersonate`, `exec` (pods/exec,
/// attach or port-forward), `nodesProxy`, `readSecrets`, `write` (any write verb), and
/// `sensitiveWrite` (writing workloads, secrets, RBAC, service-account tokens, admission
/// webhooks, nodes or certificate approvals). Sorted, each once; `None` when the text is
/// not JSON, and empty for an object without rules.
pub fn role_risks(object: &str) -> Option<Vec<String>> {
    let v: Value = serde_json::from_str(object).ok()?;
    let mut found = Vec::new();
    let rules = v
        .get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(json_patch_rules(&v));
    for rule in rules {
        let words = |key: &str| -> Vec<String> {
            rule.get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_ascii_lowercase)
                .collect()
        };
        let (verbs, resources) = (words("verbs"), words("resources"));
        let any_verb = |names: &[&str]| verbs.iter().any(|v| v == "*" || names.contains(&&**v));
        let any_resource =
            |pred: &dyn Fn(&str) -> bool| resources.iter().any(|r| r == "*" || pred(r));
        if verbs.iter().any(|v| v == "*") || resources.iter().any(|r| r == "*") {
            found.push("wildcard".to_owned());
        }
        for verb in ["escalate", "bind", "impersonate"] {
            if verbs.iter().any(|v| v == verb) {
                found.push(verb.to_owned());
            }
        }
        let reads = any_verb(&["get", "list", "watch"]);
        let writes = any_verb(&["create", "update", "patch", "delete", "deletecollection"]);
        if any_verb(&["create", "get"])
            && any_resource(&|r| matches!(r, "pods/exec" | "pods/attach" | "pods/portforward"))
        {
            found.push("exec".to_owned());
        }
        if any_resource(&|r| r == "nodes/proxy") && (reads || writes) {
            found.push("nodesProxy".to_owned());
        }
        if reads && any_resource(&|r| r == "secrets") {
            found.push("readSecrets".to_owned());
        }
        if writes && !resources.is_empty() {
            found.push("write".to_owned());
            if any_resource(&is_sensitive_resource) {
                found.push("sensitiveWrite".to_owned());
            }
        }
    }
    found.sort();
    found.dedup();
    Some(found)
}

/// The rules a JSON Patch adds to a role.
fn json_patch_rules(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter(|op| {
            op.get("path")
                .and_then(Value::as_str)
                .is_some_and(|p| p.starts_with("/rules"))
        })
        .filter_map(|op| op.get("value"))
        .flat_map(|value| match value {
            Value::Array(rules) => rules.iter().collect::<Vec<_>>(),
            rule => vec![rule],
        })
}

fn is_sensitive_resource(resource: &str) -> bool {
    let base = resource.split('/').next().unwrap_or(resource);
    matches!(
        base,
        "secrets"
            | "pods"
            | "deployments"
            | "daemonsets"
            | "statefulsets"
            | "replicasets"
            | "replicationcontrollers"
            | "jobs"
            | "cronjobs"
            | "roles"
            | "rolebindings"
            | "clusterroles"
            | "clusterrolebindings"
            | "serviceaccounts"
            | "nodes"
            | "mutatingwebhookconfigurations"
            | "validatingwebhookconfigurations"
            | "certificatesigningrequests"
            | "persistentvolumes"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn risks(json: &str) -> Vec<String> {
        pod_risks(json).expect("JSON")
    }

    #[test]
    fn images_of_pods_workloads_and_cronjobs() {
        let pod = r#"{"spec":{"initContainers":[{"image":"busybox"}],"containers":[{"image":"a/b:1"},{"name":"x"}]}}"#;
        assert_eq!(
            workload_images(pod),
            Some(vec!["busybox".into(), "a/b:1".into()])
        );
        let deployment =
            r#"{"spec":{"template":{"spec":{"containers":[{"image":"r.example.com/app"}]}}}}"#;
        assert_eq!(
            workload_images(deployment),
            Some(vec!["r.example.com/app".into()])
        );
        let cron = r#"{"spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[{"image":"c"}]}}}}}}"#;
        assert_eq!(workload_images(cron), Some(vec!["c".into()]));
        assert_eq!(workload_images("{}"), None);
        assert_eq!(workload_images("not json"), None);
    }

    #[test]
    fn pod_settings_count_in_every_kind_and_container_and_in_patches() {
        let cron = r#"{"kind":"CronJob","spec":{"jobTemplate":{"spec":{"template":{"spec":{"hostIPC":true,"initContainers":[{"securityContext":{"privileged":true}}]}}}}}}"#;
        assert_eq!(risks(cron), ["hostIPC", "privileged"]);
        let ds = r#"{"spec":{"template":{"spec":{"hostNetwork":true,"hostPID":false,"ephemeralContainers":[{"securityContext":{"capabilities":{"add":["cap_sys_admin","NET_BIND_SERVICE"]}}}]}}}}"#;
        assert_eq!(
            risks(ds),
            [
                "capability:NET_BIND_SERVICE",
                "capability:SYS_ADMIN",
                "dangerousCapability",
                "hostNetwork"
            ]
        );
        let patch = r#"[{"op":"add","path":"/spec/hostPID","value":true},{"op":"add","path":"/spec/volumes/-","value":{"name":"h","hostPath":{"path":"/var/run/docker.sock"}}}]"#;
        assert_eq!(risks(patch), ["hostPID", "hostPath", "sensitiveHostPath"]);
        let pretty = "{ \"spec\" : { \"containers\" : [ { \"securityContext\" : { \"privileged\" : true } } ] } }";
        assert_eq!(risks(pretty), ["privileged"]);
        assert!(risks(r#"{"spec":{"containers":[{"image":"nginx"}]}}"#).is_empty());
        assert_eq!(pod_risks("{not json"), None);
    }

    #[test]
    fn host_paths_are_sensitive_where_they_reach_the_node() {
        for (path, sensitive) in [
            ("/", true),
            ("//", true),
            ("/etc", true),
            ("/etc/kubernetes/manifests", true),
            ("/var/lib/kubelet", true),
            ("/var/lib/kubelet/pki/", true),
            ("/var/run/docker.sock", true),
            ("/run/containerd/containerd.sock", true),
            ("/proc", true),
            ("/var/log", false),
            ("/data", false),
            ("/etcetera", false),
            ("/var/lib/kubelet-plugins", false),
            ("", false),
            ("relative/etc", false),
        ] {
            assert_eq!(is_sensitive_host_path(path), sensitive, "{path:?}");
        }
    }

    #[test]
    fn role_grants_that_matter() {
        let role = |rules: &str| {
            role_risks(&format!(r#"{{"kind":"ClusterRole","rules":{rules}}}"#)).unwrap()
        };
        assert_eq!(
            role(r#"[{"apiGroups":["*"],"resources":["*"],"verbs":["*"]}]"#),
            [
                "exec",
                "nodesProxy",
                "readSecrets",
                "sensitiveWrite",
                "wildcard",
                "write"
            ]
        );
        assert_eq!(
            role(r#"[{"resources":["clusterroles"],"verbs":["Escalate","bind"]}]"#),
            ["bind", "escalate"]
        );
        assert_eq!(
            role(r#"[{"resources":["users","groups"],"verbs":["impersonate"]}]"#),
            ["impersonate"]
        );
        assert_eq!(
            role(r#"[{"resources":["pods/exec"],"verbs":["create"]}]"#),
            ["exec", "sensitiveWrite", "write"]
        );
        assert_eq!(
            role(r#"[{"resources":["configmaps"],"verbs":["update"]}]"#),
            ["write"]
        );
        assert_eq!(
            role(r#"[{"resources":["secrets"],"verbs":["list"]}]"#),
            ["readSecrets"]
        );
        assert!(
            role(r#"[{"resources":["pods","services"],"verbs":["get","list","watch"]}]"#)
                .is_empty()
        );
        assert!(role("[]").is_empty());
        let patch =
            r#"[{"op":"add","path":"/rules/-","value":{"resources":["secrets"],"verbs":["get"]}}]"#;
        assert_eq!(role_risks(patch).unwrap(), ["readSecrets"]);
        assert_eq!(role_risks("nope"), None);
    }
}
