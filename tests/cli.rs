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
    let (_, out, _) = run(kubetrail().args([
        "sql",
        "--lake",
        lake,
        "--format",
        "csv",
        "SELECT _offset, reason FROM dead_letters ORDER BY _offset",
    ]));
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
    assert!(out.contains("== Done in"), "{out}");
    assert!(dir.path().join("lake/k8s_audit/_delta_log").is_dir());
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
    let (code, out, _) =
        run(kubetrail().args(["lake", "vacuum", "--lake", lake, "--retain", "0h"]));
    assert_eq!(code, 0);
    assert!(out.contains("runtime_events   2 file(s) deleted"), "{out}");
    let (code, out, _) =
        run(kubetrail().args(["lake", "retention", "--lake", lake, "--older-than", "400d"]));
    assert_eq!(code, 0);
    assert!(out.contains("runtime_events   0 file(s)"), "{out}");
    let (_, out, _) = run(kubetrail().args([
        "sql",
        "--lake",
        lake,
        "--format",
        "csv",
        "SELECT count(*) AS n FROM runtime_events",
    ]));
    assert_eq!(out, "n\n53\n");
    let (code, _, err) =
        run(kubetrail().args(["lake", "vacuum", "--lake", lake, "--retain", "a week"]));
    assert_eq!(code, 2, "{err}");
    let (code, _, err) =
        run(kubetrail().args(["lake", "optimize", "--lake", lake, "--table", "nope"]));
    assert_eq!((code, err.lines().count()), (1, 1), "{err}");
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
    assert!(err.contains("no lake at elsewhere"), "{err}");
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
}
