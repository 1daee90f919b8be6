//! Progress bars for long reads (`load`, `import`): shown only when stderr is a terminal
//! and the input is big or of unknown size, so scripts and logs stay clean.

use std::io::{IsTerminal, Read};

use indicatif::{ProgressBar, ProgressStyle};

/// Inputs smaller than this finish before a bar is worth drawing.
const MIN_BYTES: u64 = 8 << 20;

/// A bar (or nothing) counting the bytes read through [`Progress::wrap`].
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar for reading `len` bytes (None: unknown), labelled `what`.
    pub fn new(what: &str, len: Option<u64>, quiet: bool) -> Progress {
        let show = !quiet && std::io::stderr().is_terminal() && len.is_none_or(|l| l >= MIN_BYTES);
        let bar = show.then(|| {
            let (bar, template) = match len {
                Some(l) => (
                    ProgressBar::new(l),
                    "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
                ),
                None => (
                    ProgressBar::new_spinner(),
                    "{msg} {spinner} {bytes} {bytes_per_sec}",
                ),
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(what.to_string());
            bar
        });
        Progress { bar }
    }

    /// `r`, counting into the bar.
    pub fn wrap<'a, R: Read + 'a>(&self, r: R) -> Box<dyn Read + 'a> {
        match &self.bar {
            Some(b) => Box::new(b.wrap_read(r)),
            None => Box::new(r),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
