//! The build context as COPY, ADD and `RUN --mount=type=bind` see it.

use std::sync::Once;

use super::{BuildError, BuildOptions};
use crate::copy::SourceRoot;
use crate::ignore::Matcher;

/// The context directory with its `.dockerignore`, if the build has one.
pub(crate) struct Context {
    root: Option<SourceRoot>,
    announced: Once,
}

impl Context {
    pub(crate) fn new(opts: &BuildOptions) -> Result<Context, BuildError> {
        let root = match &opts.context {
            Some(dir) => {
                let m = Matcher::new(&opts.ignore).map_err(|e| BuildError::new(e.to_string()))?;
                Some(
                    SourceRoot::context(dir, m)
                        .map_err(|e| BuildError::new(format!("unable to prepare context: {e}")))?,
                )
            }
            None => None,
        };
        Ok(Context {
            root,
            announced: Once::new(),
        })
    }

    /// The context, or the error for a build without one.
    pub(crate) fn root(&self) -> Result<&SourceRoot, BuildError> {
        self.root.as_ref().ok_or_else(|| {
            BuildError::new(
                "no build context: the Dockerfile came from stdin without a context, so there is nothing to copy",
            )
        })
    }

    /// Runs `f` the first time the context is used (the "load build context" vertex).
    pub(crate) fn announce(&self, f: impl FnOnce()) {
        self.announced.call_once(f);
    }
}
