//! Fuzz target `s2s_negotiation`: see `servership_fuzz::checks::s2s_negotiation` and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| servership_fuzz::checks::s2s_negotiation(data));
