//! File ingestion into a real lake in a temporary directory. The lake is read back with
//! the Parquet reader and the Delta log (the ingest side never runs SQL).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use deltalake::DeltaTable;
use kubetrail_ingest::{
    ingest_file, BatchLimits, FileIngest, FileIngester, InputPath, InputReport, NoProgress,
};
use kubetrail_lake::Lake;
use kubetrail_schemas::{SourceFormat, Table};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Encoding;

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/data")
}

async fn ingest(lake: &Lake, path: &Path, options: &FileIngest) -> InputReport {
    ingest_file(
        lake,
        &InputPath::File(path.to_owned()),
        options,
        Arc::new(NoProgress),
    )
    .await
    .unwrap()
}

async fn table(lake: &Lake, t: Table) -> Option<DeltaTable> {
    lake.open_table(t.name()).await.unwrap()
}

/// Batches cut by rows alone.
fn rows_per_batch(max_rows: usize) -> BatchLimits {
    BatchLimits {
        max_rows,
        max_bytes: 1 << 30,
    }
}

/// Every row of a table, read from the Parquet files its current version references.
async fn read_table(lake: &Lake, t: Table) -> Vec<RecordBatch> {
    match table(lake, t).await {
        Some(delta) => read_version(&delta),
        None => Vec::new(),
    }
}

/// Every row of the version of a table `delta` has loaded.
fn read_version(delta: &DeltaTable) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    for uri in delta.get_file_uris().unwrap() {
        let path = url::Url::parse(&uri)
            .map(|u| u.to_file_path().unwrap())
            .unwrap_or_else(|_| PathBuf::from(&uri));
        let file = std::fs::File::open(&path).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        batches.extend(reader.map(|b| b.unwrap()));
    }
    batches
}

async fn row_count(lake: &Lake, t: Table) -> usize {
    read_table(lake, t).await.iter().map(|b| b.num_rows()).sum()
}

fn strings(batches: &[RecordBatch], column: &str) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        let c = arrow::compute::cast(
            b.column_by_name(column).unwrap(),
            &arrow::datatypes::DataType::Utf8,
        )
        .unwrap();
        let c = c.as_string::<i32>();
        out.extend((0..c.len()).map(|i| c.value(i).to_owned()));
    }
    out
}

/// A column as integers (timestamps as their µs count), batch after batch.
fn ints(batches: &[RecordBatch], column: &str) -> Vec<i64> {
    let mut out = Vec::new();
    for b in batches {
        let c = arrow::compute::cast(
            b.column_by_name(column).unwrap(),
            &arrow::datatypes::DataType::Int64,
        )
        .unwrap();
        out.extend_from_slice(c.as_primitive::<arrow::datatypes::Int64Type>().values());
    }
    out
}

/// A table created by delta-rs alone, as an older kubetrail (or another tool) did.
async fn created_without_kubetrail(dir: &Path, schema: &arrow::datatypes::Schema) -> DeltaTable {
    std::fs::create_dir_all(dir).unwrap();
    let url = url::Url::from_directory_path(dir).unwrap();
    let kernel: deltalake::kernel::StructType =
        deltalake::kernel::engine::arrow_conversion::TryIntoKernel::try_into_kernel(schema)
            .unwrap();
    deltalake::DeltaTableBuilder::from_url(url)
        .unwrap()
        .build()
        .unwrap()
        .create()
        .with_columns(kernel.fields().cloned())
        .with_partition_columns(["event_date"])
        .await
        .unwrap()
}

fn new_lake() -> (tempfile::TempDir, Lake) {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(&dir.path().join("lake").to_string_lossy()).unwrap();
    (dir, lake)
}

mod round_trip {
    use super::*;

    #[tokio::test]
    async fn every_sample_file_lands_with_exactly_its_events() {
        let (_dir, lake) = new_lake();
        let manifest = std::fs::read_to_string(samples().join("MANIFEST.tsv")).unwrap();
        let mut expected = std::collections::BTreeMap::new();
        for line in manifest.lines().skip(1) {
            let cols: Vec<&str> = line.split('\t').collect();
            let events: u64 = cols[3].parse().unwrap();
            let report = ingest(&lake, &samples().join(cols[0]), &FileIngest::default()).await;
            let table: Table = cols[2].parse().unwrap();
            assert_eq!(
                report.format,
                Some(cols[1].parse::<SourceFormat>().unwrap()),
                "{}",
                cols[0]
            );
            assert_eq!(report.rows.get(&table), Some(&events), "{}", cols[0]);
            assert_eq!(report.dead_letters(), 0, "{}", cols[0]);
            *expected.entry(table).or_insert(0usize) += events as usize;
        }
        for (t, n) in expected {
            assert_eq!(row_count(&lake, t).await, n, "{t}");
        }
        assert!(table(&lake, Table::DeadLetters).await.is_none());
    }

    #[tokio::test]
    async fn pretty_printed_objects_and_json_arrays_are_records_too() {
        let (dir, lake) = new_lake();
        let fixtures =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/runtime/tetragon");
        let mut rows = 0;
        for entry in std::fs::read_dir(&fixtures).unwrap() {
            let report = ingest(&lake, &entry.unwrap().path(), &FileIngest::default()).await;
            assert_eq!(report.format, Some(SourceFormat::Tetragon));
            assert_eq!(report.dead_letters(), 0, "{}", report.source);
            rows += report.rows[&Table::RuntimeEvents];
        }
        assert_eq!(rows, 27);
        let alerts: Vec<serde_json::Value> = std::fs::read_to_string(samples().join("falco.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let array = dir.path().join("alerts.json");
        std::fs::write(&array, serde_json::to_string_pretty(&alerts).unwrap()).unwrap();
        let report = ingest(&lake, &array, &FileIngest::default()).await;
        assert_eq!((report.records, report.rows[&Table::RuntimeEvents]), (7, 7));
        assert_eq!(row_count(&lake, Table::RuntimeEvents).await, 34);
    }

    /// The one Parquet file the audit sample's day becomes (the directory keeps it).
    async fn sample_day_file() -> (tempfile::TempDir, PathBuf) {
        let (dir, lake) = new_lake();
        ingest(
            &lake,
            &samples().join("k8s-audit.jsonl"),
            &FileIngest::default(),
        )
        .await;
        let partition = dir.path().join("lake/k8s_audit/event_date=2026-11-20");
        let files: Vec<_> = std::fs::read_dir(&partition)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1);
        let file = files[0].clone();
        (dir, file)
    }

    #[tokio::test]
    async fn files_are_partitioned_by_day_sorted_by_time_zstd_with_times_as_differences() {
        let (_dir, file) = sample_day_file().await;
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&file).unwrap()).unwrap();
        let row_group = builder.metadata().row_group(0);
        let column = row_group.column(0);
        assert_eq!(column.column_path().string(), "event_time");
        assert!(format!("{:?}", column.compression()).starts_with("ZSTD"));
        // Times and offsets are stored as differences, text through a dictionary but for
        // documents and ids, and statistics kept where they prune.
        let audit = Table::K8sAudit;
        let unique = audit.unique_columns();
        let (mut unique_seen, mut lists_seen) = (0, 0);
        for c in row_group.columns() {
            let path = c.column_path().string();
            // A list's values are a leaf of their own: `user_groups.list.element`.
            let name = path.split('.').next().unwrap();
            lists_seen += usize::from(name != path);
            let encodings: Vec<Encoding> = c.encodings().collect();
            let as_differences = encodings.contains(&Encoding::DELTA_BINARY_PACKED);
            let dictionary = encodings.contains(&Encoding::RLE_DICTIONARY);
            match name {
                "event_time"
                | "stage_time"
                | "request_received_time"
                | "_offset"
                | "_ingested_at" => {
                    assert!(as_differences && !dictionary, "{name}: {encodings:?}")
                }
                "verb" | "user_name" | "_source" | "stage" | "user_agent" => {
                    assert!(dictionary && !as_differences, "{name}: {encodings:?}")
                }
                name if unique.contains(&name) => {
                    assert!(!dictionary && !as_differences, "{name}: {encodings:?}");
                    unique_seen += 1;
                }
                _ => {}
            }
            assert_eq!(
                c.statistics().is_some(),
                audit.keeps_statistics(name),
                "{path}: statistics"
            );
        }
        assert_eq!(unique_seen, unique.len(), "{unique:?} not all in the file");
        assert_eq!(
            lists_seen, 3,
            "user_groups, impersonated_groups, source_ips"
        );
        for (name, kept) in [("resource", true), ("cluster", true), ("stage", false)] {
            assert_eq!(audit.keeps_statistics(name), kept, "{name}");
        }
        let batches: Vec<RecordBatch> = builder.build().unwrap().map(|b| b.unwrap()).collect();
        let mut previous = i64::MIN;
        for b in &batches {
            let times = arrow::compute::cast(
                b.column_by_name("event_time").unwrap(),
                &arrow::datatypes::DataType::Int64,
            )
            .unwrap();
            for &t in times.as_primitive::<arrow::datatypes::Int64Type>().values() {
                assert!(t >= previous, "not sorted by time");
                previous = t;
            }
        }
    }

    #[tokio::test]
    async fn lookup_columns_carry_bloom_filters_that_answer_for_their_values() {
        use parquet::file::properties::ReaderProperties;
        use parquet::file::reader::FileReader;
        use parquet::file::serialized_reader::{ReadOptionsBuilder, SerializedFileReader};
        let (_dir, file) = sample_day_file().await;
        let options = ReadOptionsBuilder::new()
            .with_reader_properties(
                ReaderProperties::builder()
                    .set_read_bloom_filter(true)
                    .build(),
            )
            .build();
        let reader =
            SerializedFileReader::new_with_options(std::fs::File::open(&file).unwrap(), options)
                .unwrap();
        let row_group = reader.get_row_group(0).unwrap();
        let metadata = row_group.metadata();
        let column = |name: &str| {
            (0..metadata.num_columns())
                .find(|&i| metadata.column(i).column_path().string() == name)
                .unwrap_or_else(|| panic!("no column {name}"))
        };
        for name in Table::K8sAudit.lookup_columns() {
            assert!(
                row_group.get_column_bloom_filter(column(name)).is_some(),
                "{name} has no bloom filter"
            );
        }
        for name in ["request_object", "user_agent", "audit_id", "event_time"] {
            assert!(
                row_group.get_column_bloom_filter(column(name)).is_none(),
                "{name} should have no bloom filter"
            );
        }
        // The sample holds secrets read by a service account, and no such resource as
        // `nonexistentthings`: a reader skips this row group when asked for it.
        let resource = row_group
            .get_column_bloom_filter(column("resource"))
            .unwrap();
        assert!(resource.check(&"secrets"));
        assert!(!resource.check(&"nonexistentthings"));
        let verb = row_group.get_column_bloom_filter(column("verb")).unwrap();
        assert!(verb.check(&"get"));
        assert!(!verb.check(&"escalate-everything"));
    }

    #[tokio::test]
    async fn bounded_batches_become_several_files_in_one_commit() {
        let (_dir, lake) = new_lake();
        let options = FileIngest {
            limits: rows_per_batch(100),
            ..FileIngest::default()
        };
        let report = ingest(&lake, &samples().join("hubble.jsonl"), &options).await;
        assert_eq!(report.rows[&Table::NetworkFlows], 427);
        let delta = table(&lake, Table::NetworkFlows).await.unwrap();
        // Version 0 created the table; version 1 holds all the files: at least five of at
        // most 100 rows (each decoding worker gets its share of the limit, so more on more
        // cores).
        assert_eq!(delta.version(), Some(1));
        let files = delta.get_file_uris().unwrap().count();
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert!(
            (5..=5 * workers + workers).contains(&files),
            "{files} files for 427 rows at 100 rows per batch and {workers} workers"
        );
        assert_eq!(row_count(&lake, Table::NetworkFlows).await, 427);
    }
    /// Records are decoded by one worker per core, a chunk at a time: every line lands
    /// once, with its own line number, whichever worker took it.
    #[tokio::test]
    async fn records_decoded_in_parallel_land_once_each_with_their_line() {
        let (dir, lake) = new_lake();
        let one = std::fs::read_to_string(samples().join("k8s-audit.jsonl")).unwrap();
        let first = one.lines().next().unwrap().to_owned();
        let lines: Vec<String> = (0..5_000)
            .map(|i| {
                let id = first
                    .split("\"auditID\":\"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap();
                first.replacen(id, &format!("parallel-{i}"), 1)
            })
            .collect();
        let path = dir.path().join("many.jsonl");
        std::fs::write(&path, lines.join("\n")).unwrap();
        let report = ingest(&lake, &path, &FileIngest::default()).await;
        assert_eq!(report.rows[&Table::K8sAudit], 5_000);
        let batches = read_table(&lake, Table::K8sAudit).await;
        let mut offsets = ints(&batches, "_offset");
        offsets.sort();
        assert_eq!(offsets, (1..=5_000).collect::<Vec<i64>>());
        let ids = strings(&batches, "audit_id");
        assert_eq!(
            ids.iter().collect::<std::collections::BTreeSet<_>>().len(),
            5_000
        );
    }

    /// A VPC flow log's header decides how the lines after it read, so it is decoded in
    /// order even after unrecognised lines went to the parallel workers.
    #[tokio::test]
    async fn a_vpc_log_after_unrecognised_lines_is_decoded_in_order() {
        let (dir, lake) = new_lake();
        let vpc = std::fs::read_to_string(samples().join("aws-vpc-flow.log")).unwrap();
        let (header, data) = vpc.split_once('\n').unwrap();
        // Several chunks' worth of lines, all read through the one header.
        let path = dir.path().join("noise-then-vpc.log");
        std::fs::write(
            &path,
            format!("%%% noise\n### more noise\n{header}\n{}", data.repeat(8)),
        )
        .unwrap();
        let report = ingest(&lake, &path, &FileIngest::default()).await;
        let once = ingest(
            &new_lake().1,
            &samples().join("aws-vpc-flow.log"),
            &FileIngest::default(),
        )
        .await;
        assert_eq!(report.dead_letters(), 2 + 8 * once.dead_letters());
        assert_eq!(
            report.rows[&Table::NetworkFlows],
            8 * once.rows[&Table::NetworkFlows]
        );
        let dead = strings(&read_table(&lake, Table::DeadLetters).await, "reason");
        assert!(
            dead.iter().all(|r| r.contains("format not recognised")),
            "{dead:?}"
        );
    }
}

mod exactly_once {
    use super::*;

    #[tokio::test]
    async fn ingesting_the_same_content_again_adds_nothing() {
        let (dir, lake) = new_lake();
        let path = samples().join("tetragon.jsonl");
        let first = ingest(&lake, &path, &FileIngest::default()).await;
        assert!(!first.already_ingested);
        let version = table(&lake, Table::RuntimeEvents).await.unwrap().version();
        let again = ingest(&lake, &path, &FileIngest::default()).await;
        assert!(again.already_ingested);
        assert!(again.rows.is_empty());
        // The same bytes under another name are the same evidence.
        let copy = dir.path().join("renamed.jsonl");
        std::fs::copy(&path, &copy).unwrap();
        assert!(
            ingest(&lake, &copy, &FileIngest::default())
                .await
                .already_ingested
        );
        assert_eq!(
            table(&lake, Table::RuntimeEvents).await.unwrap().version(),
            version
        );
        assert_eq!(
            row_count(&lake, Table::RuntimeEvents).await,
            first.rows[&Table::RuntimeEvents] as usize
        );
    }

    #[tokio::test]
    async fn one_ingester_over_several_inputs_commits_each_to_its_own_tables() {
        let (dir, lake) = new_lake();
        let mut ingester = FileIngester::new(&lake, FileIngest::default());
        let input = |name: &str| InputPath::File(samples().join(name));
        let audit = ingester
            .ingest(&input("k8s-audit.jsonl"), Arc::new(NoProgress))
            .await
            .unwrap();
        let audit_version = table(&lake, Table::K8sAudit).await.unwrap().version();
        // A second input with no audit rows: the audit table's writer, kept from the first
        // input, commits nothing (no empty commit carrying the other input's marker).
        let flows = ingester
            .ingest(&input("hubble.jsonl"), Arc::new(NoProgress))
            .await
            .unwrap();
        assert!(flows.rows.contains_key(&Table::NetworkFlows));
        assert_eq!(
            table(&lake, Table::K8sAudit).await.unwrap().version(),
            audit_version
        );
        // The kept writers know what landed: the first input again adds nothing, and
        // another writer's commit in between is built upon, not overwritten.
        let copy = dir.path().join("more-audit.jsonl");
        std::fs::copy(samples().join("gke-audit.jsonl"), &copy).unwrap();
        let other = ingest(&lake, &copy, &FileIngest::default()).await;
        let again = ingester
            .ingest(&input("k8s-audit.jsonl"), Arc::new(NoProgress))
            .await
            .unwrap();
        assert!(again.already_ingested);
        let gke = ingester
            .ingest(&input("gke-audit.jsonl"), Arc::new(NoProgress))
            .await
            .unwrap();
        assert!(gke.already_ingested, "{gke:?}");
        let more = ingester
            .ingest(&input("eks-cloudwatch.json"), Arc::new(NoProgress))
            .await
            .unwrap();
        assert_eq!(
            row_count(&lake, Table::K8sAudit).await as u64,
            audit.rows[&Table::K8sAudit]
                + other.rows[&Table::K8sAudit]
                + more.rows[&Table::K8sAudit]
        );
    }

    #[tokio::test]
    async fn a_table_finished_later_gets_only_what_it_lacks() {
        // A file whose rows reached one table but whose dead letters did not (a crash
        // between the two commits) is completed by ingesting it again.
        let (dir, lake) = new_lake();
        let good = std::fs::read_to_string(samples().join("falco.jsonl")).unwrap();
        let path = dir.path().join("mixed.jsonl");
        std::fs::write(&path, format!("{good}{{\"rule\": 5}}\n")).unwrap();
        let report = ingest(&lake, &path, &FileIngest::default()).await;
        assert_eq!(report.dead_letters(), 1);
        std::fs::remove_dir_all(dir.path().join("lake/dead_letters")).unwrap();
        let again = ingest(&lake, &path, &FileIngest::default()).await;
        assert!(!again.already_ingested);
        assert_eq!(again.rows.get(&Table::RuntimeEvents), None);
        assert_eq!(again.dead_letters(), 1);
        assert_eq!(row_count(&lake, Table::RuntimeEvents).await, 7);
    }
}

mod bad_input {
    use super::*;

    const GOOD: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"ID","stage":"ResponseComplete","verb":"get","user":{"username":"alice"},"objectRef":{"resource":"pods","namespace":"default","name":"web"},"responseStatus":{"code":200},"requestReceivedTimestamp":"2024-05-01T10:00:00.000001Z"}"#;

    fn good(id: u32) -> String {
        GOOD.replace("\"ID\"", &format!("\"good-{id}\""))
    }

    #[tokio::test]
    async fn good_records_land_and_each_bad_one_becomes_one_dead_letter() {
        let (dir, lake) = new_lake();
        let huge_value = "x".repeat(10 << 20);
        let huge = GOOD.replace(
            "\"ID\"",
            &format!("\"huge\",\"annotations\":{{\"big\":\"{huge_value}\"}}"),
        );
        let mut input: Vec<u8> = Vec::new();
        let lines: Vec<Vec<u8>> = vec![
            good(1).into_bytes(),                        // 1 good
            b"".to_vec(),                                // 2 blank
            format!("{}\r", good(2)).into_bytes(),       // 3 good, CRLF
            good(3).as_bytes()[..60].to_vec(),           // 4 truncated
            GOOD.replace("200", "\"200\"").into_bytes(), // 5 wrong type
            GOOD.replace("\"verb\"", "\"newField\":[1],\"verb\"")
                .replace("\"ID\"", "\"unknown-field\"")
                .into_bytes(), // 6 good
            GOOD.replace("requestReceivedTimestamp", "someOtherTime")
                .into_bytes(), // 7 missing time
            [
                b"{\"kind\":\"Event\",\"verb\":\"get\",\"user\":{\"username\":\"".as_slice(),
                &[0xff, 0xfe],
                b"\"}}",
            ]
            .concat(), // 8 not UTF-8
            b"   ".to_vec(),                             // 9 blank
            huge.into_bytes(),                           // 10 good, 10 MB
            b"garbage that is not json".to_vec(),        // 11 bad
        ];
        for line in &lines {
            input.extend_from_slice(line);
            input.push(b'\n');
        }
        let path = dir.path().join("mixed.jsonl");
        std::fs::write(&path, &input).unwrap();
        let options = FileIngest {
            format: Some(SourceFormat::K8sAudit),
            ..FileIngest::default()
        };
        let report = ingest(&lake, &path, &options).await;
        assert_eq!(report.records, 9);
        assert_eq!(report.rows[&Table::K8sAudit], 4);
        assert_eq!(report.dead_letters(), 5);

        let letters = read_table(&lake, Table::DeadLetters).await;
        let offsets: Vec<i64> = letters
            .iter()
            .flat_map(|b| {
                b.column_by_name("_offset")
                    .unwrap()
                    .as_primitive::<arrow::datatypes::Int64Type>()
                    .values()
                    .to_vec()
            })
            .collect();
        let mut sorted = offsets.clone();
        sorted.sort();
        assert_eq!(sorted, [4, 5, 7, 8, 11]);
        let reasons = strings(&letters, "reason");
        assert!(
            reasons.iter().any(|r| r.starts_with("invalid JSON")),
            "{reasons:?}"
        );
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("missing requestReceivedTimestamp")),
            "{reasons:?}"
        );
        assert!(reasons.iter().all(|r| !r.contains('\n')));
        let sources = strings(&letters, "_source");
        assert!(sources
            .iter()
            .all(|s| s.starts_with("file:") && s.ends_with("mixed.jsonl")));
        // The raw bytes are kept exactly, invalid UTF-8 included.
        let raw: Vec<Vec<u8>> = letters
            .iter()
            .flat_map(|b| {
                let c = b.column_by_name("raw").unwrap().as_binary::<i32>().clone();
                (0..c.len())
                    .map(move |i| c.value(i).to_vec())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert!(raw.contains(&lines[7]));
        assert!(raw.contains(&lines[3]));

        let ids = strings(&read_table(&lake, Table::K8sAudit).await, "audit_id");
        let mut ids = ids;
        ids.sort();
        assert_eq!(ids, ["good-1", "good-2", "huge", "unknown-field"]);
    }

    #[tokio::test]
    async fn an_empty_file_writes_nothing() {
        let (dir, lake) = new_lake();
        let path = dir.path().join("empty.jsonl");
        std::fs::write(&path, b"").unwrap();
        let report = ingest(&lake, &path, &FileIngest::default()).await;
        assert_eq!((report.records, report.rows.len()), (0, 0));
        let report = ingest(
            &lake,
            &samples().join("MANIFEST.tsv"),
            &FileIngest::default(),
        )
        .await;
        // A file in no known format: every record is a dead letter, nothing else.
        assert_eq!(report.format, None);
        assert_eq!(report.dead_letters(), report.records);
    }

    #[tokio::test]
    async fn gzip_is_read_and_a_stream_cut_short_keeps_what_came_before() {
        let (dir, lake) = new_lake();
        let plain = std::fs::read(samples().join("hubble.jsonl")).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        let whole = dir.path().join("flows.jsonl.gz");
        std::fs::write(&whole, &gz).unwrap();
        let report = ingest(&lake, &whole, &FileIngest::default()).await;
        assert_eq!(report.rows[&Table::NetworkFlows], 427);

        let cut = dir.path().join("cut.jsonl.gz");
        std::fs::write(&cut, &gz[..gz.len() / 2]).unwrap();
        let report = ingest(&lake, &cut, &FileIngest::default()).await;
        let landed = report.rows[&Table::NetworkFlows];
        assert!(landed > 100 && landed < 427, "{landed}");
        assert_eq!(report.dead_letters(), 1);
        let reasons = strings(&read_table(&lake, Table::DeadLetters).await, "reason");
        assert!(reasons[0].starts_with("input ends early"), "{reasons:?}");
    }

    #[tokio::test]
    async fn a_missing_file_is_an_error_naming_it() {
        let (_dir, lake) = new_lake();
        let err = ingest_file(
            &lake,
            &InputPath::File("/no/such/file.json".into()),
            &FileIngest::default(),
            Arc::new(NoProgress),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("/no/such/file.json"), "{err}");
    }
}

mod staged_files {
    //! A table writer encodes staged batches concurrently and commits them in one commit.

    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};
    use kubetrail_lake::{CommitMarker, TableWriter};
    use kubetrail_schemas::{DeadLetter, DeadLetterBuffer, Provenance};

    /// 2025-11-20T00:00:00Z, in µs.
    const MIDNIGHT: i64 = 1_763_596_800_000_000;

    /// A `dead_letters` batch of `rows` letters over two days, numbered from `first`.
    fn letters(first: i64, rows: i64) -> RecordBatch {
        let mut buffer = DeadLetterBuffer::default();
        for n in 0..rows {
            let provenance = Provenance {
                source: Arc::from("file:letters"),
                offset: first + n,
                // Half on each day, so each batch is split into two files.
                ingested_at: MIDNIGHT + n * 2 * 86_400_000_000 / rows,
            };
            let letter = DeadLetter {
                format: "auto".into(),
                reason: format!("letter {}", first + n),
                raw: b"not json".to_vec(),
            };
            buffer.push(letter, &provenance);
        }
        buffer.take_batch().unwrap().unwrap()
    }

    fn marker(n: i64) -> CommitMarker {
        CommitMarker {
            app_id: "test/staged".into(),
            version: n,
        }
    }

    /// The `_offset` of the first row of each file the latest commit added, in log order.
    fn committed_files_first_offsets(dir: &Path, version: u64) -> Vec<i64> {
        let log = dir.join(format!("lake/dead_letters/_delta_log/{version:020}.json"));
        let mut firsts = Vec::new();
        for line in std::fs::read_to_string(log).unwrap().lines() {
            let action: serde_json::Value = serde_json::from_str(line).unwrap();
            let Some(path) = action["add"]["path"].as_str() else {
                continue;
            };
            let file = std::fs::File::open(dir.join("lake/dead_letters").join(path)).unwrap();
            let mut reader = ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .build()
                .unwrap();
            firsts.push(ints(&[reader.next().unwrap().unwrap()], "_offset")[0]);
        }
        firsts
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_written_at_once_are_committed_together_in_the_order_they_were_staged() {
        let (dir, lake) = new_lake();
        let mut writer = TableWriter::open(&lake, Table::DeadLetters).await.unwrap();
        // More batches than cores: staging waits for the oldest while others are written.
        // Large and small alternate, so that a later batch is done before an earlier one.
        let sizes: [i64; 7] = [4_000, 10, 4_000, 10, 4_000, 10, 4_000];
        let mut firsts = Vec::new();
        for rows in sizes {
            let first = firsts.last().map_or(0, |(f, r)| f + r);
            writer.stage(letters(first, rows)).await.unwrap();
            firsts.push((first, rows));
        }
        let total: i64 = sizes.iter().sum();
        assert_eq!(writer.staged_rows() as i64, total);
        let version = writer.commit(&[marker(1)], &[]).await.unwrap();
        assert_eq!(row_count(&lake, Table::DeadLetters).await as i64, total);
        // Two days per batch, one file each (a batch's days in no set order), the batches'
        // files in the order the batches came.
        let files = committed_files_first_offsets(dir.path(), version);
        let batches: Vec<Vec<i64>> = files
            .chunks(2)
            .map(|days| {
                let mut days = days.to_vec();
                days.sort();
                days
            })
            .collect();
        let expected: Vec<Vec<i64>> = firsts
            .iter()
            .map(|(first, rows)| vec![*first, first + rows / 2])
            .collect();
        assert_eq!(batches, expected);
        assert_eq!(writer.staged_rows(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_that_cannot_be_written_fails_the_commit_and_publishes_nothing() {
        let (_dir, lake) = new_lake();
        let mut writer = TableWriter::open(&lake, Table::DeadLetters).await.unwrap();
        writer.stage(letters(0, 10)).await.unwrap();
        writer.commit(&[marker(1)], &[]).await.unwrap();
        let before = table(&lake, Table::DeadLetters).await.unwrap().version();

        // A batch whose `reason` is a number: the table holds text there.
        let good = letters(10, 10);
        let mut fields: Vec<Field> = good
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        let reason = good.schema().index_of("reason").unwrap();
        fields[reason] = Field::new("reason", DataType::Int64, false);
        let mut columns = good.columns().to_vec();
        columns[reason] = Arc::new(arrow::array::Int64Array::from(vec![7; 10]));
        let bad = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();

        writer.stage(good).await.unwrap();
        // Staging may report the failure now or leave it to the commit; either way the
        // commit must refuse, or the marker would advance over rows that are not there.
        let staged = writer.stage(bad).await;
        let committed = writer.commit(&[marker(2)], &[]).await;
        let err = match (staged, committed) {
            (Err(e), _) | (Ok(()), Err(e)) => e.to_string(),
            (Ok(()), Ok(v)) => panic!("committed version {v} with a batch that failed"),
        };
        assert!(
            err.contains("dead_letters") && err.contains("does not match"),
            "{err}"
        );
        assert_eq!(
            table(&lake, Table::DeadLetters).await.unwrap().version(),
            before
        );
        assert_eq!(row_count(&lake, Table::DeadLetters).await, 10);

        // The writer starts clean: the next batch commits alone.
        writer.discard();
        writer.stage(letters(20, 10)).await.unwrap();
        writer.commit(&[marker(2)], &[]).await.unwrap();
        assert_eq!(row_count(&lake, Table::DeadLetters).await, 20);
    }
}

mod maintenance {
    use super::*;
    use kubetrail_lake::maintenance::{drop_before, optimize, vacuum, Days, Retention};

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    fn files_on_disk(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "parquet")
            })
            .count()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn optimize_compacts_small_files_into_one_sorted_file_and_vacuum_removes_the_old_ones() {
        let (dir, lake) = new_lake();
        let small = FileIngest {
            limits: rows_per_batch(2),
            ..FileIngest::default()
        };
        ingest(&lake, &samples().join("hubble.jsonl"), &small).await;
        ingest(&lake, &samples().join("calico-flow.jsonl"), &small).await;
        let before = read_table(&lake, Table::NetworkFlows).await;
        let summaries_before = sorted(strings(&before, "summary"));
        let partition = dir.path().join("lake/network_flows/event_date=2026-11-20");
        let files_before = table(&lake, Table::NetworkFlows)
            .await
            .unwrap()
            .get_file_uris()
            .unwrap()
            .count();
        assert!(files_before > 200, "{files_before}");

        // A reader polling throughout sees every row at every version, never a mix.
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (lake, done) = (lake.clone(), done.clone());
            tokio::spawn(async move {
                let mut reads = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) || reads == 0 {
                    assert_eq!(row_count(&lake, Table::NetworkFlows).await, 457);
                    reads += 1;
                }
                reads
            })
        };
        let report = optimize(&lake, Table::NetworkFlows, Days::All)
            .await
            .unwrap();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reader.await.unwrap() > 0);
        assert_eq!(
            (
                report.partitions,
                report.files_removed as usize,
                report.files_added
            ),
            (1, files_before, 1)
        );
        let after = read_table(&lake, Table::NetworkFlows).await;
        assert_eq!(after.iter().map(|b| b.num_rows()).sum::<usize>(), 457);
        assert_eq!(sorted(strings(&after, "summary")), summaries_before);
        let times = ints(&after, "event_time");
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "not sorted by time");
        // A second run has nothing to do.
        assert_eq!(
            optimize(&lake, Table::NetworkFlows, Days::All)
                .await
                .unwrap()
                .partitions,
            0
        );

        assert_eq!(files_on_disk(&partition), files_before + 1);
        let deleted = vacuum(
            &lake,
            Table::NetworkFlows,
            Retention::forced(std::time::Duration::ZERO),
        )
        .await
        .unwrap();
        assert_eq!(deleted, files_before);
        assert_eq!(files_on_disk(&partition), 1);
        assert_eq!(row_count(&lake, Table::NetworkFlows).await, 457);
    }

    #[tokio::test]
    async fn retention_drops_whole_old_partitions_only() {
        let (dir, lake) = new_lake();
        let fixtures =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/k8s-audit/falco");
        ingest(
            &lake,
            &fixtures.join("exec_pod.json"),
            &FileIngest::default(),
        )
        .await; // 2018-10-26
        ingest(
            &lake,
            &samples().join("gke-audit.jsonl"),
            &FileIngest::default(),
        )
        .await; // 2026-11-20
        let cutoff = chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
        assert_eq!(
            drop_before(&lake, Table::K8sAudit, cutoff).await.unwrap(),
            1
        );
        assert_eq!(row_count(&lake, Table::K8sAudit).await, 15);
        assert_eq!(
            drop_before(&lake, Table::K8sAudit, cutoff).await.unwrap(),
            0
        );
        // Nothing is lost until vacuum: the old version still has its file.
        assert!(dir
            .path()
            .join("lake/k8s_audit/event_date=2018-10-26")
            .is_dir());
        assert_eq!(
            drop_before(&lake, Table::RuntimeEvents, cutoff)
                .await
                .unwrap(),
            0
        );
    }
}

/// `ingest kafka` against librdkafka's in-process cluster (real protocol, loopback ports).
mod kafka {
    use super::*;
    use std::collections::HashSet;
    use std::time::{Duration, Instant};

    use kubetrail_ingest::kafka::embedded::EmbeddedKafka;
    use kubetrail_ingest::kafka::{produce, Produce, ProduceReport};
    use kubetrail_ingest::{ingest_kafka, IngestMetrics, KafkaIngest, KafkaReport, TopicSpec};
    use tokio::sync::oneshot;

    fn options(brokers: &str, group: &str, topics: &[(&str, Option<SourceFormat>)]) -> KafkaIngest {
        let topics = topics
            .iter()
            .map(|(name, format)| TopicSpec {
                name: (*name).to_owned(),
                format: *format,
            })
            .collect();
        let mut o = KafkaIngest::new(brokers, group, topics);
        o.linger = Duration::from_millis(300);
        o.compact_every = None;
        o.client_options.set("session.timeout.ms", "6000").unwrap();
        o.client_options
            .set("heartbeat.interval.ms", "500")
            .unwrap();
        o
    }

    async fn send(
        brokers: &str,
        topic: &str,
        paths: &[PathBuf],
        rate: Option<u32>,
    ) -> ProduceReport {
        let options = Produce {
            brokers: brokers.to_owned(),
            topic: topic.to_owned(),
            rate,
            key_by_file: false,
            client_options: Default::default(),
        };
        let paths: Vec<InputPath> = paths.iter().cloned().map(InputPath::File).collect();
        tokio::task::spawn_blocking(move || produce(&options, &paths))
            .await
            .unwrap()
            .unwrap()
    }

    struct Running {
        stop: oneshot::Sender<()>,
        task: tokio::task::JoinHandle<KafkaReport>,
        metrics: Arc<IngestMetrics>,
    }

    impl Running {
        async fn stop(self) -> KafkaReport {
            let _ = self.stop.send(());
            self.task.await.unwrap()
        }
    }

    /// An ingester running in the background until stopped.
    fn spawn_ingester(lake: &Lake, options: KafkaIngest) -> Running {
        let (stop, stopped) = oneshot::channel::<()>();
        let (lake, metrics) = (lake.clone(), IngestMetrics::new());
        let task = {
            let metrics = metrics.clone();
            tokio::spawn(async move {
                ingest_kafka(&lake, options, metrics, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap()
            })
        };
        Running {
            stop,
            task,
            metrics,
        }
    }

    async fn until_caught_up(lake: &Lake, mut options: KafkaIngest) -> KafkaReport {
        options.until_caught_up = true;
        ingest_kafka(lake, options, IngestMetrics::new(), std::future::pending())
            .await
            .unwrap()
    }

    /// The marker of partition `p` of topic `audit` in the version `audit` has loaded.
    async fn audit_marker(audit: &DeltaTable, p: i32) -> Option<i64> {
        audit
            .snapshot()
            .unwrap()
            .transaction_version(
                audit.log_store().as_ref(),
                &format!("kubetrail:kafka/audit/{p}"),
            )
            .await
            .unwrap()
    }

    /// The pool's promise: every commit, mid-stream or not, publishes exactly the records
    /// up to its markers. Small batches make the workers' full batches trigger most
    /// commits while the consumer keeps taking records in; each version of the table is
    /// then read back, and each partition's rows must be offsets 0..=marker, each once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_commit_publishes_exactly_the_records_up_to_its_markers() {
        // 6 partitions: the mock cluster keeps at most 5 MiB of each, and 18 MB are sent.
        let kafka = EmbeddedKafka::start(1, &[("audit", 6)]).unwrap();
        let brokers = kafka.bootstrap_servers();
        let sample = samples().join("k8s-audit.jsonl");
        send(&brokers, "audit", &vec![sample; 50], None).await;
        let (_dir, lake) = new_lake();
        let mut o = options(
            &brokers,
            "commits",
            &[("audit", Some(SourceFormat::K8sAudit))],
        );
        o.limits = rows_per_batch(300);
        let report = until_caught_up(&lake, o).await;
        assert_eq!(report.records, 466 * 50);
        assert_eq!(
            rows_and_distinct(&lake, Table::K8sAudit).await,
            (23300, 23300)
        );

        let mut audit = table(&lake, Table::K8sAudit).await.unwrap();
        let latest = audit.version().unwrap();
        let mut checked = 0;
        for version in 1..=latest {
            audit.load_version(version).await.unwrap();
            let batches = read_version(&audit);
            let sources = strings(&batches, "_source");
            let offsets = ints(&batches, "_offset");
            for p in 0..6 {
                let marker = audit_marker(&audit, p).await;
                let source = format!("kafka:audit/{p}");
                let mut held: Vec<i64> = sources
                    .iter()
                    .zip(&offsets)
                    .filter(|(s, _)| **s == source)
                    .map(|(_, o)| *o)
                    .collect();
                held.sort_unstable();
                let expected: Vec<i64> = marker.map_or(Vec::new(), |m| (0..=m).collect());
                assert!(
                    held == expected,
                    "version {version}, partition {p}: marker {marker:?}, rows for {} \
                     offsets (first {:?}, last {:?})",
                    held.len(),
                    held.first(),
                    held.last()
                );
                checked += 1;
            }
        }
        // A commit waits for the chunks already handed over, so several full batches go
        // into one: 23k records make a handful of versions, each checked above.
        assert!(
            latest >= 4 && checked == 6 * latest,
            "{latest} versions, {checked}"
        );
    }

    /// Rows of a table, and how many distinct (partition, offset) pairs they come from.
    async fn rows_and_distinct(lake: &Lake, t: Table) -> (usize, usize) {
        let batches = read_table(lake, t).await;
        let keys: HashSet<(String, String)> = strings(&batches, "_source")
            .into_iter()
            .zip(strings(&batches, "_offset"))
            .collect();
        (batches.iter().map(|b| b.num_rows()).sum(), keys.len())
    }

    async fn wait_for_rows(lake: &Lake, t: Table, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while row_count(lake, t).await < n {
            assert!(Instant::now() < deadline, "{t} never reached {n} rows");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_topics_of_three_partitions_land_exactly_once_and_a_rerun_adds_nothing() {
        let kafka = EmbeddedKafka::start(3, &[("audit", 3), ("flows", 3), ("runtime", 3)]).unwrap();
        let brokers = kafka.bootstrap_servers();
        let sent = send(
            &brokers,
            "audit",
            &[samples().join("k8s-audit.jsonl")],
            None,
        )
        .await;
        assert_eq!(sent.records, 466);
        send(&brokers, "flows", &[samples().join("hubble.jsonl")], None).await;
        // One auto topic carrying two formats, told apart record by record.
        send(
            &brokers,
            "runtime",
            &[
                samples().join("tetragon.jsonl"),
                samples().join("falco.jsonl"),
            ],
            None,
        )
        .await;
        let (_dir, lake) = new_lake();
        let topics = [
            ("audit", Some(SourceFormat::K8sAudit)),
            ("flows", Some(SourceFormat::Hubble)),
            ("runtime", None),
        ];
        let report = until_caught_up(&lake, options(&brokers, "g1", &topics)).await;
        assert_eq!(report.records, 466 + 427 + 53);
        assert_eq!(rows_and_distinct(&lake, Table::K8sAudit).await, (466, 466));
        assert_eq!(
            rows_and_distinct(&lake, Table::NetworkFlows).await,
            (427, 427)
        );
        assert_eq!(
            rows_and_distinct(&lake, Table::RuntimeEvents).await,
            (53, 53)
        );
        assert_eq!(row_count(&lake, Table::DeadLetters).await, 0);
        let sources: HashSet<String> =
            strings(&read_table(&lake, Table::K8sAudit).await, "_source")
                .into_iter()
                .collect();
        assert_eq!(
            sources.len(),
            3,
            "records spread over the 3 partitions: {sources:?}"
        );
        assert!(sources.contains("kafka:audit/0"), "{sources:?}");

        // Every table holds every partition's marker at its last offset.
        let mut audit = lake.open_table("k8s_audit").await.unwrap().unwrap();
        audit.update_state().await.unwrap();
        let mut last = 0;
        for p in 0..3 {
            last += audit_marker(&audit, p).await.expect("marker") + 1;
        }
        assert_eq!(last, 466, "the markers' offsets account for every record");

        // Restarting the group reads nothing twice.
        let again = until_caught_up(&lake, options(&brokers, "g1", &topics)).await;
        assert_eq!(again.records, 0);
        assert_eq!(rows_and_distinct(&lake, Table::K8sAudit).await, (466, 466));
        // Nor does a group of another name: the markers say what the lake holds, not
        // what some group has read.
        let renamed = until_caught_up(&lake, options(&brokers, "renamed", &topics)).await;
        assert_eq!(renamed.records, 0, "{renamed:?}");
        assert_eq!(rows_and_distinct(&lake, Table::K8sAudit).await, (466, 466));
    }

    /// Records Kafka dropped (retention) before the lake held them. librdkafka's mock
    /// broker keeps at most 5 MiB per partition, dropping its oldest records beyond that,
    /// as a retention limit does; the ingester, away meanwhile, finds its next offset gone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_expired_in_kafka_before_the_lake_held_them_are_one_dead_letter_and_reading_goes_on(
    ) {
        let kafka = EmbeddedKafka::start(1, &[("audit", 1)]).unwrap();
        let brokers = kafka.bootstrap_servers();
        let dir = tempfile::tempdir().unwrap();
        let events: Vec<String> = std::fs::read_to_string(samples().join("k8s-audit.jsonl"))
            .unwrap()
            .lines()
            .take(10)
            .map(str::to_owned)
            .collect();
        let small = dir.path().join("small.jsonl");
        std::fs::write(&small, events.join("\n")).unwrap();
        let pad = "x".repeat(60_000);
        let big: Vec<String> = (0..120)
            .map(|i| events[i % 10].replacen('{', &format!("{{\"pad\":\"{pad}\","), 1))
            .collect();
        let large = dir.path().join("large.jsonl");
        std::fs::write(&large, big.join("\n")).unwrap();

        send(&brokers, "audit", std::slice::from_ref(&small), None).await;
        let (_lake_dir, lake) = new_lake();
        let topics = [("audit", Some(SourceFormat::K8sAudit))];
        let first = until_caught_up(&lake, options(&brokers, "retention", &topics)).await;
        assert_eq!(first.records, 10);
        // 7 MiB more than the lake holds: the broker drops the oldest, read or not.
        send(&brokers, "audit", &[large], None).await;
        send(&brokers, "audit", &[small], None).await;

        let metrics = IngestMetrics::new();
        let mut second = options(&brokers, "retention", &topics);
        second.until_caught_up = true;
        let report = ingest_kafka(&lake, second, metrics.clone(), std::future::pending())
            .await
            .unwrap();
        let expired = report.expired as i64;
        assert!(expired > 0 && expired < 120, "{report:?}");
        let dead = read_table(&lake, Table::DeadLetters).await;
        let reasons = strings(&dead, "reason");
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(
            reasons[0].starts_with(&format!(
                "offsets 10..{} of audit/0 ({expired} records) expired in Kafka",
                9 + expired
            )),
            "{reasons:?}"
        );
        assert_eq!(ints(&dead, "_offset"), [10]);
        assert_eq!(strings(&dead, "_source"), ["kafka:audit/0"]);
        // Every record Kafka still had is in, once.
        let held = 10 + 130 - expired as usize;
        assert_eq!(report.records as usize, 130 - expired as usize);
        assert_eq!(
            rows_and_distinct(&lake, Table::K8sAudit).await,
            (held, held)
        );
        assert!(
            metrics.render().contains(&format!(
                "kubetrail_kafka_expired_records_total{{topic=\"audit\",partition=\"0\"}} {expired}"
            )),
            "{}",
            metrics.render()
        );
        // The range is recorded once: a run from the lake's markers, under any group,
        // finds nothing new.
        let again = until_caught_up(&lake, options(&brokers, "other", &topics)).await;
        assert_eq!((again.records, again.expired), (0, 0));
        assert_eq!(row_count(&lake, Table::DeadLetters).await, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_ingesters_in_one_group_write_each_record_once_between_them() {
        let kafka = EmbeddedKafka::start(1, &[("audit", 3)]).unwrap();
        let brokers = kafka.bootstrap_servers();
        let file = samples().join("k8s-audit.jsonl");
        send(&brokers, "audit", &[file.clone(), file.clone(), file], None).await;
        let (_dir, lake) = new_lake();
        let topics = [("audit", Some(SourceFormat::K8sAudit))];
        let (a, b) = tokio::join!(
            until_caught_up(&lake, options(&brokers, "pair", &topics)),
            until_caught_up(&lake, options(&brokers, "pair", &topics)),
        );
        assert_eq!(
            rows_and_distinct(&lake, Table::K8sAudit).await,
            (1398, 1398)
        );
        let written = |r: &KafkaReport| r.rows.get(&Table::K8sAudit).copied().unwrap_or(0);
        assert_eq!(written(&a) + written(&b), 1398);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn members_joining_and_leaving_mid_stream_lose_and_repeat_nothing() {
        let kafka = EmbeddedKafka::start(1, &[("audit", 3)]).unwrap();
        let brokers = kafka.bootstrap_servers();
        let (_dir, lake) = new_lake();
        let topics = [("audit", Some(SourceFormat::K8sAudit))];
        let a = spawn_ingester(&lake, options(&brokers, "rebalance", &topics));
        let file = samples().join("k8s-audit.jsonl");
        let producing = {
            let brokers = brokers.clone();
            tokio::spawn(async move { send(&brokers, "audit", &vec![file; 6], Some(200)).await })
        };
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let b = spawn_ingester(&lake, options(&brokers, "rebalance", &topics));
        // B joins (a rebalance) and commits its share; then it leaves while records still
        // stream (another rebalance) and its partitions go back to A.
        let deadline = Instant::now() + Duration::from_secs(60);
        while b.metrics.rows_written(Table::K8sAudit) == 0 {
            assert!(Instant::now() < deadline, "B never got a partition");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let b = b.stop().await;
        assert!(!producing.is_finished(), "the stream ended before B left");
        assert_eq!(producing.await.unwrap().records, 2796);
        wait_for_rows(&lake, Table::K8sAudit, 2796).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let a = a.stop().await;
        assert_eq!(
            rows_and_distinct(&lake, Table::K8sAudit).await,
            (2796, 2796)
        );
        assert!(a.commits > 0, "A committed nothing");
        assert!(
            b.records > 0,
            "B never got a partition: no rebalance happened"
        );
        let total = a.rows.get(&Table::K8sAudit).copied().unwrap_or(0)
            + b.rows.get(&Table::K8sAudit).copied().unwrap_or(0);
        assert_eq!(total, 2796);
    }

    /// A counter of the ingester's Prometheus text, summed over its labels.
    fn counter(metrics: &IngestMetrics, name: &str) -> u64 {
        metrics
            .render()
            .lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    async fn wait_for_counter(metrics: &IngestMetrics, name: &str, at_least: u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while counter(metrics, name) < at_least {
            assert!(
                Instant::now() < deadline,
                "{name} never reached {at_least}:\n{}",
                metrics.render()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A one-partition topic of 466 audit records, all taken in by an ingester that has
    /// committed none of them yet (its linger is long), so that the test can act meanwhile.
    async fn holding_uncommitted(group: &str) -> (EmbeddedKafka, tempfile::TempDir, Lake, Running) {
        let kafka = EmbeddedKafka::start(1, &[("audit", 1)]).unwrap();
        let brokers = kafka.bootstrap_servers();
        send(
            &brokers,
            "audit",
            &[samples().join("k8s-audit.jsonl")],
            None,
        )
        .await;
        let (dir, lake) = new_lake();
        let mut options = options(&brokers, group, &[("audit", Some(SourceFormat::K8sAudit))]);
        options.linger = Duration::from_secs(4);
        let ingester = spawn_ingester(&lake, options);
        wait_for_counter(&ingester.metrics, "kubetrail_records_total", 466).await;
        assert_eq!(
            row_count(&lake, Table::K8sAudit).await,
            0,
            "committed early"
        );
        (kafka, dir, lake, ingester)
    }

    /// The group decides the member is gone (its heartbeats are refused) while it holds
    /// records it has not committed: it drops them without committing, rejoins, and reads
    /// the partition again from the lake; every record lands once and the ingester runs on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_member_whose_session_expired_commits_nothing_and_reads_again() {
        let (kafka, _dir, lake, ingester) = holding_uncommitted("expiring").await;
        kafka.expire_sessions(3);
        wait_for_counter(&ingester.metrics, "kubetrail_rewinds_total", 1).await;
        wait_for_rows(&lake, Table::K8sAudit, 466).await;
        let report = ingester.stop().await;
        assert_eq!(rows_and_distinct(&lake, Table::K8sAudit).await, (466, 466));
        assert!(report.rewinds >= 1, "{report:?}");
        assert!(
            report.records >= 2 * 466,
            "nothing was read again: {report:?}"
        );
    }

    /// Another ingester committed this one's partition past where this one started (its
    /// assignment moved and it has not heard yet): this one's commit is fenced, and rather
    /// than exit it drops what it held and reads on from the other one's marker.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fenced_commit_rewinds_to_the_new_owners_marker_and_runs_on() {
        let (_kafka, _dir, lake, ingester) = holding_uncommitted("fenced").await;
        // The other owner, having written offsets 0..=199, moves the marker.
        let mut other = kubetrail_lake::TableWriter::open(&lake, Table::K8sAudit)
            .await
            .unwrap();
        let marker = kubetrail_lake::CommitMarker {
            app_id: "kubetrail:kafka/audit/0".into(),
            version: 199,
        };
        other.commit(&[marker], &[]).await.unwrap();
        wait_for_counter(&ingester.metrics, "kubetrail_rewinds_total", 1).await;
        wait_for_rows(&lake, Table::K8sAudit, 266).await;
        let report = ingester.stop().await;
        let batches = read_table(&lake, Table::K8sAudit).await;
        let offsets: Vec<i64> = strings(&batches, "_offset")
            .iter()
            .map(|o| o.parse().unwrap())
            .collect();
        assert_eq!(rows_and_distinct(&lake, Table::K8sAudit).await, (266, 266));
        assert_eq!(offsets.iter().min(), Some(&200), "read from the new marker");
        assert_eq!(report.rewinds, 1, "{report:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_records_become_dead_letters_and_the_stream_goes_on() {
        let kafka = EmbeddedKafka::start(1, &[("audit", 3), ("mixed", 1)]).unwrap();
        let brokers = kafka.bootstrap_servers();
        let dir = tempfile::tempdir().unwrap();
        let good: Vec<String> = std::fs::read_to_string(samples().join("k8s-audit.jsonl"))
            .unwrap()
            .lines()
            .take(4)
            .map(str::to_owned)
            .collect();
        let lines = [
            good[0].as_str(),
            "{\"kind\":\"Event\",\"apiVersion\":\"audit.k8s.io/v1\",\"verb\":",
            good[1].as_str(),
            "garbage that is not JSON",
            "{\"kind\":\"Event\",\"apiVersion\":\"audit.k8s.io/v1\",\"verb\":\"get\"}",
            good[2].as_str(),
            "[1, 2, 3]",
            good[3].as_str(),
        ];
        let path = dir.path().join("mixed.jsonl");
        std::fs::write(&path, lines.join("\n")).unwrap();
        send(&brokers, "audit", std::slice::from_ref(&path), None).await;
        let unknown = dir.path().join("unknown.txt");
        std::fs::write(&unknown, "hello, this is no format at all\n").unwrap();
        send(&brokers, "mixed", &[unknown], None).await;
        let (_dir, lake) = new_lake();
        let topics = [("audit", Some(SourceFormat::K8sAudit)), ("mixed", None)];
        let report = until_caught_up(&lake, options(&brokers, "bad", &topics)).await;
        assert_eq!(report.records, 9);
        assert_eq!(row_count(&lake, Table::K8sAudit).await, 4);
        let dead = read_table(&lake, Table::DeadLetters).await;
        let reasons = strings(&dead, "reason");
        assert_eq!(reasons.len(), 5, "{reasons:?}");
        assert!(
            reasons.iter().any(|r| r.contains("format not recognised")),
            "{reasons:?}"
        );
        let sources = strings(&dead, "_source");
        assert!(
            sources.iter().all(|s| s.starts_with("kafka:")),
            "{sources:?}"
        );
        let raw = strings(&dead, "raw_preview");
        assert!(
            raw.iter().any(|r| r.contains("garbage that is not JSON")),
            "{raw:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_broker_that_goes_away_and_returns_costs_no_record() {
        let kafka = EmbeddedKafka::start(1, &[("audit", 3)]).unwrap();
        let brokers = kafka.bootstrap_servers();
        let file = samples().join("k8s-audit.jsonl");
        send(&brokers, "audit", std::slice::from_ref(&file), None).await;
        let (_dir, lake) = new_lake();
        let topics = [("audit", Some(SourceFormat::K8sAudit))];
        let ingester = spawn_ingester(&lake, options(&brokers, "outage", &topics));
        wait_for_rows(&lake, Table::K8sAudit, 466).await;
        kafka.broker_down(1).unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        kafka.broker_up(1).unwrap();
        send(&brokers, "audit", &[file], None).await;
        wait_for_rows(&lake, Table::K8sAudit, 932).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        ingester.stop().await;
        assert_eq!(rows_and_distinct(&lake, Table::K8sAudit).await, (932, 932));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_ingester_compacts_closed_days_by_itself() {
        let kafka = EmbeddedKafka::start(1, &[("flows", 3)]).unwrap();
        let brokers = kafka.bootstrap_servers();
        send(&brokers, "flows", &[samples().join("hubble.jsonl")], None).await;
        let (dir, lake) = new_lake();
        let mut o = options(
            &brokers,
            "compact",
            &[("flows", Some(SourceFormat::Hubble))],
        );
        // Small batches make many small files, all of 2026-11-20: a closed day.
        o.limits = rows_per_batch(20);
        o.compact_every = Some(Duration::from_millis(500));
        let ingester = spawn_ingester(&lake, o);
        wait_for_rows(&lake, Table::NetworkFlows, 427).await;
        let files = || async {
            let t = table(&lake, Table::NetworkFlows).await.unwrap();
            t.get_file_uris().unwrap().count()
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while files().await > 1 {
            assert!(
                Instant::now() < deadline,
                "never compacted: {} files",
                files().await
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        ingester.stop().await;
        // Compaction leaves the small files it replaced for vacuum: they were many.
        let day = dir.path().join("lake/network_flows/event_date=2026-11-20");
        let written = std::fs::read_dir(&day)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "parquet")
            })
            .count();
        assert!(written > 10, "expected many small files, found {written}");
        assert_eq!(
            rows_and_distinct(&lake, Table::NetworkFlows).await,
            (427, 427)
        );
    }
}

mod schema_evolution {
    use super::*;
    use arrow::array::TimestampMicrosecondArray;
    use arrow::array::{new_null_array, ArrayRef, Date32Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Schema};
    use deltalake::writer::{DeltaWriter, RecordBatchWriter};

    /// `k8s_audit` as an older kubetrail created it: without `pod_ip`, or with a column
    /// this version does not know, holding one row.
    async fn older_table(lake: &Lake, change: impl Fn(&mut Vec<arrow::datatypes::FieldRef>)) {
        let mut fields: Vec<_> = Table::K8sAudit.schema().fields().iter().cloned().collect();
        change(&mut fields);
        let schema = Arc::new(Schema::new(fields));
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| -> ArrayRef {
                match (f.name().as_str(), f.data_type()) {
                    (_, DataType::Timestamp(_, tz)) if !f.is_nullable() => Arc::new(
                        TimestampMicrosecondArray::from(vec![1_714_557_600_000_000])
                            .with_timezone_opt(tz.clone()),
                    ),
                    (_, DataType::Date32) => Arc::new(Date32Array::from(vec![19_844])),
                    (_, DataType::Int64) => Arc::new(Int64Array::from(vec![1])),
                    ("_source", _) => Arc::new(StringArray::from(vec!["file:old.jsonl"])),
                    ("audit_format", _) => Arc::new(StringArray::from(vec!["k8s"])),
                    (_, t) if f.is_nullable() => new_null_array(t, 1),
                    (name, t) => panic!("no value for {name}: {t}"),
                }
            })
            .collect();
        let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
        let dir = lake.local_dir().unwrap().join("k8s_audit");
        let mut delta = created_without_kubetrail(&dir, &schema).await;
        let mut writer = RecordBatchWriter::for_table(&delta).unwrap();
        writer.write(batch).await.unwrap();
        writer.flush_and_commit(&mut delta).await.unwrap();
    }

    const STATUS_UPDATE: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Request","auditID":"s1","stage":"ResponseComplete","verb":"patch","user":{"username":"system:node:node-a"},"objectRef":{"resource":"pods","namespace":"shop","name":"api-1","subresource":"status"},"requestObject":{"status":{"podIP":"10.244.1.5"}},"responseStatus":{"code":200},"requestReceivedTimestamp":"2024-05-01T10:00:00Z"}"#;

    #[tokio::test]
    async fn a_table_of_an_older_version_gets_the_new_columns_and_keeps_its_rows() {
        let (dir, lake) = new_lake();
        older_table(&lake, |f| f.retain(|f| f.name() != "pod_ip")).await;
        let path = dir.path().join("status.jsonl");
        std::fs::write(&path, format!("{STATUS_UPDATE}\n")).unwrap();
        let report = ingest(&lake, &path, &FileIngest::default()).await;
        assert_eq!(report.rows[&Table::K8sAudit], 1);
        let delta = table(&lake, Table::K8sAudit).await.unwrap();
        let stored = delta.snapshot().unwrap().schema();
        assert!(stored.field("pod_ip").is_some());
        // Old files have no pod_ip: read by name, they hold null there.
        let mut ips: Vec<Option<String>> = Vec::new();
        for b in read_table(&lake, Table::K8sAudit).await {
            match b.column_by_name("pod_ip") {
                None => ips.extend((0..b.num_rows()).map(|_| None)),
                Some(c) => {
                    let c = c.as_string::<i32>();
                    ips.extend((0..c.len()).map(|i| c.is_valid(i).then(|| c.value(i).to_owned())));
                }
            }
        }
        ips.sort();
        assert_eq!(ips, vec![None, Some("10.244.1.5".to_owned())]);
    }

    #[tokio::test]
    async fn a_table_with_columns_this_version_does_not_know_is_refused() {
        let (dir, lake) = new_lake();
        older_table(&lake, |f| {
            f.push(Arc::new(arrow::datatypes::Field::new(
                "from_the_future",
                DataType::Utf8,
                true,
            )))
        })
        .await;
        let path = dir.path().join("status.jsonl");
        std::fs::write(&path, format!("{STATUS_UPDATE}\n")).unwrap();
        let error = ingest_file(
            &lake,
            &InputPath::File(path),
            &FileIngest::default(),
            Arc::new(NoProgress),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("from_the_future is unknown to this kubetrail"),
            "{error}"
        );
        assert!(!error.contains('\n'), "{error}");
    }
}

/// Credentials planted in every format and shape never reach the lake's files, in any
/// form: not in a Parquet page (read back decompressed), a footer's statistics, the Delta
/// log's statistics, nor a dead letter.
mod redaction {
    use super::*;
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    use base64::Engine;
    use serde_json::{json, Value};

    const JWT: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6InBsYW50ZWQifQ.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6c2hvcDphcGkifQ.UGxhbnRlZFNpZ25hdHVyZTAwMDAwMQ";
    const PEM_BODY: &str = "MIIEpAIBAAKCAQEAplantedPEMbody00000001";

    /// The plaintexts; Secret values also in base64, as they travel.
    const PLAIN: &[&str] = &[
        "PlantedSecretValue1",
        "PlantedPatchValue2",
        "PlantedMergePatch3",
        "PlantedAppliedValue4",
        JWT,
        "PlantedEnvValue5",
        "PlantedTemplateEnv6",
        "PlantedPatchEnv7",
        "PlantedEphemeral8",
        "PlantedArgument9",
        "PlantedBearerToken10",
        "AKIAPLANTEDKEY000011",
        PEM_BODY,
        "PlantedUriToken12",
        "PlantedDeadLetter13",
        "PlantedDeadSecret14",
        "PlantedEksSecret15",
        "PlantedGkeToken16",
        "PlantedFalcoField17",
        "PlantedUrlPassword18",
        "PlantedCommandArg19",
    ];

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn audit(
        resource: &str,
        sub: Option<&str>,
        verb: &str,
        request: Value,
        response: Value,
    ) -> Value {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut object_ref =
            json!({"resource": resource, "namespace": "shop", "name": "x", "apiVersion": "v1"});
        if let Some(sub) = sub {
            object_ref["subresource"] = json!(sub);
        }
        json!({
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse",
            "auditID": format!("00000000-0000-0000-0000-{n:012}"), "stage": "ResponseComplete",
            "requestURI": format!("/api/v1/namespaces/shop/{resource}/x"), "verb": verb,
            "user": {"username": "alice"}, "sourceIPs": ["10.0.0.1"], "objectRef": object_ref,
            "requestReceivedTimestamp": "2026-11-20T09:00:00.000000Z",
            "stageTimestamp": "2026-11-20T09:00:00.100000Z",
            "requestObject": request, "responseObject": response,
        })
    }

    fn container(env: Value) -> Value {
        json!({"name": "app", "image": "shop/api:1", "env": env,
               "args": ["--db-url=postgres://app:PlantedUrlPassword18@db:5432/shop", "--api-token", "PlantedCommandArg19"]})
    }

    fn native_events() -> Vec<Value> {
        let applied =
            json!({"kind": "Secret", "data": {"k": b64("PlantedAppliedValue4")}}).to_string();
        let deployment_applied =
            json!({"kind": "Deployment", "spec": {"template": {"spec": {"containers": [
            container(json!([{"name": "FEATURE", "value": "PlantedTemplateEnv6"}]))]}}}})
            .to_string();
        vec![
            audit(
                "secrets",
                None,
                "create",
                json!({"kind": "Secret", "data": {"password": b64("PlantedSecretValue1")},
                         "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": applied}}}),
                json!({"kind": "Secret", "stringData": {"password": "PlantedSecretValue1"}}),
            ),
            audit(
                "secrets",
                None,
                "patch",
                json!([{"op": "replace", "path": "/data/password", "value": b64("PlantedPatchValue2")},
                         {"op": "add", "path": "/data", "value": {"other": b64("PlantedPatchValue2")}}]),
                Value::Null,
            ),
            audit(
                "secrets",
                None,
                "patch",
                json!({"data": {"password": b64("PlantedMergePatch3")}}),
                Value::Null,
            ),
            audit(
                "serviceaccounts",
                Some("token"),
                "create",
                json!({"kind": "TokenRequest", "spec": {"audiences": ["api"]}}),
                json!({"kind": "TokenRequest", "status": {"token": JWT, "expirationTimestamp": "2026-11-20T10:00:00Z"}}),
            ),
            audit(
                "tokenreviews",
                None,
                "create",
                json!({"kind": "TokenReview", "spec": {"token": JWT}}),
                json!({"kind": "TokenReview", "status": {"authenticated": true}}),
            ),
            audit(
                "pods",
                None,
                "create",
                json!({"kind": "Pod", "spec": {"containers": [container(json!([{"name": "DB_PASSWORD", "value": "PlantedEnvValue5"}]))]}}),
                Value::Null,
            ),
            audit(
                "deployments",
                None,
                "create",
                json!({"kind": "Deployment",
                         "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": deployment_applied}},
                         "spec": {"template": {"spec": {"initContainers": [container(json!([{"name": "FEATURE", "value": "PlantedTemplateEnv6"}]))]}}}}),
                Value::Null,
            ),
            audit(
                "pods",
                None,
                "patch",
                json!([{"op": "add", "path": "/spec/containers/0/env/-", "value": {"name": "X", "value": "PlantedPatchEnv7"}},
                         {"op": "replace", "path": "/spec/containers/0/env/1/value", "value": "PlantedPatchEnv7"}]),
                Value::Null,
            ),
            audit(
                "pods",
                Some("ephemeralcontainers"),
                "patch",
                json!({"spec": {"ephemeralContainers": [container(json!([{"name": "DEBUG", "value": "PlantedEphemeral8"}]))]}}),
                Value::Null,
            ),
            {
                let mut e = audit("pods", Some("exec"), "create", Value::Null, Value::Null);
                e["requestURI"] = json!(
                    "/api/v1/namespaces/shop/pods/x/exec?command=login&token=PlantedUriToken12"
                );
                e
            },
        ]
    }

    fn write_lines(path: &Path, values: &[Value]) {
        let text: Vec<String> = values.iter().map(Value::to_string).collect();
        std::fs::write(path, text.join("\n") + "\n").unwrap();
    }

    /// The first sample record of a file, as JSON.
    fn sample(name: &str) -> Value {
        let text = std::fs::read_to_string(samples().join(name)).unwrap();
        serde_json::from_str(text.lines().next().unwrap()).unwrap()
    }

    fn inputs(dir: &Path) -> Vec<PathBuf> {
        let native = dir.join("audit.jsonl");
        write_lines(&native, &native_events());

        let secret = audit(
            "secrets",
            None,
            "update",
            json!({"kind": "Secret", "data": {"token": b64("PlantedEksSecret15")}}),
            Value::Null,
        );
        let eks = dir.join("eks.json");
        let eks_record = json!({"logGroup": "/aws/eks/prod-eu1/cluster", "logStream": "kube-apiserver-audit-1",
            "logEvents": [{"id": "1", "timestamp": 1795165207000u64, "message": secret.to_string()}]});
        std::fs::write(&eks, eks_record.to_string()).unwrap();

        let mut gke = sample("gke-audit.jsonl");
        gke["protoPayload"]["methodName"] = json!("io.k8s.authentication.v1.tokenreviews.create");
        gke["protoPayload"]["resourceName"] = json!("authentication.k8s.io/v1/tokenreviews");
        gke["protoPayload"]["request"] = json!({"@type": "authentication.k8s.io/v1.TokenReview", "kind": "TokenReview", "spec": {"token": "PlantedGkeToken16"}});
        let gke_path = dir.join("gke.jsonl");
        write_lines(&gke_path, &[gke]);

        let mut tetragon = sample("tetragon.jsonl");
        tetragon["process_exec"]["process"]["arguments"] =
            json!("-h db -u app --password=PlantedArgument9 shop");
        tetragon["process_exec"]["parent"]["arguments"] =
            json!("-c curl -H 'Authorization: Bearer PlantedBearerToken10' http://api");
        let tetragon_path = dir.join("tetragon.jsonl");
        write_lines(&tetragon_path, &[tetragon]);

        let mut falco = sample("falco.jsonl");
        falco["output"] = json!(format!(
            "Notice key read (cmdline=aws configure set aws_access_key_id AKIAPLANTEDKEY000011 key=-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----)"
        ));
        falco["output_fields"]["proc.cmdline"] = json!("mysql --password PlantedFalcoField17");
        let falco_path = dir.join("falco.jsonl");
        write_lines(&falco_path, &[falco]);

        // Records that do not decode, a file each: one with a credential, two about a
        // Secret (one cut short).
        let mut broken = native_events()[0].to_string();
        broken.truncate(broken.len() / 2);
        let dead: Vec<PathBuf> = [
            "{\"kind\": \"Event\", \"note\": \"password=PlantedDeadLetter13\"".to_owned(),
            format!(
                "{{\"objectRef\":{{\"resource\":\"secrets\"}},\"requestObject\":{{\"data\":{{\"p\":\"{}\"",
                b64("PlantedDeadSecret14")
            ),
            broken,
        ]
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let path = dir.join(format!("dead-{i}.json"));
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect();
        [vec![native, eks, gke_path, tetragon_path, falco_path], dead].concat()
    }

    /// Everything the lake's files say: their bytes, and every value of every Parquet
    /// file read back.
    fn lake_text(dir: &Path) -> (Vec<Vec<u8>>, String) {
        let mut raw = Vec::new();
        let mut text = String::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(path) = stack.pop() {
            if path.is_dir() {
                stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            raw.push(std::fs::read(&path).unwrap());
            if path.extension().is_some_and(|e| e == "parquet") {
                let file = std::fs::File::open(&path).unwrap();
                let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                    .unwrap()
                    .build()
                    .unwrap();
                for batch in reader {
                    for column in batch.unwrap().columns() {
                        if let Some(binary) = column.as_binary_opt::<i32>() {
                            raw.extend(binary.iter().flatten().map(<[u8]>::to_vec));
                            continue;
                        }
                        let f = ArrayFormatter::try_new(column.as_ref(), &FormatOptions::default())
                            .unwrap();
                        for i in 0..column.len() {
                            text.push_str(&f.value(i).to_string());
                            text.push('\n');
                        }
                    }
                }
            }
        }
        (raw, text)
    }

    #[tokio::test]
    async fn planted_credentials_appear_nowhere_in_the_lake() {
        let (dir, lake) = new_lake();
        for input in inputs(dir.path()) {
            ingest(&lake, &input, &FileIngest::default()).await;
        }
        assert_eq!(row_count(&lake, Table::RuntimeEvents).await, 2);
        assert!(row_count(&lake, Table::K8sAudit).await >= 12);
        assert_eq!(row_count(&lake, Table::DeadLetters).await, 3);
        let (raw, text) = lake_text(&dir.path().join("lake"));
        for plain in PLAIN {
            let b = b64(plain);
            for needle in [plain.to_string(), b] {
                assert!(!text.contains(&needle), "{needle} in a value of the lake");
                let found = raw
                    .iter()
                    .any(|bytes| memchr::memmem::find(bytes, needle.as_bytes()).is_some());
                assert!(!found, "{needle} in the bytes of a lake file");
            }
        }
        // What was around them is still evidence.
        for kept in [
            "mysql --password [REDACTED hmac:",
            "--password=[REDACTED hmac:",
            "Authorization: Bearer [REDACTED hmac:",
            "\"name\":\"DB_PASSWORD\",\"value\":\"[REDACTED hmac:",
            "postgres://app:[REDACTED hmac:",
            "exec?command=login&token=[REDACTED hmac:",
            "raw record not kept: it is about a Secret or a token",
            "credentials in the raw record redacted",
        ] {
            assert!(text.contains(kept), "{kept} missing from the lake");
        }
        // Markers keep 128 bits.
        let marker = text.split("[REDACTED hmac:").nth(1).unwrap();
        assert_eq!(marker.find(']'), Some(32), "{marker}");
    }
}

mod custody {
    //! The custody chain, written by every kind of commit, and `verify` catching each kind
    //! of tampering with a lake on disk.
    use super::*;
    use kubetrail_lake::custody::verify::{verify, Finding, Verification};
    use kubetrail_lake::custody::{Manifest, Origin, MANIFEST_KEY};
    use kubetrail_lake::maintenance::{drop_before, optimize, vacuum, Days, Retention};
    use serde_json::Value;
    use sha2::{Digest, Sha256};

    fn sha256(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    fn table_dir(dir: &tempfile::TempDir, t: Table) -> PathBuf {
        dir.path().join("lake").join(t.name())
    }

    fn entry_path(dir: &tempfile::TempDir, t: Table, version: u64) -> PathBuf {
        table_dir(dir, t).join(format!("_delta_log/{version:020}.json"))
    }

    /// Each log entry's bytes and manifest, oldest first.
    fn entries(dir: &tempfile::TempDir, t: Table) -> Vec<(Vec<u8>, Option<Manifest>)> {
        (0..)
            .map(|v| entry_path(dir, t, v))
            .take_while(|p| p.exists())
            .map(|p| {
                let bytes = std::fs::read(p).unwrap();
                let manifest = bytes
                    .split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(|l| serde_json::from_slice::<Value>(l).unwrap())
                    .find_map(|a| a.pointer(&format!("/commitInfo/{MANIFEST_KEY}")).cloned())
                    .map(|m| serde_json::from_value(m).unwrap());
                (bytes, manifest)
            })
            .collect()
    }

    fn small_batches() -> FileIngest {
        FileIngest {
            limits: rows_per_batch(100),
            ..FileIngest::default()
        }
    }

    async fn verified(lake: &Lake, t: Table) -> Verification {
        verify(lake, t, None, None).await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_commit_records_its_files_origin_writer_and_the_entry_before_it() {
        let (dir, lake) = new_lake();
        let mut reports = Vec::new();
        for name in ["k8s-audit.jsonl", "gke-audit.jsonl"] {
            reports.push(ingest(&lake, &samples().join(name), &small_batches()).await);
        }
        let chain = entries(&dir, Table::K8sAudit);
        assert_eq!(
            chain.len(),
            3,
            "the table's creation and one commit per input"
        );
        for (version, (_, manifest)) in chain.iter().enumerate() {
            let manifest = manifest.as_ref().expect("every entry is sealed");
            let prev = version.checked_sub(1).map(|v| sha256(&chain[v].0));
            assert_eq!(
                manifest.prev, prev,
                "entry {version} names the one before it"
            );
            assert_eq!(manifest.writer.kubetrail, env!("CARGO_PKG_VERSION"));
            assert!(!manifest.writer.host.is_empty());
            if version == 0 {
                assert!(manifest.files.is_empty());
                continue;
            }
            let report = &reports[version - 1];
            assert_eq!(
                manifest.origin,
                vec![Origin::File {
                    name: report.source.clone(),
                    blake3: report.content_hash.clone(),
                    bytes: report.bytes,
                }]
            );
            assert!(!manifest.files.is_empty());
            for file in &manifest.files {
                let bytes =
                    std::fs::read(table_dir(&dir, Table::K8sAudit).join(&file.path)).unwrap();
                assert_eq!(
                    (file.size, file.sha256.clone()),
                    (bytes.len() as u64, sha256(&bytes))
                );
            }
        }

        // A compaction lists the files it replaced; vacuum and retention keep the chain.
        let live_before: Vec<String> = chain[1..]
            .iter()
            .flat_map(|(_, m)| m.as_ref().unwrap().files.iter().map(|f| f.path.clone()))
            .collect();
        let report = optimize(&lake, Table::K8sAudit, Days::All).await.unwrap();
        assert!(report.files_removed > 2, "{report:?}");
        let chain = entries(&dir, Table::K8sAudit);
        let compaction = chain.last().unwrap().1.clone().unwrap();
        assert_eq!(sorted(compaction.replaced.clone()), sorted(live_before));
        assert_eq!(compaction.files.len() as u64, report.files_added);
        vacuum(
            &lake,
            Table::K8sAudit,
            Retention::forced(std::time::Duration::ZERO),
        )
        .await
        .unwrap();
        let cutoff = chrono::NaiveDate::from_ymd_opt(2100, 1, 1).unwrap();
        drop_before(&lake, Table::K8sAudit, cutoff).await.unwrap();
        let chain = entries(&dir, Table::K8sAudit);
        let dropped = chain.last().unwrap().1.clone().unwrap();
        assert_eq!(dropped.replaced.len() as u64, report.files_added);

        let verification = verified(&lake, Table::K8sAudit).await;
        assert_eq!(verification.findings, vec![]);
        assert_eq!(verification.entries, Some((0, chain.len() as u64 - 1)));
        assert_eq!(verification.head, Some(sha256(&chain.last().unwrap().0)));
    }

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    /// A lake of three inputs, its audit files, and a clean verification of it.
    async fn three_inputs() -> (tempfile::TempDir, Lake, Vec<PathBuf>) {
        let (dir, lake) = new_lake();
        for name in [
            "gke-audit.jsonl",
            "eks-cloudwatch.json",
            "aks-diagnostics.json",
        ] {
            ingest(&lake, &samples().join(name), &FileIngest::default()).await;
        }
        // An input already in the lake stages files and drops them: none stays behind.
        ingest(
            &lake,
            &samples().join("gke-audit.jsonl"),
            &FileIngest::default(),
        )
        .await;
        let files: Vec<PathBuf> = (1..=3)
            .flat_map(|v| {
                let manifest = entries(&dir, Table::K8sAudit)[v].1.clone().unwrap();
                manifest
                    .files
                    .into_iter()
                    .map(|f| table_dir(&dir, Table::K8sAudit).join(f.path))
            })
            .collect();
        // One file per input: files[i] was added at version i + 1.
        assert_eq!(files.len(), 3);
        let clean = verified(&lake, Table::K8sAudit).await;
        assert_eq!(clean.findings, vec![]);
        assert_eq!((clean.files, clean.unsealed_entries), (3, 0));
        (dir, lake, files)
    }

    /// A copy of `file` beside it, which no commit added.
    fn plant_copy_of(file: &Path) -> PathBuf {
        let planted = file.with_file_name("part-00000-planted.zstd.parquet");
        std::fs::copy(file, &planted).unwrap();
        planted
    }

    fn flip_a_byte(file: &Path) {
        let mut bytes = std::fs::read(file).unwrap();
        bytes[100] ^= 1;
        std::fs::write(file, bytes).unwrap();
    }

    fn relative(dir: &tempfile::TempDir, file: &Path) -> String {
        file.strip_prefix(table_dir(dir, Table::K8sAudit))
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }

    #[tokio::test]
    async fn a_modified_file_is_named() {
        let (dir, lake, files) = three_inputs().await;
        flip_a_byte(&files[1]);
        let findings = verified(&lake, Table::K8sAudit).await.findings;
        assert!(
            matches!(&findings[..], [Finding::Modified { path, recorded, found, .. }]
                if *path == relative(&dir, &files[1]) && recorded.0 == found.0 && recorded.1 != found.1),
            "{findings:?}"
        );
    }

    #[tokio::test]
    async fn a_deleted_file_is_named() {
        let (dir, lake, files) = three_inputs().await;
        std::fs::remove_file(&files[0]).unwrap();
        let findings = verified(&lake, Table::K8sAudit).await.findings;
        assert!(
            matches!(&findings[..], [Finding::Missing { path, .. }] if *path == relative(&dir, &files[0])),
            "{findings:?}"
        );
    }

    #[tokio::test]
    async fn an_added_file_is_named() {
        let (dir, lake, files) = three_inputs().await;
        let planted = plant_copy_of(&files[2]);
        let findings = verified(&lake, Table::K8sAudit).await.findings;
        assert!(
            matches!(&findings[..], [Finding::Unexpected { path, .. }] if *path == relative(&dir, &planted)),
            "{findings:?}"
        );
        assert!(findings[0].to_string().contains("no commit added it"));
    }

    #[tokio::test]
    async fn a_rewritten_log_entry_breaks_the_next_link() {
        let (dir, lake, _) = three_inputs().await;
        // One byte of one field: the entry still parses, and Delta still reads it.
        let path = entry_path(&dir, Table::K8sAudit, 2);
        let text = std::fs::read_to_string(&path).unwrap();
        let rewritten = text.replacen("\"dataChange\":true", "\"dataChange\":false", 1);
        assert_ne!(text, rewritten);
        std::fs::write(&path, rewritten).unwrap();
        let findings = verified(&lake, Table::K8sAudit).await.findings;
        assert_eq!(findings, vec![Finding::BrokenLink { version: 3 }]);
    }

    #[tokio::test]
    async fn a_rewritten_newest_entry_is_caught_by_the_head_noted_before() {
        let (dir, lake, _) = three_inputs().await;
        let noted = verified(&lake, Table::K8sAudit).await.head.unwrap();
        // A head noted before later commits still checks: the later entries name it.
        assert_eq!(
            verify(&lake, Table::K8sAudit, None, Some(&noted))
                .await
                .unwrap()
                .findings,
            vec![]
        );
        let path = entry_path(&dir, Table::K8sAudit, 3);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            text.replacen("\"dataChange\":true", "\"dataChange\":false", 1),
        )
        .unwrap();
        assert_eq!(verified(&lake, Table::K8sAudit).await.findings, vec![]);
        let findings = verify(&lake, Table::K8sAudit, None, Some(&noted))
            .await
            .unwrap()
            .findings;
        assert!(
            matches!(&findings[..], [Finding::HeadChanged { expected, .. }] if *expected == noted),
            "{findings:?}"
        );
    }

    #[tokio::test]
    async fn an_entry_with_adds_its_manifest_does_not_list_is_named() {
        let (dir, lake, files) = three_inputs().await;
        // A planted file added to an entry's actions, its manifest left as it was: the
        // entry after it breaks its link too.
        let planted = plant_copy_of(&files[0]);
        let path = entry_path(&dir, Table::K8sAudit, 2);
        let mut text = std::fs::read_to_string(&path).unwrap();
        let add = text
            .lines()
            .find(|l| l.starts_with("{\"add\""))
            .unwrap()
            .to_owned();
        let planted_name = relative(&dir, &planted);
        let original = relative(&dir, &files[1]);
        let original = if add.contains(&original) {
            original
        } else {
            relative(&dir, &files[0])
        };
        text.push_str(&add.replace(&original, &planted_name));
        text.push('\n');
        std::fs::write(&path, text).unwrap();
        let findings = verified(&lake, Table::K8sAudit).await.findings;
        assert!(
            findings.contains(&Finding::BrokenLink { version: 3 }),
            "{findings:?}"
        );
        assert!(
            findings.iter().any(|f| matches!(f, Finding::BadEntry { version: 2, reason } if reason.contains("does not list"))),
            "{findings:?}"
        );
    }

    #[tokio::test]
    async fn a_missing_entry_and_one_that_is_not_json_are_named() {
        let (dir, lake, _) = three_inputs().await;
        std::fs::write(entry_path(&dir, Table::K8sAudit, 1), b"{not json\n").unwrap();
        let findings = verified(&lake, Table::K8sAudit).await.findings;
        assert!(
            findings.iter().any(|f| matches!(f, Finding::BadEntry { version: 1, reason } if reason.contains("not a log entry"))),
            "{findings:?}"
        );
        std::fs::remove_file(entry_path(&dir, Table::K8sAudit, 2)).unwrap();
        // delta-rs itself no longer opens the table: verify says why rather than guess.
        match verify(&lake, Table::K8sAudit, None, None).await {
            Ok(v) => assert!(
                v.findings.contains(&Finding::MissingEntry { version: 2 }),
                "{v:?}"
            ),
            Err(e) => assert!(e.to_string().contains("k8s_audit"), "{e}"),
        }
    }

    #[tokio::test]
    async fn a_commit_by_another_writer_is_unsealed() {
        let (dir, lake, _) = three_inputs().await;
        // delta-rs without kubetrail's log store: a commit with no manifest.
        let url = url::Url::from_directory_path(table_dir(&dir, Table::K8sAudit)).unwrap();
        let raw = deltalake::DeltaTableBuilder::from_url(url)
            .unwrap()
            .load()
            .await
            .unwrap();
        raw.set_tbl_properties()
            .with_properties(std::collections::HashMap::from([(
                "delta.appendOnly".to_owned(),
                "false".to_owned(),
            )]))
            .await
            .unwrap();
        let findings = verified(&lake, Table::K8sAudit).await.findings;
        assert_eq!(findings, vec![Finding::Unsealed { version: 4 }]);
    }

    #[tokio::test]
    async fn since_checks_only_the_entries_and_files_from_that_version() {
        let (dir, lake, files) = three_inputs().await;
        flip_a_byte(&files[0]);
        flip_a_byte(&files[2]);
        assert_eq!(verified(&lake, Table::K8sAudit).await.findings.len(), 2);
        let later = verify(&lake, Table::K8sAudit, Some(3), None).await.unwrap();
        assert_eq!((later.entries, later.files), (Some((3, 3)), 1));
        assert!(
            matches!(&later.findings[..], [Finding::Modified { path, version: 3, .. }] if *path == relative(&dir, &files[2])),
            "{:?}",
            later.findings
        );
    }

    #[tokio::test]
    async fn a_table_from_before_the_chain_verifies_what_came_after() {
        let (dir, lake) = new_lake();
        // Written by delta-rs alone, as kubetrail did before the custody chain.
        created_without_kubetrail(
            &table_dir(&dir, Table::DeadLetters),
            &Table::DeadLetters.schema(),
        )
        .await;
        let path = dir.path().join("bad.jsonl");
        std::fs::write(&path, "{\"kind\": 5}\n").unwrap();
        ingest(&lake, &path, &FileIngest::default()).await;
        let v = verified(&lake, Table::DeadLetters).await;
        assert_eq!(v.findings, vec![]);
        assert_eq!((v.unsealed_entries, v.files), (1, 1));
        let chain = entries(&dir, Table::DeadLetters);
        // The whole log is kept from then on, and the chain starts at the first sealed entry.
        assert!(chain[0].1.is_none() && chain[1..].iter().all(|(_, m)| m.is_some()));
        assert!(String::from_utf8_lossy(&chain[1].0).contains("delta.enableExpiredLogCleanup"));
    }
}
