//! A Kafka cluster for benchmarks that must not measure a broker: librdkafka's in-process
//! mock cluster, in a process of its own so that the ingester's memory and CPU are measured
//! alone. Prints the bootstrap address, then serves until stdin closes.
//!
//! `mock-kafka TOPIC=PARTITIONS...`

use std::io::Read;

use kubetrail_ingest::kafka::embedded::EmbeddedKafka;

fn main() {
    let mut topics = Vec::new();
    for arg in std::env::args().skip(1) {
        let parsed = arg
            .split_once('=')
            .and_then(|(name, n)| Some((name.to_owned(), n.parse::<i32>().ok()?)));
        match parsed {
            Some((name, n)) if !name.is_empty() && n > 0 => topics.push((name, n)),
            _ => {
                eprintln!("mock-kafka: '{arg}': expected TOPIC=PARTITIONS");
                std::process::exit(2);
            }
        }
    }
    let specs: Vec<(&str, i32)> = topics.iter().map(|(t, n)| (t.as_str(), *n)).collect();
    let kafka = match EmbeddedKafka::start(1, &specs) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("mock-kafka: {e}");
            std::process::exit(1);
        }
    };
    println!("{}", kafka.bootstrap_servers());
    // Serves until whoever started it closes our stdin (or dies).
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}
