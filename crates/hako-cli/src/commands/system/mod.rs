//! `system df`, `info`, `version`.

pub mod df;
pub mod info;
pub mod version;
