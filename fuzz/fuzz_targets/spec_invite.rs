//! Fuzz target `spec_invite`: see `servership_fuzz::checks::spec_invite` and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| servership_fuzz::checks::spec_invite(data));
