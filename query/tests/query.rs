//! SQL over a lake built by the real ingest path from `samples/data` and the shared
//! fixtures.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arrow::array::RecordBatch;
use arrow::util::display::array_value_to_string;
use kubetrail_ingest::{ingest_file, FileIngest, InputPath, NoProgress};
use kubetrail_lake::{Lake, LakeError};
use kubetrail_query::shell::{Flow, Shell};
use kubetrail_query::{summarize, write_batches, LakeSession, OutputFormat, QueryError};

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/data")
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures")
}

/// Expected rows per table from the samples' manifest.
fn manifest_rows(table: &str) -> i64 {
    std::fs::read_to_string(samples().join("MANIFEST.tsv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|c| c[2] == table)
        .map(|c| c[3].parse::<i64>().unwrap())
        .sum()
}

/// One lake for the whole file: every sample, plus the fixture audit events (another day).
fn lake() -> &'static str {
    static LAKE: OnceLock<(tempfile::TempDir, String)> = OnceLock::new();
    &LAKE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("lake").to_string_lossy().into_owned();
            let build = path.clone();
            std::thread::spawn(move || {
                tokio::runtime::Runtime::new()
                    .unwrap()
                    .block_on(async move {
                        let lake = Lake::open(&build).unwrap();
                        let manifest =
                            std::fs::read_to_string(samples().join("MANIFEST.tsv")).unwrap();
                        let mut inputs: Vec<PathBuf> = manifest
                            .lines()
                            .skip(1)
                            .map(|l| samples().join(l.split('\t').next().unwrap()))
                            .collect();
                        inputs.push(fixtures().join("k8s-audit/falco/exec_pod.json"));
                        inputs.push(
                            fixtures().join("k8s-audit/falco/create_nginx_pod_privileged.json"),
                        );
                        inputs.sort();
                        ingest_all(&lake, inputs).await;
                    })
            })
            .join()
            .unwrap();
            (dir, path)
        })
        .1
}

/// Ingests the files, in order, by the real file path.
async fn ingest_all(lake: &Lake, paths: Vec<PathBuf>) {
    for p in paths {
        ingest_file(
            lake,
            &InputPath::File(p),
            &FileIngest::default(),
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
    }
}

async fn session() -> LakeSession {
    LakeSession::open(&Lake::open(lake()).unwrap())
        .await
        .unwrap()
}

/// The first column of every row, as text.
async fn column(session: &LakeSession, sql: &str) -> Vec<String> {
    let batches = session
        .query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    batches
        .iter()
        .flat_map(|b| {
            (0..b.num_rows()).map(move |i| array_value_to_string(b.column(0), i).unwrap())
        })
        .collect()
}

async fn one(session: &LakeSession, sql: &str) -> String {
    column(session, sql).await.remove(0)
}

mod tables_and_views {
    use super::*;

    #[tokio::test]
    async fn every_table_holds_what_was_ingested() {
        let s = session().await;
        let audit = manifest_rows("k8s_audit") + 2;
        assert_eq!(
            one(&s, "SELECT count(*) FROM k8s_audit").await,
            audit.to_string()
        );
        assert_eq!(
            one(&s, "SELECT count(*) FROM network_flows").await,
            manifest_rows("network_flows").to_string()
        );
        assert_eq!(
            one(&s, "SELECT count(*) FROM runtime_events").await,
            manifest_rows("runtime_events").to_string()
        );
        assert_eq!(one(&s, "SELECT count(*) FROM dead_letters").await, "0");
        let all = audit + manifest_rows("network_flows") + manifest_rows("runtime_events");
        assert_eq!(
            one(&s, "SELECT count(*) FROM events").await,
            all.to_string()
        );
        let sources = column(&s, "SELECT DISTINCT source FROM events ORDER BY source").await;
        assert_eq!(sources, ["audit", "network", "runtime"]);
        // Each events row points back to its row.
        let back = one(
            &s,
            "SELECT count(*) FROM events e JOIN k8s_audit a ON e.ref_source = a._source AND e.ref_offset = a._offset
             WHERE e.ref_table = 'k8s_audit'",
        )
        .await;
        assert!(back.parse::<i64>().unwrap() >= audit);
    }

    #[tokio::test]
    async fn summary_gives_rows_files_and_time_range() {
        let s = session().await;
        let summary = summarize(&s).await.unwrap();
        let audit = summary.iter().find(|t| t.name == "k8s_audit").unwrap();
        assert_eq!(audit.rows, manifest_rows("k8s_audit") + 2);
        assert!(audit.files >= 6);
        // The fixtures are from 2018, the samples from 2026.
        assert!(
            audit.first.unwrap() < 1_600_000_000_000_000
                && audit.last.unwrap() > 1_700_000_000_000_000
        );
        let dead = summary.iter().find(|t| t.name == "dead_letters").unwrap();
        assert_eq!((dead.rows, dead.files, dead.first), (0, 0, None));
    }

    #[tokio::test]
    async fn a_date_predicate_reads_only_that_partition() {
        let s = session().await;
        let batches = s
            .query("EXPLAIN ANALYZE SELECT max(user_agent) FROM k8s_audit WHERE event_date = '2018-10-26'")
            .await
            .unwrap();
        let plan = arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        let scanned = plan.split("count_files_scanned=").nth(1).expect(&plan);
        // Only the exec fixture is from that day.
        assert!(
            scanned.starts_with("1,") || scanned.starts_with("1 ") || scanned.starts_with("1]"),
            "{plan}"
        );
        assert_eq!(
            one(
                &s,
                "SELECT count(*) FROM k8s_audit WHERE event_date = DATE '2018-10-26'"
            )
            .await,
            "1"
        );
    }

    #[tokio::test]
    async fn the_parquet_scan_evaluates_each_filter_once() {
        let s = session().await;
        let sql =
            "SELECT count(*) FROM k8s_audit WHERE resource = 'secrets' AND verb IN ('get', 'list')";
        let batches = s.query(&format!("EXPLAIN {sql}")).await.unwrap();
        let plan = arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        let scan = plan
            .lines()
            .find(|l| l.contains("DataSourceExec") && l.contains(" predicate="))
            .unwrap_or_else(|| panic!("no filtered Parquet scan in {plan}"));
        let predicate = scan.split(" predicate=").nth(1).unwrap();
        let predicate = predicate.split(", pruning_predicate=").next().unwrap();
        // Both the Delta provider and DataFusion push the filter into the scan.
        assert_eq!(predicate.matches("= secrets").count(), 1, "{predicate}");
        assert_eq!(predicate.matches("= list").count(), 1, "{predicate}");
        let direct = one(&s, sql).await;
        let by_hand = one(
            &s,
            "SELECT sum(CASE WHEN resource = 'secrets' AND verb IN ('get', 'list') THEN 1 ELSE 0 END) FROM k8s_audit",
        )
        .await;
        assert_eq!(direct, by_hand);
        assert_ne!(direct, "0");
    }

    #[tokio::test]
    async fn a_lake_with_no_data_yet_is_queryable_and_a_missing_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let s = LakeSession::open(&Lake::open(&dir.path().to_string_lossy()).unwrap())
            .await
            .unwrap();
        assert_eq!(one(&s, "SELECT count(*) FROM events").await, "0");
        let missing = LakeSession::open(&Lake::open("/no/such/lake").unwrap())
            .await
            .err()
            .unwrap();
        assert!(
            matches!(missing, QueryError::Lake(LakeError::NoLake(_))),
            "{missing}"
        );
    }
}

mod functions {
    use super::*;

    #[tokio::test]
    async fn ip_functions() {
        let s = session().await;
        let row = column(
            &s,
            "SELECT concat_ws(',', cidr_contains('10.0.0.0/8', '10.1.2.3'), cidr_contains('10.0.0.0/8', '11.0.0.1'),
                    is_private_ip('169.254.169.254'), is_private_ip('45.9.148.36'),
                    coalesce(cast(cidr_contains('10.0.0.0/8', 'not-an-ip') AS VARCHAR), 'null'),
                    cidr_contains('fd00::/8', 'fd00::1'))",
        )
        .await;
        assert_eq!(row, ["true,false,true,false,null,true"]);
        let external = column(&s, "SELECT DISTINCT dst_ip FROM network_flows WHERE flow_format = 'hubble' AND NOT is_private_ip(dst_ip) AND NOT cidr_contains('3.0.0.0/8', dst_ip) AND NOT cidr_contains('52.0.0.0/8', dst_ip) ORDER BY dst_ip").await;
        assert_eq!(external, ["45.9.148.35", "45.9.148.36"]);
        let err = s
            .query("SELECT cidr_contains('10.0.0.0/99', src_ip) FROM k8s_audit")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a CIDR"), "{err}");
    }

    #[tokio::test]
    async fn json_paths_into_request_and_response_objects() {
        let s = session().await;
        let privileged = column(
            &s,
            "SELECT name FROM k8s_audit
             WHERE json_get_bool(request_object, 'spec', 'containers', 0, 'securityContext', 'privileged')
             ORDER BY name",
        )
        .await;
        assert_eq!(
            privileged,
            ["kube-proxy-debug", "nginx-deployment-5cdcc99dbf-rgw6z"]
        );
        let role = one(&s, "SELECT request_object->'roleRef'->>'name' FROM k8s_audit WHERE resource = 'clusterrolebindings'").await;
        assert_eq!(role, "cluster-admin");
        let redacted = one(&s, "SELECT json_get_str(response_object, 'data', 'password') FROM k8s_audit WHERE name = 'db-credentials'").await;
        assert!(redacted.starts_with("[REDACTED hmac:"), "{redacted}");
    }
}

mod output {
    use super::*;

    async fn render(sql: &str, format: OutputFormat) -> Vec<u8> {
        let s = session().await;
        let batches: Vec<RecordBatch> = s.query(sql).await.unwrap();
        let mut out = Vec::new();
        write_batches(&batches, format, &mut out).unwrap();
        out
    }

    #[tokio::test]
    async fn every_format_writes_the_rows() {
        let sql = "SELECT verb, count(*) AS n FROM k8s_audit WHERE user_name LIKE '%shop:api' GROUP BY verb ORDER BY verb";
        let table = String::from_utf8(render(sql, OutputFormat::Table).await).unwrap();
        assert!(table.contains("| deletecollection |"), "{table}");
        let csv = String::from_utf8(render(sql, OutputFormat::Csv).await).unwrap();
        assert_eq!(csv.lines().next(), Some("verb,n"));
        assert!(csv.contains("create,4"), "{csv}");
        let json = String::from_utf8(render(sql, OutputFormat::Json).await).unwrap();
        let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
        assert_eq!(first["verb"], "create");
        let parquet = render(sql, OutputFormat::Parquet).await;
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            bytes::Bytes::from(parquet),
        )
        .unwrap();
        assert_eq!(reader.metadata().file_metadata().num_rows(), 4);
    }

    #[tokio::test]
    async fn binary_columns_show_as_text() {
        let out = render(
            "SELECT CAST('raw bytes' AS BYTEA) AS raw",
            OutputFormat::Csv,
        )
        .await;
        assert_eq!(String::from_utf8(out).unwrap(), "raw\nraw bytes\n");
    }
}

mod errors_and_shell {
    use super::*;

    #[tokio::test]
    async fn bad_sql_is_one_line() {
        let s = session().await;
        for bad in [
            "SELEC 1",
            "SELECT nope FROM k8s_audit",
            "SELECT * FROM no_such_table",
        ] {
            let e = s.query(bad).await.unwrap_err().to_string();
            let line = kubetrail_query::shell::one_line(&e);
            assert!(!line.contains('\n') && !line.is_empty(), "{bad}: {e}");
        }
    }

    #[tokio::test]
    async fn evidence_cannot_be_changed_through_sql() {
        let s = session().await;
        let before = one(&s, "SELECT count(*) FROM runtime_events").await;
        for statement in [
            "INSERT INTO runtime_events SELECT * FROM runtime_events",
            "COPY (SELECT 1) TO '/tmp/kubetrail-copy-test.csv'",
            // Not even a session's own view: the one rule is that SQL only reads.
            "CREATE VIEW mine AS SELECT 1 AS x",
        ] {
            let e = s.query(statement).await.unwrap_err().to_string();
            assert!(e.starts_with("read-only: "), "{statement}: {e}");
        }
        assert_eq!(one(&s, "SELECT count(*) FROM runtime_events").await, before);
    }

    #[tokio::test]
    async fn the_shell_runs_commands_and_statements_and_survives_errors() {
        let s = session().await;
        let mut shell = Shell::new(&s);
        let mut out = Vec::new();
        assert_eq!(
            shell.execute(".tables", &mut out).await.unwrap(),
            Flow::Continue
        );
        shell
            .execute(".schema network_flows", &mut out)
            .await
            .unwrap();
        shell.execute("SELECT nope;", &mut out).await.unwrap();
        shell.execute(".mode csv", &mut out).await.unwrap();
        shell
            .execute("SELECT count(*) AS n\nFROM runtime_events;", &mut out)
            .await
            .unwrap();
        shell.execute(".bogus", &mut out).await.unwrap();
        assert_eq!(shell.execute(".quit", &mut out).await.unwrap(), Flow::Quit);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("k8s_audit") && text.contains("events"),
            "{text}"
        );
        assert!(text.contains("dst_port"), "{text}");
        assert!(text.contains("error:"), "{text}");
        assert!(
            text.contains(&format!("n\n{}\n", manifest_rows("runtime_events"))),
            "{text}"
        );
        assert!(text.contains("unknown command '.bogus'"), "{text}");
        assert!(text.contains("row(s) in"), "{text}");
    }
}

mod maintenance {
    use super::*;

    #[tokio::test]
    async fn a_reader_sees_a_consistent_table_while_it_is_optimized() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_string_lossy().into_owned();
        let lake = Lake::open(&path).unwrap();
        let small = FileIngest {
            limits: kubetrail_ingest::BatchLimits {
                max_rows: 10,
                max_bytes: 1 << 30,
            },
            ..FileIngest::default()
        };
        let input = InputPath::File(samples().join("hubble.jsonl"));
        ingest_file(&lake, &input, &small, Arc::new(NoProgress))
            .await
            .unwrap();
        let sql = "SELECT count(*), count(DISTINCT summary), min(event_time), max(event_time) FROM network_flows";
        let reader = LakeSession::open(&lake).await.unwrap();
        let before = column(&reader, sql).await;
        let optimizing = kubetrail_lake::maintenance::optimize(
            &lake,
            kubetrail_schemas::Table::NetworkFlows,
            kubetrail_lake::maintenance::Days::All,
        );
        let (report, during) = tokio::join!(optimizing, column(&reader, sql));
        assert_eq!(report.unwrap().files_added, 1);
        assert_eq!(during, before);
        // The reader opened before still reads its version; a new one reads the compacted one.
        assert_eq!(column(&reader, sql).await, before);
        let fresh = LakeSession::open(&lake).await.unwrap();
        assert_eq!(column(&fresh, sql).await, before);
        assert_eq!(
            fresh
                .tables()
                .iter()
                .find(|t| t.name == "network_flows")
                .unwrap()
                .files,
            1
        );
    }
}

mod timeline {
    use super::*;
    use kubetrail_query::timeline::{
        build, export, parse_time, Entity, Stream, Timeline, TimelineError, TimelineFormat,
        TimelineRequest, Window,
    };

    const VICTIM: &str = "shop/api-7d9f8b6c5-x2k4p";

    fn window(from: &str, to: &str) -> Window {
        Window::new(parse_time(from).unwrap(), parse_time(to).unwrap()).unwrap()
    }

    fn request(entity: Entity, from: &str, to: &str) -> TimelineRequest {
        let mut r = TimelineRequest::new(entity);
        r.window = Some(window(from, to));
        r
    }

    async fn scenario_timeline() -> Timeline {
        let r = request(
            Entity::pod(VICTIM).unwrap(),
            "2026-11-20T09:00:00Z",
            "2026-11-20T10:00:00Z",
        );
        build(&session().await, &r).await.unwrap()
    }

    /// The position of the first line whose summary contains `needle`.
    fn position(t: &Timeline, needle: &str) -> usize {
        t.lines
            .iter()
            .position(|e| e.summary().contains(needle))
            .unwrap_or_else(|| {
                let all: Vec<String> = t.lines.iter().map(|e| e.summary()).collect();
                panic!("no line contains {needle:?}:\n{}", all.join("\n"))
            })
    }

    #[tokio::test]
    async fn the_compromised_pod_shows_the_attack_in_order_across_the_streams() {
        let t = scenario_timeline().await;
        let steps = [
            "list secrets cluster-wide → 403 Forbidden from 203.0.113.66",
            "get secrets shop/db-credentials",
            "exec'd `sh` into shop/api-7d9f8b6c5-x2k4p",
            "ran `/usr/bin/curl -s http://169.254.169.254",
            "connected to 169.254.169.254:80",
            "opened /var/run/secrets/kubernetes.io/serviceaccount/token",
            "ran `/tmp/xmrig -o stratum+tcp://",
            "connected to 45.9.148.36:4444",
            "create clusterrolebindings",
            "create pods kube-system/kube-proxy-debug",
            "ran `/usr/bin/nsenter -t 1",
            "deletecollection events in shop",
        ];
        let at: Vec<usize> = steps.iter().map(|s| position(&t, s)).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "out of order: {at:?}");
        for stream in Stream::ALL {
            assert!(
                t.lines.iter().any(|e| e.stream == stream),
                "no {stream} line"
            );
        }
        // The attacker's identity is followed because it exec'd into the pod; the
        // kubelet that reads the pod's secrets is not.
        assert!(t
            .followed
            .iter()
            .any(|f| f.contains("system:serviceaccount:shop:api, who exec'd into")));
        assert!(!t.followed.iter().any(|f| f.contains("system:node:")));
        // Every line points back to a lake row that exists.
        let s = session().await;
        let e = &t.lines[position(&t, "exec'd `sh`")];
        let n = one(
            &s,
            &format!(
                "SELECT count(*) FROM {} WHERE _source = '{}' AND _offset = {} AND subresource = 'exec'",
                e.evidence.table, e.evidence.source, e.evidence.offset
            ),
        )
        .await;
        assert_eq!(n, "1");
        // Depth 0: the pod alone, so the attacker's RBAC change is not there.
        let mut r = request(
            Entity::pod(VICTIM).unwrap(),
            "2026-11-20T09:00:00Z",
            "2026-11-20T10:00:00Z",
        );
        r.depth = 0;
        let alone = build(&s, &r).await.unwrap();
        assert!(!alone
            .lines
            .iter()
            .any(|e| e.summary().contains("clusterrolebindings")));
        assert!(alone.lines.iter().any(|e| e.summary().contains("xmrig")));
    }

    #[tokio::test]
    async fn a_user_leads_to_the_pods_it_touched_and_what_they_did_next() {
        let r = request(
            Entity::user("system:serviceaccount:shop:api").unwrap(),
            "2026-11-20T09:00:00Z",
            "2026-11-20T10:00:00Z",
        );
        let t = build(&session().await, &r).await.unwrap();
        let exec = position(&t, "exec'd `sh` into shop/api-7d9f8b6c5-x2k4p");
        let miner = position(&t, "ran `/tmp/xmrig");
        assert!(exec < miner);
        // Nothing the pod did before it was touched.
        let exec_time = t.lines[exec].time;
        assert!(t
            .lines
            .iter()
            .filter(|e| e.stream == Stream::Runtime)
            .all(|e| e.time >= exec_time));
        // The attacker's address: the identity it used, and what it did.
        let r = request(
            Entity::ip("203.0.113.66").unwrap(),
            "2026-11-20T09:00:00Z",
            "2026-11-20T10:00:00Z",
        );
        let t = build(&session().await, &r).await.unwrap();
        position(&t, "get secrets shop/db-credentials");
        assert!(t
            .followed
            .iter()
            .any(|f| f.contains("seen from 203.0.113.66")));
    }

    /// Files in native formats, ingested by the real path into a fresh lake.
    async fn lake_of(files: &[(&str, String)]) -> (tempfile::TempDir, LakeSession) {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().join("lake").to_str().unwrap()).unwrap();
        let mut paths = Vec::new();
        for (name, content) in files {
            let path = dir.path().join(name);
            std::fs::write(&path, content).unwrap();
            paths.push(path);
        }
        ingest_all(&lake, paths).await;
        let session = LakeSession::open(&lake).await.unwrap();
        (dir, session)
    }

    fn audit(
        time: &str,
        user: &str,
        verb: &str,
        ns: &str,
        pod: &str,
        sub: &str,
        body: &str,
    ) -> String {
        let sub_field = if sub.is_empty() {
            String::new()
        } else {
            format!(r#","subresource":"{sub}""#)
        };
        let request = if body.is_empty() {
            String::new()
        } else {
            format!(r#","requestObject":{body}"#)
        };
        format!(
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Request","auditID":"{time}-{pod}-{verb}","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/{ns}/pods/{pod}","verb":"{verb}","user":{{"username":"{user}","groups":["system:authenticated"]}},"sourceIPs":["10.0.1.12"],"userAgent":"kubelet/v1.30.4","objectRef":{{"resource":"pods","namespace":"{ns}","name":"{pod}","apiVersion":"v1"{sub_field}}},"responseStatus":{{"code":200}}{request},"requestReceivedTimestamp":"{time}","stageTimestamp":"{time}"}}"#
        )
    }

    fn pod_ip(time: &str, ns: &str, pod: &str, ip: &str) -> String {
        audit(
            time,
            "system:node:node-a",
            "patch",
            ns,
            pod,
            "status",
            &format!(r#"{{"status":{{"podIP":"{ip}","podIPs":[{{"ip":"{ip}"}}]}}}}"#),
        )
    }

    const VPC_HEADER: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status";

    fn vpc(time: &str, src: &str, dst: &str, port: u16, bytes: u64) -> String {
        let t = parse_time(time).unwrap() / 1_000_000;
        format!(
            "2 123456789012 eni-0abc {src} {dst} 40000 {port} 6 10 {bytes} {t} {} ACCEPT OK",
            t + 59
        )
    }

    #[tokio::test]
    async fn an_address_reused_by_another_pod_maps_to_the_right_pod_at_each_moment() {
        let audit_log = [
            pod_ip("2026-11-21T08:00:00Z", "shop", "api-1", "10.244.1.5"),
            audit(
                "2026-11-21T11:00:00Z",
                "alice",
                "delete",
                "shop",
                "api-1",
                "",
                "",
            ),
            pod_ip("2026-11-21T12:00:00Z", "batch", "job-2", "10.244.1.5"),
            // Known only from its status update, long before the window.
            pod_ip("2026-11-20T07:00:00Z", "shop", "db-0", "10.244.2.9"),
        ]
        .join("\n");
        let flows = [
            VPC_HEADER.to_owned(),
            vpc(
                "2026-11-21T09:00:00Z",
                "10.244.1.5",
                "198.51.100.23",
                4444,
                2_100_000,
            ),
            vpc(
                "2026-11-21T09:30:00Z",
                "10.244.1.5",
                "10.244.2.9",
                5432,
                800,
            ),
            vpc(
                "2026-11-21T13:00:00Z",
                "10.244.1.5",
                "198.51.100.23",
                4444,
                5_000,
            ),
        ]
        .join("\n");
        let (_dir, s) = lake_of(&[("audit.jsonl", audit_log), ("vpc.log", flows)]).await;
        let (from, to) = ("2026-11-21T00:00:00Z", "2026-11-22T00:00:00Z");
        let network = |t: &Timeline| -> Vec<(String, Option<String>)> {
            t.lines
                .iter()
                .filter(|e| e.stream == Stream::Network)
                .map(|e| (kubetrail_query::timeline::rfc3339(e.time), e.pod_ref()))
                .collect()
        };
        let api = build(&s, &request(Entity::pod("shop/api-1").unwrap(), from, to))
            .await
            .unwrap();
        assert_eq!(
            network(&api),
            vec![
                (
                    "2026-11-21T09:00:00.000000Z".to_owned(),
                    Some("shop/api-1".to_owned())
                ),
                (
                    "2026-11-21T09:30:00.000000Z".to_owned(),
                    Some("shop/api-1".to_owned())
                )
            ]
        );
        let summaries: Vec<String> = api
            .lines
            .iter()
            .filter(|e| e.stream == Stream::Network)
            .map(|e| e.summary())
            .collect();
        assert_eq!(
            summaries[0],
            "pod shop/api-1 connected to 198.51.100.23:4444 (TCP), 2.1 MB"
        );
        // The far end of an address-only flow is named from the pod status update that
        // gave it that address (a day before the window, within the address lookback).
        assert!(
            summaries[1].contains("shop/db-0"),
            "far end not attributed: {}",
            summaries[1]
        );
        // Who deleted it is followed at depth 1.
        assert!(api
            .lines
            .iter()
            .any(|e| e.summary().starts_with("alice delete pods shop/api-1")));
        let job = build(&s, &request(Entity::pod("batch/job-2").unwrap(), from, to))
            .await
            .unwrap();
        assert_eq!(
            network(&job),
            vec![(
                "2026-11-21T13:00:00.000000Z".to_owned(),
                Some("batch/job-2".to_owned())
            )]
        );
        let ip = build(&s, &request(Entity::ip("10.244.1.5").unwrap(), from, to))
            .await
            .unwrap();
        assert_eq!(
            network(&ip),
            vec![
                (
                    "2026-11-21T09:00:00.000000Z".to_owned(),
                    Some("shop/api-1".to_owned())
                ),
                (
                    "2026-11-21T09:30:00.000000Z".to_owned(),
                    Some("shop/api-1".to_owned())
                ),
                (
                    "2026-11-21T13:00:00.000000Z".to_owned(),
                    Some("batch/job-2".to_owned())
                ),
            ]
        );
    }

    #[tokio::test]
    async fn repeated_flows_collapse_into_one_line_with_counts() {
        let mut flows = vec![VPC_HEADER.to_owned()];
        let start = parse_time("2026-11-21T00:00:00Z").unwrap();
        for minute in 0..1440 {
            let t = kubetrail_query::timeline::rfc3339(start + minute * 60_000_000);
            flows.push(vpc(&t, "10.244.7.7", "198.51.100.99", 443, 1_000));
        }
        let audit_log = pod_ip("2026-11-20T23:00:00Z", "shop", "cache-0", "10.244.7.7");
        let (_dir, s) = lake_of(&[("audit.jsonl", audit_log), ("vpc.log", flows.join("\n"))]).await;
        let mut r = request(
            Entity::pod("shop/cache-0").unwrap(),
            "2026-11-21T00:00:00Z",
            "2026-11-22T00:00:00Z",
        );
        let t = build(&s, &r).await.unwrap();
        assert_eq!(t.lines.len(), 1, "{:?}", t.lines);
        let line = &t.lines[0];
        assert_eq!((line.count, line.bytes), (1440, Some(1_440_000)));
        assert_eq!(
            line.summary(),
            "pod shop/cache-0 connected to 198.51.100.99:443 (TCP), 1.4 MB (×1,440, 00:00:00 to 23:59:00)"
        );
        r.collapse = false;
        assert_eq!(build(&s, &r).await.unwrap().lines.len(), 1440);
        // A bound on rows read, and a note saying so.
        r.max_rows = 100;
        let cut = build(&s, &r).await.unwrap();
        assert_eq!(cut.lines.len(), 100);
        assert!(
            cut.notes.iter().any(|n| n.contains("row limit (100)")),
            "{:?}",
            cut.notes
        );
    }

    #[tokio::test]
    async fn bad_requests_get_a_clear_answer() {
        let s = session().await;
        let unknown = build(
            &s,
            &request(
                Entity::pod("shop/nope").unwrap(),
                "2026-11-20T09:00:00Z",
                "2026-11-20T10:00:00Z",
            ),
        )
        .await
        .unwrap_err();
        assert!(matches!(unknown, TimelineError::Unknown(_)));
        assert_eq!(
            unknown.to_string(),
            "pod shop/nope does not appear anywhere in this lake"
        );
        // A window where the pod did nothing: empty, and told where it does appear.
        let empty = build(
            &s,
            &request(
                Entity::pod(VICTIM).unwrap(),
                "2026-11-25T00:00:00Z",
                "2026-11-26T00:00:00Z",
            ),
        )
        .await
        .unwrap();
        assert!(empty.lines.is_empty());
        assert!(
            empty.notes[0].contains("it appears in the lake from 2026-11-20T09:"),
            "{:?}",
            empty.notes
        );
        // A window of years: answered, with a note on the bound.
        let years = build(
            &s,
            &request(Entity::pod(VICTIM).unwrap(), "2020-01-01", "2030-01-01"),
        )
        .await
        .unwrap();
        assert!(!years.lines.is_empty());
        assert!(
            years.notes.iter().any(|n| n.contains("spans 3653 days")),
            "{:?}",
            years.notes
        );
        // No window: the lake's last day.
        let default = build(&s, &TimelineRequest::new(Entity::pod(VICTIM).unwrap()))
            .await
            .unwrap();
        assert!(default.notes[0].starts_with("window: the lake's last 24 hours"));
        let mut deep = TimelineRequest::new(Entity::pod(VICTIM).unwrap());
        deep.depth = 9;
        assert!(build(&s, &deep)
            .await
            .unwrap_err()
            .to_string()
            .contains("too deep"));
        let container = build(
            &s,
            &TimelineRequest::new(Entity::container("0123456789abcdef").unwrap()),
        )
        .await
        .unwrap_err();
        assert!(container
            .to_string()
            .contains("does not appear in runtime_events"));
        assert!(Entity::pod("shop/x'; DROP TABLE k8s_audit; --").is_err());
        assert!(parse_time("2026-02-30").is_err());
    }

    #[tokio::test]
    async fn a_container_id_pivots_to_its_pod() {
        let s = session().await;
        let id = one(
            &s,
            &format!("SELECT container_id FROM runtime_events WHERE pod = '{}' AND container_id IS NOT NULL ORDER BY length(container_id) DESC, container_id LIMIT 1", VICTIM.split('/').nth(1).unwrap()),
        )
        .await;
        let mut r = request(
            Entity::container(&id[..12]).unwrap(),
            "2026-11-20T09:00:00Z",
            "2026-11-20T10:00:00Z",
        );
        r.depth = 0;
        let t = build(&s, &r).await.unwrap();
        assert_eq!(t.entity, Entity::pod(VICTIM).unwrap());
        assert!(t
            .notes
            .iter()
            .any(|n| n.contains("runs in pod shop/api-7d9f8b6c5-x2k4p")));
    }

    fn render(t: &Timeline, format: TimelineFormat) -> Vec<u8> {
        let mut out = Vec::new();
        export::write(t, format, &mut out).unwrap();
        out
    }

    #[tokio::test]
    async fn every_export_carries_every_line_and_its_evidence() {
        let t = scenario_timeline().await;
        let n = t.lines.len();
        let csv = String::from_utf8(render(&t, TimelineFormat::Csv)).unwrap();
        let header = csv.lines().next().unwrap();
        assert_eq!(
            header,
            "time,last_time,count,stream,actor,action,target,namespace,pod,node,src,dst,bytes,summary,relation,alert_ids,format,ref_table,ref_source,ref_offset"
        );
        assert_eq!(csv.lines().count(), n + 1);
        let jsonl = String::from_utf8(render(&t, TimelineFormat::Jsonl)).unwrap();
        assert_eq!(jsonl.lines().count(), n);
        for line in jsonl.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(
                v["ref_table"].is_string() && v["ref_offset"].is_i64(),
                "{v}"
            );
        }
        let parquet = bytes::Bytes::from(render(&t, TimelineFormat::Parquet));
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(parquet)
                .unwrap()
                .build()
                .unwrap();
        let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(rows, n);
        let sketch = String::from_utf8(render(&t, TimelineFormat::Timesketch)).unwrap();
        let mut sketch_lines = sketch.lines();
        assert!(sketch_lines
            .next()
            .unwrap()
            .starts_with("message,datetime,timestamp_desc,timestamp,"));
        let first = sketch_lines.next().unwrap();
        assert!(first.contains(",2026-11-20T09:00:06"), "{first}");
        assert!(first.contains("+00:00,"), "{first}");
        assert_eq!(sketch.lines().count(), n + 1);
        let text = String::from_utf8(render(&t, TimelineFormat::Table)).unwrap();
        assert!(text.starts_with("Timeline of pod shop/api-7d9f8b6c5-x2k4p"));
        assert!(text.contains("<k8s_audit:file:"));
    }

    #[tokio::test]
    async fn the_html_report_is_self_contained_and_escapes_what_it_shows() {
        let mut t = scenario_timeline().await;
        // Evidence text is attacker-controlled: it must not break out of the page.
        t.lines[0].relation = "</script><script>alert(1)</script>".into();
        let html = String::from_utf8(render(&t, TimelineFormat::Html)).unwrap();
        assert_eq!(
            html.matches("</script>").count(),
            2,
            "only the page's own two scripts end"
        );
        assert!(html.contains("\\u003c/script>\\u003cscript>alert(1)"));
        for fetches in [
            "src=\"http",
            "href=\"http",
            "url(http",
            "@import",
            "fetch(",
            "XMLHttpRequest",
        ] {
            assert!(
                !html.contains(fetches),
                "the report must not load {fetches}"
            );
        }
        assert!(html.contains("default-src 'none'"));
        assert!(html.contains("Timeline of pod shop/api-7d9f8b6c5-x2k4p"));
    }
}
