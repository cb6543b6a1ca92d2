//! Stores for C, one file per store of `crate::store`.

pub mod knocks;

pub use knocks::*;
