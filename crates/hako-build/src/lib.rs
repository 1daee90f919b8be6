//! hako's Dockerfile builder.
//!
//! ```text
//!  Dockerfile ─► parser (directives, continuations, heredocs) ─► instructions (typed, flags)
//!           build args, --target ─► plan (stages, ARG scoping, FROM resolution, needed stages)
//!  context dir / tar ─► Context (.dockerignore, in-context path rules, content hashes)
//!  plan + context + Worker (the engine: images, rootfs, runtime) ─► steps, cache, image
//! ```
//!
//! Everything above the [`Worker`](crate) line is pure: no root, no engine.

pub mod archive;
pub mod build;
pub mod classic;
pub mod config;
pub mod copy;
pub mod dispatch;
pub mod ignore;
pub mod instructions;
pub mod lint;
pub mod mounts;
pub mod parser;
pub mod progress;
pub mod shell;
pub mod worker;
