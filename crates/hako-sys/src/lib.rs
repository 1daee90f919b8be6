//! The only crate in hako that says `unsafe`.
