//! One module per target. Every body takes the raw input and panics, with a sentence that
//! says which invariant broke, when hako got it wrong; an input hako refuses with an error
//! is fine (the error's text is still formatted: that is code too).

mod api_request;
mod dockerfile;
mod go_template;
mod image_reference;
mod image_spec;
mod runtime_config;
mod seccomp_oracle;
mod seccomp_profile;
mod tar_unpack;

pub use api_request::api_request;
pub use dockerfile::dockerfile;
pub use go_template::go_template;
pub use image_reference::image_reference;
pub use image_spec::image_spec;
pub use runtime_config::runtime_config;
pub use seccomp_profile::seccomp_profile;
pub use tar_unpack::tar_unpack;
