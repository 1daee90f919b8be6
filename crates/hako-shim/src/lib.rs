//! `hako-shim`: the per-container monitor process (hako's conmon / containerd-shim).
//!
//! The engine talks to a running shim through [`protocol`].

pub mod protocol;
