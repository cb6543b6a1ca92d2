//! Fuzz target `json_parse`: see `servership_fuzz::checks::json_parse` and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| servership_fuzz::checks::json_parse(data));
