//! Per-layer progress like Docker's: one bar per layer on a terminal, otherwise one
//! line per finished step (`abc123def456: Pull complete`).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use hako_image::registry::{ProgressEvent, ProgressStatus};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Shows layer progress; `quiet` shows nothing.
#[derive(Debug)]
pub struct LayerProgress {
    quiet: bool,
    /// Step lines go to stderr (`run` pulling: stdout is the container's).
    lines_to_stderr: bool,
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl LayerProgress {
    pub fn new(quiet: bool) -> LayerProgress {
        let multi = (!quiet && std::io::stderr().is_terminal()).then(MultiProgress::new);
        LayerProgress {
            quiet,
            lines_to_stderr: false,
            multi,
            bars: Mutex::new(HashMap::new()),
        }
    }

    /// Like [`LayerProgress::new`], with the step lines on stderr.
    pub fn on_stderr() -> LayerProgress {
        LayerProgress {
            lines_to_stderr: true,
            ..LayerProgress::new(false)
        }
    }

    /// The callback for the library (called from several threads).
    pub fn event(&self, e: ProgressEvent) {
        if self.quiet {
            return;
        }
        let Some(multi) = &self.multi else {
            let done = matches!(
                e.status,
                ProgressStatus::PullComplete
                    | ProgressStatus::AlreadyExists
                    | ProgressStatus::Pushed
                    | ProgressStatus::LayerAlreadyExists
                    | ProgressStatus::Mounted
            );
            if done && self.lines_to_stderr {
                let _ = writeln!(std::io::stderr().lock(), "{}: {}", e.id, e.status);
            } else if done {
                let _ = writeln!(std::io::stdout().lock(), "{}: {}", e.id, e.status);
            }
            return;
        };
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        let bar = bars.entry(e.id.clone()).or_insert_with(|| {
            let b = multi.add(ProgressBar::new(e.total.max(1)));
            if let Ok(s) =
                ProgressStyle::with_template("{prefix}: {msg} [{bar:30}] {bytes}/{total_bytes}")
            {
                b.set_style(s.progress_chars("=> "));
            }
            b.set_prefix(e.id.clone());
            b
        });
        if e.total > 0 {
            bar.set_length(e.total);
        }
        bar.set_position(e.current);
        bar.set_message(e.status.as_str());
        if matches!(
            e.status,
            ProgressStatus::PullComplete
                | ProgressStatus::AlreadyExists
                | ProgressStatus::Pushed
                | ProgressStatus::LayerAlreadyExists
                | ProgressStatus::Mounted
        ) {
            bar.finish_with_message(e.status.as_str());
        }
    }
}
