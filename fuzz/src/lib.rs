//! Support code for the servership fuzz targets: the invariants live in [`checks`], shared with
//! `cargo test` of the main crate (see `docs/fuzzing.md`).

pub mod checks;
