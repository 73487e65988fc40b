//! The witness arena: memory for secrets.
//!
//! Every witness block lives in one process-wide *witness region*: 64 GiB
//! of address space reserved inaccessible once, cut into 1 MiB slots. An
//! arena commits *chunks* (runs of slots) inside it:
//!
//! ```text
//! | guard | header page | blocks ................................ | guard | guard | next chunk ...
//!   4 KiB   committed, mlock'ed;  blocks also MADV_DONTDUMP, MADV_WIPEONFORK   4 KiB
//! ```
//!
//! * The guards are simply the parts of the slot never committed, so every
//!   chunk is fenced without extra mappings: the number of mappings grows
//!   with chunks, not with allocations (per-object guard pages, as in
//!   libsodium, exhaust `vm.max_map_count`; see docs/design/witness-arena.md).
//! * Locking is per chunk and lasts the chunk's lifetime, so freeing one of
//!   two secrets on a page never unlocks the other. When `RLIMIT_MEMLOCK`
//!   forbids locking, the arena keeps working and `stats` says so.
//! * Blocks are zero when handed out and wiped (with a write the optimiser
//!   cannot remove) on every free; the link of the free list is the only
//!   non-zero word of a free block, and it is cleared on hand-out.
//! * Small requests use the allocator's size classes. Fresh blocks are cut
//!   from a per-class *run* (16 blocks, 4-64 KiB) of the current chunk, so
//!   a class's blocks are neighbours as in a heap's page, and freed blocks
//!   are recycled LIFO per class. Larger requests (over 64 KiB) get a chunk
//!   of their own, placed so that the block ends as close to the trailing
//!   guard page as its alignment allows. `secure_wipe` keeps small chunks
//!   (wiped) for reuse.
//! * **Per-thread caches.** The shared free lists and chunks sit behind one
//!   lock. Each arena also keeps, for the first [`CACHES`] threads (by heap
//!   index, see `heap::owned_index`), a private cache per class: a list of
//!   wiped blocks plus one full batch in reserve (a magazine pair). Alloc
//!   and free touch only the caller's cache, with plain loads and stores,
//!   and trade whole batches (linked through their first block, O(1), no
//!   list walk) with the shared stack under the lock. A cache is used by one
//!   thread at a time (a heap's owner), so it needs no lock or atomic
//!   read-modify-write; `secure_wipe` empties every cache, hence its
//!   contract that no other thread uses the arena meanwhile. Accounting is
//!   per class in the same entry; `stats` sums it exactly and the peak is
//!   sampled at trades. Runs and caches are what bring the arena's cost down
//!   to that of plain alloc + memset + free (see docs/design/witness-arena.md).
//! * One range comparison (`contains`) tells the global `dealloc` whether a
//!   pointer is witness memory, which is how blocks allocated inside
//!   `witness_scope` are recognised when freed anywhere, on any thread.

use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicUsize, Ordering::Relaxed};

use crate::base::check::invariant;
use crate::base::sync::SpinLock;
use crate::mem::region::Region;
use crate::os::{self, OS_PAGE};
use crate::small::heap;
use crate::small::page::Block;
use crate::small::size_class::{self, CLASS_SIZE, NUM_CLASSES};

/// Size of one slot of the witness region.
pub(crate) const SLOT: usize = crate::policy::WITNESS_SLOT;
/// Slots in the region (64 GiB of address space on 64-bit targets; 8 MiB
/// under Miri, where "reserving" allocates).
const SLOTS: usize = crate::policy::WITNESS_SLOTS;
/// Inaccessible bytes before and after every chunk.
const GUARD: usize = if OS_PAGE > 4096 { OS_PAGE } else { 4096 };
/// The chunk header (non-secret bookkeeping) owns the chunk's first page,
/// which is *not* marked wipe-on-fork or dump-excluded: a forked child must
/// still read valid headers (to wipe or release its copy of the chunks),
/// and only the pages after it can hold secrets.
const HEADER: usize = OS_PAGE;

/// Where every witness chunk lives.
static REGION: Region<{ SLOTS.div_ceil(64) }> = Region::new(SLOT, SLOTS);

/// True if `p` points into the witness region.
#[inline(always)]
pub(crate) fn contains(p: *const u8) -> bool {
    REGION.contains(p)
}

/// Per slot of the region, how a live chunk covers it (out of line, so that
/// a pointer can be checked without touching the chunk): 0 free, else
/// [`FIRST`] and/or [`LAST`] for a chunk's edge slots (whose outer `GUARD`
/// bytes are inaccessible), [`INSIDE`] for the slots between.
static SLOT_STATE: [AtomicU8; SLOTS] = [const { AtomicU8::new(0) }; SLOTS];
const FIRST: u8 = 1;
const LAST: u8 = 2;
const INSIDE: u8 = 4;

/// Records that the chunk at slots `first..first + n` is live (`on`) or gone.
fn mark_slots(first: usize, n: usize, on: bool) {
    for i in 0..n {
        let state = if !on {
            0
        } else if n == 1 {
            FIRST | LAST
        } else if i == 0 {
            FIRST
        } else if i == n - 1 {
            LAST
        } else {
            INSIDE
        };
        if let Some(s) = SLOT_STATE.get(first + i) {
            s.store(state, Relaxed);
        }
    }
}

/// True if `[p, p + len)` (inside the witness region, `len` ≤ a page) lies
/// in the committed part of a live chunk, so it can be read without a
/// fault: the check a free of a witness pointer makes before it reads the
/// block's header (a chunk freed already is decommitted).
pub(crate) fn readable(p: *const u8, len: usize) -> bool {
    if !contains(p) || !contains(p.wrapping_add(len - 1)) {
        return false;
    }
    let (i, j) = (REGION.slot_of(p), REGION.slot_of(p.wrapping_add(len - 1)));
    let state = |k: usize| SLOT_STATE.get(k).map_or(0, |s| s.load(Relaxed));
    let (si, sj) = (state(i), state(j));
    let (start, end) = (p.addr() % SLOT, (p.addr() + len - 1) % SLOT);
    si != 0
        && sj != 0
        && (i == j || si & LAST == 0)
        && (si & FIRST == 0 || start >= GUARD)
        && (sj & LAST == 0 || end < SLOT - GUARD)
}

/// Bookkeeping at the start of every chunk (not secret).
#[repr(C)]
struct ChunkHeader {
    /// Next chunk of the same arena and kind.
    next: *mut ChunkHeader,
    /// Slots the chunk spans.
    slots: usize,
    /// Committed bytes from the header on.
    len: usize,
    /// For a large chunk: the block and its length.
    block: *mut u8,
    block_len: usize,
}

const _: () = assert!(core::mem::size_of::<ChunkHeader>() <= HEADER);

impl ChunkHeader {
    /// Checks a chunk's invariants in debug builds (see `base/check.rs`):
    /// it starts one guard into a slot of the witness region, spans
    /// `slots` slots less the two guards, and its recorded block (a large
    /// chunk's block, or how far a small chunk was used) lies inside it,
    /// after the header page.
    ///
    /// # Safety
    /// `h` must be a chunk made by `new_chunk` and not yet dropped.
    unsafe fn check(h: *const ChunkHeader) {
        if !cfg!(debug_assertions) {
            return;
        }
        let at = h.addr();
        invariant!(
            contains(h.cast()) && (at - GUARD) % SLOT == 0,
            "witness chunk: not at a slot of the region",
            at
        );
        // SAFETY: caller contract: a live chunk header.
        let (slots, len, block, block_len) = unsafe { ((*h).slots, (*h).len, (*h).block, (*h).block_len) };
        invariant!(
            (1..=SLOTS).contains(&slots) && len == slots * SLOT - 2 * GUARD,
            "witness chunk: length differs from its slots",
            at
        );
        if block.is_null() {
            // A small-block chunk: `block_len` is how far it was used.
            invariant!(block_len <= len, "witness chunk: used past its end", at);
        } else {
            invariant!(
                block.addr() >= at + HEADER && block.addr() + block_len <= at + len,
                "witness chunk: block outside the chunk",
                at
            );
        }
    }
}

impl Inner {
    /// Checks the small-block state in debug builds: the bump range is the
    /// unused rest of the newest small chunk, and every class's current run
    /// lies in the witness region with its cursor inside it.
    fn check(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        let at = self as *const Inner as usize;
        if !self.small.is_null() {
            // SAFETY: `small` is a live chunk of ours (the caller holds the
            // lock).
            unsafe { ChunkHeader::check(self.small) };
            let h = self.small.addr();
            invariant!(
                self.bump.addr() >= h + HEADER && self.bump <= self.end && self.end.addr() <= h + SLOT,
                "witness arena: bump range outside the newest chunk",
                at
            );
        }
        for (run, &end) in self.run.iter().zip(&self.run_end) {
            invariant!(
                run.is_null() || (contains(run.cast()) && run.addr() <= end),
                "witness arena: a class's run outside the region",
                at
            );
        }
    }
}

/// What happened when a chunk was committed: feeds the arena's stats.
#[derive(Default)]
struct Protection {
    locked: bool,
    dont_dump: bool,
    wipe_on_fork: bool,
}

/// Commits a chunk of `slots` slots with all protections. Null when the OS
/// refuses memory or a protection call fails unexpectedly.
fn new_chunk(slots: usize, prot: &mut Protection) -> *mut ChunkHeader {
    let base = REGION.claim(slots);
    if base.is_null() {
        return ptr::null_mut();
    }
    let len = slots * SLOT - 2 * GUARD;
    // SAFETY: inside the claimed slots.
    let p = unsafe { base.add(GUARD) };
    // SAFETY: the range is inside our reservation, page aligned, and
    // claimed by us alone.
    let ok = unsafe { os::commit(p, len) }.is_ok();
    if !ok {
        REGION.release(base, slots);
        return ptr::null_mut();
    }
    // SAFETY: committed just now, page aligned, ours; the secret part starts
    // after the header page.
    match unsafe { os::protect_secret(p.add(HEADER), len - HEADER) } {
        Ok(f) => {
            prot.dont_dump = f.dont_dump;
            prot.wipe_on_fork = f.wipe_on_fork;
        }
        Err(os::OsError(12)) => {} // ENOMEM: out of VMAs; the memory itself works.
        Err(_) => {
            // SAFETY: ours, holds nothing yet.
            unsafe { os::decommit(p, len) };
            REGION.release(base, slots);
            return ptr::null_mut();
        }
    }
    // SAFETY: as above.
    prot.locked = unsafe { os::lock(p, len) }.is_ok();
    // SAFETY: as above.
    unsafe { os::name(p, len, c"nalloc-witness") };
    mark_slots(REGION.slot_of(base), slots, true);
    let h = p.cast::<ChunkHeader>();
    // SAFETY: the header fits at the start of the committed range.
    unsafe {
        ptr::write(
            h,
            ChunkHeader {
                next: ptr::null_mut(),
                slots,
                len,
                block: ptr::null_mut(),
                block_len: 0,
            },
        );
        ChunkHeader::check(h);
    };
    h
}

/// Wipes and gives back a chunk (all its blocks must be dead).
///
/// # Safety
/// `h` must be a chunk made by `new_chunk` that nobody uses any more.
unsafe fn drop_chunk(h: *mut ChunkHeader, wipe_len: usize) {
    // SAFETY: caller contract.
    unsafe {
        ChunkHeader::check(h);
        let slots = (*h).slots;
        let len = (*h).len;
        let p = h.cast::<u8>();
        os::secure_zero(p, wipe_len.min(len));
        // The slots go back to the region: clear the secret's advice, or a
        // later chunk's header page there would read as zero in a forked
        // child (found by the chunk check under the fork test).
        os::unprotect_secret(p.add(HEADER), len - HEADER);
        mark_slots(REGION.slot_of(p), slots, false);
        os::unlock(p, len);
        os::decommit(p, len);
        REGION.release(p.sub(GUARD), slots);
    }
}

/// The first block of a batch (see `Inner::batches`): its usual link, then
/// the link to the next batch. Every class holds at least two words.
#[repr(C)]
struct BatchHead {
    next: *mut Block,
    next_batch: *mut BatchHead,
}

const _: () = assert!(core::mem::size_of::<BatchHead>() <= crate::small::size_class::MIN_ALIGN);

struct Inner {
    /// Per-class lists of wiped free blocks, one by one (frees from threads
    /// without a cache, remainders of split batches).
    free: [*mut Block; NUM_CLASSES],
    /// Per-class stacks of *batches*: chains of exactly `batch(class)`
    /// wiped blocks that a thread cache handed back (see `spill`), linked
    /// through the second word of each chain's first block. A cache refills
    /// with a whole batch in O(1): walking a list block by block would be a
    /// chain of dependent cache misses on memory that a prover has long
    /// evicted.
    batches: [*mut BatchHead; NUM_CLASSES],
    /// Small-block chunks, newest first; `bump..end` is the newest's rest.
    small: *mut ChunkHeader,
    bump: *mut u8,
    end: *mut u8,
    /// Per class, the next fresh block of its current run and the run's end
    /// (see `take_locked`).
    run: [*mut u8; NUM_CLASSES],
    run_end: [usize; NUM_CLASSES],
    /// Small-block chunks wiped by `secure_wipe` and kept (committed,
    /// locked) for reuse before any new chunk is committed.
    spare: *mut ChunkHeader,
    /// Large-block chunks.
    large: *mut ChunkHeader,
    /// Bytes handed out under the lock, net (wrapping: blocks allocated
    /// through a thread cache may be freed here), and the highest total
    /// (with the caches' figures) seen at a locked allocation.
    used: usize,
    peak: usize,
    /// Thread caches that were ever refilled (bit `i` for cache `i`): the
    /// sums behind `peak` visit only these — every cache is its own cache
    /// line or more, and a prover streaming through memory evicts them all.
    /// (A cache only ever freed into is missed there, which can only lower
    /// the peak estimate; `stats` sums every cache for `used`.)
    active: u64,
}

// SAFETY: the lock serialises access; pointers are to our own chunks.
unsafe impl Send for Inner {}

/// Threads (heap indices `0..CACHES`) with a private block cache in every
/// arena; later ones use the locked lists directly. A cache is 1,440 bytes
/// (44 entries of 32), so an arena carries 45 KiB of them, all zero until
/// used (`.bss` for a static arena).
pub(crate) const CACHES: usize = crate::policy::WITNESS_CACHES;
const _: () = assert!(CACHES <= 64, "Inner::active is a u64");
/// A cache refills / hands back this many bytes' worth of blocks per lock
/// (at least one block, at most [`BATCH_MAX`]); it keeps at most two batches
/// per class, so what one thread can hold back is bounded.
use crate::policy::{WITNESS_BATCH_BYTES as BATCH_BYTES, WITNESS_BATCH_MAX as BATCH_MAX};
/// A class's run of fresh blocks (see `take_locked`) holds [`RUN_BLOCKS`]
/// blocks, but at least a page (the span a hardware prefetcher follows) and
/// at most 64 KiB (the largest classes get one block): touching every class
/// once then commits about 1 MiB, one chunk.
use crate::policy::{WITNESS_RUN_BLOCKS as RUN_BLOCKS, WITNESS_RUN_MAX as RUN_MAX, WITNESS_RUN_MIN as RUN_MIN};

/// Blocks per refill / hand-back for blocks of class `c`.
const fn batch(c: usize) -> u16 {
    let n = BATCH_BYTES / CLASS_SIZE[c] as usize;
    if n < 1 {
        1
    } else if n > BATCH_MAX {
        BATCH_MAX as u16
    } else {
        n as u16
    }
}

/// Blocks per batch, per class ([`batch`]), read on the free path.
static BATCH: [u16; NUM_CLASSES] = {
    let mut t = [0u16; NUM_CLASSES];
    let mut c = 0;
    while c < NUM_CLASSES {
        t[c] = batch(c);
        c += 1;
    }
    t
};

/// One class in a thread's cache, a *magazine* pair (as in Bonwick's
/// magazine allocator): `head`, a list of up to `batch` wiped free blocks
/// that alloc pops and free pushes, and `full`, one complete batch held in
/// reserve. Blocks are linked through their first word, the only non-zero
/// word of a wiped block. Both lists are handed over whole, in O(1), so no
/// path ever walks a list.
///
/// Alloc and free touch this entry and nothing else of the arena: a prover
/// streaming through memory evicts the arena's lines between calls, so one
/// more line per call (a per-thread byte counter) costs measurably (see
/// docs/design/witness-arena.md). So the accounting is per class, in blocks
/// (`net`), here.
/// Fields are written by the owning thread only, through raw pointers (no
/// reference to the entry), so that `stats` may read `net` meanwhile.
#[repr(C, align(32))]
struct ClassCache {
    head: *mut Block,
    /// A batch of exactly `batch` blocks, or null.
    full: *mut Block,
    /// Blocks handed out through this entry minus blocks freed into it
    /// (wraps below zero when this thread frees blocks that others
    /// allocated; the sum over every cache and the locked lists is what is
    /// live). Owner-written with plain load + store, read by `stats`.
    net: AtomicI32,
    /// `net` at the owner's last batch trade (see `WitnessArena::sample`).
    traded: i32,
    /// Blocks in `head`.
    len: u16,
    /// Blocks per batch ([`batch`]); 0 until the entry's first use, so
    /// that the caches start all-zero (in `.bss`, not in the binary).
    batch: u16,
}

const _: () = assert!(core::mem::size_of::<ClassCache>() == 32);

/// A thread's cache in one arena (see the module docs).
struct ThreadCache {
    /// Bytes handed out through this cache as of the owner's last batch
    /// trades (per class, see `WitnessArena::sample`): what other threads
    /// add to the arena's total when they sample the peak.
    sample: AtomicUsize,
    /// Only the owning thread writes these (and `secure_wipe`, by contract).
    classes: UnsafeCell<[ClassCache; NUM_CLASSES]>,
}

impl ThreadCache {
    const fn new() -> Self {
        Self {
            sample: AtomicUsize::new(0),
            classes: UnsafeCell::new(
                [const {
                    ClassCache {
                        head: ptr::null_mut(),
                        full: ptr::null_mut(),
                        net: AtomicI32::new(0),
                        traded: 0,
                        len: 0,
                        batch: 0,
                    }
                }; NUM_CLASSES],
            ),
        }
    }

    /// The entry of `class` (a raw pointer: see [`ClassCache`]).
    #[inline(always)]
    fn entry(&self, class: usize) -> *mut ClassCache {
        // Callers pass size classes (`class < NUM_CLASSES`), so the pointer
        // stays inside the array; `wrapping_add` keeps this function safe
        // and costs no bounds check on the fast paths.
        debug_assert!(class < NUM_CLASSES);
        self.classes.get().cast::<ClassCache>().wrapping_add(class)
    }

    /// Bytes handed out through this cache now (exact; for `stats`).
    fn used(&self) -> usize {
        (0..NUM_CLASSES).fold(0usize, |sum, c| {
            // SAFETY: a shared reference to an atomic field only; nobody
            // holds a reference to the entry (see `ClassCache`).
            let net = unsafe { (*self.entry(c)).net.load(Relaxed) };
            sum.wrapping_add((net as isize as usize).wrapping_mul(CLASS_SIZE[c] as usize))
        })
    }
}

/// An arena of witness (secret) memory. See the module docs for what it
/// guarantees. Obtain one with [`crate::NAlloc::witness`] or
/// [`WitnessArena::new`].
pub struct WitnessArena {
    inner: SpinLock<Inner>,
    caches: [ThreadCache; CACHES],
    committed: AtomicUsize,
    lock_failed: AtomicBool,
    locked_any: AtomicBool,
    dump_excluded: AtomicBool,
    fork_wiped: AtomicBool,
}

/// A snapshot of a witness arena's state, part of [`crate::Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WitnessStats {
    /// Bytes in live blocks (rounded to size classes).
    pub used: usize,
    /// Highest `used` seen. Sampled, so that alloc and free stay lock- and
    /// atomic-free: at every batch trade between a thread's cache and the
    /// arena, every locked operation and every `stats` call; between
    /// samples a thread's cache can hand out up to one batch per class
    /// (32 KiB or 64 blocks) unseen.
    pub peak: usize,
    /// Bytes committed for the arena (its capacity before new chunks).
    pub capacity: usize,
    /// Every chunk so far was locked in RAM (`mlock`); false if any chunk
    /// could not be locked (e.g. `RLIMIT_MEMLOCK`) or none exists yet.
    pub locked: bool,
    /// Chunks are excluded from core dumps (`MADV_DONTDUMP`).
    pub dump_excluded: bool,
    /// Chunks read as zero in forked children (`MADV_WIPEONFORK`).
    pub fork_wiped: bool,
}

impl Default for WitnessArena {
    fn default() -> Self {
        Self::new()
    }
}

impl WitnessArena {
    /// An empty arena; no memory is reserved until the first allocation.
    pub const fn new() -> Self {
        Self {
            inner: SpinLock::new(Inner {
                free: [ptr::null_mut(); NUM_CLASSES],
                batches: [ptr::null_mut(); NUM_CLASSES],
                small: ptr::null_mut(),
                bump: ptr::null_mut(),
                end: ptr::null_mut(),
                run: [ptr::null_mut(); NUM_CLASSES],
                run_end: [0; NUM_CLASSES],
                spare: ptr::null_mut(),
                large: ptr::null_mut(),
                used: 0,
                peak: 0,
                active: 0,
            }),
            caches: [const { ThreadCache::new() }; CACHES],
            committed: AtomicUsize::new(0),
            lock_failed: AtomicBool::new(false),
            locked_any: AtomicBool::new(false),
            dump_excluded: AtomicBool::new(false),
            fork_wiped: AtomicBool::new(false),
        }
    }

    /// Allocates `size` zeroed bytes aligned to `align` (the brief's API).
    /// Returns null when `align` is not a power of two, the request is too
    /// large, or memory cannot be had.
    #[inline]
    pub fn alloc(&self, size: usize, align: usize) -> *mut u8 {
        if !align.is_power_of_two() {
            return ptr::null_mut();
        }
        self.alloc_raw(size, align)
    }

    /// Wipes and frees a block from [`alloc`](Self::alloc).
    ///
    /// # Safety
    /// `ptr` must come from this arena's `alloc(size, align)` with the same
    /// `size` and `align`, and not be used afterwards.
    #[inline]
    pub unsafe fn dealloc(&self, ptr: *mut u8, size: usize, align: usize) {
        // SAFETY: forwarded caller contract.
        unsafe { self.dealloc_raw(ptr, size, align) }
    }

    /// Allocates a zeroed block for any layout (small or large).
    #[inline]
    pub(crate) fn alloc_raw(&self, size: usize, align: usize) -> *mut u8 {
        if size_class::is_small(size, align) {
            self.alloc_class(size_class::class_for(size, align))
        } else {
            self.alloc_large(size, align)
        }
    }

    /// Allocates one zeroed block of a size class: from the calling
    /// thread's cache when it has one, else under the lock.
    #[inline]
    pub(crate) fn alloc_class(&self, class: usize) -> *mut u8 {
        let i = heap::owned_index();
        if let Some(c) = self.caches.get(i) {
            // SAFETY: cache `i` belongs to the calling thread, the owner of
            // heap `i` (module docs); its blocks are wiped free blocks of
            // ours whose link is their only non-zero word.
            unsafe {
                let cc = c.entry(class);
                if (*cc).head.is_null() && !(*cc).full.is_null() {
                    (*cc).head = (*cc).full;
                    (*cc).len = (*cc).batch;
                    (*cc).full = ptr::null_mut();
                }
                let b = (*cc).head;
                if !b.is_null() {
                    (*cc).head = (*b).next;
                    // `len` may overstate the list (never understate it) in
                    // a forked child, where wipe-on-fork zeroed the links:
                    // wrapping keeps that harmless and panic-free.
                    (*cc).len = (*cc).len.wrapping_sub(1);
                    (*b).next = ptr::null_mut();
                    let net = &(*cc).net;
                    net.store(net.load(Relaxed).wrapping_add(1), Relaxed);
                    return b.cast();
                }
                return self.refill(i, class);
            }
        }
        self.alloc_locked(class)
    }

    /// Allocates a block of `class` under the lock (threads without a cache).
    #[cold]
    #[inline(never)]
    fn alloc_locked(&self, class: usize) -> *mut u8 {
        let mut g = self.inner.lock();
        let p = self.take_locked(&mut g, class, true);
        if !p.is_null() {
            self.account_locked(&mut g, CLASS_SIZE[class] as isize);
        }
        p
    }

    /// Takes a zeroed block of `class` from the shared lists or the current
    /// chunk's fresh space (committing a new chunk if `grow`). Null when
    /// there is none.
    fn take_locked(&self, g: &mut Inner, class: usize, grow: bool) -> *mut u8 {
        let bs = CLASS_SIZE[class] as usize;
        let b = g.free[class];
        if !b.is_null() {
            // SAFETY: `b` is a wiped free block of ours; clearing its link
            // makes it entirely zero again.
            unsafe {
                g.free[class] = (*b).next;
                (*b).next = ptr::null_mut();
            }
            return b.cast();
        }
        let h = g.batches[class];
        if !h.is_null() {
            // SAFETY: `h` heads a batch of wiped blocks of ours; its block is
            // handed out (both link words cleared) and the rest of its chain,
            // which ends in null, becomes the one-by-one list (empty here).
            unsafe {
                g.batches[class] = (*h).next_batch;
                g.free[class] = (*h).next;
                (*h).next = ptr::null_mut();
                (*h).next_batch = ptr::null_mut();
            }
            return h.cast();
        }
        // Fresh blocks come from the class's current *run*: a stretch of
        // the chunk that holds only this class (as a page does in a heap).
        // Blocks of one class are then neighbours, and a prover that frees
        // and re-allocates the same sequence walks each class in address
        // order; blocks of every class interleaved in one bump region cost
        // cache and TLB misses (see docs/design/witness-arena.md).
        if (g.run[class].is_null() || g.run[class].addr() + bs > g.run_end[class]) && !self.new_run(g, class, grow) {
            return ptr::null_mut();
        }
        let p = g.run[class];
        // SAFETY: `p + bs <= run_end`, inside the current chunk.
        g.run[class] = unsafe { p.add(bs) };
        p
    }

    /// Starts a new run for `class` in the current chunk (committing a new
    /// chunk if it has no room and `grow`).
    fn new_run(&self, g: &mut Inner, class: usize, grow: bool) -> bool {
        let bs = CLASS_SIZE[class] as usize;
        // Power-of-two classes need their own alignment (as in pages); the
        // rest need 16.
        let align = if bs.is_power_of_two() { bs } else { 16 };
        let len = (bs * RUN_BLOCKS).clamp(RUN_MIN, RUN_MAX).max(bs);
        let mut start = (g.bump.addr() + align - 1) & !(align - 1);
        if g.bump.is_null() || start + len > g.end.addr() {
            if !grow || !self.grow_small(g) {
                return false;
            }
            start = (g.bump.addr() + align - 1) & !(align - 1);
            if start + len > g.end.addr() {
                return false;
            }
        }
        let p = g.bump.with_addr(start);
        g.run[class] = p;
        g.run_end[class] = start + len;
        // SAFETY: `start + len <= end`, inside the current chunk.
        g.bump = unsafe { p.add(len) };
        // SAFETY: the current chunk's header records how far it was used, so
        // secure_wipe knows what to wipe.
        unsafe { (*g.small).block_len = g.bump.addr() - g.small.addr() };
        g.check();
        true
    }

    /// The arena's total as far as the lock holder can see it cheaply: the
    /// locked lists' bytes plus every active cache's last sample.
    fn sampled_total(&self, g: &Inner) -> usize {
        let mut sum = g.used;
        let mut bits = g.active;
        while bits != 0 {
            let j = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            sum = sum.wrapping_add(self.caches[j].sample.load(Relaxed));
        }
        sum
    }

    /// Raises the peak to `total` if higher (both may have wrapped below
    /// zero transiently: compared as signed).
    fn raise_peak(g: &mut Inner, total: usize) {
        if (total as isize) > (g.peak as isize) {
            g.peak = total;
        }
    }

    /// At a batch trade of cache `i` for `class` (lock held): folds the
    /// class's change since its last trade into the cache's sample and
    /// samples the peak. So `peak` is the highest total seen at batch
    /// trades, locked operations and `stats` calls: it can miss what a
    /// thread's cache handed out since its last trade (at most a batch per
    /// class), a price for alloc and free touching one line only.
    ///
    /// # Safety
    /// Cache `i` must belong to the calling thread.
    unsafe fn sample(&self, g: &mut Inner, i: usize, class: usize) {
        let c = &self.caches[i];
        let cc = c.entry(class);
        // SAFETY: caller contract: the entry is ours to write.
        let delta = unsafe {
            let net = (*cc).net.load(Relaxed);
            let d = net.wrapping_sub((*cc).traded);
            (*cc).traded = net;
            d
        };
        let bytes = (delta as isize as usize).wrapping_mul(CLASS_SIZE[class] as usize);
        c.sample.store(c.sample.load(Relaxed).wrapping_add(bytes), Relaxed);
        g.active |= 1 << i;
        let total = self.sampled_total(g);
        Self::raise_peak(g, total);
    }

    /// Accounts `delta` bytes taken or given back under the lock.
    fn account_locked(&self, g: &mut Inner, delta: isize) {
        g.used = g.used.wrapping_add_signed(delta);
        if delta > 0 {
            let total = self.sampled_total(g);
            Self::raise_peak(g, total);
        }
    }

    /// An empty cache `i` of the calling thread: takes a whole batch under
    /// the lock (O(1)), hands its first block out and keeps the rest; with
    /// no batch it takes a block as the locked path does, plus what fits of
    /// a batch from the class's current run of fresh blocks.
    ///
    /// A batch keeps its order and [`spill`](Self::spill) hands back the
    /// older of a cache's two lists, so the cache stays the top of one LIFO
    /// stack per class, as if there were no cache; fresh blocks are listed
    /// in address order. That matters: a prover repeating the same
    /// allocation sequence then walks each class's blocks in address order,
    /// which the hardware prefetcher follows (see
    /// docs/design/witness-arena.md).
    ///
    /// # Safety
    /// Cache `i` must belong to the calling thread.
    #[cold]
    #[inline(never)]
    unsafe fn refill(&self, i: usize, class: usize) -> *mut u8 {
        let c = &self.caches[i];
        let mut g = self.inner.lock();
        let h = g.batches[class];
        let (p, rest, n) = if h.is_null() {
            let p = self.take_locked(&mut g, class, true);
            if p.is_null() {
                return p;
            }
            let bs = CLASS_SIZE[class] as usize;
            let (mut head, mut tail) = (ptr::null_mut::<Block>(), ptr::null_mut::<Block>());
            let mut n = 0u16;
            while n + 1 < batch(class) && !g.run[class].is_null() && g.run[class].addr() + bs <= g.run_end[class] {
                let b = g.run[class].cast::<Block>();
                // SAFETY: `b + bs <= run_end`: a fresh (zero) block of the
                // run, inside the current chunk; its zero link ends the list.
                unsafe {
                    g.run[class] = g.run[class].add(bs);
                    if tail.is_null() {
                        head = b;
                    } else {
                        (*tail).next = b;
                    }
                }
                tail = b;
                n += 1;
            }
            (p, head, n)
        } else {
            // SAFETY: `h` heads a batch of `batch(class)` wiped blocks of
            // ours, its chain ending in null; we hold the lock. The handed-
            // out block gets both link words cleared.
            unsafe {
                g.batches[class] = (*h).next_batch;
                let rest = (*h).next;
                (*h).next = ptr::null_mut();
                (*h).next_batch = ptr::null_mut();
                (h.cast::<u8>(), rest, batch(class) - 1)
            }
        };
        // SAFETY: caller contract: the cache is ours; this class's lists
        // were both empty.
        unsafe {
            let cc = c.entry(class);
            (*cc).head = rest;
            (*cc).len = n;
            (*cc).batch = BATCH[class];
            let net = &(*cc).net;
            net.store(net.load(Relaxed).wrapping_add(1), Relaxed);
            self.sample(&mut g, i, class);
        }
        drop(g);
        p
    }

    /// Hands a cache's reserve batch (`batch(class)` blocks, its chain
    /// ending in null) to the shared stack of batches: a free into a cache
    /// whose current list and reserve are both full. The reserve is the
    /// older of the two, so the cache stays the top of one LIFO stack per
    /// class (see [`refill`](Self::refill)).
    ///
    /// # Safety
    /// `first` must head such a batch, taken out of the calling thread's
    /// cache `i`.
    #[cold]
    #[inline(never)]
    unsafe fn spill(&self, i: usize, first: *mut Block, class: usize) {
        let first = first.cast::<BatchHead>();
        let mut g = self.inner.lock();
        // SAFETY: caller contract; the batch's first block gets its second
        // word set (cleared again when it is handed out).
        unsafe {
            (*first).next_batch = g.batches[class];
            self.sample(&mut g, i, class);
        }
        g.batches[class] = first;
    }

    /// Makes a new current chunk for small blocks: a spare one if there is
    /// one, else a newly committed one.
    fn grow_small(&self, g: &mut Inner) -> bool {
        let h = if g.spare.is_null() {
            let mut prot = Protection::default();
            let h = new_chunk(1, &mut prot);
            if h.is_null() {
                return false;
            }
            self.note_chunk(&prot, SLOT - 2 * GUARD);
            h
        } else {
            let h = g.spare;
            // SAFETY: spare chunks are ours, wiped and unused.
            g.spare = unsafe { (*h).next };
            h
        };
        // SAFETY: `h` is a fresh chunk of ours.
        unsafe {
            (*h).next = g.small;
            (*h).block_len = HEADER;
            g.small = h;
            g.bump = h.cast::<u8>().add(HEADER);
            g.end = h.cast::<u8>().add((*h).len);
        }
        true
    }

    fn note_chunk(&self, prot: &Protection, len: usize) {
        self.committed.fetch_add(len, Relaxed);
        if prot.locked {
            self.locked_any.store(true, Relaxed);
        } else {
            self.lock_failed.store(true, Relaxed);
        }
        self.dump_excluded.store(prot.dont_dump, Relaxed);
        self.fork_wiped.store(prot.wipe_on_fork, Relaxed);
    }

    /// Lowers the committed figure; saturating, because a forked child may
    /// release chunks that its own counters never saw.
    fn committed_sub(&self, n: usize) {
        let _ = self
            .committed
            .fetch_update(Relaxed, Relaxed, |c| Some(c.saturating_sub(n)));
    }

    fn alloc_large(&self, size: usize, align: usize) -> *mut u8 {
        if align > SLOT {
            return ptr::null_mut();
        }
        let Some(block_len) = size.max(1).checked_add(OS_PAGE - 1).map(|v| v & !(OS_PAGE - 1)) else {
            return ptr::null_mut();
        };
        // header page + block + alignment slack + two guards, in slots.
        let Some(need) = block_len.checked_add(OS_PAGE + align + 2 * GUARD) else {
            return ptr::null_mut();
        };
        let slots = need.div_ceil(SLOT);
        if slots > SLOTS {
            return ptr::null_mut();
        }
        let mut prot = Protection::default();
        let h = new_chunk(slots, &mut prot);
        if h.is_null() {
            return h.cast();
        }
        self.note_chunk(&prot, slots * SLOT - 2 * GUARD);
        // SAFETY: `h` is a fresh chunk; the block is placed so that it ends at
        // most `align - 1` (or a page's rounding) before the trailing guard.
        let p = unsafe {
            let end = h.addr() + (*h).len;
            let start = (end - size.max(1)) & !(align.max(16) - 1);
            let p = h.cast::<u8>().with_addr(start);
            (*h).block = p;
            (*h).block_len = end - start;
            ChunkHeader::check(h);
            let mut g = self.inner.lock();
            (*h).next = g.large;
            g.large = h;
            self.account_locked(&mut g, (slots * SLOT) as isize);
            p
        };
        p
    }

    /// Wipes and frees a block of `size` bytes and alignment `align`.
    ///
    /// # Safety
    /// `p` must be a live block of this arena allocated with that layout.
    #[inline]
    pub(crate) unsafe fn dealloc_raw(&self, p: *mut u8, size: usize, align: usize) {
        if !size_class::is_small(size, align) {
            // SAFETY: forwarded caller contract.
            return unsafe { self.dealloc_large(p) };
        }
        let class = size_class::class_for(size, align);
        // Only the requested bytes can hold data: the block was zero when
        // handed out and the rest of it belongs to no one. (A same-class
        // shrinking `realloc` wipes what it cuts off.)
        // SAFETY: caller contract: a live block of its class's size, which
        // is at least `size` (`class_for`).
        unsafe { os::secure_zero(p, size.max(1)) };
        let b = p.cast::<Block>();
        let i = heap::owned_index();
        let Some(c) = self.caches.get(i) else {
            // SAFETY: `b` is a wiped block of `class`.
            return unsafe { self.free_locked(b, class) };
        };
        // SAFETY: cache `i` belongs to the calling thread (module docs); `b`
        // is wiped, and its link becomes its only non-zero word.
        unsafe {
            let cc = c.entry(class);
            if (*cc).len == (*cc).batch {
                if (*cc).batch == 0 {
                    (*cc).batch = BATCH[class];
                } else {
                    if !(*cc).full.is_null() {
                        self.spill(i, (*cc).full, class);
                    }
                    (*cc).full = (*cc).head;
                    (*cc).head = ptr::null_mut();
                    (*cc).len = 0;
                }
            }
            (*b).next = (*cc).head;
            (*cc).head = b;
            (*cc).len += 1;
            let net = &(*cc).net;
            net.store(net.load(Relaxed).wrapping_sub(1), Relaxed);
        }
    }

    /// Frees a wiped small block under the lock (threads without a cache).
    ///
    /// # Safety
    /// `b` must be a wiped block of `class` of this arena, no longer used.
    #[cold]
    #[inline(never)]
    unsafe fn free_locked(&self, b: *mut Block, class: usize) {
        let mut g = self.inner.lock();
        // SAFETY: caller contract: the link becomes its only non-zero word.
        unsafe { (*b).next = g.free[class] };
        g.free[class] = b;
        self.account_locked(&mut g, -(CLASS_SIZE[class] as isize));
    }

    /// Frees a large block: its chunk is wiped and returned to the OS.
    ///
    /// # Safety
    /// `p` must be a live large block of this arena.
    #[cold]
    #[inline(never)]
    unsafe fn dealloc_large(&self, p: *mut u8) {
        let mut g = self.inner.lock();
        let mut link: *mut *mut ChunkHeader = &mut g.large;
        // SAFETY: we walk our own list of large chunks under the lock.
        unsafe {
            while !(*link).is_null() {
                let h = *link;
                if (*h).block == p {
                    *link = (*h).next;
                    let slots = (*h).slots;
                    self.account_locked(&mut g, -((slots * SLOT) as isize));
                    drop(g);
                    let len = (*h).len;
                    drop_chunk(h, len);
                    self.committed_sub(slots * SLOT - 2 * GUARD);
                    return;
                }
                link = &mut (*h).next;
            }
        }
    }

    /// Zeroes every byte this arena ever handed out — live or freed — and
    /// forgets all its blocks, in time proportional to what was used. Large
    /// blocks' chunks are wiped and returned to the OS; small-block chunks
    /// stay committed (and locked) for reuse.
    ///
    /// # Safety
    /// Every block of the arena becomes invalid: none may be used afterwards
    /// (for the `Allocator` API this means no collection allocated in the
    /// arena may still be alive). No other thread may allocate from or free
    /// into the arena while this runs, and their earlier and later uses of
    /// it must be ordered with this call (threads joined, or synchronised
    /// through a lock or channel): the call empties every thread's cache.
    pub unsafe fn secure_wipe(&self) {
        for c in &self.caches {
            // SAFETY: caller contract: no thread uses its cache meanwhile.
            unsafe {
                for class in 0..NUM_CLASSES {
                    let cc = c.entry(class);
                    (*cc).head = ptr::null_mut();
                    (*cc).full = ptr::null_mut();
                    (*cc).len = 0;
                    (*cc).batch = 0;
                    (*cc).traded = 0;
                    (*cc).net.store(0, Relaxed);
                }
            }
            c.sample.store(0, Relaxed);
        }
        let mut g = self.inner.lock();
        // SAFETY: caller contract: no block is in use; the chunks are ours.
        unsafe {
            let mut h = g.small;
            while !h.is_null() {
                let used = (*h).block_len;
                let base = h.cast::<u8>();
                os::secure_zero(base.add(HEADER), used.saturating_sub(HEADER));
                (*h).block_len = HEADER;
                h = (*h).next;
            }
            g.free = [ptr::null_mut(); NUM_CLASSES];
            g.batches = [ptr::null_mut(); NUM_CLASSES];
            g.run = [ptr::null_mut(); NUM_CLASSES];
            g.run_end = [0; NUM_CLASSES];
            if !g.small.is_null() {
                let h = g.small;
                g.bump = h.cast::<u8>().add(HEADER);
            }
            let mut h = g.large;
            g.large = ptr::null_mut();
            drop(g);
            while !h.is_null() {
                let next = (*h).next;
                let slots = (*h).slots;
                drop_chunk(h, (*h).len);
                self.committed_sub(slots * SLOT - 2 * GUARD);
                h = next;
            }
        }
        // The newest small chunk is the bump target again; the older ones
        // (zero now) become spares, reused before any new chunk is
        // committed: a prover that wipes after every proof does not commit
        // and lock its chunks again each time.
        let mut g = self.inner.lock();
        // SAFETY: the chunks are ours and hold no live block.
        unsafe {
            if !g.small.is_null() {
                let mut h = (*g.small).next;
                (*g.small).next = ptr::null_mut();
                while !h.is_null() {
                    let next = (*h).next;
                    (*h).next = g.spare;
                    g.spare = h;
                    h = next;
                }
            }
        }
        g.used = 0;
        drop(g);
    }

    /// A snapshot of the arena's figures.
    pub fn stats(&self) -> WitnessStats {
        // One lock for both figures (a guard temporary lives to the end of
        // the statement: locking twice in one expression would self-deadlock).
        let (used, peak) = {
            let mut g = self.inner.lock();
            // Every cache, not only the active ones: a thread that only
            // freed into its cache holds a negative share.
            let used = self.caches.iter().fold(g.used, |sum, c| sum.wrapping_add(c.used()));
            // Figures read while other threads work may be momentarily
            // inconsistent (a block counted by neither or both caches).
            let used = if (used as isize) < 0 { 0 } else { used };
            let peak = g.peak;
            let peak = peak.max(used);
            g.peak = peak;
            (used, peak)
        };
        WitnessStats {
            used,
            peak,
            capacity: self.committed.load(Relaxed),
            locked: self.locked_any.load(Relaxed) && !self.lock_failed.load(Relaxed),
            dump_excluded: self.dump_excluded.load(Relaxed),
            fork_wiped: self.fork_wiped.load(Relaxed),
        }
    }
}

impl Drop for WitnessArena {
    fn drop(&mut self) {
        // SAFETY: `&mut self` proves no borrow of the arena — hence no
        // collection allocated in it — is alive; raw `alloc` users were told
        // blocks die with the arena.
        unsafe { self.secure_wipe() };
        let g = self.inner.lock();
        let (small, spare) = (g.small, g.spare);
        drop(g);
        for mut h in [small, spare] {
            while !h.is_null() {
                // SAFETY: wiped above and no longer referenced; the link is
                // read before the chunk goes.
                unsafe {
                    let next = (*h).next;
                    drop_chunk(h, 0);
                    h = next;
                }
            }
        }
    }
}

/// The arena behind `witness_scope`: process-wide, because blocks made in a
/// scope may be freed anywhere, at any time, through the global allocator.
pub(crate) static SCOPE_ARENA: WitnessArena = WitnessArena::new();

/// Takes the scope arena's and the region's locks before `fork` (the order
/// `alloc_class` nests them in).
pub(crate) fn fork_lock() {
    SCOPE_ARENA.inner.acquire_raw();
    REGION.fork_lock();
}

/// Releases the locks of [`fork_lock`].
///
/// # Safety
/// Only after `fork_lock`.
pub(crate) unsafe fn fork_unlock() {
    // SAFETY: caller contract: we hold both locks.
    unsafe {
        REGION.fork_unlock();
        SCOPE_ARENA.inner.release_raw();
    }
}

// SAFETY: all mutable state is behind the spin lock or atomic.
unsafe impl Sync for WitnessArena {}
// SAFETY: as above; chunks are process-wide memory, not tied to a thread.
unsafe impl Send for WitnessArena {}

// SAFETY: blocks are valid until deallocated or the arena is wiped/dropped,
// which needs `&mut` or `unsafe`; every method is internally synchronised.
// `&WitnessArena` gets the trait through allocator-api2's blanket impl, so
// `Vec::new_in(&arena)` works.
unsafe impl allocator_api2::alloc::Allocator for WitnessArena {
    fn allocate(&self, layout: core::alloc::Layout) -> Result<NonNull<[u8]>, allocator_api2::alloc::AllocError> {
        let p = self.alloc_raw(layout.size(), layout.align());
        NonNull::new(p)
            .map(|p| NonNull::slice_from_raw_parts(p, layout.size()))
            .ok_or(allocator_api2::alloc::AllocError)
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: core::alloc::Layout) {
        // SAFETY: the Allocator contract: `ptr` came from `allocate(layout)`.
        unsafe { self.dealloc_raw(ptr.as_ptr(), layout.size(), layout.align()) }
    }
}
