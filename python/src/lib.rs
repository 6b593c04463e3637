//! `lattice._lattice`: the engine for Python. [`simulation::Simulation`] wraps
//! `lattice::Simulation`; numpy arrays go in and come out ([`arrays`]); engine errors become
//! Python exceptions ([`errors`]), its logs Python log records
//! ([`logs`]); a run releases the GIL and hears Ctrl-C between steps
//! ([`watch`]). The pure-Python part of the package (`python/lattice/`) re-exports these.

mod arrays;
mod config;
mod encoder;
mod errors;
mod logs;
mod results;
mod simulation;
mod watch;

use pyo3::prelude::*;

#[pymodule]
fn _lattice(m: &Bound<'_, PyModule>) -> PyResult<()> {
    logs::install();
    m.add_class::<simulation::Simulation>()?;
    m.add_class::<encoder::Encoder>()?;
    m.add_class::<results::MoeResult>()?;
    m.add_class::<results::FlowsResult>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
