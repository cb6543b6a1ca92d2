//! Fuzz target `identifiers`: see `servership_fuzz::checks::identifiers` and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| servership_fuzz::checks::identifiers(data));
