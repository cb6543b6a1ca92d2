//! Fuzz target `event_id`: see `servership_fuzz::checks::event_id` and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| servership_fuzz::checks::event_id(data));
