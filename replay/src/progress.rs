//! The progress bar on stderr: events done, events/s and ETA, redrawn about 4 times a second on a terminal, one line every 5 s otherwise.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Redraw pause on a terminal.
const TTY_EVERY: Duration = Duration::from_millis(250);
/// Pause between lines when stderr is a file or a pipe.
const LINE_EVERY: Duration = Duration::from_secs(5);
const BAR_WIDTH: usize = 30;

/// `45,000`.
pub fn format_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `0:17`, `12:05`, `1:02:03`.
pub fn format_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// One line of the bar: `full pass [#####.....] 45,000/100,000 events  3,120 ev/s  ETA 0:17`.
/// Without a total (counting) the bar and ETA are left out; `rate` is events per second.
pub fn render(phase: &str, done: u64, total: Option<u64>, rate: f64, applied: u64) -> String {
    let rate_text = format!("{} ev/s", format_count(rate.round() as u64));
    let applied_text = if applied > 0 {
        format!("  ({} applied)", format_count(applied))
    } else {
        String::new()
    };
    let Some(total) = total else {
        return format!(
            "{phase}: {} events  {rate_text}{applied_text}",
            format_count(done)
        );
    };
    let fraction = if total == 0 {
        1.0
    } else {
        (done as f64 / total as f64).min(1.0)
    };
    let filled = (fraction * BAR_WIDTH as f64).round() as usize;
    let bar = format!("{}{}", "#".repeat(filled), ".".repeat(BAR_WIDTH - filled));
    let eta = if done >= total {
        "0:00".to_owned()
    } else if rate >= 0.5 {
        format_duration(((total - done) as f64 / rate).ceil() as u64)
    } else {
        "?".to_owned()
    };
    format!(
        "{phase} [{bar}] {}/{} events  {rate_text}  ETA {eta}{applied_text}",
        format_count(done),
        format_count(total)
    )
}

#[derive(Debug)]
struct Phase {
    name: String,
    started: Instant,
    /// `done` when the phase started (a resumed pass starts past zero).
    done_at_start: u64,
}

#[derive(Debug)]
struct Inner {
    enabled: bool,
    tty: bool,
    phase: Mutex<Phase>,
    done: AtomicU64,
    total: AtomicU64,
    has_total: AtomicBool,
    applied: AtomicU64,
    stop: AtomicBool,
}

/// Counters of the running phase, drawn by a background task when enabled. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Progress {
    inner: Arc<Inner>,
}

impl Progress {
    /// A bar drawn on stderr when `enabled`, else only counters (tests, libraries).
    pub fn new(enabled: bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                enabled,
                tty: std::io::stderr().is_terminal(),
                phase: Mutex::new(Phase {
                    name: String::new(),
                    started: Instant::now(),
                    done_at_start: 0,
                }),
                done: AtomicU64::new(0),
                total: AtomicU64::new(0),
                has_total: AtomicBool::new(false),
                applied: AtomicU64::new(0),
                stop: AtomicBool::new(false),
            }),
        }
    }

    /// A progress without output.
    pub fn silent() -> Self {
        Self::new(false)
    }

    fn phase_lock(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.inner
            .phase
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a phase: `done` events of `total` (unknown: `None`) are behind already.
    pub fn start(&self, name: &str, done: u64, total: Option<u64>) {
        self.inner.done.store(done, Ordering::Relaxed);
        self.inner.applied.store(0, Ordering::Relaxed);
        self.inner
            .total
            .store(total.unwrap_or(0), Ordering::Relaxed);
        self.inner
            .has_total
            .store(total.is_some(), Ordering::Relaxed);
        *self.phase_lock() = Phase {
            name: name.to_owned(),
            started: Instant::now(),
            done_at_start: done,
        };
    }

    /// `done` more events scanned, of which `applied` were applied.
    pub fn add(&self, done: u64, applied: u64) {
        self.inner.done.fetch_add(done, Ordering::Relaxed);
        self.inner.applied.fetch_add(applied, Ordering::Relaxed);
    }

    pub fn done(&self) -> u64 {
        self.inner.done.load(Ordering::Relaxed)
    }

    pub fn applied(&self) -> u64 {
        self.inner.applied.load(Ordering::Relaxed)
    }

    fn line(&self) -> String {
        let phase = self.phase_lock();
        let done = self.done();
        let elapsed = phase.started.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 {
            done.saturating_sub(phase.done_at_start) as f64 / elapsed
        } else {
            0.0
        };
        let total = self
            .inner
            .has_total
            .load(Ordering::Relaxed)
            .then(|| self.inner.total.load(Ordering::Relaxed));
        render(&phase.name, done, total, rate, self.applied())
    }

    /// Ends the phase: its last line stays on screen, with the time it took.
    pub fn finish(&self) {
        if !self.inner.enabled {
            return;
        }
        let took = format_duration(self.phase_lock().started.elapsed().as_secs());
        let line = format!("{}  done in {took}", self.line());
        let mut err = std::io::stderr().lock();
        let _ = if self.inner.tty {
            writeln!(err, "\r{line}\x1b[K")
        } else {
            writeln!(err, "{line}")
        };
    }

    /// A message on its own line (above the bar on a terminal).
    pub fn note(&self, message: &str) {
        if !self.inner.enabled {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = if self.inner.tty {
            writeln!(err, "\r{message}\x1b[K")
        } else {
            writeln!(err, "{message}")
        };
    }

    /// Draws the bar until [`Progress::stop`]: on a terminal every 250 ms in place, else a
    /// line every 5 s. Nothing when not enabled.
    pub fn spawn_drawing(&self) -> Option<std::thread::JoinHandle<()>> {
        if !self.inner.enabled {
            return None;
        }
        let progress = self.clone();
        std::thread::Builder::new()
            .name("replay-progress".into())
            .spawn(move || {
                let every = if progress.inner.tty {
                    TTY_EVERY
                } else {
                    LINE_EVERY
                };
                let mut last = Instant::now();
                while !progress.inner.stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                    if last.elapsed() < every || progress.phase_lock().name.is_empty() {
                        continue;
                    }
                    last = Instant::now();
                    let line = progress.line();
                    let mut err = std::io::stderr().lock();
                    let _ = if progress.inner.tty {
                        write!(err, "\r{line}\x1b[K").and_then(|()| err.flush())
                    } else {
                        writeln!(err, "{line}")
                    };
                }
            })
            .ok()
    }

    /// Stops the drawing thread.
    pub fn stop(&self) {
        self.inner.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(format_count(0), "0");
        assert_eq!(format_count(999), "999");
        assert_eq!(format_count(1_000), "1,000");
        assert_eq!(format_count(45_000), "45,000");
        assert_eq!(format_count(1_234_567), "1,234,567");
    }

    #[test]
    fn durations_read_as_clock_times() {
        assert_eq!(format_duration(17), "0:17");
        assert_eq!(format_duration(725), "12:05");
        assert_eq!(format_duration(3723), "1:02:03");
    }

    #[test]
    fn the_bar_shows_done_total_rate_and_eta() {
        assert_eq!(
            render("full pass", 45_000, Some(100_000), 3_120.0, 0),
            "full pass [##############................] 45,000/100,000 events  3,120 ev/s  ETA 0:18"
        );
        assert_eq!(
            render("catch-up 1", 10, Some(10), 5.0, 2),
            "catch-up 1 [##############################] 10/10 events  5 ev/s  ETA 0:00  (2 applied)"
        );
        assert_eq!(
            render("full pass", 0, Some(10), 0.0, 0),
            "full pass [..............................] 0/10 events  0 ev/s  ETA ?"
        );
        assert_eq!(
            render("count", 1_500, None, 750.0, 0),
            "count: 1,500 events  750 ev/s"
        );
        // More done than counted (events appended since the count): a full bar, no ETA left.
        assert!(render("full pass", 12, Some(10), 1.0, 0)
            .contains("[##############################] 12/10"));
    }

    #[test]
    fn a_phase_counts_its_rate_from_where_it_started() {
        let progress = Progress::silent();
        progress.start("full pass", 500, Some(1_000));
        progress.add(100, 40);
        assert_eq!(progress.done(), 600);
        assert_eq!(progress.applied(), 40);
        assert!(progress.line().starts_with("full pass ["));
        assert!(progress.line().contains("600/1,000 events"));
    }
}
