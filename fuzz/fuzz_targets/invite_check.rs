//! Fuzz target `invite_check`: see `servership_fuzz::checks::invite_check` and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| servership_fuzz::checks::invite_check(data));
