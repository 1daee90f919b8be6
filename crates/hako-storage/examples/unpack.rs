//! `cargo run --release --example unpack -- LAYER.tar DEST_DIR`: applies a layer tar the
//! way the overlay2 driver does and prints the digests and the time taken (for benches).

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, tar, dest] = args.as_slice() else {
        eprintln!("usage: unpack LAYER.tar DEST_DIR");
        std::process::exit(2);
    };
    let start = std::time::Instant::now();
    let file = std::fs::File::open(tar).expect("open layer");
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let d = hako_storage::unpack::apply(
        &mut reader,
        std::path::Path::new(dest),
        hako_storage::WhiteoutMode::Overlay,
    )
    .expect("unpack");
    println!(
        "{} {} bytes in {:?}",
        d.diff_id,
        d.diff_size,
        start.elapsed()
    );
}
