//! Fuzz target `members_rules`: see `servership_fuzz::checks::members_rules` and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| servership_fuzz::checks::members_rules(data));
