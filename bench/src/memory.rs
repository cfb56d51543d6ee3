//! Resident memory of a process, read from `/proc` (Linux).

use anyhow::Context as _;

/// A `kB` line of `/proc/<pid>/status` (`self` for this process), in KiB.
fn status_kib(pid: &str, field: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("{path} has no {field} line"))
}

/// `VmHWM` of process `pid`: its peak resident set size, KiB.
pub fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    status_kib(&pid.to_string(), "VmHWM")
}

/// The peak resident memory of this process over one piece of work. First the allocator
/// hands the memory it holds free back to the kernel (`malloc_trim`: what earlier work freed
/// would otherwise stay resident and be reused unseen), then the kernel's high-water mark is
/// reset (`5` into `/proc/self/clear_refs`). What was resident before then counts as far as
/// it still is.
pub struct PeakOfThisProcess {
    /// `VmRSS` when the measure began, KiB.
    pub before_kib: u64,
}

/// Returns the allocator's free memory to the kernel.
#[allow(unsafe_code)]
fn trim_the_heap() {
    // SAFETY: malloc_trim(3) only releases memory the allocator holds free; it takes no
    // pointer and is safe to call at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl PeakOfThisProcess {
    /// Trims the heap, resets the high-water mark and notes what is resident now.
    pub fn start() -> anyhow::Result<Self> {
        trim_the_heap();
        std::fs::write("/proc/self/clear_refs", "5")
            .context("resetting the peak resident memory (/proc/self/clear_refs)")?;
        Ok(Self {
            before_kib: status_kib("self", "VmRSS")?,
        })
    }

    /// `VmHWM` since [`Self::start`], KiB.
    pub fn peak_kib(&self) -> anyhow::Result<u64> {
        status_kib("self", "VmHWM")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_covers_what_was_allocated_and_touched_since_the_start() {
        drop(vec![1u8; 64 << 20]);
        let measure = PeakOfThisProcess::start().unwrap();
        let block = vec![1u8; 64 << 20];
        let peak = measure.peak_kib().unwrap();
        assert!(block.iter().all(|&b| b == 1));
        // Other tests of this binary allocate and free meanwhile: half the block is margin.
        assert!(
            peak >= measure.before_kib + 32 * 1024,
            "{peak} vs {}",
            measure.before_kib
        );
        assert!(peak_rss_kib(std::process::id()).unwrap() > 0);
    }
}
