//! Host memory as the kernel reports it (Linux `/proc`; `None` elsewhere), for batch sizing and
//! for the memory figures runs and the encoder report.

/// Peak resident memory of this process in bytes (since start, or since [`reset_peak_rss`]).
pub fn peak_rss_bytes() -> Option<u64> {
    proc_kb("/proc/self/status", "VmHWM:")
}

/// Resident memory of this process now, in bytes.
pub fn rss_bytes() -> Option<u64> {
    proc_kb("/proc/self/status", "VmRSS:")
}

/// Starts a new peak: the next [`peak_rss_bytes`] is the peak from now on. Returns whether the
/// kernel took the reset (Linux ≥ 4.0 writes "5" to `clear_refs`); without it the peak stays
/// the process's own since start.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Memory available to new allocations in bytes (Linux `MemAvailable`).
pub fn available_memory_bytes() -> Option<u64> {
    proc_kb("/proc/meminfo", "MemAvailable:")
}

/// A "Key: N kB" line of a /proc file, in bytes.
fn proc_kb(file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_reset_peak_drops_below_a_released_allocation() {
        let big = vec![1u8; 64 << 20];
        std::hint::black_box(&big);
        let with_big = peak_rss_bytes().unwrap();
        drop(big);
        if reset_peak_rss() {
            let after = peak_rss_bytes().unwrap();
            assert!(after + (32 << 20) < with_big, "{after} vs {with_big}");
        }
        assert!(rss_bytes().unwrap() > 0);
        assert!(available_memory_bytes().unwrap() > 0);
    }
}
