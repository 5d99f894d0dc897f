#![no_main]

use kubetrail_fuzz::decode;
use kubetrail_schemas::SourceFormat;

libfuzzer_sys::fuzz_target!(|data: &[u8]| decode(SourceFormat::AwsVpcFlow, data));
