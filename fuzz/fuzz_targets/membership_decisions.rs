//! Fuzz target `membership_decisions`: see `servership_fuzz::checks::membership_decisions` and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| servership_fuzz::checks::membership_decisions(data));
