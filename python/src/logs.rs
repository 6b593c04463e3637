//! The engine's log records into Python's `logging`: the engine logs through `tracing`, which
//! (with its `log` feature and no tracing subscriber installed) hands each event to the `log`
//! facade; this logger passes it to `logging.getLogger("lattice.<crate>")`, so
//! `logging.getLogger("lattice")` sees them all and the application decides levels and
//! handlers.

use log::{Level, LevelFilter, Log, Metadata, Record};
use pyo3::prelude::*;

struct PythonLogs;

/// Python's level number for a `log` level (TRACE below DEBUG, as `logging` has none).
fn python_level(level: Level) -> u8 {
    match level {
        Level::Error => 40,
        Level::Warn => 30,
        Level::Info => 20,
        Level::Debug => 10,
        Level::Trace => 5,
    }
}

/// `lattice.sim` for a record of `lattice_sim::flows`; `lattice` for anything else.
fn logger_name(target: &str) -> String {
    let krate = target.split("::").next().unwrap_or(target);
    match krate.strip_prefix("lattice_") {
        Some(part) => format!("lattice.{part}"),
        None => "lattice".into(),
    }
}

impl Log for PythonLogs {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.target().starts_with("lattice")
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        Python::attach(|py| {
            let logged = (|| -> PyResult<()> {
                let logger = py
                    .import("logging")?
                    .call_method1("getLogger", (logger_name(record.target()),))?;
                let level = python_level(record.level());
                if logger.call_method1("isEnabledFor", (level,))?.is_truthy()? {
                    logger.call_method1("log", (level, record.args().to_string()))?;
                }
                Ok(())
            })();
            // A failing handler must not end a run; Python prints it as logging does.
            if let Err(e) = logged {
                e.print(py);
            }
        });
    }

    fn flush(&self) {}
}

/// Installs the bridge once, when the module is imported.
pub fn install() {
    if log::set_logger(&PythonLogs).is_ok() {
        log::set_max_level(LevelFilter::Debug);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_go_under_the_lattice_logger() {
        assert_eq!(logger_name("lattice_sim::flows"), "lattice.sim");
        assert_eq!(logger_name("lattice_core"), "lattice.core");
        assert_eq!(logger_name("other"), "lattice");
        assert_eq!(python_level(Level::Warn), 30);
    }
}
