//! SQL over a lake built by the real ingest path from `samples/data` and the shared
//! fixtures.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arrow::array::RecordBatch;
use arrow::util::display::array_value_to_string;
use kubetrail_ingest::{ingest_file, FileIngest, InputPath, Lake, NoProgress};
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
                        for p in inputs {
                            ingest_file(
                                &lake,
                                &InputPath::File(p),
                                &FileIngest::default(),
                                Arc::new(NoProgress),
                            )
                            .await
                            .unwrap();
                        }
                    })
            })
            .join()
            .unwrap();
            (dir, path)
        })
        .1
}

async fn session() -> LakeSession {
    LakeSession::open(lake()).await.unwrap()
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
    async fn a_lake_with_no_data_yet_is_queryable_and_a_missing_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let s = LakeSession::open(&dir.path().to_string_lossy())
            .await
            .unwrap();
        assert_eq!(one(&s, "SELECT count(*) FROM events").await, "0");
        let missing = LakeSession::open("/no/such/lake").await.err().unwrap();
        assert!(matches!(missing, QueryError::NoLake(_)));
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
        for dml in [
            "INSERT INTO runtime_events SELECT * FROM runtime_events",
            "COPY (SELECT 1) TO '/tmp/kubetrail-copy-test.csv'",
        ] {
            let e = s.query(dml).await.unwrap_err().to_string();
            assert!(e.contains("DML not supported"), "{dml}: {e}");
        }
        assert_eq!(one(&s, "SELECT count(*) FROM runtime_events").await, before);
        // Session-local views are fine: they change nothing on disk.
        s.query("CREATE VIEW mine AS SELECT 1 AS x").await.unwrap();
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
        let reader = LakeSession::open(&path).await.unwrap();
        let before = column(&reader, sql).await;
        let optimizing = kubetrail_ingest::lake::maintenance::optimize(
            &lake,
            kubetrail_schemas::Table::NetworkFlows,
            kubetrail_ingest::lake::maintenance::Days::All,
        );
        let (report, during) = tokio::join!(optimizing, column(&reader, sql));
        assert_eq!(report.unwrap().files_added, 1);
        assert_eq!(during, before);
        // The reader opened before still reads its version; a new one reads the compacted one.
        assert_eq!(column(&reader, sql).await, before);
        let fresh = LakeSession::open(&path).await.unwrap();
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
