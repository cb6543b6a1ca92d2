//! The C API (to be written). This is the only module with `unsafe`.
