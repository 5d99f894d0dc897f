//! kubetrail-samples: native-format sample files written by a deterministic generator.
//!
//! It knows nothing of kubetrail's decoders, so the decoders are tested against input
//! that was not shaped by them. Three products:
//! - [`Scenario`]: an hour of a cluster with an attack in the middle, in all streams;
//! - [`write_sample_set`]: that scenario and background in every native format, with a
//!   manifest of how many events each file holds (`samples/data/` is its output);
//! - [`volume`]: millions of events for benchmarks.

pub mod cluster;
pub mod model;
pub mod render;
pub mod rng;
pub mod scenario;
pub mod volume;

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use scenario::Scenario;

/// The seed of the committed sample set.
pub const SEED: u64 = 20261120;

/// One file of the sample set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleFile {
    pub name: &'static str,
    /// The kubetrail format name (`k8s-audit`, `hubble`, …).
    pub format: &'static str,
    pub table: &'static str,
    /// Events the file holds: rows it must become.
    pub events: usize,
    pub content: String,
}

/// Renders the sample set in memory.
pub fn sample_set(seed: u64) -> Vec<SampleFile> {
    let s = Scenario::generate(seed);
    let lines = |values: Vec<serde_json::Value>| -> String {
        values.iter().map(|v| format!("{v}\n")).collect()
    };
    let background: Vec<_> = s
        .api_calls
        .iter()
        .filter(|c| c.attack_step.is_none())
        .cloned()
        .collect();
    let mut vpc = format!("{}\n", render::VPC_HEADER);
    for f in &s.flows {
        vpc.push_str(&render::vpc_flow_line(f));
        vpc.push('\n');
    }
    for line in render::vpc_status_lines(scenario::start_time()) {
        vpc.push_str(&line);
        vpc.push('\n');
    }
    let eks = &background[..15];
    let aks = &background[15..25];
    let gke = &background[25..40];
    let listed = &background[40..60];
    let other_flows = &s.flows[..30];
    vec![
        SampleFile {
            name: "k8s-audit.jsonl",
            format: "k8s-audit",
            table: "k8s_audit",
            events: s.api_calls.len(),
            content: lines(s.api_calls.iter().map(render::audit_event).collect()),
        },
        SampleFile {
            name: "k8s-audit-eventlist.json",
            format: "k8s-audit",
            table: "k8s_audit",
            events: listed.len(),
            content: format!("{:#}\n", render::event_list(listed)),
        },
        SampleFile {
            name: "eks-cloudwatch.json",
            format: "k8s-audit",
            table: "k8s_audit",
            events: eks.len(),
            content: format!("{}\n", render::eks_batch(eks)),
        },
        SampleFile {
            name: "aks-diagnostics.json",
            format: "k8s-audit",
            table: "k8s_audit",
            events: aks.len(),
            content: format!(
                "{:#}\n",
                serde_json::json!({"records": aks.iter().map(render::aks_record).collect::<Vec<_>>()})
            ),
        },
        SampleFile {
            name: "gke-audit.jsonl",
            format: "k8s-audit",
            table: "k8s_audit",
            events: gke.len(),
            content: lines(gke.iter().map(render::gke_entry).collect()),
        },
        SampleFile {
            name: "hubble.jsonl",
            format: "hubble",
            table: "network_flows",
            events: s.flows.len(),
            content: lines(s.flows.iter().map(render::hubble_flow).collect()),
        },
        SampleFile {
            name: "aws-vpc-flow.log",
            format: "aws-vpc-flow",
            table: "network_flows",
            events: s.flows.len() + 2,
            content: vpc,
        },
        SampleFile {
            name: "gcp-vpc-flow.jsonl",
            format: "gcp-vpc-flow",
            table: "network_flows",
            events: other_flows.len(),
            content: lines(other_flows.iter().map(render::gcp_flow).collect()),
        },
        SampleFile {
            name: "calico-flow.jsonl",
            format: "calico",
            table: "network_flows",
            events: other_flows.len(),
            content: lines(other_flows.iter().map(render::calico_flow).collect()),
        },
        SampleFile {
            name: "tetragon.jsonl",
            format: "tetragon",
            table: "runtime_events",
            events: s.processes.len(),
            content: lines(s.processes.iter().map(render::tetragon_event).collect()),
        },
        SampleFile {
            name: "falco.jsonl",
            format: "falco",
            table: "runtime_events",
            events: s.alerts.len(),
            content: lines(s.alerts.iter().map(render::falco_alert).collect()),
        },
    ]
}

/// Writes the sample set and `MANIFEST.tsv` (file, format, table, events) into `dir`.
pub fn write_sample_set(dir: &Path, seed: u64) -> io::Result<Vec<SampleFile>> {
    fs::create_dir_all(dir)?;
    let files = sample_set(seed);
    let mut manifest = String::from("file\tformat\ttable\tevents\n");
    for f in &files {
        fs::write(dir.join(f.name), &f.content)?;
        manifest.push_str(&format!(
            "{}\t{}\t{}\t{}\n",
            f.name, f.format, f.table, f.events
        ));
    }
    fs::write(dir.join("MANIFEST.tsv"), manifest)?;
    Ok(files)
}

/// Flows and runtime events per audit event in benchmark volumes: a cluster's audit log is
/// its busiest stream once flows are aggregated per connection.
pub const OTHER_STREAMS_PER_AUDIT: u64 = 5;

/// The benchmark volume files for `n` audit events: `audit.jsonl` (k8s audit), and
/// `n / 5` each of `hubble.jsonl` (flows) and `tetragon.jsonl` (runtime events).
pub fn write_volume(dir: &Path, n: u64, seed: u64, days: i64) -> io::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir)?;
    let write = |name: &str, lines: &mut dyn Iterator<Item = String>| -> io::Result<PathBuf> {
        let path = dir.join(name);
        let mut out = io::BufWriter::new(fs::File::create(&path)?);
        for line in lines {
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        Ok(path)
    };
    let other = n / OTHER_STREAMS_PER_AUDIT;
    Ok(vec![
        write("audit.jsonl", &mut volume::audit_lines(n, seed, days))?,
        write(
            "hubble.jsonl",
            &mut volume::flow_lines(other, seed + 1, days),
        )?,
        write(
            "tetragon.jsonl",
            &mut volume::runtime_lines(other, seed + 2, days),
        )?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `samples/data/` is this generator's output: regenerate it with
    /// `cargo run -- samples --out samples/data` when the generator changes.
    #[test]
    fn committed_sample_data_matches_the_generator() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
        for f in sample_set(SEED) {
            let committed = fs::read_to_string(dir.join(f.name)).unwrap_or_default();
            assert!(
                committed == f.content,
                "samples/data/{} is stale: regenerate it",
                f.name
            );
        }
    }
}
