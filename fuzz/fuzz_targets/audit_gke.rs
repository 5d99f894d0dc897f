#![no_main]

use kubetrail_fuzz::{decode_in, Envelope};

libfuzzer_sys::fuzz_target!(|data: &[u8]| decode_in(Envelope::Gke, data));
