//! Build script: gives the C library its SONAME, and tells the store conformance suite whether to
//! run its PostgreSQL half.
//!
//! C programs link `-lservership` and record the SONAME `libservership.so.0` as what they need at
//! run time, so a later `0.x` install (which keeps the `.so.0` name while the C ABI is compatible)
//! replaces the library without relinking them. `make install` lays out
//! `libservership.so.0.1.0` with the `.so.0` and `.so` symlinks.
//!
//! Linux only (other systems name shared libraries differently), and not for the Python
//! extension (`--features python`): that file is `servership/_native.abi3.so`, loaded by path
//! by the interpreter and never linked by name, so a C library's SONAME on it would only mislead.
//!
//! `tests/store_conformance.rs`: with `SERVERSHIP_TEST_POSTGRES` set, or under CI (`CI=true`,
//! where a missing database must fail the run), the `postgres::*` tests are compiled as ordinary
//! tests; otherwise as ignored, so `cargo test` lists them as not run instead of passing them
//! silently.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    let python = std::env::var_os("CARGO_FEATURE_PYTHON").is_some();
    if linux && !python {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libservership.so.0");
    }

    println!("cargo:rustc-check-cfg=cfg(servership_test_postgres)");
    println!("cargo:rerun-if-env-changed=SERVERSHIP_TEST_POSTGRES");
    println!("cargo:rerun-if-env-changed=CI");
    let configured = std::env::var_os("SERVERSHIP_TEST_POSTGRES").is_some_and(|v| !v.is_empty());
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    if configured || ci {
        println!("cargo:rustc-cfg=servership_test_postgres");
    }
}
