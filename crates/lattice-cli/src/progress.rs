//! Progress of a run: a bar over all steps of all batches on a terminal; on anything else
//! (CI logs, files) a plain log line every `every` steps. `--quiet` shows neither.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    every: u64,
    done: u64,
    total: u64,
}

impl Progress {
    /// `total` item-steps in all; without a terminal a line every `every` steps of a batch
    /// (0: about ten per batch of `steps`).
    pub fn new(total: u64, steps: u32, every: u64, quiet: bool) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let bar = (terminal && !quiet).then(|| {
            let b = ProgressBar::new(total);
            b.set_style(
                ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30}] {pos}/{len} item-steps, eta {eta} {msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            b
        });
        let every = if every == 0 {
            (u64::from(steps) / 10).max(1)
        } else {
            every
        };
        Self {
            bar,
            every,
            done: 0,
            total,
        }
    }

    /// Step `step` of `steps` of a batch finished, worth `units` of the total; `line` says
    /// what it did.
    pub fn step(&mut self, units: u64, step: u32, steps: u32, line: impl FnOnce() -> String) {
        self.done += units;
        match &self.bar {
            Some(b) => {
                b.set_message(line());
                b.inc(units);
            }
            None => {
                if u64::from(step) % self.every == 0 || step == steps {
                    tracing::info!("[{}/{}] {}", self.done, self.total, line());
                }
            }
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
