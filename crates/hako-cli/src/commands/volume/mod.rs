//! `hako volume create|ls|inspect|rm|prune` over the engine's local volumes
//! (`<root>/volumes/<name>/_data`).

pub mod ls;
pub mod manage;
pub mod prune;
