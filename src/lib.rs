//! # nalloc — a memory allocator for zero-knowledge provers
//!
//! `NAlloc` is a Rust global allocator tuned for what provers do — millions
//! of small field elements, multi-GB FFT/NTT vectors freed and re-made every
//! proof, and secret witness data — plus three arenas that no general-purpose
//! allocator offers: wiped, locked, guard-fenced **witness** memory;
//! huge-page-aware **polynomial** memory; and **scratch** memory with an O(1)
//! reset that the borrow checker keeps from dangling.
//!
//! ```
//! use zk_nalloc::NAlloc;
//!
//! #[global_allocator]
//! static ALLOC: NAlloc = NAlloc::new();
//!
//! fn main() {
//!     let v = vec![0u64; 1 << 20];          // a warm, huge-page-friendly span
//!     let secret = ALLOC.witness_scope(|| vec![42u8; 32]); // wiped on free
//!     drop((v, secret));
//!     let s = ALLOC.stats();
//!     assert!(s.small_allocs + s.large_allocs > 0);
//! }
//! ```
//!
//! ## Map of the source
//!
//! Calls go one way, top to bottom:
//!
//! ```text
//! lib.rs         NAlloc: the GlobalAlloc front, stats(), trim(), arena handles
//!  ├─ raw.rs         free without a Layout (for the C ABI): segment-region check or a 16-byte header
//!  ├─ witness.rs     witness arena: guard-fenced, mlock'ed, wiped chunks in one reserved region;
//!  │                  per-class runs, per-thread block caches (by heap index), batches under one lock
//!  │   └─ secret.rs    SecretBox / SecretVec: owned secrets, in-place init, wiped growth
//!  ├─ polynomial.rs  polynomial arena: placement + huge-page reporting over spans
//!  ├─ scratch.rs     scratch arena: chunked bump allocation, O(1) lifetime-checked reset
//!  ├─ heap.rs        per-thread heaps: the small-object fast paths, tidying, thread start/exit
//!  │   ├─ page.rs        a page: free list, lazy bump extension, free-top trim, remote-free list (remote.rs)
//!  │   └─ segment.rs     4 MiB aligned segments of 16 pages; pointer → page by masking
//!  ├─ span.rs        large blocks: class-rounded mappings, retention budget, mremap growth
//!  │   └─ pool.rs        the warm pool: coalescing free ranges, best-fit cuts, bounded
//!  ├─ region.rs      reserved address ranges cut into slots (segments, witness chunks)
//!  ├─ size_class.rs  size → class arithmetic
//!  ├─ hardened.rs    (feature `hardened`) misuse detection: encoded links, canaries, double/invalid free
//!  ├─ config.rs      huge-page policy, pool cap, env vars (read without allocating)
//!  ├─ stats.rs       process-wide slow-path counters
//!  ├─ sync.rs        the spin lock used on slow paths only
//!  ├─ remote.rs      cross-thread frees: per-page atomic marks, one bit per block (model-checked with loom)
//!  ├─ once.rs        lock-free lazy initialisation flag (model-checked with loom)
//!  └─ os/            the only code that makes system calls: posix, linux, macos, windows, miri
//! ```
//!
//! ## How a request is routed
//!
//! * **Small** (≤ 64 KiB, alignment ≤ 64 KiB): a size class, then the calling
//!   thread's heap pops a block from the class's current page — no lock, no
//!   atomic read-modify-write, no system call. Blocks freed by another
//!   thread are batched per page by that thread and marked in the page's
//!   remote-free bits (one atomic OR per word of blocks, a bit per block);
//!   the owner takes the marks when it runs dry and links those blocks
//!   lowest address first, without reading them. The freeing thread may
//!   instead keep full batches of line-sized blocks for its own
//!   allocations (bounded; handed back when unused or at exit). An emptied
//!   page slot keeps its blocks linked for the next page of the same
//!   class. Each heap tidies now and then:
//!   pages whose blocks are all free are released, and page slots free
//!   for 5 ms while the heap kept working are purged (their memory goes
//!   back to the OS) — at once if other threads' frees emptied them. A
//!   page's free top left by a burst (many blocks of one size, allocated
//!   and freed) goes back too, at the first tidy after the page grew.
//! * **Large** (> 64 KiB): a span mapped from the OS, 2 MiB aligned from
//!   2 MiB up (huge pages), kept warm in a bounded pool after free, where
//!   freed neighbours coalesce and later requests are cut from the
//!   best-fitting range; grown in place from the pool or with `mremap` on
//!   Linux. The pool never holds more than what the program's own need
//!   (live spans plus written small-object pages) has fallen below its
//!   peak, so keeping spans warm does not raise the peak RSS.
//! * **Witness**: `dealloc` first asks, with one range comparison, whether
//!   the pointer lies in the witness region; if so the block is wiped and
//!   returned to its arena — to the freeing thread's cache in that arena,
//!   without a lock or atomic read-modify-write; caches trade whole batches
//!   with the arena's shared lists under its lock. Inside
//!   [`NAlloc::witness_scope`] every global allocation of the thread is
//!   routed there.
//!
//! ## Undefined cases
//!
//! As with every allocator, freeing a pointer that this allocator did not
//! hand out, freeing twice, or passing a `Layout` different from the one
//! used to allocate is undefined behaviour (the block's size class or span
//! length is recomputed from the layout). nalloc never panics, aborts or
//! allocates through itself inside `alloc`/`dealloc`/`realloc`: failures
//! return null.

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

use core::alloc::{GlobalAlloc, Layout};
use core::ptr;

mod config;
#[cfg(feature = "hardened")]
mod hardened;
mod heap;
mod once;
mod os;
mod page;
mod polynomial;
mod pool;
pub mod raw;
mod region;
mod remote;
mod scratch;
mod secret;
mod segment;
mod size_class;
mod span;
mod stats;
mod sync;
mod witness;

#[cfg(test)]
mod miri_tests;

pub use allocator_api2;
pub use config::HugePages;
#[cfg(feature = "fault-injection")]
pub use os::fault;
pub use polynomial::PolynomialArena;
pub use scratch::ScratchArena;
pub use secret::{SecretBox, SecretVec, Zeroable};
pub use witness::{WitnessArena, WitnessStats};

use size_class::{class_for, class_of, is_small, MIN_ALIGN, SMALL_MAX};

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

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
    /// Bytes of freed spans kept warm for reuse.
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
    /// Thread heaps created so far (the peak number of live threads).
    pub heaps: usize,
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

    /// Sets the huge-page policy for spans mapped from now on.
    pub fn set_huge_pages(&self, policy: HugePages) {
        config::set_huge_pages(policy);
    }

    /// The huge-page policy in force.
    pub fn huge_pages(&self) -> HugePages {
        config::ensure_init();
        config::huge_pages()
    }

    /// Sets the warm pool's cap in bytes (0 disables the pool) and releases
    /// what exceeds it.
    pub fn set_pool_cap(&self, bytes: usize) {
        config::ensure_init();
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
        config::ensure_init();
        let us = delay.map_or(u64::MAX, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX - 1));
        config::set_purge_delay_us(us);
    }

    /// The purge delay in force (`None`: never).
    pub fn purge_delay(&self) -> Option<core::time::Duration> {
        config::ensure_init();
        match config::purge_delay_us() {
            u64::MAX => None,
            us => Some(core::time::Duration::from_micros(us)),
        }
    }

    /// Returns retained memory to the OS now: every warm span, every cached
    /// empty segment, and the calling thread's empty pages and free page
    /// slots (other threads' go back on their own after 5 ms free, as they
    /// keep allocating). Returns the bytes released.
    pub fn trim(&self) -> usize {
        let before = stats::RETURNED.load(core::sync::atomic::Ordering::Relaxed);
        span::trim();
        heap::trim_current_thread();
        stats::RETURNED.load(core::sync::atomic::Ordering::Relaxed) - before
    }

    /// Current figures. See [`Stats`].
    pub fn stats(&self) -> Stats {
        use core::sync::atomic::Ordering::Relaxed;
        let w = self.witness.stats();
        let ws = witness::SCOPE_ARENA.stats();
        let (small_allocs, small_frees, heaps) = heap::totals();
        let pool = span::pool_bytes();
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
            heaps,
        }
    }
}

/// Allocation that is not a default-aligned small block: aligned small
/// blocks, spans, and large blocks inside a witness scope.
#[cold]
#[inline(never)]
pub(crate) fn alloc_layout(layout: Layout, zeroed: bool) -> *mut u8 {
    let (size, align) = (layout.size(), layout.align());
    if is_small(size, align) {
        let class = class_for(size, align);
        // SAFETY: `class_for` returns a valid class for small layouts.
        return unsafe { heap::alloc_class(class, size, zeroed) };
    }
    if heap::in_scope() {
        return witness::SCOPE_ARENA.alloc_raw(size, align);
    }
    heap::tidy_hint();
    span::alloc(size, align, zeroed)
}

/// Frees any block of the global engine.
///
/// # Safety
/// `p` must be live and allocated with `layout` through the engine.
#[inline]
pub(crate) unsafe fn dealloc_layout(p: *mut u8, layout: Layout) {
    let (size, align) = (layout.size(), layout.align());
    if witness::contains(p) {
        // SAFETY: caller contract; witness blocks of the global engine come
        // from the scope arena.
        unsafe { witness::scope_dealloc(p, size, align) };
    } else if is_small(size, align) {
        // SAFETY: caller contract: a live small block. The class is only
        // computed where hardened mode checks it.
        let class = if cfg!(feature = "hardened") {
            class_for(size, align)
        } else {
            0
        };
        // SAFETY: caller contract: a live small block.
        unsafe { heap::free(p, size, class) };
    } else {
        // SAFETY: caller contract: a live span of this layout.
        unsafe { span::dealloc(p, size, align) };
    }
}

/// Reports allocation failure for the infallible scratch helpers.
#[cold]
pub(crate) fn alloc_failed(layout: Layout) -> ! {
    std::alloc::handle_alloc_error(layout)
}

// SAFETY: blocks are valid, aligned, non-overlapping and stay so until
// freed; all shared state is synchronised (see the module docs of heap,
// span and witness). Nothing here unwinds or allocates through itself.
unsafe impl GlobalAlloc for NAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() <= SMALL_MAX && layout.align() <= MIN_ALIGN {
            // SAFETY: `class_of` of a size ≤ SMALL_MAX is a valid class.
            return unsafe { heap::alloc(class_of(layout.size()), layout.size()) };
        }
        alloc_layout(layout, false)
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        alloc_layout(layout, true)
    }

    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        // SAFETY: GlobalAlloc contract: `p` was allocated with `layout` here.
        unsafe { dealloc_layout(p, layout) }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        let in_witness = witness::contains(p);
        if is_small(size, align) && is_small(new_size, align) && class_for(size, align) == class_for(new_size, align) {
            #[cfg(feature = "hardened")]
            if !in_witness {
                // SAFETY: `p` is a live small block of `size` bytes.
                unsafe { hardened::on_resize(p, size, new_size) };
            }
            if in_witness && new_size < size {
                // Witness frees wipe the requested bytes only: wipe what
                // this shrink cuts off now.
                // SAFETY: `p` is live with `size` bytes.
                unsafe { os::secure_zero(p.add(new_size), size - new_size) };
            }
            return p;
        }
        if !in_witness && !is_small(size, align) && !is_small(new_size, align) {
            // SAFETY: GlobalAlloc contract: `p` is a live span of `layout`.
            let q = unsafe { span::realloc_in_place(p, size, align, new_size) };
            if !q.is_null() {
                return q;
            }
        }
        // SAFETY: GlobalAlloc contract: `align` is a power of two and
        // `new_size` rounded to it does not overflow isize.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, align) };
        let q = if in_witness {
            // A secret stays a secret when its vector grows.
            witness::SCOPE_ARENA.alloc_raw(new_size, align)
        } else {
            // SAFETY: forwarded contract.
            unsafe { self.alloc(new_layout) }
        };
        if q.is_null() {
            return q; // the old block is untouched
        }
        // SAFETY: both blocks are live, distinct, and at least
        // `min(size, new_size)` bytes long.
        unsafe {
            ptr::copy_nonoverlapping(p, q, size.min(new_size));
            dealloc_layout(p, layout);
        }
        q
    }
}
