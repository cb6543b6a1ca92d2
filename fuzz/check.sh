#!/bin/sh
# Type-checks the fuzz crate (and the shared invariants in fuzz/src/checks.rs) with the stable
# toolchain, without libFuzzer or sanitizers. Cheap enough for CI; fuzzing itself is not
# (see docs/fuzzing.md). Uses the main crate's target/ so dependencies are shared.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$here/../target}" cargo check --bins --lib --locked
