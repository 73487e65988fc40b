//! Heaps: the per-thread small-object allocators, and the thread lifecycle.
//!
//! Each thread allocates from its own heap, reached through one
//! thread-local pointer (`CURRENT`), so the fast paths take no lock, make
//! no system call and do no atomic read-modify-write:
//!
//! ```text
//! alloc(class): page = heap.pages[class]; b = page.free;
//!               if b != null { page.free = b.next; page.used += 1; return b }
//!               else refill (cold)
//! free(p):      page = segment(p).pages[index(p)];
//!               if page.heap == CURRENT { push on page.free }
//!               else { batch per page (cold); a full batch is marked in the
//!                      page's remote-free bits (one atomic OR per word of
//!                      blocks), or kept for this thread's own allocations }
//! ```
//!
//! **Reuse across threads.** In producer/consumer programs the producer's
//! pages fill with blocks the consumer freed, and only the producer may
//! reuse them — not while it waits for the consumer. So a thread may keep
//! full batches of freed foreign blocks (bounded, adaptively) and allocate
//! them itself: they sit on a per-class stand-in page that is the class's
//! current page while it has blocks, so the fast path is unchanged. Only
//! blocks that fill whole cache lines are kept, so two threads never share
//! a line (see docs/design/remote-frees.md).
//!
//! **Giving memory back.** Every `TIDY_EVERY` slow paths (more for a heap
//! of many pages; a large allocation counts as several) a heap *tidies*: it
//! releases every page whose blocks are all free — including pages emptied
//! by other threads' frees alone, which no free of its own would notice,
//! and its current page of a class not used since — and purges the page
//! slots that have been free for the purge delay *and* `PURGE_AFTER_PATHS`
//! of its slow paths (see `Segment::purge_idle`) — except a page that
//! other threads' frees emptied, which it purges at once (see
//! `Heap::release_page`): the delay protects a heap's own
//! free-and-allocate-again cycles. Such pages age too while their class
//! grows, or while the heap keeps faulting in again what it purged (a
//! producer whose consumer frees everything: `Heap::note_fresh_claim`).
//! A heap keeps up to `KEEP_EMPTY_SEGMENTS` segments whose slots are all
//! free; they age like any free slot. Memory no thread owns — the free
//! slots of exited threads' heaps and the segment cache — has only time
//! for a clock and waits `UNOWNED_DELAY_FACTOR` purge delays; a heap that a
//! new thread adopts restarts the aging of what it holds free (programs
//! that work in rounds of short-lived threads take it over again, see
//! docs/design/heap-tidy.md).
//! The tidy also looks at the free top of each page in use that grew since
//! its last look (see `Page::trim_burst`): the memory of a burst of one
//! size, freed while the class's other blocks stay live below it, goes
//! back to the OS, and the page's free list is relinked lowest address
//! first so that its top can drain.
//! Refill meanwhile leaves sparse pages (a third live or less) alone while
//! fuller ones have free blocks, so that they can empty out, and takes a
//! released page of its class back before touching fresh memory. Why: a
//! heap swells when other threads hold many of its blocks at once, or in a
//! phase of many small objects; kept resident, each heap's largest swell
//! adds to the process's peak. Why age by work as well as by time: a
//! program that pauses its small allocations (a phase of other work) finds
//! its pages as it left them, instead of faulting its whole working set in
//! again. So a thread that stops allocating keeps what it holds until it
//! works again, exits or calls `NAlloc::trim` (see docs/design/heap-tidy.md).
//!
//! **Process-wide trim.** `NAlloc::trim` (and the C library's `nalloc_trim` /
//! `malloc_trim`) trims the caller's heap and exited threads' heaps at once
//! ([`trim_all`]), and bumps a global trim epoch for the heaps of other live
//! threads, which only their owners may touch: each heap compares the epoch
//! with the last one it saw on its refill and at large allocations
//! (`tidy_hint`), never on the fast paths, and trims itself when it
//! changed. So a thread idle at the time of the trim gives its free memory
//! back at its next slow path (see docs/design/heap-tidy.md).
//!
//! **Start-up without a check.** `CURRENT` starts as the address of a static
//! empty heap whose pages all have an empty free list, so a thread's first
//! allocation simply falls into the refill path, which creates (or adopts)
//! the heap. Nothing on the fast path asks "initialised?". Creating a heap
//! takes a spin lock around a few pointer moves and never allocates through
//! the global allocator, so 16 threads making their first allocation at
//! once cannot deadlock.
//!
//! **Thread exit.** The OS layer's thread-exit hook (a `pthread` key
//! destructor on Unix — not a Rust TLS destructor, which std forbids global
//! allocators to register — and a TLS guard elsewhere) retires the heap:
//! remote frees are collected, empty pages and segments are released, and
//! the heap (with whatever pages still hold live blocks) goes on a global
//! list from which the next new thread adopts it. Heap objects are never
//! freed, so the number of heaps is the peak number of live threads and
//! 10,000 short-lived threads reuse a handful of heaps. A block freed by any
//! thread into a heap that is retired, or owned by someone else, is marked
//! in its page's remote-free bits (in batches per page, see `free_remote`
//! and `remote.rs`) and collected by the next owner.
//! Allocations made *after* the thread's TLS teardown (by other TLS
//! destructors) are served from a shared heap under a lock; a free never
//! creates a heap.
//!
//! **Scopes.** While a thread is inside `NAlloc::witness_scope`, `CURRENT`
//! points to a second static empty heap: every small allocation then misses
//! the fast path, and the route's slow path (`front/route.rs`) sends it to
//! the witness arena.

use core::cell::Cell;
use core::ptr;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

use crate::base::stats;
use crate::base::sync::SpinLock;
use crate::mem::span::SpanCache;
use crate::os;
use crate::policy::{
    FOREIGN_MAX, FOREIGN_MIN, FOREIGN_STALE, FULL_SCAN, GROWING_PATHS, HEAP_SLAB, KEEP_EMPTY_SEGMENTS, KEEP_PATHS,
    LARGE_TIDY_WEIGHT, ORPHAN_FREES_BEFORE_HEAP, PENDING_BLOCKS, PENDING_BYTES, PENDING_SLOTS, PURGE_AFTER_PATHS,
    REFAULT_PATHS, REFAULT_SLOTS, RETIRED_TIDY_EVERY, SEGMENT_SEARCH, SPARSE_DIVISOR, TIDY_EVERY, TRIM_EVERY,
    UNOWNED_DELAY_FACTOR,
};
use crate::small::page::{Block, Page};
use crate::small::segment::{self, Segment, SlotKind};
use crate::small::size_class::{CLASS_SIZE, NUM_CLASSES};

/// Per-heap counters, readable by `stats()` from any thread. They sit just
/// before their heap (see [`HeapSlot`]) so the fast path finds them by
/// offset, and only the owner writes them (plain relaxed load + store).
#[repr(C)]
pub(crate) struct Counters {
    pub(crate) allocs: AtomicU64,
    pub(crate) frees: AtomicU64,
    /// Bytes requested by this heap's allocations: summed at phase
    /// boundaries for the phases' byte figures (docs/design/phases-and-budget.md).
    pub(crate) bytes: AtomicU64,
    /// The cross-thread paths' counts (slow paths only; see [`RemoteCounts`]).
    pub(crate) remote: RemoteCounts,
}

/// What one heap did on the cross-thread paths, counted by the heap's owner
/// (plain relaxed stores, no shared line) and summed on read: batches of
/// blocks this thread freed into other heaps' pages and handed over, the
/// blocks in them and the atomic read-modify-writes that took; batches it
/// kept for its own reuse instead; and the collections of other threads'
/// frees into its own pages that found blocks, with the blocks taken.
#[repr(C)]
pub(crate) struct RemoteCounts {
    pub(crate) batches: AtomicU64,
    pub(crate) blocks: AtomicU64,
    pub(crate) atomics: AtomicU64,
    pub(crate) kept: AtomicU64,
    pub(crate) collects: AtomicU64,
    pub(crate) collected: AtomicU64,
}

impl RemoteCounts {
    const fn new() -> Self {
        Self {
            batches: AtomicU64::new(0),
            blocks: AtomicU64::new(0),
            atomics: AtomicU64::new(0),
            kept: AtomicU64::new(0),
            collects: AtomicU64::new(0),
            collected: AtomicU64::new(0),
        }
    }
}

/// A heap with its counters. Slots are packed in slabs, so each is aligned
/// to two cache lines (the pair that adjacent-line prefetching moves
/// together): a thread writing the tail of its own heap must not share a
/// line with the next heap's counters, which its owner writes on every
/// allocation and free.
#[repr(C, align(128))]
struct HeapSlot {
    counters: Counters,
    heap: Heap,
    /// The heap's stand-in pages of kept foreign blocks (see `Heap::foreign`).
    foreign: [Page; NUM_CLASSES],
    /// Link in the registry's list of every heap (immutable once set).
    all_next: *mut HeapSlot,
}

#[inline(always)]
fn bump(c: &AtomicU64) {
    add(c, 1);
}

/// The owner's counter update: a plain load and store, no read-modify-write
/// (only the owner writes; readers sum with relaxed loads).
#[inline(always)]
fn add(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

/// A thread's small-object allocator. Line-aligned, so that the fast path's
/// `pages` array and the remote-free `pending` batches sit on lines of
/// their own within the slot (see docs/design/small-object-layout.md).
#[repr(C, align(64))]
pub(crate) struct Heap {
    /// Page to allocate from, per class (the empty page when there is none).
    pages: [*mut Page; NUM_CLASSES],
    /// Pages that may have free blocks, per class (doubly linked).
    avail: [*mut Page; NUM_CLASSES],
    /// Pages found full, per class; they return to `avail` when freed into.
    full: [*mut Page; NUM_CLASSES],
    /// Where the refill's walk over `full` resumes (null: at the head).
    full_cursor: [*mut Page; NUM_CLASSES],
    /// Segments owned: those with free page slots first, then full ones.
    seg_head: *mut Segment,
    seg_tail: *mut Segment,
    /// Link in the registry's retired list.
    retired_next: *mut Heap,
    /// Blocks this thread freed into other threads' pages, batched per page
    /// (see [`free_remote`]).
    pending: [Pending; PENDING_SLOTS],
    /// This heap's counters (in its slot, just before it), with the slot's
    /// provenance: `counters(self)` from a `&mut Heap` would reach outside
    /// the reference (UB under Stacked Borrows).
    counters: *const Counters,
    /// This heap's number (0, 1, 2, ... in creation order; kept when the heap
    /// is adopted by another thread). Arenas index per-thread state by it
    /// (see [`owned_index`]).
    index: usize,
    /// Per class, a stand-in page whose free list holds blocks of other
    /// heaps' pages that this thread freed and keeps for its own
    /// allocations (see [`Heap::keep_foreign`]). While it has blocks it is
    /// the class's current page, so the fast path takes them without a
    /// check of its own; its `next` holds the real current page meanwhile.
    /// They live in the heap's slot, after the heap, reached through this
    /// pointer with the slot's provenance: a pointer into the heap itself,
    /// stored in `pages`, would be invalidated by every `&mut Heap` (under
    /// Stacked Borrows). Null for the sentinel heaps.
    foreign: *mut Page,
    /// Bytes kept per class since its list last ran empty (an upper bound:
    /// blocks taken by the fast path are not subtracted until then), the
    /// most this heap keeps in all, and the bytes of foreign frees turned
    /// away since a list last ran empty.
    foreign_kept: [u32; NUM_CLASSES],
    foreign_cap: u32,
    foreign_refused: u32,
    /// Slow paths taken since the last [`Heap::tidy`], and pages owned (the
    /// tidy interval grows with them, so its walk costs at most one page
    /// visit per slow path).
    since_tidy: u32,
    /// Tidies so far (wrapping), for the occasional look at retired heaps.
    tidies: u32,
    pages_owned: u32,
    /// Slow paths taken, ever (wrapping): the clock by which a free page
    /// slot ages besides time (see [`PURGE_AFTER_PATHS`]).
    slow_paths: u32,
    /// Segments of ours with every page slot free (at most
    /// [`KEEP_EMPTY_SEGMENTS`]).
    empty_segs: u32,
    /// Per class, `slow_paths` when the class last ran out of used blocks
    /// and needed fresh memory or a new page (see [`Heap::release_emptied`]).
    fresh_at: [u32; NUM_CLASSES],
    /// `slow_paths` at the last tidy that purged page slots; fresh page
    /// slots claimed since within [`REFAULT_PATHS`] of a purge (refaults);
    /// and until when (in `slow_paths`) the heap keeps pages other threads
    /// emptied (see [`Heap::note_fresh_claim`]).
    purged_at: u32,
    refaulted_slots: u32,
    keep_until: u32,
    /// This thread's recently freed spans (see [`with_span_cache`]).
    spans: SpanCache,
    /// [`TRIM_EPOCH`] as this heap last saw it (see [`Heap::settle_trim`]).
    trim_epoch: u32,
}

/// Process-wide trims asked for so far (wrapping; see [`trim_all`]): a live
/// heap that finds a value it has not seen trims itself on its next slow
/// path, since another thread may not touch its pages.
static TRIM_EPOCH: AtomicU32 = AtomicU32::new(0);

/// A page with at most this many bytes of live blocks is sparse (see
/// [`Heap::is_sparse`]).
const SPARSE_BYTES: usize = crate::small::segment::PAGE_SIZE / SPARSE_DIVISOR;

/// True if blocks of `block_size` may be reused by a thread other than
/// their page's owner: they fill whole cache lines (block areas are 64 KiB
/// aligned), so the reusing thread shares no line with the owner's blocks
/// (the false sharing that `cache-scratch` measures). Not in hardened
/// mode, whose checks follow a block through its own page.
#[inline(always)]
fn reusable_abroad(block_size: u32) -> bool {
    cfg!(not(feature = "hardened")) && block_size % 64 == 0
}

/// Blocks freed into one page of another heap, not yet marked in the
/// page's remote-free bits (linked through their first words, `head` first).
#[derive(Clone, Copy)]
struct Pending {
    page: *mut Page,
    head: *mut Block,
    tail: *mut Block,
    blocks: u32,
    /// The page's block size, read once per batch rather than per block:
    /// the page's metadata line is written by its owner all the time, and
    /// this saves a read of another core's line per remote free (see
    /// docs/design/remote-frees.md).
    block_size: u32,
}

const NO_PENDING: Pending = Pending {
    page: ptr::null_mut(),
    head: ptr::null_mut(),
    tail: ptr::null_mut(),
    blocks: 0,
    block_size: 0,
};

struct SyncPage(Page);
// SAFETY: the empty page is never written: its `free` list is null, so
// nothing ever pops from or pushes to it.
unsafe impl Sync for SyncPage {}
static EMPTY_PAGE: SyncPage = SyncPage(Page::empty());

struct SyncHeap(Heap);
// SAFETY: the sentinel heaps are never written (see `refill`).
unsafe impl Sync for SyncHeap {}
static EMPTY_HEAP: SyncHeap = SyncHeap(Heap::with_pages(ptr::addr_of!(EMPTY_PAGE.0) as *mut Page));
static SCOPE_HEAP: SyncHeap = SyncHeap(Heap::with_pages(ptr::addr_of!(EMPTY_PAGE.0) as *mut Page));

#[inline(always)]
fn empty_page() -> *mut Page {
    ptr::addr_of!(EMPTY_PAGE.0) as *mut Page
}
#[inline(always)]
fn empty_heap() -> *mut Heap {
    ptr::addr_of!(EMPTY_HEAP.0) as *mut Heap
}
#[inline(always)]
fn scope_heap() -> *mut Heap {
    ptr::addr_of!(SCOPE_HEAP.0) as *mut Heap
}

/// `CURRENT`: the heap the fast path uses (a sentinel until the first
/// refill), one per thread.
///
/// Rust's `thread_local!` compiles to the general-dynamic TLS model in a
/// shared library: a call to `__tls_get_addr` (and the register spills
/// around it) on every malloc and free of `libnalloc.so`. With feature
/// `initial-exec-tls` on x86-64 Linux the pointer is a TLS symbol of our
/// own, defined in assembly, read with the initial-exec sequence (`mov r,
/// [rip + sym@GOTTPOFF]; mov r, fs:[r]`), as C libraries built with
/// `-ftls-model=initial-exec` do (see docs/design/small-object-layout.md).
#[cfg(all(feature = "initial-exec-tls", target_arch = "x86_64", target_os = "linux", not(miri)))]
mod current {
    use super::Heap;

    // 8 bytes of initialised TLS holding the address of the empty heap (the
    // loader relocates the TLS image before copying it into each thread).
    // Hidden: the symbol is ours alone, never interposed.
    core::arch::global_asm!(
        ".pushsection .tdata.nalloc_current_heap,\"awT\",@progbits",
        ".p2align 3",
        ".globl nalloc_current_heap",
        ".hidden nalloc_current_heap",
        ".type nalloc_current_heap,@object",
        ".size nalloc_current_heap,8",
        "nalloc_current_heap:",
        ".quad {empty}",
        ".popsection",
        empty = sym super::EMPTY_HEAP,
    );

    /// The calling thread's `CURRENT`.
    #[inline(always)]
    pub(super) fn get() -> *mut Heap {
        let v: *mut Heap;
        // SAFETY: reads the calling thread's 8-byte TLS slot defined above
        // (initial-exec: its offset from the thread pointer is fixed at
        // load time); no other memory is touched.
        unsafe {
            core::arch::asm!(
                "mov {v}, qword ptr [rip + nalloc_current_heap@GOTTPOFF]",
                "mov {v}, qword ptr fs:[{v}]",
                v = out(reg) v,
                options(nostack, readonly, preserves_flags)
            )
        };
        v
    }

    /// Sets the calling thread's `CURRENT`.
    #[inline(always)]
    pub(super) fn set(h: *mut Heap) {
        // SAFETY: writes the calling thread's TLS slot defined above.
        unsafe {
            core::arch::asm!(
                "mov {t}, qword ptr [rip + nalloc_current_heap@GOTTPOFF]",
                "mov qword ptr fs:[{t}], {h}",
                t = out(reg) _,
                h = in(reg) h,
                options(nostack, preserves_flags)
            )
        };
    }
}

/// `CURRENT` through `thread_local!` (every other build).
#[cfg(not(all(feature = "initial-exec-tls", target_arch = "x86_64", target_os = "linux", not(miri))))]
mod current {
    use super::Heap;
    use core::cell::Cell;
    use core::ptr;

    thread_local! {
        static CURRENT: Cell<*mut Heap> = const { Cell::new(ptr::addr_of!(super::EMPTY_HEAP.0) as *mut Heap) };
    }

    /// The calling thread's `CURRENT`.
    #[inline(always)]
    pub(super) fn get() -> *mut Heap {
        CURRENT.get()
    }

    /// Sets the calling thread's `CURRENT`.
    #[inline(always)]
    pub(super) fn set(h: *mut Heap) {
        CURRENT.set(h)
    }
}

thread_local! {
    /// The heap this thread owns (null before the first allocation).
    static OWNED: Cell<*mut Heap> = const { Cell::new(ptr::null_mut()) };
    /// Set once the thread's heap has been retired at thread exit.
    static DEAD: Cell<bool> = const { Cell::new(false) };
    /// `OWNED`'s index (`usize::MAX` while there is none), next to `CURRENT`
    /// so that arenas find it without touching the heap's lines.
    static OWNED_INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    /// Frees this thread made without a heap of its own (see `free_remote`).
    static ORPHANS: Cell<u32> = const { Cell::new(0) };
}

/// Retires the calling thread's heap; called by the OS layer's thread-exit
/// hook (a `pthread` key destructor on Unix, which runs after Rust's and
/// C++'s thread-local destructors, so those may still allocate normally).
pub(crate) fn thread_exit() {
    let h = OWNED.get();
    if h.is_null() {
        return;
    }
    OWNED.set(ptr::null_mut());
    OWNED_INDEX.set(usize::MAX);
    DEAD.set(true);
    current::set(empty_heap());
    // SAFETY: `h` was this thread's heap and no longer is: nobody else uses
    // it until it is adopted from the retired list.
    unsafe {
        (*h).spans.flush();
        (*h).abandon();
    }
    REGISTRY.lock().retire(h);
}

/// Pops a block of `class` from the current page of `heap` if it has one
/// (zeroing the requested bytes if asked): the fast path shared by every
/// allocation entry point.
///
/// # Safety
/// `class < NUM_CLASSES`; `heap` is `CURRENT`.
#[inline(always)]
unsafe fn pop_current(heap: *mut Heap, class: usize, size: usize, zeroed: bool) -> Option<*mut u8> {
    // SAFETY: `heap` is a live heap or a sentinel; both have a valid page
    // pointer per class. A sentinel's page has a null free list, so the
    // branch below is only taken for a real heap's page, owned by us.
    unsafe {
        let page = *(*heap).pages.get_unchecked(class);
        if (*page).free.is_null() {
            return None;
        }
        // Not `Heap::take`: that goes through `&mut Heap` and its stored
        // counters pointer (one more load); `heap` here carries its slot's
        // provenance, so the counters are found by arithmetic.
        let b = Page::pop(page);
        #[cfg(feature = "hardened")]
        crate::small::hardened::on_alloc(page, b, size);
        let c = counters(heap);
        bump(&(*c).allocs);
        add(&(*c).bytes, size as u64);
        if zeroed {
            // A recycled block: only the requested bytes need clearing
            // (hardened mode keeps its canary in the rest). Fresh memory is
            // handed out without a memset by the refill path instead.
            ptr::write_bytes(b, 0, size.min((*page).block_size as usize));
        }
        Some(b)
    }
}

/// Pops a block of `class` from the calling thread's current page, or
/// `None` when that page has none (then the caller takes its slow path,
/// [`refill`]). The fast path of every small allocation: one thread-local
/// read, one load of the page, one branch.
///
/// # Safety
/// `class < NUM_CLASSES`.
#[inline(always)]
pub(crate) unsafe fn pop(class: usize, size: usize, zeroed: bool) -> Option<*mut u8> {
    // SAFETY: forwarded caller contract.
    unsafe { pop_current(current::get(), class, size, zeroed) }
}

/// Frees a small block (the fast path). `size`/`class` are the request's,
/// checked in hardened mode (`size == usize::MAX`: unknown).
///
/// # Safety
/// `p` must be a live small block.
#[inline(always)]
pub(crate) unsafe fn free(p: *mut u8, _size: usize, _class: usize) {
    #[cfg(feature = "hardened")]
    if !segment::contains(p) {
        crate::small::hardened::fail("free of a pointer not allocated by nalloc", p.addr());
    }
    // SAFETY: caller contract: `p` lies in a live segment, so its page
    // metadata is valid; only the owner takes the local branch.
    unsafe {
        let page = segment::page_of(p);
        #[cfg(feature = "hardened")]
        crate::small::hardened::on_free(page, p, _size, _class);
        let heap = current::get();
        if (*page).heap == heap {
            Page::push_local(page, p);
            bump(&(*counters(heap)).frees);
            if (*page).used == 0 || (*page).in_full {
                (*heap).after_local_free(page);
            }
        } else {
            free_remote(page, p, heap);
        }
    }
}

/// A free into a page this thread's heap does not own. A thread without a
/// heap of its own (not started, exited, or inside a witness scope) pushes
/// the block at once; a heap batches it with earlier frees into the same
/// page and hands the batch over at once: in producer/consumer programs
/// every free is remote, and one contended atomic operation per block cost
/// more than the rest of `free` (see docs/design/remote-frees.md).
/// Batches are bounded (`PENDING_*`) and flushed when full, when their slot
/// is needed by another page, whenever the heap takes its refill path, and
/// at thread exit. A batched block is still counted as used by its page, so
/// the page cannot be released under it; so is a block of a batch kept for
/// reuse (see [`Heap::keep_foreign`]) until it is handed back.
///
/// A thread that only frees (the consumer of a producer/consumer pair)
/// has no heap, so each of its frees was a hand-over of its own: three
/// atomic operations on the owner's page lines and one on a process-wide
/// counter, per block. After [`ORPHAN_FREES_BEFORE_HEAP`] such frees it takes
/// a heap (from the registry, as its first allocation would), and its frees
/// are batched from then on (see docs/design/scaling.md). Not after its
/// exit hook ran, nor inside a witness scope.
#[cold]
#[inline(never)]
unsafe fn free_remote(page: *mut Page, p: *mut u8, mut heap: *mut Heap) {
    if heap == empty_heap() && !DEAD.get() && ORPHANS.get() >= ORPHAN_FREES_BEFORE_HEAP {
        heap = take_heap(false);
    }
    if heap.is_null() || heap == empty_heap() || heap == scope_heap() {
        // SAFETY: caller contract: `page` is the page of the live block `p`.
        unsafe { Page::push_remote(page, p) };
        ORPHANS.set(ORPHANS.get().saturating_add(1));
        stats::ORPHAN_FREES.fetch_add(1, Relaxed);
        return;
    }
    // SAFETY: `heap` is our own live heap; `p` is a live block of `page`
    // that becomes ours to link (or keep).
    unsafe {
        bump(&(*counters(heap)).frees);
        (*heap).batch_remote(page, p.cast(), true);
    }
}

/// The counters of a real heap.
#[inline(always)]
fn counters(heap: *mut Heap) -> *const Counters {
    // SAFETY: (of the arithmetic) real heaps live inside a `HeapSlot`, at
    // this distance after their counters; the pointer keeps the slot's
    // provenance.
    const GAP: usize = core::mem::offset_of!(HeapSlot, heap) - core::mem::offset_of!(HeapSlot, counters);
    heap.cast::<u8>().wrapping_sub(GAP).cast()
}

/// The slow path of every small allocation: finds or makes a page with a
/// free block, creating this thread's heap first if needed. Inside a witness
/// scope (where `CURRENT` is the scope sentinel) it serves the plain engine
/// from the thread's own heap without leaving the scope: the scope's routing
/// to witness memory is the front's decision, made before it calls here.
///
/// # Safety
/// `class < NUM_CLASSES`.
#[cold]
#[inline(never)]
pub(crate) unsafe fn refill(class: usize, size: usize, zeroed: bool) -> *mut u8 {
    let cur = current::get();
    let scoped = cur == scope_heap();
    let mut heap = if scoped { OWNED.get() } else { cur };
    if heap.is_null() || heap == empty_heap() {
        if DEAD.get() {
            return shared_alloc(class, size, zeroed);
        }
        heap = take_heap(scoped);
        if heap.is_null() {
            return heap.cast();
        }
    }
    // SAFETY: `heap` is this thread's own heap.
    unsafe { (*heap).alloc_slow(class, size, zeroed) }
}

/// Gives the calling thread, which has none, a heap of its own (a retired
/// one or a new one) and arms its exit hook; `CURRENT` points to it unless
/// `scoped`. Null when the OS refuses memory.
#[cold]
fn take_heap(scoped: bool) -> *mut Heap {
    // Outside any lock: initialisation may re-enter the allocator when
    // we are the process's malloc.
    super::ensure_init();
    let heap = REGISTRY.lock().acquire();
    if heap.is_null() {
        return heap;
    }
    OWNED.set(heap);
    // SAFETY: `heap` is ours now; its index never changes.
    OWNED_INDEX.set(unsafe { (*heap).index });
    if !scoped {
        current::set(heap);
    }
    // Arming the exit hook may allocate (a pthread key's second-level
    // array, a Vec of TLS destructors); with CURRENT set that nested
    // allocation takes the ordinary paths.
    os::watch_thread_exit();
    heap
}

struct Shared(*mut Heap);
// SAFETY: the lock serialises every use of the shared heap.
unsafe impl Send for Shared {}
static SHARED: SpinLock<Shared> = SpinLock::new(Shared(ptr::null_mut()));

/// Allocation by a thread whose TLS is already torn down.
#[cold]
fn shared_alloc(class: usize, size: usize, zeroed: bool) -> *mut u8 {
    super::ensure_init();
    let mut g = SHARED.lock();
    if g.0.is_null() {
        g.0 = REGISTRY.lock().acquire();
        if g.0.is_null() {
            return ptr::null_mut();
        }
    }
    // SAFETY: the lock makes us the heap's only user. Its blocks' frees
    // always take the remote path (no thread's CURRENT is the shared heap).
    unsafe { (*g.0).alloc_slow(class, size, zeroed) }
}

/// Routes this thread's small allocations to the witness arena (`true`) or
/// back to its own heap (`false`); returns the previous state.
pub(crate) fn set_scope(on: bool) -> bool {
    let cur = current::get();
    let was = cur == scope_heap();
    if on {
        current::set(scope_heap());
    } else if was {
        let owned = OWNED.get();
        current::set(if owned.is_null() { empty_heap() } else { owned });
    }
    was
}

impl Heap {
    const fn with_pages(empty: *mut Page) -> Heap {
        Heap {
            pages: [empty; NUM_CLASSES],
            avail: [ptr::null_mut(); NUM_CLASSES],
            full: [ptr::null_mut(); NUM_CLASSES],
            full_cursor: [ptr::null_mut(); NUM_CLASSES],
            seg_head: ptr::null_mut(),
            seg_tail: ptr::null_mut(),
            retired_next: ptr::null_mut(),
            pending: [NO_PENDING; PENDING_SLOTS],
            counters: ptr::null(),
            index: usize::MAX,
            foreign: ptr::null_mut(),
            foreign_kept: [0; NUM_CLASSES],
            foreign_cap: FOREIGN_MIN,
            foreign_refused: 0,
            since_tidy: 0,
            tidies: 0,
            pages_owned: 0,
            slow_paths: 0,
            empty_segs: 0,
            fresh_at: [0; NUM_CLASSES],
            // No purge yet: as if long ago.
            purged_at: 0u32.wrapping_sub(REFAULT_PATHS),
            refaulted_slots: 0,
            keep_until: 0,
            spans: SpanCache::new(),
            trim_epoch: 0,
        }
    }

    /// Trims this heap (as [`trim_current_thread`] does) if a process-wide
    /// trim was asked for since it last looked: run on its slow paths only,
    /// one relaxed load of a line that changes only at a trim.
    #[inline]
    fn settle_trim(&mut self) {
        let epoch = TRIM_EPOCH.load(Relaxed);
        if epoch != self.trim_epoch {
            self.trim_epoch = epoch;
            self.trim_now();
        }
    }

    /// Gives back what this heap holds free: its empty pages and segments,
    /// and the memory of every free page slot, whatever its age; then the
    /// segment cache, where its empty segments went.
    #[cold]
    #[inline(never)]
    fn trim_now(&mut self) {
        // SAFETY: our own heap; abandon only releases empty pages and resets
        // current-page pointers, after which refill finds pages again.
        unsafe { self.abandon() };
        self.purge_free_slots(0, 0, 0);
        Segment::trim_cache();
    }

    /// Adds `b`, a freed block of `page` (another heap's), to this heap's
    /// batch for that page. A full batch is kept for this heap's own
    /// allocations if `keep` and [`Heap::keep_foreign`] agree, and handed
    /// to the page's owner otherwise.
    ///
    /// # Safety
    /// `b` is a free block of `page`, a live page of another heap.
    unsafe fn batch_remote(&mut self, page: *mut Page, b: *mut Block, keep: bool) {
        // SAFETY: caller contract; the batch's blocks are ours to link.
        unsafe {
            let a = page.addr();
            let slot = ((a >> 6) ^ (a >> 22)) % PENDING_SLOTS;
            let old = self.pending[slot];
            if old.page != page {
                if !old.page.is_null() {
                    self.deliver(old.page, old.head, old.tail, old.blocks);
                }
                self.pending[slot] = Pending {
                    page,
                    head: ptr::null_mut(),
                    tail: b,
                    blocks: 0,
                    block_size: (*page).block_size,
                };
            }
            let e = &mut self.pending[slot];
            Block::set_next(b, e.head);
            e.head = b;
            e.blocks += 1;
            if e.blocks >= PENDING_BLOCKS || e.blocks * e.block_size >= PENDING_BYTES {
                let (head, tail, n, bs) = (e.head, e.tail, e.blocks, e.block_size);
                *e = NO_PENDING;
                if keep && reusable_abroad(bs) && self.keep_foreign(head, tail, n, bs) {
                    add(&(*self.counters).remote.kept, 1);
                } else {
                    self.deliver(page, head, tail, n);
                }
            }
        }
    }

    /// The stand-in page of kept foreign blocks of `class` (see `foreign`).
    fn stand_in(&self, class: usize) -> *mut Page {
        self.foreign.wrapping_add(class)
    }

    /// Keeps a batch of `n` freed blocks of `block_size` bytes, all of one
    /// page of another heap and linked from `head` to `tail`, for this
    /// heap's own allocations of their class, if the bound allows; adapts
    /// the bound when it does not. The bound starts at [`FOREIGN_MIN`] and
    /// grows by what was turned away, up to [`FOREIGN_MAX`], whenever a
    /// class's kept blocks were all reused after some were turned away (see
    /// `alloc_slow`); it halves, handing every kept block back to its owner,
    /// once [`FOREIGN_STALE`] bytes were turned away without any list running
    /// empty (a consumer that never allocates those sizes). Why these bounds:
    /// docs/design/remote-frees.md.
    ///
    /// # Safety
    /// The chain is a batch of free blocks of another heap's live page.
    unsafe fn keep_foreign(&mut self, head: *mut Block, tail: *mut Block, n: u32, block_size: u32) -> bool {
        let bytes = n * block_size;
        let kept: u32 = self.foreign_kept.iter().sum();
        if kept + bytes > self.foreign_cap {
            self.foreign_refused = self.foreign_refused.saturating_add(bytes);
            if self.foreign_refused >= FOREIGN_STALE {
                // Nothing reused for a long while: the owners can use the
                // blocks better.
                self.foreign_cap = (self.foreign_cap / 2).max(FOREIGN_MIN);
                self.foreign_refused = 0;
                self.flush_foreign();
            }
            return false;
        }
        let class = crate::small::size_class::class_of(block_size as usize);
        let fp: *mut Page = self.stand_in(class);
        // SAFETY: `fp` is our stand-in page; the blocks are free and at
        // least 16 bytes, so their first words are ours for the links.
        unsafe {
            if self.pages[class] != fp {
                (*fp).next = self.pages[class];
                (*fp).block_size = block_size;
                self.pages[class] = fp;
            }
            Block::set_next(tail, (*fp).free);
            (*fp).free = head;
        }
        self.foreign_kept[class] += bytes;
        true
    }

    /// The stand-in page of `class` is empty (its blocks were all reused or
    /// handed back): the real current page returns in front.
    fn foreign_restore(&mut self, class: usize) {
        let fp: *mut Page = self.stand_in(class);
        // SAFETY: `fp` is our stand-in page, current for `class`.
        unsafe {
            debug_assert!((*fp).free.is_null());
            self.pages[class] = (*fp).next;
            (*fp).next = ptr::null_mut();
            // Counted up by the fast path's pops; meaningless here.
            (*fp).used = 0;
        }
        self.foreign_kept[class] = 0;
    }

    /// Hands every kept foreign block back to its page's owner (batched
    /// per page like any remote free, never kept again).
    fn flush_foreign(&mut self) {
        for class in 0..NUM_CLASSES {
            let fp: *mut Page = self.stand_in(class);
            if self.pages[class] != fp {
                continue;
            }
            // SAFETY: the stand-in page's blocks are free blocks of other
            // heaps' live pages (which count them as used).
            unsafe {
                let mut b = core::mem::replace(&mut (*fp).free, ptr::null_mut());
                while !b.is_null() {
                    let next = Block::next(b);
                    self.batch_remote(segment::page_of(b.cast()), b, false);
                    b = next;
                }
            }
            self.foreign_restore(class);
        }
    }

    /// Hands every batched remote free to its page's owner.
    fn flush_pending(&mut self) {
        for i in 0..PENDING_SLOTS {
            let e = self.pending[i];
            if !e.page.is_null() {
                self.pending[i] = NO_PENDING;
                // SAFETY: the batch's blocks are freed blocks of `e.page`,
                // which stays live while they are counted as used there.
                unsafe { self.deliver(e.page, e.head, e.tail, e.blocks) };
            }
        }
    }

    /// Hands a batch of `n` freed blocks of `page` (another heap's), linked
    /// from `head` to `tail`, to the page's owner, and counts it.
    ///
    /// # Safety
    /// As [`Page::push_remote_chain`].
    unsafe fn deliver(&mut self, page: *mut Page, head: *mut Block, tail: *mut Block, n: u32) {
        // SAFETY: forwarded caller contract.
        let rmw = unsafe { Page::push_remote_chain(page, head, tail, n) };
        // SAFETY: a real heap (only those batch remote frees).
        let c = unsafe { &(*self.counters).remote };
        add(&c.batches, 1);
        add(&c.blocks, u64::from(n));
        add(&c.atomics, u64::from(rmw));
    }

    /// Collects the blocks other threads freed into `p`, one of our pages
    /// (see [`Page::collect_remote`]), and counts a collection that found
    /// some. True if it did.
    ///
    /// # Safety
    /// Owner only.
    unsafe fn collect(&self, p: *mut Page) -> bool {
        // SAFETY: caller contract.
        let n = unsafe { Page::collect_remote(p) };
        if n == 0 {
            return false;
        }
        // SAFETY: a real heap (only those own pages).
        let c = unsafe { &(*self.counters).remote };
        add(&c.collects, 1);
        add(&c.collected, u64::from(n));
        true
    }

    /// Refill, preferring memory that was used before to fresh memory: the
    /// current page's blocks freed by other threads, then the free and
    /// remotely freed blocks of the class's other pages, then a stretch of
    /// the current page's fresh tail, then of another page's, then full
    /// pages that were freed into remotely, then a new page.
    ///
    /// Why this order: touching fresh memory first (a page's tail before its
    /// remote frees, the current page before the class's other pages) left
    /// blocks that other threads had freed waiting while the heap grew (see
    /// docs/design/heap-tidy.md).
    unsafe fn alloc_slow(&mut self, class: usize, size: usize, zeroed: bool) -> *mut u8 {
        if self.pages[class] == self.stand_in(class) {
            // Every kept block of the class was reused.
            self.foreign_restore(class);
            if self.foreign_refused > 0 {
                // ... and more had been turned away: keep more.
                let cap = self.foreign_cap.saturating_add(self.foreign_refused);
                self.foreign_cap = cap.min(FOREIGN_MAX);
                self.foreign_refused = 0;
            }
        }
        self.flush_pending();
        self.settle_trim();
        self.slow_paths = self.slow_paths.wrapping_add(1);
        self.since_tidy += 1;
        if self.since_tidy >= TIDY_EVERY.max(self.pages_owned) {
            self.tidy();
        }
        // SAFETY: (whole body) we own this heap and all its pages.
        unsafe {
            let cur = self.pages[class];
            if cur != empty_page() {
                if zeroed {
                    // Fresh memory needs no memset.
                    if let Some(b) = Page::take_fresh(cur) {
                        return self.counted(cur, b, size);
                    }
                }
                if self.has_recycled(cur) {
                    return self.take(cur, size, zeroed);
                }
            }
            let mut sparse: *mut Page = ptr::null_mut();
            let mut p = self.avail[class];
            while !p.is_null() {
                if p != cur {
                    if Self::is_sparse(p) {
                        if sparse.is_null() {
                            sparse = p;
                        }
                    } else if self.has_recycled(p) {
                        self.pages[class] = p;
                        return self.take(p, size, zeroed);
                    }
                }
                p = (*p).next;
            }
            // Only sparse pages have free blocks: reuse those (the first
            // found; others may have some too) rather than touch new memory.
            let mut p = sparse;
            while !p.is_null() {
                if p != cur && self.has_recycled(p) {
                    self.pages[class] = p;
                    return self.take(p, size, zeroed);
                }
                p = (*p).next;
            }
            // Out of used blocks: the class grows (see `release_emptied`).
            self.fresh_at[class] = self.slow_paths;
            // A page of the class released with its blocks linked (by a
            // tidy, not purged yet) before fresh memory: its class would
            // otherwise extend other pages' tails meanwhile (see
            // docs/design/heap-tidy.md).
            let (seg, _) = self.segment_for(class, true);
            if !seg.is_null() {
                let p = self.new_page_in(seg, class);
                self.pages[class] = p;
                if (*p).free.is_null() {
                    Page::extend(p);
                }
                return self.take(p, size, zeroed);
            }
            if cur != empty_page() {
                if Page::extend(cur) {
                    return self.take(cur, size, zeroed);
                }
                self.mark_full(cur);
            }
            let mut p = self.avail[class];
            while !p.is_null() {
                let next = (*p).next;
                if Page::extend(p) {
                    self.pages[class] = p;
                    return self.take(p, size, zeroed);
                }
                self.mark_full(p);
                p = next;
            }
            // Full pages that other threads freed into: a few per refill,
            // resuming where the last walk stopped. Walking them all made a
            // heap that only grows quadratic (see docs/design/heap-tidy.md).
            let mut p = self.full_cursor[class];
            if p.is_null() {
                p = self.full[class];
            }
            let mut left = FULL_SCAN;
            while !p.is_null() && left > 0 {
                left -= 1;
                let next = (*p).next;
                if self.collect(p) {
                    self.unmark_full(p);
                    self.full_cursor[class] = next;
                    self.pages[class] = p;
                    return self.take(p, size, zeroed);
                }
                p = next;
            }
            self.full_cursor[class] = p;
            let p = self.new_page(class);
            if p.is_null() {
                self.pages[class] = empty_page();
                return ptr::null_mut();
            }
            self.pages[class] = p;
            if zeroed {
                if let Some(b) = Page::take_fresh(p) {
                    return self.counted(p, b, size);
                }
            }
            Page::extend(p);
            self.take(p, size, zeroed)
        }
    }

    /// True if few of `p`'s blocks are live (a third of the page or less):
    /// the refill leaves such pages alone while fuller ones have free
    /// blocks, so that they empty out and can be released and purged.
    ///
    /// A third rather than an eighth: a higher bar lets more pages drain
    /// (see docs/design/heap-tidy.md). A test checks the rule
    /// (`refill_prefers_fuller_pages_to_sparse_ones`).
    ///
    /// # Safety
    /// Owner only.
    unsafe fn is_sparse(p: *mut Page) -> bool {
        // SAFETY: caller contract. The waiting count can only be stale-low,
        // which makes the page look fuller than it is.
        unsafe {
            let live = ((*p).used as usize).saturating_sub(Page::remote_waiting(p));
            live * (*p).block_size as usize <= SPARSE_BYTES
        }
    }

    /// True if `p` has a block that was used before: on its free list, or
    /// freed into it by other threads (collected now).
    ///
    /// # Safety
    /// Owner only.
    unsafe fn has_recycled(&self, p: *mut Page) -> bool {
        // SAFETY: caller contract.
        unsafe { !(*p).free.is_null() || self.collect(p) }
    }

    unsafe fn take(&mut self, p: *mut Page, size: usize, zeroed: bool) -> *mut u8 {
        // SAFETY: `p` is our page, about to serve the fast path.
        unsafe { Page::check(p) };
        // SAFETY: `p` has a free block (checked by the caller).
        let b = unsafe { Page::pop(p) };
        let b = self.counted(p, b, size);
        if zeroed {
            // SAFETY: the block is ours and at least `size` bytes long; only
            // the requested bytes need clearing (hardened mode keeps its
            // canary in the rest).
            unsafe { ptr::write_bytes(b, 0, size.min((*p).block_size as usize)) };
        }
        b
    }

    fn counted(&mut self, _page: *mut Page, b: *mut u8, size: usize) -> *mut u8 {
        #[cfg(feature = "hardened")]
        // SAFETY: `b` was just taken from `_page`.
        unsafe {
            crate::small::hardened::on_alloc(_page, b, size)
        };
        // SAFETY: `self` is a real heap inside a slot.
        unsafe {
            bump(&(*self.counters).allocs);
            add(&(*self.counters).bytes, size as u64);
        }
        b
    }

    /// A local free left `page` empty or un-full.
    #[cold]
    #[inline(never)]
    unsafe fn after_local_free(&mut self, page: *mut Page) {
        // SAFETY: owner only; `page` is one of ours.
        unsafe {
            if (*page).in_full {
                self.unmark_full(page);
            }
            let class = (*page).class as usize;
            // The current page stays even when empty (also while the
            // class's stand-in page of foreign blocks is in front of it).
            let current = self.pages[class] == page || (*self.stand_in(class)).next == page;
            // (A page still being handed blocks by another thread stays
            // until a tidy finds it quiescent: see `remote.rs`.)
            if (*page).used == 0 && !current && Page::remote_quiescent(page) {
                list_remove(&mut self.avail[class], page);
                self.release_page(page, true);
            }
        }
    }

    unsafe fn mark_full(&mut self, p: *mut Page) {
        // SAFETY: owner only; `p` is in `avail`.
        unsafe {
            let c = (*p).class as usize;
            list_remove(&mut self.avail[c], p);
            list_push(&mut self.full[c], p);
            (*p).in_full = true;
        }
    }

    unsafe fn unmark_full(&mut self, p: *mut Page) {
        // SAFETY: owner only; `p` is in `full`.
        unsafe {
            let c = (*p).class as usize;
            self.full_remove(c, p);
            list_push(&mut self.avail[c], p);
        }
    }

    /// Takes `p` off the full list of `class` (keeping the walk's cursor
    /// valid).
    ///
    /// # Safety
    /// Owner only; `p` is in that list.
    unsafe fn full_remove(&mut self, class: usize, p: *mut Page) {
        // SAFETY: caller contract.
        unsafe {
            if self.full_cursor[class] == p {
                self.full_cursor[class] = (*p).next;
            }
            list_remove(&mut self.full[class], p);
            (*p).in_full = false;
        }
    }

    unsafe fn new_page(&mut self, class: usize) -> *mut Page {
        let (mut seg, written) = self.segment_for(class, false);
        if !written {
            // (A new segment may come from the cache with written slots:
            // counted as fresh all the same, a rare case.)
            self.note_fresh_claim();
        }
        if seg.is_null() {
            seg = Segment::acquire(self, self.slow_paths);
            if seg.is_null() {
                return ptr::null_mut();
            }
            // SAFETY: a new segment of ours.
            unsafe { self.seg_push_front(seg) };
            // Empty until the claim below.
            self.empty_segs += 1;
        }
        // SAFETY: `seg` is ours and has a free slot.
        unsafe { self.new_page_in(seg, class) }
    }

    /// Claims a page of `class` in `seg`, one of our segments with a free
    /// slot.
    ///
    /// # Safety
    /// As stated.
    unsafe fn new_page_in(&mut self, seg: *mut Segment, class: usize) -> *mut Page {
        // SAFETY: caller contract; owner only.
        unsafe {
            if Segment::is_empty(seg) {
                self.empty_segs -= 1;
            }
            let p = Segment::claim_page(seg, class, CLASS_SIZE[class] as usize);
            self.pages_owned += 1;
            if (*seg).free_mask == 0 {
                // Keep segments with free slots in front of full ones.
                self.seg_remove(seg);
                self.seg_push_back(seg);
            }
            list_push(&mut self.avail[class], p);
            p
        }
    }

    /// The segment to claim a page of `class` in: among the first few with
    /// free slots, one holding a slot that served the class and kept its
    /// blocks; unless `intact_only`, else one with a slot written before
    /// (some of it resident), else the first with a free slot. Null if none.
    /// With it, whether the slot it offers was written before (intact or
    /// written: no fresh memory to fault).
    fn segment_for(&self, class: usize, intact_only: bool) -> (*mut Segment, bool) {
        let mut written: *mut Segment = ptr::null_mut();
        let mut seg = self.seg_head;
        // SAFETY: our segments are live; those with free slots come first.
        unsafe {
            for _ in 0..SEGMENT_SEARCH {
                if seg.is_null() || (*seg).free_mask == 0 {
                    break;
                }
                match Segment::slot_for(seg, class) {
                    SlotKind::Intact => return (seg, true),
                    SlotKind::Written if written.is_null() && !intact_only => written = seg,
                    _ => {}
                }
                seg = (*seg).next;
            }
            if !written.is_null() {
                return (written, true);
            }
            if !intact_only && !self.seg_head.is_null() && (*self.seg_head).free_mask != 0 {
                return (self.seg_head, false);
            }
        }
        (ptr::null_mut(), false)
    }

    /// Releases emptied pages and purges page slots (and cached segments)
    /// free for the purge delay (see [`Segment::purge_idle`]).
    #[cold]
    fn tidy(&mut self) {
        self.since_tidy = 0;
        // A thread that has stopped making spans still gives back cached
        // ones that retention no longer allows (its small objects grew).
        self.spans.settle();
        let delay = crate::base::config::purge_delay_us();
        self.release_emptied(delay != u64::MAX);
        if delay == u64::MAX {
            return;
        }
        let now = os::now_us();
        let me: *mut Heap = self;
        // Memory no thread owns waits longer (a segment this heap cached also
        // waits for its work): threads that exit and start again take it
        // back (see `UNOWNED_DELAY_FACTOR`).
        let unowned_delay = delay.saturating_mul(UNOWNED_DELAY_FACTOR);
        Segment::purge_cached(now, unowned_delay, me, self.slow_paths, PURGE_AFTER_PATHS);
        self.purge_free_slots(now, delay, PURGE_AFTER_PATHS);
        self.tidies = self.tidies.wrapping_add(1);
        if self.tidies % RETIRED_TIDY_EVERY == 0 {
            // Exited threads' heaps hold memory that others' frees emptied.
            trim_retired(false, Some((now, unowned_delay)));
        }
    }

    /// Purges the page slots of this heap's segments that have been free
    /// for `delay` microseconds at `now` and `paths` of this heap's slow
    /// paths (0 and 0: every free slot).
    fn purge_free_slots(&mut self, now: u64, delay: u64, paths: u32) {
        let mut seg = self.seg_head;
        let mut purged = 0;
        // SAFETY: our segments are live; those with free slots come first.
        unsafe {
            while !seg.is_null() && (*seg).free_mask != 0 {
                purged += Segment::purge_idle(seg, now, delay, self.slow_paths, paths);
                seg = (*seg).next;
            }
        }
        if purged != 0 {
            self.purged_at = self.slow_paths;
        }
    }

    /// Notes that the heap is about to claim a page slot of fresh memory
    /// (never written, or purged): page faults. One claimed within
    /// [`REFAULT_PATHS`] of a purge is a refault, memory the heap gave back
    /// and needed again at once. After [`REFAULT_SLOTS`] of them (or any,
    /// while it keeps already) the heap keeps pages that other threads'
    /// frees empty for [`KEEP_PATHS`] slow paths: they age like its own (see
    /// [`Heap::release_emptied`]) instead of going back at the next tidy.
    ///
    /// Why: a producer whose consumer frees everything empties pages of
    /// many classes in turn; the per-class growing rule misses a class that
    /// was idle for a moment, and its pages were purged and faulted in again
    /// (`c-xmalloc` spent much of its time faulting). Counting
    /// refaults per heap catches that whatever the class, and a heap that
    /// does not refault (memory handed between threads whose swells take
    /// turns) still gives its emptied pages back at once. Figures:
    /// docs/design/scaling.md.
    fn note_fresh_claim(&mut self) {
        if self.slow_paths.wrapping_sub(self.purged_at) >= REFAULT_PATHS {
            return;
        }
        self.refaulted_slots += 1;
        if self.refaulted_slots >= REFAULT_SLOTS || self.keeping() {
            self.refaulted_slots = 0;
            self.keep_until = self.slow_paths.wrapping_add(KEEP_PATHS);
        }
    }

    /// True while the heap keeps pages other threads emptied (see
    /// [`Heap::note_fresh_claim`]).
    fn keeping(&self) -> bool {
        (self.keep_until.wrapping_sub(self.slow_paths) as i32) > 0
    }

    /// Releases every page of any class, other than a current one, whose
    /// blocks are all free: in particular those emptied by other threads'
    /// frees alone, which nothing else notices. With `trim` (purging is on),
    /// gives back the free tops that bursts left in pages that grew (see
    /// [`Page::trim_burst`]).
    ///
    /// A page emptied by other threads' frees is purged at once (see
    /// [`Heap::release_page`]) unless its class grows: it ran out of used
    /// blocks and needed fresh memory or a new page within the last
    /// [`GROWING_PATHS`] of the heap's slow paths. Then the page ages as
    /// one this heap
    /// emptied itself, and the class's next page claim takes it back as it
    /// is. Why: a producer whose consumer frees everything empties and
    /// refills pages of the same classes all the time; purged at once, each
    /// page was faulted in again a moment later, and `c-xmalloc` spent most
    /// of its time in the kernel (see docs/design/scaling.md). A heap whose
    /// swell comes back after its class stopped growing still purges at
    /// once, unless it refaulted
    /// what it purged (then it keeps them a while: see
    /// [`Heap::note_fresh_claim`]).
    fn release_emptied(&mut self, trim: bool) {
        let keeping = self.keeping();
        for class in 0..NUM_CLASSES {
            let growing = self.slow_paths.wrapping_sub(self.fresh_at[class]) < GROWING_PATHS || keeping;
            let fp = self.stand_in(class);
            // The real current page: behind the stand-in page while that is
            // in front.
            let cur = if self.pages[class] == fp {
                // SAFETY: our stand-in page (real heaps only take this path).
                unsafe { (*fp).next }
            } else {
                self.pages[class]
            };
            for full in [false, true] {
                let mut p = if full { self.full[class] } else { self.avail[class] };
                while !p.is_null() {
                    // SAFETY: owner; pages in our lists are live and ours.
                    unsafe {
                        let next = (*p).next;
                        let used = (*p).used as usize;
                        let waiting = Page::remote_waiting(p);
                        // Every block seems free (no block is live, batched
                        // or kept elsewhere: those count as used and are not
                        // waiting). The count is a hint: take the marks and
                        // check, and that no other thread is still handing
                        // blocks over (see `remote.rs`).
                        let linked = waiting == 0;
                        if used == waiting && !linked {
                            self.collect(p);
                        }
                        if used == waiting && (*p).used == 0 && Page::remote_quiescent(p) {
                            if p == cur {
                                // Also the current page: a class used in
                                // a burst long ago would keep a page of
                                // memory; the next allocation claims it
                                // back as it is, if that comes soon.
                                if self.pages[class] == fp {
                                    (*fp).next = empty_page();
                                } else {
                                    self.pages[class] = empty_page();
                                }
                            }
                            if full {
                                self.full_remove(class, p);
                            } else {
                                list_remove(&mut self.avail[class], p);
                            }
                            // Collected above if it was not linked: every
                            // block is on its free list now either way.
                            self.release_page(p, linked || growing);
                        } else if cfg!(not(feature = "hardened"))
                            && trim
                            && self.slow_paths.wrapping_sub((*p).trimmed_at_path) >= TRIM_EVERY
                        {
                            let (area, len) = segment::area_of(p);
                            if Page::grew(p, area) {
                                (*p).trimmed_at_path = self.slow_paths;
                                Page::trim_burst(p, area, len);
                            }
                        }
                        p = next;
                    }
                }
            }
        }
    }

    /// Gives an empty page (already unlinked) back to its segment, and the
    /// segment back if it is now empty.
    ///
    /// A page whose last blocks came back through other threads' frees
    /// (`!linked`: still waiting in its remote list) counts as idle for the
    /// whole purge delay already, so the tidy that releases it purges it:
    /// its memory went to other threads' work, not through this heap's own
    /// free-and-allocate-again cycles, which the delay is for. When threads
    /// hand data to each other, their heaps swell and shrink in turns; each
    /// kept its swell for the delay, so the swells added up (see
    /// docs/design/heap-tidy.md; check `soak` before purging more eagerly).
    unsafe fn release_page(&mut self, page: *mut Page, linked: bool) {
        // SAFETY: caller contract: our page, all its blocks free.
        unsafe { Page::check(page) };
        let seg = segment::segment_of(page);
        self.pages_owned -= 1;
        let (now, path) = if linked {
            (os::now_us(), self.slow_paths)
        } else {
            // Freed "long ago" by both clocks: the purge in this tidy takes it.
            (0, self.slow_paths.wrapping_sub(PURGE_AFTER_PATHS))
        };
        // SAFETY: owner only; the page has no live block.
        unsafe {
            let was_full = (*seg).free_mask == 0;
            if Segment::release_page(seg, page, linked, now, path) {
                if self.empty_segs < KEEP_EMPTY_SEGMENTS {
                    self.empty_segs += 1;
                    if was_full {
                        self.seg_remove(seg);
                        self.seg_push_front(seg);
                    }
                } else {
                    self.seg_remove(seg);
                    Segment::release(seg, self.slow_paths);
                }
            } else if was_full {
                self.seg_remove(seg);
                self.seg_push_front(seg);
            }
        }
    }

    unsafe fn seg_push_front(&mut self, s: *mut Segment) {
        // SAFETY: owner only.
        unsafe {
            (*s).prev = ptr::null_mut();
            (*s).next = self.seg_head;
            if self.seg_head.is_null() {
                self.seg_tail = s;
            } else {
                (*self.seg_head).prev = s;
            }
            self.seg_head = s;
        }
    }

    unsafe fn seg_push_back(&mut self, s: *mut Segment) {
        // SAFETY: owner only.
        unsafe {
            (*s).next = ptr::null_mut();
            (*s).prev = self.seg_tail;
            if self.seg_tail.is_null() {
                self.seg_head = s;
            } else {
                (*self.seg_tail).next = s;
            }
            self.seg_tail = s;
        }
    }

    unsafe fn seg_remove(&mut self, s: *mut Segment) {
        // SAFETY: owner only; `s` is in our list.
        unsafe {
            if (*s).prev.is_null() {
                self.seg_head = (*s).next;
            } else {
                (*(*s).prev).next = (*s).next;
            }
            if (*s).next.is_null() {
                self.seg_tail = (*s).prev;
            } else {
                (*(*s).next).prev = (*s).prev;
            }
        }
    }

    /// At thread exit: collect remote frees and release every empty page.
    unsafe fn abandon(&mut self) {
        self.flush_foreign();
        self.flush_pending();
        for class in 0..NUM_CLASSES {
            self.pages[class] = empty_page();
            for full in [false, true] {
                let mut p = if full { self.full[class] } else { self.avail[class] };
                while !p.is_null() {
                    // SAFETY: owner (until retirement); pages are ours.
                    unsafe {
                        let next = (*p).next;
                        self.collect(p);
                        if (*p).used == 0 && Page::remote_quiescent(p) {
                            if full {
                                self.full_remove(class, p);
                            } else {
                                list_remove(&mut self.avail[class], p);
                            }
                            self.release_page(p, true);
                        }
                        p = next;
                    }
                }
            }
        }
        // The empty segments this heap kept go to the cache (or the OS).
        let mut seg = self.seg_head;
        // SAFETY: our segments; those with free slots come first.
        unsafe {
            while !seg.is_null() && (*seg).free_mask != 0 {
                let next = (*seg).next;
                if Segment::is_empty(seg) {
                    self.seg_remove(seg);
                    Segment::release(seg, self.slow_paths);
                }
                seg = next;
            }
        }
        self.empty_segs = 0;
    }
}

unsafe fn list_push(head: &mut *mut Page, p: *mut Page) {
    // SAFETY: caller owns the list and `p`.
    unsafe {
        (*p).prev = ptr::null_mut();
        (*p).next = *head;
        if !head.is_null() {
            (**head).prev = p;
        }
    }
    *head = p;
}

unsafe fn list_remove(head: &mut *mut Page, p: *mut Page) {
    // SAFETY: caller owns the list; `p` is in it.
    unsafe {
        if (*p).prev.is_null() {
            *head = (*p).next;
        } else {
            (*(*p).prev).next = (*p).next;
        }
        if !(*p).next.is_null() {
            (*(*p).next).prev = (*p).prev;
        }
        (*p).next = ptr::null_mut();
        (*p).prev = ptr::null_mut();
    }
}

/// Every heap ever made, and the retired ones waiting for a new thread.
struct Registry {
    all: *mut HeapSlot,
    retired: *mut Heap,
    /// Unused part of the current metadata mapping.
    slab: *mut u8,
    slab_end: *mut u8,
    /// Heaps created so far (the next heap's `index`).
    count: usize,
}
// SAFETY: the lock serialises access; the pointers are to our metadata.
unsafe impl Send for Registry {}

static REGISTRY: SpinLock<Registry> = SpinLock::new(Registry {
    all: ptr::null_mut(),
    retired: ptr::null_mut(),
    slab: ptr::null_mut(),
    slab_end: ptr::null_mut(),
    count: 0,
});

const SLAB: usize = HEAP_SLAB;

impl Registry {
    /// A retired heap, or a new one. Null when the OS refuses memory.
    fn acquire(&mut self) -> *mut Heap {
        if !self.retired.is_null() {
            let h = self.retired;
            // SAFETY: retired heaps are live metadata owned by the registry;
            // `h` is ours to set up for its new thread.
            unsafe {
                self.retired = (*h).retired_next;
                // A new thread's work: what the last one refaulted says
                // nothing about it.
                (*h).refaulted_slots = 0;
                (*h).keep_until = (*h).slow_paths;
                // What the heap holds free is the new thread's to use first
                // (segments with free slots come first in the list).
                let now = os::now_us();
                let mut seg = (*h).seg_head;
                while !seg.is_null() && (*seg).free_mask != 0 {
                    Segment::restart_aging(seg, now, (*h).slow_paths);
                    seg = (*seg).next;
                }
            }
            return h;
        }
        let size = core::mem::size_of::<HeapSlot>();
        if (self.slab_end as usize) - (self.slab as usize) < size {
            let m = os::map(SLAB, os::page());
            if m.is_null() {
                return ptr::null_mut();
            }
            stats::mapped(SLAB);
            self.slab = m;
            // SAFETY: one past the end of the new mapping.
            self.slab_end = unsafe { m.add(SLAB) };
        }
        let slot = self.slab.cast::<HeapSlot>();
        // SAFETY: `slot` has room for a HeapSlot inside the slab (checked);
        // the slab is 4 KiB aligned and HeapSlot sizes are multiples of its
        // 128-byte alignment, so every slot is aligned.
        unsafe {
            self.slab = self.slab.add(size);
            ptr::write(
                slot,
                HeapSlot {
                    counters: Counters {
                        allocs: AtomicU64::new(0),
                        frees: AtomicU64::new(0),
                        bytes: AtomicU64::new(0),
                        remote: RemoteCounts::new(),
                    },
                    heap: Heap::with_pages(empty_page()),
                    foreign: [const { Page::empty() }; NUM_CLASSES],
                    all_next: self.all,
                },
            );
            self.all = slot;
            (*slot).heap.counters = ptr::addr_of!((*slot).counters);
            (*slot).heap.foreign = ptr::addr_of_mut!((*slot).foreign).cast();
            (*slot).heap.index = self.count;
            // Trims asked for before this heap existed are nothing to it.
            (*slot).heap.trim_epoch = TRIM_EPOCH.load(Relaxed);
            self.count += 1;
            ptr::addr_of_mut!((*slot).heap)
        }
    }

    fn retire(&mut self, h: *mut Heap) {
        // SAFETY: `h` is a live heap that its thread just gave up.
        unsafe { (*h).retired_next = self.retired };
        self.retired = h;
    }
}

/// Small-object counters summed over every heap.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Totals {
    pub(crate) allocs: u64,
    pub(crate) frees: u64,
    /// Bytes requested by small allocations.
    pub(crate) bytes: u64,
    pub(crate) heaps: usize,
    /// [`RemoteCounts`] summed: batches handed over, their blocks and
    /// atomic operations, batches kept, collections and blocks collected.
    pub(crate) remote_batches: u64,
    pub(crate) remote_blocks: u64,
    pub(crate) remote_atomics: u64,
    pub(crate) remote_kept: u64,
    pub(crate) remote_collects: u64,
    pub(crate) remote_collected: u64,
}

/// Small-object counters summed over every heap (a walk under the registry
/// lock: for `stats()` and phase boundaries, never per allocation).
pub(crate) fn totals() -> Totals {
    let reg = REGISTRY.lock();
    let mut t = Totals::default();
    let mut s = reg.all;
    while !s.is_null() {
        // SAFETY: slots are never freed; counters are atomics.
        unsafe {
            t.allocs += (*s).counters.allocs.load(Relaxed);
            t.frees += (*s).counters.frees.load(Relaxed);
            t.bytes += (*s).counters.bytes.load(Relaxed);
            let r = &(*s).counters.remote;
            t.remote_batches += r.batches.load(Relaxed);
            t.remote_blocks += r.blocks.load(Relaxed);
            t.remote_atomics += r.atomics.load(Relaxed);
            t.remote_kept += r.kept.load(Relaxed);
            t.remote_collects += r.collects.load(Relaxed);
            t.remote_collected += r.collected.load(Relaxed);
            s = (*s).all_next;
        }
        t.heaps += 1;
    }
    t.frees += stats::ORPHAN_FREES.load(Relaxed) as u64;
    t
}

/// Drops this thread's empty pages and cached segments (for `trim`).
pub(crate) fn trim_current_thread() {
    let h = OWNED.get();
    if !h.is_null() {
        // SAFETY: our own heap; abandon only releases empty pages and resets
        // current-page pointers, after which refill finds pages again.
        unsafe {
            (*h).trim_epoch = TRIM_EPOCH.load(Relaxed);
            (*h).spans.release();
            (*h).abandon();
            (*h).purge_free_slots(0, 0, 0);
        }
    }
    Segment::trim_cache();
}

/// Runs `f` with the calling thread's span cache, or with `None` where the
/// thread owns no heap (before its first small allocation, after its exit
/// hook ran): the cache lives in the heap so that the hook flushes it, and a
/// thread without one would keep cached spans forever.
#[inline]
pub(crate) fn with_span_cache<R>(f: impl FnOnce(Option<&mut SpanCache>) -> R) -> R {
    let h = OWNED.get();
    if h.is_null() {
        return f(None);
    }
    // SAFETY: our own heap, used by this thread only; `f` is span code (the
    // layer below), which does not reach the heap while it holds the cache.
    f(Some(unsafe { &mut (*h).spans }))
}

/// Gives back what the heaps of exited threads hold: other threads' frees
/// into their pages are collected, emptied pages released and free slots
/// purged, rather than when a new thread adopts the heap. With `wait`,
/// takes the registry lock; without, only if it is free now (the tidy's
/// occasional call). `idle` = `Some((now, delay))` purges only the slots
/// free for `delay` µs (the tidy's call, with the unowned delay), `None`
/// every free slot (a trim, or memory wanted under the budget).
///
/// Why a delay for the tidy's call: a program that runs its work in rounds
/// of short-lived threads retires heaps that the next round's threads adopt
/// a moment later; purged in between, their pages were faulted in again
/// (see docs/design/heap-tidy.md).
pub(crate) fn trim_retired(wait: bool, idle: Option<(u64, u64)>) {
    let reg = if wait {
        REGISTRY.lock()
    } else {
        match REGISTRY.try_lock() {
            Some(g) => g,
            None => return,
        }
    };
    let mut h = reg.retired;
    while !h.is_null() {
        // Releasing pages nests the segment and pool locks inside the
        // registry's: the order the fork handlers take them in.
        // SAFETY: a retired heap belongs to the registry, whose lock we
        // hold; no thread uses it until it is adopted under that lock.
        unsafe {
            (*h).abandon();
            let (now, delay) = idle.unwrap_or((0, 0));
            (*h).purge_free_slots(now, delay, 0);
            if idle.is_none() {
                // Trimmed as a live heap's `settle_trim` would be: its next
                // owner need not do it again.
                (*h).trim_epoch = TRIM_EPOCH.load(Relaxed);
            }
            h = (*h).retired_next;
        }
    }
}

/// A process-wide trim: [`trim_current_thread`] and [`trim_retired`] now,
/// and every other live thread's heap at its owner's next slow path (the
/// trim epoch, see the module docs; another thread may not touch its pages).
pub(crate) fn trim_all() {
    TRIM_EPOCH.fetch_add(1, Relaxed);
    trim_current_thread();
    trim_retired(true, None);
    Segment::trim_cache();
}

/// The index of the heap the calling thread owns, or `usize::MAX` when it
/// owns none (before its first small allocation, after its exit hook ran).
///
/// A heap belongs to one thread at a time, and it changes hands only through
/// the registry's lock (retired at thread exit, adopted by a new thread), so
/// per-thread state that an arena keeps in slot `owned_index()` is touched by
/// one thread at a time, each owner's work happening before the next's —
/// the same argument as for the heap itself. That is how the witness arena
/// caches blocks per thread without locks (`witness::ThreadCache`).
#[inline(always)]
pub(crate) fn owned_index() -> usize {
    OWNED_INDEX.get()
}

/// Runs the calling thread's tidy now (tests of the housekeeping).
#[cfg(test)]
pub(crate) fn tidy_current_thread() {
    let h = OWNED.get();
    if !h.is_null() {
        // SAFETY: our own heap.
        unsafe { (*h).tidy() };
    }
}

/// True if `seg` is one of the calling thread's heap's segments (tests: a
/// segment whose pages are all free leaves the heap, for the cache or the
/// OS, and must not be read any more).
#[cfg(test)]
pub(crate) fn owns_segment(seg: *mut Segment) -> bool {
    let h = OWNED.get();
    if h.is_null() {
        return false;
    }
    // SAFETY: our own heap; its segment list is ours.
    unsafe {
        let mut s = (*h).seg_head;
        while !s.is_null() {
            if s == seg {
                return true;
            }
            s = (*s).next;
        }
    }
    false
}

/// Counts `n` slow paths as taken by the calling thread's heap (tests of
/// the purge, which ages free memory by its heap's work).
#[cfg(test)]
pub(crate) fn count_slow_paths(n: u32) {
    let h = OWNED.get();
    if !h.is_null() {
        // SAFETY: our own heap.
        unsafe { (*h).slow_paths = (*h).slow_paths.wrapping_add(n) };
    }
}

/// Page slots the calling thread's heap holds (tests).
#[cfg(test)]
pub(crate) fn pages_owned() -> usize {
    let h = OWNED.get();
    if h.is_null() {
        0
    } else {
        // SAFETY: our own heap.
        unsafe { (*h).pages_owned as usize }
    }
}

/// A large allocation by this thread: counts towards its heap's next tidy
/// like a few slow paths, so that a thread busy with large blocks (a
/// prover's FFT phase) still gives its emptied small-object pages back.
pub(crate) fn tidy_hint() {
    let heap = current::get();
    if heap == empty_heap() || heap == scope_heap() {
        return;
    }
    // SAFETY: a real heap in CURRENT is this thread's own.
    unsafe {
        // A thread busy with large blocks may not refill for a long time.
        (*heap).settle_trim();
        (*heap).since_tidy += LARGE_TIDY_WEIGHT;
        // Work on large blocks ages free small-object memory too.
        (*heap).slow_paths = (*heap).slow_paths.wrapping_add(LARGE_TIDY_WEIGHT);
        if (*heap).since_tidy >= TIDY_EVERY.max((*heap).pages_owned) {
            (*heap).tidy();
        }
    }
}

/// True while the calling thread is inside a witness scope.
#[inline]
pub(crate) fn in_scope() -> bool {
    current::get() == scope_heap()
}

/// Takes this module's locks before `fork` (order: shared heap, registry —
/// the order `shared_alloc` nests them in).
pub(crate) fn fork_lock() {
    SHARED.acquire_raw();
    REGISTRY.acquire_raw();
}

/// Releases the locks of [`fork_lock`].
///
/// # Safety
/// Only after `fork_lock`.
pub(crate) unsafe fn fork_unlock() {
    // SAFETY: caller contract: we hold both locks.
    unsafe {
        REGISTRY.release_raw();
        SHARED.release_raw();
    }
}

/// A small block of `class` from the plain engine, zeroed if asked (`size`
/// is the request's): the fast path, else [`refill`]. No witness policy:
/// callers that honour witness scopes route before calling (see
/// `front/route.rs`).
///
/// # Safety
/// `class < NUM_CLASSES`.
#[inline]
pub(crate) unsafe fn alloc_class(class: usize, size: usize, zeroed: bool) -> *mut u8 {
    // SAFETY: forwarded caller contract.
    unsafe { pop(class, size, zeroed).unwrap_or_else(|| refill(class, size, zeroed)) }
}
