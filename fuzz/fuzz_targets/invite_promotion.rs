//! Fuzz target `invite_promotion`: see `servership_fuzz::checks::invite_promotion` and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| servership_fuzz::checks::invite_promotion(data));
