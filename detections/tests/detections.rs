//! The rule engine over real lakes: the built-in pack on the incident scenario, reruns,
//! and rule files and SQL that go wrong.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kubetrail_detections::{
    run_rules, write_alerts, AlertChanges, Grouping, Rule, RuleOutcome, RulePack, Watchlists,
};
use kubetrail_ingest::{ingest_file, FileIngest, InputPath, NoProgress};
use kubetrail_lake::Lake;
use kubetrail_query::timeline::parse_time;
use kubetrail_query::{LakeSession, Window};

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/data")
}

/// A lake of every sample file, ingested by the real path.
async fn scenario_lake() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("lake").to_string_lossy().into_owned();
    let manifest = std::fs::read_to_string(samples().join("MANIFEST.tsv")).unwrap();
    for line in manifest.lines().skip(1) {
        ingest(&location, samples().join(line.split('\t').next().unwrap())).await;
    }
    (dir, location)
}

/// One file into the lake, by the real ingest path.
fn lake(location: &str) -> Lake {
    Lake::open(location).unwrap()
}

/// Rule tests' events through the ingest crate, as the binary's `detect test` sends them.
struct IngestLoader;

impl kubetrail_detections::EventLoader for IngestLoader {
    fn load<'a>(
        &'a self,
        lake: &'a Lake,
        format: Option<kubetrail_schemas::SourceFormat>,
        path: &'a std::path::Path,
    ) -> futures::future::BoxFuture<'a, Result<u64, String>> {
        Box::pin(async move {
            let report = kubetrail_ingest::ingest_one_file(lake, path, format).await;
            report.map(|r| r.dead_letters()).map_err(|e| e.to_string())
        })
    }
}

async fn ingest(location: &str, file: PathBuf) {
    let lake = Lake::open(location).unwrap();
    ingest_file(
        &lake,
        &InputPath::File(file),
        &FileIngest::default(),
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
}

fn hour() -> Window {
    Window::new(
        parse_time("2026-11-20T09:00:00Z").unwrap(),
        parse_time("2026-11-20T10:00:00Z").unwrap(),
    )
    .unwrap()
}

const HISTORY: Duration = Duration::from_secs(14 * 86_400);

/// The rules over the session with the shipped lists, one alert per fact.
async fn judge(session: &LakeSession, rules: &[Rule], window: &Window) -> Vec<RuleOutcome> {
    run_rules(
        session,
        rules,
        window,
        &Watchlists::default(),
        Grouping::Update,
    )
    .await
}

#[tokio::test]
async fn the_pack_flags_every_step_of_the_attack_and_nothing_else() {
    let pack = RulePack::builtin();
    assert!(pack.problems.is_empty(), "{:?}", pack.problems);
    assert!(pack.rules.len() >= 40, "{} rules", pack.rules.len());
    for r in &pack.rules {
        assert!(
            !r.false_positives.is_empty(),
            "{}: no false_positives",
            r.id
        );
    }
    let (_dir, location) = scenario_lake().await;
    let window = hour();
    let session = LakeSession::open_window(&lake(&location), &window, HISTORY)
        .await
        .unwrap();
    let outcomes = judge(&session, &pack.rules, &window).await;
    for o in &outcomes {
        assert!(o.error.is_none(), "{}: {:?}", o.rule_id, o.error);
    }
    let alerts: Vec<_> = outcomes.into_iter().flat_map(|o| o.alerts).collect();
    let fired = |rule: &str| alerts.iter().any(|a| a.rule_id == rule);
    for (step, rules) in [
        (
            "1 secret theft",
            &[
                "secrets-listed-cluster-wide",
                "service-account-token-used-externally",
            ][..],
        ),
        (
            "2 exec into the pod",
            &[
                "exec-into-pod",
                "exec-into-system-pod-or-from-outside",
                "shell-in-container",
                "exec-then-shell-then-egress",
            ],
        ),
        (
            "3 metadata credentials",
            &[
                "metadata-credentials-fetched",
                "metadata-endpoint-reached",
                "service-account-token-read",
            ],
        ),
        (
            "4 cryptominer",
            &[
                "cryptominer",
                "binary-run-from-temp",
                "mining-pool-connection",
                "falco-alert-high-priority",
            ],
        ),
        (
            "5 RBAC escalation",
            &["binding-to-cluster-admin", "rbac-change-then-new-workload"],
        ),
        (
            "6 privileged pod and escape",
            &[
                "privileged-pod-created",
                "host-namespaces-pod",
                "sensitive-host-path-mount",
                "kube-system-pod-by-non-system-identity",
                "host-namespace-entered",
            ],
        ),
        ("7 covering tracks", &["events-deleted"]),
    ] {
        for rule in rules {
            assert!(fired(rule), "step {step}: {rule} did not fire");
        }
    }
    // The scenario's lake holds no fortnight before the attack: nothing is "new" in it.
    assert!(!fired("secret-read-by-new-identity"));
    // Quiet on the background: every alert is about the attack's own minutes (09:30 to
    // 09:42), none about the hour of kubelets, controllers, people and traffic around it.
    let (start, end) = (
        parse_time("2026-11-20T09:30:00Z").unwrap(),
        parse_time("2026-11-20T09:43:00Z").unwrap(),
    );
    for a in &alerts {
        assert!(
            (start..end).contains(&a.first_seen),
            "{} fired outside the attack: {} at {}",
            a.rule_id,
            a.entity,
            a.first_seen
        );
        assert!(
            !a.evidence.is_empty() && a.evidence[0].contains("#"),
            "{a:?}"
        );
    }
    let mut by_rule: Vec<&str> = alerts.iter().map(|a| a.rule_id.as_str()).collect();
    by_rule.sort();
    assert_eq!(
        alerts.len(),
        25,
        "the count in detections/README.md: {by_rule:?}"
    );
    // Written once: a second run over the same window adds nothing.
    let lake = Lake::open(&location).unwrap();
    let written = write_alerts(&lake, &session, alerts.clone(), Vec::new())
        .await
        .unwrap();
    assert_eq!((written.new.len(), written.updated.len()), (25, 0));
    let session = LakeSession::open_window(&lake, &window, HISTORY)
        .await
        .unwrap();
    // The rerun finds the alerts open and their matches inside them: no update either.
    let rerun: Vec<_> = judge(&session, &pack.rules, &window).await;
    assert!(rerun.iter().all(|o| o.updates.is_empty()), "{rerun:?}");
    let known: usize = rerun.iter().map(|o| o.known.len()).sum();
    assert_eq!(known, 25, "a rerun finds what it found before");
    let again = write_alerts(&lake, &session, alerts, Vec::new())
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
    let stored = session
        .query("SELECT count(DISTINCT alert_id) AS n, count(*) AS rows FROM alerts")
        .await
        .unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&stored)
        .unwrap()
        .to_string();
    assert!(text.contains("| 25 | 25   |"), "{text}");
}

#[tokio::test]
async fn bad_rules_and_failing_sql_never_take_the_others_down() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(rules.join("mixed")).unwrap();
    let good = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/workloads/exec-into-pod.yaml"),
    )
    .unwrap();
    std::fs::write(rules.join("mixed/exec-into-pod.yaml"), &good).unwrap();
    std::fs::write(rules.join("mixed/not-yaml.yaml"), "id: [unclosed").unwrap();
    std::fs::write(
        rules.join("mixed/wrong-severity.yaml"),
        good.replace("id: exec-into-pod", "id: wrong-severity")
            .replace("severity: medium", "severity: urgent"),
    )
    .unwrap();
    std::fs::write(
        rules.join("mixed/no-such-column.yaml"),
        good.replace("id: exec-into-pod", "id: no-such-column")
            .replace("subresource IN", "no_such_column IN"),
    )
    .unwrap();
    let pack = RulePack::load(&rules).unwrap();
    let ids: Vec<&str> = pack.rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["exec-into-pod", "no-such-column"]);
    let problems: Vec<String> = pack.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems
            .iter()
            .any(|p| p.contains("not-yaml.yaml: (file): ")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("wrong-severity.yaml: severity: 'urgent' is not a severity")),
        "{problems:?}"
    );
    assert!(RulePack::load(&dir.path().join("nowhere"))
        .unwrap_err()
        .contains("cannot read rules directory"));

    let (_lake_dir, location) = scenario_lake().await;
    let window = hour();
    let session = LakeSession::open_window(&lake(&location), &window, HISTORY)
        .await
        .unwrap();
    let outcomes = judge(&session, &pack.rules, &window).await;
    let broken = outcomes
        .iter()
        .find(|o| o.rule_id == "no-such-column")
        .unwrap();
    let error = broken.error.as_deref().unwrap();
    assert!(
        error.contains("no_such_column") && !error.contains('\n'),
        "{error}"
    );
    let exec = outcomes
        .iter()
        .find(|o| o.rule_id == "exec-into-pod")
        .unwrap();
    assert_eq!(exec.alerts.len(), 2, "{:?}", exec.alerts);

    // A window with no data: no alerts, no errors.
    let empty = Window::new(
        parse_time("2030-01-01T00:00:00Z").unwrap(),
        parse_time("2030-01-02T00:00:00Z").unwrap(),
    )
    .unwrap();
    let session = LakeSession::open_window(&lake(&location), &empty, HISTORY)
        .await
        .unwrap();
    for o in judge(&session, &RulePack::builtin().rules, &empty).await {
        assert!(o.error.is_none() && o.alerts.is_empty(), "{o:?}");
    }
}

/// A tiny HTTP endpoint: answers 500 to the first `failures` requests, 200 after, and
/// hands each body it accepted to the test.
async fn webhook(failures: usize) -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut seen = 0;
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            // Read the head, then the body by its Content-Length.
            let body = loop {
                let n = s.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length: usize = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + length {
                        break Some(
                            String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).to_string(),
                        );
                    }
                }
            };
            seen += 1;
            let status = if seen <= failures {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = s
                .write_all(
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await;
            if seen > failures {
                if let Some(b) = body {
                    let _ = tx.send(b);
                }
            }
        }
    });
    (url, rx)
}

#[tokio::test]
async fn scheduled_rounds_continue_from_their_checkpoint_and_feed_the_sinks() {
    use kubetrail_detections::schedule::{round, Schedule};
    use kubetrail_detections::sinks::AlertSink;
    let (dir, location) = scenario_lake().await;
    let jsonl = dir.path().join("alerts.jsonl");
    let (url, mut posted) = webhook(1).await;
    let schedule = |sinks: Vec<AlertSink>| Schedule {
        lake: lake(&location),
        rules: RulePack::builtin().rules,
        every: Duration::from_secs(600),
        lookback: Duration::from_secs(900),
        history: HISTORY,
        sinks,
        watchlists: Watchlists::default(),
        grouping: Grouping::Update,
        engine: kubetrail_query::cluster::Engine::Local,
    };
    let at = |t: &str| parse_time(t).unwrap();
    let sinks = || {
        vec![
            AlertSink::parse(&format!("jsonl:{}", jsonl.display()), []).unwrap(),
            AlertSink::parse(&format!("webhook:{url}"), [])
                .unwrap()
                .with_retry_wait(Duration::from_millis(50)),
        ]
    };
    // First round: no checkpoint, so the last `every`, plus the lookback.
    let first = round(&schedule(sinks()), at("2026-11-20T09:40:00Z"))
        .await
        .unwrap();
    assert_eq!(
        first.window,
        Window::new(at("2026-11-20T09:15:00Z"), at("2026-11-20T09:40:00Z")).unwrap()
    );
    assert!(first.new > 20 && first.failed_sinks.is_empty(), "{first:?}");
    // The webhook refused once; the retry delivered every new alert in one POST.
    let body: serde_json::Value = serde_json::from_str(&posted.recv().await.unwrap()).unwrap();
    assert_eq!(body["alerts"].as_array().unwrap().len(), first.new);
    // A restarted scheduler: it starts at the checkpoint minus the lookback; the overlap
    // raises nothing twice, and the events deleted at 09:42 are new.
    let second = round(&schedule(sinks()), at("2026-11-20T09:50:00Z"))
        .await
        .unwrap();
    assert_eq!(second.window.from(), at("2026-11-20T09:25:00Z"));
    assert_eq!(second.new, 1, "{second:?}");
    let third = round(&schedule(vec![]), at("2026-11-20T10:00:00Z"))
        .await
        .unwrap();
    assert_eq!(
        (third.window.from(), third.new),
        (at("2026-11-20T09:35:00Z"), 0)
    );
    assert_eq!(third.updated, 0, "{third:?}");
    // Every alert in the table once; in the JSON lines file once as new, then once per
    // round that updated it, under the same id.
    let lines = std::fs::read_to_string(&jsonl).unwrap();
    let changes: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let count = |change: &str| changes.iter().filter(|c| c["change"] == change).count();
    assert_eq!(count("new"), first.new + second.new);
    assert_eq!(count("update"), first.updated + second.updated);
    let session = LakeSession::open(&lake(&location)).await.unwrap();
    let n = session.query("SELECT count(*) FROM alerts").await.unwrap();
    let n = arrow::util::display::array_value_to_string(n[0].column(0), 0).unwrap();
    assert_eq!(n, (first.new + second.new).to_string());
    assert_eq!(n, "25");

    // A webhook that never answers: the round says so, the alerts are in the table anyway.
    let (fresh_dir, fresh) = scenario_lake().await;
    let dead = AlertSink::parse("webhook:http://127.0.0.1:9/never", [])
        .unwrap()
        .with_retry_wait(Duration::from_millis(10));
    let mut s = schedule(vec![dead]);
    s.lake = lake(&fresh);
    let r = round(&s, at("2026-11-20T09:50:00Z")).await.unwrap();
    assert_eq!(r.failed_sinks, ["webhook http://127.0.0.1:9/never"]);
    let session = LakeSession::open(&lake(&fresh)).await.unwrap();
    let stored = session.query("SELECT count(*) FROM alerts").await.unwrap();
    assert_eq!(
        arrow::util::display::array_value_to_string(stored[0].column(0), 0).unwrap(),
        r.new.to_string()
    );
    drop(fresh_dir);
}

#[tokio::test]
async fn the_kafka_sink_sends_each_alert_keyed_by_its_id() {
    use kubetrail_detections::sinks::AlertSink;
    use kubetrail_ingest::kafka::embedded::EmbeddedKafka;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
    let kafka = EmbeddedKafka::start(1, &[("alerts", 1)]).unwrap();
    let (_dir, location) = scenario_lake().await;
    let window = hour();
    let session = LakeSession::open_window(&lake(&location), &window, HISTORY)
        .await
        .unwrap();
    let pack = RulePack::builtin();
    let miner: Vec<_> = pack
        .rules
        .iter()
        .filter(|r| r.id == "cryptominer" || r.id == "events-deleted")
        .cloned()
        .collect();
    let alerts: Vec<_> = judge(&session, &miner, &window)
        .await
        .into_iter()
        .flat_map(|o| o.alerts)
        .collect();
    assert_eq!(alerts.len(), 2);
    let sink =
        AlertSink::parse(&format!("kafka:{}/alerts", kafka.bootstrap_servers()), []).unwrap();
    let changes = AlertChanges {
        new: alerts,
        updated: Vec::new(),
    };
    sink.deliver(&changes).await.unwrap();
    let brokers = kafka.bootstrap_servers();
    let received = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", "alerts-test")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("alerts", 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&tpl).unwrap();
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while got.len() < 2 && std::time::Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
                let value: serde_json::Value =
                    serde_json::from_slice(m.payload().unwrap_or_default()).unwrap();
                got.push((key, value));
            }
        }
        got
    })
    .await
    .unwrap();
    assert_eq!(received.len(), 2);
    for (key, value) in received {
        assert_eq!(value["alert_id"], key.as_str());
        assert_eq!(value["change"], "new");
        assert!(value["first_seen"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-20T09:"));
    }
}

/// Every rule judged on the shapes the field exports, not just the one the pack's tests
/// are written in: each positive inline test of audit events is replayed as EKS writes it
/// (CloudWatch Logs), as GKE writes it (Cloud Audit Logs, as pipelines pass them on: no
/// `logName`, `insertId`, `@type` or `serviceName`), and abbreviated (no stage, level,
/// auditID or response status on allowed requests), and must raise the same alerts.
mod platforms {
    use kubetrail_detections::rule::RuleTest;
    use kubetrail_detections::{run_tests, RulePack};
    use kubetrail_schemas::SourceFormat;
    use serde_json::{json, Map, Value};

    /// Rules whose intent GKE's log does not carry: its entries name no impersonated user,
    /// and an exec's command is not in them.
    const NOT_ON_GKE: [&str; 2] = ["impersonation", "files-copied-from-pod"];

    /// Rewrites a native audit event into another source's shape.
    type Reshape = fn(&Value) -> Value;

    fn eks(event: &Value) -> Value {
        json!({"logGroup": "/aws/eks/prod-eu1/cluster", "logStream": "kube-apiserver-audit-1",
               "message": event.to_string()})
    }

    fn abbreviated(event: &Value) -> Value {
        let mut e = event.as_object().cloned().unwrap_or_default();
        for key in [
            "stage",
            "level",
            "auditID",
            "kind",
            "apiVersion",
            "annotations",
            "stageTimestamp",
        ] {
            e.remove(key);
        }
        let refused = e
            .get("responseStatus")
            .and_then(|s| s.get("code"))
            .and_then(Value::as_i64)
            .is_some_and(|c| c >= 400);
        if !refused {
            e.remove("responseStatus");
        }
        Value::Object(e)
    }

    /// GKE's form of a native event, after GKE's documented mapping: `methodName`
    /// `io.k8s.<reversed group>.<version>.<resource>[.<subresource>].<verb>`, `resourceName`
    /// `<group or core>/<version>/…`, the gRPC status, the request object.
    fn gke(event: &Value) -> Value {
        let s = |v: &Value, k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let r = event.get("objectRef").cloned().unwrap_or(json!({}));
        let group = match s(&r, "apiGroup") {
            g if g.is_empty() => "core".to_owned(),
            g => g,
        };
        let method_group = if group == "core" || !group.contains('.') {
            group.clone()
        } else {
            let parts: Vec<&str> = group
                .split('.')
                .filter(|p| *p != "k8s" && *p != "io")
                .collect();
            parts.into_iter().rev().collect::<Vec<_>>().join(".")
        };
        let (resource, sub, ns) = (s(&r, "resource"), s(&r, "subresource"), s(&r, "namespace"));
        let name = match s(&r, "name") {
            n if n.is_empty() => event
                .pointer("/requestObject/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            n => n,
        };
        let mut resource_name = format!("{group}/v1");
        if !ns.is_empty() && resource != "namespaces" {
            resource_name += &format!("/namespaces/{ns}");
        }
        resource_name += &format!("/{resource}");
        for part in [&name, &sub] {
            if !part.is_empty() {
                resource_name += &format!("/{part}");
            }
        }
        let dot_sub = if sub.is_empty() {
            String::new()
        } else {
            format!(".{sub}")
        };
        let method = format!(
            "io.k8s.{method_group}.v1.{resource}{dot_sub}.{}",
            s(event, "verb")
        );
        let code = event
            .pointer("/responseStatus/code")
            .and_then(Value::as_i64)
            .unwrap_or(200);
        let grpc = match code {
            100..=399 => 0,
            401 => 16,
            403 => 7,
            404 => 5,
            409 => 6,
            _ => 13,
        };
        let mut payload = Map::new();
        payload.insert(
            "authenticationInfo".into(),
            json!({"principalEmail": event.pointer("/user/username")}),
        );
        payload.insert(
            "authorizationInfo".into(),
            json!([{"granted": code != 403, "permission": method, "resource": resource_name}]),
        );
        payload.insert("methodName".into(), json!(method));
        payload.insert("requestMetadata".into(), json!({"callerIp": event.pointer("/sourceIPs/0"), "callerSuppliedUserAgent": event.get("userAgent")}));
        payload.insert("resourceName".into(), json!(resource_name));
        payload.insert(
            "status".into(),
            if grpc == 0 {
                json!({})
            } else {
                json!({"code": grpc, "message": "denied"})
            },
        );
        if let Some(o) = event.get("requestObject") {
            payload.insert("request".into(), o.clone());
        }
        if let Some(o) = event.get("responseObject") {
            payload.insert("response".into(), o.clone());
        }
        let time = event
            .get("requestReceivedTimestamp")
            .or(event.get("stageTimestamp"))
            .cloned();
        json!({"protoPayload": payload, "timestamp": time,
               "resource": {"type": "k8s_cluster", "labels": {"cluster_name": "prod-eu1"}}})
    }

    /// The test with its native audit events in another shape (other inputs as they are);
    /// `None` when it has none.
    fn reshaped(test: &RuleTest, shape: fn(&Value) -> Value, name: &str) -> Option<RuleTest> {
        let native = |events: &str| -> Option<Vec<String>> {
            let mut lines = Vec::new();
            for line in events.lines().filter(|l| !l.trim().is_empty()) {
                let event: Value = serde_json::from_str(line).ok()?;
                event.get("objectRef")?;
                event.get("verb")?;
                lines.push(shape(&event).to_string());
            }
            Some(lines)
        };
        let mut t = test.clone();
        let mut any = false;
        for (format, events) in &mut t.inputs {
            if !matches!(format, None | Some(SourceFormat::K8sAudit)) {
                continue;
            }
            if let Some(lines) = native(events) {
                *format = Some(SourceFormat::K8sAudit);
                *events = lines.join("\n");
                any = true;
            }
        }
        t.name = format!("{} ({name})", test.name);
        any.then_some(t)
    }

    #[tokio::test]
    async fn every_audit_rule_fires_on_eks_gke_and_abbreviated_events_of_its_intent() {
        let pack = RulePack::builtin();
        let mut failures = Vec::new();
        let mut audit_rules = 0;
        for rule in &pack.rules {
            if !rule.query.contains("k8s_audit") {
                continue;
            }
            audit_rules += 1;
            let positives: Vec<&RuleTest> =
                rule.tests.iter().filter(|t| t.expect_alerts > 0).collect();
            let shapes: [(&str, Reshape); 3] =
                [("EKS", eks), ("GKE", gke), ("abbreviated", abbreviated)];
            for (name, shape) in shapes {
                if name == "GKE" && NOT_ON_GKE.contains(&rule.id.as_str()) {
                    continue;
                }
                let tests: Vec<RuleTest> = positives
                    .iter()
                    .filter_map(|t| reshaped(t, shape, name))
                    .collect();
                if tests.is_empty() {
                    failures.push(format!(
                        "{}: no positive test of native audit events to replay as {name}",
                        rule.id
                    ));
                    continue;
                }
                let mut replay = rule.clone();
                replay.tests = tests;
                for result in run_tests(&replay, &super::IngestLoader).await {
                    if let Some(f) = result.failure {
                        failures.push(format!("{}: {}: {f}", rule.id, result.test));
                    }
                }
            }
        }
        assert!(audit_rules >= 30, "{audit_rules} rules read k8s_audit");
        assert!(
            failures.is_empty(),
            "{} failures:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}

/// An activity that goes on (an SRE's routine exec all day) is one alert, updated while it
/// goes on, not one per bucket; a pause longer than the rule's `suppress` ends it.
mod grouping {
    use super::*;
    use kubetrail_detections::sinks::AlertSink;

    /// `sre@example.com` execs into shop/web every 20 minutes from 08:00 to 15:40 (24
    /// times), and once more at 19:00 after a pause.
    async fn routine_lake() -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let location = dir.path().join("lake").to_string_lossy().into_owned();
        let mut times: Vec<String> = (0..24)
            .map(|i| format!("2026-11-20T{:02}:{:02}:00.000000Z", 8 + i / 3, (i % 3) * 20))
            .collect();
        times.push("2026-11-20T19:00:00.000000Z".into());
        let events: Vec<String> = times
            .iter()
            .enumerate()
            .map(|(i, t)| {
                serde_json::json!({
                    "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
                    "auditID": format!("00000000-0000-0000-0000-{i:012}"), "stage": "ResponseComplete",
                    "requestURI": "/api/v1/namespaces/shop/pods/web/exec?command=sh", "verb": "create",
                    "user": {"username": "sre@example.com", "groups": ["sre"]},
                    "sourceIPs": ["10.0.1.20"], "userAgent": "kubectl/v1.30.2 (linux/amd64)",
                    "objectRef": {"resource": "pods", "namespace": "shop", "name": "web", "subresource": "exec", "apiVersion": "v1"},
                    "responseStatus": {"code": 101},
                    "requestReceivedTimestamp": t, "stageTimestamp": t,
                })
                .to_string()
            })
            .collect();
        let file = dir.path().join("audit.jsonl");
        std::fs::write(&file, events.join("\n")).unwrap();
        ingest(&location, file).await;
        (dir, location)
    }

    fn window(from: &str, to: &str) -> Window {
        let at = |t: &str| parse_time(&format!("2026-11-20T{t}:00Z")).unwrap();
        Window::new(at(from), at(to)).unwrap()
    }

    async fn run(
        location: &str,
        window: &Window,
        grouping: Grouping,
    ) -> (LakeSession, RuleOutcome) {
        let rule = RulePack::builtin().get("exec-into-pod").unwrap().clone();
        let session = LakeSession::open_window(&lake(location), window, HISTORY)
            .await
            .unwrap();
        let mut outcomes =
            run_rules(&session, &[rule], window, &Watchlists::default(), grouping).await;
        let outcome = outcomes.pop().unwrap();
        assert!(outcome.error.is_none(), "{outcome:?}");
        (session, outcome)
    }

    #[tokio::test]
    async fn a_day_of_routine_exec_is_one_alert_updated_as_it_goes_on() {
        let (dir, location) = routine_lake().await;
        let lake = Lake::open(&location).unwrap();
        let day = window("08:00", "20:00");

        // The bucket behaviour, kept as an option: one alert per hour with an exec.
        let (_, buckets) = run(&location, &day, Grouping::Bucket).await;
        assert_eq!(buckets.alerts.len(), 9, "{:?}", buckets.alerts);
        assert!(buckets.updates.is_empty());
        // One per fact: the day's routine, and the exec after the pause.
        let (_, facts) = run(&location, &day, Grouping::Update).await;
        let counts: Vec<i64> = facts.alerts.iter().map(|a| a.event_count).collect();
        assert_eq!(counts, [24, 1]);

        // A scheduler's rounds: the morning raises the alert...
        let (session, morning) = run(&location, &window("08:00", "12:00"), Grouping::Update).await;
        assert_eq!(morning.alerts.len(), 1);
        assert_eq!(morning.alerts[0].event_count, 12);
        let id = morning.alerts[0].alert_id.clone();
        let written = write_alerts(&lake, &session, morning.alerts, morning.updates)
            .await
            .unwrap();
        assert_eq!(written.new.len(), 1);

        // ...the afternoon, overlapping it by an hour, updates it: the overlap's matches
        // are already counted, the rest extend it.
        let (session, afternoon) =
            run(&location, &window("11:00", "16:00"), Grouping::Update).await;
        assert!(afternoon.alerts.is_empty(), "{:?}", afternoon.alerts);
        assert_eq!(afternoon.updates.len(), 1);
        let updated = &afternoon.updates[0];
        assert_eq!(updated.alert_id, id);
        assert_eq!(updated.event_count, 24);
        assert_eq!(
            updated.first_seen,
            parse_time("2026-11-20T08:00:00Z").unwrap()
        );
        assert_eq!(
            updated.last_seen,
            parse_time("2026-11-20T15:40:00Z").unwrap()
        );
        assert!(
            updated.summary.ends_with("(24 events)"),
            "{}",
            updated.summary
        );
        // Evidence stays bounded, keeping how it started and how it went on.
        assert_eq!(updated.evidence.len(), 20);
        assert!(
            updated.evidence[0].ends_with("#1"),
            "{:?}",
            updated.evidence
        );
        assert!(
            updated.evidence[19].ends_with("#24"),
            "{:?}",
            updated.evidence
        );

        let jsonl = dir.path().join("alerts.jsonl");
        let sink = AlertSink::parse(&format!("jsonl:{}", jsonl.display()), []).unwrap();
        let changes = write_alerts(&lake, &session, afternoon.alerts, afternoon.updates)
            .await
            .unwrap();
        sink.deliver(&changes).await.unwrap();
        let sent: serde_json::Value =
            serde_json::from_str(std::fs::read_to_string(&jsonl).unwrap().trim()).unwrap();
        assert_eq!(
            (
                sent["change"].as_str(),
                sent["alert_id"].as_str(),
                sent["event_count"].as_i64()
            ),
            (Some("update"), Some(id.as_str()), Some(24))
        );

        // The same round again changes nothing; the evening's exec after the pause is a
        // fact of its own.
        let (_, again) = run(&location, &window("11:00", "16:00"), Grouping::Update).await;
        assert!(
            again.alerts.is_empty() && again.updates.is_empty(),
            "{again:?}"
        );
        let (session, evening) = run(&location, &window("15:00", "20:00"), Grouping::Update).await;
        assert_eq!(evening.alerts.len(), 1);
        assert!(evening.updates.is_empty());
        assert_ne!(evening.alerts[0].alert_id, id);
        write_alerts(&lake, &session, evening.alerts, evening.updates)
            .await
            .unwrap();

        // The table: two alerts, one row each, the first with the day's count.
        let session = LakeSession::open(&lake).await.unwrap();
        let stored = session
            .query("SELECT alert_id, event_count FROM alerts ORDER BY first_seen")
            .await
            .unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&stored)
            .unwrap()
            .to_string();
        assert_eq!(text.matches("| kt-").count(), 2, "{text}");
        assert!(text.contains(&format!("| {id} | 24 ")), "{text}");
    }

    #[test]
    fn a_grouping_is_named_or_refused() {
        assert_eq!("update".parse::<Grouping>(), Ok(Grouping::Update));
        assert_eq!("bucket".parse::<Grouping>(), Ok(Grouping::Bucket));
        let e = "hourly".parse::<Grouping>().unwrap_err();
        assert!(e.contains("'hourly'") && !e.contains('\n'), "{e}");
    }
}

/// Sigma rules in the SigmaHQ style, through `import-sigma`, the rule loader, the real
/// decoders and the engine.
mod sigma {
    use std::path::{Path, PathBuf};

    use kubetrail_detections::rule::RuleTest;
    use kubetrail_detections::sigma::{import, AREA};
    use kubetrail_detections::{run_tests, Rule, Watchlists};
    use serde_json::{json, Value};

    fn fixtures(dir: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/sigma")
            .join(dir)
    }

    /// A native audit event: a person's allowed request, changed at the given JSON pointers.
    fn event(changes: &[(&str, Value)]) -> Value {
        let mut e = json!({
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse",
            "auditID": "00000000-0000-4000-8000-000000000000", "stage": "ResponseComplete",
            "requestURI": "/api/v1/namespaces/shop/pods/api-1", "verb": "get",
            "user": {"username": "alice@example.com", "groups": ["dev", "system:authenticated"]},
            "sourceIPs": ["203.0.113.7"], "userAgent": "kubectl/v1.30.1 (linux/amd64)",
            "objectRef": {"resource": "pods", "namespace": "shop", "name": "api-1", "apiVersion": "v1"},
            "responseStatus": {"metadata": {}, "code": 200},
            "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
            "requestReceivedTimestamp": "2026-11-20T09:30:00.000000Z",
            "stageTimestamp": "2026-11-20T09:30:00.100000Z"
        });
        for (pointer, value) in changes {
            set(&mut e, pointer, value.clone());
        }
        e
    }

    fn set(target: &mut Value, pointer: &str, value: Value) {
        let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
        let key = key.replace("~1", "/");
        let mut at = target;
        for step in parent.split('/').filter(|s| !s.is_empty()) {
            at = at
                .as_object_mut()
                .expect("an object on the way")
                .entry(step)
                .or_insert_with(|| json!({}));
        }
        match value {
            Value::Null => {
                at.as_object_mut().expect("an object").remove(&key);
            }
            v => {
                at.as_object_mut().expect("an object").insert(key, v);
            }
        }
    }

    /// (test name, events, alerts it must make): every imported rule is judged on events
    /// that must and must not match it.
    fn cases(id: &str) -> Vec<(&'static str, Vec<Value>, usize)> {
        let exec = || {
            event(&[
                ("/verb", json!("create")),
                ("/objectRef/subresource", json!("exec")),
                (
                    "/requestURI",
                    json!("/api/v1/namespaces/shop/pods/api-1/exec?command=bin%2Fsh&stdin=true"),
                ),
            ])
        };
        let pod = |spec: Value| {
            event(&[
                ("/verb", json!("create")),
                ("/requestURI", json!("/api/v1/namespaces/shop/pods")),
                (
                    "/requestObject",
                    json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "api-1"}, "spec": spec}),
                ),
            ])
        };
        let plain = json!({"containers": [{"name": "app", "image": "nginx:1.27"}]});
        match id {
            "command-run-in-a-pod-container" => vec![
                ("kubectl exec", vec![exec()], 1),
                ("a read of the pod", vec![event(&[])], 0),
                (
                    "an exec in the verb's other case",
                    vec![event(&[
                        ("/verb", json!("CREATE")),
                        ("/objectRef/subresource", json!("Exec")),
                    ])],
                    1,
                ),
            ],
            "secrets-listed-by-a-person" => vec![
                (
                    "a person lists secrets",
                    vec![event(&[
                        ("/verb", json!("list")),
                        ("/objectRef/resource", json!("secrets")),
                    ])],
                    1,
                ),
                (
                    "a controller watches them",
                    vec![event(&[
                        ("/verb", json!("watch")),
                        ("/objectRef/resource", json!("secrets")),
                        ("/user/username", json!("system:kube-controller-manager")),
                    ])],
                    0,
                ),
                (
                    "a person gets one",
                    vec![event(&[("/objectRef/resource", json!("secrets"))])],
                    0,
                ),
            ],
            "admission-webhook-configuration-changed" => vec![
                (
                    "a mutating webhook patched",
                    vec![event(&[
                        ("/verb", json!("patch")),
                        ("/objectRef/apiGroup", json!("admissionregistration.k8s.io")),
                        (
                            "/objectRef/resource",
                            json!("mutatingwebhookconfigurations"),
                        ),
                    ])],
                    1,
                ),
                (
                    "read, not changed",
                    vec![event(&[
                        ("/objectRef/apiGroup", json!("admissionregistration.k8s.io")),
                        (
                            "/objectRef/resource",
                            json!("validatingwebhookconfigurations"),
                        ),
                    ])],
                    0,
                ),
                (
                    "another group",
                    vec![event(&[
                        ("/verb", json!("delete")),
                        ("/objectRef/apiGroup", json!("apps")),
                        ("/objectRef/resource", json!("deployments")),
                    ])],
                    0,
                ),
            ],
            "attack-tool-or-shell-reached-the-api" => vec![
                ("a shell by exec URI, allowed", vec![exec()], 1),
                (
                    "trufflehog, allowed",
                    vec![event(&[("/userAgent", json!("TruffleHog/3.63"))])],
                    1,
                ),
                (
                    "curl as the command",
                    vec![event(&[(
                        "/requestURI",
                        json!("/api/v1/namespaces/shop/pods/api-1/exec?command=curl"),
                    )])],
                    1,
                ),
                (
                    "trufflehog, forbidden",
                    vec![event(&[
                        ("/userAgent", json!("trufflehog/3.63")),
                        (
                            "/annotations/authorization.k8s.io~1decision",
                            json!("forbid"),
                        ),
                    ])],
                    0,
                ),
                ("kubectl", vec![event(&[])], 0),
            ],
            "secret-read-from-outside-the-cluster-network" => vec![
                (
                    "from a public address",
                    vec![event(&[("/objectRef/resource", json!("secrets"))])],
                    1,
                ),
                (
                    "from the pod network",
                    vec![event(&[
                        ("/objectRef/resource", json!("secrets")),
                        ("/sourceIPs", json!(["10.4.2.9"])),
                    ])],
                    0,
                ),
                (
                    "from an IPv6 ULA",
                    vec![event(&[
                        ("/objectRef/resource", json!("secrets")),
                        ("/sourceIPs", json!(["fd12::9"])),
                    ])],
                    0,
                ),
            ],
            "pod-created-with-access-to-its-node" => vec![
                (
                    "a hostPath volume",
                    vec![pod(json!({"containers": [{"name": "a", "image": "x"}],
                    "volumes": [{"name": "h", "hostPath": {"path": "/"}}]}))],
                    1,
                ),
                (
                    "NET_ADMIN added",
                    vec![pod(json!({"containers": [{"name": "a", "image": "x",
                    "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}]}))],
                    1,
                ),
                (
                    "the host network",
                    vec![pod(json!({"hostNetwork": true,
                    "containers": [{"name": "a", "image": "x"}]}))],
                    1,
                ),
                ("a plain pod", vec![pod(plain.clone())], 0),
                (
                    "CHOWN added",
                    vec![pod(json!({"containers": [{"name": "a", "image": "x",
                    "securityContext": {"capabilities": {"add": ["CHOWN"]}}}]}))],
                    0,
                ),
            ],
            "cluster-admin-group-deletes-or-patches" => vec![
                (
                    "a master deletes",
                    vec![event(&[
                        ("/verb", json!("delete")),
                        (
                            "/user/groups",
                            json!(["system:masters", "system:authenticated"]),
                        ),
                    ])],
                    1,
                ),
                (
                    "a master reads",
                    vec![event(&[("/user/groups", json!(["system:masters"]))])],
                    0,
                ),
                (
                    "a group of another case (|cased)",
                    vec![event(&[
                        ("/verb", json!("patch")),
                        ("/user/groups", json!(["System:Masters"])),
                    ])],
                    0,
                ),
                (
                    "a developer patches",
                    vec![event(&[("/verb", json!("patch"))])],
                    0,
                ),
            ],
            "two-signs-of-a-probe-anonymous-refused-secrets" => vec![
                (
                    "anonymous and refused",
                    vec![event(&[
                        ("/user/username", json!("system:anonymous")),
                        ("/responseStatus/code", json!(401)),
                    ])],
                    1,
                ),
                (
                    "refused, at secrets",
                    vec![event(&[
                        ("/objectRef/resource", json!("secrets")),
                        ("/responseStatus/code", json!(403)),
                    ])],
                    1,
                ),
                (
                    "only refused",
                    vec![event(&[("/responseStatus/code", json!(403))])],
                    0,
                ),
            ],
            "request-made-impersonating-another-user" => vec![
                (
                    "alice as bob",
                    vec![event(&[(
                        "/impersonatedUser",
                        json!({"username": "bob@example.com"}),
                    )])],
                    1,
                ),
                (
                    "alice as a service account",
                    vec![event(&[(
                        "/impersonatedUser",
                        json!({"username": "system:serviceaccount:ci:deployer"}),
                    )])],
                    0,
                ),
                ("alice as herself", vec![event(&[])], 0),
            ],
            "pod-named-like-a-system-pod" => vec![
                (
                    "kube-proxy-ab12c by a person",
                    vec![event(&[
                        ("/verb", json!("create")),
                        ("/objectRef/namespace", json!("kube-system")),
                        ("/objectRef/name", json!("kube-proxy-ab12c")),
                    ])],
                    1,
                ),
                (
                    "by the DaemonSet controller",
                    vec![event(&[
                        ("/verb", json!("create")),
                        ("/objectRef/namespace", json!("kube-system")),
                        ("/objectRef/name", json!("kube-proxy-ab12c")),
                        (
                            "/user/username",
                            json!("system:serviceaccount:kube-system:daemon-set-controller"),
                        ),
                    ])],
                    0,
                ),
                (
                    "a four-character suffix",
                    vec![event(&[
                        ("/verb", json!("create")),
                        ("/objectRef/namespace", json!("kube-system")),
                        ("/objectRef/name", json!("kube-proxy-ab12")),
                    ])],
                    0,
                ),
            ],
            other => panic!("no cases for {other}"),
        }
    }

    #[tokio::test]
    async fn sigma_rules_translate_and_judge_events_as_sigma_means() {
        let import = import(&[fixtures("rules")]);
        assert!(import.problems.is_empty(), "{:?}", import.problems);
        assert_eq!(import.rules.len(), 10);
        let mut failures = Vec::new();
        for translated in &import.rules {
            let path = PathBuf::from(format!("{}/{}.yaml", AREA, translated.id));
            let mut rule = Rule::parse(&path, AREA, &translated.yaml)
                .unwrap_or_else(|p| panic!("{p}\n{}", translated.yaml));
            assert!(rule.imported_from.is_some() && rule.tests.is_empty());
            rule.tests = cases(&rule.id)
                .into_iter()
                .map(|(name, events, alerts)| RuleTest {
                    name: name.into(),
                    inputs: vec![(
                        None,
                        events
                            .iter()
                            .map(Value::to_string)
                            .collect::<Vec<_>>()
                            .join("\n"),
                    )],
                    expect_alerts: alerts,
                    expect_entities: None,
                    window_from: None,
                    watchlists: Watchlists::default(),
                })
                .collect();
            for result in run_tests(&rule, &super::IngestLoader).await {
                if let Some(f) = result.failure {
                    failures.push(format!(
                        "{} / {}: {f}\n{}",
                        rule.id, result.test, rule.query
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    }

    #[test]
    fn rule_files_keep_what_the_sigma_rule_says() {
        let import = import(&[fixtures("rules/exec_into_pod.yml")]);
        assert_eq!(import.rules.len(), 1, "{:?}", import.problems);
        let yaml = &import.rules[0].yaml;
        let golden = r#"id: command-run-in-a-pod-container
title: "Command Run In A Pod Container"
description: "Detects a command run in a pod's container through the API server (kubectl exec)."
severity: medium
mitre: ["T1609"]
tags: ["attack.execution"]
false_positives: ["Debugging by on-call engineers."]
references: ["https://microsoft.github.io/Threat-Matrix-for-Kubernetes/techniques/Exec%20into%20container/"]
"#;
        assert!(yaml.starts_with(golden), "{yaml}");
        assert!(yaml.contains(
            "imported_from: {format: sigma, id: \"1f0e2a4c-5b6d-4e7f-8a9b-0c1d2e3f4a5b\", file: "
        ));
        let query = yaml.split("query: |\n").nth(1).unwrap();
        assert_eq!(
            query,
            "  SELECT event_time, user_name, namespace, resource, _source, _offset
  FROM k8s_audit
  WHERE /* selection */ coalesce((lower(verb) = 'create' AND lower(resource) = 'pods' AND lower(subresource) = 'exec'), false)
"
        );
    }

    #[test]
    fn conditions_become_sql_as_written() {
        let import = import(&[
            fixtures("rules/attack_tool_allowed.yml"),
            fixtures("rules/anonymous_refused.yml"),
        ]);
        let query = |id: &str| {
            let yaml = &import.rules.iter().find(|r| r.id == id).unwrap().yaml;
            yaml.split("WHERE ").nth(1).unwrap().to_owned()
        };
        assert_eq!(
            query("attack-tool-or-shell-reached-the-api"),
            "((/* tool_agent */ coalesce((strpos(lower(user_agent), 'trufflehog') > 0 OR strpos(lower(user_agent), 'access_matrix') > 0), false)
     OR /* tool_curl */ coalesce(ends_with(lower(request_uri), 'command=curl'), false)
     OR /* tool_shell */ coalesce(regexp_like(request_uri, 'command=(%2F)?bin%2F(ba|z)?sh'), false))
    AND /* allowed */ coalesce(lower(decision) = 'allow', false))
"
        );
        assert_eq!(
            query("two-signs-of-a-probe-anonymous-refused-secrets"),
            "(CAST(/* sign_anonymous */ coalesce(lower(user_name) = 'system:anonymous', false) AS INT) + CAST(/* sign_refused */ coalesce((response_code = 401 OR response_code = 403), false) AS INT) + CAST(/* sign_secrets */ coalesce(lower(resource) = 'secrets', false) AS INT)) >= 2
"
        );
    }

    #[test]
    fn what_cannot_be_translated_is_named_with_its_reason() {
        let import = import(&[fixtures("refused")]);
        assert!(import.rules.is_empty(), "{:?}", import.rules);
        let lines: Vec<String> = import.problems.iter().map(|p| p.to_string()).collect();
        let expect = [
            (
                "allow_as_status_code.yml",
                "responseStatus.code holds numbers; 'ALLOW' is not one",
            ),
            (
                "base64_payload.yml",
                "the modifier |base64offset is not supported",
            ),
            ("compiler_in_container.yml", "unknown field 'file_path'"),
            ("correlation.yml", "a correlation rule"),
            (
                "count_aggregation.yml",
                "timeframe 5m: aggregations are not translated",
            ),
            ("keywords.yml", "keyword search"),
            ("not_yaml.yml", ""),
            ("windows_process.yml", "only Kubernetes audit"),
        ];
        for (file, reason) in expect {
            let found: Vec<&String> = lines.iter().filter(|l| l.contains(file)).collect();
            assert_eq!(found.len(), 1, "{file}: {lines:#?}");
            assert!(found[0].contains(reason), "{file}: {}", found[0]);
            assert!(!found[0].contains('\n'), "{}", found[0]);
        }
        assert_eq!(lines.len(), expect.len(), "{lines:#?}");
    }
}
