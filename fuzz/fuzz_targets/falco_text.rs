#![no_main]

use kubetrail_fuzz::decode;
use kubetrail_schemas::SourceFormat;

// Falco's text output (`<time>: <Priority> <output>`): records that are not an object.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if !data.trim_ascii_start().starts_with(b"{") {
        decode(SourceFormat::Falco, data)
    }
});
