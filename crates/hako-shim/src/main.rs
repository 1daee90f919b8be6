//! `hako-shim`: the per-container monitor process; see the library docs.

use clap::Parser;

fn main() {
    if let Some(fd) = hako_shim::zygote::invoked_as() {
        hako_shim::zygote::serve(fd);
    }
    hako_shim::run(hako_shim::Options::parse());
}
