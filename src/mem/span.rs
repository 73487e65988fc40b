//! Spans: large blocks (over 64 KiB) mapped directly from the OS, and the
//! warm pool that keeps freed spans mapped for reuse.
//!
//! **Sizing.** A span's length is a pure function of the request
//! ([`span_len`]): above 64 KiB sizes are rounded up to one of four classes
//! per doubling (≤ 25 % virtual slack; untouched slack costs no RSS) and, from
//! 2 MiB, to a whole number of 2 MiB huge pages. `dealloc` and `realloc`
//! recompute it from the `Layout`, so spans need no header and no registry,
//! and a freed span fits any later request of the same class exactly.
//!
//! **Placement.** Spans of 2 MiB and more start on a 2 MiB boundary so that
//! transparent huge pages can back all of them; smaller spans are page
//! aligned (≥ 4 KiB, so every large block is at least 64-byte aligned).
//!
//! **Warm pool.** A freed span is kept mapped (its pages stay faulted in) in
//! the pool (`pool.rs`: free ranges that coalesce with their neighbours, cut
//! best-fit for later requests, bounded by a slot count and `pool_cap`
//! bytes, oldest released first). Retention must not raise the peak RSS:
//! live spans, the small-object memory written so far and pooled spans stay
//! within the peak of the first two (`stats::NEED`), so pooled memory goes
//! before fresh spans are mapped and as small-object pages are first written
//! (see `make_room`). This is what saves FFT provers from page-faulting their
//! multi-MB vectors back in every proof. `NAlloc::trim()` empties the pool.
//!
//! **Built from pieces.** A request no pooled range holds (a prover's
//! vectors growing from one proof step to the next) is still served from
//! warm memory where the pool has some: a fresh mapping of the full length
//! is made, and the largest pooled pieces are moved into it by page tables
//! (`os::move_pages`, `mremap` on Linux), so only the remainder is faulted
//! in afresh. Pieces are whole huge pages for huge-page spans, so their
//! page tables move as huge entries. A realloc that grows by `mremap` fills
//! its new tail the same way. Pooled memory that would otherwise be
//! unmapped to make room for the fresh span is reused instead.
//!
//! **Zeroing.** A fresh span is zero already. A recycled one (or the moved
//! pieces at the front of a built one) asked for by `alloc_zeroed` is
//! cleared with memset: clearing resident memory costs much less than
//! faulting zero pages back in, even huge ones (see
//! docs/design/first-touch.md). A span its last user barely touched is
//! handed back to the kernel instead (`MADV_DONTNEED`): a memset would fault
//! in memory the next user may not touch either. Under
//! [`FirstTouch::Fresh`](crate::base::config::FirstTouch) no pieces are
//! moved and huge-page spans of at least [`ZERO_BY_PURGE_MIN`] are purged
//! (measured in docs/design/spans-and-warm-pool.md).
//!
//! **realloc.** A span shrinks by giving its tail to the pool, and grows in
//! place into a pooled range that follows it. Otherwise growth copies into a
//! warm pooled span of the new size if there is one (cheaper than faulting
//! fresh pages, and it keeps the pool from holding stale spans; see
//! `realloc_in_place`), or on Linux moves page tables with `mremap` instead
//! of bytes. Elsewhere (or when `mremap` fails) the caller copies.
//!
//! **Thread cache.** A thread that owns a heap keeps its few most recently
//! freed spans ([`SpanCache`], in its heap) and takes an exact fit from them
//! first, so that the common prover pattern — free a vector, allocate one of
//! the same size again — takes no lock (the pool's lock was the one prover
//! workloads took most: docs/design/scaling.md). On a miss it goes to the
//! pool; where the pool has no fit either and the request is large enough
//! to be built from pieces, the cache goes back first (so that its pages
//! can be moved into the new span). Cached bytes count as retained, like
//! pooled ones: when retention must shrink and the pool alone cannot, the
//! caches release their oldest spans to the OS at their threads' next span
//! call or heap tidy (through the pool, that was a put and a cut under its
//! lock for each); a trim (or a huge-page policy switch) releases them all.
//! A cache over its bounds puts its oldest spans back into the pool in one
//! trip, a quarter below the bounds; it is flushed into the pool at thread
//! exit.
//!
//! **Budget.** Every fresh mapping or growth asks `budget` first (see
//! docs/design/phases-and-budget.md); a pooled span costs no new memory.

use core::ptr;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering::Relaxed};

use crate::base::check::invariant;
use crate::base::config::{self, FirstTouch, HugePages};
use crate::base::stats;
use crate::mem::{budget, pool};
use crate::os::{self, HugeAdvice};

use crate::policy::{
    AUTO_HUGE_MIN, GATHER_MIN, GATHER_PIECE_DIVISOR, RETENTION_TOLERANCE_DIVISOR, RETENTION_TOLERANCE_MAX,
    RETENTION_TOLERANCE_MIN, SPAN_CACHE_BYTES, SPAN_CACHE_SLOTS, ZERO_BY_PURGE_MIN, ZERO_SAMPLE_MIN,
    ZERO_SPARSE_DIVISOR,
};

/// Length of the mapping that serves `size` bytes at `align`; `None` on
/// overflow.
#[inline]
pub(crate) fn span_len(size: usize, align: usize) -> Option<usize> {
    let s = size.max(1);
    // Up to the largest page size, class steps would be no coarser than a
    // page: round to the page only.
    let mut len = if s <= os::PAGE_MAX {
        round_up(s, os::page())?
    } else {
        let b = usize::BITS - 1 - (s - 1).leading_zeros();
        let step = 1usize << (b - 2);
        round_up(round_up(s, step)?, os::page())?
    };
    if len >= os::huge_page() {
        len = round_up(len, os::huge_page())?;
    }
    if len > isize::MAX as usize - align {
        return None;
    }
    Some(len)
}

/// Alignment a span of `len` bytes is placed at.
#[inline]
pub(crate) fn span_align(len: usize, align: usize) -> usize {
    let natural = if len >= os::huge_page() {
        os::huge_page()
    } else {
        os::page()
    };
    natural.max(align)
}

#[inline]
fn round_up(v: usize, to: usize) -> Option<usize> {
    Some(v.checked_add(to - 1)? & !(to - 1))
}

/// Bytes held in the warm pool now.
pub(crate) fn pool_bytes() -> usize {
    pool::bytes()
}

/// Whether a span's pages are new to the process or warm pooled memory.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Touch {
    /// A fresh mapping (or the fresh tail of a remap): its pages are faulted
    /// in by their first user.
    First,
    /// Taken from the warm pool.
    Reuse,
}

/// The huge-page advice for a span of `len` bytes. Under `HugePages::Auto`
/// a span is advised once it is reused, not on first use (unless
/// `FirstTouch::Fresh`): where fresh huge pages are slow to fault in (a VM
/// whose host reclaims freed guest memory), advising them made first proofs
/// slower than glibc's, while small pages fault as glibc's do (measured in
/// docs/design/first-touch.md).
fn advice_for(len: usize, touch: Touch) -> Option<HugeAdvice> {
    match config::huge_pages() {
        HugePages::On | HugePages::Explicit if len >= os::huge_page() => Some(HugeAdvice::Huge),
        HugePages::Auto if len >= AUTO_HUGE_MIN => {
            let first = touch == Touch::First && config::first_touch() == FirstTouch::Reuse;
            (!first).then_some(HugeAdvice::Huge)
        }
        HugePages::Off if len >= os::huge_page() => Some(HugeAdvice::NoHuge),
        _ => None,
    }
}

fn advise(ptr: *mut u8, len: usize, touch: Touch) {
    if let Some(a) = advice_for(len, touch) {
        // SAFETY: `ptr`/`len` is a whole span of ours.
        unsafe { os::advise_huge(ptr, len, a) };
    }
}

/// Allocates a span for `size` bytes at `align`, from the calling thread's
/// `cache` first where it has one. Null on failure.
pub(crate) fn alloc(size: usize, align: usize, zeroed: bool, mut cache: Option<&mut SpanCache>) -> *mut u8 {
    let Some(len) = span_len(size, align) else {
        return ptr::null_mut();
    };
    let at = span_align(len, align);
    let mut pooled = ptr::null_mut();
    if let Some(c) = cache.as_deref_mut() {
        c.settle();
        pooled = c.take(len, at);
    }
    if pooled.is_null() {
        pooled = pool::take(len, at);
    }
    if let Some(c) = cache.filter(|c| pooled.is_null() && c.n > 0) {
        // No fit anywhere: the cache goes back where the pool can move it
        // into the new span, and as much of it as fresh memory on top of it
        // would raise retention past its budget.
        if c.give_back_for(len) {
            pooled = pool::take(len, at);
        }
    }
    let (p, dirty) = if pooled.is_null() {
        let (p, dirty) = map_fresh(size, len, align);
        if p.is_null() {
            return p;
        }
        (p, dirty)
    } else {
        stats::POOL_HITS.fetch_add(1, Relaxed);
        (pooled, len)
    };
    let zeroing = if zeroed && dirty > 0 {
        // SAFETY: the span is ours, `len` bytes, and unused; past `dirty` (a
        // page multiple, at most `len`) it is fresh (zero) memory.
        unsafe { zero_recycled(p, size.min(dirty), dirty, len) }
    } else {
        Zeroing::Advise
    };
    // A pooled range may have been pooled under another huge-page policy
    // (a cut of a bigger span, a merge of smaller ones). Not a span just
    // purged for sparse use: it goes without huge pages (see
    // `zero_recycled`), and advising it only to take the advice back costs
    // two calls that split and merge its mapping.
    if !pooled.is_null() && zeroing == Zeroing::Advise {
        advise(p, len, Touch::Reuse);
    }
    live_add(len);
    stats::SPAN_ALLOCS.fetch_add(1, Relaxed);
    stats::SPAN_BYTES.fetch_add(size, Relaxed);
    p
}

/// Maps a new span of `len` bytes, built as far as the pool allows from
/// warm pooled pieces moved into it (see [`Pieces`]). Returns the span and
/// how many of its leading bytes may be non-zero; null on failure.
fn map_fresh(size: usize, len: usize, align: usize) -> (*mut u8, usize) {
    let explicit = config::huge_pages() == HugePages::Explicit && len >= os::huge_page() && align <= os::huge_page();
    let mut pieces = Pieces::new();
    if !explicit && len >= GATHER_MIN {
        pieces.take(len, gather_unit(len, 0));
    }
    if !budget::admit(size, len - pieces.bytes()) {
        pieces.put_back();
        return (ptr::null_mut(), 0);
    }
    make_room(len - pieces.bytes());
    // An explicit huge-page mapping is born backed; the fallback gets the
    // transparent huge page advice.
    let p = if explicit {
        os::map_explicit_huge(len)
    } else {
        ptr::null_mut()
    };
    if !p.is_null() {
        stats::EXPLICIT_HUGE.fetch_add(len, Relaxed);
        stats::mapped(len);
        return (p, 0);
    }
    let p = os::map(len, span_align(len, align));
    if p.is_null() {
        pieces.put_back();
        return (p, 0);
    }
    // SAFETY: `p`/`len` is the fresh mapping just made, untouched.
    let (moved, dirty) = unsafe { pieces.place(p) };
    stats::mapped(len - moved);
    advise(p, len, Touch::First);
    (p, dirty)
}

/// The granule of pieces moved to offset `at` of a span of `len` bytes:
/// whole huge pages where both sides are huge-page aligned, so that their
/// page tables move as huge entries instead of being split.
fn gather_unit(len: usize, at: usize) -> usize {
    if len >= os::huge_page() && at % os::huge_page() == 0 {
        os::huge_page()
    } else {
        os::page()
    }
}

/// Most pooled pieces one span is built from: each costs a system call.
const GATHER_PIECES: usize = crate::policy::GATHER_PIECES;

/// Warm pooled pieces taken to build a larger span (see [`map_fresh`]).
struct Pieces {
    list: [pool::Range; GATHER_PIECES],
    n: usize,
}

impl Pieces {
    fn new() -> Self {
        Self {
            list: [pool::Range {
                ptr: ptr::null_mut(),
                len: 0,
            }; GATHER_PIECES],
            n: 0,
        }
    }

    fn bytes(&self) -> usize {
        self.list[..self.n].iter().map(|r| r.len).sum()
    }

    /// Takes pooled pieces, largest first, towards `want` bytes, each whole
    /// `unit`s (see [`gather_unit`]) and at least `1 / GATHER_PIECE_DIVISOR`
    /// of `want`, so that a span costs few moves.
    fn take(&mut self, mut want: usize, unit: usize) {
        if !os::CAN_REMAP || pool::bytes() == 0 || config::first_touch() == FirstTouch::Fresh {
            return;
        }
        let min = want / GATHER_PIECE_DIVISOR;
        while self.n < GATHER_PIECES && want > 0 {
            let Some(r) = pool::take_piece(want, unit, min) else {
                break;
            };
            self.list[self.n] = r;
            self.n += 1;
            want -= r.len;
        }
    }

    /// Returns unplaced pieces to the pool.
    fn put_back(&mut self) {
        for r in &self.list[..self.n] {
            // SAFETY: a piece taken from the pool: whole pages, unused.
            unsafe { pool::put(r.ptr, r.len) };
        }
        self.n = 0;
    }

    /// Moves the pieces to the start of the fresh memory at `p`, one after the
    /// other. A piece the kernel refuses (it spans two mappings) is split
    /// and its halves moved; what still fails goes back to the pool and
    /// leaves a fresh (zero) gap. Returns the bytes moved and the end of
    /// the last piece placed (the span's possibly non-zero prefix).
    ///
    /// # Safety
    /// `p` must be a fresh, unreferenced span at least as long as the pieces.
    unsafe fn place(&mut self, p: *mut u8) -> (usize, usize) {
        let (mut off, mut moved, mut dirty) = (0, 0, 0);
        for i in 0..self.n {
            let r = self.list[i];
            // SAFETY: caller contract: `p + off .. + r.len` lies in the span.
            let m = unsafe { move_split(r.ptr, r.len, p.add(off)) };
            if m > 0 {
                dirty = off + r.len;
            }
            moved += m;
            off += r.len;
        }
        self.n = 0;
        if moved > 0 {
            stats::GATHERED.fetch_add(moved, Relaxed);
        }
        (moved, dirty)
    }
}

/// Moves `src`/`len` (pool memory taken out of the pool) to `dst`, halving
/// the range where the kernel refuses it (a pooled range may join several
/// mappings, and one move must stay within one); a part that still fails at
/// one page goes back to the pool. Returns the bytes moved.
///
/// # Safety
/// `src`/`len`: unused pool memory taken out of the pool; `dst`/`len`: an
/// unreferenced part of a fresh span of ours.
unsafe fn move_split(src: *mut u8, len: usize, dst: *mut u8) -> usize {
    // SAFETY: caller contract.
    if unsafe { os::move_pages(src, len, dst) } {
        return len;
    }
    let unit = if len % os::huge_page() == 0 && len > os::huge_page() {
        os::huge_page()
    } else {
        os::page()
    };
    if len <= unit {
        // SAFETY: still unused memory of ours, nothing moved.
        unsafe { pool::put(src, len) };
        return 0;
    }
    let half = (len / 2).next_multiple_of(unit).min(len - unit);
    // SAFETY: both halves lie within the caller's ranges.
    unsafe { move_split(src, half, dst) + move_split(src.add(half), len - half, dst.add(half)) }
}

/// What [`zero_recycled`] did to a span's huge-page advice.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Zeroing {
    /// Nothing: the span is advised as any reused span.
    Advise,
    /// Purged for sparse use and advised without huge pages: it keeps
    /// that advice.
    Sparse,
}

/// Clears the first `size` bytes of a span of `len` bytes whose first
/// `dirty` bytes (whole pages) may be non-zero: the rest is fresh.
///
/// # Safety
/// `p` is an unused span of `len` bytes that we own; `size <= dirty <= len`.
unsafe fn zero_recycled(p: *mut u8, size: usize, dirty: usize, len: usize) -> Zeroing {
    let huge = advice_for(len, Touch::Reuse) == Some(HugeAdvice::Huge);
    // Under `FirstTouch::Fresh` large huge-page spans come back from the
    // kernel as zero pages, faulted in by whichever threads fill them.
    let fresh = config::first_touch() == FirstTouch::Fresh;
    // SAFETY: (purge) the dirty pages are ours and unused; `dirty` is a
    // page multiple.
    if fresh && huge && dirty >= ZERO_BY_PURGE_MIN && unsafe { os::purge(p, dirty) } {
        return Zeroing::Advise;
    }
    // A span whose last user touched little of it (mostly not resident) is
    // purged: a memset would fault all of it in for a caller that, like the
    // last one, may touch a few pages. The sample only chooses; purging
    // makes the span zero either way (see docs/design/spans-and-warm-pool.md).
    // Only the dirty pages are sampled: the fresh rest of a span built from
    // pieces is not resident, and would make warm pieces look sparse.
    if size >= ZERO_SAMPLE_MIN {
        // SAFETY: caller contract: our mapping, page aligned.
        if let Some((resident, sampled)) = unsafe { os::resident_sample(p, dirty) } {
            // SAFETY: as for the purge above.
            if resident * ZERO_SPARSE_DIVISOR < sampled && unsafe { os::purge(p, dirty) } {
                if !huge {
                    return Zeroing::Advise;
                }
                // Sparse use of a huge-page span faults 2 MiB per page
                // touched; the next user is likely as sparse as the last, so
                // this span goes without (until it is taken again without
                // being sparse, which advises it anew).
                // SAFETY: our span, page aligned; advice is a hint.
                unsafe { os::advise_huge(p, len, HugeAdvice::NoHuge) };
                return Zeroing::Sparse;
            }
        }
    }
    // SAFETY: caller contract; only the requested bytes need clearing, the
    // slack beyond `size` is never handed out.
    unsafe { ptr::write_bytes(p, 0, size) };
    Zeroing::Advise
}

/// A pooled span for a request of `len` bytes at `align`, cut from the
/// best-fitting warm range. Spans no range holds are built from pooled
/// pieces instead (see [`map_fresh`]).
fn take_pooled(len: usize, align: usize) -> Option<*mut u8> {
    let p = pool::take(len, span_align(len, align));
    if p.is_null() {
        return None;
    }
    // A range may have been pooled under another huge-page policy (a cut
    // of a bigger span, a merge of smaller ones).
    advise(p, len, Touch::Reuse);
    Some(p)
}

/// Before `extra` more bytes are needed: release the oldest pooled memory
/// while what the program needs (live spans and written small-object
/// memory, `stats::NEED`) + pooled memory + `extra` would exceed the peak of
/// that need. So retention never raises the peak RSS beyond what the
/// program itself needed at its peak, while a prover that frees and
/// re-makes the same vectors (need + pool stays at its peak) keeps them all
/// warm. Small objects count too: when a proof's vectors shrink while its
/// small objects grow, a pool kept at the spans' peak adds that growth on
/// top of it. No slack above the peak for reuse: it saved nothing
/// measurable (see docs/design/spans-and-warm-pool.md); [`fit_pool`]'s
/// small tolerance is there to batch lock trips, and is cut back exactly.
fn make_room(extra: usize) {
    let need = stats::NEED.get();
    let room = budget().saturating_sub(need.saturating_add(extra));
    let cached = CACHED.load(Relaxed);
    // What the pool alone cannot make room for: threads' caches release it
    // at their next span call or tidy.
    DEFICIT.store(cached.saturating_sub(room), Relaxed);
    pool::shrink_to(room.saturating_sub(cached));
}

fn live_add(n: usize) {
    stats::SPANS_LIVE.add(n);
    stats::NEED.add(n);
}

fn live_sub(n: usize) {
    stats::SPANS_LIVE.sub(n);
    stats::NEED.sub(n);
}

/// Releases pooled spans beyond the budget of [`make_room`] (a few relaxed
/// loads when within it): called as small-object memory is first written,
/// which counts against the same budget. It lets retained memory run a
/// little over the budget first (`RETENTION_TOLERANCE_*`), then cuts it
/// back exactly: small-object memory grows a page at a time, and a pool cut
/// back at every page took its lock once per page written
/// (docs/design/scaling.md).
pub(crate) fn fit_pool() {
    let budget = budget();
    let tolerance = (budget / RETENTION_TOLERANCE_DIVISOR).clamp(RETENTION_TOLERANCE_MIN, RETENTION_TOLERANCE_MAX);
    if pool::bytes() + CACHED.load(Relaxed) > (budget + tolerance).saturating_sub(stats::NEED.get()) {
        make_room(0);
    }
}

/// What live spans, written small-object memory and pooled spans may hold
/// together (see [`make_room`]).
fn budget() -> usize {
    stats::NEED.peak()
}

/// Frees a span, into the calling thread's `cache` where it has one.
///
/// # Safety
/// `p` must be a live span allocated for `size`/`align`.
pub(crate) unsafe fn dealloc(p: *mut u8, size: usize, align: usize, cache: Option<&mut SpanCache>) {
    // The length was computable when the span was made, so it is now.
    let len = span_len(size, align).unwrap_or(0);
    // A span starts on a page (of at least its alignment) and has a length:
    // anything else is not a span of ours, and pooling it would hand out
    // memory we do not own.
    invariant!(
        len != 0 && p.addr() % os::page().max(align) == 0,
        "span: freed block is not a span (bad address or layout)",
        p.addr()
    );
    live_sub(len);
    stats::SPAN_FREES.fetch_add(1, Relaxed);
    let r = pool::Range { ptr: p, len };
    let back = match cache {
        Some(c) => {
            c.settle();
            c.push(r)
        }
        None => Some(r),
    };
    if let Some(r) = back {
        // SAFETY: caller contract (or the cache's): a whole span of ours,
        // now unused.
        unsafe { pool::put(r.ptr, r.len) };
    }
}

/// Bytes in all threads' span caches: retained like pooled bytes.
static CACHED: AtomicUsize = AtomicUsize::new(0);
/// Bytes the span caches should release, set when retention must shrink
/// and the pool alone cannot: each thread releases its oldest spans
/// towards it at its next span call or heap tidy.
static DEFICIT: AtomicUsize = AtomicUsize::new(0);
/// Bumped by a trim (or a huge-page policy switch): every cache goes back to
/// the OS at its thread's next span call.
static TRIM_EPOCH: AtomicU32 = AtomicU32::new(0);

/// A thread's most recently freed spans, newest last (see "Thread cache" in
/// the module docs). Held in the thread's heap, which flushes it when the
/// thread exits; touched by its owner only, so it needs no lock.
pub(crate) struct SpanCache {
    spans: [pool::Range; SPAN_CACHE_SLOTS],
    n: usize,
    bytes: usize,
    trim_epoch: u32,
}

impl SpanCache {
    /// An empty cache.
    pub(crate) const fn new() -> Self {
        Self {
            spans: [pool::Range {
                ptr: ptr::null_mut(),
                len: 0,
            }; SPAN_CACHE_SLOTS],
            n: 0,
            bytes: 0,
            trim_epoch: 0,
        }
    }

    /// Empties the cache after a trim; releases its oldest spans while
    /// caches hold more than retention may (see [`make_room`]). Both to the
    /// OS, without the pool's lock. Run at each span call, and by the
    /// heap's tidy.
    pub(crate) fn settle(&mut self) {
        let trim = TRIM_EPOCH.load(Relaxed);
        if trim != self.trim_epoch {
            self.trim_epoch = trim;
            self.release();
        }
        let deficit = DEFICIT.load(Relaxed);
        if deficit > 0 && self.n > 0 {
            // Straight to the OS: the pool could not make the room itself,
            // so it would only release these again (two lock trips each).
            let done = self.release_oldest(deficit);
            let _ = DEFICIT.fetch_update(Relaxed, Relaxed, |d| Some(d.saturating_sub(done)));
        }
    }

    /// Before a request of `len` bytes that neither the cache nor the pool
    /// holds: puts every cached span back into the pool where the request
    /// is large enough to be built from pieces (see [`map_fresh`]) — not
    /// for smaller ones: cutting a cached span for them traded the next
    /// exact fits for one saved mapping — then releases the oldest while
    /// the cache alone holds more than retention may beside fresh memory
    /// for the request (see [`make_room`]). Returns whether it put any
    /// into the pool.
    fn give_back_for(&mut self, len: usize) -> bool {
        let mut put = 0;
        if len >= GATHER_MIN {
            put += self.put_back_oldest(usize::MAX);
        }
        // Only what even an empty pool cannot make room for (see
        // `make_room`), and to the OS: moving a span to the pool does not
        // shrink retention.
        let room = budget().saturating_sub(stats::NEED.get() + len);
        self.release_oldest(CACHED.load(Relaxed).saturating_sub(room));
        // Under a memory budget that fresh memory would exceed, all of it:
        // the budget can then take it back from the pool before it refuses.
        if !budget::fits(len) {
            put += self.put_back_oldest(usize::MAX);
        }
        put > 0
    }

    /// Puts the oldest cached spans back into the pool, at least `want`
    /// bytes of them (or all); returns the bytes put back.
    fn put_back_oldest(&mut self, want: usize) -> usize {
        self.put_back_oldest_while(|_, done| done < want)
    }

    /// Puts the oldest cached spans back into the pool while `more(cache,
    /// bytes put back so far)` holds, a batch per trip under the pool's
    /// lock; returns the bytes put back.
    fn put_back_oldest_while(&mut self, mut more: impl FnMut(&Self, usize) -> bool) -> usize {
        let mut done = 0;
        while self.n > 0 && more(self, done) {
            let mut batch = [pool::Range {
                ptr: ptr::null_mut(),
                len: 0,
            }; crate::policy::SPAN_CACHE_PUT_BACK];
            let mut k = 0;
            while k < crate::policy::SPAN_CACHE_PUT_BACK && self.n > 0 && more(self, done) {
                batch[k] = self.remove(0);
                done += batch[k].len;
                k += 1;
            }
            // SAFETY: cached spans: whole pages of ours, unused.
            unsafe { pool::put_all(&mut batch[..k]) };
        }
        done
    }

    /// Takes the newest cached span of exactly `len` bytes that starts on
    /// an `align` boundary.
    fn take(&mut self, len: usize, align: usize) -> *mut u8 {
        let Some(i) = (0..self.n)
            .rev()
            .find(|&i| self.spans[i].len == len && self.spans[i].ptr.addr() % align == 0)
        else {
            return ptr::null_mut();
        };
        let r = self.remove(i);
        r.ptr
    }

    fn remove(&mut self, i: usize) -> pool::Range {
        let r = self.spans[i];
        self.spans.copy_within(i + 1..self.n, i);
        self.n -= 1;
        self.bytes -= r.len;
        CACHED.fetch_sub(r.len, Relaxed);
        self.check();
        r
    }

    /// Checks the cache's invariants in debug builds (see `base/check.rs`):
    /// at most `SPAN_CACHE_SLOTS` spans, each non-empty, page-aligned and
    /// whole pages, no two overlapping; `bytes` is their sum.
    fn check(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        let at = self as *const Self as usize;
        invariant!(self.n <= SPAN_CACHE_SLOTS, "span cache: more spans than slots", at);
        let sum = pool::check_ranges(&self.spans[..self.n.min(SPAN_CACHE_SLOTS)], true);
        invariant!(sum == self.bytes, "span cache: byte count differs from its spans", at);
    }

    /// Adds a freed span as the newest; returns what must go to the pool
    /// instead: the oldest spans while the cache is over its bounds, or
    /// `r` itself if it is too large to cache. A span that is already
    /// cached is being freed twice: that stops the process.
    fn push(&mut self, r: pool::Range) -> Option<pool::Range> {
        if self.spans[..self.n].iter().any(|c| c.ptr == r.ptr) {
            crate::base::check::fail("free(): double free of a large block", r.ptr.addr());
        }
        // The pool cap bounds retained memory, cached or pooled.
        if r.len > SPAN_CACHE_BYTES || CACHED.load(Relaxed) + pool::bytes() + r.len > config::pool_cap() {
            return Some(r);
        }
        if self.n == SPAN_CACHE_SLOTS || self.bytes + r.len > SPAN_CACHE_BYTES {
            // Below the bounds by a margin, so that the next frees do not
            // each take the pool's lock for one span.
            use crate::policy::SPAN_CACHE_SETTLE_DIVISOR as D;
            self.put_back_oldest_while(|c, _| {
                c.n > SPAN_CACHE_SLOTS - SPAN_CACHE_SLOTS / D
                    || c.bytes + r.len > SPAN_CACHE_BYTES - SPAN_CACHE_BYTES / D
            });
        }
        self.spans[self.n] = r;
        self.n += 1;
        self.bytes += r.len;
        CACHED.fetch_add(r.len, Relaxed);
        self.check();
        None
    }

    /// Puts every cached span back into the pool.
    pub(crate) fn flush(&mut self) {
        self.put_back_oldest(usize::MAX);
    }

    /// Gives every cached span back to the OS.
    pub(crate) fn release(&mut self) {
        self.release_oldest(usize::MAX);
    }

    /// Gives the oldest cached spans back to the OS, at least `want` bytes
    /// of them (or all), without the pool's lock; returns the bytes
    /// released.
    fn release_oldest(&mut self, want: usize) -> usize {
        let mut done = 0;
        while done < want && self.n > 0 {
            let r = self.remove(0);
            // SAFETY: a cached span: a whole mapping of ours (or, where
            // the platform can trim, part of one), unused.
            unsafe { os::unmap(r.ptr, r.len) };
            stats::unmapped(r.len);
            done += r.len;
        }
        done
    }
}

/// Bytes held in threads' span caches now.
pub(crate) fn cached_bytes() -> usize {
    CACHED.load(Relaxed)
}

/// Asks every thread's span cache to go back to the OS at its next span
/// call (a trim, a huge-page policy switch: cached spans were made under
/// the old policy, and the pool releases its own on a switch too).
pub(crate) fn release_caches() {
    TRIM_EPOCH.fetch_add(1, Relaxed);
}

/// Resizes a span, without copying where the platform can. Null when it
/// cannot (the old span is then untouched and the caller copies).
///
/// # Safety
/// `p` must be a live span allocated for `old_size`/`align`.
pub(crate) unsafe fn realloc_in_place(p: *mut u8, old_size: usize, align: usize, new_size: usize) -> *mut u8 {
    let (Some(old_len), Some(new_len)) = (span_len(old_size, align), span_len(new_size, align)) else {
        return ptr::null_mut();
    };
    if old_len == new_len {
        return p;
    }
    if new_len < old_len && pool::can_cut() {
        // The cut-off tail stays warm in the pool.
        live_sub(old_len - new_len);
        // SAFETY: caller contract: the tail of the live span `p`/`old_len`
        // beyond `new_len` (whole pages) is no longer used.
        unsafe { pool::put(p.add(new_len), old_len - new_len) };
        return p;
    }
    // SAFETY: in bounds (one past the end) of the live span.
    if new_len > old_len && pool::take_at(unsafe { p.add(old_len) }, new_len - old_len) {
        // The pooled range right after the span: grown in place, warm.
        stats::POOL_HITS.fetch_add(1, Relaxed);
        live_add(new_len - old_len);
        return p;
    }
    if new_len > old_len {
        // A warm span of the new size beats moving page tables: its pages
        // are resident, and leaving it in the pool while the vector grows
        // into fresh pages would keep both resident (see
        // docs/design/spans-and-warm-pool.md).
        if let Some(q) = take_pooled(new_len, align) {
            stats::POOL_HITS.fetch_add(1, Relaxed);
            live_add(new_len);
            stats::SPAN_ALLOCS.fetch_add(1, Relaxed);
            stats::SPAN_BYTES.fetch_add(new_size, Relaxed);
            // SAFETY: `q` is a whole unused span of `new_len >= old_size`
            // bytes; `p` is live with `old_size` bytes; they are distinct.
            unsafe {
                ptr::copy_nonoverlapping(p, q, old_size);
                dealloc(p, old_size, align, None);
            }
            return q;
        }
    }
    // The fresh tail a remap adds is built from warm pooled pieces where
    // there are some (see `Pieces`), as a fresh span is.
    let mut pieces = Pieces::new();
    if new_len > old_len {
        let grow = new_len - old_len;
        if grow >= GATHER_MIN {
            pieces.take(grow, gather_unit(new_len, old_len));
        }
        if !budget::fits(grow - pieces.bytes()) {
            // Over budget: the caller moves the block through `alloc`,
            // which reclaims, checks and reports (one line per refusal).
            pieces.put_back();
            return ptr::null_mut();
        }
        make_room(grow - pieces.bytes());
    }
    // SAFETY: caller contract: `p`/`old_len` is a whole live span.
    let q = unsafe { os::remap(p, old_len, new_len, span_align(new_len, align)) };
    if q.is_null() {
        pieces.put_back();
        return q;
    }
    stats::REMAPS.fetch_add(1, Relaxed);
    if new_len > old_len {
        // SAFETY: the remapped span's tail past `old_len` is fresh and
        // unreferenced; the pieces are no longer than it.
        let (moved, _) = unsafe { pieces.place(q.add(old_len)) };
        stats::mapped(new_len - old_len - moved);
        live_add(new_len - old_len);
        advise(q, new_len, Touch::First);
    } else {
        stats::unmapped(old_len - new_len);
        live_sub(old_len - new_len);
    }
    q
}

/// Unmaps every pooled span, and asks every thread's cache to follow (the
/// caller's own is released by its heap's trim); returns the bytes released
/// from the pool.
pub(crate) fn trim() -> usize {
    release_caches();
    DEFICIT.store(0, Relaxed);
    pool::trim()
}

/// Keeps at most `cap` bytes in the pool (after a cap change).
pub(crate) fn shrink_to(cap: usize) {
    pool::shrink_to(cap);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pooled range may join two mappings (kernels before 6.17 move one
    /// mapping per call, and `move_split` then halves it): all its bytes
    /// arrive. The halving itself is proven in tests/fault_injection.rs,
    /// where the first move is refused on any kernel.
    #[test]
    #[cfg(all(target_os = "linux", not(miri)))]
    fn a_range_over_two_mappings_is_moved_whole() {
        let pg = os::page();
        let len = 16 * pg;
        let src = os::map(len, pg);
        let dst = os::map(len, pg);
        assert!(!src.is_null() && !dst.is_null());
        // Different advice on the second half splits the source into two
        // mappings as the kernel sees them.
        // SAFETY: the second half of our fresh mapping; advice is a hint.
        unsafe { os::advise_huge(src.add(len / 2), len / 2, HugeAdvice::NoHuge) };
        for i in 0..len {
            // SAFETY: `src` is ours, `len` bytes.
            unsafe { *src.add(i) = (i / pg) as u8 + 1 };
        }
        // SAFETY: `src` is unused memory of ours, `dst` a fresh mapping of
        // ours as long; they do not overlap.
        let moved = unsafe { move_split(src, len, dst) };
        assert_eq!(moved, len);
        for i in (0..len).step_by(pg / 2) {
            // SAFETY: `dst` is ours, `len` bytes.
            assert_eq!(unsafe { *dst.add(i) }, (i / pg) as u8 + 1, "byte {i}");
        }
        // SAFETY: our mapping, nothing references it.
        unsafe { os::unmap(dst, len) };
    }

    #[test]
    fn span_lengths_round_to_classes_and_huge_pages() {
        // A class of 80 KiB, then the OS granule (64 KiB on Windows).
        assert_eq!(
            span_len(65 << 10, 16),
            Some((80_usize << 10).next_multiple_of(os::page()))
        );
        assert_eq!(span_len(1 << 20, 16), Some(1 << 20));
        assert_eq!(span_len((1 << 20) + 1, 16), Some(1280 << 10));
        // Then whole huge pages, from one huge page on (2 MiB with 4 KiB
        // pages, 32 MiB with 16 KiB, 512 MiB with 64 KiB).
        let huge = |len: usize| {
            if len >= os::huge_page() {
                len.next_multiple_of(os::huge_page())
            } else {
                len
            }
        };
        assert_eq!(span_len(3 << 20, 16), Some(huge(3 << 20)));
        assert_eq!(span_len(33 << 20, 16), Some(huge(40 << 20)));
        if os::page() == 4096 {
            assert_eq!(span_len(3 << 20, 16), Some(4 << 20));
        }
        assert_eq!(span_len(usize::MAX - 10, 16), None);
        for size in (64 << 10..64 << 20).step_by(77_777) {
            let l = span_len(size, 16).unwrap();
            assert!(l >= size && l % os::page() == 0);
            assert!(l as f64 <= size as f64 * 1.25 + os::huge_page() as f64);
        }
    }
}
