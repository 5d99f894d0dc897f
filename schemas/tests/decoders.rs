//! Decoders against real events (`../shared/fixtures`), the generator's samples
//! (`samples/data`), and bad input. Records are split here with serde_json's own stream
//! reader, independently of the ingest crate's framing.

use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, RecordBatch};
use kubetrail_schemas::rows::{EventRow, RowBuffer};
use kubetrail_schemas::{
    AuditEvent, DecodeOptions, Decoded, Decoder, FlowRecord, Provenance, Redactor, RuntimeEvent,
    SourceFormat,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures")
}

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/data")
}

/// JSON values of a file, each re-serialised compactly as one record.
fn json_records(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    serde_json::Deserializer::from_slice(&bytes)
        .into_iter::<serde_json::Value>()
        .map(|v| serde_json::to_vec(&v.unwrap()).unwrap())
        .collect()
}

fn line_records(path: &Path) -> Vec<Vec<u8>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.as_bytes().to_vec())
        .collect()
}

/// Decoded rows and rejection reasons of a list of records.
#[derive(Default)]
struct Outcome {
    /// Owned, to outlive the records they borrowed from.
    audit: Vec<AuditEvent<'static>>,
    flows: Vec<FlowRecord>,
    runtime: Vec<RuntimeEvent>,
    rejected: Vec<String>,
}

fn decode_all(format: SourceFormat, records: &[Vec<u8>]) -> Outcome {
    decode_with(format, records, DecodeOptions::default())
}

fn decode_with(format: SourceFormat, records: &[Vec<u8>], options: DecodeOptions) -> Outcome {
    let mut decoder = Decoder::new(format, options);
    let mut out = Outcome::default();
    for r in records {
        match decoder.decode(r) {
            Decoded::Audit(o) => {
                out.rejected
                    .extend(o.rejected.iter().map(|x| x.error.to_string()));
                out.audit
                    .extend(o.rows.into_iter().map(AuditEvent::into_owned));
            }
            Decoded::Flows(o) => {
                out.rejected
                    .extend(o.rejected.iter().map(|x| x.error.to_string()));
                out.flows.extend(o.rows);
            }
            Decoded::Runtime(o) => {
                out.rejected
                    .extend(o.rejected.iter().map(|x| x.error.to_string()));
                out.runtime.extend(o.rows);
            }
        }
    }
    out
}

/// The rows through the real Arrow path: fails if a row does not fit the table schema.
fn batch<R: EventRow>(rows: Vec<R>) -> RecordBatch {
    let mut buffer = RowBuffer::<R::Columns>::default();
    let provenance = Provenance {
        source: "file:test".into(),
        offset: 1,
        ingested_at: 0,
    };
    buffer.extend(&rows, &provenance, 1);
    buffer.take_batch().unwrap().unwrap()
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

mod fixtures_decode {
    use super::*;

    #[test]
    fn every_falco_audit_fixture_decodes_except_the_negative_one() {
        let mut events = 0;
        for path in files_in(&fixtures().join("k8s-audit/falco")) {
            let records = json_records(&path);
            let out = decode_all(SourceFormat::K8sAudit, &records);
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name == "fal_01_003.json" {
                // `{"kind": 0}`: a negative fixture, not an event.
                assert_eq!(out.rejected.len(), 1, "{name}");
                assert!(
                    out.rejected[0].contains("expected a string"),
                    "{:?}",
                    out.rejected
                );
                continue;
            }
            assert!(out.rejected.is_empty(), "{name}: {:?}", out.rejected);
            assert_eq!(out.audit.len(), records.len(), "{name}");
            for row in &out.audit {
                assert!(row.verb.is_some() && row.user_name.is_some(), "{name}");
                assert!(row.event_time > 1_500_000_000_000_000, "{name}");
            }
            events += out.audit.len();
            batch(out.audit);
        }
        // 45 single events and one file of 6.
        assert_eq!(events, 51);
    }

    #[test]
    fn audit_fields_from_real_events() {
        let dir = fixtures().join("k8s-audit/falco");
        let exec = decode_all(
            SourceFormat::K8sAudit,
            &json_records(&dir.join("exec_pod.json")),
        )
        .audit
        .remove(0);
        assert_eq!(exec.subresource.as_deref(), Some("exec"));
        assert_eq!(exec.response_code, Some(101));
        assert_eq!(exec.stage.as_deref(), Some("ResponseStarted"));
        assert_eq!(
            exec.pod.as_deref(),
            Some("nginx-deployment-7998647bdf-phvq7")
        );
        assert_eq!(exec.src_ip.as_deref(), Some("192.168.99.1"));
        assert_eq!(exec.decision.as_deref(), Some("allow"));
        assert_eq!(exec.user_groups, ["system:masters", "system:authenticated"]);
        assert_eq!(exec.audit_format, "k8s");

        // Created objects have no name in objectRef: it comes from the response object.
        let pod = decode_all(
            SourceFormat::K8sAudit,
            &json_records(&dir.join("create_nginx_pod_privileged.json")),
        )
        .audit
        .remove(0);
        assert_eq!(
            pod.name.as_deref(),
            Some("nginx-deployment-5cdcc99dbf-rgw6z")
        );
        assert_eq!(pod.resource.as_deref(), Some("pods"));
        assert!(pod
            .request_object
            .as_deref()
            .unwrap()
            .contains("\"privileged\":true"));
        assert_eq!(pod.src_ip.as_deref(), Some("::1"));
        // v1beta1 with requestReceivedTimestamp present.
        assert_eq!(
            pod.event_time,
            kubetrail_schemas::time::parse_timestamp("2018-10-25T14:09:12.000000Z")
                .unwrap()
                .max(pod.event_time)
        );

        let ns = decode_all(
            SourceFormat::K8sAudit,
            &json_records(&dir.join("anonymous_creates_namespace_foo.json")),
        )
        .audit
        .remove(0);
        assert_eq!(ns.user_name.as_deref(), Some("system:anonymous"));
        assert_eq!(ns.name.as_deref(), Some("foo"));
    }

    #[test]
    fn every_tetragon_fixture_decodes() {
        let mut events = 0;
        for path in files_in(&fixtures().join("runtime/tetragon")) {
            let records = json_records(&path);
            let out = decode_all(SourceFormat::Tetragon, &records);
            assert!(
                out.rejected.is_empty(),
                "{}: {:?}",
                path.display(),
                out.rejected
            );
            assert_eq!(out.runtime.len(), records.len());
            events += out.runtime.len();
            batch(out.runtime);
        }
        assert_eq!(events, 27);
        let dir = fixtures().join("runtime/tetragon");
        let kprobe = decode_all(
            SourceFormat::Tetragon,
            &json_records(&dir.join("cat_process_kprobe.json")),
        )
        .runtime
        .remove(0);
        assert_eq!(kprobe.event_type, "process_kprobe");
        assert_eq!(kprobe.function_name.as_deref(), Some("__x64_sys_read"));
        assert_eq!(
            kprobe.file_path.as_deref(),
            Some("/usr/share/elasticsearch/config/elasticsearch.keystore")
        );
        assert_eq!(kprobe.parent_binary.as_deref(), Some("/usr/bin/sh"));
        assert_eq!(kprobe.namespace.as_deref(), Some("tenant-jobs"));
        assert!(kprobe.kprobe_args.as_deref().unwrap().contains("size_arg"));
        let connect = decode_all(
            SourceFormat::Tetragon,
            &json_records(&dir.join("nc_process_connect.json")),
        )
        .runtime
        .remove(0);
        assert_eq!(
            (connect.dst_ip.as_deref(), connect.dst_port),
            (Some("64.225.45.153"), Some(443))
        );
        assert_eq!(connect.src_ip.as_deref(), Some("10.88.0.6"));
        assert_eq!(
            connect.container_id.as_deref(),
            Some("e6af4dff4ea3b8d50313c59fbaa442e377da35671e79f43b8dc53c5efcc9b659")
        );
        let labelled = decode_all(
            SourceFormat::Tetragon,
            &json_records(&dir.join("events.json")),
        )
        .runtime
        .remove(0);
        assert!(!labelled.pod_labels.is_empty());
        let host = decode_all(
            SourceFormat::Tetragon,
            &json_records(&dir.join("merlin-agent-7z.json")),
        )
        .runtime
        .remove(0);
        assert_eq!(host.pod, None);
    }

    #[test]
    fn every_hubble_fixture_decodes() {
        let mut flows = 0;
        for path in files_in(&fixtures().join("network/hubble")) {
            let records = line_records(&path);
            let out = decode_all(SourceFormat::Hubble, &records);
            assert!(
                out.rejected.is_empty(),
                "{}: {:?}",
                path.display(),
                &out.rejected[..1.min(out.rejected.len())]
            );
            assert_eq!(out.flows.len(), records.len());
            flows += out.flows.len();
            batch(out.flows);
        }
        assert_eq!(flows, 10 + 330 + 348 + 18 + 400 + 400 + 400 + 5 + 5);
        let dns = decode_all(
            SourceFormat::Hubble,
            &line_records(&fixtures().join("network/hubble/basic-sample-5-dns-flows.json")),
        )
        .flows
        .remove(0);
        assert_eq!(dns.l7_protocol.as_deref(), Some("dns"));
        assert!(dns.dns_query.as_deref().unwrap().starts_with("istiod"));
        assert_eq!((dns.src_port, dns.dst_port), (Some(59102), Some(53)));
        assert_eq!(dns.src_namespace.as_deref(), Some("kube-system"));
        assert_eq!(dns.action.as_deref(), Some("allow"));
        assert_eq!(dns.direction.as_deref(), Some("egress"));
        let tcp = decode_all(
            SourceFormat::Hubble,
            &line_records(&fixtures().join("network/hubble/basic-sample-10-flows.json")),
        )
        .flows
        .remove(0);
        assert_eq!(tcp.tcp_flags.as_deref(), Some("FIN,ACK"));
        assert_eq!(tcp.is_reply, Some(true));
        assert_eq!(tcp.dst_labels, ["reserved:host"]);
    }

    #[test]
    fn falco_fixtures_decode_as_json_and_as_text() {
        let dir = fixtures().join("runtime/falco");
        let json = decode_all(
            SourceFormat::Falco,
            &line_records(&dir.join("single_rule_with_cat_write.json")),
        );
        assert!(json.rejected.is_empty(), "{:?}", json.rejected);
        assert_eq!(json.runtime.len(), 8);
        let first = &json.runtime[0];
        assert_eq!(first.rule.as_deref(), Some("open_from_cat"));
        assert_eq!(first.priority.as_deref(), Some("Warning"));
        assert_eq!(first.tags, ["filesystem", "process", "testing"]);
        assert!(first
            .output_fields
            .as_deref()
            .unwrap()
            .contains("proc.cmdline"));
        let text = decode_all(
            SourceFormat::Falco,
            &line_records(&dir.join("single_rule_with_cat_write.txt")),
        );
        assert!(text.rejected.is_empty(), "{:?}", text.rejected);
        assert_eq!(text.runtime.len(), 8);
        assert_eq!(text.runtime[0].event_time, first.event_time);
        batch(json.runtime);
    }
}

mod samples_decode {
    use super::*;

    /// Every sample file decodes into exactly the events its manifest says it holds.
    #[test]
    fn every_sample_file_matches_its_manifest() {
        let manifest = std::fs::read_to_string(samples().join("MANIFEST.tsv")).unwrap();
        for line in manifest.lines().skip(1) {
            let cols: Vec<&str> = line.split('\t').collect();
            let (file, format, events): (&str, SourceFormat, usize) =
                (cols[0], cols[1].parse().unwrap(), cols[3].parse().unwrap());
            let path = samples().join(file);
            let records = if format == SourceFormat::AwsVpcFlow {
                line_records(&path)
            } else {
                json_records(&path)
            };
            let out = decode_all(format, &records);
            assert!(out.rejected.is_empty(), "{file}: {:?}", out.rejected);
            let rows = out.audit.len() + out.flows.len() + out.runtime.len();
            assert_eq!(rows, events, "{file}");
            // Recognised from content alone.
            assert_eq!(SourceFormat::sniff(&records[0]), Some(format), "{file}");
        }
    }

    #[test]
    fn cloud_wrappers_map_onto_the_same_columns() {
        let eks = decode_all(
            SourceFormat::K8sAudit,
            &json_records(&samples().join("eks-cloudwatch.json")),
        )
        .audit;
        assert!(eks
            .iter()
            .all(|e| e.cluster.as_deref() == Some("prod-eu1") && e.audit_format == "eks"));
        let aks = decode_all(
            SourceFormat::K8sAudit,
            &json_records(&samples().join("aks-diagnostics.json")),
        )
        .audit;
        assert!(aks
            .iter()
            .all(|e| e.cluster.as_deref() == Some("PROD-EU1") && e.audit_format == "aks"));
        let gke = decode_all(
            SourceFormat::K8sAudit,
            &json_records(&samples().join("gke-audit.jsonl")),
        )
        .audit;
        let native = decode_all(
            SourceFormat::K8sAudit,
            &line_records(&samples().join("k8s-audit.jsonl")),
        )
        .audit;
        for g in &gke {
            let n = native
                .iter()
                .find(|n| n.audit_id == g.audit_id)
                .expect("same event natively");
            assert_eq!(
                (&g.verb, &g.resource, &g.subresource, &g.namespace),
                (&n.verb, &n.resource, &n.subresource, &n.namespace)
            );
            assert_eq!(
                (&g.user_name, &g.src_ip, &g.user_agent),
                (&n.user_name, &n.src_ip, &n.user_agent)
            );
            assert_eq!(g.event_time, n.event_time);
            assert_eq!(g.audit_format, "gke");
            assert_eq!(g.cluster.as_deref(), Some("prod-eu1"));
            if n.response_code == Some(200) {
                assert_eq!(g.response_code, Some(200));
            }
        }
        let vpc = decode_all(
            SourceFormat::AwsVpcFlow,
            &line_records(&samples().join("aws-vpc-flow.log")),
        )
        .flows;
        let nodata: Vec<_> = vpc
            .iter()
            .filter(|f| f.log_status.as_deref() != Some("OK"))
            .collect();
        assert_eq!(nodata.len(), 2);
        assert!(nodata
            .iter()
            .all(|f| f.src_ip.is_none() && f.bytes.is_none()));
        let ok = vpc
            .iter()
            .find(|f| f.log_status.as_deref() == Some("OK"))
            .unwrap();
        assert_eq!(ok.action.as_deref(), Some("allow"));
        assert_eq!(ok.region.as_deref(), Some("eu-west-1"));
        assert!(ok.extra.as_deref().unwrap().contains("pkt-srcaddr"));
        let gcp = decode_all(
            SourceFormat::GcpVpcFlow,
            &json_records(&samples().join("gcp-vpc-flow.jsonl")),
        )
        .flows;
        assert!(gcp.iter().all(|f| f.bytes.is_some() && f.src_pod.is_some()));
        let calico = decode_all(
            SourceFormat::Calico,
            &json_records(&samples().join("calico-flow.jsonl")),
        )
        .flows;
        assert!(calico
            .iter()
            .all(|f| f.action.as_deref() == Some("allow") && !f.src_labels.is_empty()));
    }
}

mod bad_input {
    use super::*;

    fn reasons(format: SourceFormat, record: &[u8]) -> Vec<String> {
        decode_all(format, &[record.to_vec()]).rejected
    }

    #[test]
    fn malformed_records_are_rejected_with_a_reason() {
        let event = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"a","verb":"get","requestReceivedTimestamp":"2024-01-01T00:00:00Z"#;
        assert!(reasons(SourceFormat::K8sAudit, event.as_bytes())[0].starts_with("invalid JSON"));
        let wrong_type = r#"{"kind":"Event","auditID":"a","verb":"get","requestReceivedTimestamp":"2024-01-01T00:00:00Z","responseStatus":{"code":"ok"}}"#;
        assert!(reasons(SourceFormat::K8sAudit, wrong_type.as_bytes())[0]
            .starts_with("unexpected value: invalid type"));
        let no_time = r#"{"kind":"Event","auditID":"a","verb":"get"}"#;
        assert!(reasons(SourceFormat::K8sAudit, no_time.as_bytes())[0]
            .contains("missing requestReceivedTimestamp"));
        let bad_time =
            r#"{"kind":"Event","auditID":"a","verb":"get","requestReceivedTimestamp":"yesterday"}"#;
        assert!(reasons(SourceFormat::K8sAudit, bad_time.as_bytes())[0]
            .starts_with("invalid requestReceivedTimestamp: 'yesterday'"));
        // A bad time is reported under its own name, even when another time is good.
        let bad_stage = r#"{"kind":"Event","auditID":"a","verb":"get","requestReceivedTimestamp":"2024-01-01T00:00:00Z","stageTimestamp":"2024-13-01T00:00:00Z"}"#;
        assert!(reasons(SourceFormat::K8sAudit, bad_stage.as_bytes())[0]
            .starts_with("invalid stageTimestamp: '2024-13-01T00:00:00Z'"));
        let bad_legacy = r#"{"kind":"Event","auditID":"a","verb":"get","timestamp":"soon"}"#;
        assert!(reasons(SourceFormat::K8sAudit, bad_legacy.as_bytes())[0]
            .starts_with("invalid timestamp: 'soon'"));
        // Lists of texts hold texts.
        for list in [r#""sourceIPs":"10.0.0.1""#, r#""user":{"groups":["a",7]}"#] {
            let event = format!(
                r#"{{"kind":"Event","auditID":"a","verb":"get","requestReceivedTimestamp":"2024-01-01T00:00:00Z",{list}}}"#
            );
            let reason = &reasons(SourceFormat::K8sAudit, event.as_bytes())[0];
            assert!(
                reason.starts_with("unexpected value: invalid type"),
                "{reason}"
            );
            assert!(reason.contains("expected a"), "{reason}");
        }
        let core_event = r#"{"kind":"Event","apiVersion":"v1","metadata":{"creationTimestamp":"2024-01-01T00:00:00Z"},"reason":"Pulled"}"#;
        assert!(reasons(SourceFormat::K8sAudit, core_event.as_bytes())[0].contains("core Event"));
        // Bytes that are not UTF-8, outside or inside a string, say where.
        assert_eq!(
            reasons(SourceFormat::K8sAudit, b"\xff\xfe{}")[0],
            "not UTF-8 text (invalid byte at 0)"
        );
        assert_eq!(
            reasons(SourceFormat::K8sAudit, b"{\"verb\":\"g\xffet\"}")[0],
            "not UTF-8 text (invalid byte at 10)"
        );
        assert_eq!(
            reasons(SourceFormat::Hubble, b"{\"flow\":{\"x\":\"\xc3\"}}")[0],
            "not UTF-8 text (invalid byte at 14)"
        );
        assert!(!reasons(SourceFormat::Hubble, b"{\"flow\":{\"time\":\"2024-01-01T00:00:00Z\",\"l4\":{\"TCP\":{\"source_port\":70000}}}}")[0].is_empty());
        assert!(reasons(
            SourceFormat::Tetragon,
            br#"{"process_exec":{"process":{"pid":"x"}},"time":"2024-01-01T00:00:00Z"}"#
        )[0]
        .contains("pid"));
        assert!(reasons(SourceFormat::Falco, b"not falco at all")[0].contains("not recognised"));
        assert!(reasons(SourceFormat::AwsVpcFlow, b"2 123 eni-1 1.2.3.4")[0].contains("4 fields"));
        assert!(reasons(
            SourceFormat::AwsVpcFlow,
            b"2 123 eni-1 1.2.3.4 5.6.7.8 x 80 6 1 2 3 4 ACCEPT OK"
        )[0]
        .contains("srcport"));
        assert!(reasons(SourceFormat::AwsVpcFlow, b"\xff\xfe 2 3")[0].contains("UTF-8"));
        assert!(
            reasons(SourceFormat::GcpVpcFlow, br#"{"jsonPayload":{}}"#)[0].contains("connection")
        );
        assert!(reasons(
            SourceFormat::Calico,
            br#"{"source_ip":"1.2.3.4","dest_ip":"5.6.7.8"}"#
        )[0]
        .contains("start_time"));
    }

    #[test]
    fn unknown_fields_are_fine_and_one_bad_event_in_a_batch_costs_only_itself() {
        let good = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"a","verb":"get","requestReceivedTimestamp":"2024-01-01T00:00:00Z","brandNewField":{"x":[1,2]}}"#;
        assert_eq!(
            decode_all(SourceFormat::K8sAudit, &[good.as_bytes().to_vec()])
                .audit
                .len(),
            1
        );
        let list = format!(
            r#"{{"kind":"EventList","items":[{good},{{"kind":"Event","verb":"get"}},{good}]}}"#
        );
        let out = decode_all(SourceFormat::K8sAudit, &[list.into_bytes()]);
        assert_eq!((out.audit.len(), out.rejected.len()), (2, 1));
        let deep = "{\"records\":[".repeat(10) + &"]}".repeat(10);
        assert!(
            decode_all(SourceFormat::K8sAudit, &[deep.into_bytes()]).rejected[0].contains("nested")
        );
    }

    #[test]
    fn an_audit_record_that_is_not_strict_json_is_rejected_whole_with_where() {
        let head = r#"{"kind":"Event","auditID":"a","verb":"get","requestReceivedTimestamp":"2024-01-01T00:00:00Z""#;
        for (tail, reason) in [
            // Broken JSON in a field nobody reads is still broken JSON.
            (
                r#","unread":{"x":[1,]}}"#,
                "invalid JSON: expected a value at byte",
            ),
            (r#","unread":tru}"#, "invalid JSON: expected true at byte"),
            (
                r#","unread":01}"#,
                "invalid JSON: expected no leading zero at byte",
            ),
            ("}{}", "invalid JSON: expected the end of the text at byte"),
            (
                r#","verb":"list"}"#,
                "unexpected value: duplicate field `verb`",
            ),
            ("", "invalid JSON: the text ends early, expected ',' or '}'"),
            (
                ",\"userAgent\":\"curl\u{1}\"}",
                "invalid JSON: control character in a string at byte",
            ),
            (
                r#","userAgent":"\q"}"#,
                "invalid JSON: expected an escape character at byte",
            ),
            (
                r#","user":"alice"}"#,
                "unexpected value: invalid type: a string, expected a user object",
            ),
            (
                r#","responseStatus":{"code":200.5}}"#,
                "unexpected value: invalid value: 200.5, expected a 32-bit integer",
            ),
        ] {
            let record = format!("{head}{tail}");
            let reasons = reasons(SourceFormat::K8sAudit, record.as_bytes());
            assert_eq!(reasons.len(), 1, "{record}");
            assert!(reasons[0].starts_with(reason), "{record}: {}", reasons[0]);
        }
        for record in ["[]", "null", "7", r#""Event""#] {
            let reasons = reasons(SourceFormat::K8sAudit, record.as_bytes());
            assert!(
                reasons[0].starts_with("unexpected value: invalid type:"),
                "{record}: {reasons:?}"
            );
            assert!(
                reasons[0].contains("expected an audit event object"),
                "{reasons:?}"
            );
        }
        // Nulls are absent fields; whitespace is fine wherever JSON allows it.
        let spaced = " {\n \"kind\" : \"Event\" ,\t\"auditID\":\"a\", \"verb\": \"get\", \"user\": null, \"objectRef\": null, \"requestReceivedTimestamp\" :\"2024-01-01T00:00:00Z\" } \r\n";
        let out = decode_all(SourceFormat::K8sAudit, &[spaced.as_bytes().to_vec()]);
        assert_eq!(
            (out.audit.len(), out.rejected.len()),
            (1, 0),
            "{:?}",
            out.rejected
        );
        assert_eq!(out.audit[0].user_name, None);
    }

    #[test]
    fn escaped_texts_decode_whether_borrowed_or_not_and_annotations_must_be_an_object() {
        let event = |user: &str, annotations: &str| {
            format!(
                r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"a","verb":"get","user":{{"username":"{user}","groups":["system:authenticated","a\u0042c"]}},"sourceIPs":["::ffff:10.0.0.1","10.0.0.2"],"annotations":{annotations},"requestReceivedTimestamp":"2024-01-01T00:00:00Z"}}"#
            )
            .into_bytes()
        };
        let records = [
            // Plain texts, borrowed from the record; an escape in a list item and a name.
            event(
                "system:node:n\\u00e9ud-1",
                r#"{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"RBAC: \"ok\""}"#,
            ),
            // Annotations that say nothing, and a decision that is not text: no columns.
            event("alice", "{ }"),
            event("alice", r#"{"authorization.k8s.io/decision":7}"#),
            // Annotations that are not a map: the event is rejected, with why.
            event("alice", r#""allow""#),
        ];
        let out = decode_all(SourceFormat::K8sAudit, &records);
        assert_eq!(out.rejected, ["invalid annotations: not an object"]);
        let [first, empty, odd] = &out.audit[..] else {
            panic!("{} events", out.audit.len())
        };
        assert_eq!(first.user_name.as_deref(), Some("system:node:néud-1"));
        assert_eq!(first.node.as_deref(), Some("néud-1"));
        assert_eq!(first.user_groups, ["system:authenticated", "aBc"]);
        assert_eq!(first.source_ips, ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(first.src_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(first.decision.as_deref(), Some("allow"));
        assert_eq!(first.authz_reason.as_deref(), Some(r#"RBAC: "ok""#));
        assert!(first.annotations.as_deref().unwrap().contains("RBAC"));
        assert_eq!(
            (empty.annotations.as_deref(), empty.decision.as_deref()),
            (None, None)
        );
        assert_eq!(odd.decision, None);
        assert!(odd.annotations.is_some());
        // An event carried as an escaped string (EKS) holds the same texts, and so does a
        // cluster name with escapes in its log group.
        let inner = String::from_utf8(records[0].clone()).unwrap();
        let wrapped = format!(
            r#"{{"logGroup":"\/aws\/eks\/prod-eu\/cluster","logEvents":[{{"message":{}}}]}}"#,
            serde_json::to_string(&inner).unwrap()
        );
        let eks = decode_all(SourceFormat::K8sAudit, &[wrapped.into_bytes()]);
        assert!(eks.rejected.is_empty(), "{:?}", eks.rejected);
        assert_eq!(
            AuditEvent {
                cluster: None,
                audit_format: "k8s".into(),
                ..eks.audit[0].clone()
            },
            *first
        );
        assert_eq!(eks.audit[0].audit_format, "eks");
        assert_eq!(eks.audit[0].cluster.as_deref(), Some("prod-eu"));
    }

    #[test]
    fn a_pod_address_is_taken_from_pod_objects_only_and_only_when_it_is_one() {
        let event = |resource: &str, request: &str, response: &str| {
            format!(
                r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"a","verb":"patch","objectRef":{{"resource":"{resource}","namespace":"shop","name":"api-1","subresource":"status"}},"requestObject":{request},"responseObject":{response},"requestReceivedTimestamp":"2024-01-01T00:00:00Z"}}"#
            )
            .into_bytes()
        };
        let records = [
            // A kubelet's status patch: the request carries the new address.
            event("pods", r#"{"status":{"podIP":"10.244.1.5"}}"#, "null"),
            // No address in the patch: the pod as stored answers, in canonical form.
            event(
                "pods",
                r#"{"status":{"phase":"Running"}}"#,
                r#"{"status":{"podIP":"::ffff:10.0.0.9"}}"#,
            ),
            // Not yet scheduled, not an address, not a string, not a pod.
            event("pods", r#"{"status":{"podIP":""}}"#, "null"),
            event("pods", r#"{"status":{"podIP":"10.244.1.999"}}"#, "null"),
            event("pods", r#"{"status":{"podIP":42}}"#, r#"[1,2]"#),
            event("nodes", r#"{"status":{"podIP":"10.244.1.5"}}"#, "null"),
        ];
        let out = decode_all(SourceFormat::K8sAudit, &records);
        assert!(out.rejected.is_empty(), "{:?}", out.rejected);
        let ips: Vec<Option<&str>> = out.audit.iter().map(|e| e.pod_ip.as_deref()).collect();
        assert_eq!(
            ips,
            [Some("10.244.1.5"), Some("10.0.0.9"), None, None, None, None]
        );
        // The objects themselves are kept as they came.
        assert!(out.audit[4]
            .request_object
            .as_deref()
            .unwrap()
            .contains("42"));
        let b = batch(out.audit);
        assert_eq!(b.column_by_name("pod_ip").unwrap().null_count(), 4);
    }

    #[test]
    fn a_header_line_sets_the_vpc_field_order() {
        let records: Vec<Vec<u8>> = [
            "srcaddr dstaddr version start end log-status action",
            "10.0.0.1 10.0.0.2 5 1700000000 1700000060 OK REJECT",
            "version bogus-field",
        ]
        .iter()
        .map(|l| l.as_bytes().to_vec())
        .collect();
        let out = decode_all(SourceFormat::AwsVpcFlow, &records);
        assert_eq!(out.flows.len(), 1);
        assert_eq!(out.flows[0].action.as_deref(), Some("deny"));
        assert_eq!(out.flows[0].src_ip.as_deref(), Some("10.0.0.1"));
        assert!(out.rejected[0].contains("bogus-field"));
    }

    #[test]
    fn unrecognisable_records_are_not_sniffed() {
        for junk in [
            &b"{\"kind\": 0}"[..],
            b"hello world",
            b"",
            b"[]",
            b"{\"a\":1}",
            b"\xff\xfe",
        ] {
            assert_eq!(
                SourceFormat::sniff(junk),
                None,
                "{:?}",
                String::from_utf8_lossy(junk)
            );
        }
    }
}

mod secrets {
    use super::*;

    #[test]
    fn no_secret_value_from_a_request_response_secret_event_reaches_a_batch() {
        let secret = serde_json::json!({
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse", "auditID": "s1",
            "stage": "ResponseComplete", "verb": "create", "user": {"username": "admin"},
            "objectRef": {"resource": "secrets", "namespace": "default", "apiVersion": "v1"},
            "requestReceivedTimestamp": "2024-01-01T00:00:00Z",
            "requestObject": {"kind": "Secret", "metadata": {"name": "api-key",
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"token\":\"c3VwZXJzZWNyZXQ=\"}}"}},
                "data": {"token": "c3VwZXJzZWNyZXQ="}, "stringData": {"plain": "supersecret"}},
            "responseObject": {"kind": "Secret", "metadata": {"name": "api-key"}, "data": {"token": "c3VwZXJzZWNyZXQ="}}
        });
        let list = serde_json::json!({
            "kind": "Event", "auditID": "s2", "verb": "list", "level": "RequestResponse",
            "objectRef": {"resource": "secrets"}, "requestReceivedTimestamp": "2024-01-01T00:00:01Z",
            "responseObject": {"kind": "SecretList", "items": [{"metadata": {"name": "x"}, "data": {"k": "c3VwZXJzZWNyZXQ="}}]}
        });
        let records = vec![
            secret.to_string().into_bytes(),
            list.to_string().into_bytes(),
        ];
        let options = DecodeOptions {
            cluster: None,
            redactor: Redactor::new(b"test-key", &[]),
        };
        let out = decode_with(SourceFormat::K8sAudit, &records, options);
        assert_eq!(out.audit.len(), 2);
        assert_eq!(out.audit[0].name.as_deref(), Some("api-key"));
        let b = batch(out.audit);
        let mut text = String::new();
        for column in b.columns() {
            if let Some(s) = column.as_string_opt::<i32>() {
                for i in 0..s.len() {
                    if s.is_valid(i) {
                        text.push_str(s.value(i));
                    }
                }
            }
        }
        assert!(!text.contains("c3VwZXJzZWNyZXQ="), "base64 value leaked");
        assert!(!text.contains("supersecret"), "plain value leaked");
        assert!(text.contains("[REDACTED hmac:"));
    }
}

/// Real-world audit shapes that are not the API server's own: GKE entries as pipelines
/// pass them on, and abbreviated exports that dropped fields.
mod field_shapes {
    use super::*;

    fn one(record: &str) -> AuditEvent<'static> {
        let out = decode_all(SourceFormat::K8sAudit, &[record.as_bytes().to_vec()]);
        assert!(out.rejected.is_empty(), "{:?}", out.rejected);
        assert_eq!(out.audit.len(), 1);
        out.audit.into_iter().next().unwrap()
    }

    /// As SIEM exports and detection vendors' tests carry them: no `logName`, `insertId`,
    /// `@type` or `serviceName`, `callerIP`, times without a zone, and a failure said only
    /// by the Status in `response`.
    const GKE_REFUSED: &str = r#"{"protoPayload":{"at_sign_type":"type.googleapis.com/google.cloud.audit.AuditLog","authenticationInfo":{"principalEmail":"some.user@company.com"},"authorizationInfo":[{"granted":true,"permission":"io.k8s.core.v1.pods.create","resource":"core/v1/namespaces/default/pods/test"}],"methodName":"io.k8s.core.v1.pods.create","request":{"kind":"Pod","metadata":{"name":"test","namespace":"default"},"spec":{"volumes":[{"hostPath":{"path":"/var/lib/kubelet"},"name":"v"}]}},"requestMetadata":{"callerIP":"1.2.3.4","callerSuppliedUserAgent":"kubectl/v1.28.2"},"resourceName":"core/v1/namespaces/default/pods/test","response":{"status":"Failure","reason":"Forbidden"}},"receiveTimestamp":"2024-02-16 12:55:17.003485190","resource":{"labels":{"cluster_name":"some-project-cluster"},"type":"k8s_cluster"},"timestamp":"2024-02-16 12:55:00.510160000"}"#;

    #[test]
    fn gke_entries_without_their_envelope_are_recognised_and_mapped() {
        assert_eq!(
            SourceFormat::sniff(GKE_REFUSED.as_bytes()),
            Some(SourceFormat::K8sAudit)
        );
        let e = one(GKE_REFUSED);
        assert_eq!(e.audit_format, "gke");
        assert_eq!(
            (
                e.verb.as_deref(),
                e.resource.as_deref(),
                e.namespace.as_deref(),
                e.name.as_deref()
            ),
            (Some("create"), Some("pods"), Some("default"), Some("test"))
        );
        assert_eq!(
            (e.response_code, e.response_reason.as_deref()),
            (Some(403), Some("Forbidden"))
        );
        assert_eq!(e.src_ip.as_deref(), Some("1.2.3.4"));
        assert_eq!(e.cluster.as_deref(), Some("some-project-cluster"));
        assert!(e
            .request_object
            .as_deref()
            .unwrap()
            .contains("/var/lib/kubelet"));
        assert!(e.audit_id.as_deref().unwrap().starts_with("derived-"));
        assert_eq!(e.event_time, 1_708_088_100_510_160);
        // The same entry twice has the same derived id.
        assert_eq!(one(GKE_REFUSED).audit_id, e.audit_id);

        // Only `receiveTimestamp`, no status at all, no `resourceName`: the method names it.
        let exec = r#"{"protoPayload":{"methodName":"io.k8s.core.v1.pods.exec.create","authenticationInfo":{"principalEmail":"bob@example.com"},"requestMetadata":{"callerIp":"203.0.113.9"}},"receiveTimestamp":"2024-02-16T12:00:00Z"}"#;
        let e = one(exec);
        assert_eq!(
            (
                e.verb.as_deref(),
                e.resource.as_deref(),
                e.subresource.as_deref(),
                e.api_group.as_deref()
            ),
            (Some("create"), Some("pods"), Some("exec"), Some(""))
        );
        assert_eq!(e.response_code, None, "no status is unknown, not failed");
        let csr = r#"{"protoPayload":{"methodName":"io.k8s.certificates.v1.certificatesigningrequests.approval.update","resourceName":"certificates.k8s.io/v1/certificatesigningrequests/csr-1/approval","status":{}},"timestamp":"2024-02-16T12:00:00Z"}"#;
        let e = one(csr);
        assert_eq!(
            (
                e.resource.as_deref(),
                e.name.as_deref(),
                e.subresource.as_deref(),
                e.response_code
            ),
            (
                Some("certificatesigningrequests"),
                Some("csr-1"),
                Some("approval"),
                Some(200)
            )
        );
    }

    #[test]
    fn gke_entries_that_cannot_be_judged_are_rejected_with_a_reason() {
        let reasons =
            |r: &str| decode_all(SourceFormat::K8sAudit, &[r.as_bytes().to_vec()]).rejected;
        let no_time = r#"{"protoPayload":{"methodName":"io.k8s.core.v1.pods.get"}}"#;
        assert!(
            reasons(no_time)[0].contains("timestamp (or receiveTimestamp)"),
            "{:?}",
            reasons(no_time)
        );
        let other_service = r#"{"protoPayload":{"methodName":"storage.objects.get"},"timestamp":"2024-02-16T12:00:00Z"}"#;
        assert!(reasons(other_service)[0].contains("not a Kubernetes API call"));
        let no_method = r#"{"protoPayload":{"resourceName":"core/v1/pods"},"timestamp":"2024-02-16T12:00:00Z"}"#;
        assert!(reasons(no_method)[0].contains("methodName"));
        let bad_time = r#"{"protoPayload":{"methodName":"io.k8s.core.v1.pods.get"},"receiveTimestamp":"yesterday"}"#;
        assert!(reasons(bad_time)[0].contains("receiveTimestamp"));
    }

    #[test]
    fn abbreviated_events_are_still_evidence() {
        // No kind, apiVersion, stage, level, auditID, objectRef or responseStatus.
        let bare = r#"{"requestURI":"/api/v1/namespaces/shop/pods/api-1/exec?command=tar&command=cf","verb":"create","user":{"username":"alice"},"sourceIPs":["10.0.0.1"],"requestReceivedTimestamp":"2024-05-01T10:00:00Z"}"#;
        assert_eq!(
            SourceFormat::sniff(bare.as_bytes()),
            Some(SourceFormat::K8sAudit)
        );
        let e = one(bare);
        assert_eq!(
            (
                e.resource.as_deref(),
                e.namespace.as_deref(),
                e.pod.as_deref(),
                e.subresource.as_deref()
            ),
            (Some("pods"), Some("shop"), Some("api-1"), Some("exec"))
        );
        assert_eq!((e.stage.as_deref(), e.response_code), (None, None));
        let id = e.audit_id.clone().unwrap();
        assert!(id.starts_with("derived-"), "{id}");
        // Another stage of the same request has the same id; another request another.
        let started = bare.replace("\"verb\"", "\"stage\":\"ResponseStarted\",\"verb\"");
        assert_eq!(one(&started).audit_id.as_deref(), Some(&*id));
        let later = bare.replace("10:00:00Z", "10:00:01Z");
        assert_ne!(one(&later).audit_id.as_deref(), Some(&*id));
        // No verb: from the HTTP method where the export kept it, else only a watch.
        let no_verb = r#"{"requestURI":"/apis/apps/v1/namespaces/shop/deployments","method":"POST","user":{"username":"alice"},"requestReceivedTimestamp":"2024-05-01T10:00:00Z"}"#;
        let e = one(no_verb);
        assert_eq!(
            (e.verb.as_deref(), e.api_group.as_deref()),
            (Some("create"), Some("apps"))
        );
        let both = r#"{"requestURI":"/api/v1/namespaces/a/pods/p","method":"DELETE","httpMethod":"DELETE","user":{"username":"x"},"requestReceivedTimestamp":"2024-05-01T10:00:00Z"}"#;
        assert_eq!(one(both).verb.as_deref(), Some("delete"));
        let watch = r#"{"requestURI":"/api/v1/secrets?watch=true","user":{"username":"x"},"requestReceivedTimestamp":"2024-05-01T10:00:00Z"}"#;
        assert_eq!(one(watch).verb.as_deref(), Some("watch"));
        let unknown = r#"{"requestURI":"/api/v1/namespaces/a/secrets/s","user":{"username":"x"},"requestReceivedTimestamp":"2024-05-01T10:00:00Z"}"#;
        let e = one(unknown);
        assert_eq!((e.verb, e.resource.as_deref()), (None, Some("secrets")));
        // A URI that names no object leaves the columns empty and the event lands.
        let health = r#"{"requestURI":"/healthz","verb":"get","user":{"username":"x"},"requestReceivedTimestamp":"2024-05-01T10:00:00Z"}"#;
        assert_eq!(one(health).resource, None);
        // Still not an audit event: nothing that says it is one.
        let reasons = decode_all(
            SourceFormat::K8sAudit,
            &[
                br#"{"user":{"username":"x"},"requestReceivedTimestamp":"2024-05-01T10:00:00Z"}"#
                    .to_vec(),
            ],
        )
        .rejected;
        assert!(reasons[0].contains("not an audit event"), "{reasons:?}");
    }
}

mod arbitrary_bytes {
    //! No record, however broken, panics a decoder; a format that makes one row of a record
    //! makes one row or one rejection of it. Records are real ones cut, spliced and
    //! flipped (random bytes alone rarely get past a JSON decoder's first character), and
    //! random bytes. The fuzz targets in `fuzz/` run the same checks for minutes.
    use super::*;
    use proptest::prelude::*;

    /// A few real records of each format.
    fn originals() -> Vec<(SourceFormat, Vec<u8>)> {
        let mut out = Vec::new();
        for (format, file) in [
            (SourceFormat::K8sAudit, "k8s-audit.jsonl"),
            (SourceFormat::K8sAudit, "gke-audit.jsonl"),
            (SourceFormat::AwsVpcFlow, "aws-vpc-flow.log"),
            (SourceFormat::GcpVpcFlow, "gcp-vpc-flow.jsonl"),
            (SourceFormat::Hubble, "hubble.jsonl"),
            (SourceFormat::Calico, "calico-flow.jsonl"),
            (SourceFormat::Tetragon, "tetragon.jsonl"),
            (SourceFormat::Falco, "falco.jsonl"),
        ] {
            for record in line_records(&samples().join(file)).into_iter().take(3) {
                out.push((format, record));
            }
        }
        for file in ["eks-cloudwatch.json", "aks-diagnostics.json"] {
            let records = json_records(&samples().join(file));
            out.extend(records.into_iter().map(|r| (SourceFormat::K8sAudit, r)));
        }
        out
    }

    fn check(format: SourceFormat, record: &[u8]) {
        let decoded = Decoder::new(format, DecodeOptions::default()).decode(record);
        if !matches!(format, SourceFormat::K8sAudit | SourceFormat::AwsVpcFlow) {
            let made = decoded.row_count() + decoded.rejected().len();
            assert_eq!(made, 1, "{format:?}: {}", String::from_utf8_lossy(record));
        }
    }

    /// One change to a record: cut it, flip a byte, insert bytes, or splice another's tail.
    #[derive(Debug, Clone)]
    enum Change {
        Cut(usize),
        Flip(usize, u8),
        Insert(usize, Vec<u8>),
        Splice(usize, usize, usize),
    }

    fn change() -> impl Strategy<Value = Change> {
        prop_oneof![
            any::<usize>().prop_map(Change::Cut),
            (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Change::Flip(at, b)),
            (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
                .prop_map(|(at, bytes)| Change::Insert(at, bytes)),
            (any::<usize>(), any::<usize>(), any::<usize>())
                .prop_map(|(at, other, from)| Change::Splice(at, other, from)),
        ]
    }

    fn apply(record: &mut Vec<u8>, change: &Change, all: &[(SourceFormat, Vec<u8>)]) {
        let at = |i: usize, len: usize| i % (len + 1);
        match change {
            Change::Cut(i) => record.truncate(at(*i, record.len())),
            Change::Flip(i, b) => {
                if !record.is_empty() {
                    let i = i % record.len();
                    record[i] ^= b | 1;
                }
            }
            Change::Insert(i, bytes) => {
                let i = at(*i, record.len());
                record.splice(i..i, bytes.iter().copied());
            }
            Change::Splice(i, other, from) => {
                let other = &all[other % all.len()].1;
                record.truncate(at(*i, record.len()));
                record.extend_from_slice(&other[at(*from, other.len())..]);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

        #[test]
        fn changed_real_records_never_panic_a_decoder(
            which in any::<usize>(),
            changes in prop::collection::vec(change(), 1..6),
            other in 0..SourceFormat::ALL.len(),
        ) {
            let all = originals();
            let (own, mut record) = all[which % all.len()].clone();
            for c in &changes {
                apply(&mut record, c, &all);
            }
            // Through its own decoder, and another: a record is often sent to the wrong one.
            check(own, &record);
            check(SourceFormat::ALL[other], &record);
        }

        #[test]
        fn random_bytes_never_panic_a_decoder(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            for format in SourceFormat::ALL {
                check(format, &bytes);
            }
        }
    }
}
