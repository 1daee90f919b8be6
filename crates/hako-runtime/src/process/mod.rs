//! The processes that make a container: the parent (`create`), the optional intermediate
//! (`hako:[1:INTER]`) and the init (`hako:[2:INIT]`), and the protocol between them.

pub mod channel;
pub mod exec;
pub mod init;
mod intermediate;
pub mod namespaces;
pub mod security;
mod spawn;

pub use spawn::{SpawnArgs, spawn};
