//! `system check`, `df`, `events`, `info`, `prune`, `version`.

pub mod boot;
pub mod check;
pub mod df;
pub mod docs;
pub mod events;
pub mod info;
pub mod prune;
pub mod serve;
pub mod version;
