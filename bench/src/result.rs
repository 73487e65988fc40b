//! The worker → runner protocol: one JSON line on the worker's stdout.

use serde::{Deserialize, Serialize};

/// Prefix of the single stdout line carrying a worker's [`WorkerResult`].
pub const RESULT_PREFIX: &str = "NALLOC_BENCH_RESULT ";

/// Standard phase: the work before the first round (inputs, keys, domains).
pub const SETUP: &str = "setup";
/// Standard phase: the first round, in the fresh worker process.
pub const COLD: &str = "cold";
/// Standard phase: the median of the rounds after the first.
pub const WARM: &str = "warm";
/// The standard phases, in the order they run.
pub const STANDARD: [&str; 3] = [SETUP, COLD, WARM];

/// One timed phase of a workload.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Phase {
    /// Phase name: one of the standard figures [`SETUP`], [`COLD`] and
    /// [`WARM`] that every suite workload reports, or a workload's own, e.g.
    /// `"keygen"`, `"mix"`.
    pub name: String,
    /// Duration in milliseconds.
    pub ms: f64,
}

/// A phase that was not run, with the reason (reported as absent, never as a number).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Absent {
    /// Phase name.
    pub name: String,
    /// Why it was not run.
    pub reason: String,
}

/// What a workload function returns: its phases and the phases it skipped.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WorkloadOutput {
    /// Timed phases, in the order they ran.
    pub phases: Vec<Phase>,
    /// Phases that do not apply / are not available for this allocator.
    pub absent: Vec<Absent>,
    /// Rounds timed for [`COLD`] and [`WARM`] (the first is cold): the
    /// report weighs a warm difference by the `rounds - 1` warm rounds.
    /// 0 where the workload has no rounds (`--cmd`, older results).
    #[serde(default)]
    pub rounds: usize,
    /// Peak RSS (`ru_maxrss`, KiB) once the work every allocator does was
    /// done, recorded (under every allocator) before phases that only
    /// nalloc runs (its arenas): the row's peak RSS, so that rows compare
    /// the same work. `None` where a workload has no such phases.
    #[serde(default)]
    pub common_peak_rss_kib: Option<u64>,
    /// Wall time (ms) of that work, from the workload's start: the row's
    /// wall time, for the same reason.
    #[serde(default)]
    pub common_wall_ms: Option<f64>,
}

impl WorkloadOutput {
    /// Records a timed phase.
    pub fn phase(&mut self, name: &str, ms: f64) {
        self.phases.push(Phase {
            name: name.to_owned(),
            ms,
        });
    }

    /// The time of phase `name`, if it ran.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.phases.iter().find(|p| p.name == name).map(|p| p.ms)
    }

    /// Records the peak RSS so far and the time since `started` (the
    /// workload's start) as the row's (see [`Self::common_peak_rss_kib`]):
    /// called before nalloc-only phases.
    pub fn common_work_done(&mut self, started: std::time::Instant) {
        self.common_peak_rss_kib = Some(rusage(libc::RUSAGE_SELF).0);
        self.common_wall_ms = Some(started.elapsed().as_secs_f64() * 1e3);
    }

    /// Records an absent phase.
    pub fn absent(&mut self, name: &str, reason: &str) {
        self.absent.push(Absent {
            name: name.to_owned(),
            reason: reason.to_owned(),
        });
    }
}

/// `ru_maxrss` (KiB) and `ru_minflt` of a `getrusage` call.
pub fn rusage(who: libc::c_int) -> (u64, u64) {
    // SAFETY: rusage is plain old data, so all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage; `who` is RUSAGE_SELF or
    // RUSAGE_CHILDREN, so getrusage cannot fail.
    unsafe { libc::getrusage(who, &mut usage) };
    (usage.ru_maxrss.max(0) as u64, usage.ru_minflt.max(0) as u64)
}

/// The full result of one worker process.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkerResult {
    /// Workload name.
    pub workload: String,
    /// Allocator name (as compiled into the worker).
    pub allocator: String,
    /// Whether the full-size parameters were used.
    pub full: bool,
    /// Wall time of the workload in milliseconds (excludes process start-up;
    /// only the work every allocator does where the workload says so, see
    /// [`WorkloadOutput::common_wall_ms`]).
    pub wall_ms: f64,
    /// Timed phases and absent phases.
    #[serde(flatten)]
    pub output: WorkloadOutput,
    /// `getrusage(RUSAGE_SELF).ru_maxrss` in KiB at the end of the workload.
    pub maxrss_kib: u64,
    /// `getrusage(RUSAGE_SELF).ru_minflt` at the end of the workload.
    pub minflt: u64,
}

impl WorkerResult {
    /// Parses the result line out of a worker's complete stdout.
    pub fn from_stdout(stdout: &str) -> Option<Result<Self, String>> {
        let line = stdout.lines().rev().find_map(|l| l.strip_prefix(RESULT_PREFIX))?;
        Some(serde_json::from_str(line).map_err(|e| format!("bad result line: {e}")))
    }
}
