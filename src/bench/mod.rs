//! Load generators built into the `sluice` binary.

pub mod log;
