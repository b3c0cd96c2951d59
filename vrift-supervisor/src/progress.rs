//! Progress on stderr for long work (ingest, building a view's layer or link farm, a run's
//! harvest and write-back, gc): on terminals only, never with `-q`, and drawn only once the
//! work has gone on for a while, so short work prints nothing at all.
//!
//! No thread is started: the bar is hidden until an update finds the delay passed, and
//! only then gets stderr as its target (a run forks its program from here, and a ticking
//! thread is best not running then).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

static QUIET: AtomicBool = AtomicBool::new(false);

/// `-q`: no progress anywhere.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// How long work goes on before its bar shows: 200 ms, or `VRIFT_PROGRESS_DELAY_MS` (for
/// tests).
fn delay() -> Duration {
    std::env::var("VRIFT_PROGRESS_DELAY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_millis(200))
}

/// True where a bar may be drawn: stderr is a terminal and `-q` was not given.
pub fn wanted() -> bool {
    !QUIET.load(Ordering::Relaxed) && std::io::stderr().is_terminal()
}

/// One piece of long work with a known length (entries, files, blobs).
pub struct Progress {
    /// None where no bar may be drawn.
    bar: Option<ProgressBar>,
    start: Instant,
    delay: Duration,
    shown: AtomicBool,
}

impl Progress {
    /// Work on `len` items, described by `what` ("building the view's layer").
    pub fn new(what: &str, len: u64) -> Progress {
        Progress::with_style(what, Some(len), "{msg} {bar:30} {pos}/{len} ({elapsed})")
    }

    /// Work of unknown length: a count and the time.
    pub fn counting(what: &str) -> Progress {
        Progress::with_style(what, None, "{spinner} {msg}: {pos} ({elapsed})")
    }

    /// `template`: an indicatif template (the ingest's styles use this too); `len` None
    /// for a spinner.
    pub fn with_style(what: &str, len: Option<u64>, template: &str) -> Progress {
        let bar = wanted().then(|| {
            let b = ProgressBar::with_draw_target(len, ProgressDrawTarget::hidden());
            b.set_style(ProgressStyle::with_template(template).expect("valid template"));
            b.set_message(what.to_string());
            b
        });
        Progress {
            bar,
            start: Instant::now(),
            delay: delay(),
            shown: AtomicBool::new(false),
        }
    }

    /// The bar, for updates beyond a count (a new style, a message).
    pub fn bar(&self) -> Option<&ProgressBar> {
        self.bar.as_ref()
    }

    /// `n` more items done.
    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
            self.show_if_due(b);
        }
    }

    /// `pos` items done.
    pub fn set_position(&self, pos: u64) {
        if let Some(b) = &self.bar {
            b.set_position(pos);
            self.show_if_due(b);
        }
    }

    pub fn set_length(&self, len: u64) {
        if let Some(b) = &self.bar {
            b.set_length(len);
        }
    }

    fn show_if_due(&self, b: &ProgressBar) {
        if !self.shown.load(Ordering::Relaxed) && self.start.elapsed() >= self.delay {
            self.shown.store(true, Ordering::Relaxed);
            b.set_draw_target(ProgressDrawTarget::stderr());
        }
    }

    /// Done: the bar, if drawn, is cleared.
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
