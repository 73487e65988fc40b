//! `NAlloc`: the handle users hold — the `GlobalAlloc` front, the arena
//! handles, the settings and `stats()`. Every allocation it makes goes
//! through [`super::route`].

use core::alloc::{GlobalAlloc, Layout};

use super::lifecycle;
use super::phase::{self, PhaseGuard};
use super::route::{self, Block, Front};
use crate::arenas::polynomial::PolynomialArena;
use crate::arenas::scratch::{self, ScratchArena};
use crate::arenas::witness::{self, WitnessArena, WitnessStats};
use crate::base::config::{self, FirstTouch, HugePages, WitnessLock};
use crate::base::phase::PhaseReport;
use crate::base::stats;
use crate::mem::span;
use crate::small::heap;

/// The nalloc allocator. Use it as the global allocator, and/or reach its
/// arenas through an instance. See the crate docs.
pub struct NAlloc {
    witness: WitnessArena,
    polynomial: PolynomialArena,
}

impl Default for NAlloc {
    fn default() -> Self {
        Self::new()
    }
}

/// A snapshot of the allocator's figures. Reading it takes a few relaxed
/// loads and one short walk over the heap list; it never blocks allocation
/// for long.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes in live witness blocks: this instance's arena plus blocks made
    /// inside `witness_scope`.
    pub witness_used: usize,
    /// Highest witness usage seen (per arena, summed).
    pub witness_peak: usize,
    /// Bytes committed for witness memory.
    pub witness_capacity: usize,
    /// Detail of this instance's witness arena.
    pub witness: WitnessStats,
    /// Detail of the process-wide arena behind `witness_scope`.
    pub witness_scope: WitnessStats,
    /// Bytes in live large blocks (spans): the FFT/NTT vectors of the
    /// process, including this instance's polynomial arena.
    pub polynomial_used: usize,
    /// Highest `polynomial_used` seen.
    pub polynomial_peak: usize,
    /// Bytes mapped for polynomial memory: live spans plus the warm pool.
    pub polynomial_capacity: usize,
    /// Bytes in live blocks of this instance's polynomial arena.
    pub polynomial_arena_used: usize,
    /// Highest `polynomial_arena_used` seen.
    pub polynomial_arena_peak: usize,
    /// Bytes ever mapped with explicit (`MAP_HUGETLB`) huge pages. For what
    /// transparent huge pages really back, see
    /// [`PolynomialArena::huge_page_bytes`].
    pub explicit_huge_bytes: usize,
    /// Bytes handed out by scratch arenas (updated at chunk changes and
    /// resets, not per allocation).
    pub scratch_used: usize,
    /// Highest `scratch_used` seen.
    pub scratch_peak: usize,
    /// Bytes held in scratch arenas' chunks.
    pub scratch_capacity: usize,
    /// Bytes mapped from the OS now (segments, spans, pool, metadata; not
    /// witness chunks, which are in `witness_capacity`).
    pub mapped: usize,
    /// Highest `mapped` seen.
    pub peak_mapped: usize,
    /// Bytes of freed spans kept warm for reuse (in the pool and in
    /// threads' caches of their own recent frees).
    pub pool_retained: usize,
    /// Bytes given back to the OS so far (unmapped, or purged: physical
    /// memory released while the range stays mapped for reuse).
    pub returned_to_os: usize,
    /// Small-object allocations and frees.
    pub small_allocs: u64,
    /// See `small_allocs`.
    pub small_frees: u64,
    /// Large (span) allocations and frees.
    pub large_allocs: u64,
    /// See `large_allocs`.
    pub large_frees: u64,
    /// Span allocations served from the warm pool.
    pub pool_hits: u64,
    /// Spans resized by moving page tables (`mremap` on Linux) rather than
    /// by copying their bytes.
    pub span_remaps: u64,
    /// Bytes of warm pooled memory moved (by page tables, not copied) into
    /// spans that no pooled range could hold whole: page faults saved when a
    /// prover's vectors grow (Linux; 0 elsewhere).
    pub span_gathered_bytes: u64,
    /// Thread heaps created so far (the peak number of live threads).
    pub heaps: usize,
    /// Slow-path events: lock acquisitions, cross-thread free traffic and
    /// calls into the OS (see [`EventCounts`]).
    pub events: EventCounts,
}

/// Counts of the slow-path events that decide how the allocator scales with
/// threads, cumulative since start. All are kept on slow paths only (the
/// small-object fast paths count nothing here), so they are always on; the
/// benchmark runner divides them by the operations made (`--counters`, see
/// `docs/design/scaling.md`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventCounts {
    /// Acquisitions of the slow paths' spin locks (heap registry, segment
    /// cache, warm pool, address-space regions, witness and polynomial
    /// arenas, phase table), all together.
    pub lock_acquisitions: u64,
    /// Acquisitions whose first try found the lock held: the thread waited.
    pub lock_contended: u64,
    /// Batches of blocks that a thread freed into another thread's pages
    /// and handed to their owner (marked in the pages' remote-free bits).
    pub remote_batches: u64,
    /// Blocks in those batches.
    pub remote_blocks: u64,
    /// Atomic read-modify-writes those hand-overs took (per word of marks,
    /// summary word and page count).
    pub remote_atomics: u64,
    /// Batches of other threads' blocks a thread kept for its own
    /// allocations instead of handing them back.
    pub remote_kept: u64,
    /// Collections by owners that found blocks other threads had freed.
    pub remote_collects: u64,
    /// Blocks taken back by those collections.
    pub remote_collected: u64,
    /// Mappings and reservations made (`mmap`).
    pub os_map: u64,
    /// Mappings released, whole or a tail (`munmap`).
    pub os_unmap: u64,
    /// Mappings resized in place or moved without copying (`mremap`).
    pub os_remap: u64,
    /// Advice and flags on ranges: huge pages, secrets' dump and fork
    /// flags, names (`madvise`, `prctl`).
    pub os_advise: u64,
    /// Ranges whose pages were given back (purge, decommit).
    pub os_purge: u64,
    /// Protection changes and memory locks (`mprotect`, `mlock`).
    pub os_protect: u64,
    /// Residency samples (`mincore`).
    pub os_query: u64,
}

impl NAlloc {
    /// A new allocator handle; usable in a `static` as the global allocator.
    /// Nothing is mapped until the first allocation.
    pub const fn new() -> Self {
        Self {
            witness: WitnessArena::new(),
            polynomial: PolynomialArena::new(),
        }
    }

    /// This instance's witness arena (secret memory).
    pub fn witness(&self) -> &WitnessArena {
        &self.witness
    }

    /// This instance's polynomial arena (FFT/NTT vectors).
    pub fn polynomial(&self) -> &PolynomialArena {
        &self.polynomial
    }

    /// A new scratch arena (bump allocation, O(1) reset). Arenas are
    /// independent: make one per thread or task.
    pub fn scratch(&self) -> ScratchArena {
        ScratchArena::new()
    }

    /// Runs `f` with every global allocation made by the calling thread
    /// routed to witness memory: zeroed on allocation, wiped on free, locked
    /// against swap, excluded from core dumps. Blocks made inside may be
    /// freed anywhere (outside the scope, on another thread) and are still
    /// wiped; a `realloc` of such a block keeps it in witness memory. Scopes
    /// nest. Requires `self` to be the global allocator only in the sense
    /// that allocations must go through it to be routed.
    pub fn witness_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Restore(bool);
        impl Drop for Restore {
            fn drop(&mut self) {
                heap::set_scope(self.0);
            }
        }
        let _restore = Restore(heap::set_scope(true));
        f()
    }

    /// The page size nalloc works in: the OS's page (4 KiB on x86-64, 16 KiB
    /// on Apple silicon, up to 64 KiB on aarch64 Linux; Windows' 64 KiB
    /// allocation granularity). Guards, decommit and span rounding use it.
    pub fn page_size(&self) -> usize {
        crate::os::page()
    }

    /// The huge page size that large spans and polynomial vectors are
    /// aligned to (the PMD size: 2 MiB with 4 KiB pages, 32 MiB with 16 KiB,
    /// 512 MiB with 64 KiB).
    pub fn huge_page_size(&self) -> usize {
        crate::os::huge_page()
    }

    /// Sets the huge-page policy for spans mapped from now on.
    pub fn set_huge_pages(&self, policy: HugePages) {
        config::set_huge_pages(policy);
        // Threads' cached spans were made under the old policy.
        span::release_caches();
    }

    /// The huge-page policy in force.
    pub fn huge_pages(&self) -> HugePages {
        lifecycle::ensure_init();
        config::huge_pages()
    }

    /// Sets how span memory is made ready for first use from now on
    /// (see [`FirstTouch`]; the environment's `NALLOC_FIRST_TOUCH` sets the
    /// start value).
    pub fn set_first_touch(&self, policy: FirstTouch) {
        lifecycle::ensure_init();
        config::set_first_touch(policy);
    }

    /// The first-touch policy in force.
    pub fn first_touch(&self) -> FirstTouch {
        lifecycle::ensure_init();
        config::first_touch()
    }

    /// Sets what witness memory does when the OS refuses to lock it in RAM
    /// (also `NALLOC_WITNESS_LOCK`): [`WitnessLock::Require`] makes such an
    /// allocation fail (null) instead of handing out memory that may be
    /// swapped. Applies to memory committed from now on.
    pub fn set_witness_lock(&self, policy: WitnessLock) {
        lifecycle::ensure_init();
        config::set_witness_lock(policy);
    }

    /// The witness locking policy in force.
    pub fn witness_lock(&self) -> WitnessLock {
        config::witness_lock()
    }

    /// Sets the warm pool's cap in bytes (0 disables the pool) and releases
    /// what exceeds it.
    pub fn set_pool_cap(&self, bytes: usize) {
        lifecycle::ensure_init();
        config::set_pool_cap(bytes);
        span::shrink_to(config::pool_cap());
    }

    /// The warm pool's cap in bytes.
    pub fn pool_cap(&self) -> usize {
        config::pool_cap()
    }

    /// Sets how long a free small-object page slot is kept before its
    /// memory goes back to the OS (default 5 ms; `None`: never, until
    /// [`NAlloc::trim`]). The slot must also stay free while its thread
    /// keeps allocating (64 slow paths), so a thread that pauses keeps its
    /// pages. Shorter gives memory back sooner; longer keeps more warm for
    /// a program that frees and re-allocates in bursts. A slot emptied by
    /// other threads' frees goes back at its thread's next tidy without
    /// the delay (unless it is `None`).
    pub fn set_purge_delay(&self, delay: Option<core::time::Duration>) {
        lifecycle::ensure_init();
        let us = delay.map_or(u64::MAX, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX - 1));
        config::set_purge_delay_us(us);
    }

    /// The purge delay in force (`None`: never).
    pub fn purge_delay(&self) -> Option<core::time::Duration> {
        lifecycle::ensure_init();
        match config::purge_delay_us() {
            u64::MAX => None,
            us => Some(core::time::Duration::from_micros(us)),
        }
    }

    /// Returns retained memory to the OS, process-wide: now, every warm
    /// span (pooled, and those the calling thread keeps for its own reuse),
    /// every cached empty segment, the calling thread's empty pages and free
    /// page slots, and those of the heaps of exited threads (including pages
    /// that other threads' frees emptied). Every other live thread's heap
    /// does the same at its owner's next small-object refill or large
    /// allocation (only its owner may touch it), and its kept spans go at
    /// its next large allocation or free. Returns the bytes released now.
    pub fn trim(&self) -> usize {
        let before = stats::RETURNED.load(core::sync::atomic::Ordering::Relaxed);
        span::trim();
        heap::trim_all();
        stats::RETURNED.load(core::sync::atomic::Ordering::Relaxed) - before
    }

    /// Opens a proof phase named `name` until the guard drops: calls, bytes
    /// allocated, peak live bytes, bytes returned to the OS, minor page
    /// faults and wall time are kept per phase name (see
    /// [`NAlloc::phase_report`]). Phases are process-wide — allocations by
    /// every thread count, as rayon workers allocate for the phase the main
    /// thread is in — and nest: figures go to the innermost open phase,
    /// except the peak, which every open phase sees. A guard ends the
    /// innermost open phase, so drop guards in reverse order of creation.
    ///
    /// Costs a walk over the thread heaps and one `getrusage` at each
    /// boundary; nothing per allocation beyond the per-thread counters that
    /// `stats()` sums anyway (docs/design/phases-and-budget.md). Names are
    /// cut to 31 bytes; beyond 32 distinct names, the rest share one
    /// `(other)` row.
    ///
    /// ```
    /// use zk_nalloc::NAlloc;
    /// static ALLOC: NAlloc = NAlloc::new();
    /// {
    ///     let _p = ALLOC.phase("commit");
    ///     // ... allocate ...
    /// }
    /// let r = ALLOC.phase_report();
    /// assert_eq!(r.get("commit").map(|p| p.entries), Some(1));
    /// ```
    pub fn phase(&self, name: &str) -> PhaseGuard {
        PhaseGuard::open(name, false)
    }

    /// Like [`NAlloc::phase`], but the phase's end gives memory back to the
    /// OS first ([`NAlloc::trim`]), so that the next phase starts lean; what
    /// goes back counts to this phase's `returned_to_os`.
    pub fn phase_with_trim(&self, name: &str) -> PhaseGuard {
        PhaseGuard::open(name, true)
    }

    /// The per-phase figures so far (open phases up to now). `Display`
    /// prints them as an aligned table; `NALLOC_STATS=1` prints it at exit.
    pub fn phase_report(&self) -> PhaseReport {
        phase::report()
    }

    /// Forgets every phase's figures (open phases stop being tracked).
    pub fn reset_phases(&self) {
        phase::clear();
    }

    /// Restarts every peak at the current value — `peak_mapped`,
    /// `polynomial_peak`, this instance's `polynomial_arena_peak`,
    /// `scratch_peak` and the live-bytes peak behind phases — so that a
    /// long-running prover can measure each proof's peak rather than the
    /// process's. (Witness peaks are per arena and not reset.) The warm
    /// pool is bounded by the live-bytes peak, so after a reset it keeps
    /// only what the next proof's own peak justifies.
    pub fn reset_peaks(&self) {
        phase::reset_peaks();
        self.polynomial.reset_peak();
        scratch::PEAK.store(
            scratch::USED.load(core::sync::atomic::Ordering::Relaxed),
            core::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Sets the memory budget: a request that would take nalloc's committed
    /// memory past `bytes` gets null (after nalloc gave back what it holds
    /// for reuse), with one line on stderr; `None` removes it. Overrides
    /// `NALLOC_BUDGET`. Blocks already handed out are never touched. See
    /// the README's "Memory budget" and docs/design/phases-and-budget.md.
    pub fn set_budget(&self, bytes: Option<usize>) {
        lifecycle::ensure_init();
        config::set_budget(bytes.unwrap_or(usize::MAX));
    }

    /// The memory budget in force (`None`: none).
    pub fn budget(&self) -> Option<usize> {
        lifecycle::ensure_init();
        match config::budget() {
            usize::MAX => None,
            b => Some(b),
        }
    }

    /// The memory limit of the process's container as read at start-up
    /// (cgroup v2 `memory.max`, else v1 `memory.limit_in_bytes`), if one is
    /// set. Where it is, the default pool cap and `NALLOC_BUDGET=auto`
    /// derive from it.
    pub fn memory_limit(&self) -> Option<usize> {
        lifecycle::ensure_init();
        config::memory_limit()
    }

    /// Current figures. See [`Stats`].
    pub fn stats(&self) -> Stats {
        use core::sync::atomic::Ordering::Relaxed;
        let w = self.witness.stats();
        let ws = witness::SCOPE_ARENA.stats();
        let t = heap::totals();
        let (small_allocs, small_frees, heaps) = (t.allocs, t.frees, t.heaps);
        let pool = span::pool_bytes() + span::cached_bytes();
        Stats {
            witness_used: w.used + ws.used,
            witness_peak: w.peak + ws.peak,
            witness_capacity: w.capacity + ws.capacity,
            witness: w,
            witness_scope: ws,
            polynomial_used: stats::SPANS_LIVE.get(),
            polynomial_peak: stats::SPANS_LIVE.peak(),
            polynomial_capacity: stats::SPANS_LIVE.get() + pool,
            polynomial_arena_used: self.polynomial.used(),
            polynomial_arena_peak: self.polynomial.peak(),
            explicit_huge_bytes: stats::EXPLICIT_HUGE.load(Relaxed),
            scratch_used: scratch::USED.load(Relaxed),
            scratch_peak: scratch::PEAK.load(Relaxed),
            scratch_capacity: scratch::CAPACITY.load(Relaxed),
            mapped: stats::MAPPED.get(),
            peak_mapped: stats::MAPPED.peak(),
            pool_retained: pool,
            returned_to_os: stats::RETURNED.load(Relaxed),
            small_allocs,
            small_frees,
            large_allocs: stats::SPAN_ALLOCS.load(Relaxed) as u64,
            large_frees: stats::SPAN_FREES.load(Relaxed) as u64,
            pool_hits: stats::POOL_HITS.load(Relaxed) as u64,
            span_remaps: stats::REMAPS.load(Relaxed) as u64,
            span_gathered_bytes: stats::GATHERED.load(Relaxed) as u64,
            heaps,
            events: events(&t),
        }
    }
}

/// The event counts, from the small layer's totals `t` and the base
/// layer's lock and OS counters.
fn events(t: &heap::Totals) -> EventCounts {
    use core::sync::atomic::Ordering::Relaxed;
    let os = stats::os_calls();
    EventCounts {
        lock_acquisitions: stats::LOCKS.taken.load(Relaxed),
        lock_contended: stats::LOCKS.contended.load(Relaxed),
        remote_batches: t.remote_batches,
        remote_blocks: t.remote_blocks,
        remote_atomics: t.remote_atomics,
        remote_kept: t.remote_kept,
        remote_collects: t.remote_collects,
        remote_collected: t.remote_collected,
        os_map: os.map,
        os_unmap: os.unmap,
        os_remap: os.remap,
        os_advise: os.advise,
        os_purge: os.purge,
        os_protect: os.protect,
        os_query: os.query,
    }
}

/// The Rust front's side of a resize: a moved block keeps its layout's
/// alignment and needs no bookkeeping.
struct RustFront;

impl Front for RustFront {
    #[inline]
    fn alloc_moved(&self, size: usize, align: usize, witness: bool) -> *mut u8 {
        if witness {
            route::alloc_witness(size, align)
        } else {
            route::alloc(size, align, false)
        }
    }

    #[inline]
    unsafe fn resized(&self, _base: *mut u8, _size: usize, _align: usize) {}

    #[inline]
    unsafe fn retire(&self, _b: &Block) {}
}

// SAFETY: blocks are valid, aligned, non-overlapping and stay so until
// freed; all shared state is synchronised (see the module docs of heap,
// span and witness). Nothing here unwinds or allocates through itself.
unsafe impl GlobalAlloc for NAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        route::alloc(layout.size(), layout.align(), false)
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        route::alloc(layout.size(), layout.align(), true)
    }

    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        // SAFETY: GlobalAlloc contract: `p` was allocated with `layout` here.
        unsafe { route::dealloc(p, layout.size(), layout.align()) }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let b = Block {
            base: p,
            size: layout.size(),
            align: layout.align(),
            offset: 0,
            home: route::Home::of(p, layout.size(), layout.align()),
        };
        // SAFETY: GlobalAlloc contract: `p` is live with `layout`, and
        // `new_size` rounded to the alignment does not overflow isize.
        unsafe { route::realloc(&RustFront, b, new_size) }
    }
}
