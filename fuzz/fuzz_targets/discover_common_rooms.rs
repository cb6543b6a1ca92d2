//! Fuzz target `discover_common_rooms`: see `servership_fuzz::checks::discover_common_rooms` and
//! docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| servership_fuzz::checks::discover_common_rooms(data));
