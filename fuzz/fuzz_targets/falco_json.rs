#![no_main]

use kubetrail_fuzz::decode;
use kubetrail_schemas::SourceFormat;

// Falco's JSON output: records that start as an object.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.trim_ascii_start().starts_with(b"{") {
        decode(SourceFormat::Falco, data)
    }
});
