//! Random container names in Docker's style (`adjective_surname`).

const LEFT: &[&str] = &[
    "admiring",
    "brave",
    "clever",
    "dazzling",
    "eager",
    "elegant",
    "festive",
    "focused",
    "gallant",
    "happy",
    "hopeful",
    "jolly",
    "keen",
    "kind",
    "lucid",
    "modest",
    "nifty",
    "optimistic",
    "peaceful",
    "quirky",
    "relaxed",
    "serene",
    "sharp",
    "stoic",
    "tender",
    "upbeat",
    "vibrant",
    "wizardly",
    "xenodochial",
    "youthful",
    "zealous",
];

const RIGHT: &[&str] = &[
    "babbage", "curie", "darwin", "einstein", "euler", "feynman", "franklin", "galileo", "hopper",
    "hypatia", "kepler", "knuth", "lamport", "lovelace", "mccarthy", "meitner", "noether",
    "pascal", "ritchie", "shannon", "thompson", "torvalds", "turing", "wozniak",
];

/// A name such as `focused_turing`; `attempt` > 0 appends a number, as Docker does after
/// a collision.
pub(crate) fn generate(random: &str, attempt: u32) -> String {
    let n = u64::from_str_radix(&random[..random.len().min(12)], 16).unwrap_or(0);
    let left = LEFT[usize::try_from(n % 1000).unwrap_or(0) % LEFT.len()];
    let right = RIGHT[usize::try_from((n / 1000) % 1000).unwrap_or(0) % RIGHT.len()];
    if attempt == 0 {
        format!("{left}_{right}")
    } else {
        format!("{left}_{right}{attempt}")
    }
}

/// Docker's rule for `--name`.
pub(crate) fn valid(name: &str) -> bool {
    let name = name.strip_prefix('/').unwrap_or(name);
    !name.is_empty()
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}
