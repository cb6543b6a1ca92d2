//! PyO3 bindings (to be written).
