//! `include/servership.h` must be exactly what the pinned cbindgen (a dev-dependency) generates
//! from `src/capi/` with `cbindgen.toml`. Regenerate with `make header` or
//! `SERVERSHIP_BLESS=1 cargo test --test capi_header`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

#[test]
fn committed_header_matches_the_source() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).unwrap();
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_src(root.join("src/capi/mod.rs"))
        .with_config(config)
        .generate()
        .expect("cbindgen failed on src/capi")
        .write(&mut generated);
    let generated = String::from_utf8(generated).unwrap();
    assert!(generated.contains("servership_canonical_json"));

    let path = root.join("include/servership.h");
    if std::env::var_os("SERVERSHIP_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let first_difference = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| "(length)".to_owned(), |i| format!("line {}", i + 1));
        panic!(
            "include/servership.h is out of date at {first_difference}: run \
             `SERVERSHIP_BLESS=1 cargo test --test capi_header` (or `make header`) and commit it"
        );
    }
}
