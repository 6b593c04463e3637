//! The short summary every command ends with, on stdout.

use lattice_sim::Stats;

/// "N batch(es) of ≤ B", with the halvings if there were any.
pub fn batches_line(st: &Stats) -> String {
    let halved = if st.halvings > 0 {
        format!(" ({} halving(s) after allocation failures)", st.halvings)
    } else {
        String::new()
    };
    format!(
        "{} batch(es) of ≤ {}{halved}",
        st.batch_sizes.len(),
        st.batch_size
    )
}

/// Peak host memory for a summary line.
pub fn peak_line(peak: Option<u64>) -> String {
    peak.map_or("unknown".into(), |b| {
        format!("{:.0} MiB (host)", b as f64 / 1048576.0)
    })
}

/// "0.81 s mean; 12 MiB host, 3 MiB GPU memory each" for a summary's per-item line.
pub fn per_item_line(st: &Stats) -> String {
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / 1048576.0);
    let mut line = format!("{:.3} s mean", st.mean_item_s);
    if let Some(h) = st.host_bytes_per_item {
        line.push_str(&format!("; {} host", mib(h)));
    }
    if let Some(d) = st.device_bytes_per_item {
        line.push_str(&format!(", {} GPU", mib(d)));
    }
    line.push_str(" memory each");
    line
}

/// A compact two-column table of a run's figures.
pub fn print_summary(title: &str, rows: &[(&str, String)]) {
    println!("{title}");
    for (k, v) in rows {
        println!("  {k:<12} {v}");
    }
}
