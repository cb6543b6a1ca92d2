//! Fuzz target `knock_edu`: see `servership_fuzz::checks::knock_edu` and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| servership_fuzz::checks::knock_edu(data));
