//! `hako-shim`: see the library docs.

fn main() {
    eprintln!("hako-shim: not implemented yet");
    std::process::exit(1);
}
