//! A progress bar on a terminal; nothing when output is piped.

use std::io::IsTerminal;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use kubetrail_ingest::{NoProgress, Progress};

struct Bar(ProgressBar);

impl Progress for Bar {
    fn start(&self, name: &str, total_bytes: Option<u64>) {
        // One bar serves every input in turn.
        self.0.reset();
        match total_bytes {
            Some(total) => {
                self.0.set_length(total);
                self.0.set_style(
                    ProgressStyle::with_template(
                        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
            }
            None => self.0.set_style(
                ProgressStyle::with_template("{msg} {spinner} {bytes} {bytes_per_sec}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        }
        self.0.set_position(0);
        self.0.set_message(name.to_owned());
    }
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

pub fn for_terminal(quiet: bool) -> Arc<dyn Progress> {
    if quiet || !std::io::stderr().is_terminal() {
        Arc::new(NoProgress)
    } else {
        Arc::new(Bar(ProgressBar::new(0)))
    }
}
