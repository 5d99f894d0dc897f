//! The `kubetrail` binary end to end: what a responder types, what comes back, and the
//! exit codes scripts rely on.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn kubetrail() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kubetrail"));
    // Tests start from no settings of the machine's.
    for (name, _) in std::env::vars().filter(|(k, _)| k.starts_with("KUBETRAIL_")) {
        c.env_remove(name);
    }
    c
}

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/data")
}

/// A temporary directory and the path of a lake inside it (not created yet).
fn temp_lake() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake").to_string_lossy().into_owned();
    (dir, lake)
}

fn outcome(output: Output) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = output;
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    outcome(cmd.output().unwrap())
}

fn with_stdin(cmd: &mut Command, input: &[u8]) -> (i32, String, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    outcome(child.wait_with_output().unwrap())
}

#[test]
fn ingest_query_and_reingest() {
    let (dir, lake) = temp_lake();
    let lake = lake.as_str();
    let audit = samples().join("k8s-audit.jsonl");
    let (code, out, err) = run(kubetrail()
        .args(["ingest", "file", "--lake", lake])
        .arg(&audit));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("k8s-audit, 466 records -> k8s_audit 466"),
        "{out}"
    );
    assert!(out.contains("rows written:"), "{out}");

    let (code, out, _) = run(kubetrail()
        .args(["ingest", "file", "--lake", lake])
        .arg(&audit));
    assert_eq!(code, 0);
    assert!(out.contains("already ingested"), "{out}");

    // --lake from the environment.
    let (code, out, err) = run(kubetrail().env("KUBETRAIL_LAKE", lake).args([
        "sql",
        "--format",
        "csv",
        "SELECT count(*) AS n FROM k8s_audit",
    ]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "n\n466\n");

    let csv = dir.path().join("secrets.csv");
    let (code, _, err) = run(kubetrail().args(["sql", "--lake", lake, "--format", "csv", "--output"]).arg(&csv).arg(
        "SELECT user_name, name FROM k8s_audit WHERE resource = 'secrets' AND user_name NOT LIKE 'system:node:%' ORDER BY event_time",
    ));
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text.lines().count(), 4, "{text}");

    let (code, out, _) = run(kubetrail().args(["tables", "--lake", lake]));
    assert_eq!(code, 0);
    assert!(
        out.lines().any(|l| l.starts_with("k8s_audit")
            && l.contains(" 466 ")
            && l.contains("2026-11-20 09:")),
        "{out}"
    );
}

#[test]
fn stdin_gzip_and_rejected_records_set_the_exit_code() {
    let (_dir, lake) = temp_lake();
    let lake = lake.as_str();
    let mut input = std::fs::read(samples().join("falco.jsonl")).unwrap();
    input.extend_from_slice(
        b"{\"rule\": \"x\", \"priority\": \"Error\", \"output\": 1}\nnot json\n",
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&input).unwrap();
    let (code, out, err) = with_stdin(
        kubetrail().args(["ingest", "file", "--quiet", "--lake", lake, "-"]),
        &gz.finish().unwrap(),
    );
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        out.contains("file:-: falco, 9 records -> runtime_events 7, dead_letters 2"),
        "{out}"
    );
    let out = sql_csv(
        lake,
        "SELECT _offset, reason FROM dead_letters ORDER BY _offset",
    );
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(
        rows[0].starts_with("8,") && rows[0].contains("missing time"),
        "{out}"
    );
    assert!(
        rows[1].starts_with("9,") && rows[1].contains("neither Falco JSON nor Falco text"),
        "{out}"
    );
}

#[test]
fn errors_are_one_line_and_non_zero() {
    let (_dir, lake) = temp_lake();
    let lake = lake.as_str();
    let cases: Vec<Vec<&str>> = vec![
        vec!["sql", "--lake", "/no/such/lake", "SELECT 1"],
        vec![
            "ingest", "file", "--lake", lake, "--format", "syslog", "x.log",
        ],
        vec!["ingest", "file", "--lake", lake, "/no/such/file.json"],
        vec!["ingest", "file", "--lake", lake, "/tmp"],
    ];
    for args in cases {
        let (code, out, err) = run(kubetrail().args(&args));
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("kubetrail: "), "{err}");
    }
    run(kubetrail()
        .args(["ingest", "file", "--lake", lake])
        .arg(samples().join("falco.jsonl")));
    let (code, _, err) =
        run(kubetrail().args(["sql", "--lake", lake, "SELECT nope FROM runtime_events"]));
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("nope"), "{err}");
    let (code, _, _) = run(kubetrail().args(["frobnicate"]));
    assert_eq!(code, 2);
}

#[test]
fn the_shell_reads_statements_from_a_pipe() {
    let (dir, lake) = temp_lake();
    let lake = lake.as_str();
    run(kubetrail()
        .args(["ingest", "file", "--lake", lake])
        .arg(samples().join("tetragon.jsonl")));
    let script = b".tables\nSELECT count(*)\n  AS n FROM runtime_events;\nSELECT broken;\n.quit\n";
    let (code, out, err) = with_stdin(
        kubetrail()
            .args(["shell", "--lake", lake])
            .env("HOME", dir.path()),
        script,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("runtime_events") && out.contains("| 46 |"),
        "{out}"
    );
    assert!(out.contains("error:"), "{out}");
}

#[test]
fn the_demo_runs_the_whole_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run(kubetrail().args(["demo", "--lake"]).arg(dir.path()));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("k8s_audit               526"), "{out}");
    assert!(
        out.contains("| 203.0.113.66 | curl/8.4.0 | get  | shop      | db-credentials |"),
        "{out}"
    );
    assert!(out.contains("45.9.148.36"), "{out}");
    assert!(out.contains("[REDACTED hmac:"), "{out}");
    assert!(
        !out.contains("UzNjcjN0LVBhc3N3MHJkIQ=="),
        "secret value printed"
    );
    assert!(
        out.contains("exec'd `sh` into shop/api-7d9f8b6c5-x2k4p from 203.0.113.66"),
        "{out}"
    );
    assert!(out.contains("critical  cryptominer"), "{out}");
    assert!(
        out.contains("25 alerts written to the alerts table"),
        "{out}"
    );
    assert!(
        out.contains("! runtime  pod shop/api-7d9f8b6c5-x2k4p ran `/tmp/xmrig"),
        "{out}"
    );
    assert!(out.contains("== Done in"), "{out}");
    assert!(dir.path().join("lake/k8s_audit/_delta_log").is_dir());
    let report = std::fs::read_to_string(dir.path().join("timeline.html")).unwrap();
    assert!(report.contains("Timeline of pod shop/api-7d9f8b6c5-x2k4p"));
}

#[test]
fn samples_are_written_with_a_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = run(kubetrail().args(["samples", "--out"]).arg(dir.path()));
    assert_eq!(code, 0);
    assert!(out.contains("hubble.jsonl"));
    let manifest = std::fs::read_to_string(dir.path().join("MANIFEST.tsv")).unwrap();
    assert_eq!(
        manifest,
        std::fs::read_to_string(samples().join("MANIFEST.tsv")).unwrap()
    );
    let (code, _, _) = run(kubetrail()
        .args(["samples", "--events", "1000", "--days", "2", "--out"])
        .arg(dir.path().join("volume")));
    assert_eq!(code, 0);
    let audit = std::fs::read_to_string(dir.path().join("volume/audit.jsonl")).unwrap();
    assert_eq!(audit.lines().count(), 1000);
}

#[test]
fn lake_maintenance_verbs() {
    let (_dir, lake) = temp_lake();
    let lake = lake.as_str();
    for file in ["falco.jsonl", "tetragon.jsonl"] {
        run(kubetrail()
            .args(["ingest", "file", "--lake", lake])
            .arg(samples().join(file)));
    }
    let (code, out, err) = run(kubetrail().args([
        "lake",
        "optimize",
        "--lake",
        lake,
        "--table",
        "runtime_events",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("runtime_events   1 partition(s): 2 files -> 1"),
        "{out}"
    );
    // Under Delta's 7-day floor only when forced: a query or an ingest may need the files.
    let (code, _, err) =
        run(kubetrail().args(["lake", "vacuum", "--lake", lake, "--retain", "0h"]));
    assert_eq!((code, err.lines().count()), (1, 1), "{err}");
    assert!(
        err.contains("under Delta's floor of 168 h") && err.contains("add --force"),
        "{err}"
    );
    let (code, out, _) = run(kubetrail().args([
        "lake", "vacuum", "--lake", lake, "--retain", "0h", "--force",
    ]));
    assert_eq!(code, 0);
    assert!(out.contains("runtime_events   2 file(s) deleted"), "{out}");
    let (code, out, _) =
        run(kubetrail().args(["lake", "retention", "--lake", lake, "--older-than", "400d"]));
    assert_eq!(code, 0);
    assert!(out.contains("runtime_events   0 file(s)"), "{out}");
    let out = sql_csv(lake, "SELECT count(*) AS n FROM runtime_events");
    assert_eq!(out, "n\n53\n");
    let (code, _, err) =
        run(kubetrail().args(["lake", "vacuum", "--lake", lake, "--retain", "a week"]));
    assert_eq!(code, 2, "{err}");
    let (code, _, err) =
        run(kubetrail().args(["lake", "optimize", "--lake", lake, "--table", "nope"]));
    assert_eq!((code, err.lines().count()), (1, 1), "{err}");

    // The custody chain held through ingest, compaction, vacuum and retention.
    let (code, out, err) = run(kubetrail().args(["lake", "verify", "--lake", lake]));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("runtime_events   log 0-"), "{out}");
    assert!(
        out.contains("1 file(s) re-hashed") && out.contains(": ok"),
        "{out}"
    );
    let head = out
        .lines()
        .find_map(|l| l.strip_prefix("runtime_events   head "))
        .unwrap()
        .to_owned();
    assert_eq!(head.len(), 64, "{out}");
    let day = std::fs::read_dir(Path::new(lake).join("runtime_events"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("event_date="))
        .unwrap();
    let file = std::fs::read_dir(day)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "parquet"))
        .unwrap();
    std::fs::remove_file(&file).unwrap();
    let (code, out, err) = run(kubetrail().args([
        "lake",
        "verify",
        "--lake",
        lake,
        "--table",
        "runtime_events",
        "--head",
        &head,
    ]));
    assert_eq!((code, err.lines().count()), (1, 1), "{out}\n{err}");
    assert!(err.contains("custody check found 1 problem"), "{err}");
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        out.lines()
            .any(|l| l.contains("missing file") && l.contains(&name)),
        "{out}"
    );
    let (code, _, err) = run(kubetrail().args(["lake", "verify", "--lake", lake, "--since", "2"]));
    assert_eq!(code, 2, "--since needs --table: {err}");
}

/// The redaction key lives outside the lake, readable by its owner only; an old lake's
/// in-lake key is refused until it is moved out, and markers made with it keep matching.
#[cfg(unix)]
#[test]
fn the_redaction_key_lives_outside_the_lake() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("config");
    let ingest = |lake: &Path, input: &Path, config: Option<&Path>| {
        let mut c = kubetrail();
        c.env("XDG_CONFIG_HOME", &home)
            .args(["ingest", "file", "--quiet", "--lake"])
            .arg(lake)
            .arg(input);
        if let Some(config) = config {
            c.arg("--config").arg(config);
        }
        run(&mut c)
    };
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let lake = dir.path().join("lake");
    let (code, _, err) = ingest(&lake, &samples().join("falco.jsonl"), None);
    assert_eq!(code, 0, "{err}");
    let key = home.join("kubetrail").join("redaction.key");
    assert_eq!(mode(&key), 0o600);
    assert!(!lake.join("_kubetrail").join("redaction.key").exists());

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, _, err) = ingest(&lake, &samples().join("tetragon.jsonl"), None);
    assert_eq!((code, err.lines().count()), (1, 1), "{err}");
    assert!(
        err.contains("can be read by others (mode 0644): chmod 600"),
        "{err}"
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[redaction]\nenv_values = \"some\"\n").unwrap();
    let (code, _, err) = ingest(&lake, &samples().join("tetragon.jsonl"), Some(&config));
    assert_eq!((code, err.lines().count()), (1, 1), "{err}");
    assert!(
        err.contains("env_values: 'some' is not all or secret-like"),
        "{err}"
    );

    // A lake from before: its key inside it.
    let old = dir.path().join("old-lake");
    assert_eq!(ingest(&old, &samples().join("falco.jsonl"), None).0, 0);
    let old_key = "ab".repeat(32);
    std::fs::write(old.join("_kubetrail").join("redaction.key"), &old_key).unwrap();
    let secret = dir.path().join("secret.json");
    std::fs::write(
        &secret,
        r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"k-1","stage":"ResponseComplete","verb":"create","requestURI":"/api/v1/namespaces/shop/secrets","user":{"username":"alice"},"objectRef":{"resource":"secrets","namespace":"shop","name":"db","apiVersion":"v1"},"requestReceivedTimestamp":"2026-11-20T09:00:00Z","stageTimestamp":"2026-11-20T09:00:00Z","requestObject":{"kind":"Secret","stringData":{"password":"hunter2"}}}"#,
    )
    .unwrap();
    let (code, _, err) = ingest(&old, &secret, None);
    assert_eq!((code, err.lines().count()), (1, 1), "{err}");
    assert!(err.contains("kubetrail lake move-key --to FILE"), "{err}");
    let moved = dir.path().join("keys").join("old.key");
    let move_key = |to: &Path| {
        run(kubetrail()
            .args(["lake", "move-key", "--lake"])
            .arg(&old)
            .arg("--to")
            .arg(to))
    };
    let (code, out, err) = move_key(&moved);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("key_file"), "{out}");
    assert_eq!(std::fs::read_to_string(&moved).unwrap().trim(), old_key);
    assert_eq!(mode(&moved), 0o600);
    assert!(!old.join("_kubetrail").join("redaction.key").exists());
    let (code, _, err) = move_key(&moved);
    assert_eq!((code, err.lines().count()), (1, 1), "{err}");
    assert!(err.contains("nothing to move"), "{err}");

    // With the moved key, markers are the old key's, 128 bits long.
    let config = dir.path().join("kubetrail.toml");
    std::fs::write(
        &config,
        format!("[redaction]\nkey_file = {:?}\n", moved.to_str().unwrap()),
    )
    .unwrap();
    let (code, _, err) = ingest(&old, &secret, Some(&config));
    assert_eq!(code, 0, "{err}");
    let marker = kubetrail_schemas::Redactor::new(&[0xab; 32], &[]).marker(b"hunter2");
    assert_eq!(marker.len(), "[REDACTED hmac:]".len() + 32);
    let old = old.to_str().unwrap();
    let stored = sql_csv(
        old,
        "SELECT request_object FROM k8s_audit WHERE resource = 'secrets'",
    );
    assert!(
        stored.contains(&marker) && !stored.contains("hunter2"),
        "{stored}"
    );
}

#[test]
fn the_config_file_sits_under_env_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("kubetrail.toml"),
        "lake = \"from-config\"\ncluster = \"config-cluster\"\n[redaction]\npaths = [\"spec.hostPID\"]\n",
    )
    .unwrap();
    let audit = samples().join("k8s-audit.jsonl");
    // ./kubetrail.toml is read from the working directory.
    let (code, _, err) = run(kubetrail()
        .current_dir(dir.path())
        .args(["ingest", "file"])
        .arg(&audit));
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = run(kubetrail().current_dir(dir.path()).args([
        "sql",
        "--format",
        "csv",
        "SELECT DISTINCT cluster, json_get_str(request_object, 'spec', 'hostPID') LIKE '[REDACTED%' AS hidden FROM k8s_audit WHERE name = 'kube-proxy-debug' AND subresource IS NULL",
    ]));
    assert_eq!(out, "cluster,hidden\nconfig-cluster,true\n");
    // The environment wins over the file, and the flag over both.
    let (code, _, err) = run(kubetrail()
        .current_dir(dir.path())
        .env("KUBETRAIL_LAKE", "elsewhere")
        .args(["tables"]));
    assert_eq!(code, 1);
    // Named as an absolute path: the working directory is part of a relative one's meaning.
    let elsewhere = std::fs::canonicalize(dir.path()).unwrap().join("elsewhere");
    assert!(
        err.contains(&format!("no lake at {} ", elsewhere.display())),
        "{err}"
    );
    let (code, _, err) = run(kubetrail()
        .current_dir(dir.path())
        .env("KUBETRAIL_LAKE", "elsewhere")
        .args(["tables", "--lake", "from-config"]));
    assert_eq!(code, 0, "{err}");
    std::fs::write(dir.path().join("bad.toml"), "lake = 5\n").unwrap();
    let (code, _, err) = run(kubetrail()
        .current_dir(dir.path())
        .args(["--config", "bad.toml", "tables"]));
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("bad.toml"), "{err}");
    // Settings out of bounds, from the file or a flag: one line, nothing ingested.
    std::fs::write(dir.path().join("huge.toml"), "[ingest]\nbatch_mib = 4096\n").unwrap();
    let (code, _, err) = run(kubetrail()
        .current_dir(dir.path())
        .args(["--config", "huge.toml", "ingest", "file"])
        .arg(&audit));
    assert_eq!(
        (code, err.trim()),
        (
            1,
            "kubetrail: ingest.batch_mib = 4096: expected 1 to 1024 (MiB)"
        )
    );
    let (code, _, err) = run(kubetrail()
        .current_dir(dir.path())
        .args(["ingest", "file", "--cluster", &"c".repeat(254)])
        .arg(&audit));
    assert_eq!(
        (code, err.trim()),
        (1, "kubetrail: cluster name of 254 bytes: expected 1 to 253")
    );
}

/// A user sees at once which build handled the evidence and that TLS and SASL are in.
#[test]
fn version_names_the_build_and_its_engines() {
    let (code, out, err) = run(kubetrail().arg("version"));
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with(concat!(
            "kubetrail ",
            env!("CARGO_PKG_VERSION"),
            " (commit "
        )),
        "{out}"
    );
    let librdkafka = lines
        .iter()
        .find(|l| l.starts_with("librdkafka 2."))
        .expect(&out);
    for feature in [
        "ssl",
        "sasl_plain",
        "sasl_scram",
        "sasl_oauthbearer",
        "zstd",
    ] {
        assert!(
            librdkafka.split([' ', ',', '(', ')']).any(|f| f == feature),
            "{feature}: {out}"
        );
    }
    assert!(
        lines.iter().any(|l| l.starts_with("DataFusion 55.")),
        "{out}"
    );
    assert!(lines.iter().any(|l| l.starts_with("delta-rs 1.")), "{out}");
}

#[test]
fn kafka_verbs_refuse_bad_arguments_in_one_line() {
    let (_dir, lake) = temp_lake();
    // (arguments after `ingest kafka --lake LAKE`, exit code, what the message names)
    let cases: [(&[&str], i32, &str); 5] = [
        (
            &[
                "--brokers",
                "127.0.0.1:1",
                "--topic",
                "a",
                "--kafka-secret-file",
                "sasl.password=/nonexistent/kafka-password",
            ],
            1,
            "cannot read the file of Kafka setting sasl.password",
        ),
        (&["--topic", "a"], 1, "no brokers"),
        (&["--brokers", "127.0.0.1:1"], 1, "no topic"),
        (
            &["--brokers", "127.0.0.1:1", "--topic", "audit=nonsense"],
            2,
            "nonsense",
        ),
        (
            &[
                "--brokers",
                "127.0.0.1:1",
                "--topic",
                "a",
                "--linger",
                "soon",
            ],
            2,
            "soon",
        ),
    ];
    for (args, want_code, named) in cases {
        let (code, _, err) = run(kubetrail()
            .args(["ingest", "kafka", "--lake", &lake])
            .args(args));
        assert_eq!(code, want_code, "{args:?}: {err}");
        assert!(err.contains(named), "{args:?}: {err}");
        if want_code == 1 {
            assert_eq!(err.trim().lines().count(), 1, "{err}");
        }
    }
}

/// What `kubetrail sql --format csv` prints for `sql` (which must succeed).
fn sql_csv(lake: &str, sql: &str) -> String {
    let (code, out, err) = run(kubetrail().args(["sql", "--lake", lake, "--format", "csv", sql]));
    assert_eq!(code, 0, "{sql}: {err}");
    out
}

/// `SELECT count(*) FROM k8s_audit`, as the CLI answers it.
fn audit_rows(lake: &str) -> String {
    let out = sql_csv(lake, "SELECT count(*) FROM k8s_audit");
    out.lines().nth(1).unwrap_or_default().to_owned()
}

/// A tansu broker on 127.0.0.1, started by the project's script and stopped by its PID
/// when dropped.
struct Broker {
    dir: PathBuf,
    port: u16,
}

impl Broker {
    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka-broker")
    }

    /// `None` (with the reason on stderr) where no broker can be had on this machine.
    fn start(dir: &Path) -> Option<Broker> {
        Self::launch(
            dir,
            Command::new(Self::script()).arg("start").arg(dir),
            "Kafka-protocol broker",
        )
    }

    /// Runs the script's `start` or `start-secure`, which prints the port.
    fn launch(dir: &Path, script: &mut Command, what: &str) -> Option<Broker> {
        let (code, out, err) = run(script);
        if code != 0 {
            eprintln!("SKIPPED: no {what} on this machine: {}", err.trim());
            return None;
        }
        Some(Broker {
            dir: dir.to_owned(),
            port: out.trim().parse().expect("the script prints the port"),
        })
    }

    /// Stops and starts it again on the same port; topics, records and committed offsets
    /// survive in its sqlite file.
    fn restart(&self) {
        let _ = Command::new(Self::script())
            .arg("stop")
            .arg(&self.dir)
            .status();
        let (code, _, err) = run(Command::new(Self::script())
            .arg("start")
            .arg(&self.dir)
            .arg(self.port.to_string()));
        assert_eq!(code, 0, "{err}");
    }

    /// The same broker refusing plaintext and unauthenticated clients: stunnel's TLS in
    /// front (a CA made in `dir`: `ca.pem`, and `other-ca.pem` that signed nothing), SCRAM
    /// users, and `topics` created before authentication was switched on.
    fn start_secure(
        dir: &Path,
        user: &str,
        password: &str,
        topics: &[(&str, u32)],
    ) -> Option<Broker> {
        Self::launch(
            dir,
            Command::new(Self::script())
                .arg("start-secure")
                .arg(dir)
                .args([user, password])
                .args(topics.iter().map(|(name, n)| format!("{name}={n}"))),
            "TLS and SASL broker (tansu and stunnel)",
        )
    }

    fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn topic(&self, name: &str, partitions: u32) {
        let (code, _, err) = run(Command::new(Self::script())
            .arg("topic")
            .arg(&self.dir)
            .arg(name)
            .arg(partitions.to_string()));
        assert_eq!(code, 0, "{err}");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = Command::new(Self::script())
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}

/// The core promise: an ingester SIGKILLed at random moments while 100k records stream,
/// then restarted, leaves exactly 100k rows, none twice, none missing.
/// Settings of a client of the secure broker: SASL over TLS with `mechanism`, trusting `ca`.
fn sasl_ssl(mechanism: &str, ca: &Path) -> Vec<String> {
    [
        "security.protocol=SASL_SSL".to_owned(),
        format!("sasl.mechanism={mechanism}"),
        "sasl.username=alice".to_owned(),
        format!("ssl.ca.location={}", ca.display()),
    ]
    .into_iter()
    .flat_map(|setting| ["--kafka-option".to_owned(), setting])
    .collect()
}

/// Every file under `dir`, read whole.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    found
}

/// The transport a managed Kafka demands: TLS and SASL/SCRAM, with the password given the
/// two ways a secret may come (a variable, a file) and found nowhere after (not in any
/// output, not in the lake). Every setting such a broker refuses ends `produce` and
/// `ingest kafka` within seconds, in one line that names the cause, instead of a silent
/// retry loop; a secret given in the open is refused without being repeated.
#[test]
fn a_broker_with_tls_and_sasl_is_read_and_each_refusal_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let password = format!("pw-{}-{}", std::process::id(), line!());
    let Some(broker) = Broker::start_secure(
        &dir.path().join("broker"),
        "alice",
        &password,
        &[("audit", 2)],
    ) else {
        return;
    };
    let ca = dir.path().join("broker/ca.pem");
    let secret_file = dir.path().join("kafka-password");
    std::fs::write(&secret_file, format!("{password}\n")).unwrap();
    let audit = samples().join("k8s-audit.jsonl");
    let (_lake_dir, lake) = temp_lake();
    let mut said = String::new();

    let (code, out, err) = run(kubetrail()
        .args([
            "produce",
            "--brokers",
            &broker.brokers(),
            "--topic",
            "audit",
        ])
        .args(sasl_ssl("SCRAM-SHA-256", &ca))
        .env("KUBETRAIL_KAFKA_SASL_PASSWORD", &password)
        .arg(&audit));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("466 records"), "{out}");
    said += &(out + &err);
    let (code, out, err) = run(kubetrail()
        .args(["ingest", "kafka", "--lake", &lake, "--until-caught-up"])
        .args(["--brokers", &broker.brokers(), "--topic", "audit=k8s-audit"])
        .args(sasl_ssl("SCRAM-SHA-512", &ca))
        .arg("--kafka-secret-file")
        .arg(format!("sasl.password={}", secret_file.display())));
    assert_eq!(code, 0, "{err}");
    said += &(out + &err);
    assert_eq!(audit_rows(&lake), "466");
    assert!(
        !said.contains(&password),
        "the password was printed: {said}"
    );
    for (path, bytes) in files_under(Path::new(&lake)) {
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(&password),
            "the password is in {}",
            path.display()
        );
    }

    // (what is wrong, settings, variables, what the line must name)
    let other_ca = dir.path().join("broker/other-ca.pem");
    let wrong = format!("not-{password}");
    let plaintext: Vec<String> = Vec::new();
    let tls_only = vec![
        "--kafka-option".to_owned(),
        "security.protocol=SSL".to_owned(),
        "--kafka-option".to_owned(),
        format!("ssl.ca.location={}", ca.display()),
    ];
    let mut oauth = sasl_ssl("OAUTHBEARER", &ca);
    oauth.extend([
        "--kafka-option".into(),
        "enable.sasl.oauthbearer.unsecure.jwt=true".into(),
    ]);
    /// What is wrong, the settings, a variable it sets, and what the line must name.
    struct Refusal<'a> {
        what: &'a str,
        settings: Vec<String>,
        variable: (&'a str, &'a str),
        named: &'a str,
    }
    let refusals = [
        Refusal {
            what: "wrong password",
            settings: sasl_ssl("SCRAM-SHA-512", &ca),
            variable: ("KUBETRAIL_KAFKA_SASL_PASSWORD", &wrong),
            named: "authentication failed",
        },
        Refusal {
            what: "untrusted certificate",
            settings: sasl_ssl("SCRAM-SHA-256", &other_ca),
            variable: ("KUBETRAIL_KAFKA_SASL_PASSWORD", &password),
            named: "certificate verify failed",
        },
        Refusal {
            what: "mechanism the broker does not take",
            settings: oauth,
            variable: ("KUBETRAIL_KAFKA_SASL_OAUTHBEARER_CONFIG", "principal=alice"),
            named: "sasl.mechanism=OAUTHBEARER",
        },
        Refusal {
            what: "plaintext to TLS",
            settings: plaintext,
            variable: ("KUBETRAIL_UNUSED", ""),
            named: "security.protocol",
        },
        Refusal {
            what: "TLS without SASL",
            settings: tls_only,
            variable: ("KUBETRAIL_UNUSED", ""),
            named: "security.protocol",
        },
    ];
    for Refusal {
        what,
        settings,
        variable: (variable, value),
        named,
    } in &refusals
    {
        for verb in [
            &["produce", "--topic", "audit"][..],
            &[
                "ingest",
                "kafka",
                "--lake",
                &lake,
                "--topic",
                "audit=k8s-audit",
            ],
        ] {
            let started = std::time::Instant::now();
            let (code, _, err) = run(kubetrail()
                .args(verb)
                .args(["--brokers", &broker.brokers()])
                .args(settings)
                .env(variable, value)
                .arg(if verb[0] == "produce" {
                    audit.as_os_str()
                } else {
                    "--until-caught-up".as_ref()
                }));
            let took = started.elapsed();
            let last = err.trim().lines().last().unwrap_or_default();
            assert_eq!(code, 1, "{what}, {verb:?}: {err}");
            assert!(
                took < std::time::Duration::from_secs(10),
                "{what}, {verb:?}: {took:?}"
            );
            assert!(
                last.starts_with("kubetrail: Kafka: ") && last.contains(named),
                "{what}, {verb:?}: {err}"
            );
            assert!(last.contains("not retried"), "{what}, {verb:?}: {last}");
            assert!(!err.contains(&password), "{what}, {verb:?}: {err}");
        }
    }
    assert_eq!(audit_rows(&lake), "466");

    // A secret in the open is refused, and not repeated.
    let config = dir.path().join("kubetrail.toml");
    std::fs::write(
        &config,
        format!("[kafka.options]\n\"sasl.password\" = \"{password}\"\n"),
    )
    .unwrap();
    let sink = format!("kafka:{}/alerts", broker.brokers());
    let brokers = broker.brokers();
    let words = |text: &str| -> Vec<String> { text.split(' ').map(str::to_owned).collect() };
    let in_the_open = [
        words(&format!(
            "produce --brokers {brokers} --topic audit --kafka-option sasl.password={password} {}",
            audit.display()
        )),
        words(&format!(
            "ingest kafka --lake {lake} --brokers {brokers} --topic audit \
             --kafka-option ssl.key.password={password}"
        )),
        words(&format!(
            "detect schedule --lake {lake} --sink {sink} --kafka-option sasl.password={password}"
        )),
        words(&format!(
            "--config {} produce --brokers {brokers} --topic audit {}",
            config.display(),
            audit.display()
        )),
    ];
    for args in &in_the_open {
        let (code, _, err) = run(kubetrail().args(args));
        assert_eq!(code, 1, "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("is a secret"), "{err}");
        assert!(!err.contains(&password), "{err}");
    }
}

#[test]
fn an_ingester_killed_at_random_moments_lands_every_record_exactly_once() {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};
    const EVENTS: u64 = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let Some(broker) = Broker::start(&dir.path().join("broker")) else {
        return;
    };
    broker.topic("audit", 3);
    let events = dir.path().join("audit.jsonl");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&events).unwrap());
    for line in kubetrail_samples::volume::audit_lines(EVENTS, 7, 1) {
        writeln!(file, "{line}").unwrap();
    }
    file.flush().unwrap();
    drop(file);
    let lake = dir.path().join("lake").to_string_lossy().into_owned();
    // Small batches: most commits are the decoding workers' full batches, taken while the
    // consumer keeps reading, so the kills land between a worker's stage and its commit.
    let config = dir.path().join("kubetrail.toml");
    std::fs::write(&config, "[ingest]\nbatch_rows = 2000\n").unwrap();
    let brokers = broker.brokers();
    let producer = kubetrail()
        .args([
            "produce",
            "--brokers",
            &brokers,
            "--topic",
            "audit",
            "--rate",
            "8000",
        ])
        .arg(&events)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ingester = || {
        let mut c = kubetrail();
        c.arg("--config")
            .arg(&config)
            .args(["ingest", "kafka", "--lake", &lake, "--brokers", &brokers])
            .args([
                "--group",
                "crash",
                "--topic",
                "audit=k8s-audit",
                "--linger",
                "300ms",
            ])
            .args([
                "--no-compaction",
                "--kafka-option",
                "session.timeout.ms=6000",
            ]);
        c
    };
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    eprintln!("kill schedule seed: {seed}");
    for round in 0..4 {
        let mut child = ingester()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let alive = Duration::from_millis(2_000 + seed % 7_000);
        std::thread::sleep(alive);
        child.kill().unwrap(); // SIGKILL: no flush, no commit, no goodbye to the group
        child.wait().unwrap();
        eprintln!("round {round}: killed after {alive:?}");
    }
    // The killed ingesters got rows in: the restart below resumes over a half-written
    // lake, with staged files no commit references.
    let before: u64 = audit_rows(&lake).parse().unwrap();
    eprintln!("rows in the lake after the kills: {before}");
    assert!(before > 0, "no ingester lived long enough to commit");
    let produced = producer.wait_with_output().unwrap();
    assert!(
        produced.status.success(),
        "{}",
        String::from_utf8_lossy(&produced.stderr)
    );
    // tansu 0.6 defect: a JoinGroup that arrives while the group still lists a member that
    // died less than `session.timeout.ms` ago is never answered, and a broker restart does
    // not help (reproduced 4 of 4 times; 0 of 4 once the session has expired). A real
    // Kafka broker evicts the dead member and answers. So the last ingester starts after
    // the dead members' sessions (6 s) are over. The broker restart is one more crash the
    // pipeline must survive (records and offsets live in its sqlite file).
    std::thread::sleep(Duration::from_secs(9));
    broker.restart();
    let mut last = ingester()
        .arg("--until-caught-up")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    while last.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            last.kill().unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (code, last_run, last_log) = outcome(last.wait_with_output().unwrap());
    assert_eq!(
        code, 0,
        "the last ingester did not finish in time:\n{last_log}"
    );
    let out = sql_csv(
        &lake,
        "SELECT count(*) AS n, count(DISTINCT _source || '/' || CAST(_offset AS VARCHAR)) AS distinct_records FROM k8s_audit",
    );
    assert_eq!(
        out.lines().nth(1),
        Some("100000,100000"),
        "last run:\n{last_run}\n{last_log}"
    );
    assert!(last_log.contains("decoding on a pool"), "{last_log}");
}

/// `produce` and `ingest kafka` as a responder runs them, against the in-process cluster:
/// metrics served while it runs, SIGTERM flushes, commits and exits 0.
#[test]
fn ingest_kafka_serves_metrics_and_exits_cleanly_on_sigterm() {
    use kubetrail_ingest::kafka::embedded::EmbeddedKafka;
    use std::io::Read;
    use std::time::{Duration, Instant};
    let kafka = EmbeddedKafka::start(1, &[("audit", 3)]).unwrap();
    let brokers = kafka.bootstrap_servers();
    let (code, out, err) = run(kubetrail()
        .args(["produce", "--brokers", &brokers, "--topic", "audit"])
        .arg(samples().join("k8s-audit.jsonl")));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("466 records"), "{out}");
    let (_dir, lake) = temp_lake();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let child = kubetrail()
        .args(["ingest", "kafka", "--lake", &lake, "--brokers", &brokers])
        .args(["--topic", "audit=k8s-audit", "--linger", "200ms"])
        .args(["--metrics-addr", &metrics_addr])
        .args(["--kafka-option", "session.timeout.ms=6000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let page = loop {
        assert!(
            Instant::now() < deadline,
            "the ingester never wrote 466 rows"
        );
        std::thread::sleep(Duration::from_millis(300));
        let Ok(mut s) = std::net::TcpStream::connect(&metrics_addr) else {
            continue;
        };
        s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        let mut page = String::new();
        s.read_to_string(&mut page).unwrap();
        if page.contains("kubetrail_rows_written_total{table=\"k8s_audit\"} 466") {
            break page;
        }
    };
    assert!(
        page.contains("kubetrail_records_total{topic=\"audit\"} 466"),
        "{page}"
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (code, out, err) = outcome(child.wait_with_output().unwrap());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("k8s_audit               466"), "{out}");
    assert_eq!(audit_rows(&lake), "466");
}

/// `kubetrail timeline` as a responder runs it, its mistakes answered in one line, and the
/// HTML report rendered by a real browser (headless Chromium) without a script error.
/// A lake of the sample audit log, Hubble flows and Tetragon events.
fn lake_of_the_three_streams() -> (tempfile::TempDir, String) {
    let (dir, lake) = temp_lake();
    let (code, _, err) = run(kubetrail()
        .args(["ingest", "file", "--quiet", "--lake", &lake])
        .arg(samples().join("k8s-audit.jsonl"))
        .arg(samples().join("hubble.jsonl"))
        .arg(samples().join("tetragon.jsonl")));
    assert_eq!(code, 0, "{err}");
    (dir, lake)
}

/// The attacked pod's timeline, the hour around the attack.
fn pod_timeline(lake: &str) -> Command {
    let mut c = kubetrail();
    c.args([
        "timeline",
        "--lake",
        lake,
        "--pod",
        "shop/api-7d9f8b6c5-x2k4p",
    ])
    .args(["--around", "2026-11-20T09:35:00Z", "--window", "1h"]);
    c
}

/// A timeline as evidence: its lines, the lake rows they stand on, the custody records of
/// the files those rows are in (matching the files' bytes), and checksums of it all.
#[test]
fn an_evidence_bundle_holds_a_timelines_rows_and_their_custody() {
    use sha2::{Digest, Sha256};
    let (dir, lake) = lake_of_the_three_streams();
    let bundle = dir.path().join("bundle");
    let timeline = |format: &str, output: Option<&Path>| {
        let mut c = pod_timeline(&lake);
        c.args(["--format", format]);
        if let Some(o) = output {
            c.arg("--output").arg(o);
        }
        run(&mut c)
    };
    let (code, out, err) = timeline("evidence", Some(&bundle));
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("sha256sum -c SHA256SUMS"), "{err}");

    // Every file of the bundle is in SHA256SUMS, with its hash.
    let sums = std::fs::read_to_string(bundle.join("SHA256SUMS")).unwrap();
    let mut listed: Vec<&str> = Vec::new();
    for line in sums.lines() {
        let (hash, name) = line.split_once("  ").unwrap();
        let bytes = std::fs::read(bundle.join(name)).unwrap();
        assert_eq!(hash, hex::encode(Sha256::digest(&bytes)), "{name}");
        listed.push(name);
    }
    listed.sort();
    assert_eq!(
        listed,
        [
            "README.txt",
            "custody.json",
            "rows/k8s_audit.parquet",
            "rows/network_flows.parquet",
            "rows/runtime_events.parquet",
            "timeline.html",
            "timeline.jsonl",
        ]
    );
    // One line per lake row, not folded, and each line's row is in the bundle.
    let lines = std::fs::read_to_string(bundle.join("timeline.jsonl")).unwrap();
    let (_, folded, _) = timeline("jsonl", None);
    assert!(lines.lines().count() > folded.lines().count());
    for line in lines.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["count"], 1, "{line}");
    }
    let mut records = std::collections::BTreeSet::new();
    for table in ["k8s_audit", "network_flows", "runtime_events"] {
        let file =
            std::fs::File::open(bundle.join("rows").join(format!("{table}.parquet"))).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let column = |name: &str| {
                let c = batch.column_by_name(name).unwrap();
                arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8).unwrap()
            };
            let (sources, offsets, files) =
                (column("_source"), column("_offset"), column("_lake_file"));
            use arrow::array::AsArray;
            for i in 0..batch.num_rows() {
                assert!(!files.as_string::<i32>().value(i).is_empty());
                records.insert((
                    table.to_owned(),
                    sources.as_string::<i32>().value(i).to_owned(),
                    offsets.as_string::<i32>().value(i).parse::<i64>().unwrap(),
                ));
            }
        }
    }
    for line in lines.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let record = (
            v["ref_table"].as_str().unwrap().to_owned(),
            v["ref_source"].as_str().unwrap().to_owned(),
            v["ref_offset"].as_i64().unwrap(),
        );
        assert!(records.contains(&record), "{line}");
    }
    // Each file the rows are in has its manifest entry, and the lake's file has those bytes.
    let custody: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("custody.json")).unwrap()).unwrap();
    let mut files = 0;
    for (table, record) in custody["tables"].as_object().unwrap() {
        assert_eq!(record["head"]["sha256"].as_str().unwrap().len(), 64);
        assert!(record.get("unsealed").is_none(), "{record}");
        for file in record["files"].as_array().unwrap() {
            let path = Path::new(&lake)
                .join(table)
                .join(file["path"].as_str().unwrap());
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(file["size"], bytes.len() as u64);
            assert_eq!(file["sha256"], hex::encode(Sha256::digest(&bytes)));
            assert_eq!(file["origin"][0]["kind"], "file", "{file}");
            files += 1;
        }
    }
    assert!(files >= 3, "{custody}");

    // Bad requests: one line each, nothing written.
    let (code, _, err) = timeline("evidence", None);
    assert_eq!((code, err.lines().count()), (1, 1), "{err}");
    assert!(err.contains("--output DIR"), "{err}");
    let (code, _, err) = timeline("evidence", Some(&bundle));
    assert_eq!((code, err.lines().count()), (1, 1), "{err}");
    assert!(err.contains("is not empty"), "{err}");
}

#[test]
fn a_timeline_from_the_command_line_and_its_report_in_a_browser() {
    let (dir, lake) = lake_of_the_three_streams();
    let timeline =
        |extra: &[&str]| run(kubetrail().args(["timeline", "--lake", &lake]).args(extra));
    let pod = ["--pod", "shop/api-7d9f8b6c5-x2k4p"];
    let around = ["--around", "2026-11-20T09:35:00Z", "--window", "1h"];
    let (code, out, err) = timeline(&[&pod[..], &around[..]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("Timeline of pod shop/api-7d9f8b6c5-x2k4p"),
        "{out}"
    );
    assert!(
        out.contains("exec'd `sh` into shop/api-7d9f8b6c5-x2k4p"),
        "{out}"
    );
    let (code, csv, _) =
        timeline(&[&pod[..], &around[..], &["--format", "csv", "--depth", "0"]].concat());
    assert_eq!(code, 0);
    assert!(csv.starts_with("time,last_time,count,stream,"), "{csv}");
    for (args, message) in [
        (vec!["--pod", "shop"], "kubetrail: pod 'shop' must be NAMESPACE/NAME\n"),
        (vec!["--pod", "shop/nope", "--around", "2026-11-20T09:35:00Z"], "kubetrail: pod shop/nope does not appear anywhere in this lake\n"),
        (vec!["--ip", "10.1.2"], "kubetrail: '10.1.2' is not an IPv4 or IPv6 address\n"),
        (vec!["--pod", "shop/a", "--from", "yesterday", "--to", "2026-11-20"], "kubetrail: --from: 'yesterday' is not a time (use 2026-11-20T09:30:00Z, '2026-11-20 09:30' or 2026-11-20)\n"),
        (vec!["--pod", "shop/a", "--format", "pdf"], "kubetrail: unknown timeline format 'pdf' (table, csv, jsonl, parquet, timesketch, html; evidence with --output DIR)\n"),
        (vec!["--alert", "a-1"], "kubetrail: alert a-1 is not in this lake's alerts table\n"),
    ] {
        let (code, out, err) = timeline(&args);
        assert_eq!((code, err.as_str()), (1, message), "{args:?}: {out}");
    }
    let (code, _, err) = timeline(&[]);
    assert_eq!(code, 2, "no entity is a usage error: {err}");
    let report = dir.path().join("report.html");
    let (code, _, err) = timeline(
        &[
            &pod[..],
            &around[..],
            &["--format", "html", "--output", report.to_str().unwrap()],
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("lines of the timeline of pod shop/api-7d9f8b6c5-x2k4p written to"),
        "{err}"
    );

    let Some(chromium) = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
    else {
        eprintln!("SKIPPED: the HTML report was not rendered: no Chromium on this machine (Debian: apt-get install chromium)");
        return;
    };
    let url = format!("file://{}", report.display());
    let browser = |args: &[&str]| {
        run(Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
            ])
            .arg(format!(
                "--user-data-dir={}",
                dir.path().join("chromium").display()
            ))
            .args(["--enable-logging=stderr", "--v=0"])
            .args(args)
            .arg(&url))
    };
    let (code, dom, log) = browser(&["--virtual-time-budget=5000", "--dump-dom"]);
    assert_eq!(code, 0, "{log}");
    let body = &dom[dom.find("<body").expect("a body")..];
    let body_tag = &body[..body.find('>').unwrap()];
    assert!(!body_tag.contains("data-error"), "script error: {body_tag}");
    let rendered: usize = body_tag
        .split("data-rendered=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the report's script did not finish: {body_tag}"));
    assert!(rendered > 10, "{rendered} lines rendered");
    assert_eq!(dom.matches("<tr id=\"line-").count(), rendered);
    for line in log.lines().filter(|l| l.contains("CONSOLE")) {
        assert!(
            !line.contains("Uncaught") && !line.contains("Error"),
            "console: {line}"
        );
    }
    assert!(
        !log.contains("Content Security Policy"),
        "a blocked load: {log}"
    );
    let shot = dir.path().join("report.png");
    let (code, _, log) = browser(&[
        "--window-size=1400,1000",
        &format!("--screenshot={}", shot.display()),
    ]);
    assert_eq!(code, 0, "{log}");
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
}

/// SQL over the lake only reads it: no statement, table factory or function reads a file
/// outside it (the redaction key, /etc/passwd) or writes one, from `sql` or the shell.
#[test]
fn sql_only_reads_the_lake_and_no_file_outside_it() {
    let (dir, lake) = lake_of_the_three_streams();
    let secret = dir.path().join("outside.csv");
    std::fs::write(&secret, "marker\nkubetrail-outside-the-lake-7f3a\n").unwrap();
    let secret = secret.display().to_string();
    let written = dir.path().join("written.csv").display().to_string();
    let attempts = [
        format!("CREATE EXTERNAL TABLE s (l VARCHAR) STORED AS CSV LOCATION '{secret}'"),
        format!("CREATE EXTERNAL TABLE s STORED AS CSV LOCATION '{secret}'; SELECT * FROM s"),
        format!("EXPLAIN CREATE EXTERNAL TABLE s STORED AS CSV LOCATION '{secret}'"),
        format!("SELECT * FROM '{secret}'"),
        format!("SELECT * FROM read_csv('{secret}')"),
        format!("SELECT * FROM parquet_metadata('{secret}')"),
        format!("COPY (SELECT * FROM k8s_audit) TO '{written}'"),
        "CREATE TABLE t AS SELECT * FROM k8s_audit".into(),
        "CREATE VIEW v AS SELECT 1".into(),
        "DROP TABLE k8s_audit".into(),
        "INSERT INTO alerts SELECT * FROM alerts".into(),
        "DELETE FROM k8s_audit".into(),
        "SET datafusion.runtime.memory_limit = '1T'".into(),
    ];
    for sql in &attempts {
        let (code, out, err) = run(kubetrail().args(["sql", "--lake", &lake, sql]));
        assert_eq!(code, 1, "{sql}: {out}");
        assert!(
            !out.contains("7f3a") && !err.contains("7f3a"),
            "{sql}: {out}{err}"
        );
        assert!(
            err.starts_with("kubetrail: ") && err.lines().count() == 1,
            "{sql}: {err}"
        );
    }
    let (_, _, err) = run(kubetrail().args(["sql", "--lake", &lake, &attempts[0]]));
    assert!(
        err.starts_with("kubetrail: read-only: CREATE EXTERNAL TABLE is refused"),
        "{err}"
    );
    // The shell: a table made in one statement would stay for the next; none is made.
    let mut script = attempts.join(";\n");
    script.push_str(";\nSELECT * FROM s;\nSHOW TABLES;\nSELECT count(*) AS n FROM k8s_audit;\n");
    let (code, out, err) = with_stdin(
        kubetrail().args(["shell", "--lake", &lake]),
        script.as_bytes(),
    );
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("7f3a"), "{out}");
    assert_eq!(out.matches("error: read-only: ").count(), 9, "{out}");
    assert!(
        out.contains("error: one statement at a time (2 given)"),
        "{out}"
    );
    assert!(out.contains("| k8s_audit"), "{out}");
    assert!(!Path::new(&written).exists());
    // Each attempt is in query_log, refused, from `sql` and from the shell.
    let log = sql_csv(
        &lake,
        "SELECT interface, outcome, count(*) AS n FROM query_log \
         WHERE sql LIKE 'CREATE EXTERNAL%' GROUP BY ALL ORDER BY 1",
    );
    assert!(
        log.contains("shell,refused,") && log.contains("sql,refused,"),
        "{log}"
    );
}

/// The problems of one OCSF value against the checked-in schema: attribute names the class
/// or object does not have, required ones missing, at-least-one constraints unmet.
fn ocsf_problems(
    schema: &serde_json::Value,
    object: &str,
    shape: &serde_json::Value,
    value: &serde_json::Value,
    at: &str,
    problems: &mut Vec<String>,
) {
    let attributes = &shape["attributes"];
    let Some(fields) = value.as_object() else {
        return problems.push(format!("{at}: not an object"));
    };
    for (name, v) in fields {
        // The datetime profile adds `<timestamp>_dt` beside each timestamp.
        let known = attributes.get(name).or_else(|| {
            name.strip_suffix("_dt")
                .and_then(|base| attributes.get(base))
        });
        let Some(kind) = known else {
            problems.push(format!("{at}.{name}: not an attribute of {object}"));
            continue;
        };
        if let Some(kind) = kind.as_str() {
            let items = match v {
                serde_json::Value::Array(items) => items.clone(),
                other => vec![other.clone()],
            };
            for (i, item) in items.iter().enumerate() {
                ocsf_problems(
                    schema,
                    kind,
                    &schema["objects"][kind],
                    item,
                    &format!("{at}.{name}[{i}]"),
                    problems,
                );
            }
        }
    }
    for r in shape["required"].as_array().unwrap() {
        let r = r.as_str().unwrap();
        if fields.get(r).is_none_or(|v| v.is_null()) {
            problems.push(format!("{at}: required {object}.{r} is missing"));
        }
    }
    if let Some(any) = shape["at_least_one"].as_array().filter(|a| !a.is_empty()) {
        let filled = |v: &serde_json::Value| match v {
            serde_json::Value::Object(o) => o.values().any(|x| !x.is_null()),
            other => !other.is_null(),
        };
        if !any
            .iter()
            .any(|k| fields.get(k.as_str().unwrap()).is_some_and(filled))
        {
            problems.push(format!("{at}: {object} needs one of {any:?}"));
        }
    }
}

/// Each OCSF view over the three streams and the alerts: every row holds its class's
/// required attributes, and names no attribute OCSF 1.1.0 does not have; `export ocsf`
/// writes them as Security Lake lays out a custom source.
#[test]
fn ocsf_views_fill_what_the_schema_requires_and_export_for_security_lake() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("query/src/ocsf/schema-1.1.0.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let (dir, lake) = temp_lake();
    let (code, _, err) = run(kubetrail()
        .args(["ingest", "file", "--quiet", "--lake", &lake])
        .args(
            [
                "k8s-audit.jsonl",
                "eks-cloudwatch.json",
                "gke-audit.jsonl",
                "hubble.jsonl",
                "aws-vpc-flow.log",
                "calico-flow.jsonl",
                "tetragon.jsonl",
                "falco.jsonl",
            ]
            .map(|f| samples().join(f)),
        ));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(kubetrail().args([
        "detect",
        "run",
        "--lake",
        &lake,
        "--from",
        "2026-11-20T09:00:00Z",
        "--to",
        "2026-11-20T10:00:00Z",
    ]));
    assert_eq!(code, 0, "{err}");
    for (class, uid, least) in [
        ("api_activity", 6003, 400),
        ("network_activity", 4001, 400),
        ("process_activity", 1007, 20),
        ("detection_finding", 2004, 20),
    ] {
        let (code, out, err) = run(kubetrail().args([
            "sql",
            "--lake",
            &lake,
            "--format",
            "json",
            &format!("SELECT * FROM ocsf_{class}"),
        ]));
        assert_eq!(code, 0, "{class}: {err}");
        let c = &schema["classes"][class];
        assert_eq!(c["class_uid"], uid);
        let rows: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(rows.len() >= least, "{class}: {} rows", rows.len());
        let mut problems = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(row["class_uid"], uid);
            assert_eq!(
                row["type_uid"],
                uid * 100 + row["activity_id"].as_i64().unwrap()
            );
            assert_eq!(row["metadata"]["version"], "1.1.0");
            assert!(
                row["metadata"]["uid"].as_str().unwrap().contains('#'),
                "{row}"
            );
            ocsf_problems(
                &schema,
                class,
                c,
                row,
                &format!("{class}[{i}]"),
                &mut problems,
            );
        }
        problems.dedup();
        assert!(
            problems.is_empty(),
            "{}",
            problems[..problems.len().min(20)].join("\n")
        );
    }
    // A Falco alert and a kubetrail alert are both findings, with their ATT&CK techniques.
    let (_, out, _) = run(kubetrail().args([
        "sql",
        "--lake",
        &lake,
        "--format",
        "csv",
        "SELECT DISTINCT finding_info.types[1] AS finder FROM ocsf_detection_finding ORDER BY 1",
    ]));
    assert_eq!(out, "finder\nfalco\nkubetrail\n");
    let (_, out, _) = run(kubetrail().args([
        "sql", "--lake", &lake, "--format", "csv",
        "SELECT count(*) FROM ocsf_detection_finding WHERE finding_info.attacks[1].technique.uid = 'T1609'",
    ]));
    assert_ne!(out.lines().nth(1), Some("0"), "{out}");

    let out_dir = dir.path().join("security-lake");
    let export = |extra: &[&str]| {
        run(kubetrail()
            .args([
                "export",
                "ocsf",
                "--lake",
                &lake,
                "--from",
                "2026-11-20T00:00:00Z",
            ])
            .args([
                "--to",
                "2026-11-22T00:00:00Z",
                "--region",
                "eu-west-1",
                "--account-id",
            ])
            .arg("123456789012")
            .arg("--output")
            .arg(&out_dir)
            .args(extra))
    };
    let (code, out, err) = export(&["--table", "all"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 4, "{out}");
    let day = out_dir.join(
        "ext/kubetrail-api-activity/region=eu-west-1/accountId=123456789012/eventDay=20261120",
    );
    let files: Vec<_> = std::fs::read_dir(&day).unwrap().flatten().collect();
    assert_eq!(files.len(), 1, "{day:?}");
    let bytes = std::fs::read(files[0].path()).unwrap();
    assert_eq!(&bytes[..4], b"PAR1");
    let exported: usize = out
        .lines()
        .next()
        .unwrap()
        .split(": ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let (_, all, _) = run(kubetrail().args([
        "sql",
        "--lake",
        &lake,
        "--format",
        "csv",
        "SELECT count(*) FROM ocsf_api_activity",
    ]));
    assert_eq!(all.lines().nth(1), Some(exported.to_string().as_str()));
    // Nothing on the 21st: no empty partition.
    assert!(!day.with_file_name("eventDay=20261121").exists());
    // Again: the same files, replaced.
    let (code, _, err) = export(&["--table", "api_activity"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_dir(&day).unwrap().count(), 1);

    for (extra, says) in [
        (
            vec!["--table", "dns_activity"],
            "'dns_activity' is not an OCSF class kubetrail exports",
        ),
        (
            vec!["--table", "all", "--source-name", "x"],
            "one OCSF class per source",
        ),
        (
            vec!["--table", "4001", "--source-name", "a/b"],
            "source name 'a/b'",
        ),
    ] {
        let (code, _, err) = export(&extra);
        assert_eq!(code, 1, "{extra:?}");
        assert!(
            err.starts_with("kubetrail: ") && err.contains(says) && err.lines().count() == 1,
            "{err}"
        );
    }
}

/// `detect coverage`: the rules over the ATT&CK techniques, their tests run; a failing test
/// shows in the report and in the exit code.
#[test]
fn coverage_names_what_covers_each_technique_and_how_the_tests_went() {
    let dir = tempfile::tempdir().unwrap();
    let area = dir.path().join("rules/runtime");
    std::fs::create_dir_all(&area).unwrap();
    let pack = Path::new(env!("CARGO_MANIFEST_DIR")).join("detections/rules");
    std::fs::copy(
        pack.join("runtime/cryptominer.yaml"),
        area.join("cryptominer.yaml"),
    )
    .unwrap();
    let rules = dir.path().join("rules");
    let (code, out, err) = run(kubetrail()
        .args(["detect", "coverage", "--format", "json", "--rules"])
        .arg(&rules));
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let miner = &report["rules"][0];
    assert_eq!(
        (miner["id"].as_str(), miner["tests"].as_str()),
        (Some("cryptominer"), Some("pass"))
    );
    let t = report["techniques"].as_array().unwrap();
    let of = |id: &str| t.iter().find(|x| x["id"] == id).unwrap().clone();
    assert_eq!(of("T1496.001")["rules"], serde_json::json!(["cryptominer"]));
    assert_eq!(of("T1609")["covered"], false);

    // A test that no longer holds: named in the report, and the exit code says so.
    let text = std::fs::read_to_string(area.join("cryptominer.yaml")).unwrap();
    let broken = text.replacen("expect: {alerts: 1", "expect: {alerts: 3", 1);
    assert_ne!(broken, text);
    std::fs::write(area.join("cryptominer.yaml"), broken).unwrap();
    let (code, out, err) = run(kubetrail()
        .args(["detect", "coverage", "--rules"])
        .arg(&rules));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL (1 of 2)"), "{out}");
    assert!(
        err.ends_with("kubetrail: 1 rule(s) fail their tests, 0 rule file(s) did not load\n"),
        "{err}"
    );

    let (code, out, err) =
        run(kubetrail().args(["detect", "coverage", "--no-tests", "--format", "html"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("<!DOCTYPE html>") && out.contains("tests not run"),
        "{out}"
    );
    let (code, _, err) = run(kubetrail().args(["detect", "coverage", "--format", "pdf"]));
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "kubetrail: --format must be table, json or html, not 'pdf'\n"
        )
    );
}

/// Sigma rules in: `detect import-sigma` writes what it translates and names what it does
/// not; the rules run from `--rules`, beside the built-in pack with `--with-builtin`.
#[test]
fn sigma_rules_are_imported_and_run_beside_the_pack() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("detections/tests/sigma");
    let (dir, lake) = temp_lake();
    let out_dir = dir.path().join("imported");
    let (code, out, err) = run(kubetrail()
        .args(["detect", "import-sigma"])
        .arg(fixtures.join("rules"))
        .arg(fixtures.join("refused"))
        .arg("--output")
        .arg(&out_dir));
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.starts_with("10 rule(s) translated into "), "{out}");
    let refused: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("not translated: "))
        .collect();
    assert_eq!(refused.len(), 8, "{err}");
    assert!(
        err.ends_with("kubetrail: 8 Sigma rule(s) or file(s) not translated\n"),
        "{err}"
    );
    assert!(out_dir
        .join("sigma/command-run-in-a-pod-container.yaml")
        .is_file());

    // Without --output the rule files are printed for review.
    let (code, out, err) = run(kubetrail()
        .args(["detect", "import-sigma"])
        .arg(fixtures.join("rules/exec_into_pod.yml")));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("# command-run-in-a-pod-container.yaml (from "),
        "{out}"
    );

    let count = |extra: &[&str]| -> usize {
        let (code, out, err) = run(kubetrail().args(["detect", "list"]).args(extra));
        assert_eq!(code, 0, "{err}");
        let last = out.lines().last().unwrap_or_default();
        last.trim_end_matches(" rules")
            .parse()
            .unwrap_or_else(|_| panic!("{out}"))
    };
    let rules = out_dir.to_str().unwrap();
    let builtin = count(&[]);
    assert_eq!(count(&["--rules", rules]), 10);
    assert_eq!(count(&["--rules", rules, "--with-builtin"]), builtin + 10);
    let (code, _, err) = run(kubetrail().args(["detect", "list", "--with-builtin"]));
    assert_eq!(code, 2, "{err}");

    let (code, _, err) = run(kubetrail()
        .args(["ingest", "file", "--quiet", "--lake", &lake])
        .arg(samples().join("k8s-audit.jsonl")));
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(kubetrail()
        .args([
            "detect",
            "run",
            "--lake",
            &lake,
            "--rules",
            rules,
            "--with-builtin",
        ])
        .args([
            "--from",
            "2026-11-20T09:00:00Z",
            "--to",
            "2026-11-20T10:00:00Z",
        ]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("| command-run-in-a-pod-container "), "{out}");
    assert!(out.contains("| exec-into-pod "), "{out}");
}

/// `detect list | test | run` as an operator runs them, then a pivot from an alert to its
/// timeline.
#[test]
fn detections_from_the_command_line_and_an_alert_as_a_timeline() {
    let (code, out, err) = run(kubetrail().args(["detect", "list"]));
    assert_eq!(code, 0, "{err}");
    let rules: usize = out
        .lines()
        .last()
        .and_then(|l| l.strip_suffix(" rules"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(rules >= 40, "{out}");
    assert!(
        out.contains("cryptominer") && out.contains("T1496"),
        "{out}"
    );
    // docs/detections.md is the pack's catalog, as the binary prints it.
    let (code, out, err) = run(kubetrail().args(["detect", "catalog"]));
    assert_eq!(code, 0, "{err}");
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/detections.md"))
            .unwrap();
    assert!(
        out == docs,
        "docs/detections.md is out of date: kubetrail detect catalog > docs/detections.md"
    );
    assert_eq!(out.matches("\n| `").count(), rules, "{out}");
    // Every inline test of the pack, through the real decoders and engine.
    let (code, out, err) = run(kubetrail().args(["detect", "test"]));
    assert_eq!(code, 0, "{out}\n{err}");
    let summary = out.lines().last().unwrap_or_default();
    let tests: usize = summary
        .split(", ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(tests >= 2 * rules, "{out}");
    assert_eq!(
        summary,
        format!("{rules} rules, {tests} tests: {tests} passed, 0 failed"),
        "{out}"
    );

    let (dir, lake) = temp_lake();
    let (code, _, err) = run(kubetrail()
        .args(["ingest", "file", "--quiet", "--lake", &lake])
        .arg(samples().join("k8s-audit.jsonl"))
        .arg(samples().join("hubble.jsonl"))
        .arg(samples().join("tetragon.jsonl"))
        .arg(samples().join("falco.jsonl")));
    assert_eq!(code, 0, "{err}");
    let detect = |extra: &[&str]| {
        run(kubetrail()
            .args(["detect", "run", "--lake", &lake])
            .args([
                "--from",
                "2026-11-20T09:00:00Z",
                "--to",
                "2026-11-20T10:00:00Z",
            ])
            .args(extra))
    };
    let (code, out, err) = detect(&[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("| cryptominer "), "{out}");
    let first: usize = err
        .split(": ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        err.contains(&format!(
            "{first} alerts ({first} new, 0 updated, 0 already"
        )),
        "{err}"
    );
    let (code, out, err) = detect(&["--format", "json"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!(
            "(0 new, 0 updated, {first} already in the alerts table)"
        )),
        "{err}"
    );
    let miner: serde_json::Value = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["rule_id"] == "cryptominer")
        .unwrap();
    assert_eq!(
        sql_csv(&lake, "SELECT count(*) FROM alerts").lines().nth(1),
        Some(first.to_string().as_str())
    );

    let id = miner["alert_id"].as_str().unwrap();
    let (code, out, err) = run(kubetrail().args(["timeline", "--lake", &lake, "--alert", id]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("Timeline of pod shop/api-7d9f8b6c5-x2k4p"),
        "{out}"
    );
    let miner_line = out.lines().find(|l| l.contains("ran `/tmp/xmrig")).unwrap();
    assert!(miner_line.contains(id), "{miner_line}");

    // A rules directory with a broken file: the good rules run, the exit code says not all did.
    let rules_dir = dir.path().join("rules/mixed");
    std::fs::create_dir_all(&rules_dir).unwrap();
    std::fs::write(rules_dir.join("broken.yaml"), "id: broken\n").unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("detections/rules/runtime/cryptominer.yaml"),
        rules_dir.join("cryptominer.yaml"),
    )
    .unwrap();
    let (code, out, err) = detect(&["--rules", dir.path().join("rules").to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("rule not loaded: ") && err.contains("broken.yaml"),
        "{err}"
    );
    assert!(err.ends_with("kubetrail: 1 rule file(s) did not load; the other rules ran and their alerts were written\n"), "{err}");
    let (code, _, err) = run(kubetrail().args(["detect", "test", "--rule", "nope"]));
    assert_eq!(
        (code, err.as_str()),
        (1, "kubetrail: no rule 'nope' in the pack\n")
    );

    // [detections] in kubetrail.toml: an indicator file of the operator's; the addresses
    // on it are judged, a malformed one is refused in one line, and so is a grouping that
    // does not exist.
    let ioc_dir = dir.path().join("rules/ioc");
    std::fs::create_dir_all(&ioc_dir).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("detections/rules/indicators/known-bad-address.yaml"),
        ioc_dir.join("known-bad-address.yaml"),
    )
    .unwrap();
    let indicators = dir.path().join("indicators.txt");
    let config = dir.path().join("detections.toml");
    std::fs::write(
        &config,
        format!(
            "[detections]\nindicator_files = [{:?}]\ngrouping = \"bucket\"\n",
            indicators.display()
        ),
    )
    .unwrap();
    std::fs::write(
        &indicators,
        "address 203.0.113.0/24 # the intruder's network\n",
    )
    .unwrap();
    let with_config = |extra: &[&str]| {
        let rules = dir.path().join("rules");
        run(kubetrail()
            .arg("--config")
            .arg(&config)
            .args(["detect", "run", "--lake", &lake, "--rules"])
            .arg(&rules)
            .args([
                "--from",
                "2026-11-20T09:00:00Z",
                "--to",
                "2026-11-20T10:00:00Z",
            ])
            .args(extra))
    };
    let (code, out, err) = with_config(&["--format", "csv"]);
    assert_eq!(code, 1, "{err}"); // the broken rule file above still does not load
    assert!(
        out.contains(",known-bad-address,address=203.0.113.66 "),
        "{out}"
    );
    std::fs::write(&indicators, "domain evil.example\n").unwrap();
    let (code, _, err) = with_config(&[]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("kubetrail: [detections]: ")
            && err.ends_with("indicators.txt:1: 'domain' is not an indicator kind (address, user-agent, image)\n"),
        "{err}"
    );
    std::fs::write(&indicators, "address 203.0.113.66\n").unwrap();
    let (code, _, err) = with_config(&["--grouping", "hourly"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("kubetrail: alert grouping 'hourly' must be update")
            && err.lines().count() == 1,
        "{err}"
    );

    // The scheduler: rounds logged one line each, SIGTERM ends it cleanly.
    let (code, _, err) =
        run(kubetrail().args(["detect", "schedule", "--lake", &lake, "--sink", "email:x"]));
    assert_eq!(code, 1);
    assert!(
        err.starts_with("kubetrail: sink 'email:x' must be"),
        "{err}"
    );
    let mut child = kubetrail()
        .args([
            "detect", "schedule", "--lake", &lake, "--every", "1s", "--sink", "jsonl:-",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read its log as it comes; stop it once two rounds are logged (or after a minute).
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut log = String::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains(" round ") {
                let _ = tx.send(());
            }
            log.push_str(&line);
            log.push('\n');
        }
        log
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    for _ in 0..2 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if rx.recv_timeout(left).is_err() {
            break;
        }
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = child.wait().unwrap().code().unwrap_or(-1);
    let log = reader.join().unwrap();
    assert_eq!(code, 0, "{log}");
    assert!(log.matches(" round ").count() >= 2, "{log}");
    assert!(
        log.contains("stopping: the last round is committed"),
        "{log}"
    );
}

/// Lakes on object storage, against a real S3-compatible server (moto, started by
/// `scripts/s3-server`): every command, concurrent writers, and the mistakes a responder
/// makes with a bucket.
mod object_storage {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    /// An S3-compatible server on 127.0.0.1, stopped by its PID when dropped.
    pub(super) struct S3 {
        dir: PathBuf,
        port: u16,
    }

    impl S3 {
        fn script() -> PathBuf {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/s3-server")
        }

        /// `None` (with the reason on stderr) where no server can be had on this machine.
        pub(super) fn start(dir: &Path) -> Option<S3> {
            let (code, out, err) = run(Command::new(Self::script()).arg("start").arg(dir));
            if code != 0 {
                eprintln!(
                    "SKIPPED: no S3-compatible server on this machine: {}",
                    err.trim()
                );
                return None;
            }
            Some(S3 {
                dir: dir.to_owned(),
                port: out.trim().parse().expect("the script prints the port"),
            })
        }

        pub(super) fn bucket(&self, name: &str) {
            let (code, _, err) = run(Command::new(Self::script())
                .arg("bucket")
                .arg(&self.dir)
                .arg(name));
            assert_eq!(code, 0, "{err}");
        }

        /// `kubetrail` with the standard AWS variables pointing at this server, and nothing
        /// of the machine's own AWS settings.
        pub(super) fn kubetrail(&self) -> Command {
            let mut c = kubetrail();
            for (name, _) in std::env::vars().filter(|(k, _)| k.starts_with("AWS_")) {
                c.env_remove(name);
            }
            c.env(
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", self.port),
            )
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "kubetrail-test")
            .env("AWS_SECRET_ACCESS_KEY", "kubetrail-test-secret")
            .env("AWS_EC2_METADATA_DISABLED", "true");
            c
        }

        /// Makes the server check signatures from now on; returns the one key it knows.
        pub(super) fn credentials(&self) -> (String, String) {
            let (code, out, err) = run(Command::new(Self::script())
                .arg("credentials")
                .arg(&self.dir));
            assert_eq!(code, 0, "{err}");
            let (id, secret) = out.trim().split_once(' ').expect("KEY_ID SECRET");
            (id.to_owned(), secret.to_owned())
        }

        /// The server's object listing under `prefix`, as S3 answers it (XML).
        fn list(&self, bucket: &str, prefix: &str) -> String {
            use std::io::Write;
            let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
            write!(
                stream,
                "GET /{bucket}?list-type=2&prefix={prefix} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).unwrap();
            answer
        }

        pub(super) fn sql(&self, lake: &str, sql: &str) -> String {
            let (code, out, err) = run(self
                .kubetrail()
                .args(["sql", "--lake", lake, "--format", "csv", sql]));
            assert_eq!(code, 0, "{err}");
            out
        }
    }

    impl Drop for S3 {
        fn drop(&mut self) {
            let _ = Command::new(Self::script())
                .arg("stop")
                .arg(&self.dir)
                .status();
        }
    }

    const SCENARIO: [&str; 4] = [
        "k8s-audit.jsonl",
        "hubble.jsonl",
        "tetragon.jsonl",
        "falco.jsonl",
    ];

    #[test]
    fn every_command_works_on_an_s3_lake() {
        let dir = tempfile::tempdir().unwrap();
        let Some(s3) = S3::start(&dir.path().join("s3")) else {
            return;
        };
        s3.bucket("evidence");
        let lake = "s3://evidence/prod-eu1/lake";
        // Run from an empty directory: nothing may land on the local disk.
        let work = dir.path().join("work");
        std::fs::create_dir(&work).unwrap();
        let cmd = |args: &[&str]| {
            let mut c = s3.kubetrail();
            c.current_dir(&work).args(args);
            c
        };
        let mut ingest = cmd(&["ingest", "file", "--quiet", "--lake", lake]);
        for file in SCENARIO {
            ingest.arg(samples().join(file));
        }
        let (code, _, err) = run(&mut ingest);
        assert_eq!(code, 0, "{err}");
        let (code, out, err) =
            run(cmd(&["ingest", "file", "--lake", lake]).arg(samples().join("k8s-audit.jsonl")));
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("already ingested"), "{out}");

        let (code, out, err) = run(&mut cmd(&["tables", "--lake", lake]));
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("k8s_audit") && out.contains("466"), "{out}");
        assert_eq!(
            s3.sql(lake, "SELECT count(*) AS n FROM k8s_audit"),
            "n\n466\n"
        );
        let (code, out, err) = with_stdin(
            &mut cmd(&["shell", "--lake", lake]),
            b"SELECT count(*) AS flows FROM network_flows;\n",
        );
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("flows"), "{out}");

        let window = [
            "--from",
            "2026-11-20T09:00:00Z",
            "--to",
            "2026-11-20T10:00:00Z",
        ];
        let (code, out, err) = run(cmd(&["detect", "run", "--lake", lake]).args(window));
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("| cryptominer "), "{out}");
        let alerts = s3.sql(lake, "SELECT count(*) AS n FROM alerts");
        assert_ne!(alerts, "n\n0\n");
        // Its findings exported as a Security Lake custom source, into another bucket.
        s3.bucket("security-lake");
        let (code, out, err) = run(cmd(&[
            "export",
            "ocsf",
            "--lake",
            lake,
            "--table",
            "detection_finding",
            "--output",
            "s3://security-lake/",
            "--account-id",
            "123456789012",
        ])
        .args(window));
        assert_eq!(code, 0, "{err}");
        assert!(out.starts_with("detection_finding (2004): "), "{out}");
        let listing = s3.list("security-lake", "ext/");
        assert!(
            listing.contains("<Key>ext/kubetrail-detection-finding/region=us-east-1/accountId=123456789012/eventDay=20261120/kubetrail-detection_finding-"),
            "{listing}"
        );
        // A second run finds the same facts already in the alerts table.
        let (code, _, err) = run(cmd(&["detect", "run", "--lake", lake]).args(window));
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("(0 new, 0 updated, "), "{err}");
        assert_eq!(s3.sql(lake, "SELECT count(*) AS n FROM alerts"), alerts);
        // The pack over S3, reading through the lake's read cache, finds what it finds over
        // the same events on a local disk.
        let local = dir.path().join("local-lake");
        let local = local.to_str().unwrap();
        let mut ingest = kubetrail();
        ingest.args(["ingest", "file", "--quiet", "--lake", local]);
        for file in SCENARIO {
            ingest.arg(samples().join(file));
        }
        assert_eq!(run(&mut ingest).0, 0);
        let (code, _, err) = run(kubetrail()
            .args(["detect", "run", "--lake", local])
            .args(window));
        assert_eq!(code, 0, "{err}");
        let ids = "SELECT rule_id, alert_id FROM alerts ORDER BY alert_id";
        assert_eq!(s3.sql(lake, ids), sql_csv(local, ids));

        let pods_hour = [
            "timeline",
            "--lake",
            lake,
            "--pod",
            "shop/api-7d9f8b6c5-x2k4p",
            "--around",
            "2026-11-20T09:35:00Z",
            "--window",
            "1h",
        ];
        let (code, out, err) = run(&mut cmd(&pods_hour));
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains("exec'd `sh` into shop/api-7d9f8b6c5-x2k4p"),
            "{out}"
        );
        // Its evidence bundle names every lake file by its sealed manifest entry.
        let bundle = dir.path().join("bundle");
        let (code, _, err) = run(cmd(&pods_hour)
            .args(["--format", "evidence", "--output"])
            .arg(&bundle));
        assert_eq!(code, 0, "{err}");
        let custody = std::fs::read_to_string(bundle.join("custody.json")).unwrap();
        assert!(
            custody.contains("\"sha256\"") && !custody.contains("unsealed"),
            "{custody}"
        );

        // A scheduler over the lake: its first round reads the checkpoint and commits the
        // next one on S3; SIGTERM stops it cleanly.
        let log_path = dir.path().join("schedule.log");
        let mut schedule = cmd(&["detect", "schedule", "--lake", lake, "--every", "1h"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        let log = loop {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            if log.contains(" round") {
                break log;
            }
            assert!(
                Instant::now() < deadline && schedule.try_wait().unwrap().is_none(),
                "no round: {log}"
            );
            std::thread::sleep(Duration::from_millis(300));
        };
        assert!(!log.contains("round failed"), "{log}");
        Command::new("kill")
            .args(["-TERM", &schedule.id().to_string()])
            .status()
            .unwrap();
        assert!(schedule.wait().unwrap().success());

        let (code, out, err) = run(&mut cmd(&[
            "lake",
            "optimize",
            "--lake",
            lake,
            "--table",
            "k8s_audit",
        ]));
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("k8s_audit"), "{out}");
        let (code, out, err) = run(&mut cmd(&[
            "lake", "vacuum", "--lake", lake, "--retain", "0h", "--force",
        ]));
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("file(s) deleted"), "{out}");
        let (code, _, err) = run(&mut cmd(&[
            "lake",
            "retention",
            "--lake",
            lake,
            "--older-than",
            "4000d",
        ]));
        assert_eq!(code, 0, "{err}");
        assert_eq!(
            s3.sql(lake, "SELECT count(*) AS n FROM k8s_audit"),
            "n\n466\n"
        );
        let (code, out, err) = run(&mut cmd(&["lake", "verify", "--lake", lake]));
        assert_eq!(code, 0, "{out}\n{err}");
        assert!(
            out.contains("k8s_audit        log 0-") && out.contains(": ok"),
            "{out}"
        );
        assert_eq!(
            std::fs::read_dir(&work).unwrap().count(),
            0,
            "the S3 lake left files in the working directory"
        );
    }

    #[test]
    fn the_demo_builds_its_lake_on_s3() {
        let dir = tempfile::tempdir().unwrap();
        let Some(s3) = S3::start(&dir.path().join("s3")) else {
            return;
        };
        s3.bucket("demo");
        let (code, out, err) = run(s3.kubetrail().args(["demo", "--lake", "s3://demo/lake"]));
        assert_eq!(code, 0, "{out}\n{err}");
        assert!(out.contains("in a Delta lake at s3://demo/lake/"), "{out}");
        assert_ne!(
            s3.sql("s3://demo/lake", "SELECT count(*) AS n FROM alerts"),
            "n\n0\n"
        );
    }

    #[test]
    fn a_bucket_mistake_is_one_line_and_fast() {
        let dir = tempfile::tempdir().unwrap();
        let Some(s3) = S3::start(&dir.path().join("s3")) else {
            return;
        };
        s3.bucket("evidence");
        let audit = samples().join("k8s-audit.jsonl");
        let one_line = |(code, out, err): (i32, String, String), needle: &str| {
            assert_eq!(code, 1, "{out}{err}");
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(err.contains(needle), "{needle}: {err}");
        };
        // A bucket that does not exist.
        one_line(
            run(s3
                .kubetrail()
                .args(["ingest", "file", "--lake", "s3://no-such-bucket/lake"])
                .arg(&audit)),
            "no-such-bucket",
        );
        one_line(
            run(s3
                .kubetrail()
                .args(["sql", "--lake", "s3://no-such-bucket/lake", "SELECT 1"])),
            "no-such-bucket",
        );
        // An empty prefix is no lake to read.
        one_line(
            run(s3
                .kubetrail()
                .args(["tables", "--lake", "s3://evidence/nothing-here"])),
            "no lake at s3://evidence/nothing-here/",
        );
        // A prefix holding someone else's files is not written into.
        let (code, _, err) = run(s3
            .kubetrail()
            .args(["ingest", "file", "--lake", "s3://evidence/other"])
            .arg(&audit));
        assert_eq!(code, 0, "{err}");
        let (code, _, err) = run(s3
            .kubetrail()
            .args(["ingest", "file", "--lake", "s3://evidence"])
            .arg(&audit));
        one_line((code, String::new(), err), "not part of a kubetrail lake");
        // Nothing listening at the endpoint: bounded retries, then the endpoint named.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let started = Instant::now();
        let (code, out, err) = run(s3
            .kubetrail()
            .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
            .args(["ingest", "file", "--lake", "s3://evidence/lake"])
            .arg(&audit));
        one_line((code, out, err), &format!("127.0.0.1:{port}"));
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "took {:?}",
            started.elapsed()
        );
    }

    /// A server that checks signatures: the right key works, a wrong secret, an unknown
    /// key and no key at all each get one line that says it is the credentials, at once.
    #[test]
    fn bad_credentials_are_one_line_that_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let Some(s3) = S3::start(&dir.path().join("s3")) else {
            return;
        };
        s3.bucket("evidence");
        let (id, secret) = s3.credentials();
        let lake = "s3://evidence/lake";
        let audit = samples().join("k8s-audit.jsonl");
        let signed = |id: &str, secret: &str| {
            let mut c = s3.kubetrail();
            c.env("AWS_ACCESS_KEY_ID", id)
                .env("AWS_SECRET_ACCESS_KEY", secret);
            c
        };
        let (code, _, err) = run(signed(&id, &secret)
            .args(["ingest", "file", "--quiet", "--lake", lake])
            .arg(&audit));
        assert_eq!(code, 0, "{err}");
        let refused = |mut c: Command, needle: &str| {
            let started = Instant::now();
            let (code, out, err) = run(&mut c);
            assert_eq!(code, 1, "{out}{err}");
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(err.contains(needle), "{needle}: {err}");
            assert!(err.contains("check the credentials"), "{err}");
            assert!(!err.contains(&secret) && !err.contains("<Error>"), "{err}");
            assert!(started.elapsed() < Duration::from_secs(20), "{err}");
        };
        let mut wrong_secret = signed(&id, "not-the-secret");
        wrong_secret
            .args(["ingest", "file", "--lake", lake])
            .arg(&audit);
        refused(wrong_secret, "access denied");
        let mut unknown_key = signed("AKIAUNKNOWNKEY000000", &secret);
        unknown_key.args(["sql", "--lake", lake, "SELECT count(*) FROM k8s_audit"]);
        refused(unknown_key, "InvalidAccessKeyId");
        let mut no_key = s3.kubetrail();
        no_key
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .args(["tables", "--lake", lake]);
        refused(no_key, "no credentials found");
        let mut c = signed(&id, &secret);
        let (code, out, err) = run(c
            .args(["sql", "--lake", lake, "--format", "csv"])
            .arg("SELECT count(*) AS n FROM k8s_audit"));
        assert_eq!((code, out.as_str()), (0, "n\n466\n"), "{err}");
    }

    /// How [`FlakyLink`] fails the request it watches for.
    #[derive(Clone, Copy)]
    enum Cut {
        /// The request never reaches the server, and the link stays down for a while.
        RequestLost { down_for: Duration },
        /// The server carries the request out; its answer never comes back.
        AnswerLost,
    }

    /// A TCP relay in front of the S3 server that cuts the first request whose bytes hold
    /// `watch`, the way a network failure would. Its threads live as long as the test.
    struct FlakyLink {
        port: u16,
        fired: Arc<AtomicBool>,
        down_until: Arc<Mutex<Option<Instant>>>,
    }

    impl FlakyLink {
        fn start(upstream: u16, watch: String, cut: Cut) -> FlakyLink {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let fired = Arc::new(AtomicBool::new(false));
            let down_until = Arc::new(Mutex::new(None::<Instant>));
            let (link_fired, link_down_until) = (fired.clone(), down_until.clone());
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    let Ok(client) = client else { continue };
                    let down = *down_until.lock().unwrap();
                    if down.is_some_and(|until| Instant::now() < until) {
                        continue; // dropped: the connection is reset
                    }
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                        continue;
                    };
                    let swallow = Arc::new(AtomicBool::new(false));
                    let (c, s, w) = (
                        client.try_clone().unwrap(),
                        server.try_clone().unwrap(),
                        swallow.clone(),
                    );
                    let (watch, fired, down_until) =
                        (watch.clone(), link_fired.clone(), down_until.clone());
                    std::thread::spawn(move || {
                        relay_requests(c, s, watch.as_bytes(), &fired, || match cut {
                            Cut::RequestLost { down_for } => {
                                *down_until.lock().unwrap() = Some(Instant::now() + down_for);
                                false
                            }
                            Cut::AnswerLost => {
                                w.store(true, Ordering::SeqCst);
                                true
                            }
                        })
                    });
                    std::thread::spawn(move || relay_answers(server, client, &swallow));
                }
            });
            FlakyLink {
                port,
                fired,
                down_until: link_down_until,
            }
        }

        /// Returns once a cut's down time is over.
        fn wait_until_up(&self) {
            let until = *self.down_until.lock().unwrap();
            if let Some(until) = until {
                std::thread::sleep(until.saturating_duration_since(Instant::now()));
            }
        }

        fn url(&self) -> String {
            format!("http://127.0.0.1:{}", self.port)
        }
    }

    /// Client to server; on the first chunk that completes `watch`, asks `on_cut` whether
    /// to forward it (the watched request goes through) or to drop the connection.
    fn relay_requests(
        mut client: TcpStream,
        mut server: TcpStream,
        watch: &[u8],
        fired: &AtomicBool,
        on_cut: impl Fn() -> bool,
    ) {
        let mut buf = vec![0u8; 64 * 1024];
        let mut window: Vec<u8> = Vec::new();
        while let Ok(n @ 1..) = client.read(&mut buf) {
            let keep_from = window.len().saturating_sub(watch.len());
            window.drain(..keep_from);
            window.extend_from_slice(&buf[..n]);
            let seen = window.windows(watch.len()).any(|w| w == watch);
            if seen && !fired.swap(true, Ordering::SeqCst) && !on_cut() {
                break;
            }
            if server.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = client.shutdown(std::net::Shutdown::Both);
        let _ = server.shutdown(std::net::Shutdown::Both);
    }

    /// Server to client, until the connection ends or its answers are to be swallowed.
    fn relay_answers(mut server: TcpStream, mut client: TcpStream, swallow: &AtomicBool) {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = server.read(&mut buf) {
            if swallow.load(Ordering::SeqCst) || client.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = client.shutdown(std::net::Shutdown::Both);
        let _ = server.shutdown(std::net::Shutdown::Both);
    }

    /// The commit of a file's rows is cut by the network, both ways it can be: the
    /// answer lost (the commit landed; the ingester learns it from the table and the rows
    /// are there once), and the request lost with the link down past every retry (the
    /// ingester fails in one line, nothing is marked done, and a rerun lands every row).
    #[test]
    fn a_commit_cut_by_the_network_lands_once_or_not_at_all() {
        const EVENTS: u64 = 20_000;
        let dir = tempfile::tempdir().unwrap();
        let Some(s3) = S3::start(&dir.path().join("s3")) else {
            return;
        };
        s3.bucket("evidence");
        let events = audit_file(dir.path(), "audit.jsonl", EVENTS, 5);
        let counted = "SELECT count(*) AS n, count(DISTINCT _offset) AS records FROM k8s_audit";
        let expected = format!("n,records\n{EVENTS},{EVENTS}\n");
        // Version 0 creates the table; version 1 is the commit of the rows.
        let first_rows = |prefix: &str| {
            format!("PUT /evidence/{prefix}/k8s_audit/_delta_log/00000000000000000001.json")
        };
        let through = |link: &FlakyLink, lake: &str| {
            let mut c = s3.kubetrail();
            c.env("AWS_ENDPOINT_URL", link.url())
                .args(["ingest", "file", "--lake", lake])
                .arg(&events);
            run(&mut c)
        };

        let link = FlakyLink::start(s3.port, first_rows("answer-lost"), Cut::AnswerLost);
        let (code, out, err) = through(&link, "s3://evidence/answer-lost");
        assert!(link.fired.load(Ordering::SeqCst), "no commit was cut");
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(s3.sql("s3://evidence/answer-lost", counted), expected);
        let (code, out, err) = through(&link, "s3://evidence/answer-lost");
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("already ingested"), "{out}");
        assert_eq!(s3.sql("s3://evidence/answer-lost", counted), expected);
        // The commit whose answer was lost is sealed like any other, its files all kept.
        let (code, out, err) = run(s3.kubetrail().args([
            "lake",
            "verify",
            "--lake",
            "s3://evidence/answer-lost",
            "--table",
            "k8s_audit",
        ]));
        assert_eq!(code, 0, "{out}\n{err}");

        let down_for = Duration::from_secs(15);
        let link = FlakyLink::start(
            s3.port,
            first_rows("request-lost"),
            Cut::RequestLost { down_for },
        );
        let (code, out, err) = through(&link, "s3://evidence/request-lost");
        assert!(link.fired.load(Ordering::SeqCst), "no commit was cut");
        assert_eq!(code, 1, "{out}{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("k8s_audit"), "{err}");
        assert_eq!(
            s3.sql("s3://evidence/request-lost", counted),
            "n,records\n0,0\n",
            "rows were committed after all"
        );
        link.wait_until_up();
        let (code, out, err) = through(&link, "s3://evidence/request-lost");
        assert_eq!(code, 0, "{err}");
        assert!(!out.contains("already ingested"), "{out}");
        assert_eq!(s3.sql("s3://evidence/request-lost", counted), expected);
    }

    /// Rows of k8s_audit, and the distinct Kafka records they came from.
    const COUNT_RECORDS: &str = "SELECT count(*) AS n, count(DISTINCT _source || '/' || CAST(_offset AS VARCHAR)) AS records FROM k8s_audit";

    /// An S3 server with bucket `evidence` and a broker with topic `audit` of `partitions`.
    fn streaming_into_s3(dir: &Path, partitions: u32) -> Option<(S3, super::Broker)> {
        let s3 = S3::start(&dir.join("s3"))?;
        let broker = super::Broker::start(&dir.join("broker"))?;
        s3.bucket("evidence");
        broker.topic("audit", partitions);
        Some((s3, broker))
    }

    /// The Kafka ingester's commits cut by the network: an answer lost (the writer finds
    /// its markers in and goes on), then the request lost with the link down for seconds
    /// (the ingester drops what it held, and the commits it had sent after the cut one,
    /// waits, reads it again from the lake's markers). Every record lands once, and the
    /// ingester never exits for it.
    #[test]
    fn kafka_commits_cut_by_the_network_land_every_record_once() {
        const HALF: u64 = 10_000;
        let dir = tempfile::tempdir().unwrap();
        let Some((s3, broker)) = streaming_into_s3(dir.path(), 3) else {
            return;
        };
        let brokers = broker.brokers();
        let lake = "s3://evidence/streamed";
        let counted = COUNT_RECORDS;
        // Batches of 500 rows: the commits of full batches follow one another, several in
        // flight at once when the link goes down.
        let small_batches = dir.path().join("small-batches.toml");
        std::fs::write(&small_batches, "[ingest]\nbatch_rows = 500\n").unwrap();
        let produce_and_ingest = |seed: u64, link: &FlakyLink, config: Option<&Path>| {
            let events = audit_file(dir.path(), &format!("audit-{seed}.jsonl"), HALF, seed);
            let (code, _, err) = run(kubetrail()
                .args(["produce", "--brokers", &brokers, "--topic", "audit"])
                .arg(&events));
            assert_eq!(code, 0, "{err}");
            let mut ingest = s3.kubetrail();
            if let Some(config) = config {
                ingest.arg("--config").arg(config);
            }
            let (code, out, err) = run(ingest
                .env("AWS_ENDPOINT_URL", link.url())
                .args(["ingest", "kafka", "--lake", lake, "--brokers", &brokers])
                .args(["--group", "cut", "--topic", "audit=k8s-audit"])
                .args(["--linger", "300ms", "--no-compaction", "--until-caught-up"]));
            assert!(link.fired.load(Ordering::SeqCst), "no commit was cut");
            assert_eq!(code, 0, "{out}\n{err}");
            err
        };
        let commit =
            |version: &str| format!("PUT /evidence/streamed/k8s_audit/_delta_log/{version}");
        let link = FlakyLink::start(
            s3.port,
            commit("00000000000000000001.json"),
            Cut::AnswerLost,
        );
        let log = produce_and_ingest(1, &link, None);
        assert!(log.contains("landed though its answer was lost"), "{log}");
        assert_eq!(s3.sql(lake, counted), format!("n,records\n{HALF},{HALF}\n"));

        let down_for = Duration::from_secs(6);
        let link = FlakyLink::start(s3.port, commit("0"), Cut::RequestLost { down_for });
        let log = produce_and_ingest(2, &link, Some(&small_batches));
        assert!(log.contains("in a row survived"), "{log}");
        let all = 2 * HALF;
        assert_eq!(s3.sql(lake, counted), format!("n,records\n{all},{all}\n"));
    }

    fn audit_file(dir: &Path, name: &str, events: u64, seed: u64) -> PathBuf {
        let path = dir.join(name);
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        for line in kubetrail_samples::volume::audit_lines(events, seed, 1) {
            writeln!(file, "{line}").unwrap();
        }
        file.flush().unwrap();
        path
    }

    /// Two ingesters commit into the same tables at the same moments: delta-rs retries the
    /// loser of each race on S3's put-if-absent, and nothing lands twice or goes missing.
    #[test]
    fn file_ingesters_writing_one_s3_lake_at_once_land_every_row_once() {
        let dir = tempfile::tempdir().unwrap();
        let Some(s3) = S3::start(&dir.path().join("s3")) else {
            return;
        };
        s3.bucket("evidence");
        let lake = "s3://evidence/lake";
        // Five inputs each, so each process commits five times, interleaved with the other.
        let inputs = |who: u64| -> Vec<PathBuf> {
            (0..5)
                .map(|i| {
                    audit_file(
                        dir.path(),
                        &format!("{who}-{i}.jsonl"),
                        2_000,
                        who * 100 + i,
                    )
                })
                .collect()
        };
        let (a, b) = (inputs(1), inputs(2));
        let spawn = |files: &[PathBuf]| {
            s3.kubetrail()
                .args(["ingest", "file", "--quiet", "--lake", lake])
                .args(files)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (first, second) = (spawn(&a), spawn(&b));
        for child in [first, second] {
            let (code, out, err) = outcome(child.wait_with_output().unwrap());
            assert_eq!(code, 0, "{out}\n{err}");
        }
        let counted = "SELECT count(*) AS n, count(DISTINCT _source || '/' || CAST(_offset AS VARCHAR)) AS records FROM k8s_audit";
        assert_eq!(s3.sql(lake, counted), "n,records\n20000,20000\n");
        // The same input from two processes at once lands once; neither fails.
        let same = audit_file(dir.path(), "same.jsonl", 3_000, 99);
        let (first, second) = (spawn(std::slice::from_ref(&same)), spawn(&[same]));
        for child in [first, second] {
            let (code, out, err) = outcome(child.wait_with_output().unwrap());
            assert_eq!(code, 0, "{out}\n{err}");
        }
        assert_eq!(s3.sql(lake, counted), "n,records\n23000,23000\n");
        // Commits interleaved by two processes still make one chain, and the loser of the
        // race for the same input left no file behind.
        let (code, out, err) = run(s3.kubetrail().args(["lake", "verify", "--lake", lake]));
        assert_eq!(code, 0, "{out}\n{err}");
    }

    /// Three ingesters in one consumer group on one S3 lake, one of them SIGKILLed and
    /// restarted again and again while 50,000 records stream: every record lands once, and
    /// the files the table references are all there (a vacuum of everything unreferenced
    /// leaves the count as it was).
    #[test]
    fn three_kafka_ingesters_on_one_s3_lake_land_every_record_once_through_kills() {
        const EVENTS: u64 = 50_000;
        let dir = tempfile::tempdir().unwrap();
        let Some((s3, broker)) = streaming_into_s3(dir.path(), 6) else {
            return;
        };
        let events = audit_file(dir.path(), "audit.jsonl", EVENTS, 11);
        let brokers = broker.brokers();
        let lake = "s3://evidence/streamed";
        let producer = kubetrail()
            .args(["produce", "--brokers", &brokers, "--topic", "audit"])
            .args(["--rate", "2500"])
            .arg(&events)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut started = 0;
        let mut ingester = || {
            started += 1;
            let log =
                std::fs::File::create(dir.path().join(format!("ingester-{started}.log"))).unwrap();
            s3.kubetrail()
                .args(["ingest", "kafka", "--lake", lake, "--brokers", &brokers])
                .args(["--group", "scale", "--topic", "audit=k8s-audit"])
                .args(["--linger", "500ms", "--no-compaction"])
                .args(["--kafka-option", "session.timeout.ms=6000"])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap()
        };
        let mut members = vec![ingester(), ingester(), ingester()];
        let mut seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as u64
            | 1;
        eprintln!("kill schedule seed: {seed}");
        for round in 0..3 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            std::thread::sleep(Duration::from_millis(2_000 + seed % 4_000));
            let victim = (seed % 3) as usize;
            members[victim].kill().unwrap(); // SIGKILL: mid-batch, maybe mid-upload
            members[victim].wait().unwrap();
            eprintln!("round {round}: killed member {victim}");
            // tansu 0.6 answers no JoinGroup while the group lists a member that died less
            // than session.timeout.ms ago (docs/decisions.md, "The crash test's broker").
            std::thread::sleep(Duration::from_secs(7));
            members[victim] = ingester();
        }
        let produced = producer.wait_with_output().unwrap();
        assert!(
            produced.status.success(),
            "{}",
            String::from_utf8_lossy(&produced.stderr)
        );
        let logs = || {
            let each: Vec<String> = (1..=started)
                .map(|i| {
                    std::fs::read_to_string(dir.path().join(format!("ingester-{i}.log")))
                        .unwrap_or_default()
                })
                .collect();
            each.join("\n---\n")
        };
        let counted = COUNT_RECORDS;
        let deadline = Instant::now() + Duration::from_secs(240);
        let expected = format!("n,records\n{EVENTS},{EVENTS}\n");
        loop {
            let now = s3.sql(lake, counted);
            if now == expected {
                break;
            }
            if Instant::now() > deadline {
                panic!("the lake holds {now:?}, not {EVENTS} records:\n{}", logs());
            }
            std::thread::sleep(Duration::from_secs(2));
        }
        for mut member in members {
            Command::new("kill")
                .args(["-TERM", &member.id().to_string()])
                .status()
                .unwrap();
            let status = member.wait().unwrap();
            assert!(
                status.success(),
                "an ingester ended with {status}:\n{}",
                logs()
            );
        }
        assert_eq!(s3.sql(lake, counted), expected);
        let (code, _, err) = run(s3.kubetrail().args([
            "lake", "vacuum", "--lake", lake, "--retain", "0h", "--force",
        ]));
        assert_eq!(code, 0, "{err}");
        assert_eq!(s3.sql(lake, counted), expected);
        // Three writers, killed and restarted, made one unbroken chain.
        let (code, out, err) = run(s3.kubetrail().args(["lake", "verify", "--lake", lake]));
        assert_eq!(code, 0, "{out}\n{err}");
    }
}

/// `kubetrail serve` with real clients: the ADBC Flight SQL driver (Python, a venv made by
/// `scripts/flight-sql-client`) and arrow-flight's own Flight SQL client.
mod flight_sql {
    use super::*;
    use std::io::BufRead;
    use std::time::{Duration, Instant};

    /// A running server, stopped by its PID when dropped.
    struct Server {
        child: std::process::Child,
        uri: String,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn start(lake: &str, tokens: &Path, config: &Path) -> Server {
        // The address line names the scheme: grpc:// or grpc+tls://.
        let mut child = kubetrail()
            .args([
                "serve",
                "--lake",
                lake,
                "--addr",
                "127.0.0.1:0",
                "--tokens-file",
            ])
            .arg(tokens)
            .arg("--config")
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let uri = line
            .trim()
            .rsplit(" at ")
            .next()
            .filter(|u| u.starts_with("grpc://") || u.starts_with("grpc+tls://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_owned();
        Server { child, uri }
    }

    /// The clients' python, or `None` (said in one line) where they are not installed.
    fn python() -> Option<String> {
        let (code, out, err) = run(Command::new(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/flight-sql-client"),
        )
        .arg("python"));
        if code != 0 {
            eprintln!(
                "SKIPPED: no Flight SQL client on this machine: {}",
                err.trim()
            );
            return None;
        }
        Some(out.trim().to_owned())
    }

    fn adbc(python: &str, args: &[&str]) -> serde_json::Value {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/flight_sql.py");
        let (code, out, err) = run(Command::new(python).arg(script).args(args));
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(out.trim()).unwrap_or_else(|_| panic!("{out}{err}"))
    }

    fn rss_kib(pid: u32) -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// arrow-flight's client: the same statement, the same rows, over the same wire.
    fn rust_client(uri: &str, token: &str, sql: &str) -> Vec<arrow::array::RecordBatch> {
        use arrow_flight::sql::client::FlightSqlServiceClient;
        use futures::TryStreamExt;
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let channel =
                tonic::transport::Endpoint::from_shared(uri.replace("grpc://", "http://"))
                    .unwrap()
                    .connect()
                    .await
                    .unwrap();
            let mut client = FlightSqlServiceClient::new(channel);
            client.set_token(token.to_owned());
            let info = client.execute(sql.to_owned(), None).await.unwrap();
            let mut batches = Vec::new();
            for endpoint in info.endpoint {
                let ticket = endpoint.ticket.unwrap();
                let stream = client.do_get(ticket).await.unwrap();
                batches.extend(stream.try_collect::<Vec<_>>().await.unwrap());
            }
            batches
        })
    }

    #[test]
    fn the_server_answers_real_clients_within_its_limits() {
        let Some(python) = python() else {
            return;
        };
        let (dir, lake) = lake_of_the_three_streams();
        let tokens = dir.path().join("tokens");
        let (code, token, err) = run(kubetrail()
            .args(["token", "create", "alice@example.com", "--tokens-file"])
            .arg(&tokens));
        assert_eq!(code, 0, "{err}");
        let token = token.trim().to_owned();
        assert!(!std::fs::read_to_string(&tokens)
            .unwrap()
            .contains(&token[3..]));
        let config = dir.path().join("server.toml");
        std::fs::write(
            &config,
            "[server]\nquery_memory_mib = 64\nserver_memory_mib = 512\nquery_timeout = \"10s\"\nconcurrent_queries = 4\n",
        )
        .unwrap();
        let metrics_addr = {
            let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            free.local_addr().unwrap()
        };
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str(&format!("metrics_addr = \"{metrics_addr}\"\n"));
        std::fs::write(&config, text).unwrap();
        let server = start(&lake, &tokens, &config);
        let uri = server.uri.as_str();
        let bearer = format!("bearer:{token}");
        let count = "SELECT count(*) AS n FROM k8s_audit";
        let local = sql_csv(&lake, count);
        let n: i64 = local.lines().nth(1).unwrap().parse().unwrap();

        // A token, and Basic (user name, token as password), as ADBC sends them.
        let got = adbc(&python, &["query", uri, &bearer, count]);
        assert_eq!(got["rows"], serde_json::json!([[n]]), "{got}");
        let basic = format!("basic:alice@example.com:{token}");
        let got = adbc(&python, &["query", uri, &basic, count]);
        assert_eq!(got["rows"], serde_json::json!([[n]]), "{got}");
        let got = adbc(&python, &["objects", uri, &bearer]);
        let tables = got["tables"].as_array().unwrap();
        assert!(tables.iter().any(|t| t == "ocsf_api_activity"), "{got}");
        // arrow-flight's client reads the same result.
        let sql = "SELECT verb, count(*) AS n FROM k8s_audit GROUP BY verb ORDER BY verb";
        let batches = rust_client(uri, &token, sql);
        let text = arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        let got = adbc(&python, &["query", uri, &bearer, sql]);
        for row in got["rows"].as_array().unwrap() {
            let line = format!("| {} ", row[0].as_str().unwrap());
            assert!(
                text.contains(&line) && text.contains(&format!("| {} ", row[1])),
                "{text} {row}"
            );
        }
        // A timeline's shape: a union whose first branch has no value for a column types
        // it only once analysed; both clients get the text, not a `Null` column.
        let sql = "SELECT NULL AS dst_ip, verb FROM k8s_audit WHERE verb = 'create' \
                   UNION ALL SELECT dst_ip, 'flow' FROM network_flows WHERE dst_ip IS NOT NULL \
                   ORDER BY dst_ip NULLS LAST LIMIT 1";
        let got = adbc(&python, &["query", uri, &bearer, sql]);
        assert!(got["rows"][0][0].is_string(), "{got}");
        let batches = rust_client(uri, &token, sql);
        assert_eq!(
            batches[0].schema().field(0).data_type(),
            &arrow::datatypes::DataType::Utf8View
        );

        // No token, a wrong one, a wrong user name: refused, and the refusal says why.
        for auth in [
            "none".to_owned(),
            "bearer:kt_wrong".into(),
            format!("basic:bob:{token}"),
        ] {
            let got = adbc(&python, &["query", uri, &auth, count]);
            let e = got["error"].as_str().unwrap_or_default();
            assert!(
                e.starts_with("UNAUTHENTICATED") && e.contains("token"),
                "{auth}: {got}"
            );
        }
        // Nothing but reading, and no file outside the lake.
        for sql in [
            "CREATE EXTERNAL TABLE p (l VARCHAR) STORED AS CSV LOCATION '/etc/passwd'",
            "COPY (SELECT 1) TO '/tmp/kubetrail-serve.csv'",
            "SELECT * FROM '/etc/passwd'",
            "SET datafusion.execution.batch_size = 1",
        ] {
            let got = adbc(&python, &["query", uri, &bearer, sql]);
            assert_eq!(got["ok"], false, "{sql}: {got}");
            assert!(!got.to_string().contains("root:x:0"), "{got}");
        }

        // Past its memory: the query fails alone, in one line, while others go on.
        let heavy = "SELECT array_agg(repeat('x', 1000)) FROM range(1000000)";
        let other = {
            let (python, uri, bearer) = (python.clone(), uri.to_owned(), bearer.clone());
            std::thread::spawn(move || {
                (0..5).all(|_| adbc(&python, &["query", &uri, &bearer, count])["ok"] == true)
            })
        };
        let got = adbc(&python, &["query", uri, &bearer, heavy]);
        let e = got["error"].as_str().unwrap_or_default();
        assert!(e.contains("more memory than it may hold"), "{got}");
        assert!(other.join().unwrap(), "the other queries went on");
        // A grouping of about twice its memory spills to disk and finishes (few long keys:
        // quick to hash in a debug build on a busy machine).
        let sorted = "SELECT count(*), sum(n) FROM (SELECT v, count(*) AS n FROM \
                      (SELECT concat(repeat('x', 1000), random()) AS v FROM range(130000)) GROUP BY v)";
        let got = adbc(&python, &["query", uri, &bearer, sorted]);
        assert_eq!(got["rows"], serde_json::json!([[130000, 130000]]), "{got}");

        // Past its time: stopped at the limit.
        let started = Instant::now();
        let got = adbc(
            &python,
            &[
                "query",
                uri,
                &bearer,
                "SELECT count(*) FROM range(100000000000)",
            ],
        );
        let e = got["error"].as_str().unwrap_or_default();
        assert!(e.contains("time limit (10 s"), "{got}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{:?}",
            started.elapsed()
        );

        // Fresh: a commit that lands while the server runs is in the next query.
        let before = adbc(
            &python,
            &["query", uri, &bearer, "SELECT count(*) FROM runtime_events"],
        );
        let (code, _, err) = run(kubetrail()
            .args(["ingest", "file", "--quiet", "--lake", &lake])
            .arg(samples().join("falco.jsonl")));
        assert_eq!(code, 0, "{err}");
        let after = adbc(
            &python,
            &["query", uri, &bearer, "SELECT count(*) FROM runtime_events"],
        );
        assert!(
            after["rows"][0][0].as_i64() > before["rows"][0][0].as_i64(),
            "{before} {after}"
        );

        // Sixteen clients for 30 s of mixed queries: no error, memory bounded.
        let pid = server.child.id();
        let got = adbc(&python, &["load", uri, &bearer, "16", "30"]);
        assert_eq!(got["ok"], true, "{got}");
        assert!(got["queries"].as_u64().unwrap() >= 16, "{got}");
        let rss = rss_kib(pid);
        assert!(rss < 1_500_000, "server RSS {rss} KiB after the load");

        // Prometheus sees the queries by outcome, what was sent and the refusals.
        let scrape = {
            use std::io::{Read, Write};
            let mut stream = std::net::TcpStream::connect(metrics_addr).unwrap();
            stream
                .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).unwrap();
            answer
        };
        let value = |series: &str| -> f64 {
            scrape
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{series} ")))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {series} in {scrape}"))
        };
        assert!(
            value("kubetrail_server_queries_total{outcome=\"ok\"}") >= 16.0,
            "{scrape}"
        );
        for series in [
            "kubetrail_server_queries_total{outcome=\"refused\"}",
            "kubetrail_server_queries_total{outcome=\"out_of_memory\"}",
            "kubetrail_server_queries_total{outcome=\"timeout\"}",
            "kubetrail_server_rows_total",
            "kubetrail_server_bytes_total",
            "kubetrail_server_unauthenticated_total",
        ] {
            assert!(value(series) >= 1.0, "{series}: {scrape}");
        }
        assert_eq!(value("kubetrail_server_queries_running"), 0.0, "{scrape}");

        // A revoked token is refused from the next call, without a restart.
        let (code, _, err) = run(kubetrail()
            .args(["token", "revoke", "alice@example.com", "--tokens-file"])
            .arg(&tokens));
        assert_eq!(code, 0, "{err}");
        let got = adbc(&python, &["query", uri, &bearer, count]);
        assert!(
            got["error"]
                .as_str()
                .unwrap_or_default()
                .starts_with("UNAUTHENTICATED"),
            "{got}"
        );

        // Stopped by SIGTERM, the server commits the records it holds: query_log says who
        // asked what, from where, and how each query ended.
        let mut server = server;
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(server.child.wait().unwrap().success());
        let log = sql_csv(
            &lake,
            "SELECT outcome, count(*) AS n FROM query_log WHERE interface = 'flight-sql' \
             AND user_name = 'alice@example.com' AND client LIKE '127.0.0.1:%' \
             GROUP BY outcome ORDER BY outcome",
        );
        for outcome in ["ok,", "refused,", "out_of_memory,", "timeout,"] {
            assert!(log.contains(&format!("\n{outcome}")), "{outcome} {log}");
        }
        let refused = sql_csv(
            &lake,
            "SELECT sql, error FROM query_log WHERE sql LIKE 'CREATE EXTERNAL%'",
        );
        assert!(
            refused.contains("read-only: CREATE EXTERNAL TABLE is refused"),
            "{refused}"
        );
    }

    #[test]
    fn the_server_speaks_tls_when_given_a_certificate() {
        let Some(python) = python() else {
            return;
        };
        let (dir, lake) = lake_of_the_three_streams();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let made = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args([
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(Stdio::null())
            .status();
        if !made.is_ok_and(|s| s.success()) {
            eprintln!("SKIPPED: no openssl to make the test's certificate");
            return;
        }
        let tokens = dir.path().join("tokens");
        let (_, token, _) = run(kubetrail()
            .args(["token", "create", "alice", "--tokens-file"])
            .arg(&tokens));
        let bearer = format!("bearer:{}", token.trim());
        let config = dir.path().join("server.toml");
        std::fs::write(
            &config,
            format!("[server]\ntls_cert = {cert:?}\ntls_key = {key:?}\n"),
        )
        .unwrap();
        let server = start(&lake, &tokens, &config);
        assert!(server.uri.starts_with("grpc+tls://"), "{}", server.uri);
        let count = "SELECT count(*) AS n FROM k8s_audit";
        let ca = cert.to_str().unwrap();
        let got = adbc(&python, &["query", &server.uri, &bearer, count, ca]);
        assert_eq!(got["ok"], true, "{got}");
        // A client that does not trust the certificate, and one without TLS: no answer.
        let got = adbc(&python, &["query", &server.uri, &bearer, count]);
        assert!(
            got["error"]
                .as_str()
                .unwrap_or_default()
                .contains("certificate"),
            "{got}"
        );
        let plain = server.uri.replace("grpc+tls://", "grpc://");
        let got = adbc(&python, &["query", &plain, &bearer, count]);
        assert_eq!(got["ok"], false, "{got}");
    }

    #[test]
    fn serve_refuses_bad_settings_in_one_line() {
        let (dir, lake) = lake_of_the_three_streams();
        let tokens = dir.path().join("tokens");
        let config = dir.path().join("c.toml");
        for (toml, says) in [
            (
                "[server]\nquery_memory_mib = 900\nserver_memory_mib = 100\n",
                "is more than",
            ),
            (
                "[server]\nquery_timeout = \"soon\"\n",
                "server.query_timeout",
            ),
            ("[server]\nconcurrent_queries = 0\n", "at least 1"),
        ] {
            std::fs::write(&config, toml).unwrap();
            std::fs::write(&tokens, "").unwrap();
            let (code, _, err) = run(kubetrail()
                .args([
                    "serve",
                    "--lake",
                    &lake,
                    "--addr",
                    "127.0.0.1:0",
                    "--tokens-file",
                ])
                .arg(&tokens)
                .arg("--config")
                .arg(&config));
            assert_eq!(code, 1, "{toml}");
            assert!(err.contains(says) && err.lines().count() == 1, "{err}");
        }
        std::fs::write(&config, "").unwrap();
        std::fs::write(&tokens, "alice not-a-hash\n").unwrap();
        let (code, _, err) = run(kubetrail()
            .args(["serve", "--lake", &lake, "--tokens-file"])
            .arg(&tokens)
            .arg("--config")
            .arg(&config));
        assert_eq!(code, 1);
        assert!(err.contains(":1: the hash is not hex"), "{err}");
        let (code, _, err) = run(kubetrail()
            .args(["serve", "--lake", &lake, "--config"])
            .arg(&config));
        assert_eq!(code, 1);
        assert!(err.contains("no tokens file"), "{err}");
        let (code, _, err) = run(kubetrail()
            .args(["token", "revoke", "nobody", "--tokens-file"])
            .arg(&tokens));
        assert_eq!((code, err.lines().count()), (1, 1), "{err}");
    }
}

/// Queries on an Apache Ballista cluster started by `scripts/ballista-cluster` (a scheduler
/// and executors of this very binary): the same answers as in process.
mod cluster {
    use super::*;

    struct Cluster {
        dir: tempfile::TempDir,
        engine: String,
    }

    impl Cluster {
        fn start(executors: usize) -> Cluster {
            Cluster::start_as(executors, &kubetrail())
        }

        /// Every process with `like`'s environment (a lake on object storage, its
        /// credentials).
        fn start_as(executors: usize, like: &Command) -> Cluster {
            let dir = tempfile::tempdir().unwrap();
            let mut script = Command::new(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ballista-cluster"),
            );
            for (name, value) in like.get_envs() {
                match value {
                    Some(value) => script.env(name, value),
                    None => script.env_remove(name),
                };
            }
            let (code, out, err) = run(script
                .env("KUBETRAIL", env!("CARGO_BIN_EXE_kubetrail"))
                .arg("start")
                .arg(dir.path())
                .arg(executors.to_string()));
            assert_eq!(code, 0, "{err}");
            let engine = out.trim().to_owned();
            assert!(engine.starts_with("ballista://127.0.0.1:"), "{out}");
            Cluster { dir, engine }
        }

        /// Kills, as a crash would, the first of `executors` seen running a task (its log
        /// says it started one it has not finished); `None` if none ran one within 60 s.
        fn kill_a_busy_executor(&self, executors: usize) -> Option<usize> {
            let started = std::time::Instant::now();
            while started.elapsed() < std::time::Duration::from_secs(60) {
                for n in 1..=executors {
                    let log =
                        std::fs::read_to_string(self.dir.path().join(format!("executor-{n}.log")))
                            .unwrap_or_default();
                    let tasks = |what: &str| -> std::collections::BTreeSet<String> {
                        log.lines()
                            .filter_map(|l| l.split_once(what))
                            .filter_map(|(_, tail)| tail.split_once("[TID "))
                            .filter_map(|(_, tail)| tail.split_once(']'))
                            .map(|(tid, _)| tid.to_owned())
                            .collect()
                    };
                    if tasks("Execute task")
                        .difference(&tasks("Finished task"))
                        .next()
                        .is_some()
                    {
                        self.kill_executor(n);
                        return Some(n);
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            None
        }

        /// The ends of its processes' logs, for a failure's message.
        fn logs(&self) -> String {
            let mut out = String::new();
            for entry in std::fs::read_dir(self.dir.path()).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "log") {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    let lines: Vec<&str> = text.lines().collect();
                    out.push_str(&format!("== {}\n", path.display()));
                    for line in &lines[lines.len().saturating_sub(15)..] {
                        out.push_str(&line.chars().take(300).collect::<String>());
                        out.push('\n');
                    }
                }
            }
            out
        }

        /// Kills executor `n` (from 1) as a crash would.
        fn kill_executor(&self, n: usize) {
            let pid =
                std::fs::read_to_string(self.dir.path().join(format!("executor-{n}.pid"))).unwrap();
            let (code, _, err) = run(Command::new("kill").args(["-9", pid.trim()]));
            assert_eq!(code, 0, "{err}");
        }
    }

    impl Drop for Cluster {
        fn drop(&mut self) {
            let _ = Command::new(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ballista-cluster"),
            )
            .arg("stop")
            .arg(self.dir.path())
            .output();
        }
    }

    /// Every sample, so that every rule has rows to judge.
    fn scenario_lake() -> (tempfile::TempDir, String) {
        let (dir, lake) = temp_lake();
        ingest_scenario(kubetrail(), &lake);
        (dir, lake)
    }

    fn ingest_scenario(mut kubetrail: Command, lake: &str) {
        let mut inputs: Vec<PathBuf> = std::fs::read_dir(samples())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| !p.ends_with("MANIFEST.tsv") && !p.ends_with("README.md"))
            .collect();
        inputs.sort();
        let (code, _, err) = run(kubetrail
            .args(["ingest", "file", "--quiet", "--lake", lake])
            .args(&inputs));
        assert_eq!(code, 0, "{err}");
    }

    /// A copy of a lake, so that two `detect run`s each write their alerts to their own.
    fn copy_lake(from: &str, to: &Path) {
        let (code, _, err) = run(Command::new("cp").arg("-r").arg(from).arg(to));
        assert_eq!(code, 0, "{err}");
    }

    /// Rows as CSV lines, sorted unless the statement orders them.
    fn rows(lake: &str, engine: Option<&str>, sql: &str) -> Vec<String> {
        rows_from(kubetrail(), lake, engine, sql)
    }

    fn rows_from(mut c: Command, lake: &str, engine: Option<&str>, sql: &str) -> Vec<String> {
        c.args(["sql", "--lake", lake, "--format", "csv"]);
        if let Some(e) = engine {
            c.args(["--engine", e]);
        }
        let (code, out, err) = run(c.arg(sql));
        assert_eq!(code, 0, "{sql}: {err}");
        let mut lines: Vec<String> = out.lines().map(str::to_owned).collect();
        // Ordered only by a last ORDER BY outside any window's parentheses.
        let ordered = sql
            .rsplit_once("ORDER BY")
            .is_some_and(|(_, tail)| !tail.contains(')'));
        if !ordered {
            lines.sort();
        }
        lines
    }

    #[test]
    fn sql_the_rule_pack_and_a_timeline_answer_the_same_on_a_cluster() {
        let (dir, lake) = scenario_lake();
        let cluster = Cluster::start(2);
        let engine = cluster.engine.as_str();

        // Joins, aggregates, windows, the functions, the views, and pruning by day.
        for sql in [
            "SELECT count(*) FROM events",
            "SELECT source, action, count(*) FROM events GROUP BY source, action",
            "SELECT user_name, verb, row_number() OVER (PARTITION BY user_name ORDER BY event_time, _source, _offset) AS n FROM k8s_audit",
            "SELECT a.pod, count(*) FROM k8s_audit a JOIN runtime_events r ON a.pod = r.pod AND a.namespace = r.namespace GROUP BY a.pod",
            "SELECT src_ip, is_private_ip(src_ip), cidr_contains('10.0.0.0/8', src_ip) FROM k8s_audit WHERE src_ip IS NOT NULL GROUP BY 1, 2, 3",
            "SELECT event_date, count(*) FROM network_flows WHERE event_date = DATE '2026-11-20' GROUP BY 1",
            "SELECT count(*) FROM network_flows WHERE event_date > DATE '2030-01-01'",
            "SELECT verb, count(*) AS n FROM k8s_audit GROUP BY verb ORDER BY n DESC, verb",
            "SELECT class_uid, count(*) FROM ocsf_api_activity GROUP BY 1",
        ] {
            let local = rows(&lake, None, sql);
            assert!(local.len() > 1 || sql.contains("2030"), "{sql}: {local:?}");
            let on_cluster = rows(&lake, Some(engine), sql);
            assert!(on_cluster == local, "{sql}: {on_cluster:.20?} against {local:.20?}");
        }

        // The pack, each run writing to its own copy of the lake: the same alerts, the same
        // ids, the watchlist rules included (their lists travel in the plan: the cluster
        // has none of its own).
        let settings = dir.path().join("kubetrail.toml");
        let indicators = dir.path().join("indicators.txt");
        std::fs::write(
            &indicators,
            "address 203.0.113.0/24 # scanner\nuser-agent curl/ # hand-made requests\nimage r00tkit/\n",
        )
        .unwrap();
        std::fs::write(
            &settings,
            format!(
                "[detections]\nallowed_registries = [\"registry.k8s.io/\"]\ndeployers = [\"system:serviceaccount:argocd:*\"]\nindicator_files = [{indicators:?}]\n"
            ),
        )
        .unwrap();
        let (local, on_cluster) = pack_here_and_there(
            &lake,
            dir.path(),
            Some(&settings),
            ("2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z"),
            engine,
        );
        assert!(local.len() > 20, "{local:?}");
        // (cronjob-or-daemonset-changed runs too: the scenario changes no CronJob.)
        for rule in [
            "attacker-tool-user-agent",
            "image-from-unlisted-registry",
            "known-bad-address",
            "known-bad-image",
        ] {
            assert!(local.iter().any(|l| l.contains(rule)), "{rule}: {local:?}");
        }
        assert_eq!(on_cluster, local);

        let timeline = |engine: Option<&str>| {
            let mut c = pod_timeline(&lake);
            c.args(["--format", "csv"]);
            if let Some(e) = engine {
                c.args(["--engine", e]);
            }
            run(&mut c)
        };
        let (code, local, err) = timeline(None);
        assert_eq!(code, 0, "{err}");
        let (code, on_cluster, err) = timeline(Some(engine));
        assert_eq!(code, 0, "{err}");
        assert!(local.lines().count() > 10, "{local}");
        assert_eq!(on_cluster, local);
    }

    /// The pack's alerts (CSV lines, sorted) run in process and on `engine`, each run on
    /// its own copy of `lake` under `scratch` so that each writes its alerts to its own.
    fn pack_here_and_there(
        lake: &str,
        scratch: &Path,
        settings: Option<&Path>,
        (from, to): (&str, &str),
        engine: &str,
    ) -> (Vec<String>, Vec<String>) {
        let detect = |copy: &str, engine: Option<&str>| {
            let copy = scratch.join(copy);
            copy_lake(lake, &copy);
            let mut c = kubetrail();
            if let Some(settings) = settings {
                c.arg("--config").arg(settings);
            }
            c.args(["detect", "run", "--format", "csv", "--lake"])
                .arg(&copy)
                .args(["--from", from, "--to", to]);
            if let Some(e) = engine {
                c.args(["--engine", e]);
            }
            let (code, out, err) = run(&mut c);
            assert_eq!(code, 0, "{err}");
            let mut alerts: Vec<String> = out.lines().map(str::to_owned).collect();
            alerts.sort();
            alerts
        };
        (detect("local", None), detect("cluster", Some(engine)))
    }

    /// Over a lake of a million events (720k audit, 144k flows, 144k runtime events over a
    /// day), the work is split into tasks on both executors, and the pack still gives the
    /// same alerts with the same ids.
    #[test]
    fn the_pack_over_a_million_events_answers_the_same_on_a_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let files = dir.path().join("samples");
        let (code, _, err) = run(kubetrail()
            .args(["samples", "--events", "720000", "--days", "1", "--out"])
            .arg(&files));
        assert_eq!(code, 0, "{err}");
        let lake = dir.path().join("lake");
        let lake = lake.to_str().unwrap();
        let mut inputs: Vec<PathBuf> = std::fs::read_dir(&files)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        inputs.sort();
        let (code, _, err) = run(kubetrail()
            .args(["ingest", "file", "--quiet", "--lake", lake])
            .args(&inputs));
        assert_eq!(code, 0, "{err}");
        let count = rows(lake, None, "SELECT count(*) FROM events");
        assert!(count.contains(&"1008000".to_owned()), "{count:?}");

        let cluster = Cluster::start(2);
        let (local, on_cluster) = pack_here_and_there(
            lake,
            dir.path(),
            None,
            ("2026-11-19T09:00:00Z", "2026-11-20T10:00:00Z"),
            &cluster.engine,
        );
        assert!(local.len() > 20, "{local:?}");
        assert!(on_cluster == local, "{on_cluster:?} against {local:?}");
        // Both executors ran tasks: the scan was not done by one of them alone.
        for n in 1..=2 {
            let log = std::fs::read_to_string(cluster.dir.path().join(format!("executor-{n}.log")))
                .unwrap();
            assert!(
                log.contains("Finished task"),
                "executor {n}:\n{}",
                cluster.logs()
            );
        }
    }

    #[test]
    fn a_cluster_that_is_not_there_is_one_line() {
        let (_dir, lake) = lake_of_the_three_streams();
        for (engine, says) in [
            (
                "ballista://127.0.0.1:1",
                "the Ballista scheduler at 127.0.0.1:1 does not answer",
            ),
            ("ballista://nowhere", "expected HOST:PORT"),
            (
                "spark://127.0.0.1:7077",
                "expected local or ballista://HOST:PORT",
            ),
        ] {
            let started = std::time::Instant::now();
            let (code, out, err) = run(kubetrail().args([
                "sql",
                "--lake",
                &lake,
                "--engine",
                engine,
                "SELECT count(*) FROM k8s_audit",
            ]));
            assert_ne!(code, 0, "{engine}: {out}");
            assert_eq!(err.trim().lines().count(), 1, "{engine}: {err}");
            assert!(err.contains(says), "{engine}: {err}");
            assert!(started.elapsed() < std::time::Duration::from_secs(10));
        }
        // An executor that cannot start: no scheduler to serve.
        let (code, _, err) =
            run(kubetrail().args(["cluster", "executor", "--scheduler", "127.0.0.1"]));
        assert_ne!(code, 0);
        assert!(err.contains("expected HOST:PORT"), "{err}");
    }

    /// Executors read a lake on object storage with their own settings and credentials;
    /// executors whose credentials the store refuses fail the query with that reason.
    #[test]
    fn executors_read_a_lake_on_object_storage_with_their_own_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let Some(s3) = super::object_storage::S3::start(&dir.path().join("s3")) else {
            return;
        };
        s3.bucket("evidence");
        // From here on the server refuses requests not signed by this key.
        let (id, secret) = s3.credentials();
        let signed = |secret: &str| {
            let mut c = s3.kubetrail();
            c.env("AWS_ACCESS_KEY_ID", &id)
                .env("AWS_SECRET_ACCESS_KEY", secret);
            c
        };
        let lake = "s3://evidence/lake";
        ingest_scenario(signed(&secret), lake);
        let mut executors = signed(&secret);
        executors.env("KUBETRAIL_LAKE", lake);
        let cluster = Cluster::start_as(2, &executors);
        for sql in [
            "SELECT source, action, count(*) FROM events GROUP BY source, action",
            "SELECT a.pod, count(*) FROM k8s_audit a JOIN runtime_events r ON a.pod = r.pod AND a.namespace = r.namespace GROUP BY a.pod",
            "SELECT event_date, count(*) FROM network_flows WHERE event_date = DATE '2026-11-20' GROUP BY 1",
        ] {
            let local = rows_from(signed(&secret), lake, None, sql);
            assert!(local.len() > 1, "{sql}: {local:?}");
            let on_cluster = rows_from(signed(&secret), lake, Some(&cluster.engine), sql);
            assert_eq!(on_cluster, local, "{sql}");
        }

        executors.env("AWS_SECRET_ACCESS_KEY", "not-the-secret");
        let refused = Cluster::start_as(1, &executors);
        let started = std::time::Instant::now();
        let (code, out, err) = run(signed(&secret).args([
            "sql",
            "--lake",
            lake,
            "--engine",
            &refused.engine,
            "SELECT count(*) FROM k8s_audit",
        ]));
        assert_ne!(code, 0, "{out}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("access denied"), "{err}\n{}", refused.logs());
        assert!(!err.contains("not-the-secret"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
    }

    /// An executor killed mid-query: the query is run again elsewhere or fails in one line,
    /// never a partial answer; a rule pack cut short and run again writes each alert once.
    #[test]
    fn a_killed_executor_never_gives_a_partial_answer_or_an_alert_twice() {
        let (_dir, lake) = scenario_lake();
        // Long enough on a debug build to be running when the executor dies.
        let sql = "SELECT count(*) AS n FROM k8s_audit a JOIN k8s_audit b ON a.verb = b.verb JOIN k8s_audit c ON b.user_name = c.user_name";
        let whole = rows(&lake, None, sql);
        let cluster = Cluster::start(2);
        let query = kubetrail()
            .args([
                "sql",
                "--lake",
                &lake,
                "--format",
                "csv",
                "--engine",
                &cluster.engine,
            ])
            .arg(sql)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let killed = cluster.kill_a_busy_executor(2);
        let done = query.wait_with_output().unwrap();
        assert!(killed.is_some(), "no executor was seen running the query");
        let (out, err) = (
            String::from_utf8_lossy(&done.stdout),
            String::from_utf8_lossy(&done.stderr),
        );
        eprintln!("the query, executor {killed:?} killed under it: {err}");
        match done.status.success() {
            true => {
                let mut answer: Vec<&str> = out.lines().collect();
                answer.sort();
                assert_eq!(answer, whole, "{err}");
            }
            false => {
                assert_eq!(err.trim().lines().count(), 1, "{err}");
                assert!(out.trim().is_empty(), "a partial answer: {out}");
            }
        }

        // The pack on the executor left, killed under it; then on a new one.
        let detect = || {
            let mut c = kubetrail();
            c.args(["detect", "run", "--format", "csv", "--lake", &lake])
                .args(["--engine", &cluster.engine])
                .args([
                    "--from",
                    "2026-11-20T00:00:00Z",
                    "--to",
                    "2026-11-21T00:00:00Z",
                ]);
            c
        };
        let cut_short = detect()
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_secs(2));
        cluster.kill_executor(if killed == Some(1) { 2 } else { 1 });
        let done = cut_short.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&done.stderr);
        eprintln!("the pack, its last executor killed under it: {err}");
        assert!(!done.status.success() || err.is_empty(), "{err}");
        let work_dir = tempfile::tempdir().unwrap();
        let mut replacement = kubetrail()
            .args(["cluster", "executor", "--scheduler"])
            .arg(cluster.engine.trim_start_matches("ballista://"))
            .arg("--work-dir")
            .arg(work_dir.path())
            .arg("--addr")
            .arg(format!("127.0.0.1:{}", free_port_pair()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let (code, out, err) = run(&mut detect());
        let _ = replacement.kill();
        let _ = replacement.wait();
        assert_eq!(code, 0, "{err}");
        assert!(out.lines().count() > 20, "{out}");
        let counts = rows(
            &lake,
            None,
            "SELECT count(*) AS alerts, count(DISTINCT alert_id) AS ids FROM alerts",
        );
        let (alerts, ids) = counts[0].split_once(',').unwrap();
        assert_eq!(alerts, ids, "an alert written twice: {counts:?}");
        assert_eq!(
            alerts.parse::<usize>().unwrap(),
            out.lines().count() - 1,
            "{out}"
        );
    }

    /// A port nothing listens on, with the one after it free too (an executor takes both).
    fn free_port_pair() -> u16 {
        loop {
            let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = a.local_addr().unwrap().port();
            if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
                return port;
            }
        }
    }
}
