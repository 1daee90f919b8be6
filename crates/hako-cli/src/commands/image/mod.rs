//! Image commands: `images`, `image inspect`, `import`, `load`, `save`, `tag`, `rmi`,
//! `history`, `image prune`.

pub mod history;
pub mod import;
pub mod inspect;
pub mod list;
pub mod load;
pub mod prune;
pub mod remove;
pub mod save;
pub mod tag;
