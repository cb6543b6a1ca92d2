//! Fuzz target `x_matrix_header`: see `servership_fuzz::checks::x_matrix_header` and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| servership_fuzz::checks::x_matrix_header(data));
