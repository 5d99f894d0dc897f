//! `kubetrail demo`: the built-in incident scenario written in its native formats, sent
//! through an in-process Kafka cluster (one topic per stream) and ingested by the real
//! `ingest kafka` path, then the questions a responder asks first.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kubetrail_detections::{run_rules, write_alerts, Grouping, RulePack, Watchlists};
use kubetrail_ingest::kafka::embedded::EmbeddedKafka;
use kubetrail_ingest::kafka::{produce, Produce};
use kubetrail_ingest::{ingest_kafka, IngestMetrics, InputPath, KafkaIngest, TopicSpec};
use kubetrail_lake::Lake;
use kubetrail_query::timeline::{
    self, export, parse_time, Entity, TimelineFormat, TimelineRequest, Window,
};
use kubetrail_query::{write_batches, LakeSession, OutputFormat};
use kubetrail_schemas::{DecodeOptions, Table};

use crate::Outcome;

use crate::cli::DemoCmd;
use crate::ingest::print_totals;
use crate::redaction::redactor;

/// The demo's topics, one per stream.
const STREAM_TOPICS: [(Table, &str); 3] = [
    (Table::K8sAudit, "k8s-audit"),
    (Table::NetworkFlows, "network-flows"),
    (Table::RuntimeEvents, "runtime-events"),
];

/// The scenario's compromised pod.
const VICTIM: &str = "shop/api-7d9f8b6c5-x2k4p";

/// The questions, each with the SQL that answers it.
const QUESTIONS: [(&str, &str); 3] = [
    (
        "Who touched secrets, apart from kubelets?",
        "SELECT event_time, user_name, src_ip, user_agent, verb, namespace, name, response_code
         FROM k8s_audit
         WHERE resource = 'secrets' AND user_name NOT LIKE 'system:node:%'
         ORDER BY event_time",
    ),
    (
        "Which workloads talked to the metadata service or outside the cluster?",
        "SELECT src_namespace, src_pod, dst_ip, dst_port, count(*) AS flows,
                min(event_time) AS first_seen, max(event_time) AS last_seen
         FROM network_flows
         WHERE src_pod IS NOT NULL AND (dst_ip = '169.254.169.254' OR NOT is_private_ip(dst_ip))
         GROUP BY src_namespace, src_pod, dst_ip, dst_port
         ORDER BY first_seen",
    ),
    (
        "Is the stolen secret's value in the lake? (it must not be)",
        "SELECT name, json_get_str(response_object, 'data', 'password') AS password_in_lake
         FROM k8s_audit WHERE resource = 'secrets' AND name = 'db-credentials'",
    ),
];

pub async fn run(cmd: DemoCmd) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let temporary = || {
        let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
        std::env::temp_dir().join(format!("kubetrail-demo-{stamp}-{}", std::process::id()))
    };
    // A directory holds everything; a lake on object storage leaves the files local.
    let (base, lake) = match cmd.lake {
        Some(location) if Lake::open(&location)?.local_dir().is_none() => {
            (temporary(), Lake::open(&location)?)
        }
        Some(dir) => {
            let base = PathBuf::from(dir);
            let lake = Lake::open(&base.join("lake").to_string_lossy())?;
            (base, lake)
        }
        None => {
            let base = temporary();
            let lake = Lake::open(&base.join("lake").to_string_lossy())?;
            (base, lake)
        }
    };
    let samples_dir = base.join("samples");
    println!(
        "== 1. The evidence: an hour of cluster {} with an attack in it",
        kubetrail_samples::cluster::CLUSTER
    );
    let files = kubetrail_samples::write_sample_set(&samples_dir, kubetrail_samples::SEED)?;
    println!(
        "   {} files in native formats under {}",
        files.len(),
        samples_dir.display()
    );

    println!("\n== 2. Stream it through Kafka (an in-process cluster, one topic per stream)");
    let topics: Vec<(&str, i32)> = STREAM_TOPICS.iter().map(|(_, t)| (*t, 3)).collect();
    let kafka = EmbeddedKafka::start(3, &topics)?;
    let brokers = kafka.bootstrap_servers();
    for (table, topic) in STREAM_TOPICS {
        let paths: Vec<InputPath> = files
            .iter()
            .filter(|f| f.table == table.name())
            .map(|f| InputPath::File(samples_dir.join(f.name)))
            .collect();
        let options = Produce {
            brokers: brokers.clone(),
            topic: topic.to_owned(),
            rate: None,
            // One file's records in order in one partition: a VPC log's header comes first.
            key_by_file: true,
            client_options: Default::default(),
        };
        let report = tokio::task::spawn_blocking(move || produce(&options, &paths)).await??;
        println!("   {:>5} records -> topic {topic}", report.records);
    }

    println!("\n== 3. Ingest: consumer group -> decode (format recognised, secrets redacted) -> Delta commits with offsets");
    let topics = STREAM_TOPICS
        .iter()
        .map(|(_, t)| TopicSpec {
            name: (*t).to_owned(),
            format: None,
        })
        .collect();
    let mut options = KafkaIngest::new(&brokers, "kubetrail-demo", topics);
    options.decode = DecodeOptions {
        cluster: None,
        redactor: redactor(&lake, &Default::default(), &[]).await?,
    };
    options.until_caught_up = true;
    options.linger = Duration::from_secs(1);
    options.compact_every = None;
    // A lone member of a fresh group: no reason to wait out the default timeouts.
    options
        .client_options
        .set("session.timeout.ms", "6000")
        .map_err(anyhow::Error::msg)?;
    let report = ingest_kafka(&lake, options, IngestMetrics::new(), std::future::pending()).await?;
    println!(
        "   {} records in {} commits, every one with its partitions' offsets",
        report.records, report.commits
    );
    let totals = report.rows;
    print_totals(&totals);

    println!("\n== 4. Questions a responder asks first");
    let session = LakeSession::open(&lake).await?;
    let mut stdout = std::io::stdout();
    for (question, sql) in QUESTIONS {
        println!("\n-- {question}");
        let batches = session.query(sql).await?;
        write_batches(&batches, OutputFormat::Table, &mut stdout)?;
    }

    println!("\n== 5. Detections: the built-in rule pack over the scenario's hour");
    let hour = Window::new(
        parse_time("2026-11-20T09:00:00Z").map_err(anyhow::Error::msg)?,
        parse_time("2026-11-20T10:00:00Z").map_err(anyhow::Error::msg)?,
    )
    .map_err(anyhow::Error::msg)?;
    let pack = RulePack::builtin();
    let history = Duration::from_secs(14 * 86_400);
    let windowed = LakeSession::open_window(&lake, &hour, history).await?;
    let mut alerts: Vec<_> = run_rules(
        &windowed,
        &pack.rules,
        &hour,
        &Watchlists::default(),
        Grouping::Update,
    )
    .await
    .into_iter()
    .flat_map(|o| o.alerts)
    .collect();
    alerts.sort_by(|a, b| (a.first_seen, &a.rule_id).cmp(&(b.first_seen, &b.rule_id)));
    let written = write_alerts(&lake, &windowed, alerts.clone(), Vec::new())
        .await?
        .new
        .len();
    for a in &alerts {
        let time = timeline::rfc3339(a.first_seen);
        println!(
            "   {}  {:<8}  {:<38}  {}",
            time.get(11..19).unwrap_or(&time),
            a.severity,
            a.rule_id,
            a.entity
        );
    }
    println!(
        "   {} rules, {} alerts written to the alerts table",
        pack.rules.len(),
        written
    );

    println!("\n== 6. The compromised pod's timeline: every stream, in order, each line traceable to its row");
    let mut request = TimelineRequest::new(Entity::pod(VICTIM).map_err(anyhow::Error::msg)?);
    request.window = Some(
        Window::new(
            parse_time("2026-11-20T09:25:00Z").map_err(anyhow::Error::msg)?,
            parse_time("2026-11-20T09:45:00Z").map_err(anyhow::Error::msg)?,
        )
        .map_err(anyhow::Error::msg)?,
    );
    // A fresh session: it sees the alerts just written.
    let session = LakeSession::open(&lake).await?;
    let built = timeline::build(&session, &request).await?;
    for line in &built.lines {
        let time = timeline::rfc3339(line.time);
        let flag = if line.alert_ids.is_empty() { ' ' } else { '!' };
        println!(
            "   {}  {flag} {:<7}  {}",
            time.get(11..19).unwrap_or(&time),
            line.stream.name(),
            line.summary()
        );
    }
    let report = base.join("timeline.html");
    let mut html = std::io::BufWriter::new(std::fs::File::create(&report)?);
    export::write(&built, TimelineFormat::Html, &mut html)?;
    std::io::Write::flush(&mut html)?;
    println!("   ! marks the lines an alert stands on");
    println!(
        "   HTML report (self-contained, opens offline): {}",
        report.display()
    );

    let events: u64 = Table::EVENTS.iter().filter_map(|t| totals.get(t)).sum();
    println!(
        "\n== Done in {:.1} s: {events} events from {} files in three streams are in a Delta lake at {}",
        started.elapsed().as_secs_f64(),
        files.len(),
        lake.display()
    );
    println!("   Next: kubetrail shell --lake {}", lake.display());
    println!(
        "         kubetrail timeline --lake {} --pod {VICTIM} --around 2026-11-20T09:35:00Z --window 1h",
        lake.display()
    );
    println!(
        "         kubetrail sql --lake {} \"SELECT source, count(*) FROM events GROUP BY source\"",
        lake.display()
    );
    Ok(Outcome::Ok)
}
