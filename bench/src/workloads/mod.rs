//! The benchmark workloads. Each runs inside a worker process under one
//! global allocator and returns its timed phases.
//!
//! Every suite workload runs in rounds and reports the three standard
//! figures (see [`standard`]): `setup` (the work before the first round),
//! `cold` (the first round, in the fresh worker process) and `warm` (the
//! median of the other rounds), next to any phases of its own.
//!
//! Every workload verifies the data it produced (proofs must verify, FFT
//! round trips must match, block contents must be intact); a mismatch is an
//! `Err`, which makes the worker exit non-zero.

use std::time::{Duration, Instant};

use crate::result::{WorkloadOutput, COLD, SETUP, WARM};

pub mod cache_scratch;
pub mod fft;
pub mod halo2;
pub mod larson;
pub mod micro;
pub mod realloc;
pub mod reclaim;
pub mod soak;
pub mod stark;
pub mod xmalloc;
pub mod zeroed;

/// How a worker's allocator labels proof phases (`nalloc-bench --phases`):
/// registered by a worker binary whose allocator has phases (nalloc's).
#[derive(Clone, Copy, Debug)]
pub struct PhaseHooks {
    /// Opens a phase.
    pub begin: fn(&str),
    /// Closes the innermost phase.
    pub end: fn(),
    /// The per-phase table, as text.
    pub report: fn() -> String,
}

static PHASE_HOOKS: std::sync::OnceLock<PhaseHooks> = std::sync::OnceLock::new();
static PHASES_ON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Registers the allocator's phase hooks (once; later calls are ignored).
pub fn set_phase_hooks(h: PhaseHooks) {
    let _ = PHASE_HOOKS.set(h);
}

/// Turns phase labels on; `None` if no hooks were registered.
pub fn enable_phases() -> Option<PhaseHooks> {
    let h = *PHASE_HOOKS.get()?;
    PHASES_ON.store(true, std::sync::atomic::Ordering::Relaxed);
    Some(h)
}

/// A labelled phase, closed on drop (nothing unless phases are on).
#[must_use = "the phase ends when the label is dropped"]
pub struct PhaseLabel(Option<fn()>);

/// Opens phase `name` when phases are on (`--phases`).
pub fn label(name: &str) -> PhaseLabel {
    if !PHASES_ON.load(std::sync::atomic::Ordering::Relaxed) {
        return PhaseLabel(None);
    }
    match PHASE_HOOKS.get() {
        Some(h) => {
            (h.begin)(name);
            PhaseLabel(Some(h.end))
        }
        None => PhaseLabel(None),
    }
}

impl Drop for PhaseLabel {
    fn drop(&mut self) {
        if let Some(end) = self.0 {
            end();
        }
    }
}

/// Environment variable of `--phases`'s peak-RSS timeline: the number of
/// consecutive proofs the halo2 workload makes, printing one
/// [`TIMELINE_PREFIX`] line per proof.
pub const TIMELINE_ENV: &str = "NALLOC_BENCH_TIMELINE";
/// Prefix of a timeline line: `proof <i> peak_kib <n>`.
pub const TIMELINE_PREFIX: &str = "NALLOC_BENCH_TIMELINE ";

/// Proofs the timeline asks for, if any.
pub fn timeline_proofs() -> Option<usize> {
    std::env::var(TIMELINE_ENV).ok()?.parse().ok().filter(|&n| n > 0)
}

/// Starts a new peak-RSS window: the kernel's high-water mark (`VmHWM`) is
/// reset to the current RSS (`/proc/self/clear_refs`, value 5). False where
/// that is not possible (not Linux, or refused).
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The peak RSS since the last [`reset_peak_rss`] (or start), in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Context a workload runs in.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// Use the full-size (long) parameters instead of the quick ones.
    pub full: bool,
    /// Use the tiny parameters of the tests instead (two rounds of almost
    /// nothing, fast even in a debug build); never set by a worker.
    pub tiny: bool,
    /// Name of the allocator installed in this process.
    pub allocator: &'static str,
    /// Number of worker threads multi-threaded workloads should use.
    pub threads: usize,
    /// When the context was made, just before the workload starts.
    pub started: std::time::Instant,
}

impl Ctx {
    /// Creates a context; `threads` defaults to the available parallelism (at least 2).
    pub fn new(full: bool, allocator: &'static str) -> Self {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(2, 16);
        Self {
            full,
            tiny: false,
            allocator,
            threads,
            started: std::time::Instant::now(),
        }
    }

    /// The context of the tests: tiny parameters, two threads.
    pub fn tiny(allocator: &'static str) -> Self {
        Self {
            full: false,
            tiny: true,
            allocator,
            threads: 2,
            started: std::time::Instant::now(),
        }
    }

    /// Whether the allocator installed is zk-nalloc, in any build (`nalloc`,
    /// `nalloc-hardened`): workloads run their nalloc-only phases then.
    pub fn is_nalloc(&self) -> bool {
        self.allocator == "nalloc" || self.allocator.starts_with("nalloc-")
    }

    /// Picks the quick or the full value of a parameter (the quick one
    /// when tiny).
    pub fn pick<T>(&self, quick: T, full: T) -> T {
        if self.full {
            full
        } else {
            quick
        }
    }

    /// Picks the tiny, quick or full value of a parameter.
    pub fn size<T>(&self, tiny: T, quick: T, full: T) -> T {
        if self.tiny {
            tiny
        } else {
            self.pick(quick, full)
        }
    }
}

/// Signature of a workload entry point.
pub type WorkloadFn = fn(&Ctx) -> Result<WorkloadOutput, String>;

/// A registered workload.
#[derive(Clone, Copy)]
pub struct WorkloadInfo {
    /// Name used on the command line.
    pub name: &'static str,
    /// What it does, including the quick / full sizes.
    pub description: &'static str,
    /// Entry point.
    pub run: WorkloadFn,
}

impl std::fmt::Debug for WorkloadInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkloadInfo").field("name", &self.name).finish()
    }
}

/// All workloads, in suite order.
pub const WORKLOADS: &[WorkloadInfo] = &[
    WorkloadInfo {
        name: "halo2",
        description: "Halo2 (zcash halo2_proofs 0.3, Pasta/IPA) mul/add chain circuit: setup, keygen, \
                      then several create_proof+verify_proof (quick k=11 x4, full k=14 x6)",
        run: halo2::run,
    },
    WorkloadInfo {
        name: "stark",
        description: "Winterfell 0.13 STARK (f128, Blake3, FRI): trace of a Fibonacci-like map, \
                      prove + verify, several proofs (quick 2^16 steps x4, full 2^18 x5)",
        run: stark::run,
    },
    WorkloadInfo {
        name: "fft",
        description: "arkworks BN254 Fr radix-2 FFT+IFFT round trip and polynomial product \
                      (quick 2^20 x3, full 2^22 x4)",
        run: fft::run,
    },
    WorkloadInfo {
        name: "small",
        description: "10k small blocks (16-512 B) allocated then freed, repeated (quick 500, full 3000 rounds)",
        run: micro::small,
    },
    WorkloadInfo {
        name: "large",
        description: "32 MiB Vec<u64> alloc + fill + verify + free, repeated (quick 40, full 200)",
        run: micro::large,
    },
    WorkloadInfo {
        name: "batch",
        description: "10k blocks (32-256 B) allocated and freed one by one, repeated; \
                      nalloc additionally: the same batches from a ScratchArena with one O(1) reset per round",
        run: micro::batch,
    },
    WorkloadInfo {
        name: "zeroed",
        description: "alloc_zeroed of 512 MiB (full: 1 GiB) filled by all threads, read, freed \
                      (cold + warm), then a mix of random 5-25 MiB blocks touched per 4 KiB page",
        run: zeroed::run,
    },
    WorkloadInfo {
        name: "larson",
        description: "Larson server churn: per-thread slot arrays (filled in setup), random slot \
                      replacement with 16-1024 B blocks, arrays handed to fresh threads each round",
        run: larson::run,
    },
    WorkloadInfo {
        name: "xmalloc",
        description: "producer threads allocate and fill blocks, consumer threads verify and free \
                      them (cross-thread frees via channels), fresh threads each round (quick 5, full 10)",
        run: xmalloc::run,
    },
    WorkloadInfo {
        name: "cache-scratch",
        description: "objects allocated by the main thread are freed by workers, which then \
                      allocate and write-hammer their own small objects (false-sharing detector), \
                      fresh objects and threads each round (quick 4, full 5)",
        run: cache_scratch::run,
    },
    WorkloadInfo {
        name: "witness",
        description: "secrets of 32-4096 B allocated, filled and wiped: `memset+free` (any allocator: \
                      the manual wipe) vs nalloc's witness arena (wiped on free, locked, no-dump)",
        run: micro::witness,
    },
    WorkloadInfo {
        name: "realloc",
        description: "Vec<u64> grown by push to 2^24 (full: 2^26) elements, verified, repeated",
        run: realloc::run,
    },
    WorkloadInfo {
        name: "sparse-zeroed",
        description: "alloc_zeroed of 100 MiB (full: 256 MiB), two bytes written, freed; 20 (full: 40) \
                      rounds: a recycled block must not be faulted in to be cleared (see peak RSS)",
        run: reclaim::sparse_zeroed,
    },
    WorkloadInfo {
        name: "orphans",
        description: "4 threads allocate 1M (full: 4M) 64-byte blocks each and exit; main frees them, \
                      trims (glibc malloc_trim, nalloc trim), then allocates as much again (see peak RSS); \
                      3 rounds",
        run: reclaim::orphans,
    },
];

/// Workloads that run only when named with `--workload` (not part of the suite).
pub const ON_DEMAND: &[WorkloadInfo] = &[WorkloadInfo {
    name: "soak",
    description: "reliability soak: many threads churn small blocks, free across threads, make large \
                  vectors and (nalloc) witness secrets for --seconds N (default 20, full 120); prints \
                  ops/s and RSS every second; fails on corruption or if RSS does not plateau",
    run: soak::run,
}];

/// Looks a workload up by name (suite and on-demand ones).
pub fn find(name: &str) -> Option<&'static WorkloadInfo> {
    WORKLOADS.iter().chain(ON_DEMAND).find(|w| w.name == name)
}

/// Milliseconds in a duration, as a float.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs `f` and returns its result and elapsed milliseconds.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let start = Instant::now();
    let value = f();
    (value, ms(start.elapsed()))
}

/// Median of a non-empty slice (mean of the two middle values for even lengths).
pub fn median(values: &[f64]) -> f64 {
    assert!(!values.is_empty(), "median of empty slice");
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// Records the three standard figures: `setup_ms` as [`SETUP`], the first
/// of the `rounds` times as [`COLD`] and the median of the others as
/// [`WARM`] (absent, with the reason, where there is only one round), and
/// the number of rounds, by which the report weighs a warm difference.
pub fn standard(out: &mut WorkloadOutput, setup_ms: f64, rounds: &[f64]) {
    out.phase(SETUP, setup_ms);
    out.rounds = rounds.len();
    match rounds.split_first() {
        Some((&cold, rest)) => {
            out.phase(COLD, cold);
            if rest.is_empty() {
                out.absent(WARM, "one round only: nothing after the cold one");
            } else {
                out.phase(WARM, median(rest));
            }
        }
        None => {
            out.absent(COLD, "no rounds");
            out.absent(WARM, "no rounds");
        }
    }
}

/// Joins a scoped thread, turning a panic into an `Err`.
pub fn join<T>(h: std::thread::ScopedJoinHandle<'_, Result<T, String>>) -> Result<T, String> {
    h.join().unwrap_or_else(|_| Err("worker thread panicked".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn nalloc_builds_run_the_nalloc_phases() {
        for (name, nalloc) in [
            ("nalloc", true),
            ("nalloc-hardened", true),
            ("glibc", false),
            ("mimalloc", false),
            ("jemalloc", false),
        ] {
            assert_eq!(Ctx::new(false, name).is_nalloc(), nalloc, "{name}");
        }
    }

    #[test]
    fn standard_figures_are_setup_first_round_and_median_of_the_rest() {
        let mut out = WorkloadOutput::default();
        standard(&mut out, 2.0, &[50.0, 10.0, 30.0, 12.0]);
        let names: Vec<&str> = out.phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, [SETUP, COLD, WARM]);
        assert_eq!(
            (out.get(SETUP), out.get(COLD), out.get(WARM)),
            (Some(2.0), Some(50.0), Some(12.0))
        );
        assert_eq!(out.rounds, 4);
        // One round: no warm figure, and the reason says why.
        let mut out = WorkloadOutput::default();
        standard(&mut out, 0.0, &[5.0]);
        assert_eq!((out.get(COLD), out.get(WARM)), (Some(5.0), None));
        assert!(out.absent.iter().any(|a| a.name == WARM));
    }

    /// Every suite workload, at its tiny size in this process, reports
    /// setup, cold and warm (and passes its own checks); the workloads
    /// with nalloc-only phases run them too under the `nalloc` name (their
    /// arenas work under any global allocator).
    #[test]
    fn every_suite_workload_reports_setup_cold_and_warm() {
        for w in WORKLOADS {
            let mut names = vec!["glibc"];
            if ["batch", "witness", "orphans"].contains(&w.name) {
                names.push("nalloc");
            }
            for allocator in names {
                let out = (w.run)(&Ctx::tiny(allocator)).unwrap_or_else(|e| panic!("{}: {e}", w.name));
                for name in [SETUP, COLD, WARM] {
                    let ms = out.get(name);
                    assert!(
                        ms.is_some_and(|ms| ms >= 0.0 && ms.is_finite()),
                        "{} {name}: {ms:?}",
                        w.name
                    );
                }
                assert!(out.rounds >= 2, "{}: {} rounds", w.name, out.rounds);
                let names: Vec<&str> = out.phases.iter().map(|p| p.name.as_str()).collect();
                assert_eq!(names[..3], [SETUP, COLD, WARM], "{}", w.name);
                // Rows with nalloc-only arena phases take their peak RSS
                // before them, under every allocator (same work compared).
                if ["batch", "witness"].contains(&w.name) {
                    assert!(out.common_peak_rss_kib.is_some_and(|k| k > 0), "{}", w.name);
                    assert!(out.common_wall_ms.is_some_and(|ms| ms > 0.0), "{}", w.name);
                }
                if w.name == "witness" && allocator == "nalloc" {
                    assert!(
                        names.contains(&"witness") && names.contains(&"memset+free"),
                        "{names:?}"
                    );
                }
                for (i, p) in out.phases.iter().enumerate() {
                    assert!(
                        out.phases[i + 1..].iter().all(|q| q.name != p.name),
                        "{}: {names:?}",
                        w.name
                    );
                }
            }
        }
    }

    #[test]
    fn names_unique() {
        for (i, w) in WORKLOADS.iter().enumerate() {
            assert!(WORKLOADS[i + 1..].iter().all(|o| o.name != w.name));
        }
    }
}
