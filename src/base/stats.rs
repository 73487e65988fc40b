//! Process-wide counters kept on the slow paths (mapping, spans, pool,
//! lock acquisitions), and the snapshot of the OS layer's call counts.
//!
//! The small-object fast path counts in its own heap (plain relaxed stores
//! by the owner, summed on read), and so do the remote-free counts of the
//! small layer (`small/heap.rs`), so nothing here is touched per small
//! allocation or per cross-thread free. Reading is a handful of relaxed
//! loads: cheap, never blocking.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use crate::os;

/// A byte counter with a high-water mark, and a second mark for the current
/// phase window (see `base/phase.rs`), which phase boundaries take and
/// restart. Both marks are kept where the counter moves — slow paths only —
/// so a phase's peak is as exact as the counter itself.
pub(crate) struct Gauge {
    now: AtomicUsize,
    peak: AtomicUsize,
    window: AtomicUsize,
}

impl Gauge {
    pub(crate) const fn new() -> Self {
        Self {
            now: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            window: AtomicUsize::new(0),
        }
    }
    pub(crate) fn add(&self, n: usize) {
        let v = self.now.fetch_add(n, Relaxed) + n;
        // A plain load first: a read-modify-write only when a mark moves.
        if v > self.peak.load(Relaxed) {
            self.peak.fetch_max(v, Relaxed);
        }
        if v > self.window.load(Relaxed) {
            self.window.fetch_max(v, Relaxed);
        }
    }
    /// Restarts the high-water mark at the current value (`reset_peaks`).
    pub(crate) fn reset_peak(&self) {
        self.peak.store(self.now.load(Relaxed), Relaxed);
    }
    /// The highest value since the last call (or start), restarting the
    /// window at the current value: what one phase interval reached.
    pub(crate) fn take_window(&self) -> usize {
        let now = self.now.load(Relaxed);
        self.window.swap(now, Relaxed).max(now)
    }
    pub(crate) fn sub(&self, n: usize) {
        self.now.fetch_sub(n, Relaxed);
    }
    pub(crate) fn get(&self) -> usize {
        self.now.load(Relaxed)
    }
    pub(crate) fn peak(&self) -> usize {
        self.peak.load(Relaxed)
    }
}

/// Bytes currently mapped from the OS by the engine (segments, spans, heap
/// metadata, pooled spans).
pub(crate) static MAPPED: Gauge = Gauge::new();
/// Bytes returned to the OS so far (cumulative).
pub(crate) static RETURNED: AtomicUsize = AtomicUsize::new(0);
/// Bytes of live spans (large blocks): the "polynomial" memory of the
/// global allocator.
pub(crate) static SPANS_LIVE: Gauge = Gauge::new();
/// Bytes the program's data may hold resident: live spans plus the parts of
/// small-object page slots handed out since they were mapped or last purged
/// (the slots' written marks, `Page::note_written`).
/// The warm pool is budgeted against its peak (`span::make_room`).
pub(crate) static NEED: Gauge = Gauge::new();
/// Span allocations and frees.
pub(crate) static SPAN_ALLOCS: AtomicUsize = AtomicUsize::new(0);
pub(crate) static SPAN_FREES: AtomicUsize = AtomicUsize::new(0);
/// Bytes requested by span allocations (cumulative; for phase figures).
pub(crate) static SPAN_BYTES: AtomicUsize = AtomicUsize::new(0);
/// Span allocations served warm from the pool.
pub(crate) static POOL_HITS: AtomicUsize = AtomicUsize::new(0);
/// Bytes ever mapped with explicit (`MAP_HUGETLB`) huge pages.
pub(crate) static EXPLICIT_HUGE: AtomicUsize = AtomicUsize::new(0);
/// Small frees made by threads that had no heap (e.g. after thread exit).
pub(crate) static ORPHAN_FREES: AtomicUsize = AtomicUsize::new(0);
/// Spans resized by moving page tables (`mremap`) instead of bytes.
pub(crate) static REMAPS: AtomicUsize = AtomicUsize::new(0);
/// Bytes of pooled pieces moved into larger spans (`span::map_fresh`):
/// page faults saved on fresh memory.
pub(crate) static GATHERED: AtomicUsize = AtomicUsize::new(0);

pub(crate) fn mapped(n: usize) {
    MAPPED.add(n);
}

/// Memory given back to the OS while its range stays mapped (purged).
pub(crate) fn purged(n: usize) {
    RETURNED.fetch_add(n, Relaxed);
}

pub(crate) fn unmapped(n: usize) {
    MAPPED.sub(n);
    RETURNED.fetch_add(n, Relaxed);
}

/// Acquisitions of the slow paths' spin locks (`base/sync.rs`), all locks
/// together, and those whose first try failed. On a line of their own
/// (two, with adjacent-line prefetch): they move only when a lock is taken,
/// and must not drag a hotter counter's line along.
#[repr(C, align(128))]
pub(crate) struct LockCounts {
    pub(crate) taken: AtomicU64,
    pub(crate) contended: AtomicU64,
}

/// The spin locks' counts (see [`LockCounts`]).
pub(crate) static LOCKS: LockCounts = LockCounts {
    taken: AtomicU64::new(0),
    contended: AtomicU64::new(0),
};

/// Counts one acquisition of a spin lock (called with the lock held).
#[inline(always)]
pub(crate) fn lock_taken(contended: bool) {
    LOCKS.taken.fetch_add(1, Relaxed);
    if contended {
        LOCKS.contended.fetch_add(1, Relaxed);
    }
}

/// Calls into the OS by kind, as `os::CALLS` counts them: map, unmap,
/// remap, advise, purge, protect, query (see `os::OsCalls`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct OsCallCounts {
    pub(crate) map: u64,
    pub(crate) unmap: u64,
    pub(crate) remap: u64,
    pub(crate) advise: u64,
    pub(crate) purge: u64,
    pub(crate) protect: u64,
    pub(crate) query: u64,
}

/// The OS layer's call counts now.
pub(crate) fn os_calls() -> OsCallCounts {
    let c = &os::CALLS;
    OsCallCounts {
        map: c.map.load(Relaxed),
        unmap: c.unmap.load(Relaxed),
        remap: c.remap.load(Relaxed),
        advise: c.advise.load(Relaxed),
        purge: c.purge.load(Relaxed),
        protect: c.protect.load(Relaxed),
        query: c.query.load(Relaxed),
    }
}
