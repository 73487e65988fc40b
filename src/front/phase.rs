//! Proof phases as users see them: the guard of [`NAlloc::phase`], the
//! snapshots of existing counters taken at each boundary, and the
//! `NALLOC_STATS` table at exit. The table itself is `base/phase.rs`; the
//! design, and how precise each figure is, in
//! docs/design/phases-and-budget.md.
//!
//! [`NAlloc::phase`]: super::global::NAlloc::phase

use core::sync::atomic::Ordering::Relaxed;

use crate::base::phase::{self, PhaseReport, Snapshot};
use crate::base::{config, stats};
use crate::mem::span;
use crate::os;
use crate::small::heap;

use super::lifecycle;

/// The process's cumulative figures now: calls and bytes summed over the
/// heaps (a walk under the registry lock) plus the span counters, bytes
/// returned, minor faults (one `getrusage`) and the clock.
fn snapshot() -> Snapshot {
    let t = heap::totals();
    Snapshot {
        calls: t.allocs + stats::SPAN_ALLOCS.load(Relaxed) as u64,
        bytes: t.bytes + stats::SPAN_BYTES.load(Relaxed) as u64,
        returned: stats::RETURNED.load(Relaxed) as u64,
        faults: os::minor_faults(),
        time_us: os::now_us(),
    }
}

/// The live-bytes mark since the last boundary (restarted now).
fn window_peak() -> u64 {
    stats::NEED.take_window() as u64
}

/// Opens phase `name` (process-wide; see [`PhaseGuard`]).
pub(crate) fn begin(name: &[u8]) {
    lifecycle::ensure_init();
    let now = snapshot();
    phase::begin(name, now, window_peak());
}

/// Closes the innermost open phase, giving memory back first if `trim`.
pub(crate) fn end(trim: bool) {
    if trim {
        // Before the end's snapshot: what goes back counts to this phase.
        span::trim();
        heap::trim_all();
    }
    let now = snapshot();
    phase::end(now, window_peak());
}

/// The table, with open phases' figures up to now.
pub(crate) fn report() -> PhaseReport {
    let now = snapshot();
    phase::report(now, window_peak())
}

/// Restarts every peak (the process's and the open phases') at the current
/// value; the phase rows stay.
pub(crate) fn reset_peaks() {
    stats::MAPPED.reset_peak();
    stats::SPANS_LIVE.reset_peak();
    stats::NEED.reset_peak();
    let _ = stats::NEED.take_window();
}

/// Forgets the phase table (for `reset_phases`).
pub(crate) fn clear() {
    let now = snapshot();
    phase::clear(now);
}

/// A process-wide proof phase, open until dropped: every allocation made
/// meanwhile — by any thread — counts to it (to the innermost one when
/// phases nest). Made by [`NAlloc::phase`] and
/// [`NAlloc::phase_with_trim`].
///
/// [`NAlloc::phase`]: super::global::NAlloc::phase
/// [`NAlloc::phase_with_trim`]: super::global::NAlloc::phase_with_trim
#[must_use = "the phase ends when the guard is dropped"]
#[derive(Debug)]
pub struct PhaseGuard {
    trim: bool,
}

impl PhaseGuard {
    pub(crate) fn open(name: &str, trim: bool) -> Self {
        begin(name.as_bytes());
        Self { trim }
    }
}

impl Drop for PhaseGuard {
    fn drop(&mut self) {
        end(self.trim);
    }
}

/// Registers the `NALLOC_STATS` exit report, once, if it was asked for.
pub(crate) fn register_exit_report() {
    if config::stats_at_exit() {
        os::at_exit(exit_report);
    }
}

/// The phase table on stderr at exit (only if a phase ran), formatted on the
/// stack: usable at exit and in C programs, never allocating.
extern "C" fn exit_report() {
    use core::fmt::Write;
    let r = report();
    if r.is_empty() {
        return;
    }
    let mut out = crate::base::check::Fixed::<8192>::new();
    let _ = write!(out, "nalloc: phases\n{r}");
    os::write_stderr(out.as_bytes());
}
