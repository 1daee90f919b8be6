//! `hako-shim`: the per-container monitor process; see the library docs.

use clap::Parser;

fn main() {
    hako_shim::run(hako_shim::Options::parse());
}
