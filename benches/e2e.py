#!/usr/bin/env python3
"""End-to-end benchmark: kubetrail and DuckDB on the same files, cores and machine.

Run it through `benches/run` (builds the release binary, installs DuckDB). Steps:

1. generate a day of audit events with the samples generator (N, plus N/5 flows and N/5
   runtime events) and the incident scenario;
2. ingest the audit file into a fresh lake, R times: events/s, MB/s, events/s per core,
   peak resident memory of the process;
3. the same conversion in DuckDB (JSON lines -> Parquet, the k8s_audit columns, zstd, same
   thread count), R times, in a process of its own measured the same way;
4. Kafka -> lake through a real broker (tansu, scripts/kafka-broker) when it is installed:
   throughput, and produce-to-visible-in-SQL latency;
4b. (kafka-mock) Kafka -> lake with the broker out of the measure: the whole audit file as a
   backlog in librdkafka's mock cluster (a process of its own), read to the end R times,
   alternating with `ingest file` of the same file; peak RSS, also at the smallest and the
   largest batch settings;
5. the rule pack over the lake, and the portable rules (those DuckDB runs) in both;
6. `timeline --pod` for the scenario's compromised pod;
7. the lake on object storage (an S3-compatible server on 127.0.0.1, scripts/s3-server) beside
   a local directory: the same files ingested into each, the rule pack over each, R times;
8. (serve) responders' queries -- two rules' and a timeline's -- through `kubetrail serve`
   (Arrow Flight SQL), in process on the same lake, and in DuckDB over the same Parquet
   files, from 1 and 8 clients: latency median and p99, R times;
9. (cluster) the rule pack in process, then on an Apache Ballista cluster of 1 and of 2
   executors on this machine (scripts/ballista-cluster), R times each: seconds, the same
   alerts, and from the scheduler's and executors' logs where the time went (planning,
   scan, shuffle writes) and how many bytes each executor scanned.

Every figure is the median of R runs with min and max; the table is printed and written as
JSON (default target/kubetrail-e2e/results-N.json) for comparison between commits.
"""

import argparse
import collections
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
POD = "shop/api-7d9f8b6c5-x2k4p"
# The volume generator's day ends where the scenario's hour begins.
DAY_FROM, DAY_TO = "2026-11-19T09:00:00Z", "2026-11-20T10:00:00Z"
ATTACK = "2026-11-20T09:00:00Z"
ALL_STEPS = "ingest,kafka,kafka-mock,detect,timeline,s3,serve,cluster"


# ---------------------------------------------------------------- measuring processes


class Failed(Exception):
    pass


GNU_TIME = Path("/usr/bin/time")


Measured = collections.namedtuple("Measured", "seconds rss stdout cpu")


def measure(cmd, env=None):
    """Runs a command to completion: wall seconds, peak RSS in bytes, stdout text and CPU
    seconds (user and system, the command's and its children's).

    The peak RSS comes from GNU time wrapped around the command: a child's own rusage
    also counts the pages of the process that forked it, so a large harness would inflate
    every figure."""
    out = tempfile.TemporaryFile("w+")
    err = tempfile.TemporaryFile("w+")
    rss_file = tempfile.NamedTemporaryFile("r", suffix=".rss")
    wrapped = [str(c) for c in cmd]
    if GNU_TIME.exists():
        wrapped = [str(GNU_TIME), "-f", "%M", "-o", rss_file.name, *wrapped]
    started = time.perf_counter()
    proc = subprocess.Popen(wrapped, stdout=out, stderr=err, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    rss_kb = usage.ru_maxrss
    text = rss_file.read().strip().splitlines()
    if text and text[-1].isdigit():
        rss_kb = int(text[-1])
    err.seek(0)
    out.seek(0)
    stdout = out.read()
    if proc.returncode != 0:
        raise Failed(f"{' '.join(map(str, cmd))} exited {proc.returncode}: {err.read().strip()[-800:]}")
    cpu = usage.ru_utime + usage.ru_stime
    return Measured(seconds, rss_kb * 1024, stdout, cpu)


def process_cpu(pid):
    """A function reading the CPU seconds (user and system) a running process has used."""
    ticks = os.sysconf("SC_CLK_TCK")

    def read():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks

    return read


class Figure:
    """One measured quantity over several runs."""

    def __init__(self, name, unit, values, higher_is_better=True, note=""):
        self.name, self.unit, self.values = name, unit, list(values)
        self.higher_is_better, self.note = higher_is_better, note

    @property
    def median(self):
        return statistics.median(self.values)

    def row(self):
        return {
            "name": self.name,
            "unit": self.unit,
            "median": self.median,
            "min": min(self.values),
            "max": max(self.values),
            "runs": self.values,
            "note": self.note,
            "better": "higher" if self.higher_is_better else "lower",
        }


def fmt(v):
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


# ---------------------------------------------------------------- the machine


def machine():
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    import duckdb

    return {
        "cores": os.cpu_count(),
        "memory_bytes": mem,
        "cpu": cpu,
        "os": platform.platform(),
        "commit": commit + ("-dirty" if dirty else ""),
        "duckdb": duckdb.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


# ---------------------------------------------------------------- DuckDB's side

AUDIT_COLUMNS = """{
  'auditID': 'VARCHAR', 'stage': 'VARCHAR', 'level': 'VARCHAR', 'verb': 'VARCHAR',
  'requestURI': 'VARCHAR',
  'user': 'STRUCT(username VARCHAR, uid VARCHAR, groups VARCHAR[])',
  'impersonatedUser': 'STRUCT(username VARCHAR, groups VARCHAR[])',
  'sourceIPs': 'VARCHAR[]', 'userAgent': 'VARCHAR',
  'objectRef': 'STRUCT(resource VARCHAR, namespace VARCHAR, name VARCHAR, apiGroup VARCHAR, apiVersion VARCHAR, subresource VARCHAR)',
  'responseStatus': 'STRUCT(code INTEGER, reason VARCHAR, message VARCHAR)',
  'requestObject': 'JSON', 'responseObject': 'JSON', 'annotations': 'JSON',
  'requestReceivedTimestamp': 'TIMESTAMPTZ', 'stageTimestamp': 'TIMESTAMPTZ'
}"""

# The k8s_audit columns, typed as kubetrail types them (schemas/src/rows/audit.rs).
AUDIT_SELECT = """
SELECT
  coalesce(stageTimestamp, requestReceivedTimestamp) AS event_time,
  CAST(NULL AS VARCHAR) AS cluster,
  objectRef.namespace AS namespace,
  CASE WHEN objectRef.resource = 'pods' THEN objectRef.name END AS pod,
  CASE WHEN starts_with("user".username, 'system:node:') THEN substr("user".username, 13) END AS node,
  sourceIPs[1] AS src_ip,
  auditID AS audit_id, stage, level, verb,
  "user".username AS user_name, "user".uid AS user_uid, "user".groups AS user_groups,
  impersonatedUser.username AS impersonated_user, impersonatedUser.groups AS impersonated_groups,
  sourceIPs AS source_ips, userAgent AS user_agent,
  objectRef.resource AS resource, objectRef.subresource AS subresource,
  coalesce(objectRef.name, json_extract_string(requestObject, '$.metadata.name'),
           json_extract_string(responseObject, '$.metadata.name')) AS name,
  objectRef.apiGroup AS api_group, objectRef.apiVersion AS api_version,
  requestURI AS request_uri, responseStatus.code AS response_code,
  responseStatus.reason AS response_reason, responseStatus.message AS response_message,
  json_extract_string(annotations, '$."authorization.k8s.io/decision"') AS decision,
  json_extract_string(annotations, '$."authorization.k8s.io/reason"') AS authz_reason,
  requestReceivedTimestamp AS request_received_time, stageTimestamp AS stage_time,
  CAST(requestObject AS VARCHAR) AS request_object,
  CAST(responseObject AS VARCHAR) AS response_object,
  CAST(annotations AS VARCHAR) AS annotations,
  'k8s' AS audit_format,
  CAST(coalesce(stageTimestamp, requestReceivedTimestamp) AS DATE) AS event_date,
  $source AS _source,
  CAST(NULL AS BIGINT) AS _offset,
  now() AS _ingested_at
FROM read_json($path, format = 'newline_delimited', columns = COLUMNS)
"""

# Functions the rules call that DuckDB spells differently: the rules' SQL stays as it is.
DUCKDB_SHIMS = [
    "CREATE MACRO regexp_like(s, p) AS regexp_matches(s, p)",
    "CREATE MACRO json_get_str(j, a) AS json_extract_string(j, '$.\"' || a || '\"'), "
    "(j, a, b) AS json_extract_string(j, '$.\"' || a || '\".\"' || b || '\"'), "
    "(j, a, b, c) AS json_extract_string(j, '$.\"' || a || '\".\"' || b || '\".\"' || c || '\"')",
    "CREATE MACRO succeeded(code, reason) AS CASE WHEN code IS NULL THEN reason IS NULL "
    "ELSE code < 400 END",
    "CREATE MACRO is_private_ip(ip) AS regexp_matches(ip, "
    "'^(10\\.|172\\.(1[6-9]|2[0-9]|3[01])\\.|192\\.168\\.|127\\.|169\\.254\\.|"
    "100\\.(6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7])\\.|0\\.|192\\.0\\.0\\.|::1$|::$|f[cd]|fe[89ab])')",
]


def duck_convert(args):
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {args.threads}")
    sql = AUDIT_SELECT.replace("COLUMNS", AUDIT_COLUMNS)
    con.execute(
        f"COPY ({sql}) TO '{args.output}' (FORMAT parquet, COMPRESSION zstd)",
        {"path": args.input, "source": f"file:{args.input}"},
    )


def duck_copy(args):
    """Rewrites Parquet files as DuckDB writes Parquet, sorted by time."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {args.threads}")
    # event_date lives in the lake's directory names (Hive partitioning).
    con.execute(
        f"COPY (SELECT * FROM read_parquet('{args.input}', hive_partitioning = true) "
        f"ORDER BY event_time) TO '{args.output}' (FORMAT parquet, COMPRESSION zstd)")


def duck_rules(args):
    """Runs the given rules' SQL over Parquet files: prints {rule: seconds or error}."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {args.threads}")
    for shim in DUCKDB_SHIMS:
        con.execute(shim)
    spec = json.loads(Path(args.spec).read_text())
    for table, path in spec["tables"].items():
        con.execute(f"CREATE VIEW {table}_all AS SELECT * FROM read_parquet('{path}')")
        for view, (lo, hi) in [(table, spec["window"]), (f"{table}_history", spec["history"])]:
            con.execute(
                f"CREATE VIEW {view} AS SELECT * FROM {table}_all "
                f"WHERE event_time >= TIMESTAMPTZ '{lo}' AND event_time < TIMESTAMPTZ '{hi}'"
            )
    con.execute("CREATE TABLE allowed_registries (registry VARCHAR)")
    out = {}
    for rule, sql in spec["rules"].items():
        started = time.perf_counter()
        try:
            rows = con.execute(sql).fetchall()
            out[rule] = {"seconds": time.perf_counter() - started, "rows": len(rows)}
        except Exception as e:  # noqa: BLE001 - a rule DuckDB cannot run is not portable
            out[rule] = {"error": str(e).splitlines()[0][:300]}
    print(json.dumps(out))


def duck_latency(args):
    """Runs one statement from CLIENTS threads, each for SECONDS after its warm-up, over the
    lake's own Parquet files (one cursor per thread, results read as Arrow tables): prints
    every query's seconds and the rows it returned."""
    import threading

    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {args.threads}")
    for shim in DUCKDB_SHIMS:
        con.execute(shim)
    for table in ["k8s_audit", "network_flows", "runtime_events"]:
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet("
                    f"'{args.lake}/{table}/event_date=*/*.parquet', hive_partitioning = true)")
    sql = Path(args.sql).read_text()
    results = [None] * args.clients

    def client(i):
        cursor = con.cursor()
        for _ in range(args.warmup):
            rows = cursor.execute(sql).to_arrow_table().num_rows
        latencies = []
        until = time.perf_counter() + args.seconds
        while time.perf_counter() < until:
            started = time.perf_counter()
            rows = cursor.execute(sql).to_arrow_table().num_rows
            latencies.append(time.perf_counter() - started)
        results[i] = (latencies, rows)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if any(r is None for r in results):
        sys.exit("duck-latency: a client failed")
    print(json.dumps({"latencies_s": [x for r in results for x in r[0]], "rows": results[0][1]}))


# ---------------------------------------------------------------- Ballista's logs


def duration_seconds(text):
    """A Rust Duration's debug form (`12.3ms`, `1.2s`, `850µs`) in seconds."""
    found = re.match(r"([0-9.]+)(ns|µs|us|ms|s)", text)
    if not found:
        return 0.0
    value, unit = float(found.group(1)), found.group(2)
    return value * {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]


def metric_value(text):
    """A DataFusion metric as displayed (`1234`, `1.2 MB`, `12.3ms`, `1.5s`)."""
    found = re.match(r"([0-9.]+)\s*([A-Za-zµ]*)", text)
    if not found:
        return 0.0
    value, unit = float(found.group(1)), found.group(2)
    scale = {"": 1, "B": 1, "K": 1e3, "KB": 1e3, "M": 1e6, "MB": 1e6, "G": 1e9, "GB": 1e9,
             "ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}
    return value * scale.get(unit, 1)


def executor_metrics(log):
    """Sums over the task plans an executor logged: bytes its Parquet scans read, their
    scanning time, and its shuffle writes' time."""
    out = {"bytes_scanned": 0.0, "scan_seconds": 0.0, "shuffle_write_seconds": 0.0}
    for line in log.splitlines():
        if "DataSourceExec" in line:
            for key, name in (("bytes_scanned", "bytes_scanned"),
                              ("scan_seconds", "time_elapsed_scanning_total")):
                for v in re.findall(name + r"=([^,\]]+)", line):
                    out[key] += metric_value(v)
        if "ShuffleWriterExec" in line:
            for v in re.findall(r"write_time=([^,\]]+)", line):
                out["shuffle_write_seconds"] += metric_value(v)
    return out


# ---------------------------------------------------------------- the run


class Bench:
    def __init__(self, args):
        self.args = args
        self.kt = Path(args.kubetrail).resolve()
        self.work = Path(args.work or REPO / "target" / "kubetrail-e2e" / str(args.events)).resolve()
        self.work.mkdir(parents=True, exist_ok=True)
        self.cores = args.threads or os.cpu_count()
        self.figures = []
        self.notes = []
        self.python = sys.executable

    def say(self, text):
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    def add(self, *a, **kw):
        f = Figure(*a, **kw)
        self.figures.append(f)
        self.say(f"{f.name}: {fmt(f.median)} {f.unit} (min {fmt(min(f.values))}, max {fmt(max(f.values))})")
        return f

    def kubetrail(self, *args):
        return measure([self.kt, *args])

    # 1
    def generate(self):
        inputs = self.work / "input"
        ready = inputs / "READY"
        if not ready.exists():
            shutil.rmtree(inputs, ignore_errors=True)
            self.say(f"generating {self.args.events:,} audit events (+ flows, runtime events, scenario)")
            self.kubetrail("samples", "--out", inputs, "--events", self.args.events, "--days", 1)
            self.kubetrail("samples", "--out", inputs / "scenario")
            ready.write_text("")
        self.audit = inputs / "audit.jsonl"
        self.others = [inputs / "hubble.jsonl", inputs / "tetragon.jsonl"]
        self.scenario = sorted(p for p in (inputs / "scenario").iterdir() if p.name != "MANIFEST.tsv")

    # 2, 3
    def ingest_vs_duckdb(self):
        n, size = self.args.events, self.audit.stat().st_size
        ours, duck = [], []
        for run in range(self.args.runs):
            lake = self.work / f"ingest-lake-{run}"
            shutil.rmtree(lake, ignore_errors=True)
            s, rss, _, _ = self.kubetrail("ingest", "file", "--lake", lake, "--quiet", self.audit)
            ours.append((s, rss))
            shutil.rmtree(lake, ignore_errors=True)
            parquet = self.work / "duckdb-audit.parquet"
            s, rss, _, _ = measure([
                self.python, __file__, "duck-convert", "--input", self.audit,
                "--output", parquet, "--threads", self.cores,
            ])
            duck.append((s, rss))
        kt_eps = self.add("ingest: kubetrail audit events/s", "events/s", [n / s for s, _ in ours])
        self.add("ingest: kubetrail MB/s", "MB/s", [size / 1e6 / s for s, _ in ours])
        # kubetrail decodes on every core of the machine, whatever --threads gives DuckDB.
        self.add("ingest: kubetrail events/s per core", "events/s",
                 [n / s / os.cpu_count() for s, _ in ours])
        self.add("ingest: kubetrail peak RSS", "MB", [r / 1e6 for _, r in ours], higher_is_better=False)
        dk_eps = self.add("ingest: DuckDB audit events/s", "events/s", [n / s for s, _ in duck])
        self.add("ingest: DuckDB peak RSS", "MB", [r / 1e6 for _, r in duck], higher_is_better=False)
        self.add("ingest: kubetrail / DuckDB events/s", "x",
                 [a / b for a, b in zip(kt_eps.values, dk_eps.values)],
                 note="target >= 3")

    def build_lake(self):
        self.lake = self.work / "lake"
        if (self.work / "LAKE_READY").exists():
            return
        shutil.rmtree(self.lake, ignore_errors=True)
        self.say("building the query lake (audit, flows, runtime events, scenario; optimize)")
        self.kubetrail("ingest", "file", "--lake", self.lake, "--quiet",
                       self.audit, *self.others, *self.scenario)
        self.kubetrail("lake", "optimize", "--lake", self.lake)
        (self.work / "LAKE_READY").write_text("")

    # 4
    def kafka(self):
        broker_script = REPO / "scripts" / "kafka-broker"
        if shutil.which("tansu") is None:
            self.notes.append("Kafka: skipped, tansu is not installed (scripts/kafka-broker install)")
            return
        n = min(self.args.kafka_events, self.args.events)
        sample = self.work / f"kafka-{n}.jsonl"
        with open(self.audit) as src, open(sample, "w") as dst:
            for i, line in enumerate(src):
                if i >= n:
                    break
                dst.write(line)
        broker_dir = self.work / "broker"
        shutil.rmtree(broker_dir, ignore_errors=True)
        port = subprocess.run([broker_script, "start", broker_dir], capture_output=True,
                              text=True, check=True).stdout.strip().splitlines()[-1]
        brokers = f"127.0.0.1:{port}"
        try:
            subprocess.run([broker_script, "topic", broker_dir, "audit", "2"], check=True,
                           capture_output=True)
            s = self.kubetrail("produce", "--brokers", brokers, "--topic", "audit", sample).seconds
            self.add("kafka: produce to tansu", "events/s", [n / s])
            lake = self.work / "kafka-lake"
            shutil.rmtree(lake, ignore_errors=True)
            broker_cpu = process_cpu(int((broker_dir / "broker.pid").read_text()))
            before = broker_cpu()
            s, rss, _, cpu = self.kubetrail("ingest", "kafka", "--lake", lake, "--brokers",
                                            brokers, "--topic", "audit=k8s-audit",
                                            "--until-caught-up", "--linger", "1s")
            self.add("kafka: Kafka -> lake", "events/s", [n / s],
                     note=f"{n:,} events, ingest kafka --until-caught-up, whole process")
            self.add("kafka: ingest peak RSS", "MB", [rss / 1e6], higher_is_better=False)
            # A test broker can be the slower side: whose CPU the run took says which.
            self.add("kafka: ingester CPU per event", "us", [cpu / n * 1e6],
                     higher_is_better=False, note="user + system")
            self.add("kafka: broker CPU per event", "us", [(broker_cpu() - before) / n * 1e6],
                     higher_is_better=False, note="tansu, while the ingester read")
            self.kafka_latency(brokers, lake)
        finally:
            subprocess.run([broker_script, "stop", broker_dir], capture_output=True)

    # 4b
    def kafka_mock(self):
        """Kafka -> lake with the broker out of the measure: librdkafka's mock cluster (in
        a process of its own, so the ingester's RSS and CPU are its own) holds the whole
        audit file as a backlog; the ingester reads it to the end, alternating run by run
        with `ingest file` of the same file."""
        mock = REPO / "target" / "release" / "mock-kafka"
        if not mock.exists():
            raise Failed(f"{mock} is missing: cargo build --release -p kubetrail-benches "
                         "--bin mock-kafka (benches/run builds it)")
        n = self.args.events
        # The mock keeps at most 5 MiB per partition (older records are deleted, as by
        # retention) and answers a fetch with one producer batch per partition: the backlog
        # is spread so that no partition holds more than ~3.5 MB, in batches of up to 4 MB.
        partitions = max(4, -(-self.audit.stat().st_size // 3_500_000))
        cluster = subprocess.Popen([mock, f"audit={partitions}"], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True)
        try:
            brokers = cluster.stdout.readline().strip()
            if not brokers:
                raise Failed("the mock Kafka cluster did not start")
            big_batches = [a for kv in ("linger.ms=2000", "batch.size=4000000",
                                        "message.max.bytes=8000000", "batch.num.messages=100000")
                           for a in ("--kafka-option", kv)]
            s = self.kubetrail("produce", "--brokers", brokers, "--topic", "audit",
                               *big_batches, self.audit).seconds
            self.add("kafka-mock: produce (backlog)", "events/s", [n / s],
                     note=f"{n:,} events into {partitions} partitions")

            def ingest_kafka(lake, group, *config):
                shutil.rmtree(lake, ignore_errors=True)
                return self.kubetrail(*config, "ingest", "kafka", "--lake", lake,
                                      "--brokers", brokers, "--topic", "audit=k8s-audit",
                                      "--group", group, "--until-caught-up",
                                      "--no-compaction")

            def reading(r):
                """The ingester's own figure: first record to last commit."""
                m = re.search(r"(\d+) records read.*?([\d.]+) s from the first record", r.stdout)
                if not m or int(m.group(1)) != n:
                    raise Failed(f"ingest kafka did not read {n:,} records: {r.stdout.strip()}")
                return float(m.group(2))

            ours, files = [], []
            for run in range(self.args.runs):
                lake = self.work / "kafka-mock-file-lake"
                shutil.rmtree(lake, ignore_errors=True)
                files.append(self.kubetrail("ingest", "file", "--lake", lake, "--quiet",
                                            self.audit))
                ours.append(ingest_kafka(self.work / "kafka-mock-lake", f"bench-{run}"))
            kafka = self.add("kafka-mock: Kafka -> lake, reading", "events/s",
                             [n / reading(r) for r in ours],
                             note="first record to last commit, as the ingester reports it")
            self.add("kafka-mock: Kafka -> lake, whole process", "events/s",
                     [n / r.seconds for r in ours],
                     note="with the group join (~3.5 s) and the end-of-topic check")
            file = self.add("kafka-mock: file -> lake, same events", "events/s",
                            [n / r.seconds for r in files], note="ingest file, whole process")
            self.add("kafka-mock: Kafka reading / file", "x", [kafka.median / file.median],
                     note="target >= 0.6")
            self.add("kafka-mock: ingester peak RSS", "MB", [r.rss / 1e6 for r in ours],
                     higher_is_better=False, note=f"backlog of {n:,} records; target < 1 GiB")
            self.add("kafka-mock: ingester CPU per event", "us",
                     [r.cpu / n * 1e6 for r in ours], higher_is_better=False)
            # Memory must not follow the batch settings past the target either.
            for name, settings in [("smallest batches", "batch_rows = 1000\n"),
                                   ("largest batches", "batch_rows = 100000000\nbatch_mib = 1024\n")]:
                config = self.work / "kafka-mock.toml"
                config.write_text(f"[ingest]\n{settings}")
                r = ingest_kafka(self.work / "kafka-mock-lake", f"bench-{name.split()[0]}",
                                 "--config", config)
                self.add(f"kafka-mock: ingester peak RSS, {name}", "MB", [r.rss / 1e6],
                         higher_is_better=False, note=settings.strip().replace("\n", ", "))
                self.add(f"kafka-mock: Kafka -> lake, reading, {name}", "events/s",
                         [n / reading(r)])
        finally:
            cluster.stdin.close()
            cluster.wait(timeout=30)

    def kafka_latency(self, brokers, lake):
        """Produce one event at a time; how long until SQL sees it (linger 1 s)."""
        ingester = subprocess.Popen(
            [self.kt, "ingest", "kafka", "--lake", lake, "--brokers", brokers,
             "--topic", "audit=k8s-audit", "--linger", "1s", "--group", "latency"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        latencies = []
        try:
            # The first marker waits for the group join and the catch-up; it is not counted.
            for i in range(self.args.runs + 1):
                marker = f"latency-{i}-{time.time_ns()}"
                one = self.work / "latency.jsonl"
                now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                one.write_text(json.dumps({
                    "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
                    "auditID": marker, "stage": "ResponseComplete", "requestURI": "/healthz",
                    "verb": "get", "user": {"username": "bench"}, "sourceIPs": ["127.0.0.1"],
                    "requestReceivedTimestamp": now, "stageTimestamp": now}) + "\n")
                started = time.perf_counter()
                self.kubetrail("produce", "--brokers", brokers, "--topic", "audit", one)
                while True:
                    _, _, out, _ = self.kubetrail(
                        "sql", "--lake", lake, "--format", "csv",
                        f"SELECT count(*) FROM k8s_audit WHERE audit_id = '{marker}'")
                    if out.strip().splitlines()[-1].strip() == "1":
                        break
                    if time.perf_counter() - started > 120:
                        raise Failed("an event produced did not become visible within 120 s")
                if i > 0:
                    latencies.append(time.perf_counter() - started)
        finally:
            ingester.terminate()
            ingester.wait(timeout=30)
        self.add("kafka: produce -> visible in SQL", "s", latencies, higher_is_better=False,
                 note="--linger 1s; each poll is a `kubetrail sql` process")

    # 5
    def detections(self):
        import yaml

        s_runs = []
        for _ in range(self.args.runs):
            s, rss, _, _ = self.kubetrail("detect", "run", "--lake", self.lake, "--from",
                                          DAY_FROM, "--to", DAY_TO, "--format", "csv")
            s_runs.append((s, rss))
        self.add("detect: whole pack (49 rules), kubetrail", "s", [s for s, _ in s_runs],
                 higher_is_better=False)
        self.add("detect: peak RSS", "MB", [r / 1e6 for _, r in s_runs], higher_is_better=False)

        # The same rows as Parquet files DuckDB writes itself, from the lake's own files: a
        # vacuum with no retention leaves only the files of the tables' current versions.
        self.kubetrail("lake", "vacuum", "--lake", self.lake, "--retain", "0h", "--force")
        export = self.work / "duckdb-tables"
        export.mkdir(exist_ok=True)
        tables = {}
        for table in ["k8s_audit", "network_flows", "runtime_events"]:
            theirs = export / f"{table}.parquet"
            if not theirs.exists():
                measure([self.python, __file__, "duck-copy", "--input",
                         self.lake / table / "event_date=*" / "*.parquet", "--output", theirs,
                         "--threads", self.cores])
            tables[table] = str(theirs)
        rules = {}
        files = {}
        for path in sorted((REPO / "detections" / "rules").rglob("*.yaml")):
            rule = yaml.safe_load(path.read_text())
            rules[rule["id"]] = rule["query"]
            files[rule["id"]] = path
        # `detect run`'s default history: 14 days before the window.
        history_from = (datetime.datetime.fromisoformat(DAY_FROM.replace("Z", "+00:00"))
                        - datetime.timedelta(days=14)).strftime("%Y-%m-%dT%H:%M:%SZ")

        def write_spec(chosen):
            spec.write_text(json.dumps({
                "tables": tables, "window": [DAY_FROM, DAY_TO],
                "history": [history_from, DAY_FROM], "rules": chosen}))

        spec = self.work / "duckdb-rules.json"
        write_spec(rules)
        _, _, out, _ = measure([self.python, __file__, "duck-rules", "--spec", spec,
                                "--threads", self.cores])
        probe = json.loads(out)
        portable = sorted(r for r, v in probe.items() if "seconds" in v)
        refused = {r: v["error"] for r, v in probe.items() if "error" in v}
        self.portable = {"portable": portable, "not_portable": refused}
        self.say(f"{len(portable)} of {len(rules)} rules run unchanged in DuckDB")

        portable_dir = self.work / "portable-rules"
        shutil.rmtree(portable_dir, ignore_errors=True)
        for r in portable:
            dst = portable_dir / files[r].parent.name / files[r].name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(files[r], dst)
        write_spec({r: rules[r] for r in portable})
        ours, theirs = [], []
        for _ in range(self.args.runs):
            s = self.kubetrail("detect", "run", "--rules", portable_dir, "--lake", self.lake,
                               "--from", DAY_FROM, "--to", DAY_TO, "--format", "csv").seconds
            ours.append(s)
            s = measure([self.python, __file__, "duck-rules", "--spec", spec,
                         "--threads", self.cores]).seconds
            theirs.append(s)
        a = self.add(f"detect: {len(portable)} portable rules, kubetrail", "s", ours,
                     higher_is_better=False, note="whole process: lake open, rules, alerts written")
        b = self.add(f"detect: {len(portable)} portable rules, DuckDB", "s", theirs,
                     higher_is_better=False, note="whole process: Python start, views, queries")
        self.add("detect: DuckDB / kubetrail time", "x",
                 [y / x for x, y in zip(a.values, b.values)], note="target > 1")

    # 6
    def timeline(self):
        runs = []
        for _ in range(max(self.args.runs, 5)):
            s, rss, _, _ = self.kubetrail("timeline", "--lake", self.lake, "--pod", POD,
                                          "--around", ATTACK, "--window", "2h")
            runs.append((s, rss))
        self.add("timeline: --pod, 2 h, depth 1", "s", [s for s, _ in runs],
                 higher_is_better=False, note="whole process; target < 1 s")
        self.add("timeline: peak RSS", "MB", [r / 1e6 for _, r in runs], higher_is_better=False)

    # 7
    def object_storage(self):
        script = REPO / "scripts" / "s3-server"
        server = self.work / "s3-server"
        shutil.rmtree(server, ignore_errors=True)
        started = subprocess.run([script, "start", server], capture_output=True, text=True)
        if started.returncode != 0:
            self.notes.append(f"S3: skipped, {started.stderr.strip()}")
            return
        port = started.stdout.strip().splitlines()[-1]
        env = {**os.environ, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
               "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
               "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
               "AWS_EC2_METADATA_DISABLED": "true"}
        inputs = [self.audit, *self.others, *self.scenario]
        events = 0
        for path in inputs:
            with open(path, "rb") as f:
                events += sum(1 for _ in f)
        window = ["--from", DAY_FROM, "--to", DAY_TO, "--format", "csv"]
        ingest = {"local": [], "s3": []}
        pack = {"local": [], "s3": []}
        try:
            for run in range(self.args.runs):
                bucket = f"bench-{run}"
                subprocess.run([script, "bucket", server, bucket], check=True, capture_output=True)
                local = self.work / f"s3-step-local-lake-{run}"
                shutil.rmtree(local, ignore_errors=True)
                # Alternately first, so neither side always meets a cold page cache.
                order = [("local", str(local), None), ("s3", f"s3://{bucket}/lake", env)]
                if run % 2:
                    order.reverse()
                for side, lake, side_env in order:
                    ingest[side].append(measure(
                        [self.kt, "ingest", "file", "--quiet", "--lake", lake, *inputs], side_env).seconds)
                for side, lake, side_env in order:
                    pack[side].append(measure(
                        [self.kt, "detect", "run", "--lake", lake, *window], side_env).seconds)
                shutil.rmtree(local, ignore_errors=True)
        finally:
            subprocess.run([script, "stop", server], capture_output=True)
        a = self.add("s3: ingest into a local directory", "events/s",
                     [events / s for s in ingest["local"]], note=f"{events:,} events, {len(inputs)} files")
        b = self.add("s3: ingest into S3 (moto on 127.0.0.1)", "events/s",
                     [events / s for s in ingest["s3"]])
        self.add("s3: S3 / local ingest events/s", "x",
                 [y / x for x, y in zip(a.values, b.values)], note="target >= 0.8")
        c = self.add("s3: rule pack over the local lake", "s", pack["local"], higher_is_better=False)
        d = self.add("s3: rule pack over the S3 lake", "s", pack["s3"], higher_is_better=False)
        self.add("s3: local / S3 pack speed", "x", [x / y for x, y in zip(c.values, d.values)],
                 note="target >= 0.7")

    # 8
    def serving(self):
        latency_tool = self.kt.parent / "query-latency"
        if not latency_tool.exists():
            raise Failed(f"{latency_tool} is missing: build it (benches/run does)")
        # DuckDB reads the tables' files from the directory: only the current versions' stay.
        self.kubetrail("lake", "vacuum", "--lake", self.lake, "--retain", "0h", "--force")
        queries = self.serve_queries()
        tokens = self.work / "serve-tokens"
        tokens.unlink(missing_ok=True)
        token = self.kubetrail("token", "create", "bench", "--tokens-file", tokens).stdout.strip()
        server = subprocess.Popen(
            [self.kt, "serve", "--lake", self.lake, "--tokens-file", tokens, "--addr", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            line = server.stdout.readline()
            found = re.search(r"grpc://(\S+)", line)
            if not found:
                raise Failed(f"kubetrail serve did not start: {line.strip() or 'no output'}")
            url = f"http://{found.group(1)}"
            sides = {
                "server": [latency_tool, "--flight", url, "--token", token],
                "in-process": [latency_tool, "--lake", self.lake],
                "DuckDB": [self.python, __file__, "duck-latency", "--lake", self.lake,
                           "--threads", self.cores],
            }
            seconds = str(self.args.serve_seconds)
            measured = collections.defaultdict(list)
            rows = {}
            for run in range(self.args.runs):
                order = list(sides.items())
                # Each side first in turn: none always meets the page cache the others warmed.
                order = order[run % 3:] + order[:run % 3]
                for name, sql in queries.items():
                    for clients in [1, 8]:
                        for side, cmd in order:
                            out = json.loads(measure([*cmd, "--sql", sql, "--clients", clients,
                                                      "--seconds", seconds]).stdout)
                            measured[(name, clients, side)].append(out["latencies_s"])
                            if rows.setdefault(name, out["rows"]) != out["rows"]:
                                raise Failed(f"{name}: {side} returned {out['rows']} rows, "
                                             f"another side {rows[name]}")
            hwm = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{server.pid}/status").read_text())
        finally:
            server.terminate()
            server.wait()

        def percentile(xs, p):
            xs = sorted(xs)
            return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]

        for name in queries:
            for clients in [1, 8]:
                figures = {}
                for side in sides:
                    runs = measured[(name, clients, side)]
                    for stat, p in [("median", 50), ("p99", 99)]:
                        figures[(side, stat)] = self.add(
                            f"serve: {name}, {clients} client{'s' if clients > 1 else ''}, "
                            f"{side} {stat}", "ms", [percentile(r, p) * 1e3 for r in runs],
                            higher_is_better=False,
                            note=f"{rows[name]:,} rows; {statistics.median(len(r) for r in runs)} queries a run"
                            if (side, stat) == ("server", "median") else "")
                for stat in ["median", "p99"]:
                    a, b = figures[("in-process", stat)], figures[("server", stat)]
                    self.add(f"serve: {name}, {clients} client{'s' if clients > 1 else ''}, "
                             f"server / in-process {stat}", "x",
                             [y / x for x, y in zip(a.values, b.values)], higher_is_better=False,
                             note="target <= 1.10" if rows[name] < 100_000 else "")
        if hwm:
            self.add("serve: server peak RSS", "MB", [int(hwm.group(1)) * 1024 / 1e6],
                     higher_is_better=False)

    def serve_queries(self):
        """The statements the serving step times, written to files: two rules of the pack as
        they are (a filter, and a correlation over the three streams with windows), and the
        shape of a timeline (one pod's rows of every stream in two hours, in time order)."""
        import yaml

        folder = self.work / "serve-queries"
        folder.mkdir(exist_ok=True)
        queries = {}
        for rule in ["api-access/auth-failure-burst", "correlations/exec-then-shell-then-egress"]:
            path = REPO / "detections" / "rules" / f"{rule}.yaml"
            name = f"rule {rule.split('/')[1]}"
            queries[name] = folder / f"{rule.split('/')[1]}.sql"
            queries[name].write_text(yaml.safe_load(path.read_text())["query"])
        namespace, pod = POD.split("/")
        attack = datetime.datetime.fromisoformat(ATTACK.replace("Z", "+00:00"))
        lo, hi = [(attack + datetime.timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ")
                  for h in (-1, 1)]
        window = f"event_time >= '{lo}' AND event_time < '{hi}'"
        queries["timeline, one pod, 2 h"] = folder / "timeline.sql"
        queries["timeline, one pod, 2 h"].write_text(f"""\
SELECT event_time, 'audit' AS stream, user_name AS actor, verb AS action,
  concat_ws('/', resource, subresource, name) AS object, src_ip, NULL AS dst_ip, _source, _offset
FROM k8s_audit
WHERE namespace = '{namespace}' AND pod = '{pod}' AND {window}
UNION ALL
SELECT event_time, 'flow', concat_ws('/', src_namespace, src_pod), verdict,
  concat_ws('/', dst_namespace, dst_pod), src_ip, dst_ip, _source, _offset
FROM network_flows
WHERE ((src_namespace = '{namespace}' AND src_pod = '{pod}')
    OR (dst_namespace = '{namespace}' AND dst_pod = '{pod}')) AND {window}
UNION ALL
SELECT event_time, 'runtime', user_name, event_type, coalesce("binary", file_path, rule),
  src_ip, dst_ip, _source, _offset
FROM runtime_events
WHERE namespace = '{namespace}' AND pod = '{pod}' AND {window}
ORDER BY event_time, stream, _source, _offset
""")
        return queries

    # 9
    def cluster(self):
        script = REPO / "scripts" / "ballista-cluster"
        pack = ["detect", "run", "--lake", self.lake, "--from", DAY_FROM, "--to", DAY_TO,
                "--format", "csv"]
        # The executors log each task's plan with its metrics after the run; the scheduler
        # each job's planning time.
        env = {**os.environ, "KUBETRAIL": str(self.kt), "KUBETRAIL_LOG":
               "warn,ballista_scheduler=info,ballista_executor=info,ballista_executor::execution_engine=debug"}
        local = []
        for _ in range(self.args.runs):
            m = self.kubetrail(*pack)
            local.append(m.seconds)
            alerts = sorted(m.stdout.splitlines())
        base = self.add("cluster: rule pack in process", "s", local, higher_is_better=False)
        for executors in (1, 2):
            home = self.work / f"cluster-{executors}"
            shutil.rmtree(home, ignore_errors=True)
            started = subprocess.run([script, "start", home, str(executors)], env=env,
                                     capture_output=True, text=True)
            if started.returncode != 0:
                raise Failed(f"ballista-cluster: {started.stderr.strip()}")
            engine = started.stdout.strip()
            logs = [home / "scheduler.log", *(home / f"executor-{i}.log" for i in range(1, executors + 1))]
            seconds, planning, scan, shuffle, scanned = [], [], [], [], [[] for _ in range(executors)]
            try:
                for _ in range(self.args.runs):
                    offsets = [log.stat().st_size for log in logs]
                    m = self.kubetrail(*pack, "--engine", engine)
                    if sorted(m.stdout.splitlines()) != alerts:
                        raise Failed(f"cluster of {executors}: other alerts than in process")
                    seconds.append(m.seconds)
                    texts = [log.read_bytes()[at:].decode(errors="replace") for log, at in zip(logs, offsets)]
                    planning.append(sum(duration_seconds(d) for d in
                                        re.findall(r"planning took (\S+)", texts[0])))
                    metrics = [executor_metrics(t) for t in texts[1:]]
                    scan.append(sum(x["scan_seconds"] for x in metrics))
                    shuffle.append(sum(x["shuffle_write_seconds"] for x in metrics))
                    for i, x in enumerate(metrics):
                        scanned[i].append(x["bytes_scanned"] / 1e6)
            finally:
                subprocess.run([script, "stop", home], capture_output=True)
            f = self.add(f"cluster: rule pack on {executors} executor(s)", "s", seconds,
                         higher_is_better=False, note="whole process, client included")
            self.add(f"cluster: in process / {executors} executor(s) speed", "x",
                     [x / y for x, y in zip(base.values, f.values)])
            self.add(f"cluster: {executors} executor(s): scheduler planning", "s", planning,
                     higher_is_better=False, note="sum over the pack's jobs")
            self.add(f"cluster: {executors} executor(s): Parquet scan time", "s", scan,
                     higher_is_better=False, note="sum over tasks, all executors")
            self.add(f"cluster: {executors} executor(s): shuffle write time", "s", shuffle,
                     higher_is_better=False, note="sum over tasks, all executors")
            for i, mb in enumerate(scanned):
                self.add(f"cluster: {executors} executor(s): executor {i + 1} scanned", "MB", mb)

    def report(self):
        info = machine()
        print(f"\nkubetrail e2e: {self.args.events:,} audit events, {info['cores']} cores, "
              f"{info['memory_bytes'] / 2**30:.1f} GiB, {info['cpu']}, commit {info['commit']}, "
              f"DuckDB {info['duckdb']}, {self.args.runs} runs")
        width = max(len(f.name) for f in self.figures)
        print(f"{'':{width}}  {'median':>12}  {'min':>12}  {'max':>12}  unit")
        for f in self.figures:
            print(f"{f.name:{width}}  {fmt(f.median):>12}  {fmt(min(f.values)):>12}  "
                  f"{fmt(max(f.values)):>12}  {f.unit}{'  (' + f.note + ')' if f.note else ''}")
        for n in self.notes:
            print(f"note: {n}")
        result = {
            "events": self.args.events, "runs": self.args.runs, "threads": self.cores,
            "machine": info, "figures": [f.row() for f in self.figures], "notes": self.notes,
            "rules": getattr(self, "portable", None),
        }
        steps = "" if self.args.only == ALL_STEPS else "-" + self.args.only.replace(",", "-")
        out = Path(self.args.json or self.work.parent / f"results-{self.args.events}{steps}.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"written: {out}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command")
    c = sub.add_parser("duck-convert", help=argparse.SUPPRESS)
    c.add_argument("--input", required=True)
    c.add_argument("--output", required=True)
    c.add_argument("--threads", type=int, required=True)
    k = sub.add_parser("duck-copy", help=argparse.SUPPRESS)
    k.add_argument("--input", required=True)
    k.add_argument("--output", required=True)
    k.add_argument("--threads", type=int, required=True)
    d = sub.add_parser("duck-latency", help=argparse.SUPPRESS)
    d.add_argument("--lake", required=True)
    d.add_argument("--sql", required=True)
    d.add_argument("--clients", type=int, required=True)
    d.add_argument("--seconds", type=float, required=True)
    d.add_argument("--warmup", type=int, default=2)
    d.add_argument("--threads", type=int, required=True)
    r = sub.add_parser("duck-rules", help=argparse.SUPPRESS)
    r.add_argument("--spec", required=True)
    r.add_argument("--threads", type=int, required=True)
    p.add_argument("--kubetrail", default=str(REPO / "target" / "release" / "kubetrail"))
    p.add_argument("--events", type=int, default=1_000_000, help="audit events (default 1M)")
    p.add_argument("--runs", type=int, default=3, help="runs per figure (default 3)")
    p.add_argument("--threads", type=int, default=0, help="DuckDB threads (default: all cores)")
    p.add_argument("--kafka-events", type=int, default=200_000,
                   help="events sent through the broker (default 200k)")
    p.add_argument("--serve-seconds", type=float, default=5,
                   help="seconds each client queries in the serve step (default 5)")
    p.add_argument("--only", default=ALL_STEPS,
                   help="comma-separated steps (default: all)")
    p.add_argument("--work", help="working directory (default target/kubetrail-e2e/N)")
    p.add_argument("--json", help="where to write the results (default "
                   "target/kubetrail-e2e/results-N.json, or results-N-STEPS.json with --only)")
    args = p.parse_args()
    if args.command == "duck-convert":
        return duck_convert(args)
    if args.command == "duck-copy":
        return duck_copy(args)
    if args.command == "duck-rules":
        return duck_rules(args)
    if args.command == "duck-latency":
        return duck_latency(args)
    if args.events <= 0 or args.runs <= 0:
        p.error("--events and --runs must be positive")
    if not Path(args.kubetrail).exists():
        p.error(f"{args.kubetrail} does not exist: build it (cargo build --release) or use benches/run")
    steps = set(args.only.split(","))
    unknown = steps - set(ALL_STEPS.split(","))
    if unknown:
        p.error(f"unknown step(s): {', '.join(sorted(unknown))}")
    b = Bench(args)
    try:
        b.generate()
        if "ingest" in steps:
            b.ingest_vs_duckdb()
        if steps & {"detect", "timeline", "serve", "cluster"}:
            b.build_lake()
        if "kafka" in steps:
            b.kafka()
        if "kafka-mock" in steps:
            b.kafka_mock()
        if "detect" in steps:
            b.detections()
        if "timeline" in steps:
            b.timeline()
        if "s3" in steps:
            b.object_storage()
        if "serve" in steps:
            b.serving()
        if "cluster" in steps:
            b.cluster()
    except Failed as e:
        print(f"e2e: {e}", file=sys.stderr)
        if b.figures:
            b.report()
        return 1
    b.report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
