//! Fuzz target `audit_response`: see `servership_fuzz::checks::audit_response` and
//! docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| servership_fuzz::checks::audit_response(data));
