//! End-to-end tests: real containers, run as root, each scenario against hako-runtime and
//! against runc (the oracle). See `tests/README.md`.

mod common;

mod bad_input;
mod cli;
mod console;
mod cve_2019_5736;
mod harness;
mod hooks;
mod inside;
mod lifecycle;
mod parallel;
mod propagation;
