//! PyO3 bindings: the native module `servership._native`, wrapped by the pure-Python package in
//! `python/servership/`. Built only with the `python` feature (maturin turns it on), so the C
//! library never links libpython.
//!
//! Conventions every binding here follows (see `docs/developing.md`, "Adding a binding"):
//!
//! - a core [`Error`](crate::Error) becomes a Python exception through [`errors::to_py`], which
//!   picks the class from the Matrix errcode (one hierarchy under `servership.ServershipError`);
//! - Python values become [`Value`](crate::Value)s through [`convert::to_value`] (strict: no floats,
//!   no non-string keys, no lone surrogates, bounded depth) and back through
//!   [`convert::to_python`];
//! - JSON text may come as `bytes` or `str` ([`convert::JsonInput`]);
//! - work that does not touch Python objects runs inside `py.detach` so other threads can run;
//! - classes are `frozen` (immutable, shareable between threads) with a `__repr__` that never shows
//!   secrets, and everything is mirrored in `python/servership/_native.pyi` (checked by
//!   `mypy.stubtest` in CI).

mod args;
mod auth;
mod convert;
mod decision;
mod discovery;
mod errors;
mod event;
mod event_signing;
mod ids;
mod invite;
mod json;
mod pseudouser;
mod room_state;
mod s2s;
mod signing;
mod store;
mod subscription;
mod x_matrix;

use pyo3::prelude::*;

/// Native core of servership (use the `servership` package, which re-exports all of this).
#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("MAX_DEPTH", crate::json::MAX_DEPTH)?;
    m.add("MAX_SAFE_INTEGER", crate::json::MAX_SAFE_INTEGER)?;
    errors::register(m)?;
    json::register(m)?;
    signing::register(m)?;
    event::register(m)?;
    event_signing::register(m)?;
    ids::register(m)?;
    x_matrix::register(m)?;
    invite::register(m)?;
    discovery::register(m)?;
    decision::register(m)?;
    room_state::register(m)?;
    pseudouser::register(m)?;
    auth::register(m)?;
    s2s::register(m)?;
    subscription::register(m)?;
    store::register(m)?;
    Ok(())
}
