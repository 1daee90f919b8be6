//! How long compiling Docker's default profile takes, against a cache hit.
//!
//! `cargo run --release -p hako-seccomp --example compile_default [ROUNDS]`
//!
//! Prints the median and minimum of each: a full `compile`, a `compile_cached` miss (compile +
//! write), and a `compile_cached` hit (read + verify + decode). A measurement, not a test.

use std::time::{Duration, Instant};

use hako_seccomp::{DOCKER_DEFAULT_CAPABILITIES, compile, compile_cached, docker_default_profile};

fn stats(mut samples: Vec<Duration>) -> String {
    samples.sort();
    format!(
        "median {:>9.1?}  min {:>9.1?}",
        samples[samples.len() / 2],
        samples[0]
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: usize = std::env::args().nth(1).map_or(Ok(200), |s| s.parse())?;
    let caps: Vec<String> = DOCKER_DEFAULT_CAPABILITIES
        .iter()
        .map(|c| c.to_string())
        .collect();

    let started = Instant::now();
    let profile = docker_default_profile(&caps);
    let resolve = started.elapsed();

    let dir = std::env::temp_dir().join(format!("hako-seccomp-bench-{}", std::process::id()));
    let (mut full, mut miss, mut hit) = (Vec::new(), Vec::new(), Vec::new());
    let mut len = 0;
    for round in 0..rounds {
        let t = Instant::now();
        len = compile(&profile)?.instructions().len();
        full.push(t.elapsed());

        let round_dir = dir.join(round.to_string());
        let t = Instant::now();
        compile_cached(&profile, &round_dir)?;
        miss.push(t.elapsed());

        let t = Instant::now();
        let cached = compile_cached(&profile, &round_dir)?;
        hit.push(t.elapsed());
        assert_eq!(cached.instructions().len(), len);
    }
    std::fs::remove_dir_all(&dir)?;

    println!(
        "docker default profile, {} caps, {len} BPF instructions, {rounds} rounds",
        caps.len()
    );
    println!("resolve profile (first call) {resolve:>9.1?}");
    println!("compile                      {}", stats(full));
    println!("compile_cached, miss         {}", stats(miss));
    println!("compile_cached, hit          {}", stats(hit));
    Ok(())
}
