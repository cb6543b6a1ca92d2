//! Helpers shared by the integration tests: loading the vector files from `tests/vectors/`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod rng;

use servership::json::{self, Value};

/// Loads `tests/vectors/<name>` with the library's own strict parser (the files are strict JSON).
pub fn vectors(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    json::parse(&bytes).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// A string member of an object, or a panic naming it.
pub fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{key} must be a string in {v:?}"))
}
