//! `system df`, `info`, `prune`, `version`.

pub mod df;
pub mod info;
pub mod prune;
pub mod version;
